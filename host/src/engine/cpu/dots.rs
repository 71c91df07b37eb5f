//! `C += A B^T` for operands that both run along the reduction (`A` `[m, k]`, `B` `[n, k]`,
//! row-major): tiles of 4 x 4 dot products held in AVX-512 registers, with nothing packed.
//!
//! This is the weight gradient of a convolution, `dW = dy col^T`: `dy` `[c_out, pixels]` and the
//! column matrix `[c_in*k*k, pixels]` both run along the pixels. A general GEMM packs `col^T`
//! first, a strided gather of the whole matrix that costs as much as the product when `c_out` is
//! 16; here each loaded vector of `A` meets 4 of `B` (16 FMAs per 8 loads) and no copy is made.
//! Only for CPUs with AVX-512 ([`available`]); elsewhere the caller keeps its GEMM.

/// Rows of `A` (and of `B`) per tile.
const T: usize = 4;
/// Lanes per accumulator: one AVX-512 vector of f32.
const L: usize = 16;

/// Whether this CPU runs [`gemm_nt`].
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The dot products of 4 rows of `a` with 4 rows of `b`, the first `k` values of each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn tile(a: [&[f32]; T], b: [&[f32]; T], k: usize) -> [[f32; T]; T] {
    use std::arch::x86_64::{__m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_reduce_add_ps, _mm512_setzero_ps};
    assert!(a.iter().chain(&b).all(|r| r.len() >= k), "tile: rows shorter than {k}");
    let mut acc: [[__m512; T]; T] = [[_mm512_setzero_ps(); T]; T];
    let whole = k / L * L;
    for o in (0..whole).step_by(L) {
        // SAFETY: o + L <= whole <= k <= every row's length (asserted above).
        let (av, bv) =
            unsafe { (a.map(|r| _mm512_loadu_ps(r.as_ptr().add(o))), b.map(|r| _mm512_loadu_ps(r.as_ptr().add(o)))) };
        for (acc, &x) in acc.iter_mut().zip(&av) {
            for (s, &y) in acc.iter_mut().zip(&bv) {
                *s = _mm512_fmadd_ps(x, y, *s);
            }
        }
    }
    let mut out = [[0f32; T]; T];
    for i in 0..T {
        for j in 0..T {
            let tail: f32 = a[i][whole..k].iter().zip(&b[j][whole..k]).map(|(x, y)| x * y).sum();
            out[i][j] = _mm512_reduce_add_ps(acc[i][j]) + tail;
        }
    }
    out
}

/// `C[m, n] += A[m, k] B[n, k]^T`, all row-major with leading dimensions `lda`, `ldb`, `ldc`.
/// The caller checks [`available`] first.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_nt(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(available(), "gemm_nt needs AVX-512");
    if m == 0 || n == 0 {
        return;
    }
    // Tiles past an edge repeat the last row and store nothing for it.
    fn row(x: &[f32], ld: usize, i: usize, rows: usize, k: usize) -> &[f32] {
        &x[i.min(rows - 1) * ld..][..k]
    }
    for j0 in (0..n).step_by(T) {
        let bt: [&[f32]; T] = std::array::from_fn(|t| row(b, ldb, j0 + t, n, k));
        for i0 in (0..m).step_by(T) {
            let at: [&[f32]; T] = std::array::from_fn(|t| row(a, lda, i0 + t, m, k));
            #[cfg(target_arch = "x86_64")]
            // SAFETY: available() checked that the CPU has AVX-512F and FMA.
            let d = unsafe { tile(at, bt, k) };
            #[cfg(not(target_arch = "x86_64"))]
            let d = [[0f32; T]; T];
            for (i, d) in d.iter().enumerate().take(m - i0) {
                let out = &mut c[(i0 + i) * ldc + j0..];
                for (o, &v) in out.iter_mut().zip(d).take(n - j0) {
                    *o += v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Against f64 dot products, over edges of every size (m, n not multiples of the tile, k not
    /// a multiple of the lanes) and leading dimensions wider than the rows.
    #[test]
    fn gemm_nt_matches_f64_dots() {
        assert!(available(), "this test needs AVX-512 (the project's machines have it)");
        let mut rng = Rng::new(11);
        let mut worst = 0f64;
        for &(m, n, k) in &[(1, 1, 1), (4, 4, 16), (5, 7, 33), (16, 144, 784), (3, 9, 15), (8, 2, 100)] {
            let (lda, ldb, ldc) = (k + 3, k + 1, n + 2);
            let a: Vec<f32> = (0..m * lda).map(|_| rng.normal()).collect();
            let b: Vec<f32> = (0..n * ldb).map(|_| rng.normal()).collect();
            let c0: Vec<f32> = (0..m * ldc).map(|_| rng.normal()).collect();
            let mut fast = c0.clone();
            gemm_nt(m, n, k, &a, lda, &b, ldb, &mut fast, ldc);
            for i in 0..m {
                for j in 0..n {
                    let want = c0[i * ldc + j] as f64
                        + (0..k).map(|l| a[i * lda + l] as f64 * b[j * ldb + l] as f64).sum::<f64>();
                    let got = fast[i * ldc + j];
                    let err = (got as f64 - want).abs() / (1.0 + want.abs());
                    worst = worst.max(err);
                    assert!(err < 1e-5, "[{m}, {n}, {k}] at ({i}, {j}): {got} vs {want}");
                }
                // The padding columns of C are left alone.
                for j in n..ldc {
                    assert_eq!(fast[i * ldc + j], c0[i * ldc + j]);
                }
            }
        }
        println!("gemm_nt against f64: largest relative difference {worst:.2e}");
    }
}
