//! `bnas export`: a run folder becomes a model folder: `NAME.bnas` (packed, for the device),
//! `NAME.onnx` (the float graph), the weights for the engine, the genotype and a model card.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::engine::cpu::Cpu;
use crate::info::NetCost;
use crate::nn::{Genotype, NetConfig};
use crate::train::{load_run, read_json, write_json, TrainConfig, TrainResult};

/// What a model folder says about its model (`card.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    pub name: String,
    pub dataset: String,
    pub genotype: Genotype,
    pub network: NetConfig,
    /// Test accuracy measured at the end of training, when the run has one.
    pub test_accuracy: Option<f64>,
    pub parameters: usize,
    pub binary_macs: u64,
    pub fp_macs: u64,
    /// FLOPs = BOPs / 64 + full-precision FLOPs.
    pub flops: f64,
    pub packed_bytes: usize,
    pub onnx_bytes: usize,
    pub arena_bytes: usize,
    pub liveness_lower_bound_bytes: usize,
    pub train_config: TrainConfig,
}

/// Files of a model folder.
pub struct ModelFiles {
    pub dir: PathBuf,
    pub name: String,
}

impl ModelFiles {
    pub fn new(dir: &Path) -> Result<Self> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: a model folder needs a name", dir.display()))?
            .to_string();
        Ok(Self { dir: dir.to_path_buf(), name })
    }
    /// An exported model folder, by its packed model: `<folder name>.bnas`, else the folder's
    /// only `.bnas` file (so a copied or renamed folder still opens).
    pub fn open(dir: &Path) -> Result<Self> {
        let named = Self::new(dir)?;
        if named.packed().is_file() {
            return Ok(named);
        }
        let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read model folder {}", dir.display()))?;
        let mut stems: Vec<String> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "bnas"))
            .filter_map(|p| p.file_stem()?.to_str().map(String::from))
            .collect();
        stems.sort();
        match stems.as_slice() {
            [one] => Ok(Self { dir: dir.to_path_buf(), name: one.clone() }),
            [] => bail!("{}: no .bnas model in this folder (`bnas export` writes one)", dir.display()),
            _ => bail!(
                "{}: {} .bnas models in one folder ({}); keep one per model folder",
                dir.display(),
                stems.len(),
                stems.join(", ")
            ),
        }
    }
    pub fn packed(&self) -> PathBuf {
        self.dir.join(format!("{}.bnas", self.name))
    }
    pub fn onnx(&self) -> PathBuf {
        self.dir.join(format!("{}.onnx", self.name))
    }
    pub fn card(&self) -> PathBuf {
        self.dir.join("card.json")
    }
    /// The engine's copy of the run (weights, configs), so `verify` can evaluate it.
    pub fn engine_dir(&self) -> PathBuf {
        self.dir.join("engine")
    }
}

/// Model bytes as aligned words (`Model::parse` reads u32 words in place).
pub use bnas_device::sample::aligned;

pub fn parse<'a>(words: &'a [u32], len: usize, file: &Path) -> Result<bnas_device::Model<'a>> {
    bnas_device::Model::parse(&bytemuck::cast_slice::<u32, u8>(words)[..len])
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// Exports the run in `run` to the model folder `out`.
pub fn export(run: &Path, out: &Path) -> Result<ModelCard> {
    let files = ModelFiles::new(out)?;
    let cpu = Cpu::new(None)?;
    let (cfg, mut t) = load_run(&cpu, run)?;
    let packed = super::packed::lower(&cpu, &t.net, &mut t.params, &t.bufs, &t.norm)?;
    let words = aligned(&packed);
    let model = parse(&words, packed.len(), &files.packed())?;
    let onnx = super::onnx::to_onnx(&model).map_err(|e| anyhow::anyhow!("ONNX export: {e}"))?;
    // The folder is made once the run has loaded and lowered: a failed export leaves none.
    std::fs::create_dir_all(files.engine_dir()).with_context(|| format!("cannot create {}", out.display()))?;
    crate::checkpoint::write_atomic(&files.packed(), &packed)?;
    crate::checkpoint::write_atomic(&files.onnx(), &onnx)?;
    std::fs::write(out.join("genotype.json"), t.net.genotype.to_json())?;
    // The engine's copy: weights and buffers only (no optimizer state).
    let tensors = crate::checkpoint::collect(&cpu, &t.params, &t.bufs);
    let engine = files.engine_dir();
    crate::checkpoint::save(&engine, &tensors, &serde_json::json!({ "exported_from": run.display().to_string() }))?;
    for f in ["config.json", "network.json", "normalization.json", "genotype.json"] {
        std::fs::copy(run.join(f), engine.join(f)).with_context(|| format!("cannot copy {}", run.join(f).display()))?;
    }
    let result: Option<TrainResult> = read_json(&run.join("result.json")).ok();
    let cost = NetCost {
        parameters: t.params.count(crate::engine::Group::Weight),
        binary_params: 0,
        binary_macs: t.net.binary_macs,
        fp_macs: t.net.fp_macs,
    };
    let card = ModelCard {
        name: files.name.clone(),
        dataset: cfg.dataset.clone(),
        genotype: t.net.genotype.clone(),
        network: t.net.cfg.clone(),
        test_accuracy: result.map(|r| r.test_accuracy),
        parameters: cost.parameters,
        binary_macs: cost.binary_macs,
        fp_macs: cost.fp_macs,
        flops: cost.flops(),
        packed_bytes: packed.len(),
        onnx_bytes: onnx.len(),
        arena_bytes: model.arena_bytes(),
        liveness_lower_bound_bytes: model.liveness_lower_bound_bytes(),
        train_config: cfg,
    };
    write_json(&files.card(), &card)?;
    println!(
        "exported {} -> {} ({} bytes packed, arena {} bytes, liveness bound {} bytes) and {} ({} bytes); test accuracy {}",
        run.display(),
        files.packed().display(),
        card.packed_bytes,
        card.arena_bytes,
        card.liveness_lower_bound_bytes,
        files.onnx().display(),
        card.onnx_bytes,
        card.test_accuracy.map_or("not measured".into(), |a| format!("{:.2}%", 100.0 * a))
    );
    Ok(card)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dirs::TempDir;

    #[test]
    fn a_copied_model_folder_opens_under_its_new_name() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fmnist-demo");
        assert_eq!(ModelFiles::open(&shipped).unwrap().name, "fmnist-demo");
        let tmp = TempDir::new("model-copy");
        let dir = &tmp.0;
        let err = ModelFiles::open(dir).err().expect("an empty folder").to_string();
        assert!(err.contains("no .bnas model"), "{err}");
        for f in ["fmnist-demo.bnas", "fmnist-demo.onnx", "card.json"] {
            std::fs::copy(shipped.join(f), dir.join(f)).unwrap();
        }
        let files = ModelFiles::open(dir).unwrap();
        assert_eq!((files.packed(), files.onnx()), (dir.join("fmnist-demo.bnas"), dir.join("fmnist-demo.onnx")));
        std::fs::copy(shipped.join("fmnist-demo.bnas"), dir.join("other.bnas")).unwrap();
        let err = ModelFiles::open(dir).err().expect("two models").to_string();
        assert!(err.contains("2 .bnas models") && err.contains("fmnist-demo, other"), "{err}");
    }

    /// Export names what the folder it was given is, when it is not a training run, and makes
    /// no model folder.
    #[test]
    fn export_of_a_folder_that_is_not_a_training_run_says_what_it_is() {
        let tmp = TempDir::new("export-not-run");
        let dir = tmp.0.join("run");
        let out = dir.join("model");
        let err = |run: &Path| export(run, &out).expect_err("refused").to_string();
        let e = err(&dir.join("missing"));
        assert!(e.ends_with("missing: no such folder (a training run folder: the --out of `bnas train`)"), "{e}");
        std::fs::create_dir_all(&dir).unwrap();
        let e = err(&dir);
        assert!(e.ends_with("not a training run folder (no config.json; `bnas train --out` writes one)"), "{e}");
        std::fs::write(dir.join("search_config.json"), "{}").unwrap();
        let e = err(&dir);
        assert!(e.contains(": a search run, not a training run; train its genotype (`bnas train --genotype "), "{e}");
        assert!(!out.exists());
    }
}
