//! Matrix product, row bias, column sums, and the XNOR binarization of weights.

use rayon::prelude::*;

use super::gemm::{gemm, Mat};
use super::Cpu;
use crate::engine::geom::MatGeom;

/// Products smaller than this many multiply-accumulates run on the calling thread.
const PAR_MIN_MACS: usize = 1 << 20;

/// `C = op(A) op(B)`, `[m, n]`; large products are split by rows of C across the threads.
pub(super) fn matmul(cpu: &Cpu, a: &[f32], b: &[f32], g: MatGeom) -> Vec<f32> {
    let MatGeom { m, k, n, trans_a, trans_b } = g;
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(b.len(), k * n);
    // op(A)[i, l]: A is [m, k] (row-major, ld k) or, transposed, [k, m] (ld m).
    let a_view = |row0: usize| if trans_a { Mat::cols(&a[row0..], m) } else { Mat::rows(&a[row0 * k..], k) };
    let bm = if trans_b { Mat::cols(b, k) } else { Mat::rows(b, n) };
    let mut c = vec![0.0; m * n];
    if n == 0 {
        return c;
    }
    if m * k * n < PAR_MIN_MACS || cpu.threads() == 1 || m < 2 * cpu.threads() {
        gemm(m, k, n, a_view(0), bm, 0.0, &mut c, n);
        return c;
    }
    let rows_per_task = m.div_ceil(cpu.threads());
    cpu.pool.install(|| {
        c.par_chunks_mut(rows_per_task * n).enumerate().for_each(|(t, c_rows)| {
            let rows = c_rows.len() / n;
            gemm(rows, k, n, a_view(t * rows_per_task), bm, 0.0, c_rows, n);
        })
    });
    c
}

pub(super) fn add_row_bias(x: &[f32], b: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    debug_assert_eq!(x.len(), rows * cols);
    let mut y = x.to_vec();
    if cols > 0 {
        for row in y.chunks_exact_mut(cols) {
            row.iter_mut().zip(b).for_each(|(v, &b)| *v += b);
        }
    }
    y
}

/// `[cols]`: column sums of `[rows, cols]`.
pub(super) fn sum_rows(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    debug_assert_eq!(x.len(), rows * cols);
    let mut acc = vec![0f64; cols];
    if cols > 0 {
        for row in x.chunks_exact(cols) {
            acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
        }
    }
    acc.into_iter().map(|v| v as f32).collect()
}

/// `(centered, sign, beta)` of latent weights `[c_out, c_in, kk]` (bnas-method.md,
/// "Binarization"): subtract the mean over input channels at each (filter, tap), clamp to
/// [-1, 1]; `beta[o] = mean |centered|` over the filter's `c_in * kk` values.
pub(super) fn binarize_weights(w: &[f32], c_out: usize, c_in: usize, kk: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    debug_assert_eq!(w.len(), c_out * c_in * kk);
    let filter = c_in * kk;
    let mut centered = w.to_vec();
    let mut beta = vec![0.0; c_out];
    if filter == 0 {
        return (centered, vec![], beta);
    }
    for (f, b) in centered.chunks_exact_mut(filter).zip(&mut beta) {
        for t in 0..kk {
            let mean = if c_in == 1 { 0.0 } else { (0..c_in).map(|i| f[i * kk + t] as f64).sum::<f64>() / c_in as f64 };
            for i in 0..c_in {
                f[i * kk + t] = (f[i * kk + t] - mean as f32).clamp(-1.0, 1.0);
            }
        }
        *b = (f.iter().map(|v| v.abs() as f64).sum::<f64>() / filter as f64) as f32;
    }
    let sign = centered.iter().map(|&v| if v >= 0.0 { 1.0 } else { -1.0 }).collect();
    (centered, sign, beta)
}

/// The `(1 - 1/c_in)` of the weight gradient: the derivative of the centring over input
/// channels. A depthwise filter (`c_in == 1`) has no channel axis to centre over (centring
/// would zero it), so it is only clamped and its factor is 1.
pub(crate) fn centring_factor(c_in: usize) -> f32 {
    if c_in == 1 {
        1.0
    } else {
        1.0 - 1.0 / c_in as f32
    }
}

/// The reference's latent-weight gradient (see `Backend::binarize_weights_bwd`):
/// `dW = (beta * 1{|W| <= 1} * g + sign(W) * mean_filter(sign(W) * g)) * (1 - 1/c_in) * n`.
/// The factor `n = c_in * kk` is the reference's: it scales the binary weights' effective
/// learning rate, and the method keeps it.
pub(super) fn binarize_weights_bwd(
    centered: &[f32],
    beta: &[f32],
    g: &[f32],
    c_out: usize,
    c_in: usize,
    kk: usize,
) -> Vec<f32> {
    debug_assert_eq!(centered.len(), c_out * c_in * kk);
    debug_assert_eq!(g.len(), centered.len());
    let n = c_in * kk;
    let mut dw = vec![0.0; centered.len()];
    if n == 0 {
        return dw;
    }
    let factor = centring_factor(c_in) * n as f32;
    let sgn = |v: f32| if v >= 0.0 { 1.0f32 } else { -1.0 };
    for (o, (dwf, (wf, gf))) in dw.chunks_exact_mut(n).zip(centered.chunks_exact(n).zip(g.chunks_exact(n))).enumerate()
    {
        let mean_sg = (wf.iter().zip(gf).map(|(&w, &g)| (sgn(w) * g) as f64).sum::<f64>() / n as f64) as f32;
        for ((d, &w), &g) in dwf.iter_mut().zip(wf).zip(gf) {
            let pass = if w.abs() <= 1.0 { beta[o] * g } else { 0.0 };
            *d = (pass + sgn(w) * mean_sg) * factor;
        }
    }
    dw
}
