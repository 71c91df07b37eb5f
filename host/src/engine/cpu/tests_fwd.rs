//! Every forward primitive of `Cpu` against the naive f64 twin.

use super::Cpu;
use crate::engine::backend::{Backend, BnMode};
use crate::engine::geom::{ChanGeom, ConvGeom, MatGeom, PoolGeom};
use crate::engine::naive::{self, to32, to64};
use crate::engine::testutil::{max_rel_err, randn};
use crate::rng::Rng;

/// Forward agreement bound (f32 against f64).
const FWD_BOUND: f64 = 1e-5;

pub(super) fn cpu(threads: usize) -> Cpu {
    Cpu::new(Some(threads)).expect("thread pool")
}

fn check(what: &str, got: &[f32], want: &[f64]) {
    let err = max_rel_err(got, &to32(want));
    println!("{what}: max rel err {err:.2e}");
    assert!(err < FWD_BOUND, "{what}: {err:.2e} >= {FWD_BOUND:.0e}");
}

#[allow(clippy::too_many_arguments)]
pub(super) fn conv(
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
) -> ConvGeom {
    let g = ConvGeom { n, c_in, h, w, c_out, k, stride, pad, dil };
    g.check().expect("test geometry");
    g
}

/// Odd sizes, batch 1, stride 2, dilation 2, kernels 1/2/3/5, padding 0/1/2/4, 1x1 direct,
/// and batches that exercise micro-batching (small outputs) and uneven thread splits.
pub(super) fn conv_geoms() -> Vec<ConvGeom> {
    vec![
        conv(1, 3, 7, 5, 4, 3, 1, 1, 1),
        conv(2, 3, 7, 5, 4, 1, 1, 0, 1),
        conv(3, 5, 9, 6, 3, 1, 2, 1, 1),
        conv(2, 2, 6, 7, 3, 2, 1, 0, 1),
        conv(2, 3, 7, 5, 4, 3, 2, 1, 1),
        conv(2, 3, 9, 8, 2, 5, 1, 2, 1),
        conv(2, 3, 7, 5, 4, 3, 1, 2, 2),
        conv(2, 2, 9, 9, 3, 5, 1, 4, 2),
        conv(1, 2, 11, 7, 3, 5, 2, 4, 2),
        conv(5, 4, 7, 7, 6, 3, 1, 1, 1),
        conv(7, 3, 4, 3, 5, 3, 1, 1, 1),
        conv(9, 6, 5, 5, 4, 1, 1, 0, 1),
        conv(2, 1, 3, 3, 2, 5, 1, 4, 1),
    ]
}

#[test]
fn conv2d_matches_naive() {
    let mut rng = Rng::new(1);
    for threads in [1, 2, 3] {
        let cpu = cpu(threads);
        for g in conv_geoms() {
            let x = randn(&mut rng, g.in_len(), 1.0);
            let w = randn(&mut rng, g.weight_len(), 0.5);
            let b = randn(&mut rng, g.c_out, 1.0);
            let got = cpu.conv2d(&x, &w, Some(&b), g);
            let want = naive::conv2d(&to64(&x), &to64(&w), Some(&to64(&b)), g);
            check(&format!("conv2d {g} ({threads} threads)"), &got, &want);
            let got = cpu.conv2d(&x, &w, None, g);
            check("  without bias", &got, &naive::conv2d(&to64(&x), &to64(&w), None, g));
        }
    }
}

#[test]
fn matmul_matches_naive_for_all_transposes() {
    let mut rng = Rng::new(2);
    let cpu = cpu(2);
    for (m, k, n) in [(1, 1, 1), (7, 5, 3), (33, 17, 10), (300, 129, 70)] {
        for trans_a in [false, true] {
            for trans_b in [false, true] {
                let g = MatGeom { m, k, n, trans_a, trans_b };
                let a = randn(&mut rng, m * k, 1.0);
                let b = randn(&mut rng, k * n, 1.0);
                let got = cpu.matmul(&a, &b, g);
                check(&format!("matmul {g:?}"), &got, &naive::matmul(&to64(&a), &to64(&b), g));
            }
        }
    }
}

#[test]
fn batch_norm_matches_naive_in_train_and_eval() {
    let mut rng = Rng::new(3);
    let cpu = cpu(2);
    for g in [ChanGeom { n: 1, c: 3, hw: 35 }, ChanGeom { n: 4, c: 5, hw: 9 }, ChanGeom { n: 16, c: 8, hw: 300 }] {
        let x: Vec<f32> = randn(&mut rng, g.len(), 2.0).iter().map(|v| v + 3.0).collect();
        let gamma = randn(&mut rng, g.c, 1.0);
        let beta = randn(&mut rng, g.c, 1.0);
        let (x64, eps) = (to64(&x), 1e-5);
        let (mean, var) = naive::channel_stats(&x64, g);
        for affine in [false, true] {
            let (gm, bt) = if affine { (Some(&gamma), Some(&beta)) } else { (None, None) };
            let (gm64, bt64) = (gm.map(|v| to64(v)), bt.map(|v| to64(v)));
            let mut rm = randn(&mut rng, g.c, 1.0);
            let mut rv: Vec<f32> = randn(&mut rng, g.c, 1.0).iter().map(|v| v.abs() + 0.5).collect();
            let (rm0, rv0) = (to64(&rm), to64(&rv));
            let mode = BnMode::Train { running_mean: &mut rm, running_var: &mut rv, momentum: 0.1 };
            let out = cpu.batch_norm(&x, gm, bt, mode, eps as f32, g);
            let want = naive::batch_norm_with(&x64, &mean, &var, gm64.as_deref(), bt64.as_deref(), eps, g);
            check(&format!("batch_norm train {g:?} affine {affine}"), &out.y, &want);
            check("  batch mean", &out.mean, &mean);
            let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
            check("  inv_std", &out.inv_std, &inv_std);
            let count = (g.n * g.hw) as f64;
            let want_rm: Vec<f64> = rm0.iter().zip(&mean).map(|(r, m)| 0.9 * r + 0.1 * m).collect();
            let want_rv: Vec<f64> =
                rv0.iter().zip(&var).map(|(r, v)| 0.9 * r + 0.1 * v * count / (count - 1.0)).collect();
            check("  running mean", &rm, &want_rm);
            check("  running var (unbiased)", &rv, &want_rv);

            let mode = BnMode::Eval { running_mean: &rm, running_var: &rv };
            let out = cpu.batch_norm(&x, gm, bt, mode, eps as f32, g);
            let want = naive::batch_norm_with(&x64, &to64(&rm), &to64(&rv), gm64.as_deref(), bt64.as_deref(), eps, g);
            check(&format!("batch_norm eval {g:?} affine {affine}"), &out.y, &want);
            check("  eval mean", &out.mean, &to64(&rm));
        }
    }
}

#[test]
fn pools_match_naive() {
    let mut rng = Rng::new(4);
    let cpu = cpu(2);
    let geoms = [
        PoolGeom { n: 1, c: 1, h: 1, w: 1, stride: 1 },
        PoolGeom { n: 2, c: 3, h: 7, w: 5, stride: 1 },
        PoolGeom { n: 2, c: 3, h: 7, w: 5, stride: 2 },
        PoolGeom { n: 3, c: 2, h: 8, w: 6, stride: 2 },
        PoolGeom { n: 8, c: 16, h: 28, w: 28, stride: 1 },
    ];
    for g in geoms {
        let x = randn(&mut rng, g.in_len(), 1.0);
        check(&format!("max_pool {g:?}"), &cpu.max_pool(&x, g), &naive::max_pool(&to64(&x), g));
        check(&format!("avg_pool {g:?}"), &cpu.avg_pool(&x, g), &naive::avg_pool(&to64(&x), g));
    }
    let g = ChanGeom { n: 3, c: 4, hw: 49 };
    let x = randn(&mut rng, g.len(), 1.0);
    check("global_avg_pool", &cpu.global_avg_pool(&x, g), &naive::global_avg_pool(&to64(&x), g));
}

#[test]
fn elementwise_and_reductions_match_naive() {
    let mut rng = Rng::new(5);
    let cpu = cpu(2);
    // One small (serial) and one large (parallel, uneven chunks) length.
    for len in [37, 100_003] {
        let a = randn(&mut rng, len, 1.0);
        let b = randn(&mut rng, len, 1.0);
        let (a64, b64) = (to64(&a), to64(&b));
        let zip = |f: fn(f64, f64) -> f64| -> Vec<f64> { a64.iter().zip(&b64).map(|(&a, &b)| f(a, b)).collect() };
        check(&format!("add {len}"), &cpu.add(&a, &b), &zip(|a, b| a + b));
        let mut y = a.clone();
        cpu.axpy(&mut y, 0.7, &b);
        check("axpy", &y, &zip(|a, b| a + 0.7 * b));
        check("scale", &cpu.scale(&a, -1.5), &zip(|a, _| -1.5 * a));
        check("scale_by_elem", &cpu.scale_by_elem(&a, &vec![0.0, 2.5], 1), &zip(|a, _| 2.5 * a));
        check("relu", &cpu.relu(&a), &zip(|a, _| a.max(0.0)));
        check("sign", &cpu.sign(&a), &zip(|a, _| naive::sign(a)));
        check("weighted_sum", &cpu.weighted_sum(&[&a, &b], &vec![0.3, -2.0]), &zip(|a, b| 0.3 * a - 2.0 * b));
        let dots = cpu.dots(&[&a, &b], &b);
        check("dots", &dots, &[naive::dot(&a64, &b64), naive::dot(&b64, &b64)]);
        let ss = cpu.sum_squares(&[&a, &b]);
        check("sum_squares", &ss, &[naive::dot(&a64, &a64) + naive::dot(&b64, &b64)]);
    }
    // sign(+0) = sign(-0) = +1: a bit has no 0.
    assert_eq!(cpu.sign(&vec![0.0, -0.0, -1e-30, 1e-30]), vec![1.0, 1.0, -1.0, 1.0]);

    for g in [ChanGeom { n: 3, c: 4, hw: 7 }, ChanGeom { n: 64, c: 16, hw: 196 }] {
        let x = randn(&mut rng, g.len(), 1.0);
        let s = randn(&mut rng, g.c, 1.0);
        let b = randn(&mut rng, g.c, 1.0);
        let sn = randn(&mut rng, g.n, 1.0);
        let (x64, s64, b64) = (to64(&x), to64(&s), to64(&b));
        let got = cpu.channel_affine(&x, &s, Some(&b), g);
        check(&format!("channel_affine {g:?}"), &got, &naive::channel_affine(&x64, &s64, Some(&b64), g));
        let got = cpu.channel_affine(&x, &s, None, g);
        check("channel_affine without bias", &got, &naive::channel_affine(&x64, &s64, None, g));
        check("sample_scale", &cpu.sample_scale(&x, &sn, g), &naive::sample_scale(&x64, &to64(&sn), g));
        check("channel_sum", &cpu.channel_sum(&x, g), &naive::channel_sum(&x64, g));
    }

    let (rows, cols) = (9, 13);
    let x = randn(&mut rng, rows * cols, 1.0);
    let b = randn(&mut rng, cols, 1.0);
    let want: Vec<f64> = (0..rows * cols).map(|i| x[i] as f64 + b[i % cols] as f64).collect();
    check("add_row_bias", &cpu.add_row_bias(&x, &b, rows, cols), &want);
    check("sum_rows", &cpu.sum_rows(&x, rows, cols), &naive::sum_rows(&to64(&x), rows, cols));
}

#[test]
fn concat_and_slice_channels_match_naive() {
    let mut rng = Rng::new(6);
    let cpu = cpu(2);
    let (n, hw, chans) = (3, 10, [2usize, 5, 1]);
    let xs: Vec<Vec<f32>> = chans.iter().map(|&c| randn(&mut rng, n * c * hw, 1.0)).collect();
    let refs: Vec<&Vec<f32>> = xs.iter().collect();
    let xs64: Vec<Vec<f64>> = xs.iter().map(|x| to64(x)).collect();
    let cat = cpu.concat_channels(&refs, &chans, n, hw);
    check("concat_channels", &cat, &naive::concat_channels(&xs64, &chans, n, hw));
    let got = cpu.slice_channels(&cat, n, 8, hw, 2, 5);
    assert_eq!(got, xs[1], "slice_channels must invert concat_channels");
    check("slice_channels", &got, &naive::slice_channels(&to64(&cat), n, 8, hw, 2, 5));
}

#[test]
fn softmax_losses_and_binarization_match_naive() {
    let mut rng = Rng::new(7);
    let cpu = cpu(2);
    let (rows, classes) = (6, 10);
    let logits = randn(&mut rng, rows * classes, 3.0);
    let labels: Vec<usize> = (0..rows).map(|_| rng.below(classes)).collect();
    let labels_f: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
    for smoothing in [0.0, 0.1] {
        let (loss, _) = cpu.softmax_xent(&logits, &labels_f, rows, classes, smoothing);
        let want = naive::softmax_xent(&to64(&logits), &labels, classes, smoothing as f64);
        check(&format!("softmax_xent loss, smoothing {smoothing}"), &loss, &[want]);
    }
    let p = cpu.softmax_rows(&logits, rows, classes);
    let want: Vec<f64> =
        (0..rows).flat_map(|r| naive::softmax(&to64(&logits[r * classes..(r + 1) * classes]))).collect();
    check("softmax_rows", &p, &want);
    let (h, _) = cpu.softmax_entropy(&logits, rows, classes);
    check("softmax_entropy", &h, &[naive::softmax_entropy(&to64(&logits), rows, classes)]);

    // A dense filter bank, and a depthwise one (one input channel: clamped, not centred).
    for (c_out, c_in, kk) in [(4, 3, 9), (6, 1, 9)] {
        let w = randn(&mut rng, c_out * c_in * kk, 0.8);
        let bin = cpu.binarize_weights(&w, c_out, c_in, kk);
        let (centered, signs, beta) = naive::binarize_weights(&to64(&w), c_out, c_in, kk);
        check(&format!("binarize_weights centered [{c_out}, {c_in}, {kk}]"), &bin.centered, &centered);
        assert_eq!(to64(&bin.sign), signs, "binarize_weights sign");
        check("binarize_weights beta", &bin.beta, &beta);
        assert!(centered.iter().any(|v| v.abs() == 1.0), "the test should exercise the clamp");
        assert!(beta.iter().all(|&b| b > 0.0), "no filter binarizes to zero");
    }
}
