//! Runs an exported ONNX model in tract (the second runtime of the verification triangle), and a
//! benchmark of tract against the device crate's kernels on the host.

use anyhow::{ensure, Context, Result};
use std::sync::Arc;
use std::time::Instant;
use tract_onnx::prelude::*;

use super::onnx::Arithmetic;

/// An ONNX model loaded, typed for a fixed batch, optimized and planned by tract.
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
    batch: usize,
    chw: (usize, usize, usize),
    classes: usize,
}

impl TractModel {
    /// Loads ONNX `bytes` with input `[batch, c, h, w]` f32 (the exporter's pixels / 255).
    pub fn load(bytes: &[u8], batch: usize, (c, h, w): (usize, usize, usize)) -> Result<TractModel> {
        ensure!(batch > 0, "the tract batch size must be at least 1");
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .context("tract could not read the ONNX model")?
            .with_input_fact(0, f32::fact([batch, c, h, w]).into())?
            .into_optimized()
            .context("tract could not type and optimize the ONNX model")?
            .into_runnable()?;
        let out = plan.model().output_fact(0)?;
        let shape = out.shape.as_concrete().context("tract left the output shape symbolic")?.to_vec();
        ensure!(
            shape.len() == 2 && shape[0] == batch,
            "the ONNX output has shape {shape:?}, expected [{batch}, classes]"
        );
        Ok(TractModel { plan, batch, chw: (c, h, w), classes: shape[1] })
    }

    /// The fixed batch size the plan was built for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Number of logits per image.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// [`TractModel::run`] with the batches spread over the rayon pool (all cores), logits in order;
    /// `done(k)` after each batch of `k` images.
    pub fn run_parallel(&self, images_u8: &[u8], n: usize, done: &(dyn Fn(usize) + Sync)) -> Result<Vec<f32>> {
        use rayon::prelude::*;
        let (c, h, w) = self.chw;
        let per = c * h * w;
        ensure!(images_u8.len() == n * per, "{} bytes of pixels for {n} images of {c}x{h}x{w}", images_u8.len());
        let parts: Vec<Result<Vec<f32>>> = images_u8
            .par_chunks(self.batch * per)
            .map(|chunk| self.run(chunk, chunk.len() / per).inspect(|_| done(chunk.len() / per)))
            .collect();
        Ok(parts.into_iter().collect::<Result<Vec<_>>>()?.concat())
    }

    /// Logits `[n, classes]` of `n` CHW u8 images (`n * c * h * w` bytes), run in chunks of the
    /// fixed batch size (the last chunk padded with zero images), on this thread.
    pub fn run(&self, images_u8: &[u8], n: usize) -> Result<Vec<f32>> {
        let (c, h, w) = self.chw;
        let per = c * h * w;
        ensure!(
            images_u8.len() == n * per,
            "{} bytes of pixels for {n} images of {c}x{h}x{w} (expected {})",
            images_u8.len(),
            n * per
        );
        let mut logits = Vec::with_capacity(n * self.classes);
        let mut buf = vec![0f32; self.batch * per];
        for chunk in images_u8.chunks(self.batch * per) {
            let imgs = chunk.len() / per;
            for (d, &p) in buf.iter_mut().zip(chunk) {
                *d = f32::from(p) / 255.0;
            }
            buf[chunk.len()..].fill(0.0);
            let input = Tensor::from_shape(&[self.batch, c, h, w], &buf)?;
            let out = self.plan.run(tvec!(input.into_tvalue()))?;
            let view = out[0].to_plain_array_view::<f32>()?;
            logits.extend(view.iter().take(imgs * self.classes));
        }
        Ok(logits)
    }
}

/// Prints images/s of tract (batch 1 and batch 16, on the shipped device-order ONNX and on the
/// native one with plain `Conv`s, which tract runs faster) and of the device crate's kernels
/// (`Model::infer`, one image at a time) over the same `n` u8 images, and the ratios
/// device / tract. The target is a ratio of at least 5.
pub fn bench_tract_vs_device(model_bytes: &[u8], images: &[u8], n: usize) -> Result<()> {
    let words = bnas_device::sample::aligned(model_bytes);
    let model = bnas_device::Model::parse(&bytemuck::cast_slice::<u32, u8>(&words)[..model_bytes.len()])
        .context("the packed model does not parse")?;
    let (c, h, w) = model.input_shape();
    let per = c * h * w;
    ensure!(n > 0 && images.len() == n * per, "{} bytes of pixels for {n} images of {c}x{h}x{w}", images.len());

    let mut arena = vec![0u32; model.arena_words()];
    let mut logits = vec![0f32; model.classes()];
    let t = Instant::now();
    for img in images.chunks_exact(per) {
        model.infer(img, &mut arena, &mut logits)?;
    }
    let device = n as f64 / t.elapsed().as_secs_f64();
    println!("device crate: {device:.0} images/s ({n} images, arena {} bytes)", model.arena_bytes());

    for (graph, arithmetic) in [("device-order", Arithmetic::DeviceOrder), ("native", Arithmetic::Native)] {
        let onnx = super::onnx::to_onnx_with(&model, arithmetic)?;
        for batch in [1, 16] {
            let tract = TractModel::load(&onnx, batch, (c, h, w))?;
            tract.run(&images[..per * n.min(batch)], n.min(batch))?; // warm-up
            let t = Instant::now();
            tract.run(images, n)?;
            let ips = n as f64 / t.elapsed().as_secs_f64();
            println!("tract ({graph} ONNX) batch {batch}: {ips:.0} images/s; device / tract = {:.2}x", device / ips);
        }
    }
    Ok(())
}
