//! Batch norm, 3x3 max/avg pooling (padding 1) and global average pooling.

use rayon::prelude::*;

use super::elementwise::{sum, sum_by};
use super::Cpu;
use crate::engine::backend::BnMode;
use crate::engine::geom::{ChanGeom, PoolGeom};

/// Row `s` of channel `c` in `[n, c, hw]`.
fn row(x: &[f32], g: ChanGeom, s: usize, c: usize) -> &[f32] {
    &x[(s * g.c + c) * g.hw..][..g.hw]
}

/// Per channel `(mean, biased variance)` in f64, two passes.
fn channel_stats(cpu: &Cpu, x: &[f32], g: ChanGeom) -> Vec<(f64, f64)> {
    let count = (g.n * g.hw).max(1) as f64;
    cpu.pool.install(|| {
        (0..g.c)
            .into_par_iter()
            .map(|c| {
                let mean = (0..g.n).map(|s| sum(row(x, g, s, c))).sum::<f64>() / count;
                let m = mean as f32;
                let var = (0..g.n).map(|s| sum_by(row(x, g, s, c), |v| (v - m) * (v - m))).sum::<f64>() / count;
                (mean, var)
            })
            .collect()
    })
}

/// Returns `(y, mean, inv_std)`; in training also updates the running statistics.
pub(super) fn batch_norm(
    cpu: &Cpu,
    x: &[f32],
    gamma: Option<&Vec<f32>>,
    beta: Option<&Vec<f32>>,
    mode: BnMode<'_, Cpu>,
    eps: f32,
    g: ChanGeom,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    debug_assert_eq!(x.len(), g.len());
    let (mean, inv_std): (Vec<f32>, Vec<f32>) = match mode {
        BnMode::Train { running_mean, running_var, momentum } => {
            let stats = channel_stats(cpu, x, g);
            let count = g.n * g.hw;
            // PyTorch updates the running variance with the unbiased batch variance.
            let unbias = if count > 1 { count as f64 / (count - 1) as f64 } else { 1.0 };
            for (c, &(mean, var)) in stats.iter().enumerate() {
                running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean as f32;
                running_var[c] = (1.0 - momentum) * running_var[c] + momentum * (var * unbias) as f32;
            }
            stats.iter().map(|&(m, v)| (m as f32, (1.0 / (v + eps as f64).sqrt()) as f32)).unzip()
        }
        BnMode::Eval { running_mean, running_var } => {
            (running_mean.clone(), running_var.iter().map(|&v| 1.0 / (v + eps).sqrt()).collect())
        }
    };
    let mut y = vec![0.0; x.len()];
    cpu.for_rows(&mut y, g.hw, |r, out| {
        let c = r % g.c;
        let s = inv_std[c] * gamma.map_or(1.0, |gm| gm[c]);
        let (m, b) = (mean[c], beta.map_or(0.0, |b| b[c]));
        let x = &x[r * g.hw..][..g.hw];
        out.iter_mut().zip(x).for_each(|(o, &x)| *o = (x - m) * s + b);
    });
    (y, mean, inv_std)
}

/// Returns `(dx, dgamma, dbeta)`; the parameter gradients are present when `gamma` is.
#[allow(clippy::too_many_arguments)]
pub(super) fn batch_norm_bwd(
    cpu: &Cpu,
    x: &[f32],
    dy: &[f32],
    mean: &[f32],
    inv_std: &[f32],
    gamma: Option<&Vec<f32>>,
    train: bool,
    g: ChanGeom,
) -> (Vec<f32>, Option<Vec<f32>>, Option<Vec<f32>>) {
    debug_assert_eq!(x.len(), g.len());
    debug_assert_eq!(dy.len(), g.len());
    // Per channel: sum(dy) and sum(dy * xhat).
    let sums: Vec<(f32, f32)> = cpu.pool.install(|| {
        (0..g.c)
            .into_par_iter()
            .map(|c| {
                let (m, is) = (mean[c], inv_std[c]);
                let mut sdy = 0f64;
                let mut sdyx = 0f64;
                for s in 0..g.n {
                    let (xr, dyr) = (row(x, g, s, c), row(dy, g, s, c));
                    sdy += sum(dyr);
                    sdyx += xr.iter().zip(dyr).map(|(&x, &d)| d * (x - m)).sum::<f32>() as f64;
                }
                (sdy as f32, (sdyx * is as f64) as f32)
            })
            .collect()
    });
    let count = (g.n * g.hw).max(1) as f32;
    let mut dx = vec![0.0; x.len()];
    cpu.for_rows(&mut dx, g.hw, |r, out| {
        let c = r % g.c;
        let (m, is) = (mean[c], inv_std[c]);
        let k = is * gamma.map_or(1.0, |gm| gm[c]);
        let (xr, dyr) = (&x[r * g.hw..][..g.hw], &dy[r * g.hw..][..g.hw]);
        if train {
            let (mdy, mdyx) = (sums[c].0 / count, sums[c].1 / count);
            for ((o, &x), &d) in out.iter_mut().zip(xr).zip(dyr) {
                *o = k * (d - mdy - (x - m) * is * mdyx);
            }
        } else {
            out.iter_mut().zip(dyr).for_each(|(o, &d)| *o = k * d);
        }
    });
    let (dgamma, dbeta) = match gamma {
        Some(_) => (Some(sums.iter().map(|s| s.1).collect()), Some(sums.iter().map(|s| s.0).collect())),
        None => (None, None),
    };
    (dx, dgamma, dbeta)
}

/// The in-bounds input cells `(iy, ix)` of the 3x3 window of output `(oy, ox)`, in row-major
/// window order.
fn window(g: &PoolGeom, oy: usize, ox: usize) -> impl Iterator<Item = (usize, usize)> {
    let (h, w) = (g.h, g.w);
    let (y0, x0) = (oy * g.stride, ox * g.stride);
    (0..PoolGeom::K).flat_map(move |ky| (0..PoolGeom::K).map(move |kx| (y0 + ky, x0 + kx))).filter_map(
        move |(py, px)| {
            let (iy, ix) = (py.checked_sub(PoolGeom::PAD)?, px.checked_sub(PoolGeom::PAD)?);
            (iy < h && ix < w).then_some((iy, ix))
        },
    )
}

/// Index into the plane of the first maximum of the window of `(oy, ox)`.
fn argmax(g: &PoolGeom, plane: &[f32], oy: usize, ox: usize) -> usize {
    let mut best: Option<(usize, f32)> = None;
    for (iy, ix) in window(g, oy, ox) {
        let i = iy * g.w + ix;
        if best.is_none_or(|(_, b)| plane[i] > b) {
            best = Some((i, plane[i]));
        }
    }
    best.map_or(0, |(i, _)| i)
}

/// Runs `f(plane_in, out_plane)` for every `[h, w]` plane, in parallel over planes.
fn per_plane(
    cpu: &Cpu,
    out: &mut [f32],
    out_plane: usize,
    in_plane: usize,
    x: &[f32],
    f: impl Fn(&[f32], &mut [f32]) + Sync + Send,
) {
    cpu.for_rows(out, out_plane, |p, o| f(&x[p * in_plane..][..in_plane], o));
}

pub(super) fn max_pool(cpu: &Cpu, x: &[f32], g: PoolGeom) -> Vec<f32> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut y = vec![0.0; g.out_len()];
    per_plane(cpu, &mut y, oh * ow, g.h * g.w, x, |plane, out| {
        for oy in 0..oh {
            for ox in 0..ow {
                out[oy * ow + ox] = plane[argmax(&g, plane, oy, ox)];
            }
        }
    });
    y
}

pub(super) fn max_pool_bwd(cpu: &Cpu, x: &[f32], dy: &[f32], g: PoolGeom) -> Vec<f32> {
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.h * g.w);
    let mut dx = vec![0.0; g.in_len()];
    cpu.for_rows(&mut dx, hw, |p, dxp| {
        let plane = &x[p * hw..][..hw];
        let dyp = &dy[p * oh * ow..][..oh * ow];
        for oy in 0..oh {
            for ox in 0..ow {
                dxp[argmax(&g, plane, oy, ox)] += dyp[oy * ow + ox];
            }
        }
    });
    dx
}

pub(super) fn avg_pool(cpu: &Cpu, x: &[f32], g: PoolGeom) -> Vec<f32> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut y = vec![0.0; g.out_len()];
    per_plane(cpu, &mut y, oh * ow, g.h * g.w, x, |plane, out| {
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut acc, mut count) = (0.0, 0usize);
                for (iy, ix) in window(&g, oy, ox) {
                    acc += plane[iy * g.w + ix];
                    count += 1;
                }
                out[oy * ow + ox] = acc / count as f32;
            }
        }
    });
    y
}

pub(super) fn avg_pool_bwd(cpu: &Cpu, dy: &[f32], g: PoolGeom) -> Vec<f32> {
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.h * g.w);
    let mut dx = vec![0.0; g.in_len()];
    cpu.for_rows(&mut dx, hw, |p, dxp| {
        let dyp = &dy[p * oh * ow..][..oh * ow];
        for oy in 0..oh {
            for ox in 0..ow {
                let d = dyp[oy * ow + ox] / window(&g, oy, ox).count() as f32;
                for (iy, ix) in window(&g, oy, ox) {
                    dxp[iy * g.w + ix] += d;
                }
            }
        }
    });
    dx
}

/// `[n, c]`: mean over hw.
pub(super) fn global_avg_pool(x: &[f32], g: ChanGeom) -> Vec<f32> {
    debug_assert_eq!(x.len(), g.len());
    x.chunks_exact(g.hw.max(1)).map(|r| (sum(r) / g.hw as f64) as f32).collect()
}

pub(super) fn global_avg_pool_bwd(dy: &[f32], g: ChanGeom) -> Vec<f32> {
    debug_assert_eq!(dy.len(), g.n * g.c);
    let inv = 1.0 / g.hw as f32;
    dy.iter().flat_map(|&d| std::iter::repeat_n(d * inv, g.hw)).collect()
}
