//! The GPU backend: WGSL kernels from `shaders/` through wgpu.
//!
//! Every op records its dispatches into one pending command encoder; work is submitted when a
//! buffer is downloaded (or when `kernel::MAX_PENDING` dispatches wait), so a training step
//! is one or a few submissions and only the scalars a caller downloads cross the bus.
//! Buffers are recycled through a pool keyed by size: a buffer dropped while recorded
//! commands still read it is only handed out to commands recorded after them, which the GPU
//! runs in order, so reuse never races.

mod backend_impl;
mod batchnorm;
mod binarize;
mod conv;
mod depthwise;
mod elementwise;
mod kernel;
mod loss;
mod matmul;
mod optim;
mod packed;
mod pool;
mod reduce;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use kernel::{Pending, Shader};
pub use packed::PackedGpuModel;

/// Why the GPU backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found: wgpu saw no Vulkan, Metal or DX12 device; install your GPU driver, \
         or the Debian package mesa-vulkan-drivers for the software Vulkan device (lavapipe)"
    )]
    NoAdapter,
    #[error("no GPU adapter name contains {filter:?}; wgpu sees: {available}")]
    NoMatch { filter: String, available: String },
    #[error("could not open the GPU adapter {adapter}: {message}")]
    RequestDevice { adapter: String, message: String },
    /// A WGSL file failed naga's parser or validator: `shaders/conv.wgsl:12:5: <message>`.
    #[error("{0}")]
    Shader(String),
}

/// A device buffer of `len` f32 values (at least 4 bytes are allocated, so an empty tensor is
/// still a valid binding). Returned to the pool when dropped.
pub struct GpuBuf {
    buffer: wgpu::Buffer,
    len: usize,
    pool: Arc<BufferPool>,
}

impl GpuBuf {
    /// The underlying wgpu buffer (read-only use; the engine owns its contents).
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl Drop for GpuBuf {
    fn drop(&mut self) {
        self.pool.put(self.buffer.clone());
    }
}

/// Free buffers by byte size.
#[derive(Default)]
struct BufferPool {
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
}

/// Free buffers kept per size; more are released to the driver.
const POOL_PER_SIZE: usize = 32;

impl BufferPool {
    fn take(&self, bytes: u64) -> Option<wgpu::Buffer> {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&bytes).and_then(Vec::pop)
    }
    fn put(&self, buffer: wgpu::Buffer) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let list = free.entry(buffer.size()).or_default();
        if list.len() < POOL_PER_SIZE {
            list.push(buffer);
        }
    }
}

/// One validated shader module per file in `shaders/`.
struct Shaders {
    elementwise: Shader,
    reduce: Shader,
    matmul: Shader,
    conv: Shader,
    depthwise: Shader,
    batchnorm: Shader,
    pool: Shader,
    loss: Shader,
    optim: Shader,
    binarize: Shader,
}

/// The wgpu backend. Thread-safe: ops from several threads are recorded into the same
/// pending encoder, each dispatch atomically.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    pending: Mutex<Pending>,
    pool: Arc<BufferPool>,
    shaders: Shaders,
}

const BACKENDS: wgpu::Backends = wgpu::Backends::VULKAN.union(wgpu::Backends::METAL).union(wgpu::Backends::DX12);

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: BACKENDS,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    })
}

fn is_software_info(info: &wgpu::AdapterInfo) -> bool {
    let name = info.name.to_lowercase();
    info.device_type == wgpu::DeviceType::Cpu
        || ["llvmpipe", "lavapipe", "swiftshader"].iter().any(|s| name.contains(s))
}

/// Lower is preferred: real GPUs before software rasterizers.
fn preference(info: &wgpu::AdapterInfo) -> u8 {
    if is_software_info(info) {
        return 4;
    }
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn describe_info(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?})", info.name, info.backend)
}

impl Gpu {
    /// Names and APIs of the adapters wgpu sees (Vulkan, Metal, DX12), e.g.
    /// `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)`.
    pub fn adapters() -> Vec<String> {
        pollster::block_on(instance().enumerate_adapters(BACKENDS))
            .iter()
            .map(|a| describe_info(&a.get_info()))
            .collect()
    }

    /// Opens an adapter: the first whose name contains `adapter_filter` (case-insensitive),
    /// or else the most capable one (discrete > integrated > virtual > software). The device
    /// gets the adapter's own limits, so large buffers work on a real GPU.
    pub fn new(adapter_filter: Option<&str>) -> Result<Gpu, GpuError> {
        let instance = instance();
        let mut adapters = pollster::block_on(instance.enumerate_adapters(BACKENDS));
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter);
        }
        let adapter = match adapter_filter {
            Some(filter) => {
                let needle = filter.to_lowercase();
                let found = adapters.iter().position(|a| a.get_info().name.to_lowercase().contains(&needle));
                match found {
                    Some(i) => adapters.swap_remove(i),
                    None => {
                        let available =
                            adapters.iter().map(|a| describe_info(&a.get_info())).collect::<Vec<_>>().join(", ");
                        return Err(GpuError::NoMatch { filter: filter.to_string(), available });
                    }
                }
            }
            None => {
                adapters.sort_by_key(|a| preference(&a.get_info()));
                adapters.swap_remove(0)
            }
        };
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("bnas"),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::RequestDevice { adapter: describe_info(&info), message: e.to_string() })?;
        let shaders = Shaders {
            elementwise: elementwise::shader(&device)?,
            reduce: reduce::shader(&device)?,
            matmul: matmul::shader(&device)?,
            conv: conv::shader(&device)?,
            depthwise: depthwise::shader(&device)?,
            batchnorm: batchnorm::shader(&device)?,
            pool: pool::shader(&device)?,
            loss: loss::shader(&device)?,
            optim: optim::shader(&device)?,
            binarize: binarize::shader(&device)?,
        };
        let pending = Pending { encoder: None, params: Vec::new(), arena: None, dispatches: 0 };
        Ok(Gpu { device, queue, info, pending: Mutex::new(pending), pool: Arc::default(), shaders })
    }

    /// Whether the adapter is a software rasterizer (lavapipe / llvmpipe): correct but slow.
    pub fn is_software(&self) -> bool {
        is_software_info(&self.info)
    }

    /// An uninitialised buffer of `len` f32 (every kernel writes all of its output).
    fn alloc(&self, len: usize) -> GpuBuf {
        let bytes = (len.max(1) * 4) as u64;
        let buffer = self.pool.take(bytes).unwrap_or_else(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        GpuBuf { buffer, len, pool: self.pool.clone() }
    }

    /// Records a non-dispatch command (clear, copy) into the pending encoder.
    fn record(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        f(self.encoder_locked(&mut pending));
    }

    fn zeros_buf(&self, len: usize) -> GpuBuf {
        let buf = self.alloc(len);
        self.record(|e| e.clear_buffer(&buf.buffer, 0, None));
        buf
    }

    fn upload_buf(&self, data: &[f32]) -> GpuBuf {
        let contents: &[u8] = if data.is_empty() { &[0; 4] } else { bytemuck::cast_slice(data) };
        // A fresh buffer initialised at creation: a pooled one could still be read by
        // recorded commands, and a queue write would land before them.
        let buffer = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        });
        GpuBuf { buffer, len: data.len(), pool: self.pool.clone() }
    }

    fn download_buf(&self, buf: &GpuBuf) -> Vec<f32> {
        if buf.len == 0 {
            return Vec::new();
        }
        let bytes = (buf.len * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("download"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            self.encoder_locked(&mut pending).copy_buffer_to_buffer(&buf.buffer, 0, &staging, 0, bytes);
            self.submit_locked(&mut pending);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device.poll(wgpu::PollType::wait_indefinitely()).expect("GPU device lost while waiting for results");
        rx.recv().expect("map callback dropped").expect("mapping the download buffer failed");
        let view = staging.get_mapped_range(..).expect("download buffer not mapped");
        let out = view.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        drop(view);
        staging.unmap();
        out
    }

    fn copy_buf(&self, src: &GpuBuf) -> GpuBuf {
        let dst = self.alloc(src.len);
        self.record(|e| e.copy_buffer_to_buffer(&src.buffer, 0, &dst.buffer, 0, src.buffer.size()));
        dst
    }
}
