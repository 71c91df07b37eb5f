//! Writes a model with one binary conv (for per-layer instruction counts on the firmware):
//! `bin_layer_model OUT.bnas C HW K DIL [PAD]` -> input [C, HW, HW] -> bin_conv(C -> C, K, dil DIL,
//! padding PAD, default same) -> GAP -> linear(10).

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let n = |i: usize| -> usize { a[i].parse().expect("usage: bin_layer_model OUT C HW K DIL [PAD]") };
    let (c, hw, k, dil) = (n(2), n(3), n(4), n(5));
    let pad = if a.len() > 6 { n(6) } else { dil * (k - 1) / 2 };
    std::fs::write(&a[1], bnas_device::sample::bin_layer(c, c, hw, k, dil, 1, pad)).unwrap();
}
