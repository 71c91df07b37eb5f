//! Network-level tests: parameter counts against hand-derived values, and gradients through
//! the tape against finite differences.

use super::genotype::Genotype;
use super::network::{NetConfig, Network, Template};
use super::supernet::{SearchSpace, SuperNet};
use crate::engine::cpu::Cpu;
use crate::engine::{Backend, Buffers, Group, ParamStore, Tape};
use crate::rng::Rng;

fn cfg(layers: usize, channels: usize, input: [usize; 3]) -> NetConfig {
    NetConfig { layers, channels, classes: 10, input, template: Template::Bnas }
}

fn count(g: &Genotype, c: &NetConfig) -> (usize, Network) {
    let cpu = Cpu::new(Some(1)).unwrap();
    let (mut p, mut b) = (ParamStore::default(), Buffers::default());
    let net = Network::new(&cpu, g, c, &mut p, &mut b, &mut Rng::new(0));
    (p.count(Group::Weight), net)
}

#[test]
fn bnas_a_cifar10_matches_the_paper_parameter_count() {
    let (n, net) = count(&Genotype::bnas_a(), &cfg(20, 36, [3, 32, 32]));
    println!("bnas-a 20 x 36 cifar10: {n} parameters (paper: 5,578,252), {} binary convs", net.bin_convs);
    assert_eq!(n, 5_578_252);
}

/// Hand derivation for bnas-a, 8 layers, 16 channels, 1x28x28 (reductions at cells 2 and 5):
/// stem BN(1) 2 + conv 1->48 3x3 432.
/// A binary conv c_in -> c_out, k: BN 2*c_in + c_out*c_in*k*k.
/// Normal cell at C: pre0 + pre1 (1x1) + bin_dil_conv_3x3 + bin_conv_3x3 (each 2C + 9C^2).
/// Reduction cell: pre0, pre1 and the skip (BN not affine, conv C_prev -> 4C 2x2 + bias 4C);
/// its ops are pools and zeroise.
#[test]
fn bnas_a_fashion_mnist_matches_the_hand_count() {
    let bin = |ci: usize, co: usize, k: usize| 2 * ci + co * ci * k * k;
    let normal_ops = |c: usize| 2 * bin(c, c, 3);
    let skip = |cp: usize, c: usize| cp * 4 * c * 4 + 4 * c;
    let mut want = 2 + 48 * 9;
    // cell 0: normal C=16, s0 = s1 = stem (48)
    want += bin(48, 16, 1) + bin(48, 16, 1) + normal_ops(16);
    // cell 1: normal C=16, s0 = 48, s1 = 64
    want += bin(48, 16, 1) + bin(64, 16, 1) + normal_ops(16);
    // cell 2: reduction C=32, s0 = 64, s1 = 64
    want += bin(64, 32, 1) + bin(64, 32, 1) + skip(64, 32);
    // cell 3: normal C=32 after a reduction: pre0 is 3x3 stride 2 from 64
    want += bin(64, 32, 3) + bin(128, 32, 1) + normal_ops(32);
    // cell 4: normal C=32
    want += bin(128, 32, 1) + bin(128, 32, 1) + normal_ops(32);
    // cell 5: reduction C=64
    want += bin(128, 64, 1) + bin(128, 64, 1) + skip(128, 64);
    // cell 6: after reduction
    want += bin(128, 64, 3) + bin(256, 64, 1) + normal_ops(64);
    // cell 7
    want += bin(256, 64, 1) + bin(256, 64, 1) + normal_ops(64);
    want += 256 * 10 + 10;
    let (n, _) = count(&Genotype::bnas_a(), &cfg(8, 16, [1, 28, 28]));
    println!("bnas-a 8 x 16 fashion-mnist: {n} parameters, hand count {want} (anchor with affine skip BN: 543,324)");
    assert_eq!(n, want);
    assert_eq!(n + 2 * (64 + 128), 543_324, "the anchor differs only by the skip BN's affine parameters");
}

#[test]
fn imagenet_cell_fashion_mnist_matches_the_anchor_less_skip_affine() {
    let (n, net) = count(&Genotype::bnas_imagenet(), &cfg(8, 16, [1, 28, 28]));
    println!("bnas-imagenet 8 x 16: {n} parameters, {} binary MACs, {} FP MACs", net.binary_macs, net.fp_macs);
    assert_eq!(n + 2 * (64 + 128), 1_265_436);
}

/// bnas-a with its normal cell's `(bin_conv_3x3, 1)` made a `bin_sep_conv_5x5`: the count
/// changes by, per normal cell at C, the separable conv (per binary conv op BN 2*c_in plus
/// weights: depthwise C*25, pointwise C*C, twice) less the 3x3 conv it replaces.
#[test]
fn separable_conv_genotype_matches_the_hand_count() {
    let mut g = Genotype::bnas_a();
    assert_eq!(g.normal.ops[2], (super::genotype::Op::BinConv3, 1));
    g.normal.ops[2].0 = super::genotype::Op::BinSepConv5;
    let sep = |c: i64| 2 * ((2 * c + c * 25) + (2 * c + c * c));
    let conv3 = |c: i64| 2 * c + c * c * 9;
    let delta: i64 = [16, 16, 32, 32, 64, 64].iter().map(|&c| sep(c) - conv3(c)).sum();
    let (base, _) = count(&Genotype::bnas_a(), &cfg(8, 16, [1, 28, 28]));
    let (n, net) = count(&g, &cfg(8, 16, [1, 28, 28]));
    println!("bnas-a with bin_sep_conv_5x5, 8 x 16: {n} parameters (bnas-a {base}, hand delta {delta})");
    assert_eq!(n as i64, base as i64 + delta);
    // 6 normal cells: pre0, pre1, the dilated conv and the separable conv's four.
    assert_eq!(net.bin_conv_layers().len(), 6 * 7 + 2 * 2);
}

/// Gradient of a scalar loss w.r.t. the alphas of a tiny supernet, against central differences,
/// for S_B and for S_B with the separable convs.
#[test]
fn supernet_alpha_gradients_match_finite_differences() {
    for sep_conv in [false, true] {
        alpha_gradients_match_finite_differences(SearchSpace::new(true, sep_conv));
    }
}

fn alpha_gradients_match_finite_differences(space: SearchSpace) {
    let cpu = Cpu::new(Some(2)).unwrap();
    let c = NetConfig { layers: 1, channels: 4, classes: 3, input: [1, 6, 6], template: Template::Bnas };
    let (mut p, mut bufs) = (ParamStore::default(), Buffers::default());
    let mut rng = Rng::new(7);
    let net = SuperNet::new(&cpu, &c, space, &mut p, &mut bufs, &mut rng);
    // Alphas large enough that the softmax is not flat.
    for id in [net.alpha_normal, net.alpha_reduce] {
        let v: Vec<f32> = (0..cpu.len(&p.get(id).value)).map(|_| rng.normal()).collect();
        p.params[id.0].value = cpu.upload(&v);
    }
    p.refresh_binary(&cpu, false);
    let x: Vec<f32> = (0..4 * 36).map(|_| rng.normal()).collect();
    let labels = cpu.upload(&[0.0, 1.0, 2.0, 1.0]);
    // Evaluation mode (running statistics): the loss is smooth in alpha except where a value
    // crosses a sign threshold, which a small step rarely does.
    let saved = bufs.list.iter().map(|b| cpu.copy(&b.value)).collect::<Vec<_>>();
    let loss = |p: &ParamStore<Cpu>, bufs: &mut Buffers<Cpu>, grad: bool| {
        let cache = net.eval_cache(&cpu, p, bufs);
        let mut t = Tape::new(&cpu, p, grad, false);
        let xv = t.constant(cpu.upload(&x), vec![4, 1, 6, 6]);
        let logits = net.forward(&mut t, bufs, Some(&cache), xv).unwrap();
        let ce = t.softmax_xent(logits, &labels, 0.0).unwrap();
        let h = net.mean_entropy(&mut t).unwrap();
        let reg = t.scale(h, -0.5);
        let l = t.add(ce, reg).unwrap();
        let value = t.to_vec(l)[0] as f64;
        (value, if grad { Some(t.backward(l)) } else { None })
    };
    let (_, grads) = loss(&p, &mut bufs, true);
    let grads = grads.unwrap();
    let mut worst = 0f64;
    let mut checked = 0;
    for id in [net.alpha_reduce] {
        let analytic = cpu.download(grads.get(id).unwrap());
        let base = cpu.download(&p.get(id).value);
        let scale = analytic.iter().fold(0f32, |m, g| m.max(g.abs())) as f64;
        for i in (0..base.len()).step_by(3) {
            let eps = 1e-2f32;
            let mut plus = base.clone();
            plus[i] += eps;
            p.params[id.0].value = cpu.upload(&plus);
            let (lp, _) = loss(&p, &mut bufs, false);
            let mut minus = base.clone();
            minus[i] -= eps;
            p.params[id.0].value = cpu.upload(&minus);
            let (lm, _) = loss(&p, &mut bufs, false);
            p.params[id.0].value = cpu.upload(&base);
            let fd = (lp - lm) / (2.0 * eps as f64);
            worst = worst.max((fd - analytic[i] as f64).abs() / scale);
            checked += 1;
        }
    }
    for (b, s) in bufs.list.iter_mut().zip(saved) {
        b.value = s;
    }
    println!(
        "alpha gradient vs central differences ({} ops): {checked} entries, largest error {worst:.2e} of the gradient scale",
        net.space.ops.len()
    );
    assert!(worst < 2e-2, "alpha gradient error {worst}");
}

/// The shipped genotype files are the built-in cells.
#[test]
fn shipped_paper_genotypes_match_the_builtins() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    assert_eq!(Genotype::load(&dir.join("bnas-a.genotype.json")).unwrap(), Genotype::bnas_a());
    assert_eq!(Genotype::load(&dir.join("bnas-imagenet.genotype.json")).unwrap(), Genotype::bnas_imagenet());
}

#[test]
fn random_genotypes_are_valid_and_cover_the_space() {
    let mut rng = Rng::new(3);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let g = Genotype::random(&mut rng);
        let back = Genotype::parse(&g.to_json(), "random").expect("a random genotype is valid");
        assert_eq!(back, g);
        for cell in [&g.normal, &g.reduce] {
            for (node, pair) in cell.ops.chunks_exact(2).enumerate() {
                assert!(pair[0].1 < pair[1].1 && pair[1].1 < node + 2, "node {node}: inputs {pair:?}");
            }
            seen.extend(cell.ops.iter().map(|(op, _)| *op));
        }
    }
    assert_eq!(seen.len(), super::genotype::Op::SEARCH_SPACE.len(), "ops drawn: {seen:?}");
    let (a, b) = (Genotype::random(&mut Rng::new(9)), Genotype::random(&mut Rng::new(9)));
    assert_eq!(a, b, "the same seed gives the same genotype");
}
