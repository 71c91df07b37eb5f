//! Tests of whole runs on real Fashion-MNIST images (installed by `.ci/run`): training
//! resumes exactly, the diversity regularizer keeps the alphas' entropy higher, and settings out
//! of range are refused before anything is written.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::engine::cpu::Cpu;
use crate::search::{search, search_session, SearchConfig};
use crate::test_dirs::TempDir;
use crate::train::{train, train_session, TrainConfig};

/// The largest difference between the tensors of the checkpoints in two run folders (which
/// must hold the same tensors), and the listed figures of each epoch in their histories.
fn compare_checkpoints(a: &Path, b: &Path, keys: &[&str]) -> (f32, [Vec<Vec<serde_json::Value>>; 2]) {
    let (a, b) =
        (checkpoint::load(&a.join(checkpoint::FILE)).unwrap(), checkpoint::load(&b.join(checkpoint::FILE)).unwrap());
    assert_eq!(a.tensors.len(), b.tensors.len());
    let mut worst = 0f32;
    for (name, t) in &a.tensors {
        worst = t.data.iter().zip(&b.tensors[name].data).fold(worst, |m, (x, y)| m.max((x - y).abs()));
    }
    println!("{} tensors compared; largest difference {worst:e}", a.tensors.len());
    let figures = |s: &serde_json::Value| -> Vec<Vec<serde_json::Value>> {
        s["history"].as_array().unwrap().iter().map(|e| keys.iter().map(|k| e[*k].clone()).collect()).collect()
    };
    (worst, [figures(&a.state), figures(&b.state)])
}

/// A Ctrl-C that a run sees at its `n`-th check of `interrupted` (and every later one).
fn ctrl_c_at_check(n: usize) -> impl Fn() -> bool {
    let checks = std::cell::Cell::new(0);
    move || {
        checks.set(checks.get() + 1);
        checks.get() >= n
    }
}

/// A run folder `run` not made yet, in a fresh temp folder removed with the `TempDir`.
fn tmp(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    let run = dir.0.join("run");
    (dir, run)
}

fn tiny_train(epochs: usize) -> TrainConfig {
    TrainConfig {
        genotype: "bnas-imagenet".into(),
        layers: 3,
        channels: 4,
        epochs,
        batch_size: 32,
        train_subset: Some(256),
        eval_subset: Some(64),
        drop_path: 0.1,
        seed: 3,
        ..Default::default()
    }
}

/// A run stopped by Ctrl-C right after an epoch's checkpoint, or in the middle of an epoch, and
/// then resumed, reaches the same weights and figures as one run straight through.
#[test]
fn a_resumed_run_reaches_the_same_weights_as_an_uninterrupted_one() {
    let cpu = Cpu::new(Some(2)).unwrap();
    let ((_w, whole), (_c, ctrl_c), (_b, between)) = (tmp("whole"), tmp("ctrl-c"), tmp("between"));
    train(&cpu, &tiny_train(2), &whole, false).unwrap();
    // Ctrl-C at the n-th check. The run checks after each step, and before each epoch after
    // its first: check 9 falls between the epochs (Ctrl-C during the first epoch's evaluation:
    // the run stops right after that epoch's checkpoint), check 12 after step 11, the second
    // epoch's third of 8 steps.
    let ctrl_c_at = |n: usize, out: &PathBuf| {
        assert!(train_session(&cpu, &tiny_train(2), out, false, &ctrl_c_at_check(n)).unwrap().is_none());
        checkpoint::load(&out.join(checkpoint::FILE)).unwrap().state
    };
    let state = ctrl_c_at(9, &between);
    assert_eq!((&state["step"], &state["epoch"], &state["batch"]), (&8.into(), &1.into(), &0.into()));
    let state = ctrl_c_at(12, &ctrl_c);
    assert_eq!((&state["step"], &state["epoch"], &state["batch"]), (&11.into(), &1.into(), &3.into()));
    train(&cpu, &tiny_train(2), &between, true).unwrap();
    train(&cpu, &tiny_train(2), &ctrl_c, true).unwrap();
    // Every figure but the wall-clock ones (seconds, images/s) must be identical.
    let keys = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc"];
    for resumed in [&between, &ctrl_c] {
        let (worst, [a, b]) = compare_checkpoints(&whole, resumed, &keys);
        assert_eq!(worst, 0.0, "{}: resumed weights differ", resumed.display());
        assert_eq!(a, b, "{}: per-epoch metrics differ", resumed.display());
    }
}

/// `recalibrate_bn` leaves the weights alone and sets every running statistic to the equal-weight
/// average of its batches' statistics (each batch's taken alone, with momentum 1).
#[test]
fn bn_recalibration_averages_the_batch_statistics() {
    use crate::engine::{Backend, Buffers, ParamStore, Tape};
    use crate::train::{load_dataset, recal_indices, recal_len, recalibrate_bn};
    let cpu = Cpu::new(Some(2)).unwrap();
    let ds = load_dataset("fashion-mnist", None, crate::data::Split::Train).unwrap().subset(200);
    let norm = crate::data::Normalization::of(&ds);
    let genotype = crate::nn::Genotype::resolve("bnas-imagenet").unwrap();
    let cfg = crate::train::net_config(&ds, 3, 4, crate::nn::Template::Bnas).unwrap();
    let (mut params, mut bufs) = (ParamStore::default(), Buffers::default());
    let net = crate::nn::Network::new(&cpu, &genotype, &cfg, &mut params, &mut bufs, &mut crate::rng::Rng::new(1));
    let pool: Vec<usize> = (0..200).collect();
    let (order, batch) = recal_indices(&pool, 48, 7);
    assert_eq!((order.len(), batch), (192, 48), "whole batches only");
    assert_eq!(recal_len(pool.len(), 48), 192);
    let mut sorted = order.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 192, "distinct images of the pool");
    assert_eq!(recal_indices(&pool[..30], 48, 7).0.len(), 30, "a pool smaller than a batch is one batch");

    // Expected: each batch alone, with momentum 1, gives its statistics; average them.
    let download = |bufs: &Buffers<Cpu>| bufs.list.iter().map(|x| cpu.download(&x.value)).collect::<Vec<_>>();
    let mut sum: Vec<Vec<f64>> = bufs.list.iter().map(|x| vec![0.0; cpu.len(&x.value)]).collect();
    params.refresh_binary(&cpu, false);
    for chunk in order.chunks(batch) {
        for b in crate::data::eval_batches(&ds, &norm, chunk.to_vec(), batch) {
            let mut t = Tape::new(&cpu, &params, false, true);
            t.bn_momentum = 1.0;
            let x = t.constant(cpu.upload(&b.x), vec![b.len(), 1, 28, 28]);
            net.forward(&mut t, &mut bufs, None, x, None).unwrap();
        }
        for (s, v) in sum.iter_mut().zip(download(&bufs)) {
            s.iter_mut().zip(v).for_each(|(s, v)| *s += v as f64);
        }
    }
    let weights = params.params.iter().map(|p| cpu.download(&p.value)).collect::<Vec<_>>();
    let mut reported = 0;
    recalibrate_bn(
        &cpu,
        &mut params,
        &mut bufs,
        &ds,
        &norm,
        &pool,
        48,
        7,
        |t, bufs, x| net.forward(t, bufs, None, x, None),
        |n| reported += n,
    )
    .unwrap();
    assert_eq!(reported, recal_len(pool.len(), 48), "the progress bar's length is the images it goes through");
    let mut worst = 0f64;
    for (s, v) in sum.iter().zip(download(&bufs)) {
        for (s, v) in s.iter().zip(v) {
            let want = s / 4.0;
            worst = worst.max((v as f64 - want).abs() / want.abs().max(1e-3));
        }
    }
    println!("{} statistics; largest relative difference from the batch average {worst:e}", sum.len());
    assert!(worst < 1e-5, "{worst}");
    assert!(params.params.iter().zip(&weights).all(|(p, w)| cpu.download(&p.value) == *w), "weights changed");
}

#[test]
fn the_diversity_regularizer_keeps_edge_entropy_higher() {
    let cpu = Cpu::new(Some(2)).unwrap();
    let run = |lambda: f32, name: &str| {
        let cfg = SearchConfig {
            layers: 3,
            channels: 4,
            batch_size: 16,
            epochs: 1,
            lambda,
            alpha_lr: 3e-2,
            train_subset: Some(320),
            val_subset: Some(32),
            seed: 5,
            ..Default::default()
        };
        let (_dir, out) = tmp(name);
        search(&cpu, &cfg, &out, false).unwrap();
        let state = checkpoint::load(&out.join(checkpoint::FILE)).unwrap().state;
        state["history"][0]["entropy"].as_f64().unwrap()
    };
    let with = run(1.0, "lambda1");
    let without = run(0.0, "lambda0");
    println!(
        "mean edge entropy after epoch 1: lambda 1 -> {with:.6}, lambda 0 -> {without:.6} (max ln 7 = {:.6})",
        7f64.ln()
    );
    assert!(with > without, "entropy with the regularizer ({with}) is not above without ({without})");
}

/// A search stopped by Ctrl-C in the middle of an epoch and resumed reaches the same weights,
/// alphas, figures and genotype as one run straight through.
#[test]
fn a_search_stopped_by_ctrl_c_resumes_to_the_same_result() {
    let cpu = Cpu::new(Some(2)).unwrap();
    let cfg = SearchConfig {
        layers: 3,
        channels: 4,
        batch_size: 16,
        epochs: 2,
        train_subset: Some(320),
        val_subset: Some(32),
        seed: 2,
        ..Default::default()
    };
    let ((_w, whole), (_c, ctrl_c)) = (tmp("search-whole"), tmp("search-ctrl-c"));
    let a = search(&cpu, &cfg, &whole, false).unwrap();
    // Ctrl-C at the 14th check: after step 13, the second epoch's third of 10 (160 images a
    // half, 16 a batch; check 11 comes between the epochs).
    assert!(search_session(&cpu, &cfg, &ctrl_c, false, &ctrl_c_at_check(14)).unwrap().is_none());
    let state = checkpoint::load(&ctrl_c.join(checkpoint::FILE)).unwrap().state;
    assert_eq!((&state["step"], &state["epoch"], &state["batch"]), (&13.into(), &1.into(), &3.into()));
    let b = search(&cpu, &cfg, &ctrl_c, true).unwrap();
    assert_eq!((a.genotype, a.best_epoch, a.best_val_acc), (b.genotype, b.best_epoch, b.best_val_acc));
    let keys = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "entropy", "genotype"];
    let (worst, [x, y]) = compare_checkpoints(&whole, &ctrl_c, &keys);
    assert_eq!(worst, 0.0, "resumed search differs (weights, alphas or optimizer states)");
    assert_eq!(x, y, "per-epoch figures differ");
    let alphas = |dir: &PathBuf| std::fs::read_to_string(dir.join("alphas.csv")).unwrap();
    assert_eq!(alphas(&whole), alphas(&ctrl_c));
}

/// `bnas demo --resume` after a Ctrl-C in the search, and again after one in the training, ends
/// with the same genotype, weights and test accuracy as a demo run straight through: the stopped
/// stage resumes from its checkpoint, and the finished search is kept, not run again.
#[test]
fn a_demo_stopped_by_ctrl_c_resumes_where_it_stopped() {
    use crate::demo::search_and_train;
    let cpu = Cpu::new(Some(2)).unwrap();
    let settings = crate::cli::DemoSettings {
        search_epochs: 1,
        search_images: 128,
        search_layers: 3,
        search_channels: 4,
        train_epochs: 1,
        layers: 3,
        channels: 4,
        train_images: 256,
        qemu_images: 1,
        seed: 5,
    };
    let ((_w, whole), (_c, ctrl_c)) = (tmp("demo-whole"), tmp("demo-ctrl-c"));
    let a = search_and_train(&cpu, &settings, &whole, false, &|| false).unwrap().unwrap();
    // The search has 2 steps (64 images a half, 32 a batch), the training 4 (256 images, 64 a
    // batch): Ctrl-C after the search's first step, then after the training's second.
    assert!(search_and_train(&cpu, &settings, &ctrl_c, false, &ctrl_c_at_check(1)).unwrap().is_none());
    let state = |stage: &str| checkpoint::load(&ctrl_c.join(stage).join(checkpoint::FILE)).unwrap().state;
    assert_eq!((&state("search")["step"], &state("search")["batch"]), (&1.into(), &1.into()));
    assert!(!ctrl_c.join("train").exists());
    assert!(search_and_train(&cpu, &settings, &ctrl_c, true, &ctrl_c_at_check(3)).unwrap().is_none());
    assert_eq!((&state("search")["epoch"], &state("train")["step"]), (&1.into(), &2.into()));
    let searched = std::fs::metadata(ctrl_c.join("search/checkpoint.safetensors")).unwrap().modified().unwrap();
    let b = search_and_train(&cpu, &settings, &ctrl_c, true, &|| false).unwrap().unwrap();
    let kept = std::fs::metadata(ctrl_c.join("search/checkpoint.safetensors")).unwrap().modified().unwrap();
    assert_eq!(searched, kept, "the finished search is kept, not run again");
    assert_eq!((&a.search.genotype, a.search.best_epoch), (&b.search.genotype, b.search.best_epoch));
    assert_eq!(a.train.test_accuracy, b.train.test_accuracy);
    for stage in ["search", "train"] {
        let (worst, [x, y]) = compare_checkpoints(&whole.join(stage), &ctrl_c.join(stage), &["epoch", "train_loss"]);
        assert_eq!(worst, 0.0, "{stage}: resumed weights differ");
        assert_eq!(x, y, "{stage}: per-epoch figures differ");
    }
    let saved: crate::cli::DemoSettings = crate::train::read_json(&ctrl_c.join(crate::demo::SETTINGS)).unwrap();
    assert_eq!(saved, settings);
}

#[test]
fn bad_hyperparameters_and_resumes_are_refused_before_the_run_folder_exists() {
    let cpu = Cpu::new(Some(1)).unwrap();
    let (_dir, out) = tmp("refused");
    let err = train(&cpu, &TrainConfig { lr: -1.0, ..tiny_train(1) }, &out, false).unwrap_err().to_string();
    assert_eq!(err, "--lr -1: must be a positive number");
    let err = train(&cpu, &TrainConfig { drop_path: 1.0, ..tiny_train(1) }, &out, false).unwrap_err().to_string();
    assert_eq!(err, "--drop-path 1: must be in [0, 1)");
    let err = search(&cpu, &SearchConfig { tau: f32::NAN, ..Default::default() }, &out, false).unwrap_err().to_string();
    assert_eq!(err, "--tau NaN: must be a positive number of epochs");
    let err = train(&cpu, &tiny_train(1), &out, true).unwrap_err().to_string();
    assert!(err.contains("no run to resume"), "{err}");
    let err = search(&cpu, &SearchConfig::default(), &out, true).unwrap_err().to_string();
    assert!(err.contains("no search to resume"), "{err}");
    // Too few images for one batch: found once the data has loaded, still before the folder.
    let err = train(&cpu, &TrainConfig { train_subset: Some(20), ..tiny_train(1) }, &out, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "fashion-mnist: 20 training images are fewer than one batch of 32; use a smaller --batch-size"
    );
    let few = SearchConfig { train_subset: Some(40), batch_size: 32, ..Default::default() };
    let err = search(&cpu, &few, &out, false).unwrap_err().to_string();
    assert!(
        err.ends_with("40 search images are too few for a batch of 32 in each half; use a smaller --batch-size"),
        "{err}"
    );
    assert!(!out.exists(), "{} was created", out.display());
}

/// A second process's run in a folder whose run is still going is refused (here the lock is
/// held as that run holds it), and writes nothing there.
#[test]
fn a_run_in_a_folder_another_run_holds_is_refused() {
    let cpu = Cpu::new(Some(1)).unwrap();
    let (_dir, out) = tmp("locked");
    std::fs::create_dir_all(&out).unwrap();
    let held = checkpoint::lock_folder(&out, "training run").unwrap();
    let want = format!(
        "{}: another bnas process (process {}) is running a training run in this folder; wait for it to end or choose another --out",
        out.display(),
        std::process::id()
    );
    assert_eq!(train(&cpu, &tiny_train(1), &out, false).unwrap_err().to_string(), want);
    let names: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [checkpoint::LOCK_FILE], "nothing written beside the lock");
    drop(held);
}
