//! Batch norm, 3x3 max/avg pooling (padding 1) and global average pooling.

use rayon::prelude::*;

use super::elementwise::sum;
#[cfg(target_arch = "x86_64")]
use super::wide;
use super::Cpu;
use crate::engine::backend::BnMode;
use crate::engine::geom::{ChanGeom, PoolGeom};

/// Row `s` of channel `c` in `[n, c, hw]`.
fn row(x: &[f32], g: ChanGeom, s: usize, c: usize) -> &[f32] {
    &x[(s * g.c + c) * g.hw..][..g.hw]
}

/// Lanes of [`lane_sum`].
const L: usize = 16;

/// `sum_i f(x, y)[i]` over two rows of equal length, `f` mapping sixteen values of each at a
/// time: sixteen f32 lanes (four independent vector adds on the x86-64-v2 baseline, where one
/// running sum would wait on each add), then f64. `f` works on whole blocks so that the compiler
/// vectorizes it; a per-value `f`, or two sums in one loop, came out as scalar code. The tail
/// goes through `f` as one zero-padded block, and only its own values are summed. Rows here are
/// at most a few thousand values, so each lane sums few.
#[inline(always)]
fn lane_sum(x: &[f32], y: &[f32], f: impl Fn(&[f32; L], &[f32; L]) -> [f32; L]) -> f64 {
    debug_assert_eq!(x.len(), y.len());
    let mut lanes = [0f32; L];
    let ((x16, x_tail), (y16, y_tail)) = (x.as_chunks::<L>(), y.as_chunks::<L>());
    for (x, y) in x16.iter().zip(y16) {
        let v = f(x, y);
        for l in 0..L {
            lanes[l] += v[l];
        }
    }
    let mut sum = lanes.iter().map(|&v| v as f64).sum::<f64>();
    let n = x_tail.len().min(y_tail.len());
    if n > 0 {
        let pad = |t: &[f32]| core::array::from_fn(|l| t.get(l).copied().unwrap_or(0.0));
        for &v in &f(&pad(x_tail), &pad(y_tail))[..n] {
            sum += v as f64;
        }
    }
    sum
}

/// `[f(x_l, y_l)]` over a block of lanes (a plain loop: `array::from_fn` stays scalar).
#[inline(always)]
fn each(x: &[f32; L], y: &[f32; L], f: impl Fn(f32, f32) -> f32) -> [f32; L] {
    let mut out = [0f32; L];
    for l in 0..L {
        out[l] = f(x[l], y[l]);
    }
    out
}

/// Per channel `(mean, biased variance)` in f64, two passes.
fn channel_stats(cpu: &Cpu, x: &[f32], g: ChanGeom) -> Vec<(f64, f64)> {
    let count = (g.n * g.hw).max(1) as f64;
    cpu.pool.install(|| {
        (0..g.c)
            .into_par_iter()
            .map(|c| {
                let rows = || (0..g.n).map(|s| row(x, g, s, c));
                let mean = rows().map(|r| lane_sum(r, r, |v, _| *v)).sum::<f64>() / count;
                let m = mean as f32;
                let var =
                    rows().map(|r| lane_sum(r, r, |v, _| each(v, v, |v, _| (v - m) * (v - m)))).sum::<f64>() / count;
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
    let y = cpu.new_rows(x.len(), g.hw, |r| {
        let c = r % g.c;
        let s = scale(&inv_std, gamma, c);
        let (m, b) = (mean[c], beta.map_or(0.0, |b| b[c]));
        x[r * g.hw..][..g.hw].iter().map(move |&x| (x - m) * s + b)
    });
    (y, mean, inv_std)
}

/// Channel `c`'s factor `inv_std * gamma` (gamma 1 when absent): one expression for the forward,
/// the backward, and the backward's recomputed output, which must equal the forward's bit for bit.
fn scale(inv_std: &[f32], gamma: Option<&Vec<f32>>, c: usize) -> f32 {
    inv_std[c] * gamma.map_or(1.0, |gm| gm[c])
}

/// What the incoming gradient of [`batch_norm_bwd`] is the gradient of.
#[derive(Clone, Copy)]
pub(super) enum Incoming<'a> {
    /// The batch norm's output.
    Output,
    /// The sign of the output `y = (x - mean) * inv_std * gamma + beta` (`beta` 0 when absent):
    /// each value passes through the clipped straight-through estimator (`dy` where `|y| < 1`,
    /// else 0), `y` recomputed from `x` as [`batch_norm`] computes it, so the same bits as
    /// `sign_ste_bwd` then this, without that pass's read of `y` and write of its result.
    Sign { beta: Option<&'a Vec<f32>> },
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
    incoming: Incoming<'_>,
    train: bool,
    g: ChanGeom,
) -> (Vec<f32>, Option<Vec<f32>>, Option<Vec<f32>>) {
    match incoming {
        Incoming::Output => bwd(cpu, x, dy, mean, inv_std, gamma, train, g, |_| |_: f32, d: f32| d),
        Incoming::Sign { beta } => bwd(cpu, x, dy, mean, inv_std, gamma, train, g, |c| {
            let (m, s, b) = (mean[c], scale(inv_std, gamma, c), beta.map_or(0.0, |b| b[c]));
            move |x: f32, d: f32| if ((x - m) * s + b).abs() < 1.0 { d } else { 0.0 }
        }),
    }
}

/// [`batch_norm_bwd`] with `through(c)` mapping channel `c`'s `(x, dy)` to the gradient at the
/// batch norm's output.
#[allow(clippy::too_many_arguments)]
fn bwd<P: Fn(f32, f32) -> f32 + Copy + Send + Sync>(
    cpu: &Cpu,
    x: &[f32],
    dy: &[f32],
    mean: &[f32],
    inv_std: &[f32],
    gamma: Option<&Vec<f32>>,
    train: bool,
    g: ChanGeom,
    through: impl Fn(usize) -> P + Sync + Send,
) -> (Vec<f32>, Option<Vec<f32>>, Option<Vec<f32>>) {
    debug_assert_eq!(x.len(), g.len());
    debug_assert_eq!(dy.len(), g.len());
    // Per channel: sum(dy) and sum(dy * xhat).
    #[cfg(target_arch = "x86_64")]
    let wide = wide();
    let sums: Vec<(f32, f32)> = cpu.pool.install(|| {
        (0..g.c)
            .into_par_iter()
            .map(|c| {
                let (m, is, through) = (mean[c], inv_std[c], through(c));
                #[cfg(target_arch = "x86_64")]
                if wide {
                    // SAFETY: this CPU has AVX-512 F (`wide`).
                    return unsafe { bwd_sums_avx512(x, dy, g, c, m, is, through) };
                }
                bwd_sums(x, dy, g, c, m, is, through)
            })
            .collect()
    });
    let count = (g.n * g.hw).max(1) as f32;
    let k = |c: usize| scale(inv_std, gamma, c);
    let dx = if train {
        cpu.new_rows(x.len(), g.hw, |r| {
            let c = r % g.c;
            let (m, is, k, through) = (mean[c], inv_std[c], k(c), through(c));
            let (mdy, mdyx) = (sums[c].0 / count, sums[c].1 / count);
            let (xr, dyr) = (&x[r * g.hw..][..g.hw], &dy[r * g.hw..][..g.hw]);
            xr.iter().zip(dyr).map(move |(&x, &d)| k * (through(x, d) - mdy - (x - m) * is * mdyx))
        })
    } else {
        cpu.new_rows(x.len(), g.hw, |r| {
            let (k, through) = (k(r % g.c), through(r % g.c));
            x[r * g.hw..][..g.hw].iter().zip(&dy[r * g.hw..][..g.hw]).map(move |(&x, &d)| k * through(x, d))
        })
    };
    let (dgamma, dbeta) = match gamma {
        Some(_) => (Some(sums.iter().map(|s| s.1).collect()), Some(sums.iter().map(|s| s.0).collect())),
        None => (None, None),
    };
    (dx, dgamma, dbeta)
}

/// Channel `c`'s `(sum(dy), sum(dy * xhat))` for [`bwd`], `dy` taken `through` the op after the
/// batch norm.
#[inline(always)]
fn bwd_sums(
    x: &[f32],
    dy: &[f32],
    g: ChanGeom,
    c: usize,
    m: f32,
    is: f32,
    through: impl Fn(f32, f32) -> f32 + Copy,
) -> (f32, f32) {
    let (mut sdy, mut sdyx) = (0f64, 0f64);
    for s in 0..g.n {
        // Two passes over the row (the second from L1): see `lane_sum`.
        let (x, dy) = (row(x, g, s, c), row(dy, g, s, c));
        sdy += lane_sum(x, dy, |x, d| each(x, d, through));
        sdyx += lane_sum(x, dy, |x, d| each(x, d, |x, d| through(x, d) * (x - m)));
    }
    (sdy as f32, (sdyx * is as f64) as f32)
}

/// [`bwd_sums`] compiled for AVX-512 F (see `wide`). With the output pass's loop likewise (in
/// `new_rows`), batch norm's backward inside bnas-imagenet's training step went from 0.94-0.99
/// to 0.79-0.86 ms a call (Intel Xeon).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn bwd_sums_avx512(
    x: &[f32],
    dy: &[f32],
    g: ChanGeom,
    c: usize,
    m: f32,
    is: f32,
    through: impl Fn(f32, f32) -> f32 + Copy,
) -> (f32, f32) {
    bwd_sums(x, dy, g, c, m, is, through)
}

/// The in-bounds input range `[lo, hi)` along one axis of the 3x3, padding-1 window of
/// output position `o`.
#[inline]
fn window_range(o: usize, stride: usize, len: usize) -> (usize, usize) {
    let start = o * stride;
    (start.saturating_sub(PoolGeom::PAD), (start + PoolGeom::K - PoolGeom::PAD).min(len))
}

/// Separable 3x3 window reduction of one plane: `reduce` across each row's window into
/// `rows` (`[h, ow]`), then down each column's window into `out`; `finish(value, cells)`
/// turns the reduction and the number of in-bounds cells into the output.
fn pool_plane(
    g: &PoolGeom,
    plane: &[f32],
    out: &mut [f32],
    rows: &mut [f32],
    reduce: impl Fn(f32, f32) -> f32 + Copy,
    finish: impl Fn(f32, usize) -> f32,
) {
    let (oh, ow) = (g.out_h(), g.out_w());
    for (row_in, row_out) in plane.chunks_exact(g.w).zip(rows.chunks_exact_mut(ow)) {
        if g.stride == 1 && g.w >= 3 {
            // Interior windows as three shifted slices (vectorizes); the two edges below.
            let (l, c, r) = (&row_in[..g.w - 2], &row_in[1..g.w - 1], &row_in[2..]);
            for (((o, &l), &c), &r) in row_out[1..g.w - 1].iter_mut().zip(l).zip(c).zip(r) {
                *o = reduce(reduce(l, c), r);
            }
            row_out[0] = reduce(row_in[0], row_in[1]);
            row_out[g.w - 1] = reduce(row_in[g.w - 2], row_in[g.w - 1]);
            continue;
        }
        for (ox, v) in row_out.iter_mut().enumerate() {
            let (x0, x1) = window_range(ox, g.stride, g.w);
            *v = row_in[x0 + 1..x1].iter().fold(row_in[x0], |a, &b| reduce(a, b));
        }
    }
    for oy in 0..oh {
        let (y0, y1) = window_range(oy, g.stride, g.h);
        let out_row = &mut out[oy * ow..(oy + 1) * ow];
        out_row.copy_from_slice(&rows[y0 * ow..(y0 + 1) * ow]);
        for iy in y0 + 1..y1 {
            out_row.iter_mut().zip(&rows[iy * ow..(iy + 1) * ow]).for_each(|(o, &v)| *o = reduce(*o, v));
        }
        for (ox, o) in out_row.iter_mut().enumerate() {
            let x_cells = if ox == 0 || ox + 1 == ow { window_range(ox, g.stride, g.w) } else { (0, 3) };
            *o = finish(*o, (y1 - y0) * (x_cells.1 - x_cells.0));
        }
    }
}

fn pool(
    cpu: &Cpu,
    x: &[f32],
    g: PoolGeom,
    reduce: impl Fn(f32, f32) -> f32 + Copy + Sync + Send,
    finish: impl Fn(f32, usize) -> f32 + Copy + Sync + Send,
) -> Vec<f32> {
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.h * g.w);
    cpu.new_zeroed_rows(g.out_len(), oh * ow, |p, out| {
        let mut rows = vec![0.0; g.h * ow];
        pool_plane(&g, &x[p * hw..][..hw], out, &mut rows, reduce, finish);
    })
}

pub(super) fn max_pool(cpu: &Cpu, x: &[f32], g: PoolGeom) -> Vec<f32> {
    pool(cpu, x, g, f32::max, |v, _| v)
}

/// The gradient of `max_pool`: each output's `dy` goes to the first maximum of its window in
/// row-major order (a later value replaces the running maximum only if strictly greater, so a
/// NaN never does). Separable: the first maximum of each row's window, then of the (up to 3)
/// rows in order (so a NaN first in a row's window hides that row's later values); selects
/// instead of branches, which mispredict constantly on real data.
pub(super) fn max_pool_bwd(cpu: &Cpu, x: &[f32], dy: &[f32], g: PoolGeom) -> Vec<f32> {
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.h * g.w);
    cpu.new_zeroed_rows(g.in_len(), hw, |p, dxp| {
        let plane = &x[p * hw..][..hw];
        let dyp = &dy[p * oh * ow..][..oh * ow];
        // Per input row and output column: the max value and its index in the plane.
        let mut row_max = vec![0f32; g.h * ow];
        let mut row_arg = vec![0u32; g.h * ow];
        for iy in 0..g.h {
            let (bv, bi) = (&mut row_max[iy * ow..][..ow], &mut row_arg[iy * ow..][..ow]);
            row_first_max(&plane[iy * g.w..][..g.w], (iy * g.w) as u32, g.stride, bv, bi);
        }
        let (mut bv, mut bi) = (vec![0f32; ow], vec![0u32; ow]);
        for oy in 0..oh {
            let (y0, y1) = window_range(oy, g.stride, g.h);
            bv.copy_from_slice(&row_max[y0 * ow..][..ow]);
            bi.copy_from_slice(&row_arg[y0 * ow..][..ow]);
            // Down the window's rows, all output columns at once (the loop vectorizes).
            for iy in y0 + 1..y1 {
                let (rv, ri) = (&row_max[iy * ow..][..ow], &row_arg[iy * ow..][..ow]);
                for (((v, i), &r), &a) in bv.iter_mut().zip(bi.iter_mut()).zip(rv).zip(ri) {
                    (*v, *i) = take_if_greater((*v, *i), (r, a));
                }
            }
            for (&i, &d) in bi.iter().zip(&dyp[oy * ow..][..ow]) {
                dxp[i as usize] += d;
            }
        }
    })
}

/// Per output column of one input row: the first maximum of its window (`bv`) and its index,
/// `base` plus its column (`bi`). At stride 1 the columns whose window lies inside the row take
/// a loop that vectorizes.
fn row_first_max(row: &[f32], base: u32, stride: usize, bv: &mut [f32], bi: &mut [u32]) {
    let w = row.len();
    let first_max = |ox: usize| {
        let (x0, x1) = window_range(ox, stride, w);
        let at = |k: usize| (row[k], base + k as u32);
        (x0 + 1..x1).fold(at(x0), |best, k| take_if_greater(best, at(k)))
    };
    if stride != 1 || w < 3 {
        for (ox, (v, i)) in bv.iter_mut().zip(bi.iter_mut()).enumerate() {
            (*v, *i) = first_max(ox);
        }
        return;
    }
    (bv[0], bi[0]) = first_max(0);
    (bv[w - 1], bi[w - 1]) = first_max(w - 1);
    let (a, b, c) = (&row[..w - 2], &row[1..w - 1], &row[2..]);
    let outs = bv[1..w - 1].iter_mut().zip(&mut bi[1..w - 1]);
    for (k, ((v, i), ((&a, &b), &c))) in outs.zip(a.iter().zip(b).zip(c)).enumerate() {
        let k = base + k as u32;
        (*v, *i) = take_if_greater(take_if_greater((a, k), (b, k + 1)), (c, k + 2));
    }
}

/// `new` where its value is strictly greater than `best`'s, else `best`: selected with bit masks,
/// which the compiler vectorizes (it turns the plain `if` into branches).
#[inline(always)]
fn take_if_greater(best: (f32, u32), new: (f32, u32)) -> (f32, u32) {
    let keep = 0u32.wrapping_sub((new.0 > best.0) as u32);
    let value = (new.0.to_bits() & keep) | (best.0.to_bits() & !keep);
    (f32::from_bits(value), (new.1 & keep) | (best.1 & !keep))
}

pub(super) fn avg_pool(cpu: &Cpu, x: &[f32], g: PoolGeom) -> Vec<f32> {
    pool(cpu, x, g, |a, b| a + b, |v, cells| v / cells as f32)
}

pub(super) fn avg_pool_bwd(cpu: &Cpu, dy: &[f32], g: PoolGeom) -> Vec<f32> {
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.h * g.w);
    if g.stride == 1 {
        // With stride 1 and same-size output, "window of o contains i" is symmetric, so the
        // adjoint is a sum pool of dy / cells.
        let cells = pool(cpu, &vec![1.0; hw], PoolGeom { n: 1, c: 1, ..g }, |a, b| a + b, |v, _| v);
        return cpu.new_zeroed_rows(g.in_len(), hw, |p, dxp| {
            let scaled: Vec<f32> = dy[p * hw..][..hw].iter().zip(&cells).map(|(&d, &c)| d / c).collect();
            let mut rows = vec![0.0; hw];
            pool_plane(&g, &scaled, dxp, &mut rows, |a, b| a + b, |v, _| v);
        });
    }
    cpu.new_zeroed_rows(g.in_len(), hw, |p, dxp| {
        let dyp = &dy[p * oh * ow..][..oh * ow];
        for oy in 0..oh {
            let (y0, y1) = window_range(oy, g.stride, g.h);
            for ox in 0..ow {
                let (x0, x1) = window_range(ox, g.stride, g.w);
                let d = dyp[oy * ow + ox] / ((y1 - y0) * (x1 - x0)) as f32;
                for iy in y0..y1 {
                    dxp[iy * g.w + x0..iy * g.w + x1].iter_mut().for_each(|v| *v += d);
                }
            }
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Batch norm's backward sums compiled for AVX-512 equal the baseline build's bit for bit
    /// (rows of every tail length, both `through`s), so that a CPU's vector width never changes
    /// training's bits.
    #[test]
    fn backward_sums_are_the_same_bits_at_every_vector_width() {
        #[cfg(target_arch = "x86_64")]
        {
            if !wide() {
                println!("no AVX-512 on this CPU: only the baseline build runs here");
                return;
            }
            let mut rng = Rng::new(8);
            let mut rows = 0;
            for hw in [1, 15, 16, 17, 49, 196, 784, 799] {
                let g = ChanGeom { n: 3, c: 2, hw };
                let x: Vec<f32> = (0..g.len()).map(|_| rng.normal() * 3.0).collect();
                let dy: Vec<f32> = (0..g.len()).map(|_| rng.normal()).collect();
                let (m, is) = (0.3f32, 0.7f32);
                let sign = move |x: f32, d: f32| if ((x - m) * is).abs() < 1.0 { d } else { 0.0 };
                for c in 0..g.c {
                    let plain = (bwd_sums(&x, &dy, g, c, m, is, |_, d| d), bwd_sums(&x, &dy, g, c, m, is, sign));
                    // SAFETY: this CPU has AVX-512 F (checked above).
                    let wide = unsafe {
                        (bwd_sums_avx512(&x, &dy, g, c, m, is, |_, d| d), bwd_sums_avx512(&x, &dy, g, c, m, is, sign))
                    };
                    let bits = |((a, b), (c, d)): ((f32, f32), (f32, f32))| [a, b, c, d].map(f32::to_bits);
                    assert_eq!(bits(plain), bits(wide), "{hw} values a row, channel {c}");
                    rows += g.n;
                }
            }
            println!("{rows} rows: the AVX-512 sums equal the baseline's");
        }
    }

    /// `lane_sum` adds in a fixed order, which training's bits depend on: value `i` of each
    /// whole block of sixteen into f32 lane `i % 16`, the lanes into f64 in order, then the
    /// tail's values one by one in f64. Checked bit for bit on rows of every tail length, with
    /// values whose sums round.
    #[test]
    fn lane_sum_adds_in_its_documented_order() {
        let mut rng = Rng::new(5);
        for n in (0..40).chain([784, 785, 799]) {
            let x: Vec<f32> = (0..n).map(|_| rng.normal() * 1e3).collect();
            let y: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let m = 0.3f32;
            let got = lane_sum(&x, &y, |x, d| each(x, d, |x, d| d * (x - m)));
            let f = |i: usize| y[i] * (x[i] - m);
            let whole = n / L * L;
            let mut lanes = [0f32; L];
            for i in 0..whole {
                lanes[i % L] += f(i);
            }
            let mut want = lanes.iter().map(|&v| v as f64).sum::<f64>();
            for i in whole..n {
                want += f(i) as f64;
            }
            assert_eq!(got.to_bits(), want.to_bits(), "{n} values");
        }
    }
}
