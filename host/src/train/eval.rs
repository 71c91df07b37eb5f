//! Evaluation mode: accuracy over a set of images, and the batch-norm statistics it runs on,
//! re-estimated for the current weights.

use anyhow::Result;
use std::time::Instant;

use crate::data::{self, Dataset, Normalization};
use crate::engine::{Backend, Buffers, ParamStore, ShapeError, Tape, Var};
use crate::nn::Network;
use crate::rng::Rng;

/// Accuracy and loss over a set of images, with a confusion matrix.
#[derive(Debug, Clone)]
pub struct EvalResult {
    pub accuracy: f64,
    pub loss: f64,
    pub confusion: Vec<Vec<u64>>,
    pub images_per_s: f64,
}

/// Evaluates `net` (evaluation mode: running statistics, BN + sign thresholds) on `indices`,
/// calling `done(n)` after each batch of `n` images (a progress bar).
#[allow(clippy::too_many_arguments)]
pub fn evaluate<B: Backend>(
    b: &B,
    net: &Network,
    params: &mut ParamStore<B>,
    bufs: &mut Buffers<B>,
    ds: &Dataset,
    norm: &Normalization,
    indices: Vec<usize>,
    batch_size: usize,
    mut done: impl FnMut(usize),
) -> Result<EvalResult> {
    params.refresh_binary(b, false);
    let cache = net.eval_cache(b, params, bufs);
    let classes = ds.classes;
    let mut confusion = vec![vec![0u64; classes]; classes];
    let (mut loss_sum, mut n) = (0f64, 0usize);
    let start = Instant::now();
    for batch in data::eval_batches(ds, norm, indices, batch_size) {
        let mut t = Tape::new(b, params, false, false);
        let [c, h, w] = batch.chw;
        let x = t.constant(b.upload(&batch.x), vec![batch.len(), c, h, w]);
        let logits = net.forward(&mut t, bufs, Some(&cache), x, None)?;
        let labels: Vec<f32> = batch.y.iter().map(|&y| y as f32).collect();
        let loss = t.softmax_xent(logits, &b.upload(&labels), 0.0)?;
        loss_sum += t.to_vec(loss)[0] as f64 * batch.len() as f64;
        for (row, &y) in t.to_vec(logits).chunks(classes).zip(&batch.y) {
            confusion[y as usize][argmax(row)] += 1;
        }
        n += batch.len();
        done(batch.len());
    }
    let correct: u64 = (0..classes).map(|i| confusion[i][i]).sum();
    Ok(EvalResult {
        accuracy: correct as f64 / n.max(1) as f64,
        loss: loss_sum / n.max(1) as f64,
        confusion,
        images_per_s: n as f64 / start.elapsed().as_secs_f64(),
    })
}

/// Training images whose batch statistics `recalibrate_bn` averages.
pub const BN_RECAL_IMAGES: usize = 10_000;

/// Re-estimates every batch norm's running statistics for the current weights: `forward` in
/// training mode (batch statistics; no gradients, augmentation or drop-path) over up to
/// [`BN_RECAL_IMAGES`] images of `pool` in a fixed shuffle, in batches of `batch_size`, each
/// batch's statistics weighted equally (momentum `1 / (k + 1)`), calling `done(n)` after each
/// batch of `n` images. The weights do not change.
/// Training's running statistics are a moving average over its last ~20 batches, taken while
/// the weights still moved; a binary network's evaluation is very sensitive to them
/// (`docs/method-notes.md`), and this average is what evaluation mode stands for.
#[allow(clippy::too_many_arguments)]
pub fn recalibrate_bn<B: Backend>(
    b: &B,
    params: &mut ParamStore<B>,
    bufs: &mut Buffers<B>,
    ds: &Dataset,
    norm: &Normalization,
    pool: &[usize],
    batch_size: usize,
    seed: u64,
    mut forward: impl FnMut(&mut Tape<'_, B>, &mut Buffers<B>, Var) -> Result<Var, ShapeError>,
    mut done: impl FnMut(usize),
) -> Result<()> {
    let (indices, batch_size) = recal_indices(pool, batch_size, seed);
    params.refresh_binary(b, false);
    for (k, batch) in data::eval_batches(ds, norm, indices, batch_size).enumerate() {
        let mut t = Tape::new(b, params, false, true);
        t.bn_momentum = 1.0 / (k + 1) as f32;
        let [c, h, w] = batch.chw;
        let x = t.constant(b.upload(&batch.x), vec![batch.len(), c, h, w]);
        forward(&mut t, bufs, x)?;
        done(batch.len());
    }
    Ok(())
}

const BN_RECAL_STREAM: u64 = 0xB4EC;

/// The images `recalibrate_bn` averages over, in order, and its batch size: whole batches only,
/// as in training, and at least one (all of `pool` if it is smaller than a batch).
pub(crate) fn recal_indices(pool: &[usize], batch_size: usize, seed: u64) -> (Vec<usize>, usize) {
    let mut indices = pool.to_vec();
    Rng::derive(seed, BN_RECAL_STREAM).shuffle(&mut indices);
    indices.truncate(recal_len(pool.len(), batch_size));
    (indices, batch_size.clamp(1, pool.len().max(1)))
}

/// How many of a pool of `pool_len` images `recalibrate_bn` goes through.
pub fn recal_len(pool_len: usize, batch_size: usize) -> usize {
    let batch_size = batch_size.clamp(1, pool_len.max(1));
    (BN_RECAL_IMAGES.min(pool_len) / batch_size).max(1) * batch_size
}

pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}
