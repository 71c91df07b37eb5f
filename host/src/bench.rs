//! `bnas bench`: throughput of the binary conv op and of whole training steps on each
//! backend, side by side with the PyTorch anchor when it is available.

use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cli::BackendArgs;
use crate::engine::cpu::Cpu;
use crate::engine::gpu::Gpu;
use crate::engine::optim::Sgd;
use crate::engine::{Backend, Buffers, ConvGeom, ConvSpec, Group, ParamId, ParamStore, SignInput, Tape};
use crate::nn::layers::{BinConvLayer, Builder};
use crate::nn::{Genotype, NetConfig, Network, Template};
use crate::rng::Rng;
use crate::select::BackendChoice;

/// Seconds per forward + backward of the fused binary conv op (BN -> sign -> XNOR conv -> ReLU).
pub fn time_bin_conv<B: Backend>(b: &B, g: ConvGeom, reps: usize) -> f64 {
    let (mut params, mut bufs) = (ParamStore::default(), Buffers::default());
    let mut rng = Rng::new(1);
    let spec = ConvSpec { k: g.k, stride: g.stride, pad: g.pad, dil: g.dil };
    let mut builder = Builder {
        backend: b,
        params: &mut params,
        buffers: &mut bufs,
        rng: &mut rng,
        bin_convs: 0,
        binary_macs: 0,
        fp_macs: 0,
    };
    let layer = BinConvLayer::new(&mut builder, "bench", g.c_in, g.c_out, spec, true, g.out_h() * g.out_w());
    let x = b.upload(&(0..g.in_len()).map(|_| rng.normal()).collect::<Vec<_>>());
    let dy = b.upload(&(0..g.out_len()).map(|_| rng.normal()).collect::<Vec<_>>());
    let mut run = || {
        params.refresh_binary(b, true);
        let mut t = Tape::new(b, &params, true, true);
        let xv = t.constant(b.copy(&x), vec![g.n, g.c_in, g.h, g.w]);
        let (mean, var) = bufs.pair_mut(layer.bn.mean, layer.bn.var);
        let sign_in = SignInput::Train { gamma: layer.bn.gamma, beta: layer.bn.beta, mean, var };
        let y = t.bin_conv(xv, layer.w, sign_in, spec).expect("bench shapes are valid");
        let grads = t.backward_with(y, b.copy(&dy));
        b.download(&b.sum_squares(&[grads.get(layer.w).expect("weight gradient")]))[0]
    };
    run();
    let start = Instant::now();
    for _ in 0..reps.max(1) {
        run();
    }
    start.elapsed().as_secs_f64() / reps.max(1) as f64
}

/// Images per second of full training steps (forward, backward, SGD) of a genotype network.
pub fn train_step_rate<B: Backend>(b: &B, genotype: &Genotype, cfg: &NetConfig, batch: usize, steps: usize) -> f64 {
    let (mut params, mut bufs) = (ParamStore::default(), Buffers::default());
    let mut rng = Rng::new(0);
    let net = Network::new(b, genotype, cfg, &mut params, &mut bufs, &mut rng);
    let ids: Vec<ParamId> = params.ids(Group::Weight).collect();
    let mut sgd = Sgd::new(params.params.len(), 0.9, 3e-6);
    let [c, h, w] = cfg.input;
    let x: Vec<f32> = (0..batch * c * h * w).map(|_| rng.normal()).collect();
    let labels: Vec<f32> = (0..batch).map(|i| (i % cfg.classes) as f32).collect();
    let mut step = |params: &mut ParamStore<B>, bufs: &mut Buffers<B>| {
        params.refresh_binary(b, true);
        let mut t = Tape::new(b, params, true, true);
        let xv = t.constant(b.upload(&x), vec![batch, c, h, w]);
        let logits = net.forward(&mut t, bufs, None, xv, None).expect("bench network");
        let loss = t.softmax_xent(logits, &b.upload(&labels), 0.0).expect("bench loss");
        let _ = t.to_vec(loss);
        let grads = t.backward(loss);
        let norm = crate::engine::optim::grad_norm(b, &grads, &ids);
        sgd.step(b, params, &grads, &ids, 0.01, crate::engine::optim::clip_factor(norm, Some(5.0)));
    };
    step(&mut params, &mut bufs);
    let start = Instant::now();
    for _ in 0..steps.max(1) {
        step(&mut params, &mut bufs);
    }
    (batch * steps.max(1)) as f64 / start.elapsed().as_secs_f64()
}

/// Images per second of supernet search steps (alpha step on one batch + weight step on
/// another), counting both batches like the anchor.
pub fn search_step_rate<B: Backend>(b: &B, cfg: &NetConfig, batch: usize, steps: usize) -> f64 {
    let scfg = crate::search::SearchConfig {
        layers: cfg.layers,
        channels: cfg.channels,
        batch_size: batch,
        ..Default::default()
    };
    let mut s = crate::search::Searcher::new(b, &scfg, cfg);
    let mut rng = Rng::new(0);
    let [c, h, w] = cfg.input;
    let x: Vec<f32> = (0..batch * c * h * w).map(|_| rng.normal()).collect();
    let y: Vec<u32> = (0..batch).map(|i| (i % cfg.classes) as u32).collect();
    let mut step = || s.step(b, &scfg, (&x, &y), (&x, &y), cfg.input, 1.0, 0.025).expect("bench search step");
    step();
    let start = Instant::now();
    for _ in 0..steps.max(1) {
        step();
    }
    (2 * batch * steps.max(1)) as f64 / start.elapsed().as_secs_f64()
}

/// Prints the backend's name and the binary conv op's table.
fn conv_report<B: Backend>(b: &B, reps: usize) {
    println!("\n== {} ==", b.describe());
    println!("binary conv op (BN -> sign -> XNOR conv -> ReLU), forward + backward, batch 64:");
    println!("{:>8} {:>6} {:>8} {:>10} {:>10}", "channels", "size", "kernel", "ms", "GFLOP/s");
    for g in crate::engine::bench::supernet_conv_shapes() {
        let s = time_bin_conv(b, g, reps);
        // forward + two backward GEMM-shaped passes: 3 * 2 * MACs.
        let gflops = 6.0 * g.macs() as f64 / s / 1e9;
        let kernel = format!("{}x{}{}", g.k, g.k, if g.dil > 1 { " d2" } else { "" });
        println!("{:>8} {:>6} {:>8} {:>10.2} {:>10.1}", g.c_in, g.h, kernel, s * 1e3, gflops);
    }
}

/// The networks the step rates are measured on (the anchor's: 8 cells x 16 channels).
fn step_config() -> NetConfig {
    NetConfig { layers: 8, channels: 16, classes: 10, input: [1, 28, 28], template: Template::Bnas }
}

/// Images/s of a training step of bnas-imagenet and of bnas-a, printed as they come.
fn train_rates<B: Backend>(b: &B, reps: usize) -> Vec<(String, f64)> {
    let cfg = step_config();
    [("bnas-imagenet", Genotype::bnas_imagenet()), ("bnas-a", Genotype::bnas_a())]
        .into_iter()
        .map(|(name, g)| {
            let r = train_step_rate(b, &g, &cfg, 64, reps.max(5));
            println!("training step, {name}, 8 cells x 16 channels, batch 64, 1x28x28: {r:.1} images/s");
            (name.to_string(), r)
        })
        .collect()
}

/// Images/s of a search step (both batches), printed.
fn search_rate<B: Backend>(b: &B) -> (String, f64) {
    let r = search_step_rate(b, &step_config(), 64, 2);
    println!("search step (alpha step + weight step), supernet 8 cells x 16 channels, batch 64: {r:.1} images/s (both batches)");
    ("search".to_string(), r)
}

/// Runs one command of the PyTorch anchor and returns its `RESULT` line's JSON.
fn run_anchor(script: &std::path::Path, cmd: &str, steps: &[&str]) -> Result<serde_json::Value> {
    println!("running the PyTorch anchor: python3 {} {cmd} {}", script.display(), steps.join(" "));
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(cmd)
        .args(steps)
        .output()
        .context("cannot run python3 (the anchor needs Python 3 with PyTorch)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with("RESULT ")).ok_or_else(|| {
        anyhow::anyhow!(
            "{} {cmd} printed no RESULT line: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        )
    })?;
    Ok(serde_json::from_str(&line["RESULT ".len()..])?)
}

fn anchor_rate(v: &serde_json::Value) -> f64 {
    v["images_per_s"].as_f64().unwrap_or(f64::NAN)
}

/// The PyTorch anchor's training steps: images/s for bnas-imagenet and bnas-a.
fn anchor_train_rates(script: &std::path::Path) -> Result<Vec<f64>> {
    let train = run_anchor(script, "step-train", &["--warmup", "2", "--steps", "10"])?;
    Ok(vec![
        anchor_rate(&train["nets"]["latest_cell"]["train_step"]),
        anchor_rate(&train["nets"]["bnas_a"]["train_step"]),
    ])
}

/// The PyTorch anchor's search step, images/s (fewer steps than its defaults: one takes about
/// 30 s there).
fn anchor_search_rate(script: &std::path::Path) -> Result<f64> {
    Ok(anchor_rate(&run_anchor(script, "step-search", &["--warmup", "1", "--steps", "3"])?["search_step"]))
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Our CPU step rates and the anchor's, alternating for `rounds` rounds (our training steps,
/// theirs, our search step, theirs), so that a slow spell of the machine falls on both sides of
/// a round's ratios rather than on one side of all; then a table of the medians with each
/// round's ratio.
fn side_by_side(cpu: &Cpu, reps: usize, script: &std::path::Path, rounds: usize) -> Result<()> {
    // Per workload: (ours, theirs) of each round.
    let mut pairs: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for round in 1..=rounds {
        if rounds > 1 {
            println!("\n-- round {round} of {rounds} --");
        }
        let ours = train_rates(cpu, reps);
        let theirs = anchor_train_rates(script)?;
        let ours_search = search_rate(cpu);
        let theirs_search = anchor_search_rate(script)?;
        let round_pairs = ours.into_iter().zip(theirs).chain([(ours_search, theirs_search)]);
        for (i, ((name, a), p)) in round_pairs.enumerate() {
            if pairs.len() <= i {
                pairs.push((name, Vec::new()));
            }
            pairs[i].1.push((a, p));
        }
    }
    let what = if rounds > 1 { format!("medians of {rounds} alternating rounds") } else { "one round".to_string() };
    println!("\nside by side, same machine, same run ({what}; images/s, 8 cells x 16 channels, batch 64, 1x28x28):");
    println!("{:<16} {:>12} {:>12} {:>8}  each round", "workload", "bnas cpu", "pytorch cpu", "ratio");
    for (name, v) in &pairs {
        let ratios: Vec<f64> = v.iter().map(|(a, p)| a / p).collect();
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
        println!(
            "{:<16} {:>12.1} {:>12.1} {:>7.2}x  {}",
            if name == "search" { "search step" } else { name },
            median(&v.iter().map(|x| x.0).collect::<Vec<_>>()),
            median(&v.iter().map(|x| x.1).collect::<Vec<_>>()),
            median(&ratios),
            each.join(" ")
        );
    }
    Ok(())
}

pub fn run(
    reps: usize,
    only: Option<BackendChoice>,
    args: &BackendArgs,
    anchor: Option<&std::path::Path>,
    rounds: usize,
) -> Result<()> {
    if let Some(script) = anchor.filter(|s| !s.is_file()) {
        // Checked first: a missing script must not end a run of the whole CPU benchmark.
        bail!("--anchor {}: no such file; it takes the PyTorch anchor script, pytorch_bnas.py", script.display());
    }
    if only != Some(BackendChoice::Gpu) {
        let cpu = Cpu::new(args.threads)?;
        conv_report(&cpu, reps);
        match anchor {
            Some(script) => side_by_side(&cpu, reps, script, rounds)?,
            None => {
                train_rates(&cpu, reps);
                search_rate(&cpu);
            }
        }
    }
    if only != Some(BackendChoice::Cpu) {
        match Gpu::new(args.adapter.as_deref()) {
            Ok(gpu) => {
                if gpu.is_software() && only != Some(BackendChoice::Gpu) {
                    println!("\n(skipping the software GPU adapter {}; --only gpu measures it)", gpu.describe());
                } else {
                    conv_report(&gpu, reps);
                    train_rates(&gpu, reps);
                    search_rate(&gpu);
                }
            }
            Err(e) => println!("\nno GPU measured: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Medians of odd and even counts, in any order; none is NaN.
    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[0.8]), 0.8);
        assert!(median(&[]).is_nan());
    }

    /// A missing anchor script is refused before the benchmark runs (it used to end the run).
    #[test]
    fn a_missing_anchor_is_refused_first() {
        let args = BackendArgs { backend: BackendChoice::Cpu, adapter: None, threads: Some(1) };
        let script = std::path::Path::new("/nonexistent/pytorch_bnas.py");
        let started = Instant::now();
        let e = run(1, Some(BackendChoice::Cpu), &args, Some(script), 1).unwrap_err().to_string();
        assert!(e.starts_with("--anchor /nonexistent/pytorch_bnas.py: no such file"), "{e}");
        assert!(started.elapsed().as_secs_f64() < 1.0, "the benchmark ran first");
    }
}
