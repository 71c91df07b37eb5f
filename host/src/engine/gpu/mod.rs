//! The GPU backend: WGSL kernels from `shaders/` through wgpu.
