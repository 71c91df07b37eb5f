//! The primitive set every backend implements: the contract between the autodiff layer
//! (`tape`, `ops`) and the kernels (`cpu`, `gpu`).
//!
//! All buffers hold f32, row-major. Geometry arguments are already checked by the caller
//! (`ops`), so implementations may assume consistent lengths (they may `debug_assert!`).
//! Every method returns new buffers unless it takes `&mut`. Class labels are passed as f32
//! buffers holding small integers.
//!
//! Conventions shared by both backends (the device crate and the export rely on them):
//! - `sign(x)` is `+1` when `x >= 0` (including `-0.0`) and `-1` otherwise: a bit has no 0.
//! - Zero padding of convolutions contributes 0 (padded taps are masked, not `-1`).
//! - Max-pool ties pick the first maximum in row-major window order; padded cells are skipped.
//! - Average pool divides by the number of non-padded cells in the window.

use super::geom::{ChanGeom, ConvGeom, MatGeom, PoolGeom};

/// Batch-norm mode: training uses (and returns) batch statistics and updates the running
/// statistics in place; eval uses the running statistics.
pub enum BnMode<'a, B: Backend + ?Sized> {
    /// `momentum` as in PyTorch (0.1): `running = (1 - m) * running + m * batch`; the running
    /// variance is updated with the unbiased batch variance.
    Train {
        running_mean: &'a mut B::Buf,
        running_var: &'a mut B::Buf,
        momentum: f32,
    },
    Eval {
        running_mean: &'a B::Buf,
        running_var: &'a B::Buf,
    },
}

/// What a batch-norm forward returns: the output and the per-channel statistics it used.
pub struct BnOut<B: Backend + ?Sized> {
    /// `[n, c, hw]`.
    pub y: B::Buf,
    /// `[c]`: the mean used (batch mean in training, running mean in eval).
    pub mean: B::Buf,
    /// `[c]`: `1 / sqrt(var + eps)` for the variance used (biased batch variance in training).
    pub inv_std: B::Buf,
}

/// Gradients of a batch norm.
pub struct BnGrads<B: Backend + ?Sized> {
    pub dx: B::Buf,
    /// `[c]`, present when the batch norm is affine.
    pub dgamma: Option<B::Buf>,
    pub dbeta: Option<B::Buf>,
}

/// The binarized form of a latent weight tensor `[c_out, c_in, k, k]`.
pub struct BinWeights<B: Backend + ?Sized> {
    /// The latent weights after centring over the input-channel axis and clamping to [-1, 1]
    /// (the reference writes these back into the latent weights before each forward).
    pub centered: B::Buf,
    /// `sign(centered)`: +-1, same shape.
    pub sign: B::Buf,
    /// `[c_out]`: `mean(|centered|)` over each filter (`n = c_in * k * k` values).
    pub beta: B::Buf,
}

/// Hyper-parameters of one optimizer step (learning rate already scheduled).
#[derive(Debug, Clone, Copy)]
pub struct SgdStep {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
}

#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// L2 penalty added to the gradient (PyTorch `Adam(weight_decay=..)`, not AdamW).
    pub weight_decay: f32,
    /// 1-based step count, for bias correction.
    pub t: u32,
}

/// The kernels. `Cpu` (threads over a GEMM crate) and `Gpu` (WGSL through wgpu) implement it
/// identically up to float rounding; tests hold them to 1e-4 relative.
pub trait Backend: Send + Sync + 'static {
    /// A device buffer of f32.
    type Buf: Send + Sync;

    /// Human-readable description: `cpu (2 threads)` or `gpu: NVIDIA H200 (Vulkan)`.
    fn describe(&self) -> String;

    // ---- memory -------------------------------------------------------------------------
    fn zeros(&self, len: usize) -> Self::Buf;
    fn upload(&self, data: &[f32]) -> Self::Buf;
    /// Reads a buffer back to the host (on the GPU this submits pending work and waits).
    fn download(&self, buf: &Self::Buf) -> Vec<f32>;
    fn len(&self, buf: &Self::Buf) -> usize;
    fn copy(&self, buf: &Self::Buf) -> Self::Buf;

    // ---- element-wise -------------------------------------------------------------------
    /// `a + b`.
    fn add(&self, a: &Self::Buf, b: &Self::Buf) -> Self::Buf;
    /// `y += alpha * x` in place (gradient accumulation).
    fn axpy(&self, y: &mut Self::Buf, alpha: f32, x: &Self::Buf);
    /// `alpha * x`.
    fn scale(&self, x: &Self::Buf, alpha: f32) -> Self::Buf;
    /// `x * s[i]`: scales all of `x` by element `i` of the buffer `s` (mixed-op weights).
    fn scale_by_elem(&self, x: &Self::Buf, s: &Self::Buf, i: usize) -> Self::Buf;
    /// `max(x, 0)`.
    fn relu(&self, x: &Self::Buf) -> Self::Buf;
    /// `dy * (y > 0)`; `y` is the ReLU's output.
    fn relu_bwd(&self, y: &Self::Buf, dy: &Self::Buf) -> Self::Buf;
    /// `sign(x)` as +-1 (see the module conventions).
    fn sign(&self, x: &Self::Buf) -> Self::Buf;
    /// Clipped straight-through estimator: `dy * (|x| < 1)`.
    fn sign_ste_bwd(&self, x: &Self::Buf, dy: &Self::Buf) -> Self::Buf;
    /// `y[n, c, i] = x[n, c, i] * s[c]` (+ `b[c]` when given).
    fn channel_affine(&self, x: &Self::Buf, s: &Self::Buf, b: Option<&Self::Buf>, g: ChanGeom) -> Self::Buf;
    /// `y[n, c, i] = x[n, c, i] * s[n]` with `g.c * g.hw` values per sample (drop-path).
    fn sample_scale(&self, x: &Self::Buf, s: &Self::Buf, g: ChanGeom) -> Self::Buf;

    // ---- reductions ---------------------------------------------------------------------
    /// `[c]`: sum over n and hw of `x[n, c, i]` (bias gradients).
    fn channel_sum(&self, x: &Self::Buf, g: ChanGeom) -> Self::Buf;
    /// `[k]`: `out[j] = sum_i xs[j][i] * y[i]` (gradients of the mixed-op weights).
    fn dots(&self, xs: &[&Self::Buf], y: &Self::Buf) -> Self::Buf;
    /// `[1]`: sum of squares of every element of every buffer (gradient-norm clipping).
    fn sum_squares(&self, xs: &[&Self::Buf]) -> Self::Buf;

    // ---- mixed op, concat ---------------------------------------------------------------
    /// `sum_j w[j] * xs[j]` (all `xs` the same length, `w` has `xs.len()` elements).
    fn weighted_sum(&self, xs: &[&Self::Buf], w: &Self::Buf) -> Self::Buf;
    /// Concatenates `[n, c_j, hw]` tensors along channels into `[n, sum c_j, hw]`.
    fn concat_channels(&self, xs: &[&Self::Buf], chans: &[usize], n: usize, hw: usize) -> Self::Buf;
    /// Channels `[offset, offset + c)` of a `[n, c_total, hw]` tensor.
    fn slice_channels(&self, x: &Self::Buf, n: usize, c_total: usize, hw: usize, offset: usize, c: usize) -> Self::Buf;
    /// `acc[:, offset..offset + c] += x` for `acc` `[n, c_total, hw]` and `x` `[n, c, hw]` (the
    /// gradient of a channel slice, added in place).
    #[allow(clippy::too_many_arguments)]
    fn add_channels(
        &self,
        acc: &mut Self::Buf,
        x: &Self::Buf,
        n: usize,
        c_total: usize,
        hw: usize,
        offset: usize,
        c: usize,
    );

    // ---- convolution, matrix product ------------------------------------------------------
    /// `y = conv(x, w) (+ bias)`; x `[n, c_in, h, w]`, w `[c_out, c_in, k, k]`, bias `[c_out]`.
    fn conv2d(&self, x: &Self::Buf, w: &Self::Buf, bias: Option<&Self::Buf>, g: ConvGeom) -> Self::Buf;
    /// The binary conv's output `relu(scale[o] * conv2d(x, w))`, `scale` `[c_out]`, where every
    /// value of `x` and `w` is +1 or -1 (signs). A backend may count the conv with XNOR and
    /// popcount; its sums are integers, so the result must equal this default's exactly.
    fn sign_conv2d(&self, x: &Self::Buf, w: &Self::Buf, scale: &Self::Buf, g: ConvGeom) -> Self::Buf {
        let og = ChanGeom { n: g.n, c: g.c_out, hw: g.out_h() * g.out_w() };
        self.relu(&self.channel_affine(&self.conv2d(x, w, None, g), scale, None, og))
    }
    /// Gradient w.r.t. the input, `[n, c_in, h, w]`.
    fn conv2d_bwd_data(&self, dy: &Self::Buf, w: &Self::Buf, g: ConvGeom) -> Self::Buf;
    /// Gradient w.r.t. the weights, `[c_out, c_in, k, k]`.
    fn conv2d_bwd_weight(&self, dy: &Self::Buf, x: &Self::Buf, g: ConvGeom) -> Self::Buf;
    /// The weight gradient of `sign_conv2d`'s conv, where every value of `x` is +1 or -1 (the
    /// signs it read): this default's result, up to the order of the sums. A backend may sum `dy`
    /// by the signs' patterns instead of multiplying.
    fn sign_conv2d_bwd_weight(&self, dy: &Self::Buf, x: &Self::Buf, g: ConvGeom) -> Self::Buf {
        self.conv2d_bwd_weight(dy, x, g)
    }
    /// Depthwise conv: one `k x k` filter per channel, `w` `[c, 1, k, k]`, `g.c_in == g.c_out`,
    /// no bias (the depthwise half of a binary separable conv).
    fn dwconv2d(&self, x: &Self::Buf, w: &Self::Buf, g: ConvGeom) -> Self::Buf;
    /// Gradient of `dwconv2d` w.r.t. the input, `[n, c, h, w]`.
    fn dwconv2d_bwd_data(&self, dy: &Self::Buf, w: &Self::Buf, g: ConvGeom) -> Self::Buf;
    /// Gradient of `dwconv2d` w.r.t. the weights, `[c, 1, k, k]`.
    fn dwconv2d_bwd_weight(&self, dy: &Self::Buf, x: &Self::Buf, g: ConvGeom) -> Self::Buf;
    /// `C = op(A) op(B)`, `[m, n]` (see `MatGeom`).
    fn matmul(&self, a: &Self::Buf, b: &Self::Buf, g: MatGeom) -> Self::Buf;
    /// `y[r, j] = x[r, j] + b[j]` for a `[rows, cols]` matrix.
    fn add_row_bias(&self, x: &Self::Buf, b: &Self::Buf, rows: usize, cols: usize) -> Self::Buf;
    /// `[cols]`: column sums of a `[rows, cols]` matrix.
    fn sum_rows(&self, x: &Self::Buf, rows: usize, cols: usize) -> Self::Buf;

    // ---- binary weights -----------------------------------------------------------------
    /// Centre over the input-channel axis, clamp to [-1, 1], take sign and per-filter beta
    /// (bnas-method.md, "Binarization"). `w` is `[c_out, c_in, k, k]` with `kk = k * k`.
    /// A depthwise filter (`c_in == 1`) has no channel axis to centre over: it is only clamped.
    fn binarize_weights(&self, w: &Self::Buf, c_out: usize, c_in: usize, kk: usize) -> BinWeights<Self>;
    /// The reference's weight gradient. `centered` and `beta` come from `binarize_weights`,
    /// `g` is dL/dW_b for `W_b = sign * beta`:
    /// `dW = (beta * 1{|W| <= 1} * g + sign(W) * mean_filter(sign(W) * g)) * (1 - 1/c_in) * n`,
    /// with `n = c_in * kk`; the factor `(1 - 1/c_in)` (the centring's derivative) is 1 when
    /// `c_in == 1`.
    fn binarize_weights_bwd(
        &self,
        centered: &Self::Buf,
        beta: &Self::Buf,
        g: &Self::Buf,
        c_out: usize,
        c_in: usize,
        kk: usize,
    ) -> Self::Buf;

    // ---- batch norm, pooling ------------------------------------------------------------
    /// Batch norm over `[n, c, hw]` with `eps`; `gamma`/`beta` `[c]` when affine.
    fn batch_norm(
        &self,
        x: &Self::Buf,
        gamma: Option<&Self::Buf>,
        beta: Option<&Self::Buf>,
        mode: BnMode<'_, Self>,
        eps: f32,
        g: ChanGeom,
    ) -> BnOut<Self>;
    /// Backward of `batch_norm`; `train` tells whether batch statistics were used (their
    /// gradient terms are then included).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_bwd(
        &self,
        x: &Self::Buf,
        dy: &Self::Buf,
        mean: &Self::Buf,
        inv_std: &Self::Buf,
        gamma: Option<&Self::Buf>,
        train: bool,
        g: ChanGeom,
    ) -> BnGrads<Self>;
    /// `batch_norm_bwd` of `sign_ste_bwd(y, dy)`: the gradient through `sign(batch_norm(x))`,
    /// `y` being the batch norm's output and `beta` its shift. A backend may fuse the two passes
    /// and recompute `y` from `x` (the CPU does, with the same bits).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_sign_bwd(
        &self,
        x: &Self::Buf,
        y: &Self::Buf,
        dy: &Self::Buf,
        mean: &Self::Buf,
        inv_std: &Self::Buf,
        gamma: Option<&Self::Buf>,
        _beta: Option<&Self::Buf>,
        train: bool,
        g: ChanGeom,
    ) -> BnGrads<Self> {
        self.batch_norm_bwd(x, &self.sign_ste_bwd(y, dy), mean, inv_std, gamma, train, g)
    }
    /// 3x3 max pool, padding 1.
    fn max_pool(&self, x: &Self::Buf, g: PoolGeom) -> Self::Buf;
    /// Routes `dy` to the (first) maximum of each window, recomputed from `x`.
    fn max_pool_bwd(&self, x: &Self::Buf, dy: &Self::Buf, g: PoolGeom) -> Self::Buf;
    /// 3x3 average pool, padding 1, padded cells not counted.
    fn avg_pool(&self, x: &Self::Buf, g: PoolGeom) -> Self::Buf;
    fn avg_pool_bwd(&self, dy: &Self::Buf, g: PoolGeom) -> Self::Buf;
    /// `[n, c]`: mean over hw.
    fn global_avg_pool(&self, x: &Self::Buf, g: ChanGeom) -> Self::Buf;
    fn global_avg_pool_bwd(&self, dy: &Self::Buf, g: ChanGeom) -> Self::Buf;

    // ---- losses -------------------------------------------------------------------------
    /// Softmax cross-entropy of `[rows, classes]` logits against `labels` `[rows]`, with label
    /// smoothing `eps` (target `1 - eps + eps/classes` on the label, `eps/classes` elsewhere).
    /// Returns (`[1]` mean loss, `[rows, classes]` gradient of the mean loss).
    fn softmax_xent(
        &self,
        logits: &Self::Buf,
        labels: &Self::Buf,
        rows: usize,
        classes: usize,
        smoothing: f32,
    ) -> (Self::Buf, Self::Buf);
    /// `[rows, k]` row-wise softmax.
    fn softmax_rows(&self, x: &Self::Buf, rows: usize, k: usize) -> Self::Buf;
    /// Backward of `softmax_rows` from its output `y` `[rows, k]`:
    /// `dx = y * (dy - sum_j y_j dy_j)` per row.
    fn softmax_rows_bwd(&self, y: &Self::Buf, dy: &Self::Buf, rows: usize, k: usize) -> Self::Buf;
    /// Mean over rows of the entropy `-sum p log p` of `softmax(alpha[r, :])`. Returns
    /// (`[1]` mean entropy, `[rows, k]` its gradient w.r.t. alpha).
    fn softmax_entropy(&self, alpha: &Self::Buf, rows: usize, k: usize) -> (Self::Buf, Self::Buf);

    // ---- optimizers (in place) ----------------------------------------------------------
    /// SGD with momentum and weight decay (PyTorch semantics: `g += wd * p; m = mu * m + g;
    /// p -= lr * m`). `grad_scale` multiplies the gradient first (gradient clipping).
    fn sgd_step(&self, p: &mut Self::Buf, grad: &Self::Buf, momentum_buf: &mut Self::Buf, grad_scale: f32, h: SgdStep);
    /// Adam (PyTorch semantics, L2 weight decay added to the gradient).
    fn adam_step(
        &self,
        p: &mut Self::Buf,
        grad: &Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
        grad_scale: f32,
        h: AdamStep,
    );
}
