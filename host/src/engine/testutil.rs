//! Helpers shared by the engine's tests.

use crate::rng::Rng;

/// Largest absolute difference divided by the largest magnitude of the reference:
/// `max_i |a_i - b_i| / max_i |b_i|` (0 when both are all zero). Element-wise relative error
/// is meaningless near zero crossings of sums, so errors are measured against the tensor's scale.
pub fn max_rel_err(a: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(a.len(), reference.len(), "max_rel_err: lengths differ");
    let scale = reference.iter().fold(0f64, |m, &x| m.max(x.abs() as f64));
    let diff = a.iter().zip(reference).fold(0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()));
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

/// `len` values from N(0, 1) scaled by `std`.
pub fn randn(rng: &mut Rng, len: usize, std: f32) -> Vec<f32> {
    (0..len).map(|_| rng.normal() * std).collect()
}
