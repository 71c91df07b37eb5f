//! Element-wise ops, per-channel scaling, reductions, mixed-op sums and channel concat.

use rayon::prelude::*;

use super::{Cpu, PAR_CHUNK, PAR_MIN_LEN};
use crate::engine::geom::ChanGeom;

/// `[f(a_i)]`, computed by the pool's threads straight into the new buffer when it is large.
fn map1(cpu: &Cpu, a: &[f32], f: impl Fn(f32) -> f32 + Sync + Send) -> Vec<f32> {
    if a.len() < PAR_MIN_LEN || cpu.threads == 1 {
        return a.iter().map(|&a| f(a)).collect();
    }
    let mut out = Vec::with_capacity(a.len());
    cpu.pool.install(|| out.par_extend(a.par_iter().with_min_len(PAR_CHUNK).map(|&a| f(a))));
    out
}

/// `[f(a_i, b_i)]`, as [`map1`].
fn map2(cpu: &Cpu, a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync + Send) -> Vec<f32> {
    debug_assert_eq!(a.len(), b.len());
    if a.len() < PAR_MIN_LEN || cpu.threads == 1 {
        return a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect();
    }
    let mut out = Vec::with_capacity(a.len());
    cpu.pool.install(|| out.par_extend(a.par_iter().zip(b).with_min_len(PAR_CHUNK).map(|(&a, &b)| f(a, b))));
    out
}

pub(super) fn add(cpu: &Cpu, a: &[f32], b: &[f32]) -> Vec<f32> {
    map2(cpu, a, b, |a, b| a + b)
}

pub(super) fn axpy(cpu: &Cpu, y: &mut [f32], alpha: f32, x: &[f32]) {
    debug_assert_eq!(y.len(), x.len());
    cpu.for_chunks(y, |off, y| {
        let x = &x[off..off + y.len()];
        y.iter_mut().zip(x).for_each(|(y, &x)| *y += alpha * x)
    });
}

pub(super) fn scale(cpu: &Cpu, x: &[f32], alpha: f32) -> Vec<f32> {
    map1(cpu, x, |x| alpha * x)
}

pub(super) fn relu(cpu: &Cpu, x: &[f32]) -> Vec<f32> {
    map1(cpu, x, |x| x.max(0.0))
}

pub(super) fn relu_bwd(cpu: &Cpu, y: &[f32], dy: &[f32]) -> Vec<f32> {
    map2(cpu, y, dy, |y, dy| if y > 0.0 { dy } else { 0.0 })
}

/// `+1` for `x >= 0` (also `-0.0`), `-1` otherwise (NaN maps to -1).
pub(super) fn sign(cpu: &Cpu, x: &[f32]) -> Vec<f32> {
    map1(cpu, x, |x| if x >= 0.0 { 1.0 } else { -1.0 })
}

pub(super) fn sign_ste_bwd(cpu: &Cpu, x: &[f32], dy: &[f32]) -> Vec<f32> {
    map2(cpu, x, dy, |x, dy| if x.abs() < 1.0 { dy } else { 0.0 })
}

/// A copy of `x` `[n, c, hw]` with `f(index(r), row)` applied to every `hw`-long row `r`.
fn per_row(
    cpu: &Cpu,
    x: &[f32],
    hw: usize,
    index: impl Fn(usize) -> usize + Sync + Send,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    let mut y = cpu.copied(x);
    cpu.for_rows(&mut y, hw, |r, row| f(index(r), row));
    y
}

pub(super) fn channel_affine(cpu: &Cpu, x: &[f32], s: &[f32], b: Option<&[f32]>, g: ChanGeom) -> Vec<f32> {
    debug_assert_eq!(x.len(), g.len());
    per_row(
        cpu,
        x,
        g.hw,
        |r| r % g.c,
        |c, row| {
            let (s, b) = (s[c], b.map_or(0.0, |b| b[c]));
            row.iter_mut().for_each(|v| *v = *v * s + b);
        },
    )
}

pub(super) fn sample_scale(cpu: &Cpu, x: &[f32], s: &[f32], g: ChanGeom) -> Vec<f32> {
    debug_assert_eq!(x.len(), g.len());
    per_row(
        cpu,
        x,
        g.hw,
        |r| r / g.c,
        |n, row| {
            let s = s[n];
            row.iter_mut().for_each(|v| *v *= s);
        },
    )
}

/// Sum of a slice, with eight f32 lanes per block and f64 across blocks (accurate to ~1e-7
/// relative on the buffers the engine sees, and vectorizable).
pub(super) fn sum(x: &[f32]) -> f64 {
    dot_with(x, x, |a, _| a)
}

fn dot_with(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    const BLOCK: usize = 512;
    let mut total = 0f64;
    for (a, b) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        let mut lanes = [0f32; 8];
        let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (a8.remainder(), b8.remainder());
        for (a, b) in a8.zip(b8) {
            for l in 0..8 {
                lanes[l] += f(a[l], b[l]);
            }
        }
        let tail: f32 = ra.iter().zip(rb).map(|(&a, &b)| f(a, b)).sum();
        total += lanes.iter().map(|&v| v as f64).sum::<f64>() + tail as f64;
    }
    total
}

/// `sum_i a[i] * b[i]` accumulated as in `sum`, parallel over large buffers.
pub(super) fn dot(cpu: &Cpu, a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    if a.len() < PAR_MIN_LEN || cpu.threads == 1 {
        return dot_with(a, b, |a, b| a * b);
    }
    cpu.pool.install(|| {
        a.par_chunks(PAR_CHUNK).zip(b.par_chunks(PAR_CHUNK)).map(|(a, b)| dot_with(a, b, |a, b| a * b)).sum()
    })
}

/// `[c]`: sum over n and hw.
pub(super) fn channel_sum(x: &[f32], g: ChanGeom) -> Vec<f32> {
    debug_assert_eq!(x.len(), g.len());
    let mut acc = vec![0f64; g.c];
    if g.hw > 0 {
        for (r, row) in x.chunks_exact(g.hw).enumerate() {
            acc[r % g.c] += sum(row);
        }
    }
    acc.into_iter().map(|v| v as f32).collect()
}

pub(super) fn weighted_sum(cpu: &Cpu, xs: &[&Vec<f32>], w: &[f32]) -> Vec<f32> {
    debug_assert_eq!(xs.len(), w.len());
    let len = xs.first().map_or(0, |x| x.len());
    cpu.fill(len, |off, out| {
        for (x, &wj) in xs.iter().zip(w) {
            let x = &x[off..off + out.len()];
            out.iter_mut().zip(x).for_each(|(o, &x)| *o += wj * x);
        }
    })
}

/// `[n, sum c_j, hw]` from `[n, c_j, hw]` tensors.
pub(super) fn concat_channels(cpu: &Cpu, xs: &[&Vec<f32>], chans: &[usize], n: usize, hw: usize) -> Vec<f32> {
    let total: usize = chans.iter().sum();
    // Each sample's output plane `j` is plane `planes[j].2` of `planes[j].0`, which has
    // `planes[j].1` channels.
    let planes: Vec<(&[f32], usize, usize)> =
        xs.iter().zip(chans).flat_map(|(x, &c)| (0..c).map(move |j| (x.as_slice(), c, j))).collect();
    cpu.new_rows(n * total * hw, hw, |r| {
        let (s, (x, c, j)) = (r / total, planes[r % total]);
        x[(s * c + j) * hw..][..hw].iter().copied()
    })
}

/// Channels `[offset, offset + c)` of `[n, c_total, hw]`.
pub(super) fn slice_channels(
    cpu: &Cpu,
    x: &[f32],
    n: usize,
    c_total: usize,
    hw: usize,
    offset: usize,
    c: usize,
) -> Vec<f32> {
    cpu.new_rows(n * c * hw, c * hw, |s| x[(s * c_total + offset) * hw..][..c * hw].iter().copied())
}

/// `acc[:, offset..offset + c] += x` (see `Backend::add_channels`).
pub(super) fn add_channels(acc: &mut [f32], x: &[f32], n: usize, c_total: usize, hw: usize, offset: usize, c: usize) {
    for s in 0..n {
        let dst = &mut acc[(s * c_total + offset) * hw..][..c * hw];
        for (d, v) in dst.iter_mut().zip(&x[s * c * hw..(s + 1) * c * hw]) {
            *d += v;
        }
    }
}
