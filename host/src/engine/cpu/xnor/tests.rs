//! The XNOR kernels (bit im2col and flat) against the float conv: bit-for-bit equality on
//! every runner, and the side-by-side benchmark table.

use super::super::conv;
use super::super::tests_fwd::{conv as geom, cpu};
use super::*;
use crate::engine::backend::Backend;
use crate::engine::geom::ChanGeom;
use crate::rng::Rng;

/// The XNOR count against the float conv (im2col + sgemm) of the same +-1 operands: equal
/// bit for bit, over channel counts either side of a word and whole words (whose window words
/// are copied, at stride 1 and 2), odd sizes (the flat kernel packs rows of up to 16 pixels,
/// up to 32 and past 32), strides, dilations and padding wider than the kernel's reach,
/// batches that split across threads and micro-batches; by every runner this CPU has (each
/// instruction set's copy of the loops), and at stride 1 by every runner of the flat kernel
/// too (its vector one where the CPU has it, and its portable twin).
#[test]
fn xnor_conv_equals_float_conv_of_signs() {
    let cpu = cpu(2);
    let (runners, flat_runners) = (runners(), xnor_flat::runners());
    let mut rng = Rng::new(7);
    let mut pm1 = |n: usize| -> Vec<f32> { (0..n).map(|_| if rng.next_u64() & 1 == 1 { 1.0 } else { -1.0 }).collect() };
    let (mut cases, mut flat_cases, mut flat_fit) = (0, 0, 0);
    let mut largest = 0.0f32;
    for &(n, c_in, hw, c_out, k, stride, pad, dil) in &[
        (3, 1, 9, 5, 3, 1, 1, 1),
        (2, 16, 12, 16, 3, 1, 1, 1),
        (5, 16, 7, 9, 5, 1, 4, 2),
        (2, 33, 11, 7, 3, 2, 1, 1),
        (2, 64, 8, 6, 3, 1, 1, 1),
        (2, 128, 9, 5, 3, 2, 1, 1),
        (2, 16, 20, 8, 3, 1, 1, 1),
        (1, 8, 33, 4, 3, 1, 1, 1),
        (2, 70, 6, 4, 1, 1, 0, 1),
        (1, 130, 5, 3, 3, 2, 2, 1),
        (4, 24, 14, 12, 5, 1, 2, 1),
        (3, 8, 5, 4, 3, 1, 3, 1),
        (2, 12, 28, 12, 3, 2, 0, 1),
        (70, 16, 3, 16, 3, 1, 1, 1),
        (2, 5, 9, 4, 7, 1, 3, 1),
        (3, 40, 10, 9, 3, 1, 2, 2),
    ] {
        let g = geom(n, c_in, hw, hw + 1, c_out, k, stride, pad, dil);
        let (x, w) = (pm1(g.in_len()), pm1(g.weight_len()));
        let want = conv::forward(&cpu, &x, &w, None, g);
        // With the binary conv's scale and ReLU fused: exactly channel_affine then relu.
        let scale: Vec<f32> = (0..c_out).map(|o| 0.01 + 0.37 * o as f32).collect();
        let og = ChanGeom { n: g.n, c: g.c_out, hw: g.out_h() * g.out_w() };
        let want_scaled = cpu.relu(&cpu.channel_affine(&want, &scale, None, og));
        for &(run, name) in &runners {
            let got = sign_conv_with(run, &cpu, &x, &w, None, g);
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                largest = largest.max((a - b).abs());
                assert_eq!(a.to_bits(), b.to_bits(), "{name}, {g:?} at {i}: xnor {a} vs float {b}");
            }
            let got = sign_conv_with(run, &cpu, &x, &w, Some(&scale), g);
            assert!(got.iter().zip(&want_scaled).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}, {g:?}: scaled");
        }
        flat_fit += usize::from(xnor_flat::fits(&g));
        for &(run, name) in flat_runners.iter().filter(|_| xnor_flat::fits(&g)) {
            let got = xnor_flat::sign_conv_flat(run, &cpu, &x, &w, None, g);
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                largest = largest.max((a - b).abs());
                assert_eq!(a.to_bits(), b.to_bits(), "{name}, {g:?} at {i}: xnor {a} vs float {b}");
            }
            let got = xnor_flat::sign_conv_flat(run, &cpu, &x, &w, Some(&scale), g);
            assert!(got.iter().zip(&want_scaled).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}, {g:?}: scaled");
            flat_cases += 1;
        }
        cases += 1;
    }
    let names: Vec<_> = runners.iter().map(|r| r.1).chain(flat_runners.iter().map(|r| r.1)).collect();
    println!("{cases} geometries ({flat_fit} at stride 1 also by the flat kernel), runners {names:?}: largest |xnor - float| = {largest}");
    assert_eq!(flat_cases, flat_fit * flat_runners.len(), "every flat runner ran on each geometry it takes");
    assert!(flat_fit >= 9, "the flat kernel ran only {flat_fit} of the geometries");
}

/// The XNOR forward beside the float forward (im2col + sgemm) of the same shapes, timed side by
/// side (alternating runs of 3, the best of the warm 20 each), with the ratio: the im2col
/// kernel, and the flat kernel where it fits the geometry and this CPU has its vector runner.
/// `cargo test --release -p bnas --lib bench_xnor_vs_float -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: prints a table"]
fn bench_xnor_vs_float() {
    let cpu = Cpu::new(None).expect("thread pool");
    println!("{}", cpu.describe());
    let mut rng = Rng::new(9);
    println!(
        "{:<22} {:>9} {:>10} {:>8} {:>8} {:>8} {:>11}",
        "conv (n c hxw k dil)", "float ms", "im2col ms", "ratio", "flat ms", "ratio", "* GMAC/s"
    );
    // The last five: bnas-imagenet's stages at 16 channels (batch 64, 28 -> 14 -> 7 px).
    let shapes = [
        (16, 64, 16, 3, 1),
        (16, 128, 16, 3, 1),
        (16, 256, 8, 3, 1),
        (16, 128, 16, 5, 2),
        (64, 64, 8, 3, 1),
        (64, 16, 28, 3, 1),
        (64, 16, 28, 5, 2),
        (64, 32, 14, 3, 1),
        (64, 32, 14, 5, 2),
        (64, 64, 7, 3, 1),
    ];
    for &(n, c, hw, k, dil) in &shapes {
        let g = geom(n, c, hw, hw, c, k, 1, dil * (k - 1) / 2, dil);
        let pm1 = |rng: &mut Rng, len: usize| -> Vec<f32> {
            (0..len).map(|_| if rng.next_u64() & 1 == 1 { 1.0 } else { -1.0 }).collect()
        };
        let (x, w) = (pm1(&mut rng, g.in_len()), pm1(&mut rng, g.weight_len()));
        let scale = vec![0.01; c];
        let time = |f: &dyn Fn() -> Vec<f32>| {
            let t = std::time::Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        };
        let flat = xnor_flat::pick().filter(|_| xnor_flat::fits(&g));
        let sides: [&dyn Fn() -> Vec<f32>; 3] = [
            &|| conv::forward(&cpu, &x, &w, None, g),
            &|| sign_conv_with(pick_runner().0, &cpu, &x, &w, Some(&scale), g),
            &|| flat.map_or_else(Vec::new, |(run, _)| xnor_flat::sign_conv_flat(run, &cpu, &x, &w, Some(&scale), g)),
        ];
        // Alternated in short runs, so that a slow spell of the (shared) machine hits every
        // side alike, each run after a warm-up (the other sides' buffers evict this one's).
        let warm = |f: &dyn Fn() -> Vec<f32>| {
            time(f);
            time(f).min(time(f))
        };
        let mut best = [f64::MAX; 3];
        for _ in 0..10 {
            for (b, side) in best.iter_mut().zip(&sides) {
                *b = b.min(warm(*side));
            }
        }
        let [float_s, im2col_s, flat_s] = best;
        // The kernel sign_conv runs for this geometry is starred.
        let taken = flat.is_some() && xnor_flat::takes(&g);
        let flat_cols = if flat.is_some() {
            format!("{:>8.3} {:>6.1}x{}", flat_s * 1e3, float_s / flat_s, if taken { "*" } else { " " })
        } else {
            format!("{:>8} {:>7} ", "-", "-")
        };
        let run_s = if taken { flat_s } else { im2col_s };
        println!(
            "{:<22} {:>9.3} {:>10.3} {:>6.1}x{} {flat_cols} {:>11.0}",
            format!("{n} {c} {hw}x{hw} k{k} d{dil}"),
            float_s * 1e3,
            im2col_s * 1e3,
            float_s / im2col_s,
            if taken { " " } else { "*" },
            g.macs() as f64 / run_s / 1e9,
        );
    }
}
