//! `Model::parse`: a zero-copy view of a packed model, validated once, and its graph accessors.

use crate::error::Error;
use crate::format::{self, conv_out, kind, words_for};
use core::ops::Range;

mod nodes;

pub use nodes::{bin_scratch_words, BinConvNode, ConvGeom, ConvNode, Node, TensorId, TensorInfo};

/// A parsed model: borrows everything from the file bytes (flash), allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    words: &'a [u32],
    n_tensors: usize,
    n_nodes: usize,
    arena_words: usize,
    lower_bound_words: usize,
    input: TensorId,
    logits: TensorId,
    tensors_at: usize,
    affine_at: Option<usize>,
    nodes_at: usize,
}

/// Reads word `i` of the file (byte offset `4 * i`).
fn word(words: &[u32], i: usize) -> Result<u32, Error> {
    words.get(i).copied().ok_or(Error::Truncated { offset: i * 4, needed: 4, len: words.len() * 4 })
}

fn usize_at(words: &[u32], i: usize) -> Result<usize, Error> {
    usize::try_from(word(words, i)?).map_err(|_| Error::Malformed { offset: i * 4, what: "value exceeds usize" })
}

fn slice_at(words: &[u32], at: usize, n: usize) -> Result<&[u32], Error> {
    let end = at.checked_add(n).ok_or(Error::Malformed { offset: at * 4, what: "length overflows" })?;
    words.get(at..end).ok_or(Error::Truncated { offset: at * 4, needed: n.saturating_mul(4), len: words.len() * 4 })
}

fn f32s_at(words: &[u32], at: usize, n: usize) -> Result<&[f32], Error> {
    Ok(bytemuck::cast_slice(slice_at(words, at, n)?))
}

fn malformed(word_index: usize, what: &'static str) -> Error {
    Error::Malformed { offset: word_index * 4, what }
}

fn mul(a: usize, b: usize, at: usize) -> Result<usize, Error> {
    a.checked_mul(b).ok_or(malformed(at, "size overflows"))
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

impl<'a> Model<'a> {
    /// Parses and fully validates a packed model: magic, version, CRC32, tensor table, every node's
    /// shapes, parameter lengths and arena ranges. After this, `infer` cannot meet a malformed graph.
    ///
    /// `bytes` must start on a 4-byte boundary (weights are read in place as u32 words).
    pub fn parse(bytes: &'a [u8]) -> Result<Model<'a>, Error> {
        let len = bytes.len();
        let head = bytes.get(..format::HEADER_BYTES).ok_or(Error::Truncated {
            offset: 0,
            needed: format::HEADER_BYTES,
            len,
        })?;
        let head_word = |i: usize| -> u32 {
            let mut b = [0u8; 4];
            for (dst, src) in b.iter_mut().zip(head.iter().skip(4 * i)) {
                *dst = *src;
            }
            u32::from_le_bytes(b)
        };
        if head_word(0) != format::MAGIC {
            return Err(Error::BadMagic { found: head_word(0) });
        }
        if head_word(1) != format::VERSION {
            return Err(Error::BadVersion { found: head_word(1) });
        }
        let payload_len = usize::try_from(head_word(2)).map_err(|_| malformed(2, "payload length"))?;
        if payload_len % 4 != 0 {
            return Err(malformed(2, "payload length is not a multiple of 4"));
        }
        let total = format::HEADER_BYTES.checked_add(payload_len).ok_or(malformed(2, "payload length overflows"))?;
        let file =
            bytes.get(..total).ok_or(Error::Truncated { offset: format::HEADER_BYTES, needed: payload_len, len })?;
        let payload = file.get(format::HEADER_BYTES..).unwrap_or(&[]);
        let computed = format::crc32(payload);
        if computed != head_word(3) {
            return Err(Error::BadCrc { stored: head_word(3), computed });
        }
        let words: &[u32] = bytemuck::try_cast_slice(file).map_err(|_| Error::Misaligned)?;
        Self::from_words(words)
    }

    fn from_words(words: &'a [u32]) -> Result<Model<'a>, Error> {
        let m = format::HEADER_BYTES / 4;
        let n_tensors = usize_at(words, m)?;
        let n_nodes = usize_at(words, m + 1)?;
        let arena_words = usize_at(words, m + 2)?;
        let lower_bound_words = usize_at(words, m + 3)?;
        let id = |i: usize| -> Result<TensorId, Error> {
            let v = word(words, i)?;
            match u16::try_from(v) {
                Ok(v) if usize::from(v) < n_tensors => Ok(TensorId(v)),
                _ => Err(malformed(i, "tensor id out of range")),
            }
        };
        let input = id(m + 4)?;
        let logits = id(m + 5)?;
        let flags = word(words, m + 6)?;
        let tensors_at = m + format::META_WORDS;
        let table = mul(n_tensors, format::TENSOR_WORDS, m)?;
        let after_tensors = tensors_at.checked_add(table).ok_or(malformed(m, "tensor table overflows"))?;
        let mut model = Model {
            words,
            n_tensors,
            n_nodes,
            arena_words,
            lower_bound_words,
            input,
            logits,
            tensors_at,
            affine_at: None,
            nodes_at: after_tensors,
        };
        for t in 0..n_tensors {
            model.check_tensor(t)?;
        }
        let input_info = model.tensor_info(input)?;
        if input_info.parent.is_some() {
            return Err(malformed(m + 4, "input tensor must be a root tensor"));
        }
        if flags & format::FLAG_INPUT_AFFINE != 0 {
            model.affine_at = Some(after_tensors);
            model.nodes_at =
                after_tensors.checked_add(mul(2, input_info.c, m + 6)?).ok_or(malformed(m + 6, "affine overflows"))?;
            slice_at(words, after_tensors, 2 * input_info.c)?;
        }
        let mut at = model.nodes_at;
        for _ in 0..n_nodes {
            let (node, next) = model.node_at(at)?;
            model.check_node(&node, at)?;
            at = next;
        }
        if at != words.len() {
            return Err(malformed(at, "bytes left after the last node"));
        }
        if lower_bound_words > arena_words {
            return Err(malformed(m + 3, "liveness lower bound exceeds the arena"));
        }
        Ok(model)
    }

    fn check_tensor(&self, t: usize) -> Result<(), Error> {
        let at = self.tensors_at + t * format::TENSOR_WORDS;
        let info = self.tensor_info(TensorId(u16::try_from(t).map_err(|_| malformed(at, "too many tensors"))?))?;
        if info.c == 0 || info.h == 0 || info.w == 0 {
            return Err(malformed(at, "tensor has a zero dimension"));
        }
        let n = mul(mul(info.c, info.h, at)?, info.w, at)?;
        let end = info.arena_offset.checked_add(n).ok_or(malformed(at + 5, "arena offset overflows"))?;
        if end > self.arena_words {
            return Err(malformed(at + 5, "tensor lies outside the arena"));
        }
        if let Some(p) = info.parent {
            let parent = self.tensor_info(p)?;
            let expected =
                info.channel_offset.checked_mul(info.h * info.w).and_then(|o| parent.arena_offset.checked_add(o));
            if parent.parent.is_some()
                || parent.h != info.h
                || parent.w != info.w
                || info.channel_offset.checked_add(info.c).is_none_or(|e| e > parent.c)
                || expected != Some(info.arena_offset)
            {
                return Err(malformed(at + 3, "channel slice does not fit its parent"));
            }
        } else if info.channel_offset != 0 {
            return Err(malformed(at + 4, "root tensor with a channel offset"));
        }
        Ok(())
    }

    /// Shape, slice parent and arena placement of tensor `id`.
    pub fn tensor_info(&self, id: TensorId) -> Result<TensorInfo, Error> {
        if id.index() >= self.n_tensors {
            return Err(malformed(self.tensors_at, "tensor id out of range"));
        }
        let at = self.tensors_at + id.index() * format::TENSOR_WORDS;
        let e = slice_at(self.words, at, format::TENSOR_WORDS)?;
        let get = |i: usize| -> Result<usize, Error> { usize_at(e, i).map_err(|_| malformed(at + i, "tensor field")) };
        let parent_word = e.get(3).copied().unwrap_or(format::NO_PARENT);
        let parent = if parent_word == format::NO_PARENT {
            None
        } else {
            match u16::try_from(parent_word) {
                Ok(p) if usize::from(p) < self.n_tensors && usize::from(p) != id.index() => Some(TensorId(p)),
                _ => return Err(malformed(at + 3, "bad parent tensor id")),
            }
        };
        Ok(TensorInfo { c: get(0)?, h: get(1)?, w: get(2)?, parent, channel_offset: get(4)?, arena_offset: get(5)? })
    }

    /// Same as [`Model::tensor_info`], named for the ONNX exporter: `model.tensor(id)`.
    pub fn tensor(&self, id: TensorId) -> Result<TensorInfo, Error> {
        self.tensor_info(id)
    }

    /// Number of tensors in the table; ids are `0..n_tensors()`.
    pub fn n_tensors(&self) -> usize {
        self.n_tensors
    }
    /// Number of nodes.
    pub fn n_nodes(&self) -> usize {
        self.n_nodes
    }
    /// The input tensor (the f32 view the u8 pixels are normalised into).
    pub fn input(&self) -> TensorId {
        self.input
    }
    /// The tensor copied out as logits.
    pub fn logits(&self) -> TensorId {
        self.logits
    }
    /// Input shape `(c, h, w)`; `infer` takes `c*h*w` values, CHW.
    pub fn input_shape(&self) -> (usize, usize, usize) {
        self.tensor_info(self.input).map(|t| (t.c, t.h, t.w)).unwrap_or((0, 0, 0))
    }
    /// Number of logits (`c*h*w` of the logits tensor).
    pub fn classes(&self) -> usize {
        self.tensor_info(self.logits).map(|t| t.len()).unwrap_or(0)
    }
    /// Arena size `infer` needs, in u32 words.
    pub fn arena_words(&self) -> usize {
        self.arena_words
    }
    /// Arena size `infer` needs, in bytes (`4 * arena_words()`).
    pub fn arena_bytes(&self) -> usize {
        self.arena_words * 4
    }
    /// The liveness lower bound in bytes: the largest sum of simultaneously live tensors and scratch.
    pub fn liveness_lower_bound_bytes(&self) -> usize {
        self.lower_bound_words * 4
    }
    /// The u8 input normalisation `(scale[c], bias[c])`: `x = pixel * scale[c] + bias[c]`.
    /// `None` means pixels are used as they are (`x = pixel as f32`).
    pub fn input_affine(&self) -> Option<(&'a [f32], &'a [f32])> {
        let at = self.affine_at?;
        let c = self.tensor_info(self.input).ok()?.c;
        Some((f32s_at(self.words, at, c).ok()?, f32s_at(self.words, at + c, c).ok()?))
    }
    /// The nodes in execution order.
    pub fn nodes(&self) -> Nodes<'a> {
        Nodes { model: *self, at: self.nodes_at, left: self.n_nodes }
    }

    /// Decodes the node record at word `at`; returns it and the word index of the next record.
    pub(crate) fn node_at(&self, at: usize) -> Result<(Node<'a>, usize), Error> {
        let w = self.words;
        let node_kind = word(w, at)?;
        let len = usize_at(w, at + 1)?;
        if len < 3 {
            return Err(malformed(at + 1, "node record too short"));
        }
        let rec = slice_at(w, at, len)?;
        let next = at + len;
        let id = |i: usize| -> Result<TensorId, Error> {
            let v = rec.get(i).copied().ok_or(malformed(at + i, "node record too short"))?;
            match u16::try_from(v) {
                Ok(v) if usize::from(v) < self.n_tensors => Ok(TensorId(v)),
                _ => Err(malformed(at + i, "tensor id out of range")),
            }
        };
        let field =
            |i: usize| -> Result<usize, Error> { usize_at(rec, i).map_err(|_| malformed(at + i, "node field")) };
        let exact = |used: usize| -> Result<(), Error> {
            if used == len {
                Ok(())
            } else {
                Err(malformed(at + 1, "node record length does not match its parameters"))
            }
        };
        let node = match node_kind {
            kind::AFFINE => {
                let (x, out) = (id(2)?, id(3)?);
                let c = self.tensor_info(x)?.c;
                exact(4 + 2 * c)?;
                Node::Affine { x, out, scale: f32s_at(rec, 4, c)?, bias: f32s_at(rec, 4 + c, c)? }
            }
            kind::CONV => {
                let (x, out) = (id(2)?, id(3)?);
                let c_in = self.tensor_info(x)?.c;
                let c_out = field(4)?;
                let geom = self.geom(rec, at)?;
                let flags = field(9)?;
                let n_w = mul(mul(c_out, c_in, at)?, geom.k * geom.k, at)?;
                let has_bias = flags & (format::CONV_BIAS as usize) != 0;
                exact(10 + n_w + if has_bias { c_out } else { 0 })?;
                let weights = f32s_at(rec, 10, n_w)?;
                let bias = if has_bias { Some(f32s_at(rec, 10 + n_w, c_out)?) } else { None };
                let relu = flags & (format::CONV_RELU as usize) != 0;
                Node::Conv(ConvNode { x, out, c_in, c_out, geom, relu, weights, bias })
            }
            kind::BIN_CONV => {
                let (x, out) = (id(2)?, id(3)?);
                let c_in = self.tensor_info(x)?.c;
                let c_out = field(4)?;
                let geom = self.geom(rec, at)?;
                let scratch = field(9)?;
                if words_for(c_in) > crate::kernels::MAX_BIN_WORDS {
                    return Err(malformed(at + 2, "binary conv input has more than 8192 channels"));
                }
                let n_packed = mul(mul(c_out, geom.k * geom.k, at)?, words_for(c_in), at)?;
                exact(10 + 2 * c_in + c_out + n_packed)?;
                Node::BinConv(BinConvNode {
                    x,
                    out,
                    c_in,
                    c_out,
                    geom,
                    scratch,
                    flip: f32s_at(rec, 10, c_in)?,
                    threshold: f32s_at(rec, 10 + c_in, c_in)?,
                    scale: f32s_at(rec, 10 + 2 * c_in, c_out)?,
                    packed: slice_at(rec, 10 + 2 * c_in + c_out, n_packed)?,
                })
            }
            kind::MAX_POOL | kind::AVG_POOL => {
                exact(5)?;
                let (x, out, stride) = (id(2)?, id(3)?, field(4)?);
                if node_kind == kind::MAX_POOL {
                    Node::MaxPool { x, out, stride }
                } else {
                    Node::AvgPool { x, out, stride }
                }
            }
            kind::ADD => {
                exact(5)?;
                Node::Add { a: id(2)?, b: id(3)?, out: id(4)? }
            }
            kind::ZERO => {
                exact(3)?;
                Node::Zero { out: id(2)? }
            }
            kind::GLOBAL_AVG_POOL => {
                exact(4)?;
                Node::GlobalAvgPool { x: id(2)?, out: id(3)? }
            }
            kind::LINEAR => {
                let (x, out) = (id(2)?, id(3)?);
                let n = self.tensor_info(x)?.len();
                let classes = self.tensor_info(out)?.len();
                let n_w = mul(n, classes, at)?;
                exact(4 + n_w + classes)?;
                Node::Linear { x, out, weights: f32s_at(rec, 4, n_w)?, bias: f32s_at(rec, 4 + n_w, classes)? }
            }
            _ => return Err(malformed(at, "unknown node kind")),
        };
        Ok((node, next))
    }

    fn geom(&self, rec: &[u32], at: usize) -> Result<ConvGeom, Error> {
        let f = |i: usize| usize_at(rec, i).map_err(|_| malformed(at + i, "conv geometry"));
        let g = ConvGeom { k: f(5)?, stride: f(6)?, pad: f(7)?, dil: f(8)? };
        if g.k == 0
            || g.k > format::MAX_KERNEL
            || g.stride == 0
            || g.dil == 0
            || g.pad > 64
            || g.dil > 64
            || g.stride > 64
        {
            return Err(malformed(at + 5, "conv geometry out of range (k 1..=7, stride/dil 1..=64, pad <= 64)"));
        }
        Ok(g)
    }

    /// Shape and aliasing rules of one node, checked once at parse time.
    fn check_node(&self, node: &Node<'a>, at: usize) -> Result<(), Error> {
        let out = self.tensor_info(node.output())?;
        let shape_err = malformed(at, "node output shape does not match its input");
        let disjoint = |x: TensorId| -> Result<TensorInfo, Error> {
            let xi = self.tensor_info(x)?;
            if overlaps(&xi.arena_range(), &out.arena_range()) {
                return Err(malformed(at, "node reads and writes overlapping arena ranges"));
            }
            Ok(xi)
        };
        match *node {
            Node::Affine { x, .. } => {
                let xi = disjoint(x)?;
                if (xi.c, xi.h, xi.w) != (out.c, out.h, out.w) {
                    return Err(shape_err);
                }
            }
            Node::Conv(c) => {
                let xi = disjoint(c.x)?;
                self.check_conv_shape(&xi, &out, c.c_out, c.geom).ok_or(shape_err)?;
            }
            Node::BinConv(b) => {
                let xi = disjoint(b.x)?;
                self.check_conv_shape(&xi, &out, b.c_out, b.geom).ok_or(shape_err)?;
                let n = b.scratch_words(xi.h, xi.w);
                let scratch = b.scratch..b.scratch.checked_add(n).ok_or(malformed(at + 9, "scratch overflows"))?;
                if scratch.end > self.arena_words
                    || overlaps(&scratch, &xi.arena_range())
                    || overlaps(&scratch, &out.arena_range())
                {
                    return Err(malformed(at + 9, "binary conv scratch outside the arena or overlapping its tensors"));
                }
            }
            Node::MaxPool { x, stride, .. } | Node::AvgPool { x, stride, .. } => {
                let xi = disjoint(x)?;
                let pooled = (conv_out(xi.h, 3, stride, 1, 1), conv_out(xi.w, 3, stride, 1, 1));
                if stride > 64 || (xi.c, Some(out.h), Some(out.w)) != (out.c, pooled.0, pooled.1) {
                    return Err(shape_err);
                }
            }
            Node::Add { a, b, .. } => {
                for t in [a, b] {
                    let ti = self.tensor_info(t)?;
                    if (ti.c, ti.h, ti.w) != (out.c, out.h, out.w) {
                        return Err(shape_err);
                    }
                    if t != node.output() && overlaps(&ti.arena_range(), &out.arena_range()) {
                        return Err(malformed(at, "add output partly overlaps an input"));
                    }
                }
            }
            Node::Zero { .. } => {}
            Node::GlobalAvgPool { x, .. } => {
                let xi = disjoint(x)?;
                if (out.c, out.h, out.w) != (xi.c, 1, 1) {
                    return Err(shape_err);
                }
            }
            Node::Linear { x, .. } => {
                disjoint(x)?;
            }
        }
        Ok(())
    }

    fn check_conv_shape(&self, xi: &TensorInfo, out: &TensorInfo, c_out: usize, g: ConvGeom) -> Option<()> {
        let oh = conv_out(xi.h, g.k, g.stride, g.pad, g.dil)?;
        let ow = conv_out(xi.w, g.k, g.stride, g.pad, g.dil)?;
        ((out.c, out.h, out.w) == (c_out, oh, ow)).then_some(())
    }
}

/// Iterator over a model's nodes in execution order.
#[derive(Debug, Clone)]
pub struct Nodes<'a> {
    model: Model<'a>,
    at: usize,
    left: usize,
}

impl<'a> Iterator for Nodes<'a> {
    type Item = Node<'a>;
    fn next(&mut self) -> Option<Node<'a>> {
        if self.left == 0 {
            return None;
        }
        // Parse validated every record, so decoding cannot fail here; stop rather than panic if it did.
        let (node, next) = self.model.node_at(self.at).ok()?;
        self.at = next;
        self.left -= 1;
        Some(node)
    }
}
