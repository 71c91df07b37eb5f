//! A plain float interpreter of the packed format: the twin the kernels are tested against.
//!
//! It reads the same `Model` but shares no kernel code: every tensor root gets its own `Vec<f32>`
//! (no arena plan), binary weights are unpacked to +-1.0, activations are binarized to +-1.0, and
//! every op is a naive loop. Binary convs sum `(+-1) * (+-1)` products in f32 (exact integers)
//! and multiply by the scale once, so they agree with the popcount kernel bit for bit.

#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)] // host-side code, not the inference path

use crate::error::Error;
use crate::infer::Input;
use crate::model::{Model, Node, TensorId};

/// ReLU with +0.0 for NaN and zeros (the kernels' definition, restated here).
fn relu(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

struct Store {
    roots: Vec<Vec<f32>>,
}

impl Store {
    fn loc(m: &Model, t: TensorId) -> (usize, usize, usize) {
        let i = m.tensor(t).expect("parsed model");
        match i.parent {
            Some(p) => (p.index(), i.channel_offset * i.h * i.w, i.len()),
            None => (t.index(), 0, i.len()),
        }
    }
    fn get(&self, m: &Model, t: TensorId) -> Vec<f32> {
        let (r, off, n) = Self::loc(m, t);
        self.roots[r][off..off + n].to_vec()
    }
    fn set(&mut self, m: &Model, t: TensorId, v: Vec<f32>) {
        let (r, off, n) = Self::loc(m, t);
        assert_eq!(v.len(), n);
        self.roots[r][off..off + n].copy_from_slice(&v);
    }
}

/// Runs `model` on one input with naive float loops; returns the logits.
pub fn run(model: &Model, input: Input<'_>) -> Result<Vec<f32>, Error> {
    let mut st = Store {
        roots: (0..model.n_tensors())
            .map(|t| vec![0.0; model.tensor(TensorId(t as u16)).map(|i| i.len()).unwrap_or(0)])
            .collect(),
    };
    let xi = model.tensor(model.input())?;
    let x: Vec<f32> = match input {
        Input::F32(v) => v.to_vec(),
        Input::U8(px) => {
            let hw = xi.h * xi.w;
            px.iter()
                .enumerate()
                .map(|(i, &p)| match model.input_affine() {
                    Some((s, b)) => p as f32 * s[i / hw] + b[i / hw],
                    None => p as f32,
                })
                .collect()
        }
    };
    if x.len() != xi.len() {
        return Err(Error::InputSize { expected: xi.len(), got: x.len() });
    }
    st.set(model, model.input(), x);
    for node in model.nodes() {
        let out = model.tensor(node.output())?;
        let (oh, ow) = (out.h, out.w);
        let v = match node {
            Node::Affine { x, scale, bias, .. } => {
                let xv = st.get(model, x);
                let hw = oh * ow;
                xv.iter().enumerate().map(|(i, v)| v * scale[i / hw] + bias[i / hw]).collect()
            }
            Node::Conv(c) => {
                let xi = model.tensor(c.x)?;
                let xv = st.get(model, c.x);
                conv_naive(
                    &xv,
                    (xi.c, xi.h, xi.w),
                    c.c_out,
                    c.geom.k,
                    c.geom.stride,
                    c.geom.pad,
                    c.geom.dil,
                    (oh, ow),
                    |o, ci, t| c.weights[(o * xi.c + ci) * c.geom.k * c.geom.k + t],
                    |o| c.bias.map_or(0.0, |b| b[o]),
                    |_, s| if c.relu { relu(s) } else { s },
                )
            }
            Node::BinConv(b) => {
                let xi = model.tensor(b.x)?;
                let hw = xi.h * xi.w;
                let signs: Vec<f32> = st
                    .get(model, b.x)
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| if v * b.flip[i / hw] >= b.threshold[i / hw] { 1.0 } else { -1.0 })
                    .collect();
                let k = b.geom.k;
                conv_naive(
                    &signs,
                    (xi.c, xi.h, xi.w),
                    b.c_out,
                    k,
                    b.geom.stride,
                    b.geom.pad,
                    b.geom.dil,
                    (oh, ow),
                    |o, ci, t| b.weight(o, ci, t / k, t % k).expect("in range"),
                    |_| 0.0,
                    |o, s| relu(s * b.scale[o]),
                )
            }
            Node::MaxPool { x, stride, .. } | Node::AvgPool { x, stride, .. } => {
                let xi = model.tensor(x)?;
                let xv = st.get(model, x);
                pool3x3(&xv, (xi.c, xi.h, xi.w), stride, (oh, ow), matches!(node, Node::MaxPool { .. }))
            }
            Node::Add { a, b, .. } => st.get(model, a).iter().zip(st.get(model, b)).map(|(x, y)| x + y).collect(),
            Node::Zero { .. } => vec![0.0; out.len()],
            Node::GlobalAvgPool { x, .. } => {
                let xi = model.tensor(x)?;
                let hw = xi.h * xi.w;
                let r = crate::kernels::reciprocal(hw);
                st.get(model, x).chunks(hw.max(1)).map(|c| c.iter().fold(0.0f32, |a, &v| a + v) * r).collect()
            }
            Node::Linear { x, weights, bias, .. } => {
                let xv = st.get(model, x);
                (0..out.len())
                    .map(|j| {
                        xv.iter().enumerate().fold(0.0f32, |a, (i, v)| a + weights[j * xv.len() + i] * v) + bias[j]
                    })
                    .collect()
            }
        };
        st.set(model, node.output(), v);
    }
    Ok(st.get(model, model.logits()))
}

/// Naive conv: per output, `acc = bias(o)`, then `+= w(o, c, tap) * x` over c, ky, kx ascending,
/// skipping padded taps; `finish(o, acc)` gives the output value.
#[allow(clippy::too_many_arguments)]
fn conv_naive(
    x: &[f32],
    (c_in, h, w): (usize, usize, usize),
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    (oh, ow): (usize, usize),
    weight: impl Fn(usize, usize, usize) -> f32,
    bias: impl Fn(usize) -> f32,
    finish: impl Fn(usize, f32) -> f32,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(c_out * oh * ow);
    for o in 0..c_out {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = bias(o);
                for c in 0..c_in {
                    for t in 0..k * k {
                        let iy = (oy * stride + t / k * dil) as isize - pad as isize;
                        let ix = (ox * stride + t % k * dil) as isize - pad as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        acc += weight(o, c, t) * x[(c * h + iy as usize) * w + ix as usize];
                    }
                }
                out.push(finish(o, acc));
            }
        }
    }
    out
}

/// A 3x3, pad 1 pool by definition, over `x` (`[c, h, w]`) into `[c, oh, ow]`: the max over the
/// valid taps row-major (`v > m` replaces, starting from -inf), or (`!is_max`) their sum row-major
/// from 0.0 times [`crate::kernels::reciprocal`] of their count.
pub fn pool3x3(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    stride: usize,
    (oh, ow): (usize, usize),
    is_max: bool,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(c * oh * ow);
    for c in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut m, mut sum, mut n) = (f32::NEG_INFINITY, 0.0f32, 0);
                for dy in 0..3 {
                    for dx in 0..3 {
                        let (iy, ix) = ((oy * stride + dy) as isize - 1, (ox * stride + dx) as isize - 1);
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = x[(c * h + iy as usize) * w + ix as usize];
                        if v > m {
                            m = v;
                        }
                        sum += v;
                        n += 1;
                    }
                }
                out.push(if is_max { m } else { sum * crate::kernels::reciprocal(n) });
            }
        }
    }
    out
}
