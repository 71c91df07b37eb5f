//! Depthwise convolution (one `k x k` filter per channel, `[c, 1, k, k]` weights) as direct
//! loops over channel planes: the GEMM formulation would multiply a 1-row matrix, so there is
//! nothing for a GEMM to block. Parallel over the `n * c` planes; the weight gradient over `c`.

use std::ops::Range;

use super::conv::valid_range;
use super::Cpu;
use crate::engine::geom::ConvGeom;

/// Calls `f(tap, oy, iy, cols, ix0)` for every tap `ky * k + kx` (taps in order, rows in
/// order) and every output row `oy` whose input row `iy` is inside the image: output columns
/// `cols` read input columns `ix0, ix0 + stride, ...` of that row.
fn for_each_tap_row(g: &ConvGeom, oh: usize, ow: usize, mut f: impl FnMut(usize, usize, usize, Range<usize>, usize)) {
    for ky in 0..g.k {
        let (oy0, oy1) = valid_range(oh, g.stride, ky * g.dil, g.pad, g.h);
        for kx in 0..g.k {
            let (ox0, ox1) = valid_range(ow, g.stride, kx * g.dil, g.pad, g.w);
            if ox0 == ox1 {
                continue;
            }
            let ix0 = ox0 * g.stride + kx * g.dil - g.pad;
            for oy in oy0..oy1 {
                f(ky * g.k + kx, oy, oy * g.stride + ky * g.dil - g.pad, ox0..ox1, ix0);
            }
        }
    }
}

/// `y[n, c] = x[n, c] (*) w[c]`, no bias.
pub(super) fn forward(cpu: &Cpu, x: &[f32], w: &[f32], g: ConvGeom) -> Vec<f32> {
    debug_assert_eq!((g.c_in, x.len(), w.len()), (g.c_out, g.in_len(), g.c_out * g.k * g.k));
    let (oh, ow, hw, kk) = (g.out_h(), g.out_w(), g.h * g.w, g.k * g.k);
    cpu.new_zeroed_rows(g.out_len(), oh * ow, |plane, yp| {
        let c = plane % g.c_in;
        let (xp, wc) = (&x[plane * hw..(plane + 1) * hw], &w[c * kk..(c + 1) * kk]);
        for_each_tap_row(&g, oh, ow, |t, oy, iy, cols, ix0| {
            let (row, yrow) = (&xp[iy * g.w..(iy + 1) * g.w], &mut yp[oy * ow..(oy + 1) * ow]);
            for (j, ox) in cols.enumerate() {
                yrow[ox] += wc[t] * row[ix0 + j * g.stride];
            }
        });
    })
}

/// `dx[n, c] = dy[n, c] (*)^T w[c]`: each output pixel scatters back into its taps.
pub(super) fn backward_data(cpu: &Cpu, dy: &[f32], w: &[f32], g: ConvGeom) -> Vec<f32> {
    debug_assert_eq!((dy.len(), w.len()), (g.out_len(), g.c_out * g.k * g.k));
    let (oh, ow, hw, kk) = (g.out_h(), g.out_w(), g.h * g.w, g.k * g.k);
    cpu.new_zeroed_rows(g.in_len(), hw, |plane, dxp| {
        let c = plane % g.c_in;
        let (dyp, wc) = (&dy[plane * oh * ow..(plane + 1) * oh * ow], &w[c * kk..(c + 1) * kk]);
        for_each_tap_row(&g, oh, ow, |t, oy, iy, cols, ix0| {
            let (dyrow, row) = (&dyp[oy * ow..(oy + 1) * ow], &mut dxp[iy * g.w..(iy + 1) * g.w]);
            for (j, ox) in cols.enumerate() {
                row[ix0 + j * g.stride] += wc[t] * dyrow[ox];
            }
        });
    })
}

/// `dw[c, tap] = sum_n sum_o dy[n, c, o] * x[n, c, o + tap]`: an f32 sum per (sample, tap),
/// those summed in f64 per channel.
pub(super) fn backward_weight(cpu: &Cpu, dy: &[f32], x: &[f32], g: ConvGeom) -> Vec<f32> {
    debug_assert_eq!((dy.len(), x.len()), (g.out_len(), g.in_len()));
    let (oh, ow, hw, kk) = (g.out_h(), g.out_w(), g.h * g.w, g.k * g.k);
    let mut dw = vec![0.0; g.c_out * kk];
    // One row per channel: a few channels' worth of work is always worth the pool.
    let run = |c: usize, dwc: &mut [f32]| {
        let mut acc = vec![0f64; kk];
        let mut sample = vec![0f32; kk];
        for n in 0..g.n {
            let plane = n * g.c_in + c;
            let (xp, dyp) = (&x[plane * hw..(plane + 1) * hw], &dy[plane * oh * ow..(plane + 1) * oh * ow]);
            sample.fill(0.0);
            for_each_tap_row(&g, oh, ow, |t, oy, iy, cols, ix0| {
                let (row, dyrow) = (&xp[iy * g.w..(iy + 1) * g.w], &dyp[oy * ow..(oy + 1) * ow]);
                for (j, ox) in cols.enumerate() {
                    sample[t] += dyrow[ox] * row[ix0 + j * g.stride];
                }
            });
            acc.iter_mut().zip(&sample).for_each(|(a, &s)| *a += s as f64);
        }
        for (d, a) in dwc.iter_mut().zip(acc) {
            *d = a as f32;
        }
    };
    cpu.for_each_row(&mut dw, kk, run);
    dw
}
