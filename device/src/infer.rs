//! `Model::infer`: runs the node list over a caller-owned arena. No heap, no panics.

use crate::error::Error;
use crate::kernels::{self, Shape};
use crate::model::{Model, Node, TensorId, TensorInfo};
use core::ops::Range;

/// The network input: u8 pixels (normalised by the model's input affine) or f32 values used as
/// they are. Both are CHW, `c*h*w` elements.
#[derive(Debug, Clone, Copy)]
pub enum Input<'i> {
    U8(&'i [u8]),
    F32(&'i [f32]),
}

impl<'i> From<&'i [u8]> for Input<'i> {
    fn from(v: &'i [u8]) -> Self {
        Input::U8(v)
    }
}

impl<'i> From<&'i [f32]> for Input<'i> {
    fn from(v: &'i [f32]) -> Self {
        Input::F32(v)
    }
}

impl Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::U8(v) => v.len(),
            Input::F32(v) => v.len(),
        }
    }
}

const OVERLAP: Error = Error::Malformed { offset: 0, what: "arena ranges of a node overlap" };

/// The arena around one written range: read-only views of everything before and after it.
struct Reader<'s> {
    before: &'s [u32],
    after: &'s [u32],
    after_start: usize,
}

impl<'s> Reader<'s> {
    /// A range that must lie wholly before or wholly after the written range.
    fn read(&self, r: Range<usize>) -> Result<&'s [u32], Error> {
        if r.end <= self.before.len() {
            self.before.get(r).ok_or(OVERLAP)
        } else if r.start >= self.after_start {
            self.after.get(r.start - self.after_start..r.end - self.after_start).ok_or(OVERLAP)
        } else {
            Err(OVERLAP)
        }
    }
}

/// Three disjoint parts of the arena: before, inside and after a range.
type Parts<'s> = (&'s mut [u32], &'s mut [u32], &'s mut [u32]);

/// Splits `arena` into (before `w`, `w`, after `w`).
fn split3(arena: &mut [u32], w: Range<usize>) -> Result<Parts<'_>, Error> {
    let (before, rest) = arena.split_at_mut_checked(w.start).ok_or(OVERLAP)?;
    let (written, after) = rest.split_at_mut_checked(w.end.checked_sub(w.start).ok_or(OVERLAP)?).ok_or(OVERLAP)?;
    Ok((before, written, after))
}

/// The written range `w` (mutable) and a reader for every range disjoint from it.
fn split(arena: &mut [u32], w: Range<usize>) -> Result<(Reader<'_>, &mut [u32]), Error> {
    let after_start = w.end;
    let (before, written, after) = split3(arena, w)?;
    Ok((Reader { before, after, after_start }, written))
}

/// Mutable access to `r`, which must lie wholly inside `before` or `after` of a `split3` at `w`.
fn other_mut<'s>(
    before: &'s mut [u32],
    after: &'s mut [u32],
    w: &Range<usize>,
    r: Range<usize>,
) -> Result<&'s mut [u32], Error> {
    if r.end <= before.len() {
        before.get_mut(r).ok_or(OVERLAP)
    } else if r.start >= w.end {
        after.get_mut(r.start - w.end..r.end - w.end).ok_or(OVERLAP)
    } else {
        Err(OVERLAP)
    }
}

fn f32s(words: &[u32]) -> &[f32] {
    bytemuck::cast_slice(words)
}

fn f32s_mut(words: &mut [u32]) -> &mut [f32] {
    bytemuck::cast_slice_mut(words)
}

fn shape(t: &TensorInfo) -> Shape {
    Shape { c: t.c, h: t.h, w: t.w }
}

impl Model<'_> {
    /// Runs the network on one image.
    ///
    /// `input`: `c*h*w` CHW values (`&[u8]` pixels or `&[f32]`); `arena`: at least
    /// `arena_words()` u32 words (contents on entry do not matter); `logits`: exactly
    /// `classes()` values, written on success.
    pub fn infer<'i>(&self, input: impl Into<Input<'i>>, arena: &mut [u32], logits: &mut [f32]) -> Result<(), Error> {
        self.infer_observed(input, arena, logits, |_| {})
    }

    /// [`Model::infer`], calling `observe(i)` before node `i` runs and `observe(n_nodes())` after
    /// the last one (the firmware reads a timer there to profile each node).
    pub fn infer_observed<'i>(
        &self,
        input: impl Into<Input<'i>>,
        arena: &mut [u32],
        logits: &mut [f32],
        mut observe: impl FnMut(usize),
    ) -> Result<(), Error> {
        let input = input.into();
        if arena.len() < self.arena_words() {
            return Err(Error::ArenaTooSmall { needed_bytes: self.arena_bytes(), got_bytes: arena.len() * 4 });
        }
        if logits.len() != self.classes() {
            return Err(Error::LogitsSize { expected: self.classes(), got: logits.len() });
        }
        let x = self.tensor_info(self.input())?;
        if input.len() != x.len() {
            return Err(Error::InputSize { expected: x.len(), got: input.len() });
        }
        let x_arena: &mut [f32] = bytemuck::cast_slice_mut(arena.get_mut(x.arena_range()).ok_or(OVERLAP)?);
        match input {
            Input::F32(v) => x_arena.copy_from_slice(v),
            Input::U8(px) => match self.input_affine() {
                Some((scale, bias)) => {
                    let channels = x_arena.chunks_exact_mut(x.h * x.w).zip(px.chunks_exact(x.h * x.w));
                    for ((dst, src), (&s, &b)) in channels.zip(scale.iter().zip(bias)) {
                        for (d, &p) in dst.iter_mut().zip(src) {
                            *d = f32::from(p) * s + b;
                        }
                    }
                }
                None => x_arena.iter_mut().zip(px).for_each(|(d, &p)| *d = f32::from(p)),
            },
        }
        for (i, node) in self.nodes().enumerate() {
            observe(i);
            self.run_node(&node, arena)?;
        }
        observe(self.n_nodes());
        let l = self.tensor_info(self.logits())?;
        logits.copy_from_slice(f32s(arena.get(l.arena_range()).ok_or(OVERLAP)?));
        Ok(())
    }

    fn info(&self, id: TensorId) -> Result<(TensorInfo, Range<usize>), Error> {
        let t = self.tensor_info(id)?;
        Ok((t, t.arena_range()))
    }

    /// Runs one node; only reachable with a parsed (validated) model.
    pub(crate) fn run_node(&self, node: &Node<'_>, arena: &mut [u32]) -> Result<(), Error> {
        let (out, out_r) = self.info(node.output())?;
        let os = shape(&out);
        match *node {
            Node::Affine { x, scale, bias, .. } => {
                let (xi, xr) = self.info(x)?;
                let (rd, o) = split(arena, out_r)?;
                kernels::affine(f32s(rd.read(xr)?), xi.h * xi.w, scale, bias, f32s_mut(o));
            }
            Node::Conv(c) => {
                let (xi, xr) = self.info(c.x)?;
                let (rd, o) = split(arena, out_r)?;
                let xv = f32s(rd.read(xr)?);
                kernels::conv2d(xv, shape(&xi), c.geom, c.weights, c.bias, c.relu, f32s_mut(o), os);
            }
            Node::BinConv(b) => {
                let (xi, xr) = self.info(b.x)?;
                let (xs, lanes) = (shape(&xi), kernels::use_lanes(b.c_in, b.geom, os.h, os.w));
                let n_bits = if lanes {
                    kernels::phase_row_words(b.c_in, xi.h, xi.w, b.geom.stride)
                } else {
                    xi.h * xi.w * b.words_per_tap()
                };
                let scratch = b.scratch..b.scratch + b.scratch_words(xi.h, xi.w);
                {
                    let (rd, sc) = split(arena, scratch.clone())?;
                    let (x, bits) = (f32s(rd.read(xr)?), sc.get_mut(..n_bits).ok_or(OVERLAP)?);
                    if lanes {
                        kernels::binarize_rows(x, xs, b.geom.stride, b.flip, b.threshold, bits);
                    } else {
                        kernels::binarize(x, xi.h * xi.w, b.flip, b.threshold, bits);
                    }
                }
                let (before, o, after) = split3(arena, out_r.clone())?;
                let sc = other_mut(before, after, &out_r, scratch)?;
                let (bits, work) = sc.split_at_mut_checked(n_bits).ok_or(OVERLAP)?;
                if lanes {
                    kernels::bin_conv_lanes(bits, xs, b.geom, b.scale, b.packed, work, f32s_mut(o), os);
                } else {
                    kernels::bin_conv_dense(bits, xs, b.geom, b.scale, b.packed, work, f32s_mut(o), os);
                }
            }
            Node::MaxPool { x, stride, .. } | Node::AvgPool { x, stride, .. } => {
                let (xi, xr) = self.info(x)?;
                let (rd, o) = split(arena, out_r)?;
                let xv = f32s(rd.read(xr)?);
                if matches!(node, Node::MaxPool { .. }) {
                    kernels::max_pool(xv, shape(&xi), stride, f32s_mut(o), os);
                } else {
                    kernels::avg_pool(xv, shape(&xi), stride, f32s_mut(o), os);
                }
            }
            Node::Add { a, b, out: o_id } => {
                let (_, ar) = self.info(a)?;
                let (_, br) = self.info(b)?;
                let (rd, o) = split(arena, out_r)?;
                let acc = f32s_mut(o);
                if a == o_id && b == o_id {
                    acc.iter_mut().for_each(|v| *v += *v);
                } else if a == o_id || b == o_id {
                    // In place: acc + other (f32 addition is commutative, so b + a == a + b).
                    let other = if a == o_id { br } else { ar };
                    kernels::add_assign(acc, f32s(rd.read(other)?));
                } else {
                    kernels::add_into(f32s(rd.read(ar)?), f32s(rd.read(br)?), acc);
                }
            }
            Node::Zero { .. } => {
                arena.get_mut(out_r).ok_or(OVERLAP)?.fill(0);
            }
            Node::GlobalAvgPool { x, .. } => {
                let (xi, xr) = self.info(x)?;
                let (rd, o) = split(arena, out_r)?;
                kernels::global_avg_pool(f32s(rd.read(xr)?), xi.h * xi.w, f32s_mut(o));
            }
            Node::Linear { x, weights, bias, .. } => {
                let (_, xr) = self.info(x)?;
                let (rd, o) = split(arena, out_r)?;
                kernels::linear(f32s(rd.read(xr)?), weights, bias, f32s_mut(o));
            }
        }
        Ok(())
    }
}
