//! Training a network from a genotype: SGD with momentum and weight decay, cosine or
//! one-cycle schedules with warm-up, drop-path, label smoothing, gradient clipping,
//! checkpoints that resume exactly, and a run folder with metrics, curves and a confusion matrix.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, HostTensor};
use crate::data::{self, BatchLoader, Dataset, DatasetKind, LoaderOptions, Normalization, Split};
use crate::engine::optim::{clip_factor, grad_norm, Sgd};
use crate::engine::{Backend, Buffers, Group, ParamId, ParamStore, Tape};
use crate::interrupt::{epochs_text, stopped_line};
use crate::nn::{Genotype, NetConfig, Network, Template};
use crate::report::csv::Cell;
use crate::report::progress::{Counter, Progress, StepStats};
use crate::report::{self, chart::Series};
use crate::rng::Rng;

mod eval;
#[cfg(test)]
pub(crate) use eval::recal_indices;
pub use eval::{argmax, evaluate, recal_len, recalibrate_bn, EvalResult, BN_RECAL_IMAGES};

/// Learning-rate schedule over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Linear warm-up, then cosine from `lr` to `lr_min`.
    Cosine,
    /// The reference's one-cycle: `lr/20 -> lr -> lr/20` over 90% of the steps (momentum
    /// 0.95 -> 0.85 -> 0.95), then down to `lr/2000`.
    OneCycle,
}

/// Everything that defines a training run (saved as `config.json` in the run folder).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub genotype: String,
    pub dataset: String,
    pub data: Option<PathBuf>,
    pub layers: usize,
    pub channels: usize,
    pub template: Template,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    pub lr_min: f32,
    pub schedule: Schedule,
    pub warmup_epochs: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub label_smoothing: f32,
    pub drop_path: f32,
    pub grad_clip: Option<f32>,
    pub augment: bool,
    pub seed: u64,
    /// Use at most this many training images (small runs).
    pub train_subset: Option<usize>,
    /// Evaluate on at most this many test images each epoch (all at the end).
    pub eval_subset: Option<usize>,
    /// Also checkpoint every this many steps (besides every epoch).
    pub checkpoint_every: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            genotype: "bnas-imagenet".into(),
            dataset: "fashion-mnist".into(),
            data: None,
            layers: 8,
            channels: 16,
            template: Template::Bnas,
            epochs: 10,
            batch_size: 64,
            lr: 0.05,
            lr_min: 0.0,
            schedule: Schedule::Cosine,
            warmup_epochs: 1.0,
            momentum: 0.9,
            weight_decay: 3e-6,
            label_smoothing: 0.0,
            drop_path: 0.0,
            grad_clip: Some(5.0),
            augment: true,
            seed: 0,
            train_subset: None,
            eval_subset: None,
            checkpoint_every: None,
        }
    }
}

/// Learning rate and momentum at `step` of `total`.
pub fn schedule_at(cfg: &TrainConfig, step: usize, total: usize, steps_per_epoch: usize) -> (f32, f32) {
    let total = total.max(1);
    match cfg.schedule {
        Schedule::Cosine => {
            let warm = ((cfg.warmup_epochs * steps_per_epoch as f32) as usize).min(total - 1);
            if step < warm {
                return (cfg.lr * (step + 1) as f32 / warm as f32, cfg.momentum);
            }
            let t = (step - warm) as f32 / (total - warm).max(1) as f32;
            (cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + (std::f32::consts::PI * t).cos()), cfg.momentum)
        }
        Schedule::OneCycle => {
            let (lo, hi, last) = (cfg.lr / 20.0, cfg.lr, cfg.lr / 2000.0);
            let (m_hi, m_lo) = (0.95, 0.85);
            let up = (0.45 * total as f32).max(1.0);
            let down = (0.9 * total as f32).max(up + 1.0);
            let s = step as f32;
            let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t.clamp(0.0, 1.0);
            if s < up {
                (lerp(lo, hi, s / up), lerp(m_hi, m_lo, s / up))
            } else if s < down {
                let t = (s - up) / (down - up);
                (lerp(hi, lo, t), lerp(m_lo, m_hi, t))
            } else {
                (lerp(lo, last, (s - down) / (total as f32 - down).max(1.0)), m_hi)
            }
        }
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub lr: f32,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_loss: f64,
    pub test_acc: f64,
    pub images_per_s: f64,
    pub seconds: f64,
}

/// What survives a restart besides the tensors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    pub epoch: usize,
    /// Next batch within `epoch`.
    pub batch: usize,
    pub step: usize,
    pub rng: Rng,
    pub history: Vec<EpochMetrics>,
    /// Running sums of the current (partial) epoch: loss, correct, images, seconds.
    pub partial: (f64, u64, u64, f64),
}

/// Loads a dataset split named like the CLI's `--dataset`.
pub fn load_dataset(name: &str, root: Option<&Path>, split: Split) -> Result<Dataset> {
    let kind: DatasetKind = name.parse().map_err(|e: data::DataError| anyhow::anyhow!(e))?;
    Ok(data::load(&kind, root, split)?)
}

/// One sentence naming `flag` where its value `v` is not finite or `ok` (its range) fails.
pub(crate) fn check_flag(flag: &str, v: f32, ok: bool, want: &str) -> Result<()> {
    if ok && v.is_finite() {
        Ok(())
    } else {
        bail!("{flag} {v}: must be {want}")
    }
}

impl TrainConfig {
    /// Refuses hyperparameters outside their ranges before any data is read.
    pub fn check(&self) -> Result<()> {
        check_flag("--lr", self.lr, self.lr > 0.0, "a positive number")?;
        check_flag("--lr-min", self.lr_min, (0.0..=self.lr).contains(&self.lr_min), "between 0 and --lr")?;
        check_flag("--warmup-epochs", self.warmup_epochs, self.warmup_epochs >= 0.0, "0 or more")?;
        check_flag("--momentum", self.momentum, (0.0..1.0).contains(&self.momentum), "in [0, 1)")?;
        check_flag("--weight-decay", self.weight_decay, self.weight_decay >= 0.0, "0 or more")?;
        check_flag("--label-smoothing", self.label_smoothing, (0.0..1.0).contains(&self.label_smoothing), "in [0, 1)")?;
        check_flag("--drop-path", self.drop_path, (0.0..1.0).contains(&self.drop_path), "in [0, 1)")?;
        let clip = self.grad_clip.unwrap_or(0.0);
        check_flag("--grad-clip", clip, clip >= 0.0, "0 (off) or more")
    }
}

/// Refuses `--layers` and `--channels` that build no network of the template.
pub fn check_net_size(layers: usize, channels: usize) -> Result<()> {
    check_net_flags(["--layers", "--channels"], layers, channels)
}

/// [`check_net_size`] for flags of other names (the demo's `--search-layers`, say).
pub fn check_net_flags([layers_flag, channels_flag]: [&str; 2], layers: usize, channels: usize) -> Result<()> {
    if layers < 3 && layers != 1 {
        bail!("{layers_flag} {layers}: a network needs 1 cell or at least 3 (reductions sit at L/3 and 2L/3)");
    }
    if channels == 0 || !channels.is_multiple_of(2) {
        bail!("{channels_flag} {channels}: must be a positive even number");
    }
    Ok(())
}

/// The network config for a dataset.
pub fn net_config(ds: &Dataset, layers: usize, channels: usize, template: Template) -> Result<NetConfig> {
    check_net_size(layers, channels)?;
    if !ds.h.is_multiple_of(4) || ds.w != ds.h {
        bail!("{}: images are {}x{}; the networks need square images with a side divisible by 4", ds.name, ds.h, ds.w);
    }
    Ok(NetConfig { layers, channels, classes: ds.classes, input: [ds.c, ds.h, ds.w], template })
}

/// A network with its parameters and buffers, ready to train or evaluate.
pub struct Trained<B: Backend> {
    pub net: Network,
    pub params: ParamStore<B>,
    pub bufs: Buffers<B>,
    pub norm: Normalization,
}

/// Builds the network of a run folder and loads its latest checkpoint.
pub fn load_run<B: Backend>(b: &B, run: &Path) -> Result<(TrainConfig, Trained<B>)> {
    if !run.is_dir() {
        bail!("{}: no such folder (a training run folder: the --out of `bnas train`)", run.display());
    }
    if !run.join("config.json").exists() {
        if run.join("search_config.json").exists() {
            bail!(
                "{}: a search run, not a training run; train its genotype (`bnas train --genotype {}`) and use that run",
                run.display(),
                run.join("genotype.json").display()
            );
        }
        bail!("{}: not a training run folder (no config.json; `bnas train --out` writes one)", run.display());
    }
    let cfg: TrainConfig = read_json(&run.join("config.json"))?;
    let genotype = Genotype::load(&run.join("genotype.json"))?;
    let norm: Normalization = read_json(&run.join("normalization.json"))?;
    let net_cfg: NetConfig = read_json(&run.join("network.json"))?;
    let (mut params, mut bufs) = (ParamStore::default(), Buffers::default());
    let net = Network::new(b, &genotype, &net_cfg, &mut params, &mut bufs, &mut Rng::new(cfg.seed));
    let file = run.join(checkpoint::FILE);
    let mut loaded = checkpoint::load(&file)?;
    checkpoint::restore(b, &mut loaded, &file, &mut params, &mut bufs)?;
    Ok((cfg, Trained { net, params, bufs, norm }))
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: malformed JSON", path.display()))
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    checkpoint::write_atomic(path, serde_json::to_string_pretty(value)?.as_bytes())
}

/// The summary a finished run writes to `result.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainResult {
    pub test_accuracy: f64,
    pub test_images: usize,
    pub epochs: usize,
    pub train_images_per_s: f64,
    pub parameters: usize,
    pub backend: String,
}

/// Trains (or resumes with `resume`) a run in `out`. Returns the final test evaluation.
pub fn train<B: Backend>(b: &B, cfg: &TrainConfig, out: &Path, resume: bool) -> Result<TrainResult> {
    Ok(train_session(b, cfg, out, resume, &|| false)?.expect("a session without a stop runs to the end"))
}

/// Like `train`, but stops at the first check at which `interrupted()` is true (Ctrl-C:
/// `crate::interrupt`): after each step, with a checkpoint at that step, and before each epoch
/// after the session's first, whose checkpoint is written; returns `None` when the run is not
/// finished.
pub fn train_session<B: Backend>(
    b: &B,
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    interrupted: &dyn Fn() -> bool,
) -> Result<Option<TrainResult>> {
    let config_path = checkpoint::check_folder(out, "config.json", "run", resume)?;
    // A resumed run keeps its saved configuration; only the epoch count may grow.
    let cfg = if resume { TrainConfig { epochs: cfg.epochs, ..read_json(&config_path)? } } else { cfg.clone() };
    cfg.check()?;
    let genotype = if resume { Genotype::load(&out.join("genotype.json"))? } else { Genotype::resolve(&cfg.genotype)? };
    let root = cfg.data.as_deref();
    let mut train_ds = load_dataset(&cfg.dataset, root, Split::Train)?;
    if let Some(n) = cfg.train_subset {
        train_ds = train_ds.subset(n);
    }
    let test_ds = load_dataset(&cfg.dataset, root, Split::Test)?;
    let norm = Normalization::of(&train_ds);
    let net_cfg = net_config(&train_ds, cfg.layers, cfg.channels, cfg.template)?;
    let steps_per_epoch = data::batches_per_epoch(train_ds.len(), cfg.batch_size, true);
    if steps_per_epoch == 0 {
        bail!(
            "{}: {} training images are fewer than one batch of {}; use a smaller --batch-size",
            train_ds.name,
            train_ds.len(),
            cfg.batch_size
        );
    }
    // The run folder is made once the settings, the genotype and the data have loaded, so a
    // failed start leaves none.
    let _lock = checkpoint::claim_folder(out, "config.json", "run", "training run", resume)?;
    if !resume {
        write_json(&config_path, &cfg)?;
        std::fs::write(out.join("genotype.json"), genotype.to_json())?;
        write_json(&out.join("normalization.json"), &norm)?;
        write_json(&out.join("network.json"), &net_cfg)?;
    }
    let (mut params, mut bufs) = (ParamStore::default(), Buffers::default());
    let net = Network::new(b, &genotype, &net_cfg, &mut params, &mut bufs, &mut Rng::new(cfg.seed));
    let weight_ids: Vec<ParamId> = params.ids(Group::Weight).collect();
    let mut sgd = Sgd::new(params.params.len(), cfg.momentum, cfg.weight_decay);
    let mut state = TrainState {
        epoch: 0,
        batch: 0,
        step: 0,
        rng: Rng::derive(cfg.seed, 0xD80F),
        history: vec![],
        partial: (0.0, 0, 0, 0.0),
    };
    if resume {
        let file = out.join(checkpoint::FILE);
        let mut loaded = checkpoint::load(&file)?;
        checkpoint::restore(b, &mut loaded, &file, &mut params, &mut bufs)?;
        checkpoint::restore_sgd(b, &mut loaded, &file, &params, &mut sgd)?;
        state = serde_json::from_value(loaded.state)
            .with_context(|| format!("{}: malformed training state", file.display()))?;
        if state.epoch >= cfg.epochs {
            println!("{} is finished ({}): evaluating it again", out.display(), epochs_text(state.epoch));
        } else {
            println!(
                "resuming {} at epoch {}, batch {} (step {})",
                out.display(),
                state.epoch + 1,
                state.batch,
                state.step
            );
        }
    }
    let n_params = params.count(Group::Weight);
    println!(
        "train {} on {} ({} images) with {}: {} layers, {} channels, {} parameters, {:.1} M binary MACs + {:.2} M FP MACs per image",
        cfg.genotype,
        train_ds.name,
        train_ds.len(),
        b.describe(),
        cfg.layers,
        cfg.channels,
        n_params,
        net.binary_macs as f64 / 1e6,
        net.fp_macs as f64 / 1e6
    );
    let train_ds = Arc::new(train_ds);
    let train_idx: Vec<usize> = (0..train_ds.len()).collect();
    let total_steps = steps_per_epoch * cfg.epochs;
    let eval_idx =
        |limit: Option<usize>| (0..limit.map_or(test_ds.len(), |l| l.min(test_ds.len()))).collect::<Vec<_>>();
    let mut progress = Progress::new("train", cfg.epochs);
    let classes = train_ds.classes;
    let first_epoch = state.epoch;
    let mut last_eval = None;
    while state.epoch < cfg.epochs {
        // Ctrl-C during the last epoch's evaluation: its checkpoint is written.
        if state.epoch > first_epoch && interrupted() {
            progress.finish();
            println!("{}", stopped_line(state.epoch, cfg.epochs, 0, steps_per_epoch, out));
            return Ok(None);
        }
        let epoch = state.epoch;
        let opts = LoaderOptions {
            batch_size: cfg.batch_size,
            augment: cfg.augment.then(|| data::Augment::for_size(train_ds.h, train_ds.w)),
            drop_last: true,
            shuffle: true,
            start_batch: state.batch,
            prefetch: 3,
            seed: cfg.seed,
        };
        let loader = BatchLoader::new(train_ds.clone(), &norm, &train_idx, epoch as u64, &opts);
        progress.start_epoch(epoch, steps_per_epoch as u64, state.batch as u64);
        let drop_p = cfg.drop_path * epoch as f32 / cfg.epochs as f32;
        let mut lr = 0.0;
        for batch in loader {
            let tick = Instant::now();
            let (lr_now, momentum) = schedule_at(&cfg, state.step, total_steps, steps_per_epoch);
            lr = lr_now;
            sgd.momentum = momentum;
            params.refresh_binary(b, true);
            let mut t = Tape::new(b, &params, true, true);
            let [c, h, w] = batch.chw;
            let x = t.constant(b.upload(&batch.x), vec![batch.len(), c, h, w]);
            let labels: Vec<f32> = batch.y.iter().map(|&y| y as f32).collect();
            let logits = net.forward(&mut t, &mut bufs, None, x, Some((drop_p, &mut state.rng)))?;
            let loss = t.softmax_xent(logits, &b.upload(&labels), cfg.label_smoothing)?;
            let loss_value = t.to_vec(loss)[0];
            if !loss_value.is_finite() {
                let (node, layer) = t.first_non_finite().unwrap_or((0, "unknown".into()));
                bail!(
                    "the loss became {loss_value} at step {} (epoch {}, batch {}): the first non-finite value appeared in layer {layer} (tape node {node}); lower --lr, raise --warmup-epochs or keep --grad-clip",
                    state.step,
                    epoch + 1,
                    state.batch
                );
            }
            let correct =
                t.to_vec(logits).chunks(classes).zip(&batch.y).filter(|(r, &y)| argmax(r) == y as usize).count();
            let grads = t.backward(loss);
            let norm_g = grad_norm(b, &grads, &weight_ids);
            if !norm_g.is_finite() {
                bail!(
                    "the gradient norm became {norm_g} at step {} (epoch {}, batch {})",
                    state.step,
                    epoch + 1,
                    state.batch
                );
            }
            sgd.step(b, &mut params, &grads, &weight_ids, lr, clip_factor(norm_g, cfg.grad_clip));
            drop(grads);
            state.step += 1;
            state.batch += 1;
            let p = &mut state.partial;
            p.0 += loss_value as f64 * batch.len() as f64;
            p.1 += correct as u64;
            p.2 += batch.len() as u64;
            p.3 += tick.elapsed().as_secs_f64();
            progress.step(
                state.batch as u64,
                &StepStats {
                    loss: Some(p.0 / p.2 as f64),
                    accuracy: Some(p.1 as f64 / p.2 as f64),
                    images_per_s: Some(p.2 as f64 / p.3),
                },
            );
            if cfg.checkpoint_every.is_some_and(|k| state.step.is_multiple_of(k)) {
                save_train_checkpoint(b, out, &params, &bufs, &sgd, &state)?;
            }
            if interrupted() {
                save_train_checkpoint(b, out, &params, &bufs, &sgd, &state)?;
                progress.finish();
                println!("{}", stopped_line(epoch, cfg.epochs, state.batch, steps_per_epoch, out));
                return Ok(None);
            }
        }
        progress.phase("bn stats", recal_len(train_idx.len(), cfg.batch_size));
        recalibrate_bn(
            b,
            &mut params,
            &mut bufs,
            &train_ds,
            &norm,
            &train_idx,
            cfg.batch_size,
            cfg.seed,
            |t, bufs, x| net.forward(t, bufs, None, x, None),
            |n| progress.advance(n),
        )?;
        let test_idx = eval_idx(cfg.eval_subset);
        progress.phase("test", test_idx.len());
        let full_test = test_idx.len() == test_ds.len();
        let ev = evaluate(b, &net, &mut params, &mut bufs, &test_ds, &norm, test_idx, 256, |n| progress.advance(n))?;
        let p = state.partial;
        let m = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss: p.0 / p.2.max(1) as f64,
            train_acc: p.1 as f64 / p.2.max(1) as f64,
            test_loss: ev.loss,
            test_acc: ev.accuracy,
            images_per_s: p.2 as f64 / p.3.max(1e-9),
            seconds: p.3,
        };
        progress.end_epoch(&format!(
            "loss {:.4}  train {:.2}%  test {:.2}%  {:.1} img/s",
            m.train_loss,
            100.0 * m.train_acc,
            100.0 * m.test_acc,
            m.images_per_s
        ));
        state.history.push(m);
        last_eval = full_test.then_some(ev);
        state.epoch += 1;
        state.batch = 0;
        state.partial = (0.0, 0, 0, 0.0);
        save_train_checkpoint(b, out, &params, &bufs, &sgd, &state)?;
        write_metrics(out, &state.history)?;
    }
    progress.finish();
    // The last epoch's evaluation, where it covered the whole test set (the weights and
    // statistics have not changed since); a resumed, finished run evaluates again.
    let ev = match last_eval {
        Some(ev) => ev,
        None => {
            let bar = Counter::new("test", test_ds.len(), "images");
            evaluate(b, &net, &mut params, &mut bufs, &test_ds, &norm, eval_idx(None), 256, |n| bar.inc(n))?
        }
    };
    report::heatmap::confusion_matrix(
        &out.join("confusion.png"),
        &format!("{} on {} test: {:.2}%", cfg.genotype, test_ds.name, 100.0 * ev.accuracy),
        &test_ds.class_names,
        &ev.confusion,
    )?;
    let seconds: f64 = state.history.iter().map(|m| m.seconds).sum();
    let images: f64 = state.history.iter().map(|m| m.images_per_s * m.seconds).sum();
    let result = TrainResult {
        test_accuracy: ev.accuracy,
        test_images: test_ds.len(),
        epochs: state.history.len(),
        train_images_per_s: images / seconds.max(1e-9),
        parameters: n_params,
        backend: b.describe(),
    };
    write_json(&out.join("result.json"), &result)?;
    println!(
        "test accuracy {:.2}% on {} images; {:.1} training images/s; run folder {}",
        100.0 * result.test_accuracy,
        result.test_images,
        result.train_images_per_s,
        out.display()
    );
    Ok(Some(result))
}

fn save_train_checkpoint<B: Backend>(
    b: &B,
    out: &Path,
    params: &ParamStore<B>,
    bufs: &Buffers<B>,
    sgd: &Sgd<B>,
    state: &TrainState,
) -> Result<()> {
    let mut tensors: Vec<HostTensor> = checkpoint::collect(b, params, bufs);
    tensors.extend(checkpoint::collect_sgd(b, params, sgd));
    checkpoint::save(out, &tensors, &serde_json::to_value(state)?)?;
    Ok(())
}

/// Rewrites `metrics.csv` and `curves.png` from the full history (idempotent on resume).
fn write_metrics(out: &Path, history: &[EpochMetrics]) -> Result<()> {
    let csv_path = out.join("metrics.csv");
    let tmp = csv_path.with_extension("csv.tmp");
    let _ = std::fs::remove_file(&tmp);
    let log = report::csv::CsvLog::open(
        &tmp,
        &["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "images_per_s", "seconds"],
    )?;
    for m in history {
        log.append(&[
            Cell::from(m.epoch),
            m.lr.into(),
            m.train_loss.into(),
            m.train_acc.into(),
            m.test_loss.into(),
            m.test_acc.into(),
            m.images_per_s.into(),
            m.seconds.into(),
        ])?;
    }
    drop(log);
    std::fs::rename(&tmp, &csv_path)?;
    let pts = |f: &dyn Fn(&EpochMetrics) -> f64| history.iter().map(|m| (m.epoch as f64, f(m))).collect::<Vec<_>>();
    report::chart::line_chart(
        &out.join("curves.png"),
        "training curves",
        "epoch",
        &[
            Series::new("train accuracy %", pts(&|m| 100.0 * m.train_acc), report::palette(0)),
            Series::new("test accuracy %", pts(&|m| 100.0 * m.test_acc), report::palette(1)),
        ],
        "accuracy (%)",
    )?;
    report::chart::line_chart(
        &out.join("loss.png"),
        "training loss",
        "epoch",
        &[
            Series::new("train loss", pts(&|m| m.train_loss), report::palette(0)),
            Series::new("test loss", pts(&|m| m.test_loss), report::palette(1)),
        ],
        "cross-entropy",
    )?;
    Ok(())
}
