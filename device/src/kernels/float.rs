//! Full-precision kernels: stem and skip convs, BN affine, pools, add, GAP, linear.

use super::{valid_range, Shape};
use crate::model::ConvGeom;

/// `out[c, p] = x[c, p] * scale[c] + bias[c]` (BatchNorm in eval mode), CHW.
pub fn affine(x: &[f32], hw: usize, scale: &[f32], bias: &[f32], out: &mut [f32]) {
    let channels = x.chunks_exact(hw).zip(out.chunks_exact_mut(hw)).zip(scale.iter().zip(bias));
    for ((xc, oc), (&s, &b)) in channels {
        for (o, &v) in oc.iter_mut().zip(xc) {
            *o = v * s + b;
        }
    }
}

/// Direct conv. Per output element the sum runs `bias, then c, ky, kx ascending`; padded taps are
/// skipped (zero padding). `weights` is `[c_out, c_in, k, k]`; `out` is `[c_out, oh, ow]`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &[f32],
    xs: Shape,
    g: ConvGeom,
    weights: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
    os: Shape,
) {
    let (k, ihw, ohw) = (g.k, xs.hw(), os.hw());
    for (o, (out_o, w_o)) in out.chunks_exact_mut(ohw).zip(weights.chunks_exact(xs.c * k * k)).enumerate() {
        out_o.fill(bias.and_then(|b| b.get(o)).copied().unwrap_or(0.0));
        // Accumulating whole output planes per (c, ky, kx) keeps, per element, the same order as a
        // naive loop over (c, ky, kx).
        for (x_c, w_c) in x.chunks_exact(ihw).zip(w_o.chunks_exact(k * k)) {
            for (t, &wv) in w_c.iter().enumerate() {
                let off_y = (t / k * g.dil) as isize - g.pad as isize;
                let off_x = (t % k * g.dil) as isize - g.pad as isize;
                let cols = valid_range(os.w, xs.w, g.stride, off_x);
                for oy in valid_range(os.h, xs.h, g.stride, off_y) {
                    let iy = (oy * g.stride) as isize + off_y;
                    let ix0 = ((cols.start * g.stride) as isize + off_x) as usize;
                    let x_row = x_c.get(iy as usize * xs.w..(iy as usize + 1) * xs.w).unwrap_or(&[]);
                    let out_row = out_o.get_mut(oy * os.w + cols.start..oy * os.w + cols.end).unwrap_or(&mut []);
                    for (o_v, &x_v) in out_row.iter_mut().zip(x_row.iter().skip(ix0).step_by(g.stride)) {
                        *o_v += wv * x_v;
                    }
                }
            }
        }
        if relu {
            out_o.iter_mut().for_each(|v| *v = super::relu(*v));
        }
    }
}

/// Visits the valid taps of a 3x3, pad 1 window at output `(oy, ox)`, row-major.
fn pool_taps(xs: Shape, stride: usize, oy: usize, ox: usize, mut visit: impl FnMut(usize)) {
    let (cy, cx) = (oy * stride, ox * stride);
    for iy in cy.saturating_sub(1)..(cy + 2).min(xs.h) {
        for ix in cx.saturating_sub(1)..(cx + 2).min(xs.w) {
            visit(iy * xs.w + ix);
        }
    }
}

/// 3x3 max pool, pad 1: the max over valid taps (`v > m` replaces, so a NaN never wins).
pub fn max_pool(x: &[f32], xs: Shape, stride: usize, out: &mut [f32], os: Shape) {
    for (x_c, o_c) in x.chunks_exact(xs.hw()).zip(out.chunks_exact_mut(os.hw())) {
        for (p, o) in o_c.iter_mut().enumerate() {
            let mut m = f32::NEG_INFINITY;
            pool_taps(xs, stride, p / os.w, p % os.w, |i| {
                let v = x_c.get(i).copied().unwrap_or(f32::NEG_INFINITY);
                if v > m {
                    m = v;
                }
            });
            *o = m;
        }
    }
}

/// 3x3 average pool, pad 1, padded taps not counted: sum of valid taps row-major, divided by their count.
pub fn avg_pool(x: &[f32], xs: Shape, stride: usize, out: &mut [f32], os: Shape) {
    for (x_c, o_c) in x.chunks_exact(xs.hw()).zip(out.chunks_exact_mut(os.hw())) {
        for (p, o) in o_c.iter_mut().enumerate() {
            let (mut sum, mut n) = (0.0f32, 0u32);
            pool_taps(xs, stride, p / os.w, p % os.w, |i| {
                sum += x_c.get(i).copied().unwrap_or(0.0);
                n += 1;
            });
            *o = sum / n.max(1) as f32;
        }
    }
}

/// `out = a + b`.
pub fn add_into(a: &[f32], b: &[f32], out: &mut [f32]) {
    for (o, (&x, &y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x + y;
    }
}

/// `acc = acc + b` (the in-place form of `add` when the output is an input).
pub fn add_assign(acc: &mut [f32], b: &[f32]) {
    for (o, &y) in acc.iter_mut().zip(b) {
        *o += y;
    }
}

/// `out[c] = (sum over the h*w pixels of x[c], in order) / (h*w)`.
pub fn global_avg_pool(x: &[f32], hw: usize, out: &mut [f32]) {
    for (o, x_c) in out.iter_mut().zip(x.chunks_exact(hw)) {
        *o = x_c.iter().fold(0.0f32, |acc, &v| acc + v) / hw as f32;
    }
}

/// `out[j] = (sum_i w[j, i] * x[i], i ascending) + bias[j]`; `weights` is `[classes, n]`.
pub fn linear(x: &[f32], weights: &[f32], bias: &[f32], out: &mut [f32]) {
    for ((o, w_j), &b) in out.iter_mut().zip(weights.chunks_exact(x.len().max(1))).zip(bias) {
        let dot = w_j.iter().zip(x).fold(0.0f32, |acc, (w, v)| acc + w * v);
        *o = dot + b;
    }
}
