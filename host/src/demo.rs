//! The main job: a small search -> train -> export -> verify (host and QEMU) on the default
//! dataset, ending in one summary. Flags scale every stage up on a GPU.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cli::{DemoArgs, DemoSettings};
use crate::data::Split;
use crate::device_run::{run_images, DeviceRunError, DeviceRunOptions, DeviceRunSummary};
use crate::engine::Backend;
use crate::export::bundle::{export, ModelFiles};
use crate::nn::{Genotype, NetConfig, Template};
use crate::search::{search_session, SearchConfig, SearchResult};
use crate::train::{load_dataset, read_json, train_session, Schedule, TrainConfig, TrainResult};
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
    if !model.exists() {
        anyhow::bail!("{}: no such model folder or .bnas file", model.display());
    }
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
    println!("firmware ELF: {}", s.firmware.display());
    if !s.per_node.is_empty() {
        println!("where the first image's instructions go{}:", if layers { ", node by node" } else { "" });
        print!("{}", s.profile_table(layers, usize::MAX));
    }
    if !s.all_agree() {
        anyhow::bail!("{} of {} firmware answers differ from the host build", s.images - s.bit_identical, s.images);
    }
    Ok(s)
}

/// Refuses the network of `genotype` at this size unless it fits the firmware's memory map: its
/// packed model in the flash and its arena in the RAM, from a real export with random weights (as
/// `bnas scale` computes them). The firmware's link checks the rest (its code, statics and stack).
fn check_fits_firmware(genotype: &Path, layers: usize, channels: usize) -> Result<()> {
    let g = Genotype::load(genotype)?;
    let (input, classes) = crate::info::dataset_shape("fashion-mnist")?;
    let cfg = NetConfig { layers, channels, classes, input, template: Template::Bnas };
    let (_, net, mut params, bufs) = crate::info::cost(&g, &cfg)?;
    let (packed, arena) = crate::info::packed_size(&net, &mut params, &bufs)?;
    let what = format!("--layers {layers} --channels {channels}: the network");
    crate::device_run::check_fits(&what, packed, arena).map_err(|e| match e {
        DeviceRunError::DoesNotFit { ram, .. } => {
            anyhow::anyhow!(
                "{e}; `bnas scale --genotype {} --max-ram {ram}` lists the sizes that fit",
                genotype.display()
            )
        }
        e => e.into(),
    })?;
    Ok(())
}

/// The file in the demo's folder that keeps its settings for `--resume`.
pub const SETTINGS: &str = "demo.json";

/// The settings a demo runs with: the typed ones, or with `--resume` the saved ones (a typed
/// setting that differs is refused, except `--qemu-images`, which only the verification uses).
pub fn settings(a: &DemoArgs) -> Result<DemoSettings> {
    if !a.resume {
        return Ok(a.settings.clone());
    }
    let path = a.out.join(SETTINGS);
    if !path.exists() {
        anyhow::bail!("{}: no demo to resume (no {SETTINGS}); leave out --resume to start one there", a.out.display());
    }
    crate::checkpoint::refuse_changed_settings(&a.out, SETTINGS, &a.settings, &a.given, "qemu_images")?;
    let saved: DemoSettings = read_json(&path)?;
    let qemu_typed = a.given.iter().any(|g| g == "qemu_images");
    Ok(DemoSettings { qemu_images: if qemu_typed { a.settings.qemu_images } else { saved.qemu_images }, ..saved })
}

/// The search's and the training's configurations for the demo's settings `s` in the folder `out`.
fn configs(s: &DemoSettings, out: &Path) -> (SearchConfig, TrainConfig) {
    let scfg = SearchConfig {
        layers: s.search_layers,
        channels: s.search_channels,
        batch_size: 32,
        epochs: s.search_epochs,
        train_subset: Some(s.search_images),
        val_subset: Some(1000),
        seed: s.seed,
        ..Default::default()
    };
    let tcfg = TrainConfig {
        genotype: out.join("search").join("genotype.json").display().to_string(),
        layers: s.layers,
        channels: s.channels,
        epochs: s.train_epochs,
        batch_size: 64,
        lr: 0.05,
        schedule: Schedule::Cosine,
        warmup_epochs: 0.3,
        train_subset: (s.train_images > 0).then_some(s.train_images),
        eval_subset: Some(2000),
        seed: s.seed,
        ..Default::default()
    };
    (scfg, tcfg)
}

/// `bnas demo`: search, train, export and verify in `out`. Ctrl-C during the search or the
/// training stops it after the current step with a checkpoint there, which `resume` continues
/// (returns `None` then); during export and verify, which a resume runs again whole, it ends
/// the process at once.
pub fn demo<B: Backend>(b: &B, s: &DemoSettings, out: &Path, resume: bool) -> Result<Option<()>> {
    let ctrl_c = crate::interrupt::catch();
    let trained = search_and_train(b, s, out, resume, &crate::interrupt::requested)?;
    drop(ctrl_c);
    match trained {
        Some(t) => export_and_verify(b, s, out, t).map(Some),
        None => Ok(None),
    }
}

/// The demo's search and training, done: what its export and verification start from.
pub struct Trained {
    start: Instant,
    resumed: bool,
    _lock: crate::checkpoint::FolderLock,
    pub search: SearchResult,
    pub train: TrainResult,
}

/// The demo's first two stages, in `out/search` and `out/train`; `None` where `interrupted()`
/// stopped one (see `search_session`, `train_session`). Without `resume`, the last run's
/// folders are cleared first. With it, a stage with a checkpoint resumes from it (a finished one
/// is kept as it is), one without starts afresh, and a stage that starts afresh clears the
/// stages after it.
pub fn search_and_train<B: Backend>(
    b: &B,
    s: &DemoSettings,
    out: &Path,
    resume: bool,
    interrupted: &dyn Fn() -> bool,
) -> Result<Option<Trained>> {
    let start = Instant::now();
    let (scfg, tcfg) = configs(s, out);
    // Every setting is checked before the last run's folders are cleared, and the trained
    // network's fit in the firmware right after the search, so that a bad one costs no search
    // or training run.
    crate::train::check_net_flags(["--search-layers", "--search-channels"], s.search_layers, s.search_channels)?;
    scfg.check()?;
    crate::train::check_net_size(s.layers, s.channels)?;
    tcfg.check()?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let lock = crate::checkpoint::lock_folder(out, "demo")?;
    let stages = ["search", "train", "model"].map(|d| out.join(d));
    let resumes = |d: &Path| resume && d.join(crate::checkpoint::FILE).exists();
    let search_resumes = resumes(&stages[0]);
    let train_resumes = search_resumes && resumes(&stages[1]);
    let kept = [search_resumes, train_resumes, false];
    for d in stages.iter().zip(kept).skip_while(|(_, kept)| *kept).map(|(d, _)| d) {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("cannot clear {}", d.display()))?;
        }
    }
    crate::train::write_json(&out.join(SETTINGS), s)?;
    println!("== 1/4 search ==");
    let Some(search) = search_session(b, &scfg, &stages[0], search_resumes, interrupted)? else { return Ok(None) };
    println!("== 2/4 train ==");
    check_fits_firmware(&stages[0].join("genotype.json"), s.layers, s.channels)?;
    let Some(train) = train_session(b, &tcfg, &stages[1], train_resumes, interrupted)? else { return Ok(None) };
    Ok(Some(Trained { start, resumed: resume, _lock: lock, search, train }))
}

/// The demo's last two stages: export the trained run to `out/model`, verify it on the test set
/// (tract, the device crate, the engine, and the firmware under QEMU), and print the summary.
pub fn export_and_verify<B: Backend>(b: &B, s: &DemoSettings, out: &Path, t: Trained) -> Result<()> {
    let model_dir = out.join("model");
    println!("== 3/4 export ==");
    let card = export(&out.join("train"), &model_dir)?;
    println!("== 4/4 verify ==");
    let opts = VerifyOptions {
        n: None,
        qemu: Some(s.qemu_images),
        predictions: Some(model_dir.join("predictions.csv")),
        data: None,
        gpu: false,
    };
    let rows = verify(b, &model_dir, "fashion-mnist", &opts)?;
    let device = rows.iter().find(|r| r.runtime.starts_with("device crate")).context("device row")?;
    let fw = rows.iter().find(|r| r.runtime.starts_with("firmware")).context("firmware row")?;
    let since = if t.resumed { " since --resume" } else { "" };
    println!("\n== summary ({:.1} minutes{since}) ==", t.start.elapsed().as_secs_f64() / 60.0);
    println!("searched genotype (best val epoch {}):\n{}", t.search.best_epoch, t.search.genotype.summary());
    println!(
        "test accuracy: {:.2}% (engine, end of training); device crate {:.2}% on {} images",
        100.0 * t.train.test_accuracy,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo's network fits the firmware's memory map; one twice as wide (an 834 KB arena
    /// against 640 KiB of RAM) is refused with the sizes, before any training.
    #[test]
    fn networks_too_big_for_the_firmware_are_refused_before_training() {
        assert_eq!(crate::device_run::firmware_budget().unwrap(), (2 << 20, 640 << 10));
        let dir = crate::test_dirs::TempDir::new("demo-fit");
        let genotype = dir.0.join("genotype.json");
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fmnist-demo/genotype.json"), &genotype)
            .unwrap();
        check_fits_firmware(&genotype, 5, 12).unwrap();
        let e = check_fits_firmware(&genotype, 5, 24).unwrap_err().to_string();
        println!("{e}");
        let want = "--layers 5 --channels 24: the network needs 1,888,664 bytes of flash for its packed model and \
                    833,984 bytes of RAM for its arena; the firmware's memory map (";
        assert!(
            e.starts_with(want) && e.contains(") has 2,097,152 bytes of flash and 655,360 of RAM; `bnas scale"),
            "{e}"
        );
    }
}
