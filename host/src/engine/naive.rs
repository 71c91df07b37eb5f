//! A deliberately naive f64 twin of every `Backend` primitive (test code only): direct loops
//! with explicit bounds checks, written for obviousness, not speed. The backends are tested
//! against it, and the finite-difference gradient checks differentiate it.

use super::geom::{ChanGeom, ConvGeom, MatGeom, PoolGeom};

pub fn to64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

pub fn to32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

pub fn sign(x: f64) -> f64 {
    if x >= 0.0 {
        1.0
    } else {
        -1.0
    }
}

/// The seven loops of a convolution: `f(y_index, x_index, w_index)` for every product of an
/// output with an input and a weight, padded taps skipped, each output's products together in
/// the order (input channel, ky, kx).
fn products(g: ConvGeom, mut f: impl FnMut(usize, usize, usize)) {
    let (oh, ow) = (g.out_h(), g.out_w());
    for n in 0..g.n {
        for co in 0..g.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((n * g.c_out + co) * oh + oy) * ow + ox;
                    for ci in 0..g.c_in {
                        for ky in 0..g.k {
                            for kx in 0..g.k {
                                let iy = (oy * g.stride + ky * g.dil) as isize - g.pad as isize;
                                let ix = (ox * g.stride + kx * g.dil) as isize - g.pad as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let xi = ((n * g.c_in + ci) * g.h + iy as usize) * g.w + ix as usize;
                                f(yi, xi, ((co * g.c_in + ci) * g.k + ky) * g.k + kx);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Direct convolution, the products summed in [`products`]' order after the bias.
pub fn conv2d(x: &[f64], w: &[f64], bias: Option<&[f64]>, g: ConvGeom) -> Vec<f64> {
    let ohw = g.out_h() * g.out_w();
    let mut y: Vec<f64> = (0..g.out_len()).map(|i| bias.map_or(0.0, |b| b[i / ohw.max(1) % g.c_out])).collect();
    products(g, |yi, xi, wi| y[yi] += x[xi] * w[wi]);
    y
}

/// The input gradient of [`conv2d`] by its definition: each output's `dy` times each tap's
/// weight, added into the input pixel the tap reads (padded taps skipped).
pub fn conv2d_bwd_data(dy: &[f64], w: &[f64], g: ConvGeom) -> Vec<f64> {
    let mut dx = vec![0.0; g.in_len()];
    products(g, |yi, xi, wi| dx[xi] += dy[yi] * w[wi]);
    dx
}

/// Depthwise convolution as the dense one with a block-diagonal weight: filter `c` of `w`
/// (`[c, 1, k, k]`) sees only input channel `c`.
pub fn dwconv2d(x: &[f64], w: &[f64], g: ConvGeom) -> Vec<f64> {
    let (c, kk) = (g.c_in, g.k * g.k);
    let mut full = vec![0.0; c * c * kk];
    for ch in 0..c {
        full[(ch * c + ch) * kk..(ch * c + ch + 1) * kk].copy_from_slice(&w[ch * kk..(ch + 1) * kk]);
    }
    conv2d(x, &full, None, g)
}

/// `op(A) op(B)`.
pub fn matmul(a: &[f64], b: &[f64], g: MatGeom) -> Vec<f64> {
    let mut c = vec![0.0; g.m * g.n];
    for i in 0..g.m {
        for j in 0..g.n {
            let mut acc = 0.0;
            for l in 0..g.k {
                let av = if g.trans_a { a[l * g.m + i] } else { a[i * g.k + l] };
                let bv = if g.trans_b { b[j * g.k + l] } else { b[l * g.n + j] };
                acc += av * bv;
            }
            c[i * g.n + j] = acc;
        }
    }
    c
}

/// Per channel `(mean, biased variance)` of `[n, c, hw]`.
pub fn channel_stats(x: &[f64], g: ChanGeom) -> (Vec<f64>, Vec<f64>) {
    let count = (g.n * g.hw) as f64;
    let mut mean = vec![0.0; g.c];
    let mut var = vec![0.0; g.c];
    for c in 0..g.c {
        for n in 0..g.n {
            for i in 0..g.hw {
                mean[c] += x[(n * g.c + c) * g.hw + i];
            }
        }
        mean[c] /= count;
        for n in 0..g.n {
            for i in 0..g.hw {
                let d = x[(n * g.c + c) * g.hw + i] - mean[c];
                var[c] += d * d;
            }
        }
        var[c] /= count;
    }
    (mean, var)
}

/// `(x - mean) / sqrt(var + eps) * gamma + beta` with the given per-channel statistics.
pub fn batch_norm_with(
    x: &[f64],
    mean: &[f64],
    var: &[f64],
    gamma: Option<&[f64]>,
    beta: Option<&[f64]>,
    eps: f64,
    g: ChanGeom,
) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for n in 0..g.n {
        for c in 0..g.c {
            for i in 0..g.hw {
                let at = (n * g.c + c) * g.hw + i;
                let xhat = (x[at] - mean[c]) / (var[c] + eps).sqrt();
                y[at] = xhat * gamma.map_or(1.0, |gm| gm[c]) + beta.map_or(0.0, |b| b[c]);
            }
        }
    }
    y
}

/// Training-mode batch norm: batch statistics.
pub fn batch_norm_train(x: &[f64], gamma: Option<&[f64]>, beta: Option<&[f64]>, eps: f64, g: ChanGeom) -> Vec<f64> {
    let (mean, var) = channel_stats(x, g);
    batch_norm_with(x, &mean, &var, gamma, beta, eps, g)
}

/// In-bounds cells of the 3x3, padding-1 window of output `(oy, ox)`, row-major.
fn pool_window(g: PoolGeom, oy: usize, ox: usize) -> Vec<(usize, usize)> {
    let mut cells = vec![];
    for ky in 0..3 {
        for kx in 0..3 {
            let iy = (oy * g.stride + ky) as isize - 1;
            let ix = (ox * g.stride + kx) as isize - 1;
            if iy >= 0 && ix >= 0 && iy < g.h as isize && ix < g.w as isize {
                cells.push((iy as usize, ix as usize));
            }
        }
    }
    cells
}

pub fn max_pool(x: &[f64], g: PoolGeom) -> Vec<f64> {
    pool(x, g, |vals| vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max))
}

pub fn avg_pool(x: &[f64], g: PoolGeom) -> Vec<f64> {
    pool(x, g, |vals| vals.iter().sum::<f64>() / vals.len() as f64)
}

fn pool(x: &[f64], g: PoolGeom, reduce: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut y = vec![0.0; g.out_len()];
    for p in 0..g.n * g.c {
        for oy in 0..oh {
            for ox in 0..ow {
                let vals: Vec<f64> =
                    pool_window(g, oy, ox).iter().map(|&(iy, ix)| x[(p * g.h + iy) * g.w + ix]).collect();
                y[(p * oh + oy) * ow + ox] = reduce(&vals);
            }
        }
    }
    y
}

pub fn global_avg_pool(x: &[f64], g: ChanGeom) -> Vec<f64> {
    (0..g.n * g.c).map(|r| (0..g.hw).map(|i| x[r * g.hw + i]).sum::<f64>() / g.hw as f64).collect()
}

pub fn channel_affine(x: &[f64], s: &[f64], b: Option<&[f64]>, g: ChanGeom) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for n in 0..g.n {
        for c in 0..g.c {
            for i in 0..g.hw {
                let at = (n * g.c + c) * g.hw + i;
                y[at] = x[at] * s[c] + b.map_or(0.0, |b| b[c]);
            }
        }
    }
    y
}

pub fn sample_scale(x: &[f64], s: &[f64], g: ChanGeom) -> Vec<f64> {
    (0..x.len()).map(|i| x[i] * s[i / (g.c * g.hw)]).collect()
}

pub fn channel_sum(x: &[f64], g: ChanGeom) -> Vec<f64> {
    let mut out = vec![0.0; g.c];
    for (i, v) in x.iter().enumerate() {
        out[(i / g.hw) % g.c] += v;
    }
    out
}

pub fn weighted_sum(xs: &[Vec<f64>], w: &[f64]) -> Vec<f64> {
    (0..xs[0].len()).map(|i| xs.iter().zip(w).map(|(x, w)| w * x[i]).sum()).collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

pub fn concat_channels(xs: &[Vec<f64>], chans: &[usize], n: usize, hw: usize) -> Vec<f64> {
    let mut y = vec![];
    for s in 0..n {
        for (x, &c) in xs.iter().zip(chans) {
            for ch in 0..c {
                for i in 0..hw {
                    y.push(x[(s * c + ch) * hw + i]);
                }
            }
        }
    }
    y
}

pub fn slice_channels(x: &[f64], n: usize, c_total: usize, hw: usize, offset: usize, c: usize) -> Vec<f64> {
    let mut y = vec![];
    for s in 0..n {
        for ch in offset..offset + c {
            for i in 0..hw {
                y.push(x[(s * c_total + ch) * hw + i]);
            }
        }
    }
    y
}

/// `[cols]` column sums.
pub fn sum_rows(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..cols).map(|j| (0..rows).map(|r| x[r * cols + j]).sum()).collect()
}

/// Mean over rows of the label-smoothed cross-entropy.
pub fn softmax_xent(logits: &[f64], labels: &[usize], classes: usize, smoothing: f64) -> f64 {
    let rows = labels.len();
    let mut loss = 0.0;
    for (r, &label) in labels.iter().enumerate() {
        let p = softmax(&logits[r * classes..(r + 1) * classes]);
        for (j, pj) in p.iter().enumerate() {
            let t = if j == label { 1.0 - smoothing + smoothing / classes as f64 } else { smoothing / classes as f64 };
            loss -= t * pj.ln();
        }
    }
    loss / rows as f64
}

pub fn softmax(z: &[f64]) -> Vec<f64> {
    let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|v| v / total).collect()
}

/// Mean over rows of `-sum p log p`, `p = softmax(row)`.
pub fn softmax_entropy(alpha: &[f64], rows: usize, k: usize) -> f64 {
    (0..rows).map(|r| softmax(&alpha[r * k..(r + 1) * k]).iter().map(|p| -p * p.ln()).sum::<f64>()).sum::<f64>()
        / rows as f64
}

/// `(centered, sign, beta)` as bnas-method.md, "Binarization" states it (a depthwise filter,
/// `c_in == 1`, is only clamped).
pub fn binarize_weights(w: &[f64], c_out: usize, c_in: usize, kk: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut centered = w.to_vec();
    let mut beta = vec![0.0; c_out];
    for o in 0..c_out {
        for t in 0..kk {
            // Depthwise (c_in = 1): no channel axis to centre over.
            let mean =
                if c_in == 1 { 0.0 } else { (0..c_in).map(|i| w[(o * c_in + i) * kk + t]).sum::<f64>() / c_in as f64 };
            for i in 0..c_in {
                let at = (o * c_in + i) * kk + t;
                centered[at] = (w[at] - mean).clamp(-1.0, 1.0);
            }
        }
        beta[o] = (0..c_in * kk).map(|j| centered[o * c_in * kk + j].abs()).sum::<f64>() / (c_in * kk) as f64;
    }
    let signs = centered.iter().map(|&v| sign(v)).collect();
    (centered, signs, beta)
}
