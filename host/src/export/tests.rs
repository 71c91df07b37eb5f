//! The verification triangle on random networks: device kernels, the float reference interpreter
//! and tract on the ONNX export agree. tract on the device-order export gives the device's logits
//! exactly; on the native export (tract's own `Conv` sums), the same argmax and logits within 1e-5.

use super::onnx::{to_onnx, to_onnx_with, Arithmetic};
use super::tract_run::TractModel;
use bnas_device::build::{BinConv, FloatConv, ModelBuilder};
use bnas_device::sample::{aligned, random_net, NetSpec, Rng};
use bnas_device::{reference, Input, Model, Node};
use prost::Message;
use std::collections::BTreeSet;

/// Largest |a - b| over an image's logits, relative to the largest |logit| of that image.
fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let scale = a.iter().chain(b).fold(1e-30f64, |m, &v| m.max(f64::from(v.abs())));
    a.iter().zip(b).map(|(&x, &y)| f64::from((x - y).abs()) / scale).fold(0.0, f64::max)
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| if x > bv { (i, x) } else { (bi, bv) }).0
}

/// Worst relative differences over `n` images: device vs reference, device vs tract on the
/// device-order export (asserted 0) and on the native export.
struct Agreement {
    dev_ref: f64,
    dev_tract: f64,
    dev_tract_native: f64,
}

/// Runs `n` random u8 images through the runtimes; asserts identical argmax, logits equal to
/// tract's on the device-order export, and within 1e-5 of the reference and of native tract.
fn check_triangle(bytes: &[u8], n: usize, batch: usize, seed: u64, what: &str) -> Agreement {
    let words = aligned(bytes);
    let model = Model::parse(&bytemuck::cast_slice::<u32, u8>(&words)[..bytes.len()]).expect("model parses");
    let onnx = to_onnx(&model).expect("ONNX export");
    let proto = tract_onnx::pb::ModelProto::decode(onnx.as_slice()).expect("ONNX decodes");
    let graph = proto.graph.as_ref().expect("graph");
    assert!(graph.value_info.is_empty(), "no intermediate value_info");
    assert_eq!(proto.opset_import[0].version, 13);

    let (c, h, w) = model.input_shape();
    let per = c * h * w;
    let mut r = Rng(seed | 1);
    let images: Vec<u8> = (0..n * per).map(|_| (r.next() >> 11) as u8).collect();
    let run_tract = |onnx: &[u8]| {
        let tract = TractModel::load(onnx, batch, (c, h, w)).expect("tract loads the ONNX");
        tract.run(&images, n).expect("tract runs")
    };
    let tract_logits = run_tract(&onnx);
    let native = to_onnx_with(&model, Arithmetic::Native).expect("native ONNX export");
    let native_logits = run_tract(&native);
    let classes = model.classes();
    assert_eq!(tract_logits.len(), n * classes);

    let mut arena = vec![0u32; model.arena_words()];
    let mut dev = vec![0f32; classes];
    let mut agree = Agreement { dev_ref: 0.0, dev_tract: 0.0, dev_tract_native: 0.0 };
    for (i, img) in images.chunks_exact(per).enumerate() {
        model.infer(Input::U8(img), &mut arena, &mut dev).expect("device infer");
        let refl = reference::run(&model, Input::U8(img)).expect("reference");
        let (tr, nat) = (&tract_logits[i * classes..(i + 1) * classes], &native_logits[i * classes..(i + 1) * classes]);
        assert_eq!(argmax(&dev), argmax(&refl), "{what}, image {i}: device vs reference argmax");
        assert_eq!(&dev[..], tr, "{what}, image {i}: device vs tract (device-order export)");
        assert_eq!(argmax(&dev), argmax(nat), "{what}, image {i}: device {dev:?} vs native tract {nat:?}");
        agree.dev_ref = agree.dev_ref.max(rel_diff(&dev, &refl));
        agree.dev_tract = agree.dev_tract.max(rel_diff(&dev, tr));
        agree.dev_tract_native = agree.dev_tract_native.max(rel_diff(&dev, nat));
    }
    assert!(agree.dev_ref <= 1e-5, "{what}: device vs reference {:.3e}", agree.dev_ref);
    assert!(agree.dev_tract_native <= 1e-5, "{what}: device vs native tract {:.3e}", agree.dev_tract_native);
    agree
}

/// The node kinds and geometries a model exercises, as short labels.
fn coverage(bytes: &[u8]) -> BTreeSet<String> {
    let words = aligned(bytes);
    let model = Model::parse(&bytemuck::cast_slice::<u32, u8>(&words)[..bytes.len()]).expect("model parses");
    let mut seen = BTreeSet::new();
    if model.input_affine().is_some() {
        seen.insert("u8_affine".to_string());
    }
    for t in 0..model.n_tensors() {
        if model.tensor(bnas_device::TensorId(t as u16)).expect("tensor").parent.is_some() {
            seen.insert("concat_slice".into());
        }
    }
    for node in model.nodes() {
        let label = match node {
            Node::BinConv(b) => {
                seen.insert(format!("bin_k{}", b.geom.k));
                seen.insert(format!("bin_stride{}", b.geom.stride));
                seen.insert(format!("bin_dil{}", b.geom.dil));
                if b.geom.pad > 0 {
                    seen.insert("bin_pad".into());
                }
                "bin_conv"
            }
            Node::Conv(_) => "float_conv",
            Node::Affine { .. } => "affine",
            Node::MaxPool { .. } => "max_pool",
            Node::AvgPool { .. } => "avg_pool",
            Node::Add { a, out, .. } if a == out => "add_in_place",
            Node::Add { .. } => "add",
            Node::Zero { .. } => "zero",
            Node::GlobalAvgPool { .. } => "gap",
            Node::Linear { .. } => "linear",
        };
        seen.insert(label.into());
    }
    seen
}

#[test]
fn device_reference_and_tract_agree_on_random_networks() {
    let mut seen = BTreeSet::new();
    let (mut worst_ref, mut worst_native) = (0f64, 0f64);
    for i in 0..20u64 {
        let spec = NetSpec {
            in_c: 1 + (i as usize % 3),
            hw: [6, 7, 8, 5][i as usize % 4],
            c: 3 + (i as usize % 4),
            cells: 1 + (i as usize % 3),
            nodes: 2 + (i as usize % 2),
            classes: 3 + (i as usize % 5),
            seed: 0x5eed_0000 + i * 7919,
        };
        let bytes = random_net(spec);
        seen.extend(coverage(&bytes));
        let a = check_triangle(&bytes, 6, 4, i + 1, &format!("{spec:?}"));
        worst_ref = worst_ref.max(a.dev_ref);
        worst_native = worst_native.max(a.dev_tract_native);
    }
    println!(
        "20 random networks x 6 images: largest relative logit difference device vs reference {worst_ref:.3e}, \
         device vs tract 0 (device-order export, asserted), device vs tract {worst_native:.3e} (native export)"
    );
    for kind in [
        "u8_affine",
        "concat_slice",
        "bin_k1",
        "bin_k3",
        "bin_k5",
        "bin_stride1",
        "bin_stride2",
        "bin_dil1",
        "bin_dil2",
        "bin_pad",
        "float_conv",
        "affine",
        "max_pool",
        "avg_pool",
        "add",
        "add_in_place",
        "zero",
        "gap",
        "linear",
    ] {
        assert!(seen.contains(kind), "no random network exercised {kind}: {seen:?}");
    }
}

fn bin(r: &mut Rng, c_in: usize, c_out: usize, k: usize, stride: usize, dil: usize) -> BinConv {
    BinConv {
        c_out,
        k,
        stride,
        pad: dil * (k - 1) / 2,
        dil,
        flip: (0..c_in).map(|i| [1.0, -1.0, 0.0][i % 3]).collect(),
        threshold: r.vec(c_in, 0.5),
        weights: r.pm1(c_out * c_in * k * k),
        scale: (0..c_out).map(|_| 0.01 + r.f32().abs() * 0.05).collect(),
    }
}

/// Every op of S_B (zero, 3x3 max/avg pool, binary 3x3/5x5 convs, dilated or not, strides 1 and
/// 2) writing the parts of a concat, then slices of a whole-written tensor read and overwritten:
/// the ONNX loads and optimizes in tract and agrees with the device.
#[test]
fn every_op_of_s_b_exports_and_loads_in_tract() {
    let mut r = Rng(99);
    let (c, hw) = (4, 8);
    let mut b = ModelBuilder::new(2, hw, hw);
    b.set_input_affine(&[0.02, -0.01], &[-1.0, 0.5]);
    let stem = b.tensor(c, hw, hw);
    let stem_conv = FloatConv {
        c_out: c,
        k: 3,
        stride: 1,
        pad: 1,
        dil: 1,
        weights: r.vec(c * 2 * 9, 0.5),
        bias: Some(r.vec(c, 0.1)),
        relu: true,
    };
    b.conv(b.input(), &stem_conv, stem).unwrap();
    for stride in [1, 2] {
        let ohw = hw.div_ceil(stride);
        let (whole, parts) = b.concat(&[c; 7], ohw, ohw);
        b.zero(parts[0]).unwrap();
        b.max_pool(stem, stride, parts[1]).unwrap();
        b.avg_pool(stem, stride, parts[2]).unwrap();
        for (j, (k, dil)) in [(3, 1), (5, 1), (3, 2), (5, 2)].into_iter().enumerate() {
            b.bin_conv(stem, &bin(&mut r, c, c, k, stride, dil), parts[3 + j]).unwrap();
        }
        let logits = b.tensor(3, 1, 1);
        if stride == 1 {
            // The concat is now written whole; read and overwrite slices of it.
            let bn = b.tensor(7 * c, ohw, ohw);
            b.affine(whole, &r.vec(7 * c, 1.0), &r.vec(7 * c, 0.5), bn).unwrap();
            b.add(whole, bn, whole).unwrap();
            let pooled = b.tensor(c, ohw, ohw);
            b.max_pool(parts[4], 1, pooled).unwrap();
            b.add(parts[2], pooled, parts[2]).unwrap();
            let mixed = b.tensor(c, ohw, ohw);
            b.bin_conv(whole, &bin(&mut r, 7 * c, c, 1, 1, 1), mixed).unwrap();
            b.add(parts[5], mixed, parts[5]).unwrap();
            let gap = b.tensor(7 * c, 1, 1);
            b.global_avg_pool(whole, gap).unwrap();
            b.linear(gap, &r.vec(3 * 7 * c, 0.5), &r.vec(3, 0.1), logits).unwrap();
        } else {
            let gap = b.tensor(7 * c, 1, 1);
            b.global_avg_pool(whole, gap).unwrap();
            b.linear(gap, &r.vec(3 * 7 * c, 0.5), &r.vec(3, 0.1), logits).unwrap();
        }
        let bytes = b.clone().finish(logits).unwrap();
        let a = check_triangle(&bytes, 5, 2, 7 + stride as u64, &format!("every op, stride {stride}"));
        println!(
            "every op of S_B, stride {stride}: device vs reference {:.3e}, device vs tract {:.3e} \
             (device-order export), {:.3e} (native export)",
            a.dev_ref, a.dev_tract, a.dev_tract_native
        );
    }
}

/// Not a timed assertion: prints tract vs device images/s on a Fashion-MNIST-sized random network.
/// `cargo test --release -p bnas --lib export::tests::bench -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_tract_vs_device_on_a_random_network() {
    let spec = NetSpec { in_c: 1, hw: 28, c: 16, cells: 3, nodes: 4, classes: 10, seed: 7 };
    let bytes = random_net(spec);
    let n = 256;
    let mut r = Rng(3);
    let images: Vec<u8> = (0..n * 28 * 28).map(|_| (r.next() >> 11) as u8).collect();
    println!("{spec:?}");
    super::tract_run::bench_tract_vs_device(&bytes, &images, n).expect("bench");
}
