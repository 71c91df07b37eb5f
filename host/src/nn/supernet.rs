//! The search supernet: every edge a mixed op over the search space, alphas for normal and
//! reduction cells, and the genotype derivation that keeps zeroise (bnas-method.md).

use super::genotype::{Cell, Genotype, Op, EDGES, STEPS};
use super::layers::{BinConvLayer, BinSepConvLayer, BnLayer, Builder, ConvLayer, EvalCache};
use super::network::{cell_plans, preprocess_specs, CellPlan, NetConfig, Skip, Stem, MULT};
use crate::engine::{Backend, Buffers, ConvSpec, Group, ParamId, ParamStore, ShapeError, Tape, Var};
use crate::rng::Rng;

/// Initial scale of the alphas: `1e-3 * N(0, 1)`.
pub const ALPHA_INIT_STD: f32 = 1e-3;

/// The candidate ops of every edge, zeroise (when present) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchSpace {
    pub ops: Vec<Op>,
}

impl SearchSpace {
    /// S_B, optionally without zeroise (the paper's Table 2 ablation) and with the binary
    /// separable convs added (Table 1).
    pub fn new(zeroise: bool, sep_conv: bool) -> Self {
        let mut ops: Vec<Op> = Op::SEARCH_SPACE.into_iter().filter(|&op| zeroise || op != Op::Zeroise).collect();
        if sep_conv {
            ops.extend([Op::BinSepConv3, Op::BinSepConv5]);
        }
        Self { ops }
    }

    /// How many leading ops are zeroise (0 or 1): they contribute nothing to the sum.
    pub fn zero_ops(&self) -> usize {
        usize::from(self.ops.first() == Some(&Op::Zeroise))
    }
}

/// One candidate op of a mixed edge.
#[derive(Debug, Clone)]
pub enum SearchOp {
    Zero,
    /// Pool followed by a non-affine BN, as in the reference supernet.
    MaxPool {
        stride: usize,
        bn: BnLayer,
    },
    AvgPool {
        stride: usize,
        bn: BnLayer,
    },
    Conv(BinConvLayer),
    SepConv(Box<BinSepConvLayer>),
}

/// Full-precision preprocessing of the supernet: BN (not affine) -> conv -> ReLU.
#[derive(Debug, Clone)]
pub struct FpPre {
    pub bn: BnLayer,
    pub conv: ConvLayer,
}

impl FpPre {
    fn forward<B: Backend>(&self, t: &mut Tape<'_, B>, bufs: &mut Buffers<B>, x: Var) -> Result<Var, ShapeError> {
        let y = self.bn.forward(t, bufs, x)?;
        let y = self.conv.forward(t, y)?;
        Ok(t.relu(y))
    }
}

#[derive(Debug, Clone)]
pub struct SuperCell {
    pub plan: CellPlan,
    pub pre0: FpPre,
    pub pre1: FpPre,
    /// 14 edges: node `i` takes edges from states `0..2+i`, in order.
    pub edges: Vec<Vec<SearchOp>>,
    pub skip: Skip,
}

pub struct SuperNet {
    pub cfg: NetConfig,
    pub space: SearchSpace,
    pub stem: Stem,
    pub cells: Vec<SuperCell>,
    pub classifier: (ParamId, ParamId),
    pub alpha_normal: ParamId,
    pub alpha_reduce: ParamId,
    pub bin_convs: Vec<BinConvLayer>,
}

impl SuperNet {
    pub fn new<B: Backend>(
        backend: &B,
        cfg: &NetConfig,
        space: SearchSpace,
        params: &mut ParamStore<B>,
        buffers: &mut Buffers<B>,
        rng: &mut Rng,
    ) -> Self {
        let mut b = Builder { backend, params, buffers, rng, bin_convs: 0, binary_macs: 0, fp_macs: 0 };
        let stem = Stem::new(&mut b, cfg);
        let mut cells = Vec::new();
        let mut bin_convs = Vec::new();
        for (i, plan) in cell_plans(cfg).into_iter().enumerate() {
            let name = format!("cells.{i}");
            let (s0, s1) = preprocess_specs(&plan);
            let hw2 = plan.hw_in * plan.hw_in;
            let pre = |b: &mut Builder<'_, B>, which: &str, c_in: usize, spec: ConvSpec| FpPre {
                bn: BnLayer::new(b, &format!("{name}.{which}.bn"), c_in, false),
                conv: ConvLayer::new(b, &format!("{name}.{which}.conv"), c_in, plan.c, spec, false, hw2),
            };
            let pre0 = pre(&mut b, "pre0", plan.c_pp, s0);
            let pre1 = pre(&mut b, "pre1", plan.c_p, s1);
            let mut edges = Vec::with_capacity(EDGES);
            for node in 0..STEPS {
                for input in 0..2 + node {
                    let stride = if plan.reduction && input < 2 { 2 } else { 1 };
                    let e = edges.len();
                    let ops = space
                        .ops
                        .iter()
                        .map(|&op| {
                            search_op(&mut b, &format!("{name}.edge{e}.{}", op.name()), op, plan.c, stride, plan.hw_out)
                        })
                        .collect::<Vec<_>>();
                    for op in &ops {
                        match op {
                            SearchOp::Conv(l) => bin_convs.push(l.clone()),
                            SearchOp::SepConv(sep) => bin_convs.extend(sep.convs.iter().cloned()),
                            _ => {}
                        }
                    }
                    edges.push(ops);
                }
            }
            let skip = Skip::new(&mut b, &name, &plan, cfg.template);
            cells.push(SuperCell { plan, pre0, pre1, edges, skip });
        }
        let c_last = MULT * cells.last().map_or(cfg.channels, |c| c.plan.c);
        let (wid, bid) = super::layers::classifier(&mut b, c_last, cfg.classes);
        let k = space.ops.len();
        let alpha = |name: &str, b: &mut Builder<'_, B>| {
            let init: Vec<f32> = (0..EDGES * k).map(|_| ALPHA_INIT_STD * b.rng.normal()).collect();
            b.params.add(backend, name.into(), vec![EDGES, k], Group::Arch, init)
        };
        let alpha_normal = alpha("alphas_normal", &mut b);
        let alpha_reduce = alpha("alphas_reduce", &mut b);
        Self { cfg: cfg.clone(), space, stem, cells, classifier: (wid, bid), alpha_normal, alpha_reduce, bin_convs }
    }

    pub fn eval_cache<B: Backend>(&self, backend: &B, params: &ParamStore<B>, bufs: &Buffers<B>) -> EvalCache<B> {
        let layers: Vec<&BinConvLayer> = self.bin_convs.iter().collect();
        EvalCache::new(backend, params, bufs, &layers)
    }

    /// Logits `[N, classes]`.
    pub fn forward<B: Backend>(
        &self,
        t: &mut Tape<'_, B>,
        bufs: &mut Buffers<B>,
        eval: Option<&EvalCache<B>>,
        x: Var,
    ) -> Result<Var, ShapeError> {
        let an = t.param(self.alpha_normal);
        let ar = t.param(self.alpha_reduce);
        let wn = t.softmax_rows(an)?;
        let wr = t.softmax_rows(ar)?;
        let (mut s0, mut s1) = self.stem.forward(t, bufs, x)?;
        for cell in &self.cells {
            let w = if cell.plan.reduction { wr } else { wn };
            let out = self.cell_forward(cell, t, bufs, eval, s0, s1, w)?;
            s0 = s1;
            s1 = out;
        }
        let pooled = t.global_avg_pool(s1)?;
        t.linear(pooled, self.classifier.0, self.classifier.1)
    }

    /// Mean softmax entropy over all 28 edges (normal and reduce), the quantity H of the
    /// diversity regularizer.
    pub fn mean_entropy<B: Backend>(&self, t: &mut Tape<'_, B>) -> Result<Var, ShapeError> {
        let an = t.param(self.alpha_normal);
        let ar = t.param(self.alpha_reduce);
        let k = self.space.ops.len();
        let both = t.reshape(an, vec![1, EDGES, k, 1])?;
        let both_r = t.reshape(ar, vec![1, EDGES, k, 1])?;
        let all = t.concat(&[both, both_r])?;
        let all = t.reshape(all, vec![2 * EDGES, k])?;
        t.softmax_entropy(all)
    }

    #[allow(clippy::too_many_arguments)]
    fn cell_forward<B: Backend>(
        &self,
        cell: &SuperCell,
        t: &mut Tape<'_, B>,
        bufs: &mut Buffers<B>,
        eval: Option<&EvalCache<B>>,
        s0: Var,
        s1: Var,
        weights: Var,
    ) -> Result<Var, ShapeError> {
        let k = self.space.ops.len();
        let z = self.space.zero_ops();
        let mut states = vec![cell.pre0.forward(t, bufs, s0)?, cell.pre1.forward(t, bufs, s1)?];
        let mut e = 0;
        for _ in 0..STEPS {
            let mut node: Option<Var> = None;
            for &x in &states {
                let mut outs = Vec::with_capacity(k - z);
                for op in &cell.edges[e][z..] {
                    outs.push(match op {
                        SearchOp::Zero => unreachable!("zeroise is first in the space"),
                        SearchOp::MaxPool { stride, bn } => {
                            let y = t.max_pool(x, *stride)?;
                            bn.forward(t, bufs, y)?
                        }
                        SearchOp::AvgPool { stride, bn } => {
                            let y = t.avg_pool(x, *stride)?;
                            bn.forward(t, bufs, y)?
                        }
                        SearchOp::Conv(l) => l.forward(t, bufs, eval, x)?,
                        SearchOp::SepConv(sep) => sep.forward(t, bufs, eval, x)?,
                    });
                }
                let w = t.slice(weights, e * k + z, k - z)?;
                let y = t.weighted_sum(&outs, w)?;
                node = Some(match node {
                    Some(n) => t.add(n, y)?,
                    None => y,
                });
                e += 1;
            }
            states.push(node.expect("every node has inputs"));
        }
        let out = t.concat(&states[2..])?;
        cell.skip.forward(t, bufs, s1, out)
    }

    /// The softmax weights `[EDGES][k]` of normal and reduce alphas.
    pub fn alpha_weights<B: Backend>(&self, backend: &B, params: &ParamStore<B>) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let k = self.space.ops.len();
        let rows = |id: ParamId| {
            let a = backend.download(&params.get(id).value);
            a.chunks(k).map(softmax).collect::<Vec<_>>()
        };
        (rows(self.alpha_normal), rows(self.alpha_reduce))
    }
}

fn search_op<B: Backend>(
    b: &mut Builder<'_, B>,
    name: &str,
    op: Op,
    c: usize,
    stride: usize,
    hw_out: usize,
) -> SearchOp {
    match op {
        Op::Zeroise => SearchOp::Zero,
        Op::MaxPool3 => SearchOp::MaxPool { stride, bn: BnLayer::new(b, &format!("{name}.bn"), c, false) },
        Op::AvgPool3 => SearchOp::AvgPool { stride, bn: BnLayer::new(b, &format!("{name}.bn"), c, false) },
        Op::BinSepConv3 | Op::BinSepConv5 => {
            let (k, pad) = op.sep_conv_shape().expect("separable conv op");
            SearchOp::SepConv(Box::new(BinSepConvLayer::new(b, name, c, k, pad, stride, false, hw_out * hw_out)))
        }
        conv => {
            let (k, pad, dil) = conv.conv_shape().expect("binary conv op");
            SearchOp::Conv(BinConvLayer::new(b, name, c, c, ConvSpec { k, stride, pad, dil }, false, hw_out * hw_out))
        }
    }
}

pub fn softmax(x: &[f32]) -> Vec<f32> {
    let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Derives one cell from its edge weights `[EDGES][k]`: per node, the two incoming edges
/// with the strongest op, and on each the argmax op. Zeroise is NOT excluded (unlike DARTS);
/// its weight is divided by `zeroise_gamma` first (1 keeps it as is; the paper's transfer
/// trick uses 3).
pub fn derive_cell(weights: &[Vec<f32>], space: &SearchSpace, zeroise_gamma: f32) -> Cell {
    let adjusted: Vec<Vec<f32>> = weights
        .iter()
        .map(|w| {
            w.iter().zip(&space.ops).map(|(&p, &op)| if op == Op::Zeroise { p / zeroise_gamma } else { p }).collect()
        })
        .collect();
    let argmax = |w: &[f32]| w.iter().enumerate().fold(0, |best, (i, &v)| if v > w[best] { i } else { best });
    let mut ops = Vec::with_capacity(2 * STEPS);
    let mut start = 0;
    for node in 0..STEPS {
        let n_in = 2 + node;
        let mut inputs: Vec<usize> = (0..n_in).collect();
        let strength = |j: usize| adjusted[start + j].iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        // Stable sort: ties keep the lower input index.
        inputs.sort_by(|&a, &b| strength(b).partial_cmp(&strength(a)).unwrap_or(std::cmp::Ordering::Equal));
        let mut kept = inputs[..2].to_vec();
        kept.sort_unstable();
        for j in kept {
            ops.push((space.ops[argmax(&adjusted[start + j])], j));
        }
        start += n_in;
    }
    Cell { ops, concat: (2..2 + STEPS).collect() }
}

/// The genotype of the current alphas.
pub fn derive_genotype(normal: &[Vec<f32>], reduce: &[Vec<f32>], space: &SearchSpace, zeroise_gamma: f32) -> Genotype {
    Genotype { normal: derive_cell(normal, space, zeroise_gamma), reduce: derive_cell(reduce, space, zeroise_gamma) }
}

/// Weight of the diversity regularizer at 0-based epoch `t`: `lambda * exp(-t / tau)`.
pub fn diversity_weight(lambda: f32, tau: f32, epoch: usize) -> f32 {
    lambda * (-(epoch as f32) / tau).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot_row(k: usize, hot: usize, strength: f32) -> Vec<f32> {
        let mut w = vec![(1.0 - strength) / (k as f32 - 1.0); k];
        w[hot] = strength;
        w
    }

    #[test]
    fn derivation_keeps_zeroise_top2_edges_and_gamma() {
        let space = SearchSpace::new(true, false);
        let k = space.ops.len();
        // Node 0: edge 0 strongly zeroise, edge 1 weakly bin_conv_3x3 (index 3).
        // Node 1: edges from 0, 1, 2; edge 2 (from node 0) strongest with max_pool.
        let mut w = vec![
            one_hot_row(k, 0, 0.9),
            one_hot_row(k, 3, 0.5),
            one_hot_row(k, 4, 0.3),
            one_hot_row(k, 5, 0.35),
            one_hot_row(k, 1, 0.8),
        ];
        while w.len() < EDGES {
            w.push(one_hot_row(k, 6, 0.4));
        }
        let cell = derive_cell(&w, &space, 1.0);
        assert_eq!(cell.ops[0], (Op::Zeroise, 0), "zeroise is kept");
        assert_eq!(cell.ops[1], (Op::BinConv3, 1));
        assert_eq!(&cell.ops[2..4], &[(Op::BinDilConv3, 1), (Op::MaxPool3, 2)], "top-2 edges of node 1");
        // With gamma 3 the zeroise weight 0.9 becomes 0.3, still far above edge 0's other
        // ops (0.017 each), so zeroise stays.
        let cell3 = derive_cell(&w, &space, 3.0);
        assert_eq!(cell3.ops[0], (Op::Zeroise, 0));
        // A row where zeroise wins by less than a factor 3 flips to the runner-up.
        let mut w2 = w.clone();
        w2[0] = vec![0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05];
        assert_eq!(derive_cell(&w2, &space, 1.0).ops[0].0, Op::Zeroise);
        assert_eq!(derive_cell(&w2, &space, 3.0).ops[0].0, Op::MaxPool3);
    }

    #[test]
    fn diversity_weight_follows_exp_decay() {
        for (epoch, want) in [(0, 1.0), (10, 0.2725), (20, 0.0743)] {
            let got = diversity_weight(1.0, 7.7, epoch);
            println!("epoch {epoch}: weight {got:.4} (paper: {want})");
            assert!((got - want).abs() < 1e-3);
        }
        assert!((diversity_weight(0.5, 7.7, 3) - 0.5 * (-3.0f32 / 7.7).exp()).abs() < 1e-7);
    }
}
