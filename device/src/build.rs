//! `ModelBuilder`: writes the packed format (host side; needs `std`).
//!
//! Tensors are per-image CHW f32. Every op writes into `out`, a fresh tensor or a channel slice of a
//! concat; `finish` plans the arena from tensor lifetimes and writes magic, version and CRC32.

#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)] // host-side code, not the inference path

use crate::format::{self, kind, words_for};
use crate::model::{bin_scratch_words, ConvGeom, TensorId};
use crate::plan::{self, Block};
use std::fmt;

/// A full-precision conv: weights `[c_out, c_in, k, k]`, optional bias `[c_out]`, optional ReLU.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatConv {
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub dil: usize,
    pub weights: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub relu: bool,
}

/// A binary conv: `bit[c] = x[c]*flip[c] >= threshold[c]`, +-1 weights `[c_out, c_in, k, k]`,
/// `out[o] = max(0, count * scale[o])`. Padded taps contribute 0.
#[derive(Debug, Clone, PartialEq)]
pub struct BinConv {
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub dil: usize,
    /// `[c_in]`: +1, -1 or 0.
    pub flip: Vec<f32>,
    /// `[c_in]`.
    pub threshold: Vec<f32>,
    /// `[c_out, c_in, k, k]`, each exactly +1.0 or -1.0.
    pub weights: Vec<f32>,
    /// `[c_out]`.
    pub scale: Vec<f32>,
}

/// Why the builder refused an op or a model: the op and one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    pub op: &'static str,
    pub reason: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.reason)
    }
}

impl std::error::Error for BuildError {}

fn err<T>(op: &'static str, reason: impl Into<String>) -> Result<T, BuildError> {
    Err(BuildError { op, reason: reason.into() })
}

#[derive(Debug, Clone, Copy)]
struct Def {
    c: usize,
    h: usize,
    w: usize,
    parent: Option<u16>,
    ch_off: usize,
}

#[derive(Debug, Clone)]
enum Op {
    Affine { x: TensorId, out: TensorId, scale: Vec<f32>, bias: Vec<f32> },
    Conv { x: TensorId, out: TensorId, p: FloatConv },
    BinConv { x: TensorId, out: TensorId, p: BinConv },
    Pool { kind: u32, x: TensorId, out: TensorId, stride: usize },
    Add { a: TensorId, b: TensorId, out: TensorId },
    Zero { out: TensorId },
    Gap { x: TensorId, out: TensorId },
    Linear { x: TensorId, out: TensorId, weights: Vec<f32>, bias: Vec<f32> },
}

impl Op {
    fn io(&self) -> (Vec<TensorId>, TensorId) {
        match self {
            Op::Affine { x, out, .. }
            | Op::Conv { x, out, .. }
            | Op::BinConv { x, out, .. }
            | Op::Pool { x, out, .. }
            | Op::Gap { x, out }
            | Op::Linear { x, out, .. } => (vec![*x], *out),
            Op::Add { a, b, out } => (vec![*a, *b], *out),
            Op::Zero { out } => (vec![], *out),
        }
    }
}

/// Builds a packed model; see the crate docs and FORMAT.md.
#[derive(Debug, Clone)]
pub struct ModelBuilder {
    defs: Vec<Def>,
    ops: Vec<Op>,
    affine: Option<(Vec<f32>, Vec<f32>)>,
}

impl ModelBuilder {
    /// A model whose input image is `[c, h, w]`.
    pub fn new(c: usize, h: usize, w: usize) -> Self {
        ModelBuilder { defs: vec![Def { c, h, w, parent: None, ch_off: 0 }], ops: Vec::new(), affine: None }
    }

    /// The f32 view of the input (tensor 0).
    pub fn input(&self) -> TensorId {
        TensorId(0)
    }

    /// u8 pixel input: `x[c, i] = pixel * scale[c] + bias[c]`. f32 input is used as it is.
    pub fn set_input_affine(&mut self, scale: &[f32], bias: &[f32]) {
        self.affine = Some((scale.to_vec(), bias.to_vec()));
    }

    fn push(&mut self, d: Def) -> TensorId {
        let id = TensorId(u16::try_from(self.defs.len()).unwrap_or(u16::MAX));
        self.defs.push(d);
        id
    }

    /// A fresh activation tensor `[c, h, w]`.
    pub fn tensor(&mut self, c: usize, h: usize, w: usize) -> TensorId {
        self.push(Def { c, h, w, parent: None, ch_off: 0 })
    }

    /// A concat of `parts` channel counts at `h x w`: the whole tensor and one slice per part, in order.
    pub fn concat(&mut self, parts: &[usize], h: usize, w: usize) -> (TensorId, Vec<TensorId>) {
        let whole = self.tensor(parts.iter().sum(), h, w);
        let mut off = 0;
        let slices = parts
            .iter()
            .map(|&c| {
                let s = self.push(Def { c, h, w, parent: Some(whole.0), ch_off: off });
                off += c;
                s
            })
            .collect();
        (whole, slices)
    }

    fn def(&self, op: &'static str, t: TensorId) -> Result<Def, BuildError> {
        match self.defs.get(t.index()) {
            Some(d) => Ok(*d),
            None => err(op, format!("tensor {} does not exist", t.0)),
        }
    }

    /// Root tensor and channel range inside it.
    fn span(&self, t: TensorId) -> (usize, usize, usize) {
        let d = self.defs[t.index()];
        match d.parent {
            Some(p) => (usize::from(p), d.ch_off, d.ch_off + d.c),
            None => (t.index(), 0, d.c),
        }
    }

    fn overlap(&self, a: TensorId, b: TensorId) -> bool {
        let (ra, a0, a1) = self.span(a);
        let (rb, b0, b1) = self.span(b);
        ra == rb && a0 < b1 && b0 < a1
    }

    fn check_out(
        &self,
        op: &'static str,
        x: &[TensorId],
        out: TensorId,
        shape: (usize, usize, usize),
    ) -> Result<(), BuildError> {
        let o = self.def(op, out)?;
        if out == self.input() {
            return err(op, "cannot write the input tensor");
        }
        if (o.c, o.h, o.w) != shape {
            return err(op, format!("output is [{}, {}, {}], the op produces {:?}", o.c, o.h, o.w, shape));
        }
        for &t in x {
            self.def(op, t)?;
            if self.overlap(t, out) {
                return err(op, format!("output tensor {} overlaps input tensor {}", out.0, t.0));
            }
        }
        Ok(())
    }

    fn check_geom(op: &'static str, k: usize, stride: usize, pad: usize, dil: usize) -> Result<(), BuildError> {
        if k == 0 || k > format::MAX_KERNEL || stride == 0 || stride > 64 || dil == 0 || dil > 64 || pad > 64 {
            return err(op, format!("kernel {k}, stride {stride}, pad {pad}, dilation {dil}: need k 1..=7, stride/dil 1..=64, pad <= 64"));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_shape(
        &self,
        op: &'static str,
        x: Def,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        dil: usize,
    ) -> Result<(usize, usize, usize), BuildError> {
        Self::check_geom(op, k, stride, pad, dil)?;
        let oh = format::conv_out(x.h, k, stride, pad, dil);
        let ow = format::conv_out(x.w, k, stride, pad, dil);
        match (oh, ow) {
            (Some(oh), Some(ow)) if c_out > 0 => Ok((c_out, oh, ow)),
            _ => err(op, format!("window k={k} dil={dil} pad={pad} does not fit a {}x{} input", x.h, x.w)),
        }
    }

    fn check_len(op: &'static str, what: &str, v: &[f32], n: usize) -> Result<(), BuildError> {
        if v.len() != n {
            return err(op, format!("{what} has {} values, expected {n}", v.len()));
        }
        Ok(())
    }

    /// Per-channel `out = x * scale[c] + bias[c]`.
    pub fn affine(&mut self, x: TensorId, scale: &[f32], bias: &[f32], out: TensorId) -> Result<(), BuildError> {
        let d = self.def("affine", x)?;
        Self::check_len("affine", "scale", scale, d.c)?;
        Self::check_len("affine", "bias", bias, d.c)?;
        self.check_out("affine", &[x], out, (d.c, d.h, d.w))?;
        self.ops.push(Op::Affine { x, out, scale: scale.to_vec(), bias: bias.to_vec() });
        Ok(())
    }

    /// Full-precision conv (stem, reduction skip convs).
    pub fn conv(&mut self, x: TensorId, p: &FloatConv, out: TensorId) -> Result<(), BuildError> {
        let d = self.def("conv", x)?;
        let shape = self.conv_shape("conv", d, p.c_out, p.k, p.stride, p.pad, p.dil)?;
        Self::check_len("conv", "weights", &p.weights, p.c_out * d.c * p.k * p.k)?;
        if let Some(b) = &p.bias {
            Self::check_len("conv", "bias", b, p.c_out)?;
        }
        self.check_out("conv", &[x], out, shape)?;
        self.ops.push(Op::Conv { x, out, p: p.clone() });
        Ok(())
    }

    /// Binary conv (BN+sign folded into flip/threshold, XNOR-popcount, scale, ReLU).
    pub fn bin_conv(&mut self, x: TensorId, p: &BinConv, out: TensorId) -> Result<(), BuildError> {
        let d = self.def("bin_conv", x)?;
        let shape = self.conv_shape("bin_conv", d, p.c_out, p.k, p.stride, p.pad, p.dil)?;
        Self::check_len("bin_conv", "flip", &p.flip, d.c)?;
        Self::check_len("bin_conv", "threshold", &p.threshold, d.c)?;
        Self::check_len("bin_conv", "scale", &p.scale, p.c_out)?;
        Self::check_len("bin_conv", "weights", &p.weights, p.c_out * d.c * p.k * p.k)?;
        if let Some(f) = p.flip.iter().find(|f| ![1.0, -1.0, 0.0].contains(*f)) {
            return err("bin_conv", format!("flip {f} is not +1, -1 or 0"));
        }
        if let Some(w) = p.weights.iter().find(|w| **w != 1.0 && **w != -1.0) {
            return err("bin_conv", format!("weight {w} is not +1 or -1"));
        }
        self.check_out("bin_conv", &[x], out, shape)?;
        self.ops.push(Op::BinConv { x, out, p: p.clone() });
        Ok(())
    }

    fn pool(
        &mut self,
        op: &'static str,
        kind: u32,
        x: TensorId,
        stride: usize,
        out: TensorId,
    ) -> Result<(), BuildError> {
        let d = self.def(op, x)?;
        let shape = self.conv_shape(op, d, d.c, 3, stride, 1, 1)?;
        self.check_out(op, &[x], out, shape)?;
        self.ops.push(Op::Pool { kind, x, out, stride });
        Ok(())
    }

    /// 3x3 max pool, pad 1.
    pub fn max_pool(&mut self, x: TensorId, stride: usize, out: TensorId) -> Result<(), BuildError> {
        self.pool("max_pool", kind::MAX_POOL, x, stride, out)
    }

    /// 3x3 average pool, pad 1, padded taps not counted.
    pub fn avg_pool(&mut self, x: TensorId, stride: usize, out: TensorId) -> Result<(), BuildError> {
        self.pool("avg_pool", kind::AVG_POOL, x, stride, out)
    }

    /// `out = a + b`; `out` may be `a` or `b` itself (in place), otherwise it must not overlap them.
    pub fn add(&mut self, a: TensorId, b: TensorId, out: TensorId) -> Result<(), BuildError> {
        let da = self.def("add", a)?;
        let db = self.def("add", b)?;
        if (da.c, da.h, da.w) != (db.c, db.h, db.w) {
            return err(
                "add",
                format!("operands differ: [{}, {}, {}] vs [{}, {}, {}]", da.c, da.h, da.w, db.c, db.h, db.w),
            );
        }
        let reads: Vec<TensorId> = [a, b].into_iter().filter(|&t| t != out).collect();
        self.check_out("add", &reads, out, (da.c, da.h, da.w))?;
        self.ops.push(Op::Add { a, b, out });
        Ok(())
    }

    /// `out = 0` (the zeroise op).
    pub fn zero(&mut self, out: TensorId) -> Result<(), BuildError> {
        let d = self.def("zero", out)?;
        self.check_out("zero", &[], out, (d.c, d.h, d.w))?;
        self.ops.push(Op::Zero { out });
        Ok(())
    }

    /// Global average pool into `out` of shape `[c, 1, 1]`.
    pub fn global_avg_pool(&mut self, x: TensorId, out: TensorId) -> Result<(), BuildError> {
        let d = self.def("global_avg_pool", x)?;
        self.check_out("global_avg_pool", &[x], out, (d.c, 1, 1))?;
        self.ops.push(Op::Gap { x, out });
        Ok(())
    }

    /// `out = weights * flatten(x) + bias`; weights `[classes, n]`, out `[classes, 1, 1]`.
    pub fn linear(&mut self, x: TensorId, weights: &[f32], bias: &[f32], out: TensorId) -> Result<(), BuildError> {
        let d = self.def("linear", x)?;
        let n = d.c * d.h * d.w;
        let classes = bias.len();
        Self::check_len("linear", "weights", weights, classes * n)?;
        if classes == 0 {
            return err("linear", "no classes");
        }
        self.check_out("linear", &[x], out, (classes, 1, 1))?;
        self.ops.push(Op::Linear { x, out, weights: weights.to_vec(), bias: bias.to_vec() });
        Ok(())
    }

    /// Plans the arena (tensors and binary-conv scratch, by lifetime) and writes the file.
    pub fn finish(self, logits: TensorId) -> Result<Vec<u8>, BuildError> {
        self.def("finish", logits)?;
        if self.defs.len() > usize::from(u16::MAX) {
            return err("finish", "more than 65535 tensors");
        }
        if let Some((s, b)) = &self.affine {
            let c = self.defs[0].c;
            Self::check_len("set_input_affine", "scale", s, c)?;
            Self::check_len("set_input_affine", "bias", b, c)?;
        }
        // Lifetimes: step 0 writes the input, node i runs at step i + 1, the logits are read after.
        let n_steps = self.ops.len() + 2;
        let mut first_write = vec![usize::MAX; self.defs.len()];
        let mut last_read = vec![0usize; self.defs.len()];
        first_write[0] = 0;
        let mut scratch_blocks = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            let step = i + 1;
            let (reads, out) = op.io();
            for t in reads {
                let (r, _, _) = self.span(t);
                if first_write[r] >= step {
                    return err("finish", format!("node {i} reads tensor {} before anything writes it", t.0));
                }
                last_read[r] = last_read[r].max(step);
            }
            let (r, _, _) = self.span(out);
            first_write[r] = first_write[r].min(step);
            last_read[r] = last_read[r].max(step);
            if let Op::BinConv { x, p, .. } = op {
                let d = self.defs[x.index()];
                scratch_blocks.push((
                    i,
                    Block {
                        words: bin_scratch_words(
                            d.c,
                            p.c_out,
                            ConvGeom { k: p.k, stride: p.stride, pad: p.pad, dil: p.dil },
                            d.h,
                            d.w,
                        ),
                        start: step,
                        end: step,
                    },
                ));
            }
        }
        let (lr, _, _) = self.span(logits);
        if first_write[lr] == usize::MAX {
            return err("finish", "nothing writes the logits tensor");
        }
        last_read[lr] = n_steps - 1;
        // A tensor nothing writes still needs a valid place: it gets a phantom step after the end.
        for t in 0..self.defs.len() {
            if first_write[t] == usize::MAX {
                (first_write[t], last_read[t]) = (n_steps, n_steps);
            }
        }
        let roots: Vec<usize> = (0..self.defs.len()).filter(|&t| self.defs[t].parent.is_none()).collect();
        let mut blocks: Vec<Block> = roots
            .iter()
            .map(|&t| {
                let d = self.defs[t];
                Block { words: d.c * d.h * d.w, start: first_write[t], end: last_read[t].max(first_write[t]) }
            })
            .collect();
        blocks.extend(scratch_blocks.iter().map(|(_, b)| *b));
        let plan = plan::plan(&blocks);
        let mut root_off = vec![0usize; self.defs.len()];
        for (k, &t) in roots.iter().enumerate() {
            root_off[t] = plan.offsets[k];
        }
        let mut scratch_off = vec![0usize; self.ops.len()];
        for (k, (i, _)) in scratch_blocks.iter().enumerate() {
            scratch_off[*i] = plan.offsets[roots.len() + k];
        }
        self.write(logits, &root_off, &scratch_off, plan.arena_words, plan.lower_bound_words)
    }

    fn write(
        &self,
        logits: TensorId,
        root_off: &[usize],
        scratch_off: &[usize],
        arena: usize,
        lower: usize,
    ) -> Result<Vec<u8>, BuildError> {
        let too_big = || BuildError { op: "finish", reason: "a size exceeds 32 bits".into() };
        let u = |v: usize| u32::try_from(v).map_err(|_| too_big());
        let mut w: Vec<u32> = Vec::new();
        let flags = if self.affine.is_some() { format::FLAG_INPUT_AFFINE } else { 0 };
        w.extend([u(self.defs.len())?, u(self.ops.len())?, u(arena)?, u(lower)?, 0, u32::from(logits.0), flags, 0]);
        for (t, d) in self.defs.iter().enumerate() {
            let (parent, off) = match d.parent {
                Some(p) => (u32::from(p), root_off[usize::from(p)] + d.ch_off * d.h * d.w),
                None => (format::NO_PARENT, root_off[t]),
            };

            w.extend([u(d.c)?, u(d.h)?, u(d.w)?, parent, u(d.ch_off)?, u(off)?]);
        }
        if let Some((s, b)) = &self.affine {
            w.extend(s.iter().chain(b).map(|v| v.to_bits()));
        }
        for (i, op) in self.ops.iter().enumerate() {
            let rec = self.record(op, scratch_off[i]).map_err(|_| too_big())?;
            w.push(rec.0);
            w.push(u(rec.1.len() + 2)?);
            w.extend(rec.1);
        }
        let payload: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = Vec::with_capacity(format::HEADER_BYTES + payload.len());
        for v in [format::MAGIC, format::VERSION, u(payload.len())?, format::crc32(&payload)] {
            out.extend(v.to_le_bytes());
        }
        out.extend(payload);
        Ok(out)
    }

    /// Kind and the record words after (kind, len).
    fn record(&self, op: &Op, scratch: usize) -> Result<(u32, Vec<u32>), std::num::TryFromIntError> {
        let u = |v: usize| u32::try_from(v);
        let id = |t: &TensorId| u32::from(t.0);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        Ok(match op {
            Op::Affine { x, out, scale, bias } => {
                (kind::AFFINE, [vec![id(x), id(out)], bits(scale), bits(bias)].concat())
            }
            Op::Conv { x, out, p } => {
                let flags =
                    if p.relu { format::CONV_RELU } else { 0 } | if p.bias.is_some() { format::CONV_BIAS } else { 0 };
                let head = vec![id(x), id(out), u(p.c_out)?, u(p.k)?, u(p.stride)?, u(p.pad)?, u(p.dil)?, flags];
                (kind::CONV, [head, bits(&p.weights), bits(p.bias.as_deref().unwrap_or(&[]))].concat())
            }
            Op::BinConv { x, out, p } => {
                let c_in = self.defs[x.index()].c;
                let head = vec![id(x), id(out), u(p.c_out)?, u(p.k)?, u(p.stride)?, u(p.pad)?, u(p.dil)?, u(scratch)?];
                (
                    kind::BIN_CONV,
                    [head, bits(&p.flip), bits(&p.threshold), bits(&p.scale), pack(&p.weights, p.c_out, c_in, p.k)]
                        .concat(),
                )
            }
            Op::Pool { kind, x, out, stride } => (*kind, vec![id(x), id(out), u(*stride)?]),
            Op::Add { a, b, out } => (kind::ADD, vec![id(a), id(b), id(out)]),
            Op::Zero { out } => (kind::ZERO, vec![id(out)]),
            Op::Gap { x, out } => (kind::GLOBAL_AVG_POOL, vec![id(x), id(out)]),
            Op::Linear { x, out, weights, bias } => {
                (kind::LINEAR, [vec![id(x), id(out)], bits(weights), bits(bias)].concat())
            }
        })
    }
}

/// Packs +-1 weights `[c_out, c_in, k, k]` into `[c_out, k*k, ceil(c_in/32)]` words, LSB first.
pub fn pack(weights: &[f32], c_out: usize, c_in: usize, k: usize) -> Vec<u32> {
    let (kk, wpt) = (k * k, words_for(c_in));
    let mut packed = vec![0u32; c_out * kk * wpt];
    for o in 0..c_out {
        for c in 0..c_in {
            for t in 0..kk {
                if weights[(o * c_in + c) * kk + t] > 0.0 {
                    packed[(o * kk + t) * wpt + c / 32] |= 1 << (c % 32);
                }
            }
        }
    }
    packed
}
