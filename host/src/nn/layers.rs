//! Layers shared by the final network and the supernet: parameters registered in a
//! `ParamStore`, running statistics in `Buffers`, and their forward passes on a tape.

use crate::engine::{
    Backend, BnStats, BufId, Buffers, ConvSpec, Group, ParamId, ParamStore, ShapeError, SignInput, Tape, Var,
};
use crate::rng::Rng;

/// Where new parameters go while a network is being built.
pub struct Builder<'a, B: Backend> {
    pub backend: &'a B,
    pub params: &'a mut ParamStore<B>,
    pub buffers: &'a mut Buffers<B>,
    pub rng: &'a mut Rng,
    /// Binary-conv layers created so far (their index in evaluation caches).
    pub bin_convs: usize,
    /// Counted while building, per image: binary and full-precision multiply-accumulates.
    pub binary_macs: u64,
    pub fp_macs: u64,
}

impl<B: Backend> Builder<'_, B> {
    fn uniform(&mut self, len: usize, bound: f32) -> Vec<f32> {
        (0..len).map(|_| (self.rng.uniform() * 2.0 - 1.0) * bound).collect()
    }
}

/// The classifier `[classes, c]` weights and `[classes]` bias, PyTorch's default init.
pub fn classifier<B: Backend>(b: &mut Builder<'_, B>, c: usize, classes: usize) -> (ParamId, ParamId) {
    let bound = 1.0 / (c as f32).sqrt();
    let w = b.uniform(classes * c, bound);
    let bias = b.uniform(classes, bound);
    let wid = b.params.add(b.backend, "classifier.weight".into(), vec![classes, c], Group::Weight, w);
    let bid = b.params.add(b.backend, "classifier.bias".into(), vec![classes], Group::Weight, bias);
    b.fp_macs += (classes * c) as u64;
    (wid, bid)
}

/// Batch norm: affine parameters (optional) and running statistics.
#[derive(Debug, Clone)]
pub struct BnLayer {
    pub name: String,
    pub c: usize,
    pub gamma: Option<ParamId>,
    pub beta: Option<ParamId>,
    pub mean: BufId,
    pub var: BufId,
}

impl BnLayer {
    pub fn new<B: Backend>(b: &mut Builder<'_, B>, name: &str, c: usize, affine: bool) -> Self {
        let (gamma, beta) = if affine {
            let g = b.params.add(b.backend, format!("{name}.gamma"), vec![c], Group::Weight, vec![1.0; c]);
            let bt = b.params.add(b.backend, format!("{name}.beta"), vec![c], Group::Weight, vec![0.0; c]);
            (Some(g), Some(bt))
        } else {
            (None, None)
        };
        let mean = b.buffers.add(b.backend, format!("{name}.running_mean"), vec![c], vec![0.0; c]);
        let var = b.buffers.add(b.backend, format!("{name}.running_var"), vec![c], vec![1.0; c]);
        Self { name: name.to_string(), c, gamma, beta, mean, var }
    }

    pub fn forward<B: Backend>(&self, t: &mut Tape<'_, B>, bufs: &mut Buffers<B>, x: Var) -> Result<Var, ShapeError> {
        t.set_scope(&self.name);
        let stats = if t.train {
            let (mean, var) = bufs.pair_mut(self.mean, self.var);
            BnStats::Train { mean, var }
        } else {
            BnStats::Eval { mean: bufs.get(self.mean), var: bufs.get(self.var) }
        };
        t.batch_norm(x, self.gamma, self.beta, stats)
    }
}

/// Full-precision conv (stem, reduction skip, search preprocessing).
#[derive(Debug, Clone)]
pub struct ConvLayer {
    pub name: String,
    pub c_in: usize,
    pub c_out: usize,
    pub spec: ConvSpec,
    pub w: ParamId,
    pub bias: Option<ParamId>,
}

impl ConvLayer {
    /// PyTorch's default init: uniform in +-1/sqrt(fan_in) for weights and bias.
    #[allow(clippy::too_many_arguments)]
    pub fn new<B: Backend>(
        b: &mut Builder<'_, B>,
        name: &str,
        c_in: usize,
        c_out: usize,
        spec: ConvSpec,
        bias: bool,
        out_hw: usize,
    ) -> Self {
        let fan_in = c_in * spec.k * spec.k;
        let bound = 1.0 / (fan_in as f32).sqrt();
        let init = b.uniform(c_out * fan_in, bound);
        let w =
            b.params.add(b.backend, format!("{name}.weight"), vec![c_out, c_in, spec.k, spec.k], Group::Weight, init);
        let bias = bias.then(|| {
            let init = b.uniform(c_out, bound);
            b.params.add(b.backend, format!("{name}.bias"), vec![c_out], Group::Weight, init)
        });
        b.fp_macs += (c_out * fan_in * out_hw) as u64;
        Self { name: name.to_string(), c_in, c_out, spec, w, bias }
    }

    pub fn forward<B: Backend>(&self, t: &mut Tape<'_, B>, x: Var) -> Result<Var, ShapeError> {
        t.set_scope(&self.name);
        t.conv2d(x, self.w, self.bias, self.spec)
    }
}

/// Binary conv op of bnas-method.md: BN(C_in) -> sign -> XNOR conv -> ReLU.
#[derive(Debug, Clone)]
pub struct BinConvLayer {
    pub name: String,
    pub c_in: usize,
    pub c_out: usize,
    pub spec: ConvSpec,
    pub bn: BnLayer,
    pub w: ParamId,
    /// Index among the network's binary convs (evaluation threshold cache, export order).
    pub index: usize,
    /// One filter per channel (`[c, 1, k, k]` weights): the depthwise half of a separable conv.
    pub depthwise: bool,
}

/// Kaiming-normal (fan-out, like the anchor's PyTorch init) latent weights of a binary conv,
/// `[c_out, c_in, k, k]`; only their signs and per-filter means matter.
pub fn bin_conv_init(rng: &mut Rng, c_out: usize, c_in: usize, k: usize) -> Vec<f32> {
    let std = (2.0 / (c_out * k * k) as f32).sqrt();
    (0..c_out * c_in * k * k).map(|_| rng.normal() * std).collect()
}

impl BinConvLayer {
    #[allow(clippy::too_many_arguments)]
    pub fn new<B: Backend>(
        b: &mut Builder<'_, B>,
        name: &str,
        c_in: usize,
        c_out: usize,
        spec: ConvSpec,
        affine: bool,
        out_hw: usize,
    ) -> Self {
        let init = bin_conv_init(b.rng, c_out, c_in, spec.k);
        Self::with_init(b, name, c_in, c_out, spec, affine, out_hw, init)
    }

    /// With the given initial latent weights `[c_out, c_in, k, k]`.
    #[allow(clippy::too_many_arguments)]
    pub fn with_init<B: Backend>(
        b: &mut Builder<'_, B>,
        name: &str,
        c_in: usize,
        c_out: usize,
        spec: ConvSpec,
        affine: bool,
        out_hw: usize,
        init: Vec<f32>,
    ) -> Self {
        Self::build(b, name, c_in, c_out, spec, affine, out_hw, init, false)
    }

    /// A depthwise binary conv over `c` channels with the given initial weights `[c, 1, k, k]`.
    pub fn depthwise<B: Backend>(
        b: &mut Builder<'_, B>,
        name: &str,
        c: usize,
        spec: ConvSpec,
        affine: bool,
        out_hw: usize,
        init: Vec<f32>,
    ) -> Self {
        Self::build(b, name, c, c, spec, affine, out_hw, init, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn build<B: Backend>(
        b: &mut Builder<'_, B>,
        name: &str,
        c_in: usize,
        c_out: usize,
        spec: ConvSpec,
        affine: bool,
        out_hw: usize,
        init: Vec<f32>,
        depthwise: bool,
    ) -> Self {
        let bn = BnLayer::new(b, &format!("{name}.bn"), c_in, affine);
        // Input channels each filter sees: all of them, or its own one.
        let c_w = if depthwise { 1 } else { c_in };
        let w = b.params.add_binary(b.backend, format!("{name}.weight"), [c_out, c_w, spec.k, spec.k], init);
        b.binary_macs += (c_out * c_w * spec.k * spec.k * out_hw) as u64;
        let index = b.bin_convs;
        b.bin_convs += 1;
        Self { name: name.to_string(), c_in, c_out, spec, bn, w, index, depthwise }
    }

    pub fn forward<B: Backend>(
        &self,
        t: &mut Tape<'_, B>,
        bufs: &mut Buffers<B>,
        eval: Option<&EvalCache<B>>,
        x: Var,
    ) -> Result<Var, ShapeError> {
        t.set_scope(&self.name);
        let sign_in = if t.train {
            let (mean, var) = bufs.pair_mut(self.bn.mean, self.bn.var);
            SignInput::Train { gamma: self.bn.gamma, beta: self.bn.beta, mean, var }
        } else {
            let cache = eval.expect("evaluation needs the threshold cache (EvalCache::new)");
            let (flip, neg_thr) = &cache.thresholds[self.index];
            SignInput::Threshold { flip, neg_thr }
        };
        if self.depthwise {
            t.bin_dwconv(x, self.w, sign_in, self.spec)
        } else {
            t.bin_conv(x, self.w, sign_in, self.spec)
        }
    }
}

/// Binary separable conv (the paper's Table 1 ablation, not in S_B): DARTS's separable conv,
/// depthwise `k x k` then pointwise 1x1, twice, the first depthwise carrying the stride,
/// with each of the four convs a binary conv op (BN -> sign -> XNOR conv -> ReLU). Stacking
/// binary convs multiplies their scale factors' quantization error (bnas-method.md).
#[derive(Debug, Clone)]
pub struct BinSepConvLayer {
    /// Depthwise, pointwise, depthwise, pointwise.
    pub convs: [BinConvLayer; 4],
}

impl BinSepConvLayer {
    /// Initial weights of the four convs, in order: depthwise `[c, 1, k, k]`, pointwise `[c, c, 1, 1]`, twice.
    pub fn init(rng: &mut Rng, c: usize, k: usize) -> [Vec<f32>; 4] {
        let dw1 = bin_conv_init(rng, c, 1, k);
        let pw1 = bin_conv_init(rng, c, c, 1);
        let dw2 = bin_conv_init(rng, c, 1, k);
        let pw2 = bin_conv_init(rng, c, c, 1);
        [dw1, pw1, dw2, pw2]
    }

    #[allow(clippy::too_many_arguments)]
    pub fn with_init<B: Backend>(
        b: &mut Builder<'_, B>,
        name: &str,
        c: usize,
        k: usize,
        pad: usize,
        stride: usize,
        affine: bool,
        out_hw: usize,
        [dw1, pw1, dw2, pw2]: [Vec<f32>; 4],
    ) -> Self {
        let one = ConvSpec { k: 1, stride: 1, pad: 0, dil: 1 };
        let (s1, s2) = (ConvSpec { k, stride, pad, dil: 1 }, ConvSpec { k, stride: 1, pad, dil: 1 });
        let dw1 = BinConvLayer::depthwise(b, &format!("{name}.dw1"), c, s1, affine, out_hw, dw1);
        let pw1 = BinConvLayer::with_init(b, &format!("{name}.pw1"), c, c, one, affine, out_hw, pw1);
        let dw2 = BinConvLayer::depthwise(b, &format!("{name}.dw2"), c, s2, affine, out_hw, dw2);
        let pw2 = BinConvLayer::with_init(b, &format!("{name}.pw2"), c, c, one, affine, out_hw, pw2);
        Self { convs: [dw1, pw1, dw2, pw2] }
    }

    pub fn forward<B: Backend>(
        &self,
        t: &mut Tape<'_, B>,
        bufs: &mut Buffers<B>,
        eval: Option<&EvalCache<B>>,
        x: Var,
    ) -> Result<Var, ShapeError> {
        self.convs.iter().try_fold(x, |y, conv| conv.forward(t, bufs, eval, y))
    }
}

/// BN followed by sign as the per-channel compare `x * flip >= thr`, exactly what the
/// packed kernels and the ONNX export compute (DESIGN.md: BN folding is not exact).
pub fn bn_sign_threshold(gamma: f32, beta: f32, mean: f32, var: f32, eps: f32) -> (f32, f32) {
    let inv_std = 1.0 / (var + eps).sqrt();
    let slope = gamma * inv_std;
    if slope > 0.0 {
        (1.0, mean - beta / slope)
    } else if slope < 0.0 {
        (-1.0, -(mean - beta / slope))
    } else if beta >= 0.0 {
        (0.0, 0.0)
    } else {
        (0.0, 1.0)
    }
}

/// Per binary conv: the `(flip, -thr)` of its input's BN + sign, for evaluation.
pub struct EvalCache<B: Backend> {
    pub thresholds: Vec<(B::Buf, B::Buf)>,
}

impl<B: Backend> EvalCache<B> {
    /// Computes every threshold from the current parameters and running statistics.
    pub fn new(backend: &B, params: &ParamStore<B>, bufs: &Buffers<B>, layers: &[&BinConvLayer]) -> Self {
        let mut thresholds: Vec<Option<(B::Buf, B::Buf)>> = (0..layers.len()).map(|_| None).collect();
        for layer in layers {
            let (flip, thr) = thresholds_of(backend, params, bufs, &layer.bn);
            let neg: Vec<f32> = thr.iter().map(|t| -t).collect();
            thresholds[layer.index] = Some((backend.upload(&flip), backend.upload(&neg)));
        }
        Self { thresholds: thresholds.into_iter().map(|t| t.expect("every binary conv listed once")).collect() }
    }
}

/// `(flip, thr)` per channel of a BN followed by sign.
pub fn thresholds_of<B: Backend>(
    backend: &B,
    params: &ParamStore<B>,
    bufs: &Buffers<B>,
    bn: &BnLayer,
) -> (Vec<f32>, Vec<f32>) {
    let c = bn.c;
    let gamma = bn.gamma.map(|id| backend.download(&params.get(id).value)).unwrap_or_else(|| vec![1.0; c]);
    let beta = bn.beta.map(|id| backend.download(&params.get(id).value)).unwrap_or_else(|| vec![0.0; c]);
    let mean = backend.download(bufs.get(bn.mean));
    let var = backend.download(bufs.get(bn.var));
    (0..c).map(|i| bn_sign_threshold(gamma[i], beta[i], mean[i], var[i], crate::engine::ops::BN_EPS)).unzip()
}

#[cfg(test)]
mod tests {
    use super::bn_sign_threshold;

    #[test]
    fn threshold_matches_bn_sign_away_from_the_boundary() {
        let mut worst = 0usize;
        for &(g, b, m, v) in
            &[(1.5f32, 0.3f32, 0.2f32, 2.0f32), (-0.7, 0.1, -1.0, 0.5), (0.0, -0.2, 0.0, 1.0), (0.0, 0.4, 1.0, 1.0)]
        {
            let (flip, thr) = bn_sign_threshold(g, b, m, v, 1e-5);
            for i in -200..200 {
                let x = i as f32 * 0.0371;
                let bn = (x - m) / (v + 1e-5).sqrt() * g + b;
                if bn.abs() < 1e-4 {
                    continue;
                }
                if (bn >= 0.0) != (x * flip >= thr) {
                    worst += 1;
                }
            }
        }
        println!("sign mismatches away from the boundary: {worst}");
        assert_eq!(worst, 0);
    }
}
