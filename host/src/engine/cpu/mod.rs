//! The CPU backend (see `Backend`): convolutions as im2col + `matrixmultiply::sgemm`, threads
//! from a rayon pool owned by the backend, everything else as plain loops.
//!
//! The pool's threads flush denormals to zero (FTZ/DAZ on x86_64): a briefly trained binary
//! network produces denormal activations and gradients that slow float code ~10x (DESIGN.md).
//! All heavy work runs inside `pool.install`, so it runs on those threads.

mod conv;
mod dense;
mod depthwise;
mod direct;
mod dots;
mod elementwise;
mod gemm;
mod loss_optim;
mod norm_pool;
mod sign_dw;
mod xnor;
mod xnor_flat;
mod xnor_weights;

#[cfg(test)]
mod tests_bwd;
#[cfg(test)]
mod tests_depthwise;
#[cfg(test)]
pub(crate) use tests_depthwise::dw_geoms;
#[cfg(test)]
mod tests_fwd;
#[cfg(test)]
mod tests_misc;

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::backend::{AdamStep, Backend, BinWeights, BnGrads, BnMode, BnOut, SgdStep};
use super::geom::{ChanGeom, ConvGeom, MatGeom, PoolGeom};

/// Buffers shorter than this many f32 are processed on the calling thread: waking the pool
/// costs more than the work.
const PAR_MIN_LEN: usize = 1 << 15;
/// Chunk length (f32) of parallel element-wise loops.
const PAR_CHUNK: usize = 1 << 14;

/// The CPU backend. Buffers are `Vec<f32>`.
pub struct Cpu {
    pool: rayon::ThreadPool,
    threads: usize,
}

/// Sets the flush-to-zero (bit 15) and denormals-are-zero (bit 6) bits of this thread's MXCSR.
/// Nothing on other architectures.
pub fn flush_denormals_on_this_thread() {
    #[cfg(target_arch = "x86_64")]
    #[allow(deprecated)]
    // SAFETY: SSE is part of x86_64; setting FTZ/DAZ only changes how denormals are rounded.
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | (1 << 15) | (1 << 6));
    }
}

/// Whether this CPU has AVX-512 F, for loops compiled twice: for the x86-64-v2 baseline (4 floats
/// per vector) and, in a `#[target_feature(enable = "avx512f")]` function into which the loop is
/// inlined whole, 16 wide. The same results either way, since Rust neither reassociates nor fuses
/// float operations. It pays where a loop computes more than it moves, as batch norm's backward
/// does (`norm_pool::bwd_sums_avx512`); in a whole build for an AVX-512 CPU (Intel Xeon) the
/// element-wise passes, which only move data, gained nothing.
#[cfg(target_arch = "x86_64")]
fn wide() -> bool {
    dots::available()
}

/// Panics unless a buffer of `len` values is a whole number of `row_len`-long rows (`what`
/// names the caller).
fn check_rows(what: &str, len: usize, row_len: usize) {
    assert!(
        if row_len == 0 { len == 0 } else { len.is_multiple_of(row_len) },
        "{what}: {len} values in rows of {row_len}"
    );
}

/// Writes zeros into every value of `row` and returns it as the floats it now holds.
fn zeros(row: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    row.iter_mut().for_each(|v| _ = v.write(0.0));
    // SAFETY: every value of `row` was just written, and `MaybeUninit<f32>` has the layout of
    // `f32`.
    unsafe { &mut *(row as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Keeps freed large blocks in the malloc heap. glibc hands every freed block above its mmap
/// threshold back to the kernel, and the next allocation of that size page-faults and has the
/// kernel zero-fill it again; a training step allocates and frees its activations (megabytes
/// each) hundreds of times, and that page clearing took about 8% of a CPU training step
/// (perf, bnas-imagenet 8 x 16). 32 MiB is glibc's largest mmap threshold, so blocks above it
/// (an evaluation batch of 256 has 51 MB activations) are kept off mmap altogether, and the heap
/// is never trimmed: with both, `bnas train` (3 x 16, evaluating every epoch) had spent 40% of
/// its time in the kernel zero-filling pages (12 M page faults for one 10,000-image evaluation;
/// 0.2 M now, and the run 1.8x faster). The process keeps its peak heap (0.8 GB there).
fn keep_large_blocks_in_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only tunes glibc's allocator (under its own locks, so other threads
        // may run); both values are within its documented ranges.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
        });
    }
}

impl Cpu {
    /// A backend with `threads` worker threads (default: the available parallelism).
    pub fn new(threads: Option<usize>) -> anyhow::Result<Self> {
        keep_large_blocks_in_heap();
        let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("bnas-cpu-{i}"))
            .start_handler(|_| flush_denormals_on_this_thread())
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start the CPU backend's {threads} threads: {e}"))?;
        Ok(Self { pool, threads })
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(offset, chunk)` over chunks of `out`, in parallel when `out` is large.
    fn for_chunks<T: Send>(&self, out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync + Send) {
        if out.len() < PAR_MIN_LEN || self.threads == 1 {
            f(0, out);
        } else {
            self.pool
                .install(|| out.par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(i, chunk)| f(i * PAR_CHUNK, chunk)));
        }
    }

    /// Runs `f(row_index, row)` over the `row_len`-long rows of `out`, in parallel when `out`
    /// is large.
    fn for_rows<T: Send>(&self, out: &mut [T], row_len: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
        if row_len == 0 {
            return;
        }
        if out.len() < PAR_MIN_LEN || self.threads == 1 {
            out.chunks_exact_mut(row_len).enumerate().for_each(|(r, row)| f(r, row));
        } else {
            let rows_per_chunk = (PAR_CHUNK / row_len).max(1);
            self.pool.install(|| {
                out.par_chunks_mut(rows_per_chunk * row_len).enumerate().for_each(|(i, chunk)| {
                    for (j, row) in chunk.chunks_exact_mut(row_len).enumerate() {
                        f(i * rows_per_chunk + j, row);
                    }
                })
            });
        }
    }

    /// Runs `f(row_index, row)` over the `row_len`-long rows of `out`, one task per row on
    /// the pool however short `out` is (rows of heavy work, such as a weight gradient's).
    fn for_each_row(&self, out: &mut [f32], row_len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
        if row_len == 0 {
            return;
        }
        if self.threads == 1 {
            out.chunks_exact_mut(row_len).enumerate().for_each(|(r, row)| f(r, row));
        } else {
            self.pool.install(|| out.par_chunks_mut(row_len).enumerate().for_each(|(r, row)| f(r, row)));
        }
    }

    /// `len` zeros, written by the pool's threads when the buffer is large. A step allocates its
    /// activations and gradients afresh (megabytes each); zeroed on the calling thread, they kept
    /// the pool idle for a sixth of a CPU training step.
    fn zeroed(&self, len: usize) -> Vec<f32> {
        if len < PAR_MIN_LEN || self.threads == 1 {
            return vec![0.0; len];
        }
        let mut out = Vec::with_capacity(len);
        self.pool.install(|| out.par_extend(rayon::iter::repeat_n(0.0f32, len).with_min_len(PAR_CHUNK)));
        out
    }

    /// A new buffer of `len` values whose `row_len`-long rows are each zeroed and then handed to
    /// `f(row_index, row)`, in parallel when the buffer is large: for rows that `f` adds into or
    /// only partly writes, zeroed by the task that fills them, while they are in its cache,
    /// rather than in a pass over the whole buffer of their own.
    fn new_zeroed_rows(&self, len: usize, row_len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) -> Vec<f32> {
        check_rows("new_zeroed_rows", len, row_len);
        let mut out = Vec::with_capacity(len);
        self.for_rows(&mut out.spare_capacity_mut()[..len], row_len, |r, row| f(r, zeros(row)));
        // SAFETY: the rows tile the first `len` values (none when `len` is 0), and each was
        // zeroed whole (a panic in the pool comes out of `install` before this line).
        unsafe { out.set_len(len) };
        out
    }

    /// A new buffer of `len` values in chunks of `chunk` (the last may be shorter), each zeroed
    /// and handed to `f(chunk_index, chunk)` as one task on the pool, as [`Cpu::new_zeroed_rows`]
    /// (one chunk per thread, for kernels that split their work by thread).
    fn new_zeroed_tasks(&self, len: usize, chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) -> Vec<f32> {
        let mut out = Vec::with_capacity(len);
        self.pool.install(|| {
            out.spare_capacity_mut()[..len].par_chunks_mut(chunk.max(1)).enumerate().for_each(|(t, c)| f(t, zeros(c)))
        });
        // SAFETY: the chunks tile the first `len` values, and each was zeroed whole (a panic in
        // the pool comes out of `install` before this line).
        unsafe { out.set_len(len) };
        out
    }

    /// A copy of `x`, made by the pool's threads when it is large.
    fn copied(&self, x: &[f32]) -> Vec<f32> {
        if x.len() < PAR_MIN_LEN || self.threads == 1 {
            return x.to_vec();
        }
        let mut out = Vec::with_capacity(x.len());
        self.pool.install(|| out.par_extend(x.par_iter().copied().with_min_len(PAR_CHUNK)));
        out
    }

    /// A new buffer of `len` values whose `row_len`-long rows are the values of `f(row_index)`,
    /// written once, in parallel when the buffer is large. Not zeroed first: zeroing a buffer
    /// that is then overwritten whole had taken about a tenth of a CPU training step. An
    /// iterator that does not give exactly `row_len` values is a bug, and panics.
    fn new_rows<I: ExactSizeIterator<Item = f32>>(
        &self,
        len: usize,
        row_len: usize,
        f: impl Fn(usize) -> I + Sync + Send,
    ) -> Vec<f32> {
        #[inline(always)]
        fn write(r: usize, row: &mut [MaybeUninit<f32>], values: impl ExactSizeIterator<Item = f32>) {
            let len = row.len();
            let wrong = || format!("new_rows: row {r} is not {len} values long");
            assert!(values.len() == len, "{}", wrong());
            // Counted as well, since the length an iterator reports is not a promise.
            let mut n = 0;
            for (o, v) in row.iter_mut().zip(values) {
                o.write(v);
                n += 1;
            }
            assert!(n == len, "{}", wrong());
        }
        check_rows("new_rows", len, row_len);
        // The loop compiled for AVX-512 F where the CPU has it (see `wide`).
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        fn write_avx512(r: usize, row: &mut [MaybeUninit<f32>], values: impl ExactSizeIterator<Item = f32>) {
            write(r, row, values)
        }
        #[cfg(target_arch = "x86_64")]
        let wide = wide();
        let mut out = Vec::with_capacity(len);
        self.for_rows(&mut out.spare_capacity_mut()[..len], row_len, |r, row| {
            #[cfg(target_arch = "x86_64")]
            if wide {
                // SAFETY: this CPU has AVX-512 F (`wide`).
                return unsafe { write_avx512(r, row, f(r)) };
            }
            write(r, row, f(r))
        });
        // SAFETY: every row was written whole (`write` panics otherwise, and a panic in the pool
        // comes out of `install` before this line), and the rows tile the first `len` values
        // (none when `len` is 0).
        unsafe { out.set_len(len) };
        out
    }

    /// The sum of `partial(t)` over `tasks` tasks run on the pool, each `len` values (zeros when
    /// there are none): the weight gradients' per-task partial sums.
    fn sum_of_tasks(&self, tasks: usize, len: usize, partial: impl Fn(usize) -> Vec<f32> + Sync + Send) -> Vec<f32> {
        let sum = self.pool.install(|| {
            (0..tasks).into_par_iter().map(partial).reduce_with(|mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            })
        });
        sum.unwrap_or_else(|| vec![0.0; len])
    }

    /// A new buffer of `len` values, each chunk zeroed and then filled by `f(offset, chunk)`
    /// inside its task, as [`Cpu::new_zeroed_rows`].
    fn fill(&self, len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) -> Vec<f32> {
        let mut out = Vec::with_capacity(len);
        self.for_chunks(&mut out.spare_capacity_mut()[..len], |off, chunk| f(off, zeros(chunk)));
        // SAFETY: the chunks tile the first `len` values, and each was zeroed whole (a panic in
        // the pool comes out of `install` before this line).
        unsafe { out.set_len(len) };
        out
    }
}

impl Backend for Cpu {
    type Buf = Vec<f32>;

    fn describe(&self) -> String {
        let s = if self.threads == 1 { "" } else { "s" };
        format!("cpu ({} thread{s}, {} binary convs)", self.threads, xnor::counter_name())
    }

    fn zeros(&self, len: usize) -> Vec<f32> {
        self.zeroed(len)
    }
    fn upload(&self, data: &[f32]) -> Vec<f32> {
        data.to_vec()
    }
    fn download(&self, buf: &Vec<f32>) -> Vec<f32> {
        buf.clone()
    }
    fn len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }
    fn copy(&self, buf: &Vec<f32>) -> Vec<f32> {
        self.copied(buf)
    }

    fn add(&self, a: &Vec<f32>, b: &Vec<f32>) -> Vec<f32> {
        elementwise::add(self, a, b)
    }
    fn axpy(&self, y: &mut Vec<f32>, alpha: f32, x: &Vec<f32>) {
        elementwise::axpy(self, y, alpha, x)
    }
    fn scale(&self, x: &Vec<f32>, alpha: f32) -> Vec<f32> {
        elementwise::scale(self, x, alpha)
    }
    fn scale_by_elem(&self, x: &Vec<f32>, s: &Vec<f32>, i: usize) -> Vec<f32> {
        elementwise::scale(self, x, s[i])
    }
    fn relu(&self, x: &Vec<f32>) -> Vec<f32> {
        elementwise::relu(self, x)
    }
    fn relu_bwd(&self, y: &Vec<f32>, dy: &Vec<f32>) -> Vec<f32> {
        elementwise::relu_bwd(self, y, dy)
    }
    fn sign(&self, x: &Vec<f32>) -> Vec<f32> {
        elementwise::sign(self, x)
    }
    fn sign_ste_bwd(&self, x: &Vec<f32>, dy: &Vec<f32>) -> Vec<f32> {
        elementwise::sign_ste_bwd(self, x, dy)
    }
    fn channel_affine(&self, x: &Vec<f32>, s: &Vec<f32>, b: Option<&Vec<f32>>, g: ChanGeom) -> Vec<f32> {
        elementwise::channel_affine(self, x, s, b.map(|b| b.as_slice()), g)
    }
    fn sample_scale(&self, x: &Vec<f32>, s: &Vec<f32>, g: ChanGeom) -> Vec<f32> {
        elementwise::sample_scale(self, x, s, g)
    }

    fn channel_sum(&self, x: &Vec<f32>, g: ChanGeom) -> Vec<f32> {
        elementwise::channel_sum(x, g)
    }
    fn dots(&self, xs: &[&Vec<f32>], y: &Vec<f32>) -> Vec<f32> {
        xs.iter().map(|x| elementwise::dot(self, x, y) as f32).collect()
    }
    fn sum_squares(&self, xs: &[&Vec<f32>]) -> Vec<f32> {
        vec![xs.iter().map(|x| elementwise::dot(self, x, x)).sum::<f64>() as f32]
    }

    fn weighted_sum(&self, xs: &[&Vec<f32>], w: &Vec<f32>) -> Vec<f32> {
        elementwise::weighted_sum(self, xs, w)
    }
    fn concat_channels(&self, xs: &[&Vec<f32>], chans: &[usize], n: usize, hw: usize) -> Vec<f32> {
        elementwise::concat_channels(self, xs, chans, n, hw)
    }
    fn slice_channels(&self, x: &Vec<f32>, n: usize, c_total: usize, hw: usize, offset: usize, c: usize) -> Vec<f32> {
        elementwise::slice_channels(self, x, n, c_total, hw, offset, c)
    }
    fn add_channels(
        &self,
        acc: &mut Vec<f32>,
        x: &Vec<f32>,
        n: usize,
        c_total: usize,
        hw: usize,
        offset: usize,
        c: usize,
    ) {
        elementwise::add_channels(acc, x, n, c_total, hw, offset, c)
    }

    fn conv2d(&self, x: &Vec<f32>, w: &Vec<f32>, bias: Option<&Vec<f32>>, g: ConvGeom) -> Vec<f32> {
        conv::forward(self, x, w, bias.map(|b| b.as_slice()), g)
    }
    fn sign_conv2d(&self, x: &Vec<f32>, w: &Vec<f32>, scale: &Vec<f32>, g: ConvGeom) -> Vec<f32> {
        if xnor::supported(&g) {
            xnor::sign_conv(self, x, w, Some(scale), g)
        } else {
            let og = ChanGeom { n: g.n, c: g.c_out, hw: g.out_h() * g.out_w() };
            self.relu(&self.channel_affine(&conv::forward(self, x, w, None, g), scale, None, og))
        }
    }
    fn conv2d_bwd_data(&self, dy: &Vec<f32>, w: &Vec<f32>, g: ConvGeom) -> Vec<f32> {
        conv::backward_data(self, dy, w, g)
    }
    fn conv2d_bwd_weight(&self, dy: &Vec<f32>, x: &Vec<f32>, g: ConvGeom) -> Vec<f32> {
        conv::backward_weight(self, dy, x, g)
    }
    /// Sums by sign pattern for `k x k` kernels (2.0-2.8x the im2col + dot products path at the
    /// binary convs' shapes, `bench_sign_dw`); a 1x1 conv's input is its own column matrix, and
    /// the products are faster there.
    fn sign_conv2d_bwd_weight(&self, dy: &Vec<f32>, x: &Vec<f32>, g: ConvGeom) -> Vec<f32> {
        if g.k > 1 && sign_dw::available() {
            sign_dw::backward_weight(self, dy, x, g)
        } else {
            conv::backward_weight(self, dy, x, g)
        }
    }
    fn dwconv2d(&self, x: &Vec<f32>, w: &Vec<f32>, g: ConvGeom) -> Vec<f32> {
        depthwise::forward(self, x, w, g)
    }
    fn dwconv2d_bwd_data(&self, dy: &Vec<f32>, w: &Vec<f32>, g: ConvGeom) -> Vec<f32> {
        depthwise::backward_data(self, dy, w, g)
    }
    fn dwconv2d_bwd_weight(&self, dy: &Vec<f32>, x: &Vec<f32>, g: ConvGeom) -> Vec<f32> {
        depthwise::backward_weight(self, dy, x, g)
    }
    fn matmul(&self, a: &Vec<f32>, b: &Vec<f32>, g: MatGeom) -> Vec<f32> {
        dense::matmul(self, a, b, g)
    }
    fn add_row_bias(&self, x: &Vec<f32>, b: &Vec<f32>, rows: usize, cols: usize) -> Vec<f32> {
        dense::add_row_bias(x, b, rows, cols)
    }
    fn sum_rows(&self, x: &Vec<f32>, rows: usize, cols: usize) -> Vec<f32> {
        dense::sum_rows(x, rows, cols)
    }

    fn binarize_weights(&self, w: &Vec<f32>, c_out: usize, c_in: usize, kk: usize) -> BinWeights<Self> {
        let (centered, sign, beta) = dense::binarize_weights(w, c_out, c_in, kk);
        BinWeights { centered, sign, beta }
    }
    fn binarize_weights_bwd(
        &self,
        centered: &Vec<f32>,
        beta: &Vec<f32>,
        g: &Vec<f32>,
        c_out: usize,
        c_in: usize,
        kk: usize,
    ) -> Vec<f32> {
        dense::binarize_weights_bwd(centered, beta, g, c_out, c_in, kk)
    }

    fn batch_norm(
        &self,
        x: &Vec<f32>,
        gamma: Option<&Vec<f32>>,
        beta: Option<&Vec<f32>>,
        mode: BnMode<'_, Self>,
        eps: f32,
        g: ChanGeom,
    ) -> BnOut<Self> {
        let (y, mean, inv_std) = norm_pool::batch_norm(self, x, gamma, beta, mode, eps, g);
        BnOut { y, mean, inv_std }
    }
    fn batch_norm_bwd(
        &self,
        x: &Vec<f32>,
        dy: &Vec<f32>,
        mean: &Vec<f32>,
        inv_std: &Vec<f32>,
        gamma: Option<&Vec<f32>>,
        train: bool,
        g: ChanGeom,
    ) -> BnGrads<Self> {
        let (dx, dgamma, dbeta) =
            norm_pool::batch_norm_bwd(self, x, dy, mean, inv_std, gamma, norm_pool::Incoming::Output, train, g);
        BnGrads { dx, dgamma, dbeta }
    }
    fn batch_norm_sign_bwd(
        &self,
        x: &Vec<f32>,
        _y: &Vec<f32>,
        dy: &Vec<f32>,
        mean: &Vec<f32>,
        inv_std: &Vec<f32>,
        gamma: Option<&Vec<f32>>,
        beta: Option<&Vec<f32>>,
        train: bool,
        g: ChanGeom,
    ) -> BnGrads<Self> {
        let incoming = norm_pool::Incoming::Sign { beta };
        let (dx, dgamma, dbeta) = norm_pool::batch_norm_bwd(self, x, dy, mean, inv_std, gamma, incoming, train, g);
        BnGrads { dx, dgamma, dbeta }
    }
    fn max_pool(&self, x: &Vec<f32>, g: PoolGeom) -> Vec<f32> {
        norm_pool::max_pool(self, x, g)
    }
    fn max_pool_bwd(&self, x: &Vec<f32>, dy: &Vec<f32>, g: PoolGeom) -> Vec<f32> {
        norm_pool::max_pool_bwd(self, x, dy, g)
    }
    fn avg_pool(&self, x: &Vec<f32>, g: PoolGeom) -> Vec<f32> {
        norm_pool::avg_pool(self, x, g)
    }
    fn avg_pool_bwd(&self, dy: &Vec<f32>, g: PoolGeom) -> Vec<f32> {
        norm_pool::avg_pool_bwd(self, dy, g)
    }
    fn global_avg_pool(&self, x: &Vec<f32>, g: ChanGeom) -> Vec<f32> {
        norm_pool::global_avg_pool(x, g)
    }
    fn global_avg_pool_bwd(&self, dy: &Vec<f32>, g: ChanGeom) -> Vec<f32> {
        norm_pool::global_avg_pool_bwd(dy, g)
    }

    fn softmax_xent(
        &self,
        logits: &Vec<f32>,
        labels: &Vec<f32>,
        rows: usize,
        classes: usize,
        smoothing: f32,
    ) -> (Vec<f32>, Vec<f32>) {
        loss_optim::softmax_xent(logits, labels, rows, classes, smoothing)
    }
    fn softmax_rows(&self, x: &Vec<f32>, rows: usize, k: usize) -> Vec<f32> {
        loss_optim::softmax_rows(x, rows, k)
    }
    fn softmax_rows_bwd(&self, y: &Vec<f32>, dy: &Vec<f32>, rows: usize, k: usize) -> Vec<f32> {
        loss_optim::softmax_rows_bwd(y, dy, rows, k)
    }
    fn softmax_entropy(&self, alpha: &Vec<f32>, rows: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
        loss_optim::softmax_entropy(alpha, rows, k)
    }

    fn sgd_step(&self, p: &mut Vec<f32>, grad: &Vec<f32>, momentum_buf: &mut Vec<f32>, grad_scale: f32, h: SgdStep) {
        loss_optim::sgd_step(self, p, grad, momentum_buf, grad_scale, h)
    }
    fn adam_step(
        &self,
        p: &mut Vec<f32>,
        grad: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
        grad_scale: f32,
        h: AdamStep,
    ) {
        loss_optim::adam_step(self, p, grad, m, v, grad_scale, h)
    }
}
