//! A define-by-run tape for reverse-mode autodiff over any `Backend`.
//!
//! A forward pass records one node per op: its value and a closure that maps the gradient of
//! the value to gradients of the op's inputs. `backward` walks the nodes in reverse. Parameters
//! are borrowed from a `ParamStore` for the lifetime of the tape, so nothing is copied.

use std::rc::Rc;

use super::backend::Backend;
use super::params::{Group, ParamId, ParamStore};

/// A value recorded on a tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var(pub(crate) usize);

pub(crate) enum Value<'p, B: Backend> {
    Owned(B::Buf),
    Borrowed(&'p B::Buf),
}

/// Maps the gradient of a node's value to (input, gradient) pairs. It takes the gradient by
/// value, so that an op that passes it on unchanged (add, reshape) need not copy it.
pub(crate) type BackFn<'p, B> =
    Box<dyn FnOnce(&B, &Tape<'p, B>, <B as Backend>::Buf) -> Vec<(Var, <B as Backend>::Buf)> + 'p>;

pub(crate) struct Node<'p, B: Backend> {
    pub(crate) value: Value<'p, B>,
    pub(crate) shape: Vec<usize>,
    pub(crate) back: Option<BackFn<'p, B>>,
    pub(crate) param: Option<ParamId>,
    /// Whether a gradient must flow to this node (it depends on a parameter).
    pub(crate) needs_grad: bool,
    /// The layer that recorded the node (for error reports).
    pub(crate) scope: Option<Rc<str>>,
    /// Set when the node is channels of another: its gradient is added straight into that
    /// range of the source's gradient (no full-size zero tensor per slice).
    pub(crate) slice_of: Option<ChannelSlice>,
}

/// Channels `[offset, offset + c)` of `src`, an `[n, c_total, hw]` tensor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelSlice {
    pub src: Var,
    pub n: usize,
    pub c_total: usize,
    pub hw: usize,
    pub offset: usize,
    pub c: usize,
}

/// The tape. With `grad == false` (evaluation) no backward closures are kept.
pub struct Tape<'p, B: Backend> {
    pub backend: &'p B,
    pub params: &'p ParamStore<B>,
    pub(crate) nodes: Vec<Node<'p, B>>,
    pub(crate) grad: bool,
    /// Whether the network runs in training mode (batch statistics, drop-path).
    pub train: bool,
    /// When set, only parameters of this group receive gradients (the search's alpha step
    /// skips the weight gradients it would discard).
    pub grad_group: Option<Group>,
    /// The weight of a batch in the running statistics' update in training mode: `running =
    /// (1 - m) running + m batch`. `BN_MOMENTUM` (PyTorch's 0.1) while training;
    /// `train::recalibrate_bn` sets `1 / (k + 1)` for batch `k`, an exact average.
    pub bn_momentum: f32,
    scope: Option<Rc<str>>,
}

/// Gradients of the parameters, indexed like `ParamStore::params`.
pub struct Grads<B: Backend> {
    pub grads: Vec<Option<B::Buf>>,
}

impl<B: Backend> Grads<B> {
    pub fn get(&self, id: ParamId) -> Option<&B::Buf> {
        self.grads[id.0].as_ref()
    }
}

impl<'p, B: Backend> Tape<'p, B> {
    /// A tape recording gradients when `grad`, running the network in training mode when `train`.
    pub fn new(backend: &'p B, params: &'p ParamStore<B>, grad: bool, train: bool) -> Self {
        Self {
            backend,
            params,
            nodes: Vec::new(),
            grad,
            train,
            grad_group: None,
            bn_momentum: super::ops::BN_MOMENTUM,
            scope: None,
        }
    }

    pub fn value(&self, v: Var) -> &B::Buf {
        match &self.nodes[v.0].value {
            Value::Owned(b) => b,
            Value::Borrowed(b) => b,
        }
    }

    pub fn shape(&self, v: Var) -> &[usize] {
        &self.nodes[v.0].shape
    }

    /// Downloads a value (for logging and tests).
    pub fn to_vec(&self, v: Var) -> Vec<f32> {
        self.backend.download(self.value(v))
    }

    /// A constant input (no gradient).
    pub fn constant(&mut self, buf: B::Buf, shape: Vec<usize>) -> Var {
        self.push_node(Value::Owned(buf), shape, None, None, false)
    }

    /// A parameter leaf.
    pub fn param(&mut self, id: ParamId) -> Var {
        let p = self.params.get(id);
        let wanted = self.grad_group.is_none_or(|g| g == p.group);
        self.push_node(Value::Borrowed(&p.value), p.shape.clone(), None, Some(id), wanted)
    }

    /// Names the layer recording the following nodes (reported when a value goes non-finite).
    pub fn set_scope(&mut self, name: &str) {
        if self.scope.as_deref() != Some(name) {
            self.scope = Some(Rc::from(name));
        }
    }

    /// The first recorded value holding a NaN or infinity, as `(node index, layer name)`.
    /// Downloads every value: for error reports only.
    pub fn first_non_finite(&self) -> Option<(usize, String)> {
        (0..self.nodes.len()).find_map(|i| {
            let v = self.backend.download(self.value(Var(i)));
            v.iter().any(|x| !x.is_finite()).then(|| (i, self.nodes[i].scope.as_deref().unwrap_or("input").to_string()))
        })
    }

    pub(crate) fn needs_grad(&self, v: Var) -> bool {
        self.nodes[v.0].needs_grad
    }

    pub(crate) fn push_node(
        &mut self,
        value: Value<'p, B>,
        shape: Vec<usize>,
        back: Option<BackFn<'p, B>>,
        param: Option<ParamId>,
        needs_grad: bool,
    ) -> Var {
        let back = if self.grad && needs_grad { back } else { None };
        let scope = self.scope.clone();
        self.nodes.push(Node { value, shape, back, param, needs_grad: self.grad && needs_grad, scope, slice_of: None });
        Var(self.nodes.len() - 1)
    }

    /// Records an op result whose gradient flows to `inputs` through `back`.
    pub(crate) fn op(&mut self, buf: B::Buf, shape: Vec<usize>, inputs: &[Var], back: BackFn<'p, B>) -> Var {
        let needs = inputs.iter().any(|&v| self.needs_grad(v));
        self.push_node(Value::Owned(buf), shape, Some(back), None, needs)
    }

    /// Reverse pass from a scalar `loss` (seeded with 1). Returns the parameter gradients.
    pub fn backward(self, loss: Var) -> Grads<B> {
        let seed = self.backend.upload(&[1.0]);
        self.backward_with(loss, seed)
    }

    /// Reverse pass from `v` seeded with the gradient `seed` (same shape as `v`).
    pub fn backward_with(mut self, loss: Var, seed: B::Buf) -> Grads<B> {
        assert!(self.grad, "backward on a tape recorded without gradients");
        let b = self.backend;
        let mut grads: Vec<Option<B::Buf>> = (0..self.nodes.len()).map(|_| None).collect();
        grads[loss.0] = Some(seed);
        let mut out: Vec<Option<B::Buf>> = (0..self.params.params.len()).map(|_| None).collect();
        for i in (0..=loss.0).rev() {
            let Some(g) = grads[i].take() else { continue };
            if let Some(pid) = self.nodes[i].param {
                accumulate(b, &mut out[pid.0], g);
                continue;
            }
            if let Some(sl) = self.nodes[i].slice_of {
                if self.nodes[sl.src.0].needs_grad {
                    let acc = grads[sl.src.0].get_or_insert_with(|| b.zeros(sl.n * sl.c_total * sl.hw));
                    b.add_channels(acc, &g, sl.n, sl.c_total, sl.hw, sl.offset, sl.c);
                }
                continue;
            }
            let Some(back) = self.nodes[i].back.take() else { continue };
            for (v, gv) in back(b, &self, g) {
                if self.nodes[v.0].needs_grad {
                    accumulate(b, &mut grads[v.0], gv);
                }
            }
        }
        self.nodes.clear();
        Grads { grads: out }
    }
}

fn accumulate<B: Backend>(b: &B, slot: &mut Option<B::Buf>, g: B::Buf) {
    match slot {
        Some(acc) => b.axpy(acc, 1.0, &g),
        None => *slot = Some(g),
    }
}
