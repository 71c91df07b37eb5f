//! Writes a random T_B-style sample model: `cargo run -p bnas-device --features std --example
//! sample_model -- OUT.bnas [C] [HW] [CELLS] [SEED]` (defaults 32 channels, 16x16x3, 3 cells).

use bnas_device::sample::{random_net, NetSpec};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).expect("usage: sample_model OUT.bnas [C] [HW] [CELLS] [SEED]");
    let num = |i: usize, d: usize| args.get(i).map(|s| s.parse().expect("a number")).unwrap_or(d);
    let spec = NetSpec {
        in_c: 3,
        hw: num(3, 16),
        c: num(2, 32),
        cells: num(4, 3),
        nodes: 4,
        classes: 10,
        seed: num(5, 7) as u64,
    };
    let bytes = random_net(spec);
    std::fs::write(out, &bytes).expect("write model");
    println!("{out}: {} bytes, {spec:?}", bytes.len());
}
