//! Bit-packed XNOR-popcount inference of a packed bnas model on the GPU (`shaders/xnor.wgsl`).
//!
//! A `PackedGpuModel` turns the node list of a parsed `bnas_device::Model` into a list of
//! dispatches; `run` executes them over a batch of u8 images, all recorded into one command
//! buffer and one submission per batch (a batch larger than the device's storage limits is
//! split into several). Every image gets its own copy of the model's arena plan, so tensors sit
//! at the device's offsets and concat parts are channel slices of their root. Every node sums in
//! the device kernels' order with each product rounded before its add, so the results equal
//! `Model::infer`'s bit for bit (tests below).

use bnas_device::{Model, Node, TensorId};
use wgpu::util::DeviceExt;

use super::kernel::{groups_for, wgsl_file, Shader, WgslFile, WG};
use super::{Gpu, GpuError};

/// `shaders/xnor.wgsl` as compiled (see `kernel::compose`).
pub(super) const WGSL: &[WgslFile] = &[wgsl_file!("xnor.wgsl")];

/// Fields of the WGSL `Params` struct, in order.
const N_FIELDS: usize = 24;
const F_N: usize = 0;
const F_LEN: usize = 1;
const F_A_STRIDE: usize = 2;
const F_X: usize = 3;
const F_X2: usize = 4;
const F_OUT: usize = 5;
const F_C_IN: usize = 6;
const F_H: usize = 7;
const F_W: usize = 8;
const F_C_OUT: usize = 9;
const F_OH: usize = 10;
const F_OW: usize = 11;
const F_K: usize = 12;
const F_STRIDE: usize = 13;
const F_PAD: usize = 14;
const F_DIL: usize = 15;
const F_WORDS: usize = 16;
const F_FLAGS: usize = 17;
const F_W_OFF: usize = 18;
const F_B_OFF: usize = 19;
const F_S_OFF: usize = 20;
const F_F_OFF: usize = 21;
const F_T_OFF: usize = 22;
// Field 23, `zero`, stays 0: the shader XORs products with it so that no compiler fuses them.

/// Binding slots of `xnor.wgsl`.
const B_CONSTS: u32 = 1;
const B_ARENA: u32 = 2;
const B_BITS: u32 = 3;
const B_PIXELS: u32 = 4;
const B_LOGITS: u32 = 5;

/// One dispatch: an entry point, its parameters (`n` and `len` filled per batch), the threads
/// per image, and the tensor range per image it writes (traced by the tests).
struct Step {
    entry: &'static str,
    fields: [u32; N_FIELDS],
    per_image: usize,
    /// (arena offset, length) of the node output; `None` for the sign packing step.
    writes: Option<(usize, usize)>,
}

/// The storage buffers (besides the parameters) each entry point uses.
fn bindings(entry: &str) -> &'static [u32] {
    match entry {
        "input_u8" => &[B_CONSTS, B_ARENA, B_PIXELS],
        "pack_signs" | "xnor_conv" => &[B_CONSTS, B_ARENA, B_BITS],
        "conv_f32" | "affine" | "linear" | "pool" | "global_avg_pool" => &[B_CONSTS, B_ARENA],
        "gather_logits" => &[B_ARENA, B_LOGITS],
        _ => &[B_ARENA],
    }
}

/// A packed model ready to run on the GPU.
pub struct PackedGpuModel<'g> {
    gpu: &'g Gpu,
    shader: Shader,
    /// Weights, biases, scales, flips, thresholds (f32 bits) and packed binary weights.
    consts: wgpu::Buffer,
    steps: Vec<Step>,
    /// Arena words per image (the model's plan).
    arena_words: usize,
    /// Words per image of the largest packed-sign tensor.
    bits_words: usize,
    input_len: usize,
    classes: usize,
    logits_off: usize,
}

/// Appends f32 constants as their bits; returns their word offset.
fn push_f(c: &mut Vec<u32>, v: &[f32]) -> u32 {
    let at = u(c.len());
    c.extend(v.iter().map(|x| x.to_bits()));
    at
}

fn u(v: usize) -> u32 {
    u32::try_from(v).expect("a model dimension exceeds u32")
}

impl<'g> PackedGpuModel<'g> {
    /// Compiles `xnor.wgsl` and uploads the model's constants.
    pub fn new(gpu: &'g Gpu, model: &Model<'_>) -> Result<PackedGpuModel<'g>, GpuError> {
        let shader = Shader::new(&gpu.device, WGSL)?;
        let mut consts: Vec<u32> = Vec::new();
        let info = |t: TensorId| model.tensor(t).expect("a parsed model's tensors are valid");
        let off = |t: TensorId| info(t).arena_offset;
        let input = info(model.input());
        let mut steps = Vec::new();
        let mut fields = [0u32; N_FIELDS];
        fields[F_C_IN] = u(input.c);
        fields[F_H] = u(input.h);
        fields[F_W] = u(input.w);
        fields[F_OUT] = u(input.arena_offset);
        if let Some((s, b)) = model.input_affine() {
            fields[F_FLAGS] = 2;
            fields[F_W_OFF] = push_f(&mut consts, s);
            fields[F_B_OFF] = push_f(&mut consts, b);
        }
        steps.push(Step {
            entry: "input_u8",
            fields,
            per_image: input.len(),
            writes: Some((input.arena_offset, input.len())),
        });
        let mut bits_words = 0;
        for node in model.nodes() {
            let out = info(node.output());
            let mut f = [0u32; N_FIELDS];
            f[F_OUT] = u(out.arena_offset);
            f[F_OH] = u(out.h);
            f[F_OW] = u(out.w);
            f[F_C_OUT] = u(out.c);
            let set_x = |f: &mut [u32; N_FIELDS], x: TensorId| {
                let xi = info(x);
                f[F_X] = u(xi.arena_offset);
                f[F_C_IN] = u(xi.c);
                f[F_H] = u(xi.h);
                f[F_W] = u(xi.w);
            };
            let geom = |f: &mut [u32; N_FIELDS], g: bnas_device::ConvGeom| {
                f[F_K] = u(g.k);
                f[F_STRIDE] = u(g.stride);
                f[F_PAD] = u(g.pad);
                f[F_DIL] = u(g.dil);
            };
            let entry = match node {
                Node::Affine { x, scale, bias, .. } => {
                    set_x(&mut f, x);
                    f[F_W_OFF] = push_f(&mut consts, scale);
                    f[F_B_OFF] = push_f(&mut consts, bias);
                    "affine"
                }
                Node::Conv(c) => {
                    set_x(&mut f, c.x);
                    geom(&mut f, c.geom);
                    f[F_W_OFF] = push_f(&mut consts, c.weights);
                    if let Some(b) = c.bias {
                        f[F_B_OFF] = push_f(&mut consts, b);
                        f[F_FLAGS] |= 2;
                    }
                    f[F_FLAGS] |= u32::from(c.relu);
                    "conv_f32"
                }
                Node::BinConv(b) => {
                    set_x(&mut f, b.x);
                    geom(&mut f, b.geom);
                    let words = b.words_per_tap();
                    f[F_WORDS] = u(words);
                    f[F_F_OFF] = push_f(&mut consts, b.flip);
                    f[F_T_OFF] = push_f(&mut consts, b.threshold);
                    f[F_S_OFF] = push_f(&mut consts, b.scale);
                    f[F_W_OFF] = u(consts.len());
                    consts.extend_from_slice(b.packed);
                    let xi = info(b.x);
                    let hw_words = xi.h * xi.w * words;
                    bits_words = bits_words.max(hw_words);
                    steps.push(Step { entry: "pack_signs", fields: f, per_image: hw_words, writes: None });
                    "xnor_conv"
                }
                Node::MaxPool { x, stride, .. } | Node::AvgPool { x, stride, .. } => {
                    set_x(&mut f, x);
                    f[F_STRIDE] = u(stride);
                    f[F_FLAGS] = u32::from(matches!(node, Node::MaxPool { .. }));
                    // 1 / n for n = 0..=9 valid taps, rounded on the host as the device does.
                    let recips: Vec<f32> = (0..=9).map(bnas_device::kernels::reciprocal).collect();
                    f[F_S_OFF] = push_f(&mut consts, &recips);
                    "pool"
                }
                Node::Add { a, b, .. } => {
                    f[F_X] = u(off(a));
                    f[F_X2] = u(off(b));
                    "add"
                }
                Node::Zero { .. } => "zero",
                Node::GlobalAvgPool { x, .. } => {
                    set_x(&mut f, x);
                    let xi = info(x);
                    f[F_S_OFF] = push_f(&mut consts, &[bnas_device::kernels::reciprocal(xi.h * xi.w)]);
                    "global_avg_pool"
                }
                Node::Linear { x, weights, bias, .. } => {
                    f[F_X] = u(off(x));
                    f[F_C_IN] = u(info(x).len());
                    f[F_C_OUT] = u(out.len());
                    f[F_W_OFF] = push_f(&mut consts, weights);
                    f[F_B_OFF] = push_f(&mut consts, bias);
                    "linear"
                }
            };
            steps.push(Step { entry, fields: f, per_image: out.len(), writes: Some((out.arena_offset, out.len())) });
        }
        if consts.is_empty() {
            consts.push(0);
        }
        let consts = gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("packed model constants"),
            contents: bytemuck::cast_slice(&consts),
            usage: wgpu::BufferUsages::STORAGE,
        });
        Ok(PackedGpuModel {
            gpu,
            shader,
            consts,
            steps,
            arena_words: model.arena_words(),
            bits_words,
            input_len: input.len(),
            classes: model.classes(),
            logits_off: off(model.logits()),
        })
    }

    /// Number of logits per image.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Runs `n` u8 CHW images (`n * c * h * w` bytes, image after image); returns the logits
    /// `[n, classes]`.
    pub fn run(&self, images_u8: &[u8], n: usize) -> Vec<f32> {
        self.run_batches(images_u8, n, false).0
    }

    /// `run`, also returning every node's output `[node][n * len]` (the input tensor first).
    #[cfg(test)]
    pub(crate) fn run_traced(&self, images_u8: &[u8], n: usize) -> (Vec<f32>, Vec<Vec<f32>>) {
        self.run_batches(images_u8, n, true)
    }

    /// Images per submission: the arena of a batch must fit one storage binding.
    fn batch_limit(&self) -> usize {
        let limits = self.gpu.device.limits();
        let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let per_image = (self.arena_words.max(self.bits_words).max(self.input_len.div_ceil(4)).max(1) * 4) as u64;
        ((max_binding / per_image) as usize).clamp(1, 1 << 20)
    }

    fn run_batches(&self, images_u8: &[u8], n: usize, trace: bool) -> (Vec<f32>, Vec<Vec<f32>>) {
        assert_eq!(images_u8.len(), n * self.input_len, "{n} images of {} bytes", self.input_len);
        let mut logits = Vec::with_capacity(n * self.classes);
        let mut traces: Vec<Vec<f32>> = vec![Vec::new(); if trace { self.traced_steps() } else { 0 }];
        let limit = self.batch_limit();
        let mut start = 0;
        while start < n {
            let m = limit.min(n - start);
            let chunk = &images_u8[start * self.input_len..(start + m) * self.input_len];
            let (l, t) = self.run_batch(chunk, m, trace);
            logits.extend(l);
            for (all, part) in traces.iter_mut().zip(t) {
                all.extend(part);
            }
            start += m;
        }
        (logits, traces)
    }

    fn traced_steps(&self) -> usize {
        self.steps.iter().filter(|s| s.writes.is_some()).count()
    }

    fn storage(&self, label: &str, words: usize, extra: wgpu::BufferUsages) -> wgpu::Buffer {
        self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (words.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | extra,
            mapped_at_creation: false,
        })
    }

    /// One batch: one command buffer, one submission, one read-back.
    fn run_batch(&self, images_u8: &[u8], n: usize, trace: bool) -> (Vec<f32>, Vec<Vec<f32>>) {
        let device = &self.gpu.device;
        let mut px = images_u8.to_vec();
        px.resize(px.len().div_ceil(4).max(1) * 4, 0);
        let pixels = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("images"),
            contents: &px,
            usage: wgpu::BufferUsages::STORAGE,
        });
        let arena = self.storage("arena", n * self.arena_words, wgpu::BufferUsages::COPY_SRC);
        let bits = self.storage("packed signs", n * self.bits_words, wgpu::BufferUsages::empty());
        let out = self.storage("logits", n * self.classes, wgpu::BufferUsages::COPY_SRC);

        let mut steps: Vec<(&'static str, [u32; N_FIELDS], usize)> =
            self.steps.iter().map(|s| (s.entry, s.fields, s.per_image)).collect();
        let mut gather = [0u32; N_FIELDS];
        gather[F_X] = u(self.logits_off);
        gather[F_C_OUT] = u(self.classes);
        steps.push(("gather_logits", gather, self.classes));
        let align = u64::from(device.limits().min_uniform_buffer_offset_alignment).max(256);
        let mut params = vec![0u8; steps.len() * align as usize];
        for (i, (_, f, per_image)) in steps.iter_mut().enumerate() {
            f[F_N] = u(n);
            f[F_LEN] = u(n * *per_image);
            f[F_A_STRIDE] = u(self.arena_words);
            let at = i * align as usize;
            params[at..at + N_FIELDS * 4].copy_from_slice(bytemuck::cast_slice(&f[..]));
        }
        let uniforms = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("packed model params"),
            contents: &params,
            usage: wgpu::BufferUsages::UNIFORM,
        });

        // Trace copies: after each traced step, each image's output range.
        let trace_words: usize =
            if trace { self.steps.iter().filter_map(|s| s.writes).map(|(_, l)| l * n).sum() } else { 0 };
        let trace_buf = trace
            .then(|| self.storage("trace", trace_words, wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC));

        let mut encoder =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("packed model") });
        let mut trace_at = 0u64;
        for (i, (entry, _, per_image)) in steps.iter().enumerate() {
            let pipeline = self.shader.pipeline(device, entry);
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &uniforms,
                    offset: i as u64 * align,
                    size: wgpu::BufferSize::new(align),
                }),
            }];
            for &b in bindings(entry) {
                let buf = match b {
                    B_CONSTS => &self.consts,
                    B_ARENA => &arena,
                    B_BITS => &bits,
                    B_PIXELS => &pixels,
                    _ => &out,
                };
                entries.push(wgpu::BindGroupEntry { binding: b, resource: buf.as_entire_binding() });
            }
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            let (gx, gy) = super::kernel::grid(groups_for(n * per_image));
            {
                let mut pass = encoder
                    .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(entry), timestamp_writes: None });
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(gx, gy, 1);
            }
            if let (Some(tb), Some((offset, len))) = (&trace_buf, self.steps.get(i).and_then(|s| s.writes)) {
                for img in 0..n {
                    let src = ((img * self.arena_words + offset) * 4) as u64;
                    encoder.copy_buffer_to_buffer(&arena, src, tb, trace_at, (len * 4) as u64);
                    trace_at += (len * 4) as u64;
                }
            }
        }
        let (logits, trace_all) = {
            let read_out = self.staging(&mut encoder, &out, n * self.classes);
            let read_trace = trace_buf.as_ref().map(|tb| self.staging(&mut encoder, tb, trace_words));
            self.gpu.queue.submit([encoder.finish()]);
            (self.read(&read_out, n * self.classes), read_trace.map(|r| self.read(&r, trace_words)))
        };
        let mut traces = Vec::new();
        if let Some(all) = trace_all {
            let mut at = 0;
            for (_, len) in self.steps.iter().filter_map(|s| s.writes) {
                traces.push(all[at..at + n * len].to_vec());
                at += n * len;
            }
        }
        (logits, traces)
    }

    fn staging(&self, encoder: &mut wgpu::CommandEncoder, src: &wgpu::Buffer, words: usize) -> wgpu::Buffer {
        let staging = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read back"),
            size: (words.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(src, 0, &staging, 0, (words.max(1) * 4) as u64);
        staging
    }

    fn read(&self, staging: &wgpu::Buffer, words: usize) -> Vec<f32> {
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.gpu.device.poll(wgpu::PollType::wait_indefinitely()).expect("GPU device lost while waiting for results");
        rx.recv().expect("map callback dropped").expect("mapping the read-back buffer failed");
        let view = staging.get_mapped_range(..).expect("read-back buffer not mapped");
        let out = bytemuck::cast_slice::<u8, f32>(&view[..words * 4]).to_vec();
        drop(view);
        staging.unmap();
        out
    }
}

const _: () = assert!(WG == 256, "xnor.wgsl's workgroups are 256 threads");

#[cfg(test)]
mod tests {
    use super::*;
    use bnas_device::kernels::{self, Shape};
    use bnas_device::sample::{aligned, random_net, NetSpec};

    fn gpu() -> &'static Gpu {
        static GPU: std::sync::OnceLock<Gpu> = std::sync::OnceLock::new();
        GPU.get_or_init(|| Gpu::new(None).unwrap_or_else(|e| panic!("{e}")))
    }

    fn shape(m: &Model<'_>, t: TensorId) -> Shape {
        let i = m.tensor(t).expect("valid tensor");
        Shape { c: i.c, h: i.h, w: i.w }
    }

    /// Node `node`'s output on the host with bnas-device's kernels, from the values in `read`
    /// (one image's arena as the GPU left it before this node).
    fn host_node(m: &Model<'_>, node: &Node<'_>, read: &[f32]) -> Vec<f32> {
        let get = |t: TensorId| read[m.tensor(t).expect("valid").arena_range()].to_vec();
        let os = shape(m, node.output());
        let mut out = vec![0.0; os.c * os.h * os.w];
        match *node {
            Node::Affine { x, scale, bias, .. } => kernels::affine(&get(x), os.h * os.w, scale, bias, &mut out),
            Node::Conv(c) => kernels::conv2d(&get(c.x), shape(m, c.x), c.geom, c.weights, c.bias, c.relu, &mut out, os),
            Node::BinConv(b) => {
                let xs = shape(m, b.x);
                let words = b.words_per_tap();
                let mut bits = vec![0u32; xs.h * xs.w * words];
                kernels::binarize(&get(b.x), xs.h * xs.w, b.flip, b.threshold, &mut bits);
                let kk = b.geom.k * b.geom.k;
                let (mut row, mut sums) = (vec![0u32; kk * words], vec![0u32; b.c_out * kk]);
                kernels::bin_conv(&bits, xs, b.geom, b.scale, b.packed, &mut row, &mut sums, &mut out, os);
            }
            Node::MaxPool { x, stride, .. } => kernels::max_pool(&get(x), shape(m, x), stride, &mut out, os),
            Node::AvgPool { x, stride, .. } => kernels::avg_pool(&get(x), shape(m, x), stride, &mut out, os),
            Node::Add { a, b, .. } => kernels::add_into(&get(a), &get(b), &mut out),
            Node::Zero { .. } => {}
            Node::GlobalAvgPool { x, .. } => {
                let xs = shape(m, x);
                kernels::global_avg_pool(&get(x), xs.h * xs.w, &mut out)
            }
            Node::Linear { x, weights, bias, .. } => kernels::linear(&get(x), weights, bias, &mut out),
        }
        out
    }

    fn images(n: usize, len: usize, seed: u64) -> Vec<u8> {
        let mut r = bnas_device::sample::Rng(seed | 1);
        (0..n * len).map(|_| r.next() as u8).collect()
    }

    /// Random networks of every node kind: each GPU node output against the device kernel run on
    /// the GPU's own inputs, and the logits against `Model::infer`: all equal.
    #[test]
    fn packed_model_matches_device_kernels() {
        let n = 3;
        let mut kinds = std::collections::BTreeSet::new();
        let (mut worst_logit, mut worst_float) = (0f64, 0f64);
        let mut values = 0usize;
        let mut geoms = std::collections::BTreeSet::new();
        for seed in 1..=6u64 {
            let spec = NetSpec {
                in_c: 1 + seed as usize % 3,
                hw: 6 + seed as usize % 3,
                c: 4 + 14 * (seed as usize % 2),
                cells: 3,
                nodes: 2,
                classes: 5,
                seed,
            };
            let words = aligned(&random_net(spec));
            let model = Model::parse(bytemuck::cast_slice(&words)).expect("sample model parses");
            let packed = PackedGpuModel::new(gpu(), &model).unwrap_or_else(|e| panic!("{e}"));
            let px = images(n, packed.input_len, seed * 7919);
            let (logits, traces) = packed.run_traced(&px, n);

            // Logits against the device crate, image by image.
            let mut arena = vec![0u32; model.arena_words()];
            for img in 0..n {
                let mut want = vec![0.0; model.classes()];
                model
                    .infer(&px[img * packed.input_len..(img + 1) * packed.input_len], &mut arena, &mut want)
                    .expect("infer");
                let got = &logits[img * model.classes()..(img + 1) * model.classes()];
                worst_logit = worst_logit.max(crate::engine::testutil::max_rel_err(got, &want));
                assert_eq!(got, &want[..], "seed {seed} image {img}: logits");
            }

            // Node by node: replay the GPU's values into a host arena per image.
            let mut host = vec![vec![0f32; model.arena_words()]; n];
            let input = model.tensor(model.input()).expect("input").arena_range();
            for (img, h) in host.iter_mut().enumerate() {
                h[input.clone()].copy_from_slice(&traces[0][img * input.len()..(img + 1) * input.len()]);
            }
            for (node, trace) in model.nodes().zip(&traces[1..]) {
                let name = format!("{node:?}").split([' ', '(']).next().unwrap_or("").to_string();
                kinds.insert(name.clone());
                if let Node::BinConv(b) = node {
                    geoms.insert((b.geom.k, b.geom.stride, b.geom.dil));
                }
                let range = model.tensor(node.output()).expect("output").arena_range();
                let len = range.len();
                for (img, h) in host.iter_mut().enumerate() {
                    let want = host_node(&model, &node, h);
                    let got = &trace[img * len..(img + 1) * len];
                    worst_float = worst_float.max(crate::engine::testutil::max_rel_err(got, &want));
                    assert_eq!(got, &want[..], "seed {seed} {name}: GPU vs device kernel");
                    values += len;
                    h[range.clone()].copy_from_slice(got);
                }
            }
        }
        println!("node kinds: {kinds:?}; binary conv (k, stride, dil): {geoms:?}");
        println!(
            "{values} node outputs compared: largest relative difference {worst_float:.1e}; logits {worst_logit:.1e}"
        );
        for kind in ["Affine", "Conv", "BinConv", "MaxPool", "AvgPool", "Add", "Zero", "GlobalAvgPool", "Linear"] {
            assert!(kinds.contains(kind), "no {kind} node in the sampled networks: {kinds:?}");
        }
    }

    /// Batches split across submissions give the same logits as one submission.
    #[test]
    fn packed_model_batches_and_plain_run_agree() {
        let spec = NetSpec { in_c: 3, hw: 5, c: 4, cells: 2, nodes: 2, classes: 3, seed: 42 };
        let words = aligned(&random_net(spec));
        let model = Model::parse(bytemuck::cast_slice(&words)).expect("sample model parses");
        let packed = PackedGpuModel::new(gpu(), &model).unwrap_or_else(|e| panic!("{e}"));
        let n = 7;
        let px = images(n, packed.input_len, 5);
        let all = packed.run(&px, n);
        let (split, _) = {
            let mut out = Vec::new();
            for img in 0..n {
                out.extend(packed.run_batch(&px[img * packed.input_len..(img + 1) * packed.input_len], 1, false).0);
            }
            (out, ())
        };
        assert_eq!(all, split);
        assert_eq!(all.len(), n * packed.classes());
        assert!(packed.batch_limit() >= 1);
    }
}
