//! Depthwise convolution (one `k x k` filter per channel, `[c, 1, k, k]` weights) as direct
//! loops over channel planes: the GEMM formulation would multiply a 1-row matrix, so there is
//! nothing for a GEMM to block. Parallel over the `n * c` planes; the weight gradient over `c`.

use super::Cpu;
use crate::engine::geom::ConvGeom;

/// The output rows `[oy0, oy1)` (or columns) whose tap `t` (of span offset `t * dil`) lands
/// inside an input of extent `len`: `0 <= o * stride + t * dil - pad < len`.
fn valid_range(t: usize, g: &ConvGeom, len: usize, out: usize) -> (usize, usize) {
    let off = (t * g.dil) as isize - g.pad as isize;
    let s = g.stride as isize;
    // Smallest o with o * s + off >= 0, and one past the largest with o * s + off < len.
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
    let hi = if (len as isize) - off <= 0 { 0 } else { ((len as isize) - off + s - 1) / s };
    (lo.clamp(0, out as isize) as usize, hi.clamp(0, out as isize) as usize)
}

/// `y[n, c] = x[n, c] (*) w[c]`, no bias.
pub(super) fn forward(cpu: &Cpu, x: &[f32], w: &[f32], g: ConvGeom) -> Vec<f32> {
    debug_assert_eq!((g.c_in, x.len(), w.len()), (g.c_out, g.in_len(), g.c_out * g.k * g.k));
    let (oh, ow, hw, kk) = (g.out_h(), g.out_w(), g.h * g.w, g.k * g.k);
    let mut y = vec![0.0; g.out_len()];
    cpu.for_rows(&mut y, oh * ow, |plane, yp| {
        let c = plane % g.c_in;
        let (xp, wc) = (&x[plane * hw..(plane + 1) * hw], &w[c * kk..(c + 1) * kk]);
        for ky in 0..g.k {
            let (oy0, oy1) = valid_range(ky, &g, g.h, oh);
            for kx in 0..g.k {
                let (ox0, ox1) = valid_range(kx, &g, g.w, ow);
                let wv = wc[ky * g.k + kx];
                for oy in oy0..oy1 {
                    let iy = oy * g.stride + ky * g.dil - g.pad;
                    let row = &xp[iy * g.w..(iy + 1) * g.w];
                    let yrow = &mut yp[oy * ow..(oy + 1) * ow];
                    for ox in ox0..ox1 {
                        yrow[ox] += wv * row[ox * g.stride + kx * g.dil - g.pad];
                    }
                }
            }
        }
    });
    y
}

/// `dx[n, c] = dy[n, c] (*)^T w[c]`: each output pixel scatters back into its taps.
pub(super) fn backward_data(cpu: &Cpu, dy: &[f32], w: &[f32], g: ConvGeom) -> Vec<f32> {
    debug_assert_eq!((dy.len(), w.len()), (g.out_len(), g.c_out * g.k * g.k));
    let (oh, ow, hw, kk) = (g.out_h(), g.out_w(), g.h * g.w, g.k * g.k);
    let mut dx = vec![0.0; g.in_len()];
    cpu.for_rows(&mut dx, hw, |plane, dxp| {
        let c = plane % g.c_in;
        let (dyp, wc) = (&dy[plane * oh * ow..(plane + 1) * oh * ow], &w[c * kk..(c + 1) * kk]);
        for ky in 0..g.k {
            let (oy0, oy1) = valid_range(ky, &g, g.h, oh);
            for kx in 0..g.k {
                let (ox0, ox1) = valid_range(kx, &g, g.w, ow);
                let wv = wc[ky * g.k + kx];
                for oy in oy0..oy1 {
                    let iy = oy * g.stride + ky * g.dil - g.pad;
                    let dyrow = &dyp[oy * ow..(oy + 1) * ow];
                    let row = &mut dxp[iy * g.w..(iy + 1) * g.w];
                    for ox in ox0..ox1 {
                        row[ox * g.stride + kx * g.dil - g.pad] += wv * dyrow[ox];
                    }
                }
            }
        }
    });
    dx
}

/// `dw[c, tap] = sum_n sum_o dy[n, c, o] * x[n, c, o + tap]`, summed in f64 per channel.
pub(super) fn backward_weight(cpu: &Cpu, dy: &[f32], x: &[f32], g: ConvGeom) -> Vec<f32> {
    debug_assert_eq!((dy.len(), x.len()), (g.out_len(), g.in_len()));
    let (oh, ow, hw, kk) = (g.out_h(), g.out_w(), g.h * g.w, g.k * g.k);
    let mut dw = vec![0.0; g.c_out * kk];
    // One row per channel: a few channels' worth of work is always worth the pool.
    let run = |c: usize, dwc: &mut [f32]| {
        let mut acc = vec![0f64; kk];
        for n in 0..g.n {
            let plane = n * g.c_in + c;
            let (xp, dyp) = (&x[plane * hw..(plane + 1) * hw], &dy[plane * oh * ow..(plane + 1) * oh * ow]);
            for ky in 0..g.k {
                let (oy0, oy1) = valid_range(ky, &g, g.h, oh);
                for kx in 0..g.k {
                    let (ox0, ox1) = valid_range(kx, &g, g.w, ow);
                    let mut s = 0f32;
                    for oy in oy0..oy1 {
                        let iy = oy * g.stride + ky * g.dil - g.pad;
                        let (row, dyrow) = (&xp[iy * g.w..(iy + 1) * g.w], &dyp[oy * ow..(oy + 1) * ow]);
                        for ox in ox0..ox1 {
                            s += dyrow[ox] * row[ox * g.stride + kx * g.dil - g.pad];
                        }
                    }
                    acc[ky * g.k + kx] += s as f64;
                }
            }
        }
        for (d, a) in dwc.iter_mut().zip(acc) {
            *d = a as f32;
        }
    };
    cpu.for_each_row(&mut dw, kk, run);
    dw
}
