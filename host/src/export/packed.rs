//! Lowering a trained network to the device crate's packed format.
//!
//! Every binary conv becomes the device's XNOR conv: its input BN + sign as the per-channel
//! compare `x * flip >= thr` (the engine's evaluation path uses the same thresholds), its
//! weights as the signs of the centred latent weights, its scale as beta. Full-precision
//! batch norms are folded where that is exact in function (into the input affine, into a
//! following or preceding conv without padding); concats are channel slices.

use anyhow::{anyhow, Result};
use bnas_device::build::{BinConv, FloatConv, ModelBuilder};
use bnas_device::TensorId;

use crate::data::Normalization;
use crate::engine::{Backend, Buffers, ParamStore};
use crate::nn::layers::{thresholds_of, BinConvLayer, BnLayer, ConvLayer};
use crate::nn::network::{EdgeOp, Skip, Stem};
use crate::nn::Network;

/// Reads parameters of a trained network for lowering.
struct Reader<'a, B: Backend> {
    b: &'a B,
    params: &'a ParamStore<B>,
    bufs: &'a Buffers<B>,
}

impl<B: Backend> Reader<'_, B> {
    fn param(&self, id: crate::engine::ParamId) -> Vec<f32> {
        self.b.download(&self.params.get(id).value)
    }

    /// Eval-mode batch norm as `y = a * x + c` per channel.
    fn bn_affine(&self, bn: &BnLayer) -> (Vec<f32>, Vec<f32>) {
        let gamma = bn.gamma.map(|id| self.param(id)).unwrap_or_else(|| vec![1.0; bn.c]);
        let beta = bn.beta.map(|id| self.param(id)).unwrap_or_else(|| vec![0.0; bn.c]);
        let mean = self.b.download(self.bufs.get(bn.mean));
        let var = self.b.download(self.bufs.get(bn.var));
        (0..bn.c)
            .map(|i| {
                let a = gamma[i] / (var[i] + crate::engine::ops::BN_EPS).sqrt();
                (a, beta[i] - mean[i] * a)
            })
            .unzip()
    }

    fn bin_conv(&self, l: &BinConvLayer) -> BinConv {
        let (flip, threshold) = thresholds_of(self.b, self.params, self.bufs, &l.bn);
        let bw = self.params.binarized(l.w);
        BinConv {
            c_out: l.c_out,
            k: l.spec.k,
            stride: l.spec.stride,
            pad: l.spec.pad,
            dil: l.spec.dil,
            flip,
            threshold,
            weights: self.b.download(&bw.sign),
            scale: self.b.download(&bw.beta),
        }
    }

    fn float_conv(&self, l: &ConvLayer, relu: bool) -> FloatConv {
        FloatConv {
            c_out: l.c_out,
            k: l.spec.k,
            stride: l.spec.stride,
            pad: l.spec.pad,
            dil: l.spec.dil,
            weights: self.param(l.w),
            bias: l.bias.map(|id| self.param(id)),
            relu,
        }
    }
}

/// Folds a per-output-channel affine `y = a * conv + c` into the conv (exact in function).
fn fold_after(conv: &mut FloatConv, a: &[f32], c: &[f32]) {
    let per_out = conv.weights.len() / conv.c_out;
    for (o, w) in conv.weights.chunks_mut(per_out).enumerate() {
        w.iter_mut().for_each(|v| *v *= a[o]);
    }
    let bias = conv.bias.get_or_insert_with(|| vec![0.0; conv.c_out]);
    for o in 0..conv.c_out {
        bias[o] = bias[o] * a[o] + c[o];
    }
}

/// Folds a per-input-channel affine applied before an unpadded conv into it.
fn fold_before(conv: &mut FloatConv, a: &[f32], c: &[f32]) {
    assert_eq!(conv.pad, 0, "folding an affine before a padded conv is not exact");
    let c_in = a.len();
    let kk = conv.k * conv.k;
    let bias = conv.bias.get_or_insert_with(|| vec![0.0; conv.c_out]);
    for (o, w) in conv.weights.chunks_mut(c_in * kk).enumerate() {
        for (ci, taps) in w.chunks_mut(kk).enumerate() {
            for v in taps {
                bias[o] += *v * c[ci];
                *v *= a[ci];
            }
        }
    }
}

fn err(e: bnas_device::build::BuildError) -> anyhow::Error {
    anyhow!("packing the network: {e}")
}

fn no_sep_conv(op: crate::nn::genotype::Op) -> anyhow::Error {
    anyhow!(
        "the genotype uses {op}: binary separable convs (the --with-sep-conv ablation) train and evaluate \
         on the host, but the packed format has no depthwise binary conv, so this network cannot be exported"
    )
}

/// Lowers `net` with its trained parameters to packed model bytes. The model takes u8
/// pixels with the dataset normalization folded in.
pub fn lower<B: Backend>(
    b: &B,
    net: &Network,
    params: &mut ParamStore<B>,
    bufs: &Buffers<B>,
    norm: &Normalization,
) -> Result<Vec<u8>> {
    let cells = [&net.genotype.normal, &net.genotype.reduce];
    if let Some((op, _)) = cells.iter().flat_map(|c| &c.ops).find(|(op, _)| op.sep_conv_shape().is_some()) {
        return Err(no_sep_conv(*op));
    }
    params.refresh_binary(b, false);
    let r = Reader { b, params, bufs };
    let [c, h, w] = net.cfg.input;
    let mut m = ModelBuilder::new(c, h, w);
    // Pixels p (u8) -> (p / 255 - mean) / std.
    let mut in_scale: Vec<f32> = norm.std.iter().map(|s| 1.0 / (255.0 * s)).collect();
    let mut in_bias: Vec<f32> = norm.mean.iter().zip(&norm.std).map(|(m, s)| -m / s).collect();
    let (s0, s1) = match &net.stem {
        Stem::Small { bn, conv } => {
            // BN before the conv acts on every pixel, so it folds into the input affine.
            let (a, cc) = r.bn_affine(bn);
            for i in 0..c {
                in_bias[i] = in_bias[i] * a[i] + cc[i];
                in_scale[i] *= a[i];
            }
            m.set_input_affine(&in_scale, &in_bias);
            let out = m.tensor(conv.c_out, h, w);
            m.conv(m.input(), &r.float_conv(conv, true), out).map_err(err)?;
            (out, out)
        }
        Stem::ImageNet { convs } => {
            m.set_input_affine(&in_scale, &in_bias);
            let mut x = m.input();
            let mut hw = h;
            let mut outs = Vec::new();
            for (i, (conv, bn)) in convs.iter().enumerate() {
                let mut fc = r.float_conv(conv, i < 2);
                let (a, cc) = r.bn_affine(bn);
                fold_after(&mut fc, &a, &cc);
                hw = hw.div_ceil(2);
                let out = m.tensor(conv.c_out, hw, hw);
                m.conv(x, &fc, out).map_err(err)?;
                outs.push(out);
                x = out;
            }
            (outs[1], outs[2])
        }
    };
    let (mut s0, mut s1) = (s0, s1);
    for cell in &net.cells {
        let p = cell.plan;
        let hw_in = p.hw_in;
        let pre = |m: &mut ModelBuilder, l: &BinConvLayer, x: TensorId| -> Result<TensorId> {
            let out = m.tensor(l.c_out, hw_in, hw_in);
            m.bin_conv(x, &r.bin_conv(l), out).map_err(err)?;
            Ok(out)
        };
        let mut states = vec![pre(&mut m, &cell.pre0, s0)?, pre(&mut m, &cell.pre1, s1)?];
        let (whole, slices) = m.concat(&vec![p.c; cell.concat.len()], p.hw_out, p.hw_out);
        for node in 0..crate::nn::genotype::STEPS {
            let target = match cell.concat.iter().position(|&s| s == node + 2) {
                Some(i) => slices[i],
                None => m.tensor(p.c, p.hw_out, p.hw_out),
            };
            let mut written = false;
            for (op, input) in &cell.edges[2 * node..2 * node + 2] {
                let x = states[*input];
                let dst = if written { m.tensor(p.c, p.hw_out, p.hw_out) } else { target };
                match op {
                    EdgeOp::Zero { .. } => continue,
                    EdgeOp::MaxPool { stride } => m.max_pool(x, *stride, dst).map_err(err)?,
                    EdgeOp::AvgPool { stride } => m.avg_pool(x, *stride, dst).map_err(err)?,
                    EdgeOp::Conv(l) => m.bin_conv(x, &r.bin_conv(l), dst).map_err(err)?,
                    EdgeOp::SepConv(_) => return Err(no_sep_conv(crate::nn::genotype::Op::BinSepConv3)),
                }
                if written {
                    m.add(target, dst, target).map_err(err)?;
                }
                written = true;
            }
            if !written {
                m.zero(target).map_err(err)?;
            }
            states.push(target);
        }
        match &cell.skip {
            Skip::None => {}
            Skip::Identity => m.add(whole, s1, whole).map_err(err)?,
            Skip::Reduce { bn, conv } => {
                let mut fc = r.float_conv(conv, false);
                let (a, cc) = r.bn_affine(bn);
                fold_before(&mut fc, &a, &cc);
                let out = m.tensor(conv.c_out, p.hw_out, p.hw_out);
                m.conv(s1, &fc, out).map_err(err)?;
                m.add(whole, out, whole).map_err(err)?;
            }
        }
        s0 = s1;
        s1 = whole;
    }
    let c_last = r.params.get(net.classifier.0).shape[1];
    let pooled = m.tensor(c_last, 1, 1);
    m.global_avg_pool(s1, pooled).map_err(err)?;
    let logits = m.tensor(net.cfg.classes, 1, 1);
    m.linear(pooled, &r.param(net.classifier.0), &r.param(net.classifier.1), logits).map_err(err)?;
    m.finish(logits).map_err(err)
}
