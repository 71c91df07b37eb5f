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
    /// `v`'s bits `b` with `b - low <= span` (wrapping, as `u32`; stored wide so that the
    /// comparison can be a 64-bit difference, [`with_threshold!`]).
    InRange { low: i64, span: i64 },
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
        let range = |low: u32, high: u32| Threshold::InRange { low: i64::from(low), span: i64::from(high - low) };
        match flip {
            1.0 if t > 0.0 => range(t.to_bits(), INF),
            -1.0 if t > 0.0 => range((-t).to_bits(), INF | 0x8000_0000),
            1.0 => Threshold::AtLeast(t),
            -1.0 => Threshold::AtMost(-t),
            _ => Threshold::Scaled(flip, t),
        }
    }

    /// [`Threshold::new`], not inlined: the range reaches the packing loops as opaque 64-bit
    /// integers, which keeps the compiler from narrowing the `u32` form's 64-bit difference back
    /// into a compare and an IT block. For callers that make one per channel plane, not per
    /// block of pixels.
    #[inline(never)]
    pub(crate) fn opaque(flip: f32, t: f32) -> Self {
        Self::new(flip, t)
    }
}

/// Runs `$body` with `$bit` bound to a [`Threshold`]'s predicate: `|$bit|`, a closure
/// `f32 -> u32` (0 or 1), or `bool, |$bit|`, a closure `f32 -> bool`.
///
/// The `u32` form tests a range as the borrow of a 64-bit difference, 0 or -1 in its high word:
/// on the Cortex-M4 a subtract for the offset into the range, a subtract and a subtract-with-carry
/// against its span, then an add into the row word, with no VMRS and no IT block: 22
/// instructions per 4 values where the float compare (VCMP, VMRS, a conditional add) takes 27.
/// (Reading a NaN as the infinity of its sign would save the offset, 18 per 4 values, but the
/// format, and the ONNX export that tract runs, give -1 for every NaN.) The `bool` form compares
/// the integers (the hosts' vectorized blocks take it).
macro_rules! with_threshold {
    ($threshold:expr, |$bit:ident| $body:expr) => {{
        match $threshold {
            $crate::kernels::Threshold::InRange { low, span } => {
                let $bit = |v: f32| {
                    let offset = i64::from(v.to_bits().wrapping_sub(low as u32));
                    // The high word of `span - offset`: -1 where `offset > span`, else 0.
                    (((span - offset) >> 32) as u32).wrapping_add(1)
                };
                $body
            }
            $crate::kernels::Threshold::AtLeast(t) => {
                let $bit = |v: f32| u32::from(v >= t);
                $body
            }
            $crate::kernels::Threshold::AtMost(s) => {
                let $bit = |v: f32| u32::from(v <= s);
                $body
            }
            $crate::kernels::Threshold::Scaled(f, t) => {
                let $bit = |v: f32| u32::from(v * f >= t);
                $body
            }
        }
    }};
    ($threshold:expr, bool, |$bit:ident| $body:expr) => {{
        match $threshold {
            $crate::kernels::Threshold::InRange { low, span } => {
                let (low, span) = (low as u32, span as u32);
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

/// One channel's predicate as [`with_threshold!`] gives it, packing rows of pixels.
pub(crate) struct Packer<F>(pub(crate) F);

impl<F: Fn(f32) -> u32> Packer<F> {
    /// The bits of up to 32 pixels, pixel `i` at bit `i` (LSB first): last pixel first, each
    /// shifting the word left.
    #[inline(always)]
    pub(crate) fn word(&self, px: &[f32]) -> u32 {
        px.iter().rev().fold(0u32, |a, &v| (a << 1).wrapping_add((self.0)(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    /// `with_threshold!`'s predicate, in both forms, against `v * flip >= threshold`, for every
    /// flip kind and thresholds of both signs, zeros, subnormals, the largest float, infinities
    /// and NaN, over the same special values and 200,000 random bit patterns (every kind of NaN
    /// among them).
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
                let got: vec::Vec<u32> =
                    with_threshold!(Threshold::opaque(f, t), |bit| values.iter().map(|&v| bit(v)).collect());
                let got_bool: vec::Vec<bool> =
                    with_threshold!(Threshold::new(f, t), bool, |bit| values.iter().map(|&v| bit(v)).collect());
                for ((&v, &g), &b) in values.iter().zip(&got).zip(&got_bool) {
                    let want = v * f >= t;
                    let case =
                        || std::format!("flip {f}, threshold {t:?} ({:#x}), v {v:?} ({:#x})", t.to_bits(), v.to_bits());
                    assert_eq!(b, want, "bool form: {}", case());
                    assert_eq!(g, u32::from(want), "u32 form: {}", case());
                }
                cases += 1;
            }
        }
        std::println!("{cases} (flip, threshold) pairs x {} values: predicate == definition", values.len());
    }
}
