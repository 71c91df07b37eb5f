//! Optimizer steps against PyTorch's formulas, and the pool's denormal flushing.

use super::tests_fwd::cpu;
use crate::engine::backend::{AdamStep, Backend, SgdStep};
use crate::engine::naive::{to32, to64};
use crate::engine::testutil::{max_rel_err, randn};
use crate::rng::Rng;

/// f32 optimizer state against the f64 loop after three steps.
const OPT_BOUND: f64 = 1e-5;

fn check(what: &str, got: &[f32], want: &[f64]) {
    let err = max_rel_err(got, &to32(want));
    println!("{what}: max rel err vs f64 PyTorch formula {err:.2e}");
    assert!(err < OPT_BOUND, "{what}: {err:.2e} >= {OPT_BOUND:.0e}");
}

#[test]
fn sgd_matches_pytorch_formula_for_three_steps() {
    let mut rng = Rng::new(21);
    // Small (serial) and large (parallel chunks) parameters.
    for len in [50, 70_001] {
        let cpu = cpu(2);
        let h = SgdStep { lr: 0.05, momentum: 0.9, weight_decay: 3e-4 };
        let scale = 0.7;
        let mut p = randn(&mut rng, len, 1.0);
        let mut mom = vec![0.0; len];
        let (mut p64, mut m64) = (to64(&p), vec![0.0; len]);
        for _ in 0..3 {
            let g = randn(&mut rng, len, 1.0);
            cpu.sgd_step(&mut p, &g, &mut mom, scale, h);
            for i in 0..len {
                // torch.optim.SGD: d_p = grad + wd * p; buf = mu * buf + d_p; p -= lr * buf.
                let d = scale as f64 * g[i] as f64 + h.weight_decay as f64 * p64[i];
                m64[i] = h.momentum as f64 * m64[i] + d;
                p64[i] -= h.lr as f64 * m64[i];
            }
        }
        check(&format!("sgd_step x3 ({len}) params"), &p, &p64);
        check("  momentum buffer", &mom, &m64);
    }
}

#[test]
fn adam_matches_pytorch_formula_for_three_steps() {
    let mut rng = Rng::new(22);
    for len in [50, 70_001] {
        let cpu = cpu(2);
        let scale = 0.5;
        let mut p = randn(&mut rng, len, 1.0);
        let (mut m, mut v) = (vec![0.0; len], vec![0.0; len]);
        let (mut p64, mut m64, mut v64) = (to64(&p), vec![0.0; len], vec![0.0; len]);
        for t in 1..=3u32 {
            let h = AdamStep { lr: 3e-3, beta1: 0.5, beta2: 0.999, eps: 1e-8, weight_decay: 1e-3, t };
            let g = randn(&mut rng, len, 1.0);
            cpu.adam_step(&mut p, &g, &mut m, &mut v, scale, h);
            let (b1, b2) = (h.beta1 as f64, h.beta2 as f64);
            let bc1 = 1.0 - b1.powi(t as i32);
            let bc2 = 1.0 - b2.powi(t as i32);
            for i in 0..len {
                // torch.optim.Adam: grad += wd * p; m, v moments; denom = sqrt(v)/sqrt(bc2) + eps;
                // p -= lr / bc1 * m / denom.
                let d = scale as f64 * g[i] as f64 + h.weight_decay as f64 * p64[i];
                m64[i] = b1 * m64[i] + (1.0 - b1) * d;
                v64[i] = b2 * v64[i] + (1.0 - b2) * d * d;
                let denom = v64[i].sqrt() / bc2.sqrt() + h.eps as f64;
                p64[i] -= h.lr as f64 / bc1 * m64[i] / denom;
            }
        }
        check(&format!("adam_step x3 ({len}) params"), &p, &p64);
        check("  first moment", &m, &m64);
        check("  second moment", &v, &v64);
    }
}

#[test]
fn pool_threads_flush_denormals() {
    let cpu = cpu(2);
    let tiny = f32::MIN_POSITIVE; // smallest normal
    let x = vec![tiny; 4];
    // Halving the smallest normal gives a denormal, flushed to 0 on the pool's threads.
    let y = cpu.pool.install(|| std::hint::black_box(&x).iter().map(|v| v * 0.5).collect::<Vec<f32>>());
    println!("MIN_POSITIVE * 0.5 on a pool thread: {:e}", y[0]);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(y, vec![0.0; 4], "FTZ must be set on the pool's threads");
    }
    assert!(cpu.describe().starts_with("cpu (2 threads, "), "{}", cpu.describe());
}

/// Prints the convolution throughput of the supernet's shapes. Run it in release mode:
/// `cargo test --release -p bnas --lib bench_supernet_convs -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: prints a table, asserts nothing"]
fn bench_supernet_convs() {
    use crate::engine::bench::{bench_conv, conv_table, supernet_conv_shapes};
    let cpu = super::Cpu::new(None).expect("thread pool");
    println!("{}", cpu.describe());
    let results = bench_conv(&cpu, &supernet_conv_shapes(), 3);
    println!("{}", conv_table(&results));
}

/// Channel slices (overlapping, and one of them taken twice) send their gradients into the
/// right channels of the source: `d/dx` of `seed . concat(slices)` is the seed routed back.
#[test]
fn channel_slices_route_gradients_into_their_channels() {
    use crate::engine::{Group, ParamStore, Tape};
    let cpu = cpu(1);
    let mut rng = Rng::new(41);
    let (n, c, hw) = (2, 5, 6);
    let x = randn(&mut rng, n * c * hw, 1.0);
    let mut params = ParamStore::default();
    let id = params.add(&cpu, "x".into(), vec![n, c, 2, 3], Group::Weight, x.clone());
    let ranges = [(0, 2), (1, 3), (4, 1), (1, 3)];
    let mut t = Tape::new(&cpu, &params, true, true);
    let xv = t.param(id);
    let parts: Vec<_> = ranges.iter().map(|&(off, len)| t.channels(xv, off, len).unwrap()).collect();
    for (&p, &(off, len)) in parts.iter().zip(&ranges) {
        let v = t.to_vec(p);
        for s in 0..n {
            assert_eq!(v[s * len * hw..(s + 1) * len * hw], x[(s * c + off) * hw..(s * c + off + len) * hw]);
        }
    }
    let y = t.concat(&parts).unwrap();
    let total: usize = ranges.iter().map(|r| r.1).sum();
    let seed = randn(&mut rng, n * total * hw, 1.0);
    let grads = t.backward_with(y, seed.clone());
    let mut want = vec![0.0f32; n * c * hw];
    for s in 0..n {
        let mut at = s * total * hw;
        for &(off, len) in &ranges {
            for (i, v) in seed[at..at + len * hw].iter().enumerate() {
                want[(s * c + off) * hw + i] += v;
            }
            at += len * hw;
        }
    }
    let err = max_rel_err(grads.get(id).unwrap(), &want);
    println!("channel slice gradients: max rel err {err:.2e}");
    assert!(err < 1e-6);
    let mut t = Tape::new(&cpu, &params, true, true);
    let xv = t.param(id);
    assert!(t.channels(xv, 4, 2).is_err(), "a slice past the last channel is a shape error");
}

/// `new_rows` writes every row from its iterator, serially and on the pool (rows longer and
/// shorter than a parallel chunk), and refuses a row iterator of the wrong length.
#[test]
fn new_rows_writes_each_row_once_and_refuses_a_wrong_length() {
    for threads in [1, 2] {
        let cpu = cpu(threads);
        for (rows, row_len) in [(0, 0), (0, 5), (3, 7), (40_000, 3), (5, 20_000)] {
            let got = cpu.new_rows(rows * row_len, row_len, |r| (0..row_len).map(move |i| (r * row_len + i) as f32));
            let want: Vec<f32> = (0..rows).flat_map(|r| (0..row_len).map(move |i| (r * row_len + i) as f32)).collect();
            assert!(got == want, "{threads} threads, {rows} rows of {row_len}");
        }
        for extra in [-1isize, 1] {
            let short = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                cpu.new_rows(40_000 * 3, 3, |r| (0..3 + if r == 39_999 { extra } else { 0 }).map(|i| i as f32))
            }));
            let msg = short.expect_err("a row of the wrong length must panic");
            let msg = msg.downcast_ref::<String>().map(String::as_str).unwrap_or("");
            assert!(msg.contains("row 39999 is not 3 values long"), "{threads} threads: {msg:?}");
        }
    }
}
