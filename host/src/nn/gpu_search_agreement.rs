//! The same tiny supernet searched on the GPU and on the CPU from the same seed: after each of a
//! few bilevel steps (an Adam step on the alphas, then an SGD step on the weights) the training
//! loss and the architecture parameters must agree up to rounding.

use super::network::{NetConfig, Template};
use crate::engine::cpu::Cpu;
use crate::engine::gpu::Gpu;
use crate::engine::Backend;
use crate::rng::Rng;
use crate::search::{SearchConfig, Searcher};

const STEPS: usize = 3;
const BATCH: usize = 8;

/// What one backend reports after each step.
struct Snapshot {
    loss: f32,
    /// Raw alphas, normal then reduce.
    alphas: Vec<f32>,
    /// Softmax weights per edge, normal then reduce, flattened.
    weights: Vec<f32>,
}

fn net_config() -> NetConfig {
    NetConfig { layers: 3, channels: 4, classes: 3, input: [1, 8, 8], template: Template::Bnas }
}

fn search_steps<B: Backend>(b: &B) -> Vec<Snapshot> {
    let cfg = net_config();
    let scfg = SearchConfig { layers: 3, channels: 4, batch_size: BATCH, ..Default::default() };
    let mut s = Searcher::new(b, &scfg, &cfg);
    let mut rng = Rng::new(11);
    let [c, h, w] = cfg.input;
    let mut batch = || {
        let x: Vec<f32> = (0..BATCH * c * h * w).map(|_| rng.normal()).collect();
        let y: Vec<u32> = (0..BATCH).map(|i| (i % cfg.classes) as u32).collect();
        (x, y)
    };
    let mut out = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        let (tx, ty) = batch();
        let (vx, vy) = batch();
        let step = s.step(b, &scfg, (&tx, &ty), (&vx, &vy), cfg.input, 1.0, 0.025).expect("search step");
        let mut alphas = b.download(&s.params.get(s.net.alpha_normal).value);
        alphas.extend(b.download(&s.params.get(s.net.alpha_reduce).value));
        let (wn, wr) = s.net.alpha_weights(b, &s.params);
        let weights = wn.into_iter().chain(wr).flatten().collect();
        out.push(Snapshot { loss: step.train_loss, alphas, weights });
    }
    out
}

/// Largest absolute difference, the index where it occurs, and the scale (largest magnitude of `c`).
fn worst(g: &[f32], c: &[f32]) -> (f32, usize, f32) {
    assert_eq!(g.len(), c.len());
    let (mut d, mut at) = (0f32, 0);
    for (i, (a, b)) in g.iter().zip(c).enumerate() {
        if (a - b).abs() > d {
            (d, at) = ((a - b).abs(), i);
        }
    }
    (d, at, c.iter().fold(0f32, |m, v| m.max(v.abs())))
}

#[test]
fn gpu_and_cpu_search_steps_agree() {
    let gpu = Gpu::new(None).unwrap_or_else(|e| panic!("{e}"));
    let cpu = Cpu::new(Some(1)).unwrap_or_else(|e| panic!("{e}"));
    let (g, c) = (search_steps(&gpu), search_steps(&cpu));
    let (mut loss_rel, mut alpha_rel, mut weight_rel) = (0f32, 0f32, 0f32);
    for (i, (g, c)) in g.iter().zip(&c).enumerate() {
        let dl = (g.loss - c.loss).abs() / c.loss.abs().max(1e-6);
        let (da, ia, sa) = worst(&g.alphas, &c.alphas);
        let (dw, iw, sw) = worst(&g.weights, &c.weights);
        println!(
            "step {i}: loss gpu {:.6} cpu {:.6} rel {dl:.2e} | alphas max |diff| {da:.2e} at {ia} (gpu {:.6e} cpu {:.6e}), scale {sa:.2e}, rel {:.2e} | softmax weights max |diff| {dw:.2e} at {iw}, scale {sw:.3}, rel {:.2e}",
            g.loss,
            c.loss,
            g.alphas[ia],
            c.alphas[ia],
            da / sa,
            dw / sw,
        );
        loss_rel = loss_rel.max(dl);
        alpha_rel = alpha_rel.max(da / sa);
        weight_rel = weight_rel.max(dw / sw);
    }
    println!("largest relative differences over {STEPS} steps: loss {loss_rel:.2e}, alphas {alpha_rel:.2e}, softmax weights {weight_rel:.2e}");
    assert!(loss_rel < 1e-3, "training losses differ by {loss_rel:.2e} relative");
    assert!(alpha_rel < 1e-4, "alphas differ by {alpha_rel:.2e} relative to their scale");
    assert!(weight_rel < 1e-4, "softmax weights differ by {weight_rel:.2e} relative to their scale");
}
