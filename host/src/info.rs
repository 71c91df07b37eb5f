//! `bnas info`: the size and cost of a network, without data.

use anyhow::{bail, Result};

use crate::engine::cpu::Cpu;
use crate::engine::{Buffers, Group, ParamStore};
use crate::nn::{Genotype, NetConfig, Network, Template};
use crate::rng::Rng;

/// Image shape `[C, H, W]` and classes of a dataset name.
pub fn dataset_shape(name: &str) -> Result<([usize; 3], usize)> {
    Ok(match name {
        "fashion-mnist" | "fashion_mnist" | "fmnist" => ([1, 28, 28], 10),
        "cifar10" | "cifar-10" => ([3, 32, 32], 10),
        "imagenet" => ([3, 224, 224], 1000),
        other => bail!("unknown dataset '{other}' for shapes: use fashion-mnist, cifar10 or imagenet"),
    })
}

/// Counts of a network: parameters, MACs and the paper's FLOPs convention.
pub struct NetCost {
    pub parameters: usize,
    pub binary_params: usize,
    pub binary_macs: u64,
    pub fp_macs: u64,
}

impl NetCost {
    /// FLOPs = BOPs / 64 + full-precision FLOPs (the paper's convention, MACs as FLOPs).
    pub fn flops(&self) -> f64 {
        self.binary_macs as f64 / 64.0 + self.fp_macs as f64
    }
}

pub fn cost(genotype: &Genotype, cfg: &NetConfig) -> Result<(NetCost, Network, ParamStore<Cpu>, Buffers<Cpu>)> {
    let cpu = Cpu::new(Some(1))?;
    let (mut params, mut bufs) = (ParamStore::default(), Buffers::default());
    let net = Network::new(&cpu, genotype, cfg, &mut params, &mut bufs, &mut Rng::new(0));
    let binary_params =
        params.params.iter().filter(|p| p.binary.is_some()).map(|p| p.shape.iter().product::<usize>()).sum();
    let cost = NetCost {
        parameters: params.count(Group::Weight),
        binary_params,
        binary_macs: net.binary_macs,
        fp_macs: net.fp_macs,
    };
    Ok((cost, net, params, bufs))
}

/// Packed model bytes and arena bytes (inference, batch 1) of a network, from its real export.
pub fn packed_size(net: &Network, params: &mut ParamStore<Cpu>, bufs: &Buffers<Cpu>) -> Result<(usize, usize)> {
    let cpu = Cpu::new(Some(1))?;
    let c = net.cfg.input[0];
    let norm = crate::data::Normalization { mean: vec![0.5; c], std: vec![0.25; c] };
    let bytes = crate::export::packed::lower(&cpu, net, params, bufs, &norm)?;
    let words = crate::export::bundle::aligned(&bytes);
    let model = crate::export::bundle::parse(&words, bytes.len(), std::path::Path::new("(in memory)"))?;
    Ok((bytes.len(), model.arena_bytes()))
}

pub fn print_info(genotype: &str, layers: usize, channels: usize, dataset: &str) -> Result<()> {
    crate::train::check_net_size(layers, channels)?;
    let g = Genotype::resolve(genotype)?;
    let (input, classes) = dataset_shape(dataset)?;
    let cfg = NetConfig { layers, channels, classes, input, template: Template::Bnas };
    let (c, net, mut params, bufs) = cost(&g, &cfg)?;
    let packed = packed_size(&net, &mut params, &bufs);
    println!("genotype {genotype}\n{}", g.summary());
    println!("network: {layers} layers, {channels} channels, input {input:?}, {classes} classes");
    println!("parameters:        {:>14}", group_digits(c.parameters as u64));
    println!("  binary weights:  {:>14}", group_digits(c.binary_params as u64));
    println!("binary MACs/image: {:>14}", group_digits(c.binary_macs));
    println!("FP MACs/image:     {:>14}", group_digits(c.fp_macs));
    println!("FLOPs (BOPs/64 + FLOPs): {:.2} M", c.flops() / 1e6);
    match packed {
        Ok((packed, arena)) => {
            println!("packed model bytes: {:>13}", group_digits(packed as u64));
            println!("inference arena bytes (batch 1): {}", group_digits(arena as u64));
            match crate::device_run::check_fits("the network", packed, arena) {
                Ok((flash, ram)) => println!(
                    "Cortex-M4F firmware: fits its memory map ({} B flash, {} B RAM; the link adds code and stack)",
                    group_digits(flash),
                    group_digits(ram)
                ),
                Err(e) => println!("Cortex-M4F firmware: {e}"),
            }
        }
        // A network the device format cannot hold still has its training costs above.
        Err(e) => println!("packed model: none ({e})"),
    }
    Ok(())
}

/// A random genotype (the baseline a searched cell must beat) whose network, at `cfg`, costs
/// about the FLOPs of `target`'s: the first of the draws from `seed` within 5%, else the
/// closest of 2,000 draws. Returns it with its FLOPs and the target's.
pub fn random_like(target: &Genotype, cfg: &NetConfig, seed: u64) -> Result<(Genotype, f64, f64)> {
    crate::train::check_net_size(cfg.layers, cfg.channels)?;
    let want = cost(target, cfg)?.0.flops();
    let mut rng = Rng::derive(seed, 0x6e0);
    let mut best: Option<(Genotype, f64)> = None;
    for _ in 0..2000 {
        let g = Genotype::random(&mut rng);
        let f = cost(&g, cfg)?.0.flops();
        if best.as_ref().is_none_or(|(_, bf)| (f - want).abs() < (bf - want).abs()) {
            best = Some((g, f));
        }
        if (f - want).abs() <= 0.05 * want {
            break;
        }
    }
    let (g, f) = best.expect("at least one draw");
    Ok((g, f, want))
}

/// One (layers, channels) choice and its costs.
pub struct ScaleRow {
    pub layers: usize,
    pub channels: usize,
    pub cost: NetCost,
    pub packed_bytes: usize,
    pub arena_bytes: usize,
}

/// `bnas scale`: every (layers, channels) on a grid whose costs fit the budgets, sorted by FLOPs.
pub fn scale(
    genotype: &str,
    dataset: &str,
    max_flops: Option<f64>,
    max_params: Option<usize>,
    max_ram: Option<usize>,
) -> Result<Vec<ScaleRow>> {
    let g = Genotype::resolve(genotype)?;
    let (input, classes) = dataset_shape(dataset)?;
    let mut rows = Vec::new();
    let (all_layers, all_channels) = ([3, 5, 8, 11, 14, 17, 20], [4, 8, 12, 16, 24, 32, 36, 48, 64]);
    let bar = crate::report::Counter::new("scale", all_layers.len() * all_channels.len(), "sizes");
    for layers in all_layers {
        for channels in all_channels {
            bar.inc(1);
            let cfg = NetConfig { layers, channels, classes, input, template: Template::Bnas };
            let (c, net, mut params, bufs) = cost(&g, &cfg)?;
            if max_flops.is_some_and(|f| c.flops() > f) || max_params.is_some_and(|p| c.parameters > p) {
                continue;
            }
            // Packed size and arena come from a real export of the network (random weights).
            let (packed, arena) = packed_size(&net, &mut params, &bufs)?;
            if max_ram.is_some_and(|r| arena > r) {
                continue;
            }
            rows.push(ScaleRow { layers, channels, cost: c, packed_bytes: packed, arena_bytes: arena });
        }
    }
    drop(bar);
    rows.sort_by(|a, b| a.cost.flops().total_cmp(&b.cost.flops()));
    println!("{genotype} on {dataset} {input:?}: (layers, channels) within the budget");
    println!(
        "{:>6} {:>8} {:>12} {:>12} {:>12} {:>14}",
        "layers", "channels", "params", "MFLOPs", "packed B", "arena B"
    );
    for r in &rows {
        println!(
            "{:>6} {:>8} {:>12} {:>12.2} {:>12} {:>14}",
            r.layers,
            r.channels,
            group_digits(r.cost.parameters as u64),
            r.cost.flops() / 1e6,
            group_digits(r.packed_bytes as u64),
            group_digits(r.arena_bytes as u64)
        );
    }
    if rows.is_empty() {
        println!("(nothing on the grid fits: layers 3..20, channels 4..64)");
    }
    Ok(rows)
}

/// `5578252` -> `5,578,252`.
pub fn group_digits(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
