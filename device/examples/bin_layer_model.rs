//! Writes a model with one binary conv (for per-layer instruction counts on the firmware):
//! `bin_layer_model OUT.bnas C HW K DIL [PAD]` -> input [C, HW, HW] -> bin_conv(C -> C, K, dil DIL,
//! padding PAD, default same) -> GAP -> linear(10).

use bnas_device::build::{BinConv, ModelBuilder};
use bnas_device::sample::Rng;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let n = |i: usize| -> usize { a[i].parse().expect("usage: bin_layer_model OUT C HW K DIL") };
    let (c, hw, k, dil) = (n(2), n(3), n(4), n(5));
    let mut r = Rng(5);
    let mut b = ModelBuilder::new(c, hw, hw);
    b.set_input_affine(&vec![1.0 / 255.0; c], &vec![-0.5; c]);
    let pad: usize = a.get(6).map(|s| s.parse().unwrap()).unwrap_or(dil * (k - 1) / 2);
    let ohw = hw + 2 * pad - dil * (k - 1);
    let y = b.tensor(c, ohw, ohw);
    let p = BinConv {
        c_out: c,
        k,
        stride: 1,
        pad,
        dil,
        flip: vec![1.0; c],
        threshold: r.vec(c, 0.2),
        weights: r.pm1(c * c * k * k),
        scale: vec![0.01; c],
    };
    b.bin_conv(b.input(), &p, y).unwrap();
    let g = b.tensor(c, 1, 1);
    b.global_avg_pool(y, g).unwrap();
    let l = b.tensor(10, 1, 1);
    b.linear(g, &r.vec(10 * c, 1.0), &r.vec(10, 1.0), l).unwrap();
    std::fs::write(&a[1], b.finish(l).unwrap()).unwrap();
}
