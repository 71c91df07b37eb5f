//! Shader loading and dispatch recording shared by every kernel family.
//!
//! A `Shader` is one WGSL file from `shaders/` with the shared files it uses appended
//! (`common.wgsl`, `gemm.wgsl`), validated by naga before wgpu sees it, with its compute
//! pipelines created lazily (lavapipe compiles each through LLVM, so building only what a run
//! uses keeps start-up short). Every dispatch is recorded into the pending
//! command encoder held by `Gpu`; nothing is submitted until a download (or until
//! `MAX_PENDING` dispatches wait).

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Gpu, GpuError};

/// Threads per workgroup of the 1-D kernels (must match `WG` in `shaders/common.wgsl`).
pub const WG: u32 = 256;
/// Most workgroups per dispatch dimension (the WebGPU/Vulkan guaranteed minimum).
pub const MAX_GROUPS_PER_DIM: u32 = 65_535;
/// Bytes of uniform parameters one dispatch may use (64 words).
pub const PARAM_SLOT: u64 = 256;
/// Dispatches recorded before the pending encoder is submitted anyway (bounds the memory
/// held by a step and the size of the parameter arena).
pub const MAX_PENDING: usize = 512;

/// One validated shader (a WGSL file with the shared files it uses) and its pipelines by entry
/// point.
pub struct Shader {
    module: wgpu::ShaderModule,
    pipelines: Mutex<HashMap<&'static str, wgpu::ComputePipeline>>,
}

/// A WGSL file: its path (`shaders/conv.wgsl`) and text.
pub type WgslFile = (&'static str, &'static str);

/// The [`WgslFile`] of `shaders/$name`, its text included at compile time.
macro_rules! wgsl_file {
    ($name:literal) => {
        (concat!("shaders/", $name), include_str!(concat!("../../../../shaders/", $name)))
    };
}
pub(super) use wgsl_file;

/// What every shader shares (the workgroup size, reductions, the thread index): compiled after
/// each shader's own files.
pub const COMMON: WgslFile = wgsl_file!("common.wgsl");
/// The tiled GEMM loop of matmul.wgsl and conv.wgsl.
pub const GEMM: WgslFile = wgsl_file!("gemm.wgsl");

/// One shader's source as compiled: `files` (the shader, then any shared part it uses), then
/// [`COMMON`], one after the other, with the line each file starts at. Appended after the
/// shader, the shared parts leave its own line numbers as they are in its file.
fn compose(files: &[WgslFile]) -> (String, Vec<(usize, &'static str)>) {
    let (mut source, mut starts) = (String::new(), Vec::new());
    for &(file, text) in files.iter().chain([&COMMON]) {
        starts.push((source.lines().count() + 1, file));
        source.push_str(text);
        if !source.ends_with('\n') {
            source.push('\n');
        }
    }
    (source, starts)
}

/// Parses and validates a shader (see [`compose`]) with naga; an error names the file, line and
/// column: `shaders/conv.wgsl:12:5: <message>`.
pub fn validate_wgsl(files: &[WgslFile]) -> Result<naga::Module, String> {
    let (source, starts) = compose(files);
    // `file:line:column: ` of a location in the composed source.
    let place = |loc: Option<naga::SourceLocation>| match loc {
        Some(loc) => {
            let line = loc.line_number as usize;
            let (start, file) = starts.iter().rev().find(|(start, _)| *start <= line).copied().unwrap_or((1, ""));
            format!("{file}:{}:{}: ", line + 1 - start, loc.line_position)
        }
        None => format!("{}: ", starts.first().map_or("", |s| s.1)),
    };
    let module =
        naga::front::wgsl::parse_str(&source).map_err(|e| format!("{}{}", place(e.location(&source)), e.message()))?;
    let mut validator =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty());
    validator.validate(&module).map_err(|e| {
        // The validator's top error is generic ("Function [0] 'f' is invalid"): append the
        // chain of causes, which says what is wrong.
        let mut msg = e.as_inner().to_string();
        let mut cause = std::error::Error::source(e.as_inner());
        while let Some(c) = cause {
            msg.push_str(&format!(": {c}"));
            cause = c.source();
        }
        format!("{}{msg}", place(e.location(&source)))
    })?;
    Ok(module)
}

impl Shader {
    /// Compiles the shader `files` (its own file first; see [`compose`]): parsed and validated
    /// once by [`validate_wgsl`], whose module wgpu takes as it is.
    pub fn new(device: &wgpu::Device, files: &[WgslFile]) -> Result<Shader, GpuError> {
        let module = validate_wgsl(files).map_err(GpuError::Shader)?;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: files.first().map(|f| f.0),
            source: wgpu::ShaderSource::Naga(std::borrow::Cow::Owned(module)),
        });
        Ok(Shader { module, pipelines: Mutex::new(HashMap::new()) })
    }

    pub(super) fn pipeline(&self, device: &wgpu::Device, entry: &'static str) -> wgpu::ComputePipeline {
        let mut map = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(entry)
            .or_insert_with(|| {
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: None,
                    module: &self.module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })
            .clone()
    }
}

/// Workgroup grid for `groups` workgroups: folded into (x, y) so no dimension exceeds
/// 65,535. Kernels recover the linear index as `wid.x + wid.y * nwg.x` and skip the excess.
pub fn grid(groups: u32) -> (u32, u32) {
    let groups = groups.max(1);
    let x = groups.min(MAX_GROUPS_PER_DIM);
    (x, groups.div_ceil(x))
}

/// Workgroups needed to give one thread to each of `n` items with `WG` threads per group.
pub fn groups_for(n: usize) -> u32 {
    (n.div_ceil(WG as usize)).max(1) as u32
}

/// Uniform parameters of one dispatch, as 32-bit words in declaration order of the WGSL
/// `Params` struct.
#[derive(Default)]
pub struct Params(pub Vec<u32>);

impl Params {
    pub fn new() -> Params {
        Params(Vec::with_capacity(16))
    }
    pub fn u(mut self, v: usize) -> Params {
        self.0.push(u32::try_from(v).expect("a dimension exceeds u32"));
        self
    }
    pub fn f(mut self, v: f32) -> Params {
        self.0.push(v.to_bits());
        self
    }
}

/// Commands recorded but not yet submitted.
pub struct Pending {
    pub encoder: Option<wgpu::CommandEncoder>,
    /// Uniform parameters of the recorded dispatches, one `PARAM_SLOT` each.
    pub params: Vec<u8>,
    /// The buffer the parameters are written to at submission (fresh per batch, so a write
    /// never races a submitted batch still reading its own).
    pub arena: Option<wgpu::Buffer>,
    pub dispatches: usize,
}

impl Gpu {
    /// Records one dispatch of `entry` from `shader`. `bufs` are (binding, buffer) pairs of
    /// the storage buffers the entry point uses; the parameters are bound at binding 0.
    /// `groups` is (linear workgroups folded by `grid`, z).
    pub(super) fn dispatch(
        &self,
        shader: &Shader,
        entry: &'static str,
        params: Params,
        bufs: &[(u32, &wgpu::Buffer)],
        groups: (u32, u32),
    ) {
        let pipeline = shader.pipeline(&self.device, entry);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.dispatches >= MAX_PENDING {
            self.submit_locked(&mut pending);
        }
        let arena = pending
            .arena
            .get_or_insert_with(|| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("params arena"),
                    size: PARAM_SLOT * MAX_PENDING as u64,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .clone();
        let offset = pending.params.len() as u64;
        debug_assert!(params.0.len() * 4 <= PARAM_SLOT as usize, "{entry}: too many parameters");
        let mut slot = [0u8; PARAM_SLOT as usize];
        slot[..params.0.len() * 4].copy_from_slice(bytemuck::cast_slice(&params.0));
        pending.params.extend_from_slice(&slot);
        pending.dispatches += 1;

        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &arena,
                offset,
                size: wgpu::BufferSize::new(PARAM_SLOT),
            }),
        }];
        entries
            .extend(bufs.iter().map(|&(binding, b)| wgpu::BindGroupEntry { binding, resource: b.as_entire_binding() }));
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let (gx, gy) = grid(groups.0);
        let encoder = self.encoder_locked(&mut pending);
        let mut pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(entry), timestamp_writes: None });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(gx, gy, groups.1.max(1));
    }

    /// The pending encoder, created on first use.
    pub(super) fn encoder_locked<'a>(&self, pending: &'a mut Pending) -> &'a mut wgpu::CommandEncoder {
        pending.encoder.get_or_insert_with(|| {
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("bnas step") })
        })
    }

    /// Submits everything recorded so far (parameters first, then the commands).
    pub(super) fn submit_locked(&self, pending: &mut Pending) {
        if let (Some(arena), false) = (&pending.arena, pending.params.is_empty()) {
            self.queue.write_buffer(arena, 0, &pending.params);
        }
        let commands = pending.encoder.take().map(|e| e.finish());
        self.queue.submit(commands);
        pending.params.clear();
        pending.arena = None;
        pending.dispatches = 0;
    }
}
