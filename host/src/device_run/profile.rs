//! Per-layer binary MACs per instruction on the firmware under QEMU (run by hand:
//! `cargo test --release -p bnas device_run::profile -- --ignored --nocapture`).

use super::*;
use bnas_device::sample::{bin_layer, float_layer, random_net, NetSpec, Rng};

/// input [c, hw, hw] -> bin_conv(c -> c_out, k, dil, stride, same padding) -> GAP -> linear(10).
fn one_layer(c: usize, c_out: usize, hw: usize, k: usize, dil: usize, stride: usize) -> Vec<u8> {
    bin_layer(c, c_out, hw, k, dil, stride, dil * (k - 1) / 2)
}

fn run(name: &str, bytes: Vec<u8>) -> Result<DeviceRunSummary> {
    let dir = crate::test_dirs::TempDir::new("device-profile");
    let path = dir.0.join(format!("{name}.bnas"));
    std::fs::write(&path, bytes).unwrap();
    let (words, len) = read_model(&path).unwrap();
    let n = {
        let m = Model::parse(&bytemuck::cast_slice::<u32, u8>(&words)[..len]).unwrap();
        let (c, h, w) = m.input_shape();
        c * h * w
    };
    let mut r = Rng(3);
    let images: Vec<Vec<u8>> = (0..2).map(|_| (0..n).map(|_| r.below(256) as u8).collect()).collect();
    let s = run_images(&path, &images, &DeviceRunOptions::default())?;
    assert!(s.all_agree(), "{name}: device and host differ");
    Ok(s)
}

#[test]
#[ignore = "builds several firmwares and runs them under QEMU (minutes)"]
fn profile_bin_layers() {
    println!("{:>34} {:>12} {:>12} {:>10}", "layer (c, hw, k, dil, stride)", "MACs", "instructions", "MACs/instr");
    // (c in, c out, hw, k, dil, stride). The first six are fmnist-demo's cell shapes (C = 12, 24,
    // 48 at 28, 14, 7 pixels); 36 -> 12 is its first cell's 1x1 preprocessing conv.
    let layers = [
        (12, 12, 28, 5, 2, 1),
        (12, 12, 28, 3, 1, 1),
        (24, 24, 14, 5, 2, 1),
        (24, 24, 14, 3, 1, 1),
        (48, 48, 7, 5, 2, 1),
        (48, 48, 7, 3, 1, 1),
        (24, 24, 28, 5, 2, 2),
        (48, 48, 14, 5, 2, 2),
        (48, 24, 28, 3, 1, 2),
        (36, 36, 28, 1, 1, 1),
        (36, 12, 28, 1, 1, 1),
        (32, 32, 16, 3, 1, 1),
        (64, 64, 16, 3, 1, 1),
        (128, 128, 8, 3, 1, 1),
    ];
    // BNAS_PROFILE_ONLY=12,28 runs only the layers whose label (c in, hw, k, dil, stride) starts
    // with it (and not the net).
    let only = std::env::var("BNAS_PROFILE_ONLY").unwrap_or_default();
    for &(c, c_out, hw, k, dil, stride) in &layers {
        if !format!("{c},{hw},{k},{dil},{stride}").starts_with(&only) {
            continue;
        }
        let shape = if c_out == c { format!("{c}") } else { format!("{c} -> {c_out}") };
        let label = format!("{shape}, {hw}x{hw}, {k}x{k}, dil {dil}, s {stride}");
        let s = match run(&format!("l{c}_{c_out}_{hw}_{k}_{dil}_{stride}"), one_layer(c, c_out, hw, k, dil, stride)) {
            Ok(s) => s,
            Err(e) => {
                println!("{label}: {e}");
                continue;
            }
        };
        println!(
            "{:>34} {:>12} {:>12} {:>10.2}",
            label, s.bin_conv_macs, s.bin_conv_instructions, s.bin_macs_per_instruction
        );
    }
    for spec in [NetSpec { in_c: 3, hw: 8, c: 32, cells: 3, nodes: 4, classes: 10, seed: 7 }] {
        if !only.is_empty() {
            break;
        }
        let s = match run(&format!("net{}_{}", spec.hw, spec.c), random_net(spec)) {
            Ok(s) => s,
            Err(e) => {
                println!("net {spec:?}: {e}");
                continue;
            }
        };
        println!(
            "net in {}x{}x{}, C {}, {} cells: {:.0} instructions/inference, binary convs {} MACs in {} instructions ({:.2} MACs/instr)",
            spec.in_c, spec.hw, spec.hw, spec.c, spec.cells, s.instructions_mean, s.bin_conv_macs,
            s.bin_conv_instructions, s.bin_macs_per_instruction
        );
    }
}

/// The float convs' instructions per MAC: the demo's stem and reduction skips (the first node of
/// each one-layer model: input -> float conv -> GAP -> linear).
#[test]
#[ignore = "builds several firmwares and runs them under QEMU (minutes)"]
fn profile_float_layers() {
    println!("{:>34} {:>12} {:>12} {:>10}", "layer (c, hw, k, stride)", "MACs", "instructions", "instr/MAC");
    // (c in, c out, hw, k, stride, pad): the stems of a 1- and a 3-channel input, then
    // fmnist-demo's and the demo's two reduction skips. BNAS_PROFILE_ONLY=1,28 runs the layers
    // whose label (c in, hw, k, stride) starts with it.
    let layers = [(1, 36, 28, 3, 1, 1), (3, 48, 32, 3, 1, 1), (48, 96, 28, 2, 2, 0), (96, 192, 14, 2, 2, 0)];
    let only = std::env::var("BNAS_PROFILE_ONLY").unwrap_or_default();
    for (c, c_out, hw, k, stride, pad) in layers {
        if !format!("{c},{hw},{k},{stride}").starts_with(&only) {
            continue;
        }
        let label = format!("{c} -> {c_out}, {hw}x{hw}, {k}x{k}, s {stride}");
        let s = match run(&format!("f{c}_{c_out}_{hw}_{k}_{stride}"), float_layer(c, c_out, hw, k, stride, pad)) {
            Ok(s) => s,
            Err(e) => {
                println!("{label}: {e}");
                continue;
            }
        };
        let o = bnas_device::kernels::out_width(hw, bnas_device::ConvGeom { k, stride, pad, dil: 1 });
        let macs = (c_out * o * o * c * k * k) as u64;
        let instructions = s.per_node.first().map(|n| n.instructions).unwrap_or(0);
        println!("{label:>34} {macs:>12} {instructions:>12} {:>10.2}", instructions as f64 / macs.max(1) as f64);
    }
}
