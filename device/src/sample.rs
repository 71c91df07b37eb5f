//! Random T_B-style networks (host side): a float stem, cells whose nodes sum two ops of S_B
//! (zeroise, 3x3 max/avg pool, binary 3x3/5x5 convs, dilated or not, stride 2 in reduction cells)
//! over a concat, binary 1x1/3x3 preprocessing, inter-cell skips (identity, or BN -> 2x2 stride-2
//! float conv in reduction cells), GAP and linear. Used by the property tests, the fuzzers, the
//! firmware's sample model and the benchmarks.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use crate::build::{BinConv, FloatConv, ModelBuilder};
use crate::TensorId;

/// Best wall time in seconds of `reps` runs of `f`, after one untimed warm-up run (the benchmark
/// examples' timer).
pub fn best_of<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// A tiny deterministic generator (xorshift64).
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn f32(&mut self) -> f32 {
        (self.next() % 2001) as f32 / 1000.0 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32() * scale).collect()
    }
    pub fn pm1(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| if self.next() & 1 == 1 { 1.0 } else { -1.0 }).collect()
    }
}

/// Shape knobs of a random network.
#[derive(Debug, Clone, Copy)]
pub struct NetSpec {
    pub in_c: usize,
    pub hw: usize,
    pub c: usize,
    pub cells: usize,
    pub nodes: usize,
    pub classes: usize,
    pub seed: u64,
}

fn bin_conv(r: &mut Rng, c_in: usize, c_out: usize, k: usize, stride: usize, dil: usize) -> BinConv {
    let pad = dil * (k - 1) / 2;
    BinConv {
        c_out,
        k,
        stride,
        pad,
        dil,
        flip: (0..c_in).map(|_| [1.0, 1.0, 1.0, -1.0, -1.0, 0.0][r.below(6)]).collect(),
        threshold: r.vec(c_in, 0.5),
        weights: r.pm1(c_out * c_in * k * k),
        scale: (0..c_out).map(|_| 0.01 + r.f32().abs() * 0.05).collect(),
    }
}

/// One op of the search space S_B from `x` into `out` (stride 1 or 2).
fn edge(b: &mut ModelBuilder, r: &mut Rng, x: TensorId, c: usize, stride: usize, out: TensorId) {
    match r.below(7) {
        0 => b.zero(out).unwrap(),
        1 => b.max_pool(x, stride, out).unwrap(),
        2 => b.avg_pool(x, stride, out).unwrap(),
        3 => b.bin_conv(x, &bin_conv(r, c, c, 3, stride, 1), out).unwrap(),
        4 => b.bin_conv(x, &bin_conv(r, c, c, 5, stride, 1), out).unwrap(),
        5 => b.bin_conv(x, &bin_conv(r, c, c, 3, stride, 2), out).unwrap(),
        _ => b.bin_conv(x, &bin_conv(r, c, c, 5, stride, 2), out).unwrap(),
    }
}

/// A model with one binary conv, for per-layer instruction counts: input `[c, hw, hw]` ->
/// bin_conv(c -> `c_out`, `k`, dilation `dil`, `stride`, padding `pad`; +1 flips, fixed weights)
/// -> GAP -> linear(10). The same seed every call, so a layer's figures compare across builds.
pub fn bin_layer(c: usize, c_out: usize, hw: usize, k: usize, dil: usize, stride: usize, pad: usize) -> Vec<u8> {
    let mut r = Rng(5);
    let mut b = ModelBuilder::new(c, hw, hw);
    b.set_input_affine(&vec![1.0 / 255.0; c], &vec![-0.5; c]);
    let ohw = crate::kernels::out_width(hw, crate::ConvGeom { k, stride, pad, dil });
    let y = b.tensor(c_out, ohw, ohw);
    let p = BinConv {
        c_out,
        k,
        stride,
        pad,
        dil,
        flip: vec![1.0; c],
        threshold: r.vec(c, 0.2),
        weights: r.pm1(c_out * c * k * k),
        scale: vec![0.01; c_out],
    };
    b.bin_conv(b.input(), &p, y).unwrap();
    let g = b.tensor(c_out, 1, 1);
    b.global_avg_pool(y, g).unwrap();
    let l = b.tensor(10, 1, 1);
    b.linear(g, &r.vec(10 * c_out, 1.0), &r.vec(10, 1.0), l).unwrap();
    b.finish(l).unwrap()
}

/// A model with one float conv, for per-layer instruction counts: input `[c, hw, hw]` ->
/// conv(c -> `c_out`, `k`, `stride`, padding `pad`; bias, ReLU) -> GAP -> linear(10). The same
/// seed every call.
pub fn float_layer(c: usize, c_out: usize, hw: usize, k: usize, stride: usize, pad: usize) -> Vec<u8> {
    let mut r = Rng(5);
    let mut b = ModelBuilder::new(c, hw, hw);
    b.set_input_affine(&vec![1.0 / 255.0; c], &vec![-0.5; c]);
    let ohw = crate::kernels::out_width(hw, crate::ConvGeom { k, stride, pad, dil: 1 });
    let y = b.tensor(c_out, ohw, ohw);
    let p = FloatConv {
        c_out,
        k,
        stride,
        pad,
        dil: 1,
        weights: r.vec(c_out * c * k * k, 0.5),
        bias: Some(r.vec(c_out, 0.1)),
        relu: true,
    };
    b.conv(b.input(), &p, y).unwrap();
    let g = b.tensor(c_out, 1, 1);
    b.global_avg_pool(y, g).unwrap();
    let l = b.tensor(10, 1, 1);
    b.linear(g, &r.vec(10 * c_out, 1.0), &r.vec(10, 1.0), l).unwrap();
    b.finish(l).unwrap()
}

/// Builds the network; returns the model bytes.
pub fn random_net(s: NetSpec) -> Vec<u8> {
    let mut r = Rng(s.seed | 1);
    let mut b = ModelBuilder::new(s.in_c, s.hw, s.hw);
    b.set_input_affine(&r.vec(s.in_c, 0.02), &r.vec(s.in_c, 1.0));
    let stem_c = 2 * s.c;
    let stem = b.tensor(stem_c, s.hw, s.hw);
    let stem_conv = FloatConv {
        c_out: stem_c,
        k: 3,
        stride: 1,
        pad: 1,
        dil: 1,
        weights: r.vec(stem_c * s.in_c * 9, 0.5),
        bias: Some(r.vec(stem_c, 0.1)),
        relu: true,
    };
    b.conv(b.input(), &stem_conv, stem).unwrap();
    let (mut s0, mut s1) = (stem, stem);
    let (mut c_prev_prev, mut c_prev, mut hw, mut hw_prev) = (stem_c, stem_c, s.hw, s.hw);
    let mut c = s.c;
    for cell in 0..s.cells {
        let reduce = s.cells > 1 && cell == s.cells / 2 && hw >= 2;
        if reduce {
            c *= 2;
        }
        let out_hw = if reduce { hw.div_ceil(2) } else { hw };
        // Preprocess s0 and s1 to c channels at the cell input resolution.
        let p0 = b.tensor(c, hw, hw);
        let s0_stride = if hw_prev != hw { 2 } else { 1 };
        let k0 = if s0_stride == 2 { 3 } else { 1 };
        b.bin_conv(s0, &bin_conv(&mut r, c_prev_prev, c, k0, s0_stride, 1), p0).unwrap();
        let p1 = b.tensor(c, hw, hw);
        b.bin_conv(s1, &bin_conv(&mut r, c_prev, c, 1, 1, 1), p1).unwrap();
        let (whole, parts) = b.concat(&vec![c; s.nodes], out_hw, out_hw);
        let mut states = vec![(p0, true), (p1, true)];
        for &part in parts.iter() {
            let mut edges = Vec::new();
            for _ in 0..2 {
                let (src, is_input) = states[r.below(states.len())];
                let stride = if reduce && is_input { 2 } else { 1 };
                let t = b.tensor(c, out_hw, out_hw);
                edge(&mut b, &mut r, src, c, stride, t);
                edges.push(t);
            }
            b.add(edges[0], edges[1], part).unwrap();
            states.push((part, false));
        }
        // Inter-cell skip from s1: identity in a normal cell, BN -> conv(k=2, s=2) in a reduction cell.
        if cell > 0 && (c_prev == s.nodes * c) && !reduce {
            b.add(whole, s1, whole).unwrap();
        } else if reduce && hw % 2 == 0 {
            let bn = b.tensor(c_prev, hw, hw);
            b.affine(s1, &r.vec(c_prev, 1.0), &r.vec(c_prev, 0.5), bn).unwrap();
            let skip = b.tensor(s.nodes * c, out_hw, out_hw);
            let conv = FloatConv {
                c_out: s.nodes * c,
                k: 2,
                stride: 2,
                pad: 0,
                dil: 1,
                weights: r.vec(s.nodes * c * c_prev * 4, 0.3),
                bias: Some(r.vec(s.nodes * c, 0.1)),
                relu: false,
            };
            b.conv(bn, &conv, skip).unwrap();
            b.add(whole, skip, whole).unwrap();
        }
        (s0, s1) = (s1, whole);
        (c_prev_prev, c_prev) = (c_prev, s.nodes * c);
        (hw_prev, hw) = (hw, out_hw);
    }
    let pooled = b.tensor(c_prev, 1, 1);
    b.global_avg_pool(s1, pooled).unwrap();
    let logits = b.tensor(s.classes, 1, 1);
    b.linear(pooled, &r.vec(s.classes * c_prev, 0.5), &r.vec(s.classes, 0.1), logits).unwrap();
    b.finish(logits).unwrap()
}

/// A 4-byte aligned copy of model bytes (`Model::parse` reads words in place).
pub fn aligned(bytes: &[u8]) -> Vec<u32> {
    let mut w = vec![0u32; bytes.len().div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut w)[..bytes.len()].copy_from_slice(bytes);
    w
}
