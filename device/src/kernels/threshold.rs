//! Binarizing: the predicate `v * flip >= threshold` a BN folded into a channel's threshold
//! gives, as integer comparisons of the float bits ([`Threshold`], [`with_threshold!`]), and the
//! packing of one channel's bits along a row of pixels ([`Packer`]). Both binarizers (the dense
//! kernel's [`super::binarize`], the lane kernel's [`super::binarize_rows`]) pack through them,
//! so every build gives the same bits.

use crate::format::BITS;

/// The predicate `v * flip >= threshold` of one channel, with a NaN `v` read as the infinity of
/// its sign ([`nan_as_inf`]). After BN folding `flip` is +1 or -1 (or 0); for +-1 the predicate
/// is a comparison of `v`'s bits as integers, exact for every bit pattern, since the bits of the
/// floats of one sign are ordered as integers and the negative floats are the negative `i32`s:
#[derive(Clone, Copy)]
pub(crate) enum Threshold {
    /// `v >= t`, `t > 0`: `v`'s bits as `i32` above `t`'s minus one.
    SignedAbove(i64),
    /// `v >= t`, `t <= 0`: `v`'s bits as `u32` up to `t`'s with the sign bit set (every positive
    /// float and zero, then the negative ones down to `t`; all of them for `t = -inf`).
    UnsignedAtMost(i64),
    /// `-v >= t`, `t <= 0`: `v <= -t`, `v`'s bits as `i32` up to `-t`'s (+0 for either zero;
    /// all of them for `-t = +inf`).
    SignedAtMost(i64),
    /// `-v >= t`, `t > 0`: `v <= -t < 0`, `v`'s bits as `u32` from `-t`'s up.
    UnsignedAtLeast(i64),
    /// Any other flip (0, or a model that folded none) or a NaN threshold: floats compared.
    Float(f32, f32),
}

impl Threshold {
    /// The predicate for `flip` and threshold `t`.
    #[inline(always)]
    pub(crate) fn new(flip: f32, t: f32) -> Self {
        match flip {
            _ if t.is_nan() => Threshold::Float(flip, t),
            1.0 if t > 0.0 => Threshold::SignedAbove(i64::from(t.to_bits() as i32) - 1),
            1.0 if t == f32::NEG_INFINITY => Threshold::UnsignedAtMost(i64::from(u32::MAX)),
            1.0 => Threshold::UnsignedAtMost(i64::from(t.to_bits() | 0x8000_0000)),
            -1.0 if t == f32::NEG_INFINITY => Threshold::SignedAtMost(i64::from(i32::MAX)),
            -1.0 if t <= 0.0 => Threshold::SignedAtMost(i64::from((-t).to_bits() as i32 & 0x7FFF_FFFF)),
            -1.0 => Threshold::UnsignedAtLeast(i64::from((-t).to_bits())),
            _ => Threshold::Float(flip, t),
        }
    }

    /// [`Threshold::new`], not inlined: the keys then reach the packing loops as opaque 64-bit
    /// integers, which keeps the compiler from narrowing the `u32` form's signed differences
    /// into longer sequences (22 instructions per 4 values against 18 on the Cortex-M4). For
    /// callers that make one per channel plane, not per block of pixels.
    #[inline(never)]
    pub(crate) fn opaque(flip: f32, t: f32) -> Self {
        Self::new(flip, t)
    }
}

/// Runs `$body` with `$bit` bound to a [`Threshold`]'s predicate: `|$bit, $invert|`, a closure
/// `f32 -> u32` (0 or 1) whose bits are to be inverted where `$invert` (`u32`, 0 or all ones) is
/// set, or `bool, |$bit|`, a closure `f32 -> bool`.
///
/// The `u32` form computes each comparison as the borrow of a 64-bit difference, 0 or -1 in its
/// high word: the Cortex-M4 takes a subtract and a subtract-with-carry, then adds it in with no
/// branch and no IT block. Packing a row that way costs ~4.5 instructions a value against ~6.75
/// for the float compare (VCMP, VMRS, a conditional add). `SignedAbove` packs its complement
/// (`v <= k`) and inverts the word: negated in each value the compiler spent 21 instructions per
/// 4 values instead of 18. The `bool` form compares the integers (CMP and a conditional
/// instruction): the dense binarizer's conditional OR takes it. Every binarizer packs through
/// one of the two, so every build gives the same bits.
macro_rules! with_threshold {
    ($threshold:expr, |$bit:ident, $invert:ident| $body:expr) => {{
        // The high word of a 64-bit difference: -1 where it is negative, else 0.
        let high = |d: i64| (d >> 32) as u32;
        let bits = |v: f32| i64::from(v.to_bits());
        let signed = |v: f32| i64::from(v.to_bits() as i32);
        match $threshold {
            $crate::kernels::Threshold::SignedAbove(k) => {
                let $invert = u32::MAX;
                let $bit = |v: f32| high(k - signed(v)).wrapping_add(1);
                $body
            }
            $crate::kernels::Threshold::UnsignedAtMost(k) => {
                let $invert = 0u32;
                let $bit = |v: f32| high(k - bits(v)).wrapping_add(1);
                $body
            }
            $crate::kernels::Threshold::SignedAtMost(k) => {
                let $invert = 0u32;
                let $bit = |v: f32| high(k - signed(v)).wrapping_add(1);
                $body
            }
            $crate::kernels::Threshold::UnsignedAtLeast(k) => {
                let $invert = 0u32;
                let $bit = |v: f32| high(bits(v) - k).wrapping_add(1);
                $body
            }
            $crate::kernels::Threshold::Float(f, t) => {
                let $invert = 0u32;
                let $bit = |v: f32| u32::from($crate::kernels::nan_as_inf(v) * f >= t);
                $body
            }
        }
    }};
    ($threshold:expr, bool, |$bit:ident| $body:expr) => {{
        match $threshold {
            $crate::kernels::Threshold::SignedAbove(k) => {
                let k = k as i32;
                let $bit = |v: f32| v.to_bits() as i32 > k;
                $body
            }
            $crate::kernels::Threshold::UnsignedAtMost(k) => {
                let k = k as u32;
                let $bit = |v: f32| v.to_bits() <= k;
                $body
            }
            $crate::kernels::Threshold::SignedAtMost(k) => {
                let k = k as i32;
                let $bit = |v: f32| v.to_bits() as i32 <= k;
                $body
            }
            $crate::kernels::Threshold::UnsignedAtLeast(k) => {
                let k = k as u32;
                let $bit = |v: f32| v.to_bits() >= k;
                $body
            }
            $crate::kernels::Threshold::Float(f, t) => {
                let $bit = |v: f32| $crate::kernels::nan_as_inf(v) * f >= t;
                $body
            }
        }
    }};
}
pub(crate) use with_threshold;

/// A NaN as the infinity of its sign; other values as they are. Binarizing reads activations
/// through it ([`with_threshold!`]): the integer comparisons order a NaN's bits beyond the
/// infinity of its sign, and the float path matches them.
#[inline]
pub fn nan_as_inf(v: f32) -> f32 {
    if v.is_nan() {
        f32::INFINITY.copysign(v)
    } else {
        v
    }
}

/// One channel's predicate as [`with_threshold!`] gives it: `bit(v)`, 0 or 1, to be
/// inverted where `invert` is set.
pub(crate) struct Packer<F> {
    pub(crate) bit: F,
    pub(crate) invert: u32,
}

impl<F: Fn(f32) -> u32> Packer<F> {
    /// The bits of up to 32 pixels, pixel `i` at bit `i` (LSB first): last pixel first, each
    /// shifting the word left.
    #[inline(always)]
    pub(crate) fn word(&self, px: &[f32]) -> u32 {
        px.iter().rev().fold(0u32, |a, &v| (a << 1).wrapping_add((self.bit)(v))) ^ (self.invert & low_bits(px.len()))
    }
}

/// The low `n` bits set (`n <= 32`).
#[inline(always)]
pub(super) fn low_bits(n: usize) -> u32 {
    u32::MAX.checked_shr(BITS.saturating_sub(n) as u32).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    /// `with_threshold!`'s predicate, in both forms, against `nan_as_inf(v) * flip >= threshold`, for every flip kind and
    /// thresholds of both signs, zeros, subnormals, the largest float, infinities and NaN, over
    /// the same special values and 200,000 random bit patterns (every kind of NaN among them).
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
                let got: vec::Vec<u32> = with_threshold!(Threshold::new(f, t), |bit, invert| values
                    .iter()
                    .map(|&v| bit(v) ^ (invert & 1))
                    .collect());
                let got_bool: vec::Vec<bool> =
                    with_threshold!(Threshold::new(f, t), bool, |bit| values.iter().map(|&v| bit(v)).collect());
                for ((&v, &g), &b) in values.iter().zip(&got).zip(&got_bool) {
                    let want = nan_as_inf(v) * f >= t;
                    assert_eq!(
                        b,
                        want,
                        "bool form: flip {f}, threshold {t:?} ({:#x}), v {v:?} ({:#x})",
                        t.to_bits(),
                        v.to_bits()
                    );
                    assert_eq!(
                        g,
                        u32::from(want),
                        "flip {f}, threshold {t:?} ({:#x}), v {v:?} ({:#x})",
                        t.to_bits(),
                        v.to_bits()
                    );
                }
                cases += 1;
            }
        }
        std::println!("{cases} (flip, threshold) pairs x {} values: predicate == definition", values.len());
    }
}
