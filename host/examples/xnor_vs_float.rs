//! The device crate's XNOR-popcount conv against the host's CPU float conv (im2col + sgemm), both
//! single-threaded, on the same shapes (batch 1, 3x3, stride 1, same padding).
//!
//!     cargo run --release -p bnas --example xnor_vs_float
//!     RUSTFLAGS="-C target-cpu=native" cargo run --release -p bnas --example xnor_vs_float
//!
//! Without a popcnt target feature the binary kernel counts with its Harley-Seal carry-save tree;
//! with it (`-C target-cpu=native` on any x86-64 since 2008), with the popcnt instruction. The
//! binary time includes binarizing and packing the float input, so both sides go from the same f32
//! CHW tensor to an f32 CHW output (the float side adds ReLU-free output; the binary side applies
//! its scale and ReLU). MACs are `c_out * c_in * 9 * h * w` for both. "xnor" is the dense-row kernel
//! (`bin_conv_dense`, what host builds of the device crate run), "tap" the per-tap kernel (`bin_conv`).

use bnas::engine::backend::Backend;
use bnas::engine::cpu::Cpu;
use bnas::engine::geom::ConvGeom;
use bnas_device::kernels::{bin_conv, bin_conv_dense, binarize, dense_work_words, Shape};
use bnas_device::sample::{best_of, Rng};

fn main() -> anyhow::Result<()> {
    let cpu = Cpu::new(Some(1))?;
    let mut r = Rng(42);
    println!(
        "popcnt target feature: {}; float: bnas::engine::cpu::Cpu conv2d (im2col + sgemm), 1 thread",
        cfg!(target_feature = "popcnt")
    );
    println!(
        "{:>22} {:>10} {:>12} {:>10} {:>12} {:>8} {:>10} {:>8}",
        "c_in=c_out, hw, k", "float ms", "float GMAC/s", "xnor ms", "xnor GMAC/s", "ratio", "tap ms", "ratio"
    );
    for &(c, hw) in &[(64usize, 14usize), (64, 28), (128, 14), (128, 28), (256, 14)] {
        let k = 3;
        let g = ConvGeom { n: 1, c_in: c, h: hw, w: hw, c_out: c, k, stride: 1, pad: 1, dil: 1 };
        let x = r.vec(c * hw * hw, 1.0);
        let w = r.pm1(c * c * k * k);
        let reps = if c * hw >= 128 * 28 { 20 } else { 50 };
        let mut y = Vec::new();
        let float_s = best_of(reps, || y = cpu.conv2d(&x, &w, None, g));
        assert_eq!(y.len(), c * hw * hw);

        let xs = Shape { c, h: hw, w: hw };
        let dg = bnas_device::ConvGeom { k, stride: 1, pad: 1, dil: 1 };
        let wpt = c.div_ceil(32);
        let packed = bnas_device::build::pack(&w, c, c, k);
        let (flip, thr, scale) = (vec![1.0; c], vec![0.0; c], vec![0.01; c]);
        let mut bits = vec![0u32; hw * hw * wpt];
        let mut row = vec![0u32; k * k * wpt];
        let mut sums = vec![0u32; c * k * k];
        let mut out = vec![0f32; c * hw * hw];
        let tap_s = best_of(reps, || {
            binarize(&x, hw * hw, &flip, &thr, &mut bits);
            bin_conv(&bits, xs, dg, &scale, &packed, &mut row, &mut sums, &mut out, xs);
        });
        let mut work = vec![0u32; dense_work_words(c, c, dg, hw, hw)];
        let xnor_s = best_of(reps, || {
            binarize(&x, hw * hw, &flip, &thr, &mut bits);
            bin_conv_dense(&bits, xs, dg, &scale, &packed, &mut work, &mut out, xs);
        });

        let macs = (c * c * k * k * hw * hw) as f64;
        println!(
            "{:>22} {:>10.3} {:>12.2} {:>10.3} {:>12.1} {:>7.1}x {:>10.3} {:>7.1}x",
            format!("{c}, {hw}x{hw}, {k}x{k}"),
            float_s * 1e3,
            macs / float_s / 1e9,
            xnor_s * 1e3,
            macs / xnor_s / 1e9,
            float_s / xnor_s,
            tap_s * 1e3,
            float_s / tap_s
        );
    }
    Ok(())
}
