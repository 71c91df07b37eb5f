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
    let binary_params = params.params.iter().filter(|p| p.binary.is_some()).map(|p| p.shape.iter().product::<usize>()).sum();
    let cost = NetCost { parameters: params.count(Group::Weight), binary_params, binary_macs: net.binary_macs, fp_macs: net.fp_macs };
    Ok((cost, net, params, bufs))
}

pub fn print_info(genotype: &str, layers: usize, channels: usize, dataset: &str) -> Result<()> {
    let g = Genotype::resolve(genotype)?;
    let (input, classes) = dataset_shape(dataset)?;
    let cfg = NetConfig { layers, channels, classes, input, template: Template::Bnas };
    let (c, _, _, _) = cost(&g, &cfg)?;
    println!("genotype {genotype}\n{}", g.summary());
    println!("network: {layers} layers, {channels} channels, input {input:?}, {classes} classes");
    println!("parameters:        {:>14}", group_digits(c.parameters as u64));
    println!("  binary weights:  {:>14}", group_digits(c.binary_params as u64));
    println!("binary MACs/image: {:>14}", group_digits(c.binary_macs));
    println!("FP MACs/image:     {:>14}", group_digits(c.fp_macs));
    println!("FLOPs (BOPs/64 + FLOPs): {:.2} M", c.flops() / 1e6);
    Ok(())
}

/// `5578252` -> `5,578,252`.
pub fn group_digits(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
