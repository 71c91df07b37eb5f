//! Binarizing: the predicate `v * flip >= threshold` a BN folded into a channel's threshold
//! gives ([`Threshold`], [`with_threshold!`]), and the packing of one channel's bits along a row
//! of pixels ([`Packer`]). Both binarizers (the dense kernel's [`super::binarize`], the lane
//! kernel's [`super::binarize_rows`]) pack through them, so every build gives the same bits.

/// The predicate `v * flip >= threshold` of one channel, exactly as the format defines it (a NaN
/// `v` gives false). After BN folding `flip` is +1 or -1 (or 0). Where the threshold is positive
/// the values that pass are the bit patterns of one range: the bits of the floats of one sign are
/// ordered as integers, so `v >= t > 0` holds for the patterns from `t`'s up to `+inf`'s (every
/// NaN and negative lies outside), and `v <= -t < 0` for those from `-t`'s up to `-inf`'s. A
/// threshold at or below zero takes the positive floats and some negative ones, two ranges with
/// the positive NaNs between them: those compare floats.
#[derive(Clone, Copy)]
pub(crate) enum Threshold {
    /// `v`'s bits `b` with `b - low <= span` (wrapping).
    InRange { low: u32, span: u32 },
    /// `v >= t` (flip +1).
    AtLeast(f32),
    /// `v <= s` (flip -1, `s = -t`: exact).
    AtMost(f32),
    /// `v * flip >= t`: any other flip (0, or a model that folded none).
    Scaled(f32, f32),
}

/// The bits of `+inf`; `-inf`'s are these with the sign bit.
const INF: u32 = 0x7F80_0000;

impl Threshold {
    /// The predicate for `flip` and threshold `t`.
    #[inline(always)]
    pub(crate) fn new(flip: f32, t: f32) -> Self {
        let range = |low: u32, high: u32| Threshold::InRange { low, span: high - low };
        match flip {
            1.0 if t > 0.0 => range(t.to_bits(), INF),
            -1.0 if t > 0.0 => range((-t).to_bits(), INF | 0x8000_0000),
            1.0 => Threshold::AtLeast(t),
            -1.0 => Threshold::AtMost(-t),
            _ => Threshold::Scaled(flip, t),
        }
    }

    /// [`Threshold::new`], not inlined: the range reaches the packing loops as opaque integers,
    /// which keeps the compiler from narrowing the step's 64-bit add back into a compare and an
    /// IT block. For callers that make one per channel plane, not per block of pixels.
    #[inline(never)]
    pub(crate) fn opaque(flip: f32, t: f32) -> Self {
        Self::new(flip, t)
    }
}

/// Runs `$body` with a [`Threshold`]'s predicate bound: `|$step|`, a closure `(u32, f32) -> u32`
/// that shifts the predicate's *complement* into a word (`a -> 2a + (1 where v * flip >=
/// threshold fails)`, the step [`Packer`] folds with), or `bool, |$bit|`, a closure
/// `f32 -> bool`, the predicate itself.
///
/// The step tests a range as the carry of an add: `offset = bits - low` lies outside the range
/// exactly when `offset + !span` carries out. Both adds are one 64-bit add, `(a, offset) + (a,
/// !span)`, whose high word is `2a + carry`: on the Cortex-M4 a subtract for the offset, an ADDS
/// and an ADC per value, with no VMRS and no IT block. With the loads and the loop that is 17
/// instructions per 4 values, where a 64-bit borrow and an add per value took 22 and the float
/// compare (VCMP, VMRS, a conditional add) 27; LLVM turns a plain `overflowing_add` into a
/// compare, an IT block and a conditional add, no better. (Reading a NaN as the infinity
/// of its sign would save the offset, but the format, and the ONNX export that tract runs, give
/// -1 for every NaN.) The `bool` form compares the integers (the hosts' vectorized blocks take
/// it).
macro_rules! with_threshold {
    ($threshold:expr, |$step:ident| $body:expr) => {{
        match $threshold {
            $crate::kernels::Threshold::InRange { low, span } => {
                let outside = u64::from(!span);
                let $step = |a: u32, v: f32| {
                    let a = u64::from(a) << 32;
                    ((a | u64::from(v.to_bits().wrapping_sub(low))).wrapping_add(a | outside) >> 32) as u32
                };
                $body
            }
            $crate::kernels::Threshold::AtLeast(t) => {
                let $step = |a: u32, v: f32| $crate::kernels::threshold::shift_miss(a, v >= t);
                $body
            }
            $crate::kernels::Threshold::AtMost(s) => {
                let $step = |a: u32, v: f32| $crate::kernels::threshold::shift_miss(a, v <= s);
                $body
            }
            $crate::kernels::Threshold::Scaled(f, t) => {
                let $step = |a: u32, v: f32| $crate::kernels::threshold::shift_miss(a, v * f >= t);
                $body
            }
        }
    }};
    ($threshold:expr, bool, |$bit:ident| $body:expr) => {{
        match $threshold {
            $crate::kernels::Threshold::InRange { low, span } => {
                let $bit = |v: f32| v.to_bits().wrapping_sub(low) <= span;
                $body
            }
            $crate::kernels::Threshold::AtLeast(t) => {
                let $bit = |v: f32| v >= t;
                $body
            }
            $crate::kernels::Threshold::AtMost(s) => {
                let $bit = |v: f32| v <= s;
                $body
            }
            $crate::kernels::Threshold::Scaled(f, t) => {
                let $bit = |v: f32| v * f >= t;
                $body
            }
        }
    }};
}
pub(crate) use with_threshold;

/// `2a + (1 where the predicate fails)`: the step of the float forms of [`with_threshold!`].
#[inline(always)]
pub(crate) fn shift_miss(a: u32, pass: bool) -> u32 {
    a.wrapping_add(a).wrapping_add(u32::from(!pass))
}

/// One channel's predicate as [`with_threshold!`] gives it (its step), packing rows of pixels.
pub(crate) struct Packer<F>(pub(crate) F);

impl<F: Fn(u32, f32) -> u32> Packer<F> {
    /// The bits of up to 32 pixels, pixel `i` at bit `i` (LSB first; bits past the pixels are 0):
    /// last pixel first, each stepping its complement into a word of ones, which is inverted at
    /// the end.
    #[inline(always)]
    pub(crate) fn word<'a>(&self, px: impl DoubleEndedIterator<Item = &'a f32>) -> u32 {
        !px.rev().fold(u32::MAX, |a, &v| (self.0)(a, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    /// `with_threshold!`'s predicate, in both forms (the step shifting in its complement), against
    /// `v * flip >= threshold`, for every flip kind and thresholds of both signs, zeros,
    /// subnormals, the largest float, infinities and NaN, over the same special values and
    /// 200,000 random bit patterns (every kind of NaN among them).
    #[test]
    fn threshold_predicate_is_the_definition() {
        let specials = [
            0.0f32,
            -0.0,
            1e-45,
            -1e-45,
            1.2e-38,
            0.2,
            -0.2,
            1.0,
            -1.0,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7F80_0001),
            f32::from_bits(0xFFFF_FFFF),
        ];
        let mut next = crate::xorshift32(0x0BAD_F00D);
        let values: vec::Vec<f32> =
            specials.iter().copied().chain((0..200_000).map(|_| f32::from_bits(next()))).collect();
        let mut cases = 0;
        for f in [1.0f32, -1.0, 0.0, 0.5, -2.0] {
            for &t in &specials {
                // Each step from a word of random bits `a`, which must come out as `2a + miss`.
                let words: vec::Vec<u32> = values.iter().map(|_| next()).collect();
                let got: vec::Vec<u32> = with_threshold!(Threshold::opaque(f, t), |step| {
                    values.iter().zip(&words).map(|(&v, &a)| step(a, v).wrapping_sub(a.wrapping_add(a))).collect()
                });
                let got_bool: vec::Vec<bool> =
                    with_threshold!(Threshold::new(f, t), bool, |bit| values.iter().map(|&v| bit(v)).collect());
                for ((&v, &g), &b) in values.iter().zip(&got).zip(&got_bool) {
                    let want = v * f >= t;
                    let case =
                        || std::format!("flip {f}, threshold {t:?} ({:#x}), v {v:?} ({:#x})", t.to_bits(), v.to_bits());
                    assert_eq!(b, want, "bool form: {}", case());
                    assert_eq!(g, u32::from(!want), "step: {}", case());
                }
                cases += 1;
            }
        }
        std::println!("{cases} (flip, threshold) pairs x {} values: predicate == definition", values.len());
    }
}
