//! `Backend` for `Gpu`: each primitive delegates to the family module owning its kernels.

use super::elementwise::{Binary, Unary};
use super::reduce::SumOf;
use super::{Gpu, GpuBuf};
use crate::engine::{
    AdamStep, Backend, BinWeights, BnGrads, BnMode, BnOut, ChanGeom, ConvGeom, MatGeom, PoolGeom, SgdStep,
};

impl Backend for Gpu {
    type Buf = GpuBuf;

    fn describe(&self) -> String {
        format!("gpu: {} ({:?})", self.info.name, self.info.backend)
    }

    fn zeros(&self, len: usize) -> GpuBuf {
        self.zeros_buf(len)
    }
    fn upload(&self, data: &[f32]) -> GpuBuf {
        self.upload_buf(data)
    }
    fn download(&self, buf: &GpuBuf) -> Vec<f32> {
        self.download_buf(buf)
    }
    fn len(&self, buf: &GpuBuf) -> usize {
        buf.len
    }
    fn copy(&self, buf: &GpuBuf) -> GpuBuf {
        self.copy_buf(buf)
    }

    fn add(&self, a: &GpuBuf, b: &GpuBuf) -> GpuBuf {
        self.binary(a, b, Binary::Add)
    }
    fn axpy(&self, y: &mut GpuBuf, alpha: f32, x: &GpuBuf) {
        self.axpy_in_place(y, alpha, x)
    }
    fn scale(&self, x: &GpuBuf, alpha: f32) -> GpuBuf {
        self.unary(x, Unary::Scale, alpha)
    }
    fn scale_by_elem(&self, x: &GpuBuf, s: &GpuBuf, i: usize) -> GpuBuf {
        self.chan_affine(x, Some((s, i)), None, x.len.max(1), 1)
    }
    fn relu(&self, x: &GpuBuf) -> GpuBuf {
        self.unary(x, Unary::Relu, 0.0)
    }
    fn relu_bwd(&self, y: &GpuBuf, dy: &GpuBuf) -> GpuBuf {
        self.binary(y, dy, Binary::ReluBwd)
    }
    fn sign(&self, x: &GpuBuf) -> GpuBuf {
        self.unary(x, Unary::Sign, 0.0)
    }
    fn sign_ste_bwd(&self, x: &GpuBuf, dy: &GpuBuf) -> GpuBuf {
        self.binary(x, dy, Binary::SteBwd)
    }
    fn channel_affine(&self, x: &GpuBuf, s: &GpuBuf, b: Option<&GpuBuf>, g: ChanGeom) -> GpuBuf {
        self.chan_affine(x, Some((s, 0)), b, g.hw, g.c)
    }
    fn sample_scale(&self, x: &GpuBuf, s: &GpuBuf, g: ChanGeom) -> GpuBuf {
        self.chan_affine(x, Some((s, 0)), None, g.c * g.hw, g.n)
    }

    fn channel_sum(&self, x: &GpuBuf, g: ChanGeom) -> GpuBuf {
        self.channel_sum_scaled(x, g.n, g.c, g.hw, 1.0)
    }
    fn dots(&self, xs: &[&GpuBuf], y: &GpuBuf) -> GpuBuf {
        self.sums_per_buffer(xs, Some(y), SumOf::Product)
    }
    fn sum_squares(&self, xs: &[&GpuBuf]) -> GpuBuf {
        self.sum_all(xs, SumOf::Square)
    }

    fn weighted_sum(&self, xs: &[&GpuBuf], w: &GpuBuf) -> GpuBuf {
        let Some((first, rest)) = xs.split_first() else {
            return self.zeros_buf(0);
        };
        let y = self.chan_affine(first, Some((w, 0)), None, first.len.max(1), 1);
        for (j, x) in rest.iter().enumerate() {
            self.axpy_elem(&y, w, j + 1, x);
        }
        y
    }
    fn concat_channels(&self, xs: &[&GpuBuf], chans: &[usize], n: usize, hw: usize) -> GpuBuf {
        let total: usize = chans.iter().sum();
        let y = self.alloc(n * total * hw);
        let mut off = 0;
        for (x, &c) in xs.iter().zip(chans) {
            self.channel_block(false, x, &y, n, c, hw, (c, 0), (total, off));
            off += c;
        }
        y
    }
    fn slice_channels(&self, x: &GpuBuf, n: usize, c_total: usize, hw: usize, offset: usize, c: usize) -> GpuBuf {
        let y = self.alloc(n * c * hw);
        self.channel_block(false, x, &y, n, c, hw, (c_total, offset), (c, 0));
        y
    }
    fn add_channels(&self, acc: &mut GpuBuf, x: &GpuBuf, n: usize, c_total: usize, hw: usize, offset: usize, c: usize) {
        self.channel_block(true, x, acc, n, c, hw, (c, 0), (c_total, offset));
    }

    fn conv2d(&self, x: &GpuBuf, w: &GpuBuf, bias: Option<&GpuBuf>, g: ConvGeom) -> GpuBuf {
        self.conv_pass(super::conv::ConvPass::Forward, w, x, bias, g)
    }
    fn conv2d_bwd_data(&self, dy: &GpuBuf, w: &GpuBuf, g: ConvGeom) -> GpuBuf {
        self.conv_pass(super::conv::ConvPass::BwdData, w, dy, None, g)
    }
    fn conv2d_bwd_weight(&self, dy: &GpuBuf, x: &GpuBuf, g: ConvGeom) -> GpuBuf {
        self.conv_pass(super::conv::ConvPass::BwdWeight, dy, x, None, g)
    }
    fn dwconv2d(&self, x: &GpuBuf, w: &GpuBuf, g: ConvGeom) -> GpuBuf {
        self.depthwise_fwd(x, w, g)
    }
    fn dwconv2d_bwd_data(&self, dy: &GpuBuf, w: &GpuBuf, g: ConvGeom) -> GpuBuf {
        self.depthwise_bwd_data(dy, w, g)
    }
    fn dwconv2d_bwd_weight(&self, dy: &GpuBuf, x: &GpuBuf, g: ConvGeom) -> GpuBuf {
        self.depthwise_bwd_weight(dy, x, g)
    }
    fn matmul(&self, a: &GpuBuf, b: &GpuBuf, g: MatGeom) -> GpuBuf {
        self.gemm(a, b, g)
    }
    fn add_row_bias(&self, x: &GpuBuf, b: &GpuBuf, _rows: usize, cols: usize) -> GpuBuf {
        self.chan_affine(x, None, Some(b), 1, cols)
    }
    fn sum_rows(&self, x: &GpuBuf, rows: usize, cols: usize) -> GpuBuf {
        self.channel_sum_scaled(x, rows, cols, 1, 1.0)
    }

    fn binarize_weights(&self, w: &GpuBuf, c_out: usize, c_in: usize, kk: usize) -> BinWeights<Self> {
        self.binarize(w, c_out, c_in, kk)
    }
    fn binarize_weights_bwd(
        &self,
        centered: &GpuBuf,
        beta: &GpuBuf,
        g: &GpuBuf,
        c_out: usize,
        c_in: usize,
        kk: usize,
    ) -> GpuBuf {
        self.binarize_grad(centered, beta, g, c_out, c_in, kk)
    }

    fn batch_norm(
        &self,
        x: &GpuBuf,
        gamma: Option<&GpuBuf>,
        beta: Option<&GpuBuf>,
        mode: BnMode<'_, Self>,
        eps: f32,
        g: ChanGeom,
    ) -> BnOut<Self> {
        self.bn_forward(x, gamma, beta, mode, eps, g)
    }
    fn batch_norm_bwd(
        &self,
        x: &GpuBuf,
        dy: &GpuBuf,
        mean: &GpuBuf,
        inv_std: &GpuBuf,
        gamma: Option<&GpuBuf>,
        train: bool,
        g: ChanGeom,
    ) -> BnGrads<Self> {
        self.bn_backward(x, dy, mean, inv_std, gamma, train, g)
    }
    fn max_pool(&self, x: &GpuBuf, g: PoolGeom) -> GpuBuf {
        self.pool_fwd("max_pool", x, g)
    }
    fn max_pool_bwd(&self, x: &GpuBuf, dy: &GpuBuf, g: PoolGeom) -> GpuBuf {
        self.max_pool_grad(x, dy, g)
    }
    fn avg_pool(&self, x: &GpuBuf, g: PoolGeom) -> GpuBuf {
        self.pool_fwd("avg_pool", x, g)
    }
    fn avg_pool_bwd(&self, dy: &GpuBuf, g: PoolGeom) -> GpuBuf {
        self.avg_pool_grad(dy, g)
    }
    fn global_avg_pool(&self, x: &GpuBuf, g: ChanGeom) -> GpuBuf {
        self.channel_sum_scaled(x, 1, g.n * g.c, g.hw, 1.0 / g.hw as f32)
    }
    fn global_avg_pool_bwd(&self, dy: &GpuBuf, g: ChanGeom) -> GpuBuf {
        self.broadcast(dy, g.hw, 1.0 / g.hw as f32, g.len())
    }

    fn softmax_xent(
        &self,
        logits: &GpuBuf,
        labels: &GpuBuf,
        rows: usize,
        classes: usize,
        smoothing: f32,
    ) -> (GpuBuf, GpuBuf) {
        self.row_loss("xent_rows", logits, Some(labels), rows, classes, smoothing)
    }
    fn softmax_rows(&self, x: &GpuBuf, rows: usize, k: usize) -> GpuBuf {
        self.softmax(x, rows, k)
    }
    fn softmax_rows_bwd(&self, y: &GpuBuf, dy: &GpuBuf, rows: usize, k: usize) -> GpuBuf {
        self.softmax_bwd(y, dy, rows, k)
    }
    fn softmax_entropy(&self, alpha: &GpuBuf, rows: usize, k: usize) -> (GpuBuf, GpuBuf) {
        self.row_loss("entropy_rows", alpha, None, rows, k, 0.0)
    }

    fn sgd_step(&self, p: &mut GpuBuf, grad: &GpuBuf, momentum_buf: &mut GpuBuf, grad_scale: f32, h: SgdStep) {
        self.sgd(p, grad, momentum_buf, grad_scale, h)
    }
    fn adam_step(&self, p: &mut GpuBuf, grad: &GpuBuf, m: &mut GpuBuf, v: &mut GpuBuf, grad_scale: f32, h: AdamStep) {
        self.adam(p, grad, m, v, grad_scale, h)
    }
}
