//! The same small binary network trained on the GPU and on the CPU from the same seed: the
//! loss curves must agree (the backends implement the primitives identically up to rounding).

use super::genotype::{Genotype, Op};
use super::network::{NetConfig, Network, Template};
use crate::engine::cpu::Cpu;
use crate::engine::gpu::Gpu;
use crate::engine::optim::{clip_factor, grad_norm, Sgd};
use crate::engine::{Backend, Buffers, Group, ParamId, ParamStore, Tape};
use crate::rng::Rng;

const STEPS: usize = 20;
const BATCH: usize = 8;

/// Losses of `STEPS` SGD steps (momentum 0.9, lr 0.05, clipping at 5) on one fixed batch.
fn loss_curve<B: Backend>(b: &B, genotype: &Genotype) -> Vec<f32> {
    let cfg = NetConfig { layers: 3, channels: 8, classes: 4, input: [1, 8, 8], template: Template::Bnas };
    let (mut params, mut bufs) = (ParamStore::default(), Buffers::default());
    let mut rng = Rng::new(7);
    let net = Network::new(b, genotype, &cfg, &mut params, &mut bufs, &mut rng);
    let ids: Vec<ParamId> = params.ids(Group::Weight).collect();
    let mut sgd = Sgd::new(params.params.len(), 0.9, 3e-4);
    let [c, h, w] = cfg.input;
    let x: Vec<f32> = (0..BATCH * c * h * w).map(|_| rng.normal()).collect();
    let labels: Vec<f32> = (0..BATCH).map(|i| (i % cfg.classes) as f32).collect();
    let mut losses = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        params.refresh_binary(b, true);
        let mut t = Tape::new(b, &params, true, true);
        let xv = t.constant(b.upload(&x), vec![BATCH, c, h, w]);
        let logits = net.forward(&mut t, &mut bufs, None, xv, None).expect("network shapes");
        let loss = t.softmax_xent(logits, &b.upload(&labels), 0.0).expect("loss shapes");
        losses.push(t.to_vec(loss)[0]);
        let grads = t.backward(loss);
        let norm = grad_norm(b, &grads, &ids);
        sgd.step(b, &mut params, &grads, &ids, 0.05, clip_factor(norm, Some(5.0)));
    }
    losses
}

fn curves_agree(genotype: &Genotype) {
    let gpu = Gpu::new(None).unwrap_or_else(|e| panic!("{e}"));
    let cpu = Cpu::new(Some(1)).unwrap_or_else(|e| panic!("{e}"));
    let (g, c) = (loss_curve(&gpu, genotype), loss_curve(&cpu, genotype));
    let mut worst = 0f32;
    for (i, (a, b)) in g.iter().zip(&c).enumerate() {
        println!("step {i:2}: gpu {a:.6} cpu {b:.6} diff {:.2e}", (a - b).abs());
        worst = worst.max((a - b).abs());
    }
    println!("largest loss difference over {STEPS} steps: {worst:.2e}");
    assert!(c[STEPS - 1] < c[0], "the loss should fall: {c:?}");
    assert!(worst < 1e-3, "loss curves differ by {worst:.2e}");
}

#[test]
fn gpu_and_cpu_training_loss_curves_agree() {
    curves_agree(&Genotype::bnas_imagenet());
}

/// The same with binary separable convs (depthwise kernels) on a normal edge and a strided
/// reduction edge.
#[test]
fn gpu_and_cpu_agree_on_separable_convs() {
    let mut g = Genotype::bnas_imagenet();
    g.normal.ops[0].0 = Op::BinSepConv3;
    g.reduce.ops[1].0 = Op::BinSepConv5; // input s1: stride 2
    curves_agree(&g);
}
