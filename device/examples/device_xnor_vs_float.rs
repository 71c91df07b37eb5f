//! The XNOR-popcount conv against a float conv of the same shape, timed side by side in one run.
//!
//! `RUSTFLAGS="-C target-cpu=native" cargo run --release -p bnas-device --features std --example device_xnor_vs_float`
//! (without a popcnt target feature the kernel falls back to the carry-save tree). "dense" is the
//! dense-row kernel (`bin_conv_dense`), "lanes" the bit-lane kernel (`bin_conv_lanes`; the device
//! runs whichever `use_lanes` picks, marked *), "tap" the per-tap kernel (`bin_conv`, channels
//! padded to 32 per tap). The binary side includes binarizing and packing its input; the float side is the crate's direct conv
//! (the stem/skip kernel), a direct loop, not a tuned GEMM: its GMAC/s are printed so the ratio
//! can be rescaled against any float baseline (a good CPU GEMM reaches 30-45 GMAC/s on the
//! project's 2-core machines).

use bnas_device::kernels::{
    bin_conv, bin_conv_dense, bin_conv_lanes, binarize, binarize_rows, conv2d, dense_work_words, lane_work_words,
    phase_row_words, use_lanes, Shape,
};
use bnas_device::sample::{best_of, Rng};
use bnas_device::ConvGeom;

fn main() {
    let mut r = Rng(42);
    println!("popcnt target feature: {}", cfg!(target_feature = "popcnt"));
    println!(
        "{:>28} {:>10} {:>12} {:>10} {:>8} {:>10} {:>8} {:>10} {:>8}",
        "shape (c_in=c_out, hw, k)",
        "float ms",
        "float GMAC/s",
        "dense ms",
        "ratio",
        "lanes ms",
        "ratio",
        "tap ms",
        "ratio"
    );
    for &(c, hw, k, dil) in &[
        (12usize, 28usize, 5usize, 2usize),
        (24, 14, 5, 2),
        (48, 7, 5, 2),
        (64, 16, 3, 1),
        (128, 16, 3, 1),
        (256, 8, 3, 1),
        (128, 16, 5, 2),
    ] {
        let g = ConvGeom { k, stride: 1, pad: dil * (k - 1) / 2, dil };
        let xs = Shape { c, h: hw, w: hw };
        let x = r.vec(c * hw * hw, 1.0);
        let w_f = r.pm1(c * c * k * k);
        let mut out = vec![0f32; c * hw * hw];
        let float_s = best_of(5, || conv2d(&x, xs, g, &w_f, None, true, &mut out, xs));
        let wpt = c.div_ceil(32);
        let packed = bnas_device::build::pack(&w_f, c, c, k);
        let (flip, thr, scale) = (vec![1.0; c], vec![0.0; c], vec![0.01; c]);
        let mut bits = vec![0u32; hw * hw * wpt];
        let mut row = vec![0u32; k * k * wpt];
        let mut sums = vec![0u32; c * k * k];
        let tap_s = best_of(5, || {
            binarize(&x, hw * hw, &flip, &thr, &mut bits);
            bin_conv(&bits, xs, g, &scale, &packed, &mut row, &mut sums, &mut out, xs);
        });
        let mut work = vec![0u32; dense_work_words(c, c, g, hw, hw)];
        let xnor_s = best_of(5, || {
            binarize(&x, hw * hw, &flip, &thr, &mut bits);
            bin_conv_dense(&bits, xs, g, &scale, &packed, &mut work, &mut out, xs);
        });
        let mut rows = vec![0u32; phase_row_words(c, hw, hw, 1)];
        let mut lane_work = vec![0u32; lane_work_words(c, g, hw, hw)];
        let lanes_s = best_of(5, || {
            binarize_rows(&x, xs, 1, &flip, &thr, &mut rows);
            bin_conv_lanes(&mut rows, xs, g, &scale, &packed, &mut lane_work, &mut out, xs);
        });
        let macs = (c * c * hw * hw * k * k) as f64;
        let picked = if use_lanes(c, g, hw, hw) { ("", "*") } else { ("*", "") };
        println!(
            "{:>28} {:>10.3} {:>12.2} {:>9.3}{} {:>7.1}x {:>9.3}{} {:>7.1}x {:>10.3} {:>7.1}x",
            format!("{c}, {hw}x{hw}, {k}x{k} dil {dil}"),
            float_s * 1e3,
            macs / float_s / 1e9,
            xnor_s * 1e3,
            picked.0,
            float_s / xnor_s,
            lanes_s * 1e3,
            picked.1,
            float_s / lanes_s,
            tap_s * 1e3,
            float_s / tap_s
        );
    }
}
