//! Differentiable ops on the tape: each checks its shapes (an error names the op and the
//! shapes before any kernel runs), calls the backend's forward primitives and records the
//! backward in terms of the backend's backward primitives.

use super::backend::{Backend, BnMode};
use super::geom::{ChanGeom, ConvGeom, MatGeom, PoolGeom, ShapeError};
use super::params::ParamId;
use super::tape::{ChannelSlice, Tape, Value, Var};

/// Batch-norm momentum (PyTorch default) and epsilon.
pub const BN_MOMENTUM: f32 = 0.1;
pub const BN_EPS: f32 = 1e-5;

pub type OpResult = Result<Var, ShapeError>;

/// Statistics a batch norm uses: batch statistics (updating the running ones) or running.
pub enum BnStats<'a, B: Backend> {
    Train { mean: &'a mut B::Buf, var: &'a mut B::Buf },
    Eval { mean: &'a B::Buf, var: &'a B::Buf },
}

/// How a binary conv turns its input into signs: through a training-mode batch norm, or
/// through the per-channel threshold `x * flip >= thr` that evaluation and every export share.
pub enum SignInput<'a, B: Backend> {
    Train { gamma: Option<ParamId>, beta: Option<ParamId>, mean: &'a mut B::Buf, var: &'a mut B::Buf },
    Threshold { flip: &'a B::Buf, neg_thr: &'a B::Buf },
}

/// Kernel, stride, padding and dilation of a conv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub dil: usize,
}

fn image_dims(op: &'static str, shape: &[usize]) -> Result<[usize; 4], ShapeError> {
    match shape {
        &[n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(ShapeError::new(op, format!("expected an [N, C, H, W] input, got {shape:?}"))),
    }
}

fn chan_geom(op: &'static str, shape: &[usize]) -> Result<ChanGeom, ShapeError> {
    let [n, c, h, w] = image_dims(op, shape)?;
    Ok(ChanGeom { n, c, hw: h * w })
}

impl<'p, B: Backend> Tape<'p, B> {
    fn param_value(&self, id: ParamId) -> &'p B::Buf {
        &self.params.get(id).value
    }

    fn check_param(&self, op: &'static str, id: ParamId, want: &[usize]) -> Result<(), ShapeError> {
        let p = self.params.get(id);
        if p.shape != want {
            return Err(ShapeError::new(
                op,
                format!("parameter {} has shape {:?}, expected {want:?}", p.name, p.shape),
            ));
        }
        Ok(())
    }

    fn conv_geom(&self, op: &'static str, x: Var, c_out: usize, s: ConvSpec) -> Result<ConvGeom, ShapeError> {
        let [n, c_in, h, w] = image_dims(op, self.shape(x))?;
        let g = ConvGeom { n, c_in, h, w, c_out, k: s.k, stride: s.stride, pad: s.pad, dil: s.dil };
        g.check().map_err(|e| ShapeError::new(op, e.detail))?;
        Ok(g)
    }

    /// Full-precision conv: `x [N, C_in, H, W]`, weight `[C_out, C_in, k, k]`, optional bias.
    pub fn conv2d(&mut self, x: Var, w: ParamId, bias: Option<ParamId>, s: ConvSpec) -> OpResult {
        let c_out = self.params.get(w).shape.first().copied().unwrap_or(0);
        let g = self.conv_geom("conv2d", x, c_out, s)?;
        self.check_param("conv2d", w, &[c_out, g.c_in, s.k, s.k])?;
        if let Some(b) = bias {
            self.check_param("conv2d", b, &[c_out])?;
        }
        let b = self.backend;
        let wv = self.param_value(w);
        let y = b.conv2d(self.value(x), wv, bias.map(|id| self.param_value(id)), g);
        let wvar = self.param(w);
        let bvar = bias.map(|id| self.param(id));
        let back = Box::new(move |b: &B, t: &Tape<'p, B>, ref dy: B::Buf| {
            let mut out = Vec::new();
            if t.needs_grad(x) {
                out.push((x, b.conv2d_bwd_data(dy, wv, g)));
            }
            if t.needs_grad(wvar) {
                out.push((wvar, b.conv2d_bwd_weight(dy, t.value(x), g)));
            }
            if let Some(bv) = bvar.filter(|&v| t.needs_grad(v)) {
                out.push((bv, b.channel_sum(dy, ChanGeom { n: g.n, c: g.c_out, hw: g.out_h() * g.out_w() })));
            }
            out
        });
        let mut inputs = vec![x, wvar];
        inputs.extend(bvar);
        Ok(self.op(y, vec![g.n, g.c_out, g.out_h(), g.out_w()], &inputs, back))
    }

    /// The fused binary conv of bnas-method.md: `BN -> sign (clipped STE) -> conv with XNOR
    /// weights -> ReLU`, computed as `relu(beta[o] * conv(sign(x), sign(W)))` so that every
    /// partial sum is an exact integer, like the popcount kernels'. `w` must be a binary
    /// parameter whose binarized form was refreshed for this pass.
    pub fn bin_conv(&mut self, x: Var, w: ParamId, sign_in: SignInput<'_, B>, s: ConvSpec) -> OpResult {
        self.bin_conv_impl(x, w, sign_in, s, false)
    }

    /// The depthwise form of `bin_conv` (one binary `k x k` filter per channel, weight
    /// `[C, 1, k, k]`): the depthwise half of a binary separable conv.
    pub fn bin_dwconv(&mut self, x: Var, w: ParamId, sign_in: SignInput<'_, B>, s: ConvSpec) -> OpResult {
        self.bin_conv_impl(x, w, sign_in, s, true)
    }

    fn bin_conv_impl(
        &mut self,
        x: Var,
        w: ParamId,
        sign_in: SignInput<'_, B>,
        s: ConvSpec,
        depthwise: bool,
    ) -> OpResult {
        let op = if depthwise { "bin_dwconv" } else { "bin_conv" };
        let c_out = self.params.get(w).shape.first().copied().unwrap_or(0);
        let g = self.conv_geom(op, x, c_out, s)?;
        let c_w = if depthwise { 1 } else { g.c_in };
        if depthwise && c_out != g.c_in {
            return Err(ShapeError::new(op, format!("{c_out} filters for {} input channels", g.c_in)));
        }
        self.check_param(op, w, &[c_out, c_w, s.k, s.k])?;
        let cg = ChanGeom { n: g.n, c: g.c_in, hw: g.h * g.w };
        let b = self.backend;
        let bw = self.params.binarized(w);
        let (xb, saved) = match sign_in {
            SignInput::Train { gamma, beta, mean, var } => {
                for id in [gamma, beta].into_iter().flatten() {
                    self.check_param(op, id, &[g.c_in])?;
                }
                let mode = BnMode::Train { running_mean: mean, running_var: var, momentum: self.bn_momentum };
                let bn = b.batch_norm(
                    self.value(x),
                    gamma.map(|id| self.param_value(id)),
                    beta.map(|id| self.param_value(id)),
                    mode,
                    BN_EPS,
                    cg,
                );
                (b.sign(&bn.y), Some((bn, gamma, beta)))
            }
            SignInput::Threshold { flip, neg_thr } => {
                (b.sign(&b.channel_affine(self.value(x), flip, Some(neg_thr), cg)), None)
            }
        };
        let y = if depthwise {
            let og = ChanGeom { n: g.n, c: g.c_out, hw: g.out_h() * g.out_w() };
            b.relu(&b.channel_affine(&b.dwconv2d(&xb, &bw.sign, g), &bw.beta, None, og))
        } else {
            b.sign_conv2d(&xb, &bw.sign, &bw.beta, g)
        };
        let Some((bn, gamma, beta)) = saved else {
            return Ok(self.push_node(Value::Owned(y), vec![g.n, g.c_out, g.out_h(), g.out_w()], None, None, false));
        };
        let wvar = self.param(w);
        let gvar = gamma.map(|id| self.param(id));
        let bvar = beta.map(|id| self.param(id));
        let latent = self.param_value(w);
        let kk = s.k * s.k;
        let out_shape = vec![g.n, g.c_out, g.out_h(), g.out_w()];
        let y_index = self.nodes.len();
        let back = Box::new(move |b: &B, t: &Tape<'p, B>, ref dy: B::Buf| {
            let y = t.value(Var(y_index));
            let da = b.relu_bwd(y, dy);
            let mut out = Vec::new();
            if t.needs_grad(wvar) {
                let g_wb =
                    if depthwise { b.dwconv2d_bwd_weight(&da, &xb, g) } else { b.sign_conv2d_bwd_weight(&da, &xb, g) };
                out.push((wvar, b.binarize_weights_bwd(latent, &bw.beta, &g_wb, c_out, c_w, kk)));
            }
            let wb = b.channel_affine(&bw.sign, &bw.beta, None, ChanGeom { n: 1, c: c_out, hw: c_w * kk });
            let dxb = if depthwise { b.dwconv2d_bwd_data(&da, &wb, g) } else { b.conv2d_bwd_data(&da, &wb, g) };
            let (gamma_v, beta_v) = (gamma.map(|id| &t.params.get(id).value), beta.map(|id| &t.params.get(id).value));
            let grads =
                b.batch_norm_sign_bwd(t.value(x), &bn.y, &dxb, &bn.mean, &bn.inv_std, gamma_v, beta_v, true, cg);
            if t.needs_grad(x) {
                out.push((x, grads.dx));
            }
            if let (Some(v), Some(d)) = (gvar, grads.dgamma) {
                out.push((v, d));
            }
            if let (Some(v), Some(d)) = (bvar, grads.dbeta) {
                out.push((v, d));
            }
            out
        });
        let mut inputs = vec![x, wvar];
        inputs.extend(gvar);
        inputs.extend(bvar);
        Ok(self.op(y, out_shape, &inputs, back))
    }

    /// Batch norm over `[N, C, H, W]`, affine when `gamma`/`beta` are given.
    pub fn batch_norm(
        &mut self,
        x: Var,
        gamma: Option<ParamId>,
        beta: Option<ParamId>,
        stats: BnStats<'_, B>,
    ) -> OpResult {
        let cg = chan_geom("batch_norm", self.shape(x))?;
        for id in [gamma, beta].into_iter().flatten() {
            self.check_param("batch_norm", id, &[cg.c])?;
        }
        let b = self.backend;
        let train = matches!(stats, BnStats::Train { .. });
        let mode = match stats {
            BnStats::Train { mean, var } => {
                BnMode::Train { running_mean: mean, running_var: var, momentum: self.bn_momentum }
            }
            BnStats::Eval { mean, var } => BnMode::Eval { running_mean: mean, running_var: var },
        };
        let gv = gamma.map(|id| self.param_value(id));
        let bn = b.batch_norm(self.value(x), gv, beta.map(|id| self.param_value(id)), mode, BN_EPS, cg);
        let gvar = gamma.map(|id| self.param(id));
        let bvar = beta.map(|id| self.param(id));
        let (mean, inv_std) = (bn.mean, bn.inv_std);
        let back = Box::new(move |b: &B, t: &Tape<'p, B>, ref dy: B::Buf| {
            let grads = b.batch_norm_bwd(t.value(x), dy, &mean, &inv_std, gv, train, cg);
            let mut out = vec![(x, grads.dx)];
            if let (Some(v), Some(d)) = (gvar, grads.dgamma) {
                out.push((v, d));
            }
            if let (Some(v), Some(d)) = (bvar, grads.dbeta) {
                out.push((v, d));
            }
            out
        });
        let mut inputs = vec![x];
        inputs.extend(gvar);
        inputs.extend(bvar);
        let shape = self.shape(x).to_vec();
        Ok(self.op(bn.y, shape, &inputs, back))
    }

    pub fn relu(&mut self, x: Var) -> Var {
        let y = self.backend.relu(self.value(x));
        let y_index = self.nodes.len();
        let back =
            Box::new(move |b: &B, t: &Tape<'p, B>, ref dy: B::Buf| vec![(x, b.relu_bwd(t.value(Var(y_index)), dy))]);
        let shape = self.shape(x).to_vec();
        self.op(y, shape, &[x], back)
    }

    pub fn add(&mut self, a: Var, c: Var) -> OpResult {
        if self.shape(a) != self.shape(c) {
            return Err(ShapeError::new("add", format!("shapes differ: {:?} and {:?}", self.shape(a), self.shape(c))));
        }
        let y = self.backend.add(self.value(a), self.value(c));
        // `dy` itself goes to one input: a copy only where both take it.
        let back = Box::new(move |b: &B, t: &Tape<'p, B>, dy: B::Buf| match (t.needs_grad(a), t.needs_grad(c)) {
            (true, true) => vec![(a, b.copy(&dy)), (c, dy)],
            (true, false) => vec![(a, dy)],
            (false, true) => vec![(c, dy)],
            (false, false) => Vec::new(),
        });
        let shape = self.shape(a).to_vec();
        Ok(self.op(y, shape, &[a, c], back))
    }

    /// `alpha * x` for a constant `alpha`.
    pub fn scale(&mut self, x: Var, alpha: f32) -> Var {
        let y = self.backend.scale(self.value(x), alpha);
        let back = Box::new(move |b: &B, _: &Tape<'p, B>, ref dy: B::Buf| vec![(x, b.scale(dy, alpha))]);
        let shape = self.shape(x).to_vec();
        self.op(y, shape, &[x], back)
    }

    /// An all-zero tensor (the zeroise op).
    pub fn zeros(&mut self, shape: Vec<usize>) -> Var {
        let buf = self.backend.zeros(shape.iter().product());
        self.push_node(Value::Owned(buf), shape, None, None, false)
    }

    /// Concatenates `[N, C_j, H, W]` tensors along channels.
    pub fn concat(&mut self, xs: &[Var]) -> OpResult {
        let first = image_dims("concat", self.shape(xs[0]))?;
        let mut chans = Vec::with_capacity(xs.len());
        for &v in xs {
            let [n, c, h, w] = image_dims("concat", self.shape(v))?;
            if [n, h, w] != [first[0], first[2], first[3]] {
                return Err(ShapeError::new("concat", format!("{:?} does not match {:?}", self.shape(v), first)));
            }
            chans.push(c);
        }
        let (n, hw) = (first[0], first[2] * first[3]);
        let bufs: Vec<&B::Buf> = xs.iter().map(|&v| self.value(v)).collect();
        let y = self.backend.concat_channels(&bufs, &chans, n, hw);
        let total: usize = chans.iter().sum();
        let vars = xs.to_vec();
        let back = Box::new(move |b: &B, t: &Tape<'p, B>, ref dy: B::Buf| {
            let mut out = Vec::new();
            let mut off = 0;
            for (&v, &c) in vars.iter().zip(&chans) {
                if t.needs_grad(v) {
                    out.push((v, b.slice_channels(dy, n, total, hw, off, c)));
                }
                off += c;
            }
            out
        });
        Ok(self.op(y, vec![n, total, first[2], first[3]], xs, back))
    }

    /// Channels `[offset, offset + c)` of an `[N, C, H, W]` tensor. Its gradient is added into
    /// that range of `x`'s, so slicing a tensor into parts costs no full-size gradient per part.
    pub fn channels(&mut self, x: Var, offset: usize, c: usize) -> OpResult {
        let [n, c_total, h, w] = image_dims("channels", self.shape(x))?;
        if offset + c > c_total || c == 0 {
            return Err(ShapeError::new("channels", format!("[{offset}, {}) of {:?}", offset + c, self.shape(x))));
        }
        let hw = h * w;
        let y = self.backend.slice_channels(self.value(x), n, c_total, hw, offset, c);
        let needs = self.needs_grad(x);
        let v = self.push_node(Value::Owned(y), vec![n, c, h, w], None, None, needs);
        if self.nodes[v.0].needs_grad {
            self.nodes[v.0].slice_of = Some(ChannelSlice { src: x, n, c_total, hw, offset, c });
        }
        Ok(v)
    }

    /// Elements `[offset, offset + len)` of a flat tensor (a row of alphas), as `[len]`.
    pub fn slice(&mut self, x: Var, offset: usize, len: usize) -> OpResult {
        let total: usize = self.shape(x).iter().product();
        if offset + len > total {
            return Err(ShapeError::new("slice", format!("[{offset}, {}) outside a tensor of {total}", offset + len)));
        }
        let y = self.backend.slice_channels(self.value(x), 1, total, 1, offset, len);
        let back = Box::new(move |b: &B, _: &Tape<'p, B>, ref dy: B::Buf| {
            let (pre, post) = (b.zeros(offset), b.zeros(total - offset - len));
            let full = b.concat_channels(&[&pre, dy, &post], &[offset, len, total - offset - len], 1, 1);
            vec![(x, full)]
        });
        Ok(self.op(y, vec![len], &[x], back))
    }

    /// Mixed op: `sum_j w[j] * xs[j]` with `w` a `[xs.len()]` tensor.
    pub fn weighted_sum(&mut self, xs: &[Var], w: Var) -> OpResult {
        let shape = self.shape(xs[0]).to_vec();
        if xs.iter().any(|&v| self.shape(v) != shape.as_slice()) || self.shape(w) != [xs.len()] {
            let shapes: Vec<_> = xs.iter().map(|&v| self.shape(v).to_vec()).collect();
            return Err(ShapeError::new("weighted_sum", format!("inputs {shapes:?} with weights {:?}", self.shape(w))));
        }
        let bufs: Vec<&B::Buf> = xs.iter().map(|&v| self.value(v)).collect();
        let y = self.backend.weighted_sum(&bufs, self.value(w));
        let vars = xs.to_vec();
        let back = Box::new(move |b: &B, t: &Tape<'p, B>, ref dy: B::Buf| {
            let wv = t.value(w);
            let mut out: Vec<(Var, B::Buf)> = vars
                .iter()
                .enumerate()
                .filter(|(_, &v)| t.needs_grad(v))
                .map(|(j, &v)| (v, b.scale_by_elem(dy, wv, j)))
                .collect();
            if t.needs_grad(w) {
                let bufs: Vec<&B::Buf> = vars.iter().map(|&v| t.value(v)).collect();
                out.push((w, b.dots(&bufs, dy)));
            }
            out
        });
        let mut inputs = xs.to_vec();
        inputs.push(w);
        Ok(self.op(y, shape, &inputs, back))
    }

    fn pool_geom(&self, op: &'static str, x: Var, stride: usize) -> Result<PoolGeom, ShapeError> {
        let [n, c, h, w] = image_dims(op, self.shape(x))?;
        if stride == 0 || h == 0 || w == 0 {
            return Err(ShapeError::new(op, format!("stride {stride} over {:?}", self.shape(x))));
        }
        Ok(PoolGeom { n, c, h, w, stride })
    }

    /// 3x3 max pool, padding 1.
    pub fn max_pool(&mut self, x: Var, stride: usize) -> OpResult {
        let g = self.pool_geom("max_pool", x, stride)?;
        let y = self.backend.max_pool(self.value(x), g);
        let back = Box::new(move |b: &B, t: &Tape<'p, B>, ref dy: B::Buf| vec![(x, b.max_pool_bwd(t.value(x), dy, g))]);
        Ok(self.op(y, vec![g.n, g.c, g.out_h(), g.out_w()], &[x], back))
    }

    /// 3x3 average pool, padding 1, padded cells not counted.
    pub fn avg_pool(&mut self, x: Var, stride: usize) -> OpResult {
        let g = self.pool_geom("avg_pool", x, stride)?;
        let y = self.backend.avg_pool(self.value(x), g);
        let back = Box::new(move |b: &B, _: &Tape<'p, B>, ref dy: B::Buf| vec![(x, b.avg_pool_bwd(dy, g))]);
        Ok(self.op(y, vec![g.n, g.c, g.out_h(), g.out_w()], &[x], back))
    }

    /// Global average pool `[N, C, H, W] -> [N, C]`.
    pub fn global_avg_pool(&mut self, x: Var) -> OpResult {
        let cg = chan_geom("global_avg_pool", self.shape(x))?;
        let y = self.backend.global_avg_pool(self.value(x), cg);
        let back = Box::new(move |b: &B, _: &Tape<'p, B>, ref dy: B::Buf| vec![(x, b.global_avg_pool_bwd(dy, cg))]);
        Ok(self.op(y, vec![cg.n, cg.c], &[x], back))
    }

    /// `x [N, F] @ W^T + b` with `W [O, F]`, `b [O]`.
    pub fn linear(&mut self, x: Var, w: ParamId, bias: ParamId) -> OpResult {
        let (rows, f) = match self.shape(x) {
            &[r, f] => (r, f),
            s => return Err(ShapeError::new("linear", format!("expected an [N, F] input, got {s:?}"))),
        };
        let o = self.params.get(w).shape.first().copied().unwrap_or(0);
        self.check_param("linear", w, &[o, f])?;
        self.check_param("linear", bias, &[o])?;
        let b = self.backend;
        let wv = self.param_value(w);
        let y = b.matmul(self.value(x), wv, MatGeom { m: rows, k: f, n: o, trans_a: false, trans_b: true });
        let y = b.add_row_bias(&y, self.param_value(bias), rows, o);
        let (wvar, bvar) = (self.param(w), self.param(bias));
        let back = Box::new(move |b: &B, t: &Tape<'p, B>, ref dy: B::Buf| {
            let mut out = Vec::new();
            if t.needs_grad(x) {
                out.push((x, b.matmul(dy, wv, MatGeom { m: rows, k: o, n: f, trans_a: false, trans_b: false })));
            }
            if t.needs_grad(wvar) {
                out.push((
                    wvar,
                    b.matmul(dy, t.value(x), MatGeom { m: o, k: rows, n: f, trans_a: true, trans_b: false }),
                ));
                out.push((bvar, b.sum_rows(dy, rows, o)));
            }
            out
        });
        Ok(self.op(y, vec![rows, o], &[x, wvar, bvar], back))
    }

    /// Row-wise softmax of a `[rows, k]` tensor.
    pub fn softmax_rows(&mut self, x: Var) -> OpResult {
        let (rows, k) = match self.shape(x) {
            &[r, k] => (r, k),
            s => return Err(ShapeError::new("softmax_rows", format!("expected [rows, k], got {s:?}"))),
        };
        let y = self.backend.softmax_rows(self.value(x), rows, k);
        let y_index = self.nodes.len();
        let back = Box::new(move |b: &B, t: &Tape<'p, B>, ref dy: B::Buf| {
            vec![(x, b.softmax_rows_bwd(t.value(Var(y_index)), dy, rows, k))]
        });
        Ok(self.op(y, vec![rows, k], &[x], back))
    }

    /// Mean softmax cross-entropy with label smoothing; `labels` holds class indices as f32.
    pub fn softmax_xent(&mut self, logits: Var, labels: &B::Buf, smoothing: f32) -> OpResult {
        let (rows, classes) = match self.shape(logits) {
            &[r, k] => (r, k),
            s => return Err(ShapeError::new("softmax_xent", format!("expected [N, classes] logits, got {s:?}"))),
        };
        if self.backend.len(labels) != rows {
            return Err(ShapeError::new(
                "softmax_xent",
                format!("{} labels for {rows} rows", self.backend.len(labels)),
            ));
        }
        let (loss, grad) = self.backend.softmax_xent(self.value(logits), labels, rows, classes, smoothing);
        let back =
            Box::new(move |b: &B, _: &Tape<'p, B>, ref dy: B::Buf| vec![(logits, b.scale_by_elem(&grad, dy, 0))]);
        Ok(self.op(loss, vec![1], &[logits], back))
    }

    /// Mean over rows of the entropy of `softmax(alpha[r, :])`, for `alpha [rows, k]`.
    pub fn softmax_entropy(&mut self, alpha: Var) -> OpResult {
        let (rows, k) = match self.shape(alpha) {
            &[r, k] => (r, k),
            s => return Err(ShapeError::new("softmax_entropy", format!("expected [rows, k], got {s:?}"))),
        };
        let (h, grad) = self.backend.softmax_entropy(self.value(alpha), rows, k);
        let back = Box::new(move |b: &B, _: &Tape<'p, B>, ref dy: B::Buf| vec![(alpha, b.scale_by_elem(&grad, dy, 0))]);
        Ok(self.op(h, vec![1], &[alpha], back))
    }

    /// Drop-path: scales sample `n` by `keep[n]` (0 or 1/keep_prob), a constant mask.
    pub fn sample_scale(&mut self, x: Var, keep: &[f32]) -> OpResult {
        let cg = chan_geom("sample_scale", self.shape(x))?;
        if keep.len() != cg.n {
            return Err(ShapeError::new("sample_scale", format!("{} scales for {} samples", keep.len(), cg.n)));
        }
        let b = self.backend;
        let s = b.upload(keep);
        let y = b.sample_scale(self.value(x), &s, cg);
        let back = Box::new(move |b: &B, _: &Tape<'p, B>, ref dy: B::Buf| vec![(x, b.sample_scale(dy, &s, cg))]);
        let shape = self.shape(x).to_vec();
        Ok(self.op(y, shape, &[x], back))
    }

    /// Reshapes `[N, C, 1, 1]`-like or any tensor to `shape` with the same element count.
    pub fn reshape(&mut self, x: Var, shape: Vec<usize>) -> OpResult {
        let from = self.shape(x).to_vec();
        if from.iter().product::<usize>() != shape.iter().product::<usize>() {
            return Err(ShapeError::new("reshape", format!("{from:?} to {shape:?}")));
        }
        let y = self.backend.copy(self.value(x));
        let back = Box::new(move |_: &B, _: &Tape<'p, B>, dy: B::Buf| vec![(x, dy)]);
        Ok(self.op(y, shape, &[x], back))
    }
}
