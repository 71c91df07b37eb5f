//! The graph a packed model describes: tensors, conv geometry and the node kinds.

use crate::format::{self, words_for};
use core::ops::Range;

/// Index of a tensor in the model's tensor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TensorId(pub u16);

impl TensorId {
    /// The table index as a usize.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A tensor of the graph: per-image CHW f32 (batch 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorInfo {
    /// Channels, height, width.
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// For a channel slice of a concat: the whole tensor it is a part of.
    pub parent: Option<TensorId>,
    /// First channel of this slice inside `parent` (0 for a root tensor).
    pub channel_offset: usize,
    /// Offset of element `[0, 0, 0]` in the arena, in 4-byte words.
    pub arena_offset: usize,
}

impl TensorInfo {
    /// Number of f32 elements, `c * h * w`.
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// True for a tensor with no elements (never in a valid model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Arena word range holding this tensor.
    pub fn arena_range(&self) -> Range<usize> {
        self.arena_offset..self.arena_offset + self.len()
    }
}

/// Geometry shared by the float and binary convs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    /// Kernel size k (k x k window), 1..=7.
    pub k: usize,
    pub stride: usize,
    /// Zero padding on each side, in input pixels.
    pub pad: usize,
    /// Dilation: distance between taps, in input pixels.
    pub dil: usize,
}

/// A full-precision conv (stem, reduction skip convs): `out = relu?(bias + sum w * x)`.
#[derive(Debug, Clone, Copy)]
pub struct ConvNode<'a> {
    pub x: TensorId,
    pub out: TensorId,
    pub c_in: usize,
    pub c_out: usize,
    pub geom: ConvGeom,
    pub relu: bool,
    /// `[c_out, c_in, k, k]`.
    pub weights: &'a [f32],
    /// `[c_out]`.
    pub bias: Option<&'a [f32]>,
}

/// A binary conv: BN+sign folded into `x * flip[c] >= threshold[c]`, XNOR-popcount over valid taps,
/// then `out = max(0, count * scale[o])`.
#[derive(Debug, Clone, Copy)]
pub struct BinConvNode<'a> {
    pub x: TensorId,
    pub out: TensorId,
    pub c_in: usize,
    pub c_out: usize,
    pub geom: ConvGeom,
    /// Arena word offset of this node's scratch: `[h_in*w_in*words]` input bits, then the dense
    /// kernel's work words (see [`bin_scratch_words`]).
    pub scratch: usize,
    /// `[c_in]`, each +1, -1 or 0.
    pub flip: &'a [f32],
    /// `[c_in]`.
    pub threshold: &'a [f32],
    /// `[c_out]`.
    pub scale: &'a [f32],
    /// `[c_out, k*k, words]` with `words = ceil(c_in/32)`; bit `c % 32` of word `c / 32` is 1 for a +1 weight.
    pub packed: &'a [u32],
}

impl BinConvNode<'_> {
    /// Packed words per tap: `ceil(c_in / 32)`.
    pub fn words_per_tap(&self) -> usize {
        words_for(self.c_in)
    }
    /// Scratch words this node needs (see [`bin_scratch_words`]).
    pub fn scratch_words(&self, h_in: usize, w_in: usize) -> usize {
        bin_scratch_words(self.c_in, self.c_out, self.geom, h_in, w_in)
    }
    /// Weight `[o, c, ky, kx]` as +1.0 or -1.0 (`None` outside the shape).
    pub fn weight(&self, o: usize, c: usize, ky: usize, kx: usize) -> Option<f32> {
        let k = self.geom.k;
        if o >= self.c_out || c >= self.c_in || ky >= k || kx >= k {
            return None;
        }
        let wpt = self.words_per_tap();
        let word = self.packed.get((o * k * k + ky * k + kx) * wpt + c / format::BITS)?;
        Some(if (word >> (c % format::BITS)) & 1 == 1 { 1.0 } else { -1.0 })
    }
    /// All weights as +-1.0 in `[c_out, c_in, k, k]` order (the float model's layout).
    pub fn weights_pm1(&self) -> impl Iterator<Item = f32> + '_ {
        let k = self.geom.k;
        (0..self.c_out).flat_map(move |o| {
            (0..self.c_in).flat_map(move |c| (0..k * k).map(move |t| self.weight(o, c, t / k, t % k).unwrap_or(0.0)))
        })
    }
}

/// Scratch words of a binary conv: the dense-row kernel's packed input bits
/// (`h_in*w_in*ceil(c_in/32)`) and work words ([`crate::kernels::dense_work_words`]), and where
/// [`crate::kernels::lanes_pay`] at least the lane kernel's phase rows and work words
/// ([`crate::kernels::phase_row_words`], [`crate::kernels::lane_work_words`]): which one runs
/// depends on the target ([`crate::kernels::use_lanes`]), the plan written at export does not.
pub fn bin_scratch_words(c_in: usize, c_out: usize, g: ConvGeom, h_in: usize, w_in: usize) -> usize {
    use crate::kernels::{dense_work_words, lane_work_words, lanes_pay, out_width, phase_row_words};
    let bits = h_in.saturating_mul(w_in).saturating_mul(words_for(c_in));
    let dense = bits.saturating_add(dense_work_words(c_in, c_out, g, h_in, w_in));
    if lanes_pay(c_in, g, out_width(h_in, g), out_width(w_in, g)) {
        let lanes = phase_row_words(c_in, h_in, w_in, g.stride).saturating_add(lane_work_words(c_in, g, h_in, w_in));
        dense.max(lanes)
    } else {
        dense
    }
}

/// One step of the network. Every node writes exactly one tensor, `out`.
#[derive(Debug, Clone, Copy)]
pub enum Node<'a> {
    /// Per-channel `out = x * scale[c] + bias[c]` (BatchNorm in eval mode).
    Affine {
        x: TensorId,
        out: TensorId,
        scale: &'a [f32],
        bias: &'a [f32],
    },
    Conv(ConvNode<'a>),
    BinConv(BinConvNode<'a>),
    /// 3x3 max pool, pad 1 (padding never wins).
    MaxPool {
        x: TensorId,
        out: TensorId,
        stride: usize,
    },
    /// 3x3 average pool, pad 1, dividing by the number of valid taps.
    AvgPool {
        x: TensorId,
        out: TensorId,
        stride: usize,
    },
    /// `out = a + b`; `out` may be `a` or `b` itself.
    Add {
        a: TensorId,
        b: TensorId,
        out: TensorId,
    },
    /// `out = 0`.
    Zero {
        out: TensorId,
    },
    /// `out[c] = mean over h, w of x[c]`; `out` is `[c, 1, 1]`.
    GlobalAvgPool {
        x: TensorId,
        out: TensorId,
    },
    /// `out[j] = sum_i w[j, i] * x[i] + bias[j]`, x flattened; weights `[classes, n]`.
    Linear {
        x: TensorId,
        out: TensorId,
        weights: &'a [f32],
        bias: &'a [f32],
    },
}

impl Node<'_> {
    /// The tensor this node writes.
    pub fn output(&self) -> TensorId {
        match *self {
            Node::Affine { out, .. }
            | Node::MaxPool { out, .. }
            | Node::AvgPool { out, .. }
            | Node::Add { out, .. }
            | Node::Zero { out }
            | Node::GlobalAvgPool { out, .. }
            | Node::Linear { out, .. } => out,
            Node::Conv(c) => c.out,
            Node::BinConv(b) => b.out,
        }
    }
    /// The tensors this node reads (up to two).
    pub fn inputs(&self) -> [Option<TensorId>; 2] {
        match *self {
            Node::Affine { x, .. }
            | Node::MaxPool { x, .. }
            | Node::AvgPool { x, .. }
            | Node::GlobalAvgPool { x, .. }
            | Node::Linear { x, .. } => [Some(x), None],
            Node::Conv(c) => [Some(c.x), None],
            Node::BinConv(b) => [Some(b.x), None],
            Node::Add { a, b, .. } => [Some(a), Some(b)],
            Node::Zero { .. } => [None, None],
        }
    }
}
