//! Every backward primitive of `Cpu` against central finite differences of the naive f64
//! forward, for the loss `L(x) = sum(r * f(x))` with a random `r`.

use super::tests_fwd::{conv, conv_geoms, cpu};
use crate::engine::backend::{Backend, BnMode};
use crate::engine::geom::{ChanGeom, MatGeom, PoolGeom};
use crate::engine::naive::{self, to32, to64};
use crate::engine::testutil::{max_rel_err, randn};
use crate::rng::Rng;

/// Agreement bound of an f32 backward with the f64 finite-difference gradient.
const GRAD_BOUND: f64 = 1e-4;
/// Finite-difference step (f64: truncation ~h^2, rounding ~1e-16 / h, both far below the bound).
const FD_STEP: f64 = 1e-5;

fn check(what: &str, got: &[f32], want: &[f64]) {
    let err = max_rel_err(got, &to32(want));
    println!("{what}: max rel err vs finite differences {err:.2e}");
    assert!(err < GRAD_BOUND, "{what}: {err:.2e} >= {GRAD_BOUND:.0e}");
}

/// `dL/dx` by central differences of `L(x) = sum(r * f(x))`.
fn fd_grad(x: &[f64], r: &[f64], f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            xp[i] = x[i] + FD_STEP;
            let up = naive::dot(r, &f(&xp));
            xp[i] = x[i] - FD_STEP;
            let down = naive::dot(r, &f(&xp));
            xp[i] = x[i];
            (up - down) / (2.0 * FD_STEP)
        })
        .collect()
}

#[test]
fn conv2d_backward_matches_finite_differences() {
    let mut rng = Rng::new(11);
    let backends = [cpu(1), cpu(2), cpu(3)];
    for g in conv_geoms() {
        let (x, w) = (randn(&mut rng, g.in_len(), 1.0), randn(&mut rng, g.weight_len(), 0.5));
        let r = randn(&mut rng, g.out_len(), 1.0);
        let (x64, w64, r64) = (to64(&x), to64(&w), to64(&r));
        let dx_fd = fd_grad(&x64, &r64, |x| naive::conv2d(x, &w64, None, g));
        let dw_fd = fd_grad(&w64, &r64, |w| naive::conv2d(&x64, w, None, g));
        let db_fd = fd_grad(&vec![0.0; g.c_out], &r64, |b| naive::conv2d(&x64, &w64, Some(b), g));
        for cpu in &backends {
            let t = cpu.threads();
            check(&format!("conv2d_bwd_data {g} ({t} threads)"), &cpu.conv2d_bwd_data(&r, &w, g), &dx_fd);
            check("  conv2d_bwd_weight", &cpu.conv2d_bwd_weight(&r, &x, g), &dw_fd);
        }
        let hw = g.out_h() * g.out_w();
        check("  bias (channel_sum)", &backends[1].channel_sum(&r, ChanGeom { n: g.n, c: g.c_out, hw }), &db_fd);
    }
}

/// The binary conv's weight gradient, on inputs of signs (sums by sign pattern for k x k kernels,
/// the products for 1x1), at every conv geometry and thread count.
#[test]
fn sign_conv_weight_gradient_matches_finite_differences() {
    let mut rng = Rng::new(13);
    let backends = [cpu(1), cpu(2), cpu(3)];
    for g in conv_geoms() {
        let x: Vec<f32> = randn(&mut rng, g.in_len(), 1.0).iter().map(|&v| naive::sign(v as f64) as f32).collect();
        let (w, r) = (randn(&mut rng, g.weight_len(), 0.5), randn(&mut rng, g.out_len(), 1.0));
        let (x64, r64) = (to64(&x), to64(&r));
        let dw_fd = fd_grad(&to64(&w), &r64, |w| naive::conv2d(&x64, w, None, g));
        for cpu in &backends {
            let t = cpu.threads();
            check(&format!("sign_conv2d_bwd_weight {g} ({t} threads)"), &cpu.sign_conv2d_bwd_weight(&r, &x, g), &dw_fd);
        }
    }
}

/// The GEMM route's input gradient (pixel-major columns, each pixel's taps summed 16 channels at
/// a time) against the definition in f64, at channel counts of one and more 16-channel blocks
/// and a tail (the finite-difference geometries have at most 6): strides 1 and 2, 1x1 (its
/// columns are the gradient), 2x2 stride 2, dilation, padding wider than the reach, and 7x7 maps
/// whose micro-batches hold several samples, on 1-3 threads.
#[test]
fn gemm_input_gradient_matches_the_definition_at_wide_channels() {
    let mut rng = Rng::new(17);
    let mut worst = 0f64;
    for &(n, c_in, h, c_out, k, stride, pad, dil) in &[
        (13, 64, 7, 24, 3, 1, 1, 1),
        (5, 37, 7, 16, 3, 1, 2, 2),
        (3, 16, 14, 21, 3, 2, 1, 1),
        (4, 48, 14, 32, 2, 2, 0, 1),
        (3, 33, 9, 18, 1, 1, 0, 1),
        (2, 17, 11, 5, 1, 2, 0, 1),
        (2, 20, 8, 7, 5, 1, 5, 2),
    ] {
        let g = conv(n, c_in, h, h, c_out, k, stride, pad, dil);
        let (dy, w) = (randn(&mut rng, g.out_len(), 1.0), randn(&mut rng, g.weight_len(), 0.5));
        let want = to32(&naive::conv2d_bwd_data(&to64(&dy), &to64(&w), g));
        for threads in [1, 2, 3] {
            let got = super::conv::backward_data_gemm(&cpu(threads), &dy, &w, g);
            let err = max_rel_err(&got, &want);
            worst = worst.max(err);
            assert!(err < 1e-5, "{g} ({threads} threads): {err:.2e}");
        }
    }
    println!("GEMM input gradient vs the definition: largest relative difference {worst:.2e}");
}

#[test]
fn conv2d_backward_splits_large_batches_consistently() {
    // Micro-batches of several samples (7x7 outputs) and uneven per-thread ranges.
    let mut rng = Rng::new(12);
    let g = conv(13, 4, 7, 7, 5, 3, 1, 1, 1);
    let (x, w, r) =
        (randn(&mut rng, g.in_len(), 1.0), randn(&mut rng, g.weight_len(), 0.5), randn(&mut rng, g.out_len(), 1.0));
    let (x64, w64, r64) = (to64(&x), to64(&w), to64(&r));
    let dw_fd = fd_grad(&w64, &r64, |w| naive::conv2d(&x64, w, None, g));
    for threads in [1, 2, 4] {
        let cpu = cpu(threads);
        check(&format!("conv2d_bwd_weight {g} ({threads} threads)"), &cpu.conv2d_bwd_weight(&r, &x, g), &dw_fd);
        let got = cpu.conv2d_bwd_data(&r, &w, g);
        // conv is linear in x: the adjoint identity <r, conv(x)> = <bwd_data(r), x> in f64.
        let lhs = naive::dot(&r64, &naive::conv2d(&x64, &w64, None, g));
        let rhs = naive::dot(&to64(&got), &x64);
        let err = (lhs - rhs).abs() / lhs.abs().max(1.0);
        println!("conv2d_bwd_data adjoint identity ({threads} threads): rel err {err:.2e}");
        assert!(err < GRAD_BOUND);
    }
}

#[test]
fn batch_norm_backward_matches_finite_differences() {
    let mut rng = Rng::new(13);
    let cpu = cpu(2);
    let eps = 1e-5;
    // hw 37: two blocks of the 16 lanes the channel sums use, and a tail.
    for g in [ChanGeom { n: 2, c: 3, hw: 7 }, ChanGeom { n: 5, c: 2, hw: 4 }, ChanGeom { n: 2, c: 2, hw: 37 }] {
        let x: Vec<f32> = randn(&mut rng, g.len(), 1.5).iter().map(|v| v + 0.5).collect();
        let (gamma, beta, r) = (randn(&mut rng, g.c, 1.0), randn(&mut rng, g.c, 1.0), randn(&mut rng, g.len(), 1.0));
        let (x64, gm64, bt64, r64) = (to64(&x), to64(&gamma), to64(&beta), to64(&r));
        let rv0: Vec<f32> = randn(&mut rng, g.c, 1.0).iter().map(|v| v.abs() + 0.5).collect();
        let rm0 = randn(&mut rng, g.c, 1.0);
        for affine in [false, true] {
            let (gm, bt) = if affine { (Some(&gamma), Some(&beta)) } else { (None, None) };
            let (gmn, btn) = if affine { (Some(&gm64[..]), Some(&bt64[..])) } else { (None, None) };
            // Training: the batch statistics depend on x.
            let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
            let mode = BnMode::Train { running_mean: &mut rm, running_var: &mut rv, momentum: 0.1 };
            let out = cpu.batch_norm(&x, gm, bt, mode, eps as f32, g);
            let grads = cpu.batch_norm_bwd(&x, &r, &out.mean, &out.inv_std, gm, true, g);
            let dx_fd = fd_grad(&x64, &r64, |x| naive::batch_norm_train(x, gmn, btn, eps, g));
            check(&format!("batch_norm_bwd train {g:?} affine {affine}: dx"), &grads.dx, &dx_fd);
            check_affine_grads(&grads, affine, &r64, &gm64, &bt64, |gm, bt| {
                naive::batch_norm_train(&x64, Some(gm), Some(bt), eps, g)
            });

            // Eval: fixed running statistics.
            let mode = BnMode::Eval { running_mean: &rm0, running_var: &rv0 };
            let out = cpu.batch_norm(&x, gm, bt, mode, eps as f32, g);
            let grads = cpu.batch_norm_bwd(&x, &r, &out.mean, &out.inv_std, gm, false, g);
            let (m64, v64) = (to64(&rm0), to64(&rv0));
            let dx_fd = fd_grad(&x64, &r64, |x| naive::batch_norm_with(x, &m64, &v64, gmn, btn, eps, g));
            check(&format!("batch_norm_bwd eval {g:?} affine {affine}: dx"), &grads.dx, &dx_fd);
            check_affine_grads(&grads, affine, &r64, &gm64, &bt64, |gm, bt| {
                naive::batch_norm_with(&x64, &m64, &v64, Some(gm), Some(bt), eps, g)
            });
        }
    }
}

/// The fused backward through `sign(batch_norm(x))` is `batch_norm_bwd` of `sign_ste_bwd` at
/// the forward's output, bit for bit: the CPU recomputes that output from `x`, so inputs whose
/// outputs lie within a few ulps of +-1 (where the estimator's mask flips) check that it
/// recomputes exactly. Fixed statistics (so those inputs can be placed), train and eval
/// formulas, with and without the affine parameters, rows of 16-lane blocks and tails.
#[test]
fn fused_sign_batch_norm_backward_is_the_two_passes() {
    let mut rng = Rng::new(19);
    for threads in [1, 2] {
        let cpu = cpu(threads);
        for g in [ChanGeom { n: 3, c: 5, hw: 37 }, ChanGeom { n: 2, c: 3, hw: 16 }, ChanGeom { n: 4, c: 2, hw: 7 }] {
            let (gamma, beta) = (randn(&mut rng, g.c, 1.0), randn(&mut rng, g.c, 1.0));
            let rm = randn(&mut rng, g.c, 1.0);
            let rv: Vec<f32> = randn(&mut rng, g.c, 1.0).iter().map(|v| v.abs() + 0.5).collect();
            let dy = randn(&mut rng, g.len(), 1.0);
            for affine in [false, true] {
                let (gm, bt) = if affine { (Some(&gamma), Some(&beta)) } else { (None, None) };
                let mut x = randn(&mut rng, g.len(), 1.5);
                // Every third value: ulps around the input whose output is +1 or -1.
                for (i, v) in x.iter_mut().enumerate().step_by(3) {
                    let c = i / g.hw % g.c;
                    let s = 1.0 / (rv[c] + 1e-5).sqrt() * gm.map_or(1.0, |gm| gm[c]);
                    let edge = if i % 2 == 0 { 1.0 } else { -1.0 };
                    let at = rm[c] + (edge - bt.map_or(0.0, |b| b[c])) / s;
                    *v = f32::from_bits((at.to_bits() as i32 + (i / 3 % 7) as i32 - 3) as u32);
                }
                let out = cpu.batch_norm(&x, gm, bt, BnMode::Eval { running_mean: &rm, running_var: &rv }, 1e-5, g);
                let near = out.y.iter().filter(|y| (y.abs() - 1.0).abs() < 1e-5).count();
                assert!(near >= g.len() / 6, "{g:?}: only {near} outputs near +-1");
                for train in [true, false] {
                    let want =
                        cpu.batch_norm_bwd(&x, &cpu.sign_ste_bwd(&out.y, &dy), &out.mean, &out.inv_std, gm, train, g);
                    let got = cpu.batch_norm_sign_bwd(&x, &out.y, &dy, &out.mean, &out.inv_std, gm, bt, train, g);
                    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    let what = format!("{g:?} affine {affine} train {train} ({threads} threads)");
                    assert_eq!(bits(&got.dx), bits(&want.dx), "{what}: dx");
                    assert_eq!(got.dgamma.as_deref().map(bits), want.dgamma.as_deref().map(bits), "{what}: dgamma");
                    assert_eq!(got.dbeta.as_deref().map(bits), want.dbeta.as_deref().map(bits), "{what}: dbeta");
                }
            }
        }
    }
}

fn check_affine_grads(
    grads: &crate::engine::backend::BnGrads<super::Cpu>,
    affine: bool,
    r64: &[f64],
    gm64: &[f64],
    bt64: &[f64],
    f: impl Fn(&[f64], &[f64]) -> Vec<f64>,
) {
    if !affine {
        assert!(grads.dgamma.is_none() && grads.dbeta.is_none(), "no parameter gradients without affine");
        return;
    }
    let dgamma_fd = fd_grad(gm64, r64, |gm| f(gm, bt64));
    let dbeta_fd = fd_grad(bt64, r64, |bt| f(gm64, bt));
    check("  dgamma", grads.dgamma.as_ref().expect("dgamma"), &dgamma_fd);
    check("  dbeta", grads.dbeta.as_ref().expect("dbeta"), &dbeta_fd);
}

#[test]
fn pool_backward_matches_finite_differences() {
    let mut rng = Rng::new(14);
    let cpu = cpu(2);
    for g in [
        PoolGeom { n: 2, c: 2, h: 7, w: 5, stride: 1 },
        PoolGeom { n: 1, c: 3, h: 7, w: 5, stride: 2 },
        PoolGeom { n: 2, c: 2, h: 6, w: 6, stride: 2 },
    ] {
        // Distinct values (a shuffled ramp) keep max pool away from ties, its only kinks.
        let mut x: Vec<f32> = (0..g.in_len()).map(|i| i as f32 * 0.01).collect();
        rng.shuffle(&mut x);
        let r = randn(&mut rng, g.out_len(), 1.0);
        let (x64, r64) = (to64(&x), to64(&r));
        let fd = fd_grad(&x64, &r64, |x| naive::max_pool(x, g));
        check(&format!("max_pool_bwd {g:?}"), &cpu.max_pool_bwd(&x, &r, g), &fd);
        let fd = fd_grad(&x64, &r64, |x| naive::avg_pool(x, g));
        check(&format!("avg_pool_bwd {g:?}"), &cpu.avg_pool_bwd(&r, g), &fd);
    }
    // Ties: the first maximum in row-major window order takes the whole gradient.
    let g = PoolGeom { n: 1, c: 1, h: 2, w: 2, stride: 2 };
    let dx = cpu.max_pool_bwd(&vec![1.0, 3.0, 3.0, 3.0], &vec![1.0], g);
    assert_eq!(dx, vec![0.0, 1.0, 0.0, 0.0]);

    let g = ChanGeom { n: 2, c: 3, hw: 10 };
    let (x, r) = (randn(&mut rng, g.len(), 1.0), randn(&mut rng, g.n * g.c, 1.0));
    let fd = fd_grad(&to64(&x), &to64(&r), |x| naive::global_avg_pool(x, g));
    check("global_avg_pool_bwd", &cpu.global_avg_pool_bwd(&r, g), &fd);
}

/// `max_pool_bwd` equals its definition bit for bit: each output's `dy` added to the first
/// maximum of its window in row-major order, a later value taking over only if strictly
/// greater. Values drawn from a few levels (ties everywhere), with -0, +0 and infinities. (Not
/// NaN: a NaN first in a row of a window stands for that row, so the later values of the row
/// are not seen, where a scan of the whole window would go on past it.)
#[test]
fn max_pool_backward_routes_to_the_first_maximum() {
    let mut rng = Rng::new(23);
    let cpu = cpu(2);
    let levels = [-1.0, -0.0, 0.0, 0.5, 2.0, 3.0, f32::INFINITY, f32::NEG_INFINITY];
    let mut checked = 0;
    for (h, w) in [(1, 1), (1, 2), (2, 3), (3, 1), (4, 4), (5, 7), (7, 7), (8, 3), (14, 14), (28, 28)] {
        for stride in [1, 2] {
            let g = PoolGeom { n: 2, c: 3, h, w, stride };
            let x: Vec<f32> = (0..g.in_len()).map(|_| levels[(rng.next_u64() % 8) as usize]).collect();
            let dy = randn(&mut rng, g.out_len(), 1.0);
            let (oh, ow) = (g.out_h(), g.out_w());
            let mut want = vec![0f32; g.in_len()];
            for p in 0..g.n * g.c {
                for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                    let taps = |o: usize, len: usize| (o * stride).saturating_sub(1)..(o * stride + 2).min(len);
                    let mut best: Option<(f32, usize)> = None;
                    for iy in taps(oy, h) {
                        for ix in taps(ox, w) {
                            let (v, i) = (x[p * h * w + iy * w + ix], p * h * w + iy * w + ix);
                            if best.is_none_or(|(b, _)| v > b) {
                                best = Some((v, i));
                            }
                        }
                    }
                    want[best.unwrap().1] += dy[(p * oh + oy) * ow + ox];
                }
            }
            let got = cpu.max_pool_bwd(&x, &dy, g);
            let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{g:?}: max_pool_bwd differs from its definition");
            checked += got.len();
        }
    }
    println!("max_pool_bwd: {checked} input gradients bit for bit equal to the definition");
}

#[test]
fn matmul_backward_for_all_transposes_matches_finite_differences() {
    // The tape differentiates `C = op(A) op(B)` with matmuls: these are the four cases.
    let mut rng = Rng::new(15);
    let cpu = cpu(2);
    let (m, k, n) = (5, 4, 3);
    for trans_a in [false, true] {
        for trans_b in [false, true] {
            let g = MatGeom { m, k, n, trans_a, trans_b };
            let (a, b, r) = (randn(&mut rng, m * k, 1.0), randn(&mut rng, k * n, 1.0), randn(&mut rng, m * n, 1.0));
            let (a64, b64, r64) = (to64(&a), to64(&b), to64(&r));
            let da = if trans_a {
                cpu.matmul(&b, &r, MatGeom { m: k, k: n, n: m, trans_a: trans_b, trans_b: true })
            } else {
                cpu.matmul(&r, &b, MatGeom { m, k: n, n: k, trans_a: false, trans_b: !trans_b })
            };
            let db = if trans_b {
                cpu.matmul(&r, &a, MatGeom { m: n, k: m, n: k, trans_a: true, trans_b: trans_a })
            } else {
                cpu.matmul(&a, &r, MatGeom { m: k, k: m, n, trans_a: !trans_a, trans_b: false })
            };
            check(&format!("matmul {g:?}: dA"), &da, &fd_grad(&a64, &r64, |a| naive::matmul(a, &b64, g)));
            check("  dB", &db, &fd_grad(&b64, &r64, |b| naive::matmul(&a64, b, g)));
        }
    }
    let (rows, cols) = (4, 6);
    let r = randn(&mut rng, rows * cols, 1.0);
    let fd = fd_grad(&vec![0.0; cols], &to64(&r), |b| (0..rows * cols).map(|i| b[i % cols]).collect());
    check("add_row_bias bwd (sum_rows)", &cpu.sum_rows(&r, rows, cols), &fd);
}

#[test]
fn scaling_and_mixed_op_backward_matches_finite_differences() {
    let mut rng = Rng::new(16);
    let cpu = cpu(2);
    let g = ChanGeom { n: 2, c: 3, hw: 5 };
    let (x, s, b, r) = (
        randn(&mut rng, g.len(), 1.0),
        randn(&mut rng, g.c, 1.0),
        randn(&mut rng, g.c, 1.0),
        randn(&mut rng, g.len(), 1.0),
    );
    let (x64, s64, b64, r64) = (to64(&x), to64(&s), to64(&b), to64(&r));
    let fd = fd_grad(&x64, &r64, |x| naive::channel_affine(x, &s64, Some(&b64), g));
    check("channel_affine bwd dx (channel_affine of dy)", &cpu.channel_affine(&r, &s, None, g), &fd);
    let fd = fd_grad(&b64, &r64, |b| naive::channel_affine(&x64, &s64, Some(b), g));
    check("  db (channel_sum)", &cpu.channel_sum(&r, g), &fd);
    // ds[c] = <x[:, c], dy[:, c]>, composed from slice_channels and dots.
    let ds: Vec<f32> = (0..g.c)
        .map(|c| {
            let (xc, rc) = (cpu.slice_channels(&x, g.n, g.c, g.hw, c, 1), cpu.slice_channels(&r, g.n, g.c, g.hw, c, 1));
            cpu.dots(&[&xc], &rc)[0]
        })
        .collect();
    check("  ds (slice_channels + dots)", &ds, &fd_grad(&s64, &r64, |s| naive::channel_affine(&x64, s, Some(&b64), g)));
    let sn = randn(&mut rng, g.n, 1.0);
    let fd = fd_grad(&x64, &r64, |x| naive::sample_scale(x, &to64(&sn), g));
    check("sample_scale bwd dx", &cpu.sample_scale(&r, &sn, g), &fd);

    let xs: Vec<Vec<f32>> = (0..4).map(|_| randn(&mut rng, 20, 1.0)).collect();
    let (w, r) = (randn(&mut rng, 4, 1.0), randn(&mut rng, 20, 1.0));
    let xs64: Vec<Vec<f64>> = xs.iter().map(|x| to64(x)).collect();
    let (w64, r64) = (to64(&w), to64(&r));
    let refs: Vec<&Vec<f32>> = xs.iter().collect();
    check("weighted_sum bwd dw (dots)", &cpu.dots(&refs, &r), &fd_grad(&w64, &r64, |w| naive::weighted_sum(&xs64, w)));
    for j in 0..4 {
        let fd = fd_grad(&xs64[j], &r64, |xj| {
            let mut all = xs64.clone();
            all[j] = xj.to_vec();
            naive::weighted_sum(&all, &w64)
        });
        check(&format!("  dx[{j}] (scale_by_elem)"), &cpu.scale_by_elem(&r, &w, j), &fd);
    }
}

#[test]
fn activation_backward_matches_finite_differences() {
    let mut rng = Rng::new(17);
    let cpu = cpu(2);
    // Inputs kept at least 0.05 away from the kinks at 0 and +-1.
    let x: Vec<f32> = randn(&mut rng, 200, 1.5)
        .into_iter()
        .map(|v| if v.abs() < 0.05 || (v.abs() - 1.0).abs() < 0.05 { v + 0.2 } else { v })
        .collect();
    let r = randn(&mut rng, x.len(), 1.0);
    let (x64, r64) = (to64(&x), to64(&r));
    let y = cpu.relu(&x);
    let fd = fd_grad(&x64, &r64, |x| x.iter().map(|v| v.max(0.0)).collect());
    check("relu_bwd", &cpu.relu_bwd(&y, &r), &fd);
    // The clipped STE is the derivative of hardtanh, clamp(x, -1, 1).
    let fd = fd_grad(&x64, &r64, |x| x.iter().map(|v| v.clamp(-1.0, 1.0)).collect());
    check("sign_ste_bwd (derivative of hardtanh)", &cpu.sign_ste_bwd(&x, &r), &fd);
    let at_edges = cpu.sign_ste_bwd(&vec![-1.0, 1.0, 0.999, -0.0], &vec![1.0; 4]);
    assert_eq!(at_edges, vec![0.0, 0.0, 1.0, 1.0], "STE passes only where |x| < 1");
}

#[test]
fn loss_gradients_match_finite_differences() {
    let mut rng = Rng::new(18);
    let cpu = cpu(2);
    let (rows, classes) = (5, 7);
    let logits = randn(&mut rng, rows * classes, 2.0);
    let labels: Vec<usize> = (0..rows).map(|_| rng.below(classes)).collect();
    let labels_f: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
    for smoothing in [0.0, 0.1] {
        let (_, grad) = cpu.softmax_xent(&logits, &labels_f, rows, classes, smoothing);
        let fd = fd_grad(&to64(&logits), &[1.0], |z| vec![naive::softmax_xent(z, &labels, classes, smoothing as f64)]);
        check(&format!("softmax_xent gradient, smoothing {smoothing}"), &grad, &fd);
    }
    let alpha = randn(&mut rng, 14 * 7, 1.0);
    let (_, grad) = cpu.softmax_entropy(&alpha, 14, 7);
    let fd = fd_grad(&to64(&alpha), &[1.0], |a| vec![naive::softmax_entropy(a, 14, 7)]);
    check("softmax_entropy gradient", &grad, &fd);
}

#[test]
fn softmax_rows_backward_matches_finite_differences() {
    let mut rng = Rng::new(20);
    let cpu = cpu(2);
    for (rows, k) in [(1, 1), (3, 7), (14, 8), (2, 300)] {
        let x = randn(&mut rng, rows * k, 2.0);
        let r = randn(&mut rng, rows * k, 1.0);
        let y = cpu.softmax_rows(&x, rows, k);
        let got = cpu.softmax_rows_bwd(&y, &r, rows, k);
        let fd = fd_grad(&to64(&x), &to64(&r), |x| x.chunks(k).flat_map(naive::softmax).collect());
        check(&format!("softmax_rows_bwd [{rows}, {k}]"), &got, &fd);
    }
}

#[test]
fn binarize_weights_bwd_matches_the_reference_formula() {
    // No true derivative exists: compare with a direct f64 transcription of
    // dW = (beta * 1{|W| <= 1} * g + sign(W) * mean_filter(sign(W) * g)) * (1 - 1/c_in) * n.
    let mut rng = Rng::new(19);
    let cpu = cpu(2);
    for (c_out, c_in, kk) in [(4, 3, 9), (2, 5, 25), (3, 1, 1), (6, 1, 9)] {
        let w = randn(&mut rng, c_out * c_in * kk, 0.8);
        let bin = cpu.binarize_weights(&w, c_out, c_in, kk);
        let gr = randn(&mut rng, w.len(), 1.0);
        let got = cpu.binarize_weights_bwd(&bin.centered, &bin.beta, &gr, c_out, c_in, kk);
        let (wc, g64, n) = (to64(&bin.centered), to64(&gr), c_in * kk);
        // A depthwise filter is not centred, so the centring's derivative is 1.
        let centring = if c_in == 1 { 1.0 } else { 1.0 - 1.0 / c_in as f64 };
        let mut want = vec![0.0; w.len()];
        for o in 0..c_out {
            let beta = bin.beta[o] as f64;
            let mean: f64 = (0..n).map(|j| naive::sign(wc[o * n + j]) * g64[o * n + j]).sum::<f64>() / n as f64;
            for j in 0..n {
                let i = o * n + j;
                let pass = if wc[i].abs() <= 1.0 { beta * g64[i] } else { 0.0 };
                want[i] = (pass + naive::sign(wc[i]) * mean) * centring * n as f64;
            }
        }
        let err = max_rel_err(&got, &to32(&want));
        println!("binarize_weights_bwd [{c_out}, {c_in}, {kk}]: max rel err vs formula {err:.2e}");
        assert!(err < 1e-5);
    }
}
