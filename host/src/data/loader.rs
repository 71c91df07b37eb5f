//! Batches for training, prepared on a background thread, and a plain sequential iterator for
//! evaluation.
//!
//! Determinism: an epoch's order is `Rng::derive(seed, epoch)` shuffling the index list, and
//! batch `k`'s augmentation draws from its own stream, so a loader started at `(epoch, k)`
//! yields exactly the batches a full epoch would have yielded from `k` on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::augment::normalize_with;
use super::{Augment, Dataset, Normalization};
use crate::rng::Rng;

/// One batch: `x` is `[B, C, H, W]` normalized, `y[b]` the label of `x[b]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub x: Vec<f32>,
    pub y: Vec<u32>,
    /// Dataset index of each image.
    pub indices: Vec<usize>,
    /// Epoch and position of the batch within it (0-based).
    pub epoch: u64,
    pub batch: usize,
    /// Image shape `[C, H, W]`.
    pub chw: [usize; 3],
}

impl Batch {
    /// Images in the batch (B).
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// How a [`BatchLoader`] cuts an epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderOptions {
    /// Images per batch.
    pub batch_size: usize,
    /// Random crop + flip; `None` for none.
    pub augment: Option<Augment>,
    /// Drop the last, short batch of the epoch.
    pub drop_last: bool,
    /// Shuffle the indices each epoch (with `Rng::derive(seed, epoch)`).
    pub shuffle: bool,
    /// Start at this batch of the epoch (resume).
    pub start_batch: usize,
    /// Batches prepared ahead of the trainer (bounded channel size, at least 1).
    pub prefetch: usize,
    /// Run seed.
    pub seed: u64,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions {
            batch_size: 64,
            augment: None,
            drop_last: true,
            shuffle: true,
            start_batch: 0,
            prefetch: 3,
            seed: 0,
        }
    }
}

/// Salt that separates the augmentation streams from the shuffling streams of the same seed.
const AUGMENT_STREAM_SALT: u64 = 0xA06_3E47;

/// Number of batches an epoch of `n` images gives.
pub fn batches_per_epoch(n: usize, batch_size: usize, drop_last: bool) -> usize {
    if drop_last {
        n / batch_size
    } else {
        n.div_ceil(batch_size)
    }
}

/// The batches of one epoch, prepared in the background. Iterating yields them in order;
/// dropping the loader stops its thread.
pub struct BatchLoader {
    rx: Option<Receiver<Batch>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    remaining: usize,
}

impl BatchLoader {
    /// Starts producing epoch `epoch` over `indices` (into `dataset`) from batch
    /// `opts.start_batch` on.
    pub fn new(
        dataset: Arc<Dataset>,
        norm: &Normalization,
        indices: &[usize],
        epoch: u64,
        opts: &LoaderOptions,
    ) -> BatchLoader {
        assert!(opts.batch_size > 0, "BatchLoader: batch_size must be positive");
        assert_eq!(norm.mean.len(), dataset.c, "BatchLoader: normalization has the wrong number of channels");
        let mut order = indices.to_vec();
        if opts.shuffle {
            Rng::derive(opts.seed, epoch).shuffle(&mut order);
        }
        let total = batches_per_epoch(order.len(), opts.batch_size, opts.drop_last);
        let remaining = total.saturating_sub(opts.start_batch);
        let (tx, rx) = sync_channel(opts.prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let job = Job { dataset, table: norm.table(), order, epoch, opts: opts.clone() };
        let stop_thread = stop.clone();
        let handle = std::thread::Builder::new()
            .name("bnas-batches".into())
            .spawn(move || {
                for k in job.opts.start_batch..total {
                    if stop_thread.load(Ordering::Relaxed) || tx.send(job.batch(k)).is_err() {
                        return;
                    }
                }
            })
            .expect("cannot spawn the batch loader thread");
        BatchLoader { rx: Some(rx), stop, handle: Some(handle), remaining }
    }
}

impl Iterator for BatchLoader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let batch = self.rx.as_ref()?.recv().ok();
        if batch.is_some() {
            self.remaining -= 1;
        }
        batch
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for BatchLoader {}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver wakes a producer blocked on a full channel.
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What the background thread needs to build any batch of its epoch.
struct Job {
    dataset: Arc<Dataset>,
    table: Vec<[f32; 256]>,
    order: Vec<usize>,
    epoch: u64,
    opts: LoaderOptions,
}

impl Job {
    fn batch(&self, k: usize) -> Batch {
        let bs = self.opts.batch_size;
        let indices = self.order[k * bs..((k + 1) * bs).min(self.order.len())].to_vec();
        let ds = &*self.dataset;
        let mut rng = Rng::derive(self.opts.seed ^ AUGMENT_STREAM_SALT, (self.epoch << 32) | k as u64);
        make_batch(ds, &self.table, indices, self.opts.augment.as_ref().map(|a| (a, &mut rng)), self.epoch, k)
    }
}

fn make_batch(
    ds: &Dataset,
    table: &[[f32; 256]],
    indices: Vec<usize>,
    mut augment: Option<(&Augment, &mut Rng)>,
    epoch: u64,
    batch: usize,
) -> Batch {
    let n = ds.image_len();
    let mut x = vec![0f32; indices.len() * n];
    let mut scratch = vec![0u8; n];
    for (out, &i) in x.chunks_exact_mut(n).zip(&indices) {
        let image = match augment.as_mut() {
            Some((aug, rng)) => {
                aug.apply(ds.image(i), ds.c, ds.h, ds.w, rng, &mut scratch);
                &scratch[..]
            }
            None => ds.image(i),
        };
        normalize_with(table, image, out);
    }
    let y = indices.iter().map(|&i| ds.labels[i] as u32).collect();
    Batch { x, y, indices, epoch, batch, chw: [ds.c, ds.h, ds.w] }
}

/// Sequential, unaugmented batches over `indices` in order, built on the caller's thread.
pub struct EvalBatches<'a> {
    dataset: &'a Dataset,
    table: Vec<[f32; 256]>,
    indices: Vec<usize>,
    batch_size: usize,
    next: usize,
}

/// Evaluation batches of `batch_size` over `indices` (the last one may be short).
pub fn eval_batches<'a>(
    dataset: &'a Dataset,
    norm: &Normalization,
    indices: Vec<usize>,
    batch_size: usize,
) -> EvalBatches<'a> {
    assert!(batch_size > 0, "eval_batches: batch_size must be positive");
    EvalBatches { dataset, table: norm.table(), indices, batch_size, next: 0 }
}

impl Iterator for EvalBatches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let start = self.next * self.batch_size;
        if start >= self.indices.len() {
            return None;
        }
        let end = (start + self.batch_size).min(self.indices.len());
        let batch = make_batch(self.dataset, &self.table, self.indices[start..end].to_vec(), None, 0, self.next);
        self.next += 1;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.indices.len().div_ceil(self.batch_size) - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for EvalBatches<'_> {}
