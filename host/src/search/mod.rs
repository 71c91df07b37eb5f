//! The BNAS search: a first-order bilevel loop over the supernet with the diversity
//! regularizer `L_alpha = CE_val - lambda * H(alpha) * exp(-t / tau)` (bnas-method.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, HostTensor};
use crate::data::{self, BatchLoader, Dataset, LoaderOptions, Normalization, Split};
use crate::engine::optim::{clip_factor, grad_norm, Adam, Sgd};
use crate::engine::{Backend, Buffers, Group, ParamId, ParamStore, Tape};
use crate::interrupt::{epochs_text, stopped_line};
use crate::nn::genotype::{Genotype, EDGES};
use crate::nn::supernet::{derive_genotype, diversity_weight, SearchSpace, SuperNet};
use crate::nn::{NetConfig, Template};
use crate::report::progress::{Progress, StepStats};
use crate::rng::Rng;
use crate::train::{argmax, load_dataset, net_config, read_json, write_json};

mod report;
use report::{append_alphas, write_search_report};
pub use report::{draw_cells, edge_labels};

/// Paper defaults: lambda = 1.0, tau = 7.7.
pub const LAMBDA: f32 = 1.0;
pub const TAU: f32 = 7.7;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchConfig {
    pub dataset: String,
    pub data: Option<PathBuf>,
    pub layers: usize,
    pub channels: usize,
    pub batch_size: usize,
    pub epochs: usize,
    /// Diversity regularizer strength (0: the plain DARTS objective).
    pub lambda: f32,
    pub tau: f32,
    pub lr: f32,
    pub lr_min: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub alpha_lr: f32,
    pub alpha_beta1: f32,
    pub alpha_beta2: f32,
    pub alpha_weight_decay: f32,
    pub grad_clip: Option<f32>,
    /// Keep zeroise in the space (the paper's Table 2 ablation turns it off).
    pub zeroise: bool,
    /// Add the binary separable convs to the space (the paper's Table 1 ablation).
    #[serde(default)]
    pub sep_conv: bool,
    pub template: Template,
    /// Divide the zeroise weight by this before deriving (1: off; the paper's transfer uses 3).
    pub zeroise_gamma: f32,
    pub seed: u64,
    /// Search on at most this many training images (split 50/50 into train and val).
    pub train_subset: Option<usize>,
    /// Measure validation accuracy each epoch on at most this many search-val images.
    pub val_subset: Option<usize>,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            dataset: "fashion-mnist".into(),
            data: None,
            layers: 8,
            channels: 16,
            batch_size: 64,
            epochs: 50,
            lambda: LAMBDA,
            tau: TAU,
            lr: 0.025,
            lr_min: 0.001,
            momentum: 0.9,
            weight_decay: 3e-4,
            alpha_lr: 3e-4,
            alpha_beta1: 0.5,
            alpha_beta2: 0.999,
            alpha_weight_decay: 1e-3,
            grad_clip: Some(5.0),
            zeroise: true,
            sep_conv: false,
            template: Template::Bnas,
            zeroise_gamma: 1.0,
            seed: 0,
            train_subset: None,
            val_subset: Some(2000),
        }
    }
}

/// One epoch of the search.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchEpoch {
    pub epoch: usize,
    pub lr: f32,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    /// Mean softmax entropy over the 28 edges at the end of the epoch.
    pub entropy: f64,
    /// `lambda * exp(-t / tau)` used during the epoch.
    pub reg_weight: f64,
    pub images_per_s: f64,
    pub genotype: Genotype,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchState {
    pub epoch: usize,
    pub step: usize,
    pub history: Vec<SearchEpoch>,
    /// Next step within `epoch` (a search stopped by Ctrl-C resumes there).
    #[serde(default)]
    pub batch: usize,
    /// Running sums of the current (partial) epoch: loss, correct, images, seconds.
    #[serde(default)]
    pub partial: (f64, u64, u64, f64),
}

/// A supernet with its parameters and optimizers.
pub struct Searcher<B: Backend> {
    pub net: SuperNet,
    pub params: ParamStore<B>,
    pub bufs: Buffers<B>,
    pub sgd: Sgd<B>,
    pub adam: Adam<B>,
    weight_ids: Vec<ParamId>,
    arch_ids: Vec<ParamId>,
}

/// Figures of one bilevel step.
pub struct StepOut {
    pub train_loss: f32,
    pub correct: usize,
}

impl<B: Backend> Searcher<B> {
    pub fn new(b: &B, cfg: &SearchConfig, net_cfg: &NetConfig) -> Self {
        let (mut params, mut bufs) = (ParamStore::default(), Buffers::default());
        let net = SuperNet::new(
            b,
            net_cfg,
            SearchSpace::new(cfg.zeroise, cfg.sep_conv),
            &mut params,
            &mut bufs,
            &mut Rng::new(cfg.seed),
        );
        let weight_ids = params.ids(Group::Weight).collect();
        let arch_ids = params.ids(Group::Arch).collect();
        let n = params.params.len();
        Self {
            net,
            params,
            bufs,
            sgd: Sgd::new(n, cfg.momentum, cfg.weight_decay),
            adam: Adam::new(n, cfg.alpha_beta1, cfg.alpha_beta2, cfg.alpha_weight_decay),
            weight_ids,
            arch_ids,
        }
    }

    /// One alpha step on the validation batch, then one weight step on the training batch.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        b: &B,
        cfg: &SearchConfig,
        train: (&[f32], &[u32]),
        val: (&[f32], &[u32]),
        chw: [usize; 3],
        reg_weight: f32,
        lr: f32,
    ) -> Result<StepOut> {
        let [c, h, w] = chw;
        self.params.refresh_binary(b, true);
        // Alpha step: CE on validation data minus the weighted mean edge entropy.
        {
            let mut t = Tape::new(b, &self.params, true, true);
            t.grad_group = Some(Group::Arch);
            let x = t.constant(b.upload(val.0), vec![val.1.len(), c, h, w]);
            let logits = self.net.forward(&mut t, &mut self.bufs, None, x)?;
            let labels: Vec<f32> = val.1.iter().map(|&y| y as f32).collect();
            let ce = t.softmax_xent(logits, &b.upload(&labels), 0.0)?;
            let loss = if reg_weight != 0.0 {
                let hvar = self.net.mean_entropy(&mut t)?;
                let reg = t.scale(hvar, -reg_weight);
                t.add(ce, reg)?
            } else {
                ce
            };
            let value = t.to_vec(loss)[0];
            if !value.is_finite() {
                let (node, layer) = t.first_non_finite().unwrap_or((0, "unknown".into()));
                bail!(
                    "the architecture loss became {value}: first non-finite value in layer {layer} (tape node {node})"
                );
            }
            let grads = t.backward(loss);
            self.adam.step(b, &mut self.params, &grads, &self.arch_ids, cfg.alpha_lr);
        }
        // Weight step.
        let mut t = Tape::new(b, &self.params, true, true);
        t.grad_group = Some(Group::Weight);
        let x = t.constant(b.upload(train.0), vec![train.1.len(), c, h, w]);
        let logits = self.net.forward(&mut t, &mut self.bufs, None, x)?;
        let labels: Vec<f32> = train.1.iter().map(|&y| y as f32).collect();
        let loss = t.softmax_xent(logits, &b.upload(&labels), 0.0)?;
        let train_loss = t.to_vec(loss)[0];
        if !train_loss.is_finite() {
            let (node, layer) = t.first_non_finite().unwrap_or((0, "unknown".into()));
            bail!("the search loss became {train_loss}: first non-finite value in layer {layer} (tape node {node})");
        }
        let classes = self.net.cfg.classes;
        let correct = t.to_vec(logits).chunks(classes).zip(train.1).filter(|(r, &y)| argmax(r) == y as usize).count();
        let grads = t.backward(loss);
        let norm = grad_norm(b, &grads, &self.weight_ids);
        self.sgd.step(b, &mut self.params, &grads, &self.weight_ids, lr, clip_factor(norm, cfg.grad_clip));
        Ok(StepOut { train_loss, correct })
    }

    /// Validation loss and accuracy in evaluation mode.
    pub fn validate(
        &mut self,
        b: &B,
        ds: &Dataset,
        norm: &Normalization,
        indices: Vec<usize>,
        mut done: impl FnMut(usize),
    ) -> Result<(f64, f64)> {
        self.params.refresh_binary(b, false);
        let cache = self.net.eval_cache(b, &self.params, &self.bufs);
        let (mut loss, mut correct, mut n) = (0f64, 0usize, 0usize);
        for batch in data::eval_batches(ds, norm, indices, 128) {
            let mut t = Tape::new(b, &self.params, false, false);
            let [c, h, w] = batch.chw;
            let x = t.constant(b.upload(&batch.x), vec![batch.len(), c, h, w]);
            let logits = self.net.forward(&mut t, &mut self.bufs, Some(&cache), x)?;
            let labels: Vec<f32> = batch.y.iter().map(|&y| y as f32).collect();
            let l = t.softmax_xent(logits, &b.upload(&labels), 0.0)?;
            loss += t.to_vec(l)[0] as f64 * batch.len() as f64;
            let classes = self.net.cfg.classes;
            correct += t.to_vec(logits).chunks(classes).zip(&batch.y).filter(|(r, &y)| argmax(r) == y as usize).count();
            n += batch.len();
            done(batch.len());
        }
        Ok((loss / n.max(1) as f64, correct as f64 / n.max(1) as f64))
    }

    /// The mean softmax entropy over all edges (as the regularizer computes it).
    pub fn entropy(&self, b: &B) -> f64 {
        let (wn, wr) = self.net.alpha_weights(b, &self.params);
        let h = |rows: &[Vec<f32>]| {
            rows.iter().map(|p| -p.iter().map(|&q| q as f64 * (q.max(1e-30) as f64).ln()).sum::<f64>()).sum::<f64>()
        };
        (h(&wn) + h(&wr)) / (2 * EDGES) as f64
    }
}

/// Learning rate of the weight step: cosine from `lr` to `lr_min` over the epochs.
pub fn weight_lr(cfg: &SearchConfig, epoch: usize) -> f32 {
    let t = epoch as f32 / cfg.epochs.max(1) as f32;
    cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + (std::f32::consts::PI * t).cos())
}

/// What a finished search returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResult {
    pub genotype: Genotype,
    pub best_epoch: usize,
    pub best_val_acc: f64,
    pub search_images_per_s: f64,
    pub backend: String,
}

impl SearchConfig {
    /// Refuses hyperparameters outside their ranges before any data is read.
    pub fn check(&self) -> Result<()> {
        use crate::train::check_flag;
        check_flag("--lambda", self.lambda, self.lambda >= 0.0, "0 (plain DARTS) or more")?;
        check_flag("--tau", self.tau, self.tau > 0.0, "a positive number of epochs")?;
        check_flag("--lr", self.lr, self.lr > 0.0, "a positive number")?;
        check_flag("--lr-min", self.lr_min, (0.0..=self.lr).contains(&self.lr_min), "between 0 and --lr")?;
        check_flag("--alpha-lr", self.alpha_lr, self.alpha_lr > 0.0, "a positive number")?;
        check_flag("--zeroise-gamma", self.zeroise_gamma, self.zeroise_gamma > 0.0, "a positive number")
    }
}

/// Runs (or resumes) a search in `out`.
pub fn search<B: Backend>(b: &B, cfg: &SearchConfig, out: &Path, resume: bool) -> Result<SearchResult> {
    Ok(search_session(b, cfg, out, resume, &|| false)?.expect("a session without a stop runs to the end"))
}

/// Like `search`, but stops after the first step at which `interrupted()` is true (Ctrl-C:
/// `crate::interrupt`), with a checkpoint at that step; returns `None` when the search is not
/// finished.
pub fn search_session<B: Backend>(
    b: &B,
    cfg: &SearchConfig,
    out: &Path,
    resume: bool,
    interrupted: &dyn Fn() -> bool,
) -> Result<Option<SearchResult>> {
    let config_path = checkpoint::check_folder(out, "search_config.json", "search", resume)?;
    let cfg = if resume { SearchConfig { epochs: cfg.epochs, ..read_json(&config_path)? } } else { cfg.clone() };
    cfg.check()?;
    let mut ds = load_dataset(&cfg.dataset, cfg.data.as_deref(), Split::Train)?;
    if let Some(n) = cfg.train_subset {
        ds = ds.subset(n);
    }
    let norm = Normalization::of(&ds);
    let net_cfg = net_config(&ds, cfg.layers, cfg.channels, cfg.template)?;
    let (train_idx, val_idx) = data::split_half(ds.len(), cfg.seed);
    let steps = data::batches_per_epoch(train_idx.len().min(val_idx.len()), cfg.batch_size, true);
    if steps == 0 {
        bail!(
            "{}: {} search images are too few for a batch of {} in each half; use a smaller --batch-size",
            ds.name,
            ds.len(),
            cfg.batch_size
        );
    }
    // The run folder is made once the settings and the data have loaded, so a failed start
    // leaves none.
    let _lock = checkpoint::claim_folder(out, "search_config.json", "search", "search", resume)?;
    if !resume {
        write_json(&config_path, &cfg)?;
    }
    let mut s = Searcher::new(b, &cfg, &net_cfg);
    let mut state = SearchState { epoch: 0, step: 0, history: vec![], batch: 0, partial: (0.0, 0, 0, 0.0) };
    if resume {
        let file = out.join(checkpoint::FILE);
        let mut loaded = checkpoint::load(&file)?;
        checkpoint::restore(b, &mut loaded, &file, &mut s.params, &mut s.bufs)?;
        checkpoint::restore_sgd(b, &mut loaded, &file, &s.params, &mut s.sgd)?;
        checkpoint::restore_adam(b, &mut loaded, &file, &s.params, &mut s.adam)?;
        state = serde_json::from_value(loaded.state)
            .with_context(|| format!("{}: malformed search state", file.display()))?;
        s.adam.t = state.step as u32;
        if state.epoch >= cfg.epochs {
            println!("search {} is finished ({}): its result is kept", out.display(), epochs_text(state.epoch));
        } else {
            println!("resuming search {} at epoch {}, step {}", out.display(), state.epoch + 1, state.batch);
        }
    }
    println!(
        "search on {} ({} search-train / {} search-val images) with {}: {} cells, {} channels, {} ops per edge, lambda {}, tau {}",
        ds.name,
        train_idx.len(),
        val_idx.len(),
        b.describe(),
        cfg.layers,
        cfg.channels,
        s.net.space.ops.len(),
        cfg.lambda,
        cfg.tau
    );
    let ds = Arc::new(ds);
    let val_eval: Vec<usize> = val_idx.iter().copied().take(cfg.val_subset.unwrap_or(usize::MAX)).collect();
    let mut progress = Progress::new("search", cfg.epochs);
    let first_epoch = state.epoch;
    while state.epoch < cfg.epochs {
        // Ctrl-C during the last epoch's validation: its checkpoint is written.
        if state.epoch > first_epoch && interrupted() {
            progress.finish();
            println!("{}", stopped_line(state.epoch, cfg.epochs, 0, steps, out));
            return Ok(None);
        }
        let epoch = state.epoch;
        let opts = |seed: u64| LoaderOptions {
            batch_size: cfg.batch_size,
            augment: None,
            drop_last: true,
            shuffle: true,
            start_batch: state.batch,
            prefetch: 3,
            seed,
        };
        let train_loader = BatchLoader::new(ds.clone(), &norm, &train_idx, epoch as u64, &opts(cfg.seed));
        let val_loader = BatchLoader::new(ds.clone(), &norm, &val_idx, epoch as u64, &opts(cfg.seed ^ 0x005E_A7C4));
        let reg = diversity_weight(cfg.lambda, cfg.tau, epoch);
        let lr = weight_lr(&cfg, epoch);
        progress.start_epoch(epoch, steps as u64, state.batch as u64);
        for (tb, vb) in train_loader.zip(val_loader).take(steps.saturating_sub(state.batch)) {
            let tick = Instant::now();
            let o = s.step(b, &cfg, (&tb.x, &tb.y), (&vb.x, &vb.y), tb.chw, reg, lr)?;
            state.step += 1;
            state.batch += 1;
            let p = &mut state.partial;
            p.0 += o.train_loss as f64 * tb.len() as f64;
            p.1 += o.correct as u64;
            p.2 += tb.len() as u64;
            p.3 += tick.elapsed().as_secs_f64();
            progress.step(
                state.batch as u64,
                &StepStats {
                    loss: Some(p.0 / p.2 as f64),
                    accuracy: Some(p.1 as f64 / p.2 as f64),
                    images_per_s: Some(2.0 * p.2 as f64 / p.3),
                },
            );
            if interrupted() {
                save_search_checkpoint(b, out, &s, &state)?;
                progress.finish();
                println!("{}", stopped_line(epoch, cfg.epochs, state.batch, steps, out));
                return Ok(None);
            }
        }
        let (loss_sum, correct, n, seconds) = state.partial;
        let Searcher { net, params, bufs, .. } = &mut s;
        progress.phase("bn stats", crate::train::recal_len(train_idx.len(), cfg.batch_size));
        crate::train::recalibrate_bn(
            b,
            params,
            bufs,
            &ds,
            &norm,
            &train_idx,
            cfg.batch_size,
            cfg.seed,
            |t, bufs, x| net.forward(t, bufs, None, x),
            |n| progress.advance(n),
        )?;
        progress.phase("val", val_eval.len());
        let (val_loss, val_acc) = s.validate(b, &ds, &norm, val_eval.clone(), |n| progress.advance(n))?;
        let (wn, wr) = s.net.alpha_weights(b, &s.params);
        let genotype = derive_genotype(&wn, &wr, &s.net.space, cfg.zeroise_gamma);
        let e = SearchEpoch {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / n.max(1) as f64,
            train_acc: correct as f64 / n.max(1) as f64,
            val_loss,
            val_acc,
            entropy: s.entropy(b),
            reg_weight: reg as f64,
            // Both batches of a step count: the step processes 2 * batch images.
            images_per_s: 2.0 * n as f64 / seconds.max(1e-9),
            genotype,
        };
        progress.end_epoch(&format!(
            "loss {:.4}  train {:.2}%  val {:.2}%  entropy {:.4}  {:.1} img/s",
            e.train_loss,
            100.0 * e.train_acc,
            100.0 * e.val_acc,
            e.entropy,
            e.images_per_s
        ));
        append_alphas(out, epoch + 1, &wn, &wr, &s.net.space)?;
        state.history.push(e);
        state.epoch += 1;
        state.batch = 0;
        state.partial = (0.0, 0, 0, 0.0);
        save_search_checkpoint(b, out, &s, &state)?;
        write_search_report(out, &state.history, &wn, &wr, &s.net.space)?;
    }
    progress.finish();
    let best = state
        .history
        .iter()
        .max_by(|a, b| {
            a.val_acc.partial_cmp(&b.val_acc).unwrap_or(std::cmp::Ordering::Equal).then(b.epoch.cmp(&a.epoch))
        })
        .context("the search ran no epoch")?;
    let seconds_rate: Vec<f64> = state.history.iter().map(|e| e.images_per_s).collect();
    let result = SearchResult {
        genotype: best.genotype.clone(),
        best_epoch: best.epoch,
        best_val_acc: best.val_acc,
        search_images_per_s: seconds_rate.iter().sum::<f64>() / seconds_rate.len() as f64,
        backend: b.describe(),
    };
    std::fs::write(out.join("genotype.json"), result.genotype.to_json())?;
    write_json(&out.join("search_result.json"), &result)?;
    draw_cells(out, &result.genotype, cfg.template)?;
    println!(
        "best validation accuracy {:.2}% at epoch {}; genotype:\n{}",
        100.0 * result.best_val_acc,
        result.best_epoch,
        result.genotype.summary()
    );
    println!("written: {}", out.join("genotype.json").display());
    Ok(Some(result))
}

/// The search's parameters, buffers, both optimizers' states and `state`, in `out`'s checkpoint.
fn save_search_checkpoint<B: Backend>(b: &B, out: &Path, s: &Searcher<B>, state: &SearchState) -> Result<()> {
    let mut tensors: Vec<HostTensor> = checkpoint::collect(b, &s.params, &s.bufs);
    tensors.extend(checkpoint::collect_sgd(b, &s.params, &s.sgd));
    tensors.extend(checkpoint::collect_adam(b, &s.params, &s.adam));
    checkpoint::save(out, &tensors, &serde_json::to_value(state)?)?;
    Ok(())
}
