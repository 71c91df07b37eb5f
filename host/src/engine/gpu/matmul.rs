//! `shaders/matmul.wgsl`: tiled GEMM (64 x 64 tiles, 4 x 4 outputs per thread, split-K).

use super::kernel::{wgsl_file, Params, Shader, WgslFile, GEMM, MAX_GROUPS_PER_DIM};
use super::{Gpu, GpuBuf, GpuError};
use crate::engine::MatGeom;

/// `shaders/matmul.wgsl` as compiled (see `kernel::compose`).
pub(super) const WGSL: &[WgslFile] = &[wgsl_file!("matmul.wgsl"), GEMM];

pub(super) fn shader(device: &wgpu::Device) -> Result<Shader, GpuError> {
    Shader::new(device, WGSL)
}

/// Output tile edge and K step of the GEMM tiles (gemm.wgsl, for matmul.wgsl and conv.wgsl).
pub(super) const TILE: usize = 64;
pub(super) const BK: usize = 16;
/// Longest K one split may run: 4,096 iterations of the K loop, far below lavapipe's
/// 65,535-iteration limit.
const MAX_K_CHUNK: usize = BK * 4096;
/// Splits stop being added below this K per split (each split costs a [m, n] slice).
const MIN_K_CHUNK: usize = 256;
/// Workgroups worth reaching by splitting K when m x n alone gives fewer.
const TARGET_GROUPS: usize = 128;

/// How a GEMM of `tiles` output tiles and depth `k` is cut along K.
#[derive(Debug, Clone, Copy)]
pub(super) struct SplitK {
    pub splits: usize,
    pub k_chunk: usize,
}

impl SplitK {
    /// Splits K only when it is long (loop bound) or the output is too small to occupy the
    /// GPU; every chunk is a multiple of `BK` so tiles never straddle two splits.
    pub(super) fn plan(tiles: usize, k: usize) -> SplitK {
        let by_occupancy = (TARGET_GROUPS / tiles.max(1)).max(1).min(k.div_ceil(MIN_K_CHUNK));
        let splits = by_occupancy.max(k.div_ceil(MAX_K_CHUNK)).clamp(1, MAX_GROUPS_PER_DIM as usize);
        let k_chunk = k.div_ceil(splits).div_ceil(BK).max(1) * BK;
        SplitK { splits: k.div_ceil(k_chunk).max(1), k_chunk }
    }
}

impl Gpu {
    /// `C = op(A) op(B)`, `[m, n]`.
    pub(super) fn gemm(&self, a: &GpuBuf, b: &GpuBuf, g: MatGeom) -> GpuBuf {
        let tiles_n = g.n.div_ceil(TILE);
        let tiles = g.m.div_ceil(TILE) * tiles_n;
        let split = SplitK::plan(tiles, g.k);
        let len = g.m * g.n;
        let out = self.alloc(len * split.splits);
        if len > 0 {
            let p = Params::new()
                .u(g.m)
                .u(g.n)
                .u(g.k)
                .u(usize::from(g.trans_a))
                .u(usize::from(g.trans_b))
                .u(tiles_n)
                .u(tiles)
                .u(split.k_chunk);
            let bufs = [(1, &a.buffer), (2, &b.buffer), (3, &out.buffer)];
            self.dispatch(&self.shaders.matmul, "matmul", p, &bufs, (tiles as u32, split.splits as u32));
        }
        if split.splits == 1 {
            out
        } else {
            self.sum_splits(&out, len, split.splits)
        }
    }
}
