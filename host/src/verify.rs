//! `bnas verify`: the verification triangle. The test set runs through the engine (float
//! simulation, evaluation mode), tract on the ONNX export, the device crate on the packed
//! export (host build), the packed XNOR kernels on the GPU when there is an adapter, and
//! optionally the Cortex-M4 firmware under QEMU. Every runtime is compared with tract.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use crate::data::{Dataset, Normalization, Split};
use crate::engine::{Backend, Buffers, ParamStore, Tape};
use crate::export::bundle::{aligned, parse, ModelCard, ModelFiles};
use crate::export::tract_run::TractModel;
use crate::nn::{Genotype, NetConfig, Network};
use crate::report::Counter;
use crate::rng::Rng;
use crate::train::{argmax, load_dataset, read_json};

/// One runtime's results over the same images.
pub struct RuntimeResult {
    pub name: String,
    /// `[n, classes]`.
    pub logits: Vec<f32>,
    pub seconds: f64,
    /// Images it ran (QEMU runs a prefix).
    pub images: usize,
}

/// Comparison of a runtime with the reference (tract).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub runtime: String,
    pub images: usize,
    pub accuracy: f64,
    /// Fraction of images whose class equals tract's.
    pub agreement: f64,
    /// Largest |logit - tract logit| / max |tract logit| over the images.
    pub max_rel_logit_diff: f64,
    pub images_per_s: f64,
}

pub struct VerifyOptions {
    pub n: Option<usize>,
    pub qemu: Option<usize>,
    pub predictions: Option<PathBuf>,
    pub data: Option<PathBuf>,
    pub gpu: bool,
}

/// Runs the engine in evaluation mode on the model folder's weights.
pub fn engine_logits<B: Backend>(
    b: &B,
    files: &ModelFiles,
    ds: &Dataset,
    indices: &[usize],
    done: &dyn Fn(usize),
) -> Result<Vec<f32>> {
    let dir = files.engine_dir();
    let genotype = Genotype::load(&dir.join("genotype.json"))?;
    let net_cfg: NetConfig = read_json(&dir.join("network.json"))?;
    let norm: Normalization = read_json(&dir.join("normalization.json"))?;
    let (mut params, mut bufs) = (ParamStore::default(), Buffers::default());
    let net = Network::new(b, &genotype, &net_cfg, &mut params, &mut bufs, &mut Rng::new(0));
    let file = dir.join(crate::checkpoint::FILE);
    let mut loaded = crate::checkpoint::load(&file)?;
    crate::checkpoint::restore(b, &mut loaded, &file, &mut params, &mut bufs)?;
    params.refresh_binary(b, false);
    let cache = net.eval_cache(b, &params, &bufs);
    let mut out = Vec::with_capacity(indices.len() * net_cfg.classes);
    for batch in crate::data::eval_batches(ds, &norm, indices.to_vec(), 200) {
        let mut t = Tape::new(b, &params, false, false);
        let [c, h, w] = batch.chw;
        let x = t.constant(b.upload(&batch.x), vec![batch.len(), c, h, w]);
        let logits = net.forward(&mut t, &mut bufs, Some(&cache), x, None)?;
        out.extend(t.to_vec(logits));
        done(batch.len());
    }
    Ok(out)
}

fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let start = Instant::now();
    let v = f()?;
    Ok((v, start.elapsed().as_secs_f64()))
}

/// [`timed`] with a progress bar over `n` images (removed when it returns).
fn with_bar<T>(label: &str, n: usize, f: impl FnOnce(&Counter) -> Result<T>) -> Result<(T, f64)> {
    let bar = Counter::new(label, n, "images");
    timed(|| f(&bar))
}

/// Compares runtimes with the first one (tract).
#[allow(clippy::needless_range_loop)]
pub fn compare(results: &[RuntimeResult], labels: &[u16], classes: usize) -> Vec<Row> {
    let reference = &results[0];
    results
        .iter()
        .map(|r| {
            let mut agree = 0;
            let mut correct = 0;
            let mut worst = 0f64;
            for i in 0..r.images {
                let a = &r.logits[i * classes..(i + 1) * classes];
                let t = &reference.logits[i * classes..(i + 1) * classes];
                let scale = t.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12) as f64;
                let diff = a.iter().zip(t).fold(0f32, |m, (x, y)| m.max((x - y).abs())) as f64;
                worst = worst.max(diff / scale);
                agree += usize::from(argmax(a) == argmax(t));
                correct += usize::from(argmax(a) == labels[i] as usize);
            }
            Row {
                runtime: r.name.clone(),
                images: r.images,
                accuracy: correct as f64 / r.images.max(1) as f64,
                agreement: agree as f64 / r.images.max(1) as f64,
                max_rel_logit_diff: worst,
                images_per_s: r.images as f64 / r.seconds.max(1e-9),
            }
        })
        .collect()
}

pub fn print_table(rows: &[Row]) {
    let w = rows.iter().map(|r| r.runtime.chars().count()).max().unwrap_or(0).max("runtime".len());
    println!(
        "{:<w$} {:>7} {:>9} {:>14} {:>14} {:>10}",
        "runtime", "images", "accuracy", "agree w/ tract", "max rel. diff", "images/s"
    );
    for r in rows {
        println!(
            "{:<w$} {:>7} {:>8.2}% {:>13.2}% {:>14.2e} {:>10.1}",
            r.runtime,
            r.images,
            100.0 * r.accuracy,
            100.0 * r.agreement,
            r.max_rel_logit_diff,
            r.images_per_s
        );
    }
}

/// Runs the triangle on a model folder and prints the table.
pub fn verify<B: Backend>(b: &B, model_dir: &Path, dataset: &str, opts: &VerifyOptions) -> Result<Vec<Row>> {
    if let Some(p) = &opts.predictions {
        // Checked first: a run over the whole test set must not end on a path it cannot write.
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.is_dir() {
            bail!("--predictions {}: the folder {} does not exist", p.display(), dir.display());
        }
    }
    let files = ModelFiles::open(model_dir)?;
    let card: ModelCard = read_json(&files.card())?;
    let ds = load_dataset(dataset, opts.data.as_deref(), Split::Test)?;
    let [c, h, w] = card.network.input;
    if [ds.c, ds.h, ds.w] != [c, h, w] {
        bail!(
            "{}: the model takes {c}x{h}x{w} images, {} has {}x{}x{}",
            model_dir.display(),
            ds.name,
            ds.c,
            ds.h,
            ds.w
        );
    }
    let n = opts.n.map_or(ds.len(), |n| n.min(ds.len()));
    if n == 0 {
        bail!("{}: the {} test split holds no images to verify on", model_dir.display(), ds.name);
    }
    let indices: Vec<usize> = (0..n).collect();
    let images = &ds.images[..n * ds.image_len()];
    let classes = card.network.classes;
    let packed = std::fs::read(files.packed()).with_context(|| format!("cannot read {}", files.packed().display()))?;
    let words = aligned(&packed);
    let model = parse(&words, packed.len(), &files.packed())?;
    let onnx = std::fs::read(files.onnx()).with_context(|| format!("cannot read {}", files.onnx().display()))?;
    if opts.qemu.is_some() {
        // Checked first: a model too big for the firmware must not end a run over the test set.
        crate::device_run::check_fits(&files.packed().display().to_string(), packed.len(), model.arena_bytes())?;
    }
    println!("verify {} on {} test images of {}", model_dir.display(), n, ds.name);

    let mut results = Vec::new();
    let tract = TractModel::load(&onnx, 100, (c, h, w)).with_context(|| files.onnx().display().to_string())?;
    let (logits, s) = with_bar("tract", n, |bar| tract.run_parallel(images, n, &|k| bar.inc(k)))?;
    results.push(RuntimeResult { name: "tract (ONNX)".into(), logits, seconds: s, images: n });

    let (logits, s) =
        with_bar("device crate", n, |bar| device_host_logits(&model, images, n, classes, &|k| bar.inc(k)))?;
    results.push(RuntimeResult { name: "device crate (host, XNOR)".into(), logits, seconds: s, images: n });

    let (logits, s) = with_bar("engine", n, |bar| engine_logits(b, &files, &ds, &indices, &|k| bar.inc(k)))?;
    results.push(RuntimeResult {
        name: format!("engine eval ({})", short(&b.describe())),
        logits,
        seconds: s,
        images: n,
    });

    if opts.gpu {
        match crate::engine::gpu::Gpu::new(None) {
            Ok(gpu) => {
                let runner = crate::engine::gpu::PackedGpuModel::new(&gpu, &model)?;
                let per = images.len() / n;
                let (logits, s) = with_bar("packed WGSL", n, |bar| {
                    let mut logits = Vec::with_capacity(n * classes);
                    // In pieces of 500 images, for the bar.
                    for piece in images.chunks(500 * per) {
                        logits.extend(runner.run(piece, piece.len() / per));
                        bar.inc(piece.len() / per);
                    }
                    Ok(logits)
                })?;
                results.push(RuntimeResult {
                    name: format!("packed XNOR WGSL ({})", short(&gpu.describe())),
                    logits,
                    seconds: s,
                    images: n,
                });
            }
            Err(e) => println!("(no packed GPU run: {e})"),
        }
    }

    if let Some(q) = opts.qemu {
        let q = q.min(n);
        let imgs: Vec<Vec<u8>> = (0..q).map(|i| ds.image(i).to_vec()).collect();
        let (summary, s) = timed(|| {
            Ok(crate::device_run::run_images(&files.packed(), &imgs, &crate::device_run::DeviceRunOptions::default())?)
        })?;
        let logits = summary.per_image.iter().flat_map(|r| r.logits.iter().copied()).collect();
        results.push(RuntimeResult { name: "firmware (Cortex-M4F in QEMU)".into(), logits, seconds: s, images: q });
        println!(
            "firmware: {}/{} images bit-identical to the host build; {:.0} instructions per inference (min {}, max {}); {:.2} binary MACs per instruction in binary convs",
            summary.bit_identical, summary.images, summary.instructions_mean, summary.instructions_min, summary.instructions_max, summary.bin_macs_per_instruction
        );
        println!(
            "firmware memory: flash {} bytes (model {}), static RAM {} bytes (arena {}, liveness bound {}), peak stack {} bytes",
            summary.flash_bytes, summary.model_bytes, summary.static_ram_bytes, summary.arena_bytes, summary.liveness_lower_bound_bytes, summary.peak_stack_bytes
        );
        if !summary.per_node.is_empty() {
            println!("where the firmware's instructions go (first image; `bnas device run --layers` for every node):");
            print!("{}", summary.profile_table(false, 8));
        }
    }

    let rows = compare(&results, &ds.labels, classes);
    print_table(&rows);
    if let Some(path) = &opts.predictions {
        write_predictions(path, &results, &ds.labels, classes)?;
        println!("predictions written to {}", path.display());
    }
    Ok(rows)
}

/// A backend's description up to its first comma, with the parentheses it opened closed:
/// `cpu (2 threads, AVX-512 ...)` -> `cpu (2 threads)`, `gpu: llvmpipe (LLVM 15.0.6, 256 bits)
/// (Vulkan)` -> `gpu: llvmpipe (LLVM 15.0.6)`.
fn short(s: &str) -> String {
    let Some((head, _)) = s.split_once(", ") else { return s.to_string() };
    let open = head.matches('(').count().saturating_sub(head.matches(')').count());
    format!("{head}{}", ")".repeat(open))
}

/// Logits of the device crate's kernels on the host, one image per task, calling `done(1)` after
/// each image.
pub fn device_host_logits(
    model: &bnas_device::Model<'_>,
    images: &[u8],
    n: usize,
    classes: usize,
    done: &(dyn Fn(usize) + Sync),
) -> Result<Vec<f32>> {
    let per = images.len() / n.max(1);
    if per == 0 {
        bail!("{} bytes of image data are too few for {n} images", images.len());
    }
    let arena_words = model.arena_bytes().div_ceil(4);
    let out: Vec<Result<Vec<f32>>> = images
        .par_chunks(per)
        .map_init(
            || vec![0u32; arena_words],
            |arena, img| {
                let mut logits = vec![0f32; classes];
                model
                    .infer(bnas_device::Input::U8(img), arena, &mut logits)
                    .map_err(|e| anyhow::anyhow!("device inference: {e}"))?;
                done(1);
                Ok(logits)
            },
        )
        .collect();
    Ok(out.into_iter().collect::<Result<Vec<_>>>()?.concat())
}

#[allow(clippy::needless_range_loop)]
fn write_predictions(path: &Path, results: &[RuntimeResult], labels: &[u16], classes: usize) -> Result<()> {
    let mut text = String::from("index,label");
    for r in results {
        let key = r.name.split(' ').next().unwrap_or("runtime");
        text.push_str(&format!(",{key}_class,{key}_top_logit"));
    }
    text.push('\n');
    let n = results[0].images;
    for i in 0..n {
        text.push_str(&format!("{i},{}", labels[i]));
        for r in results {
            if i < r.images {
                let row = &r.logits[i * classes..(i + 1) * classes];
                let k = argmax(row);
                text.push_str(&format!(",{k},{}", row[k]));
            } else {
                text.push_str(",,");
            }
        }
        text.push('\n');
    }
    crate::checkpoint::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_names_keep_the_backend_up_to_its_first_comma() {
        let cpu = "cpu (2 threads, AVX-512 VPOPCNTW flat XNOR where it pays (stride 1), else AVX-512 VPOPCNTQ)";
        assert_eq!(short(cpu), "cpu (2 threads)");
        assert_eq!(short("gpu: llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)"), "gpu: llvmpipe (LLVM 15.0.6)");
        assert_eq!(short("gpu: NVIDIA H200 (Vulkan)"), "gpu: NVIDIA H200 (Vulkan)");
    }

    /// A model folder whose ONNX file tract cannot read is named in the error.
    #[test]
    fn an_unreadable_onnx_file_is_named() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fmnist-demo");
        let tmp = crate::test_dirs::TempDir::new("verify-onnx");
        let dir = &tmp.0;
        for name in ["card.json", "fmnist-demo.bnas"] {
            std::fs::copy(src.join(name), dir.join(name)).unwrap();
        }
        let onnx = std::fs::read(src.join("fmnist-demo.onnx")).unwrap();
        std::fs::write(dir.join("fmnist-demo.onnx"), &onnx[..100]).unwrap();
        let cpu = crate::engine::cpu::Cpu::new(Some(1)).unwrap();
        let opts = VerifyOptions { n: Some(2), qemu: None, predictions: None, data: None, gpu: false };
        let err = format!("{:#}", verify(&cpu, dir, "fashion-mnist", &opts).unwrap_err());
        println!("{err}");
        assert!(err.contains("fmnist-demo.onnx: tract could not read the ONNX model"), "{err}");
    }

    /// The shipped model: tract, the device crate and the packed WGSL kernel give equal logits on
    /// a subset of the Fashion-MNIST test set (all 10,000 images: `bnas verify --model
    /// models/fmnist-demo`).
    #[test]
    fn shipped_model_agrees_across_runtimes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fmnist-demo");
        let files = ModelFiles::new(&dir).unwrap();
        let card: ModelCard = read_json(&files.card()).unwrap();
        let ds = load_dataset("fashion-mnist", None, Split::Test).unwrap();
        let n = 300;
        let images = &ds.images[..n * ds.image_len()];
        let classes = card.network.classes;
        let packed = std::fs::read(files.packed()).unwrap();
        let words = aligned(&packed);
        let model = parse(&words, packed.len(), &files.packed()).unwrap();
        let [c, h, w] = card.network.input;
        let tract = TractModel::load(&std::fs::read(files.onnx()).unwrap(), 50, (c, h, w)).unwrap();
        let mut results = vec![
            RuntimeResult { name: "tract".into(), logits: tract.run(images, n).unwrap(), seconds: 1.0, images: n },
            RuntimeResult {
                name: "device".into(),
                logits: device_host_logits(&model, images, n, classes, &|_| {}).unwrap(),
                seconds: 1.0,
                images: n,
            },
        ];
        let gpu = crate::engine::gpu::Gpu::new(None).unwrap_or_else(|e| panic!("{e}"));
        let m = 60;
        let runner = crate::engine::gpu::PackedGpuModel::new(&gpu, &model).unwrap();
        results.push(RuntimeResult {
            name: "packed gpu".into(),
            logits: runner.run(&images[..m * ds.image_len()], m),
            seconds: 1.0,
            images: m,
        });
        let rows = compare(&results, &ds.labels, classes);
        print_table(&rows);
        // The ONNX export sums in the device's order and the WGSL kernel rounds each product
        // on its own: all three compute the same logits, not merely the same classes.
        let tract = &results[0];
        for r in &results[1..] {
            let k = r.images * classes;
            assert_eq!(r.logits[..k], tract.logits[..k], "{}: logits differ from tract's", r.name);
        }
    }
}
