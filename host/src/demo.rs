//! The main job: a small search -> train -> export -> verify (host and QEMU) on the default
//! dataset, ending in one summary. Flags scale every stage up on a GPU.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cli::DemoArgs;
use crate::data::Split;
use crate::device_run::{run_images, DeviceRunOptions, DeviceRunSummary};
use crate::engine::Backend;
use crate::export::bundle::{export, ModelFiles};
use crate::search::{search, SearchConfig};
use crate::train::{load_dataset, train, Schedule, TrainConfig};
use crate::verify::{verify, VerifyOptions};

/// `bnas device run`: streams `n` test images to the firmware and compares with the host; prints
/// where the first image's instructions go, by op or (`layers`) node by node.
pub fn device_run(
    model: &Path,
    dataset: &str,
    data: Option<&Path>,
    n: usize,
    layers: bool,
) -> Result<DeviceRunSummary> {
    let packed = if model.is_dir() { ModelFiles::open(model)?.packed() } else { model.to_path_buf() };
    let ds = load_dataset(dataset, data, Split::Test)?;
    let images: Vec<Vec<u8>> = (0..n.min(ds.len())).map(|i| ds.image(i).to_vec()).collect();
    println!(
        "running {} test images of {} on the Cortex-M4F firmware under QEMU ({})",
        images.len(),
        ds.name,
        packed.display()
    );
    let s = run_images(&packed, &images, &DeviceRunOptions::default())?;
    let correct = s.per_image.iter().zip(&ds.labels).filter(|(r, &y)| r.device_class == y as usize).count();
    println!(
        "bit-identical to the host build: {}/{}; class agreement {}/{}",
        s.bit_identical, s.images, s.class_agree, s.images
    );
    println!("accuracy on these images: {:.2}%", 100.0 * correct as f64 / s.images.max(1) as f64);
    println!(
        "instructions per inference: mean {:.0} (min {}, max {}); binary convs {:.2} binary MACs per instruction",
        s.instructions_mean, s.instructions_min, s.instructions_max, s.bin_macs_per_instruction
    );
    println!(
        "flash {} bytes (model {}), static RAM {} bytes (arena {}, liveness lower bound {}), peak stack {} bytes",
        s.flash_bytes,
        s.model_bytes,
        s.static_ram_bytes,
        s.arena_bytes,
        s.liveness_lower_bound_bytes,
        s.peak_stack_bytes
    );
    if !s.per_node.is_empty() {
        println!("where the first image's instructions go{}:", if layers { ", node by node" } else { "" });
        print!("{}", s.profile_table(layers, usize::MAX));
    }
    if !s.all_agree() {
        anyhow::bail!("{} of {} firmware answers differ from the host build", s.images - s.bit_identical, s.images);
    }
    Ok(s)
}

pub fn demo<B: Backend>(b: &B, a: &DemoArgs) -> Result<()> {
    let start = Instant::now();
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let search_dir = a.out.join("search");
    let train_dir = a.out.join("train");
    let model_dir = a.out.join("model");
    for d in [&search_dir, &train_dir, &model_dir] {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("cannot clear {}", d.display()))?;
        }
    }
    println!("== 1/4 search ==");
    let scfg = SearchConfig {
        layers: a.search_layers,
        channels: a.search_channels,
        batch_size: 32,
        epochs: a.search_epochs,
        train_subset: Some(a.search_images),
        val_subset: Some(1000),
        seed: a.seed,
        ..Default::default()
    };
    let s = search(b, &scfg, &search_dir, false)?;
    println!("== 2/4 train ==");
    let tcfg = TrainConfig {
        genotype: search_dir.join("genotype.json").display().to_string(),
        layers: a.layers,
        channels: a.channels,
        epochs: a.train_epochs,
        batch_size: 64,
        lr: 0.05,
        schedule: Schedule::Cosine,
        warmup_epochs: 0.3,
        train_subset: (a.train_images > 0).then_some(a.train_images),
        eval_subset: Some(2000),
        seed: a.seed,
        ..Default::default()
    };
    let t = train(b, &tcfg, &train_dir, false)?;
    println!("== 3/4 export ==");
    let card = export(&train_dir, &model_dir)?;
    println!("== 4/4 verify ==");
    let opts = VerifyOptions {
        n: None,
        qemu: Some(a.qemu_images),
        predictions: Some(model_dir.join("predictions.csv")),
        data: None,
        gpu: false,
    };
    let rows = verify(b, &model_dir, "fashion-mnist", &opts)?;
    let device = rows.iter().find(|r| r.runtime.starts_with("device crate")).context("device row")?;
    let fw = rows.iter().find(|r| r.runtime.starts_with("firmware")).context("firmware row")?;
    println!("\n== summary ({:.1} minutes) ==", start.elapsed().as_secs_f64() / 60.0);
    println!("searched genotype (best val epoch {}):\n{}", s.best_epoch, s.genotype.summary());
    println!(
        "test accuracy: {:.2}% (engine, end of training); device crate {:.2}% on {} images",
        100.0 * t.test_accuracy,
        100.0 * device.accuracy,
        device.images
    );
    println!(
        "packed model: {} bytes; arena {} bytes (liveness bound {})",
        card.packed_bytes, card.arena_bytes, card.liveness_lower_bound_bytes
    );
    println!(
        "agreement with tract: device crate {:.2}% (max relative logit diff {:.1e}), firmware {:.2}% on {} images",
        100.0 * device.agreement,
        device.max_rel_logit_diff,
        100.0 * fw.agreement,
        fw.images
    );
    println!("model folder: {}", model_dir.display());
    Ok(())
}
