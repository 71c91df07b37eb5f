//! The search supernet: every edge a mixed op over the search space, alphas for normal and
//! reduction cells, and the genotype derivation that keeps zeroise (bnas-method.md).

use super::genotype::{Cell, Genotype, Op, EDGES, STEPS};
use super::layers::{bin_conv_init, BinConvLayer, BinSepConvLayer, BnLayer, Builder, ConvLayer, EvalCache};
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

/// The candidate ops of every edge leaving one state (s0, s1 or a node), computed once for all
/// those edges. Every such edge sees the same input, so a pool and its non-affine BN give the
/// same output on each, and the binary convs of one kind are a single conv whose filters are
/// the edges' filters stacked: binarization, BN and sign act per filter or per input channel,
/// so this is exactly the separate convs, with one im2col and one larger GEMM instead of one
/// per edge. Edge `r` of the state (to node `first_node + r`) owns output channels
/// `[r * C, (r + 1) * C)`.
#[derive(Debug, Clone)]
pub struct Source {
    pub first_node: usize,
    pub edges: usize,
    /// One per op of the space after zeroise, in space order.
    pub ops: Vec<SourceOp>,
}

#[derive(Debug, Clone)]
pub enum SourceOp {
    /// Pool followed by a non-affine BN, as in the reference supernet.
    MaxPool {
        stride: usize,
        bn: BnLayer,
    },
    AvgPool {
        stride: usize,
        bn: BnLayer,
    },
    /// `C * edges` filters.
    Conv(BinConvLayer),
    /// One per edge: a separable conv starts with a depthwise conv, whose filters cannot be
    /// stacked across edges.
    SepConv(Vec<BinSepConvLayer>),
}

/// The first node fed by state `j` (0 = s0, 1 = s1, 2.. = nodes).
fn first_node(j: usize) -> usize {
    j.saturating_sub(1)
}

/// Index of the edge from state `j` into node `i` (node `i` has edges from states `0..2+i`).
pub fn edge_index(i: usize, j: usize) -> usize {
    i * (i + 3) / 2 + j
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
    /// The ops leaving s0, s1 and nodes 0..2 (node 3 feeds only the output).
    pub sources: Vec<Source>,
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
            // Initial weights drawn edge by edge (node, input, op), the order of a supernet with
            // one conv per edge, so a seed gives the same supernet as that layout would.
            let z = space.zero_ops();
            let mut inits: Vec<Vec<Init>> = Vec::with_capacity(EDGES);
            for node in 0..STEPS {
                for _input in 0..2 + node {
                    inits.push(space.ops[z..].iter().map(|&op| Init::draw(b.rng, op, plan.c)).collect());
                }
            }
            let mut sources = Vec::with_capacity(1 + STEPS);
            for from in 0..1 + STEPS {
                let stride = if plan.reduction && from < 2 { 2 } else { 1 };
                let (first, edges) = (first_node(from), STEPS - first_node(from));
                let ops = space.ops[z..]
                    .iter()
                    .enumerate()
                    .map(|(o, &op)| {
                        let edge_inits =
                            (first..STEPS).map(|i| std::mem::take(&mut inits[edge_index(i, from)][o])).collect();
                        let name = format!("{name}.from{from}.{}", op.name());
                        source_op(&mut b, &name, op, &plan, stride, edge_inits)
                    })
                    .collect::<Vec<_>>();
                for op in &ops {
                    match op {
                        SourceOp::Conv(l) => bin_convs.push(l.clone()),
                        SourceOp::SepConv(seps) => bin_convs.extend(seps.iter().flat_map(|s| s.convs.iter().cloned())),
                        _ => {}
                    }
                }
                sources.push(Source { first_node: first, edges, ops });
            }
            let skip = Skip::new(&mut b, &name, &plan, cfg.template);
            cells.push(SuperCell { plan, pre0, pre1, sources, skip });
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
        // outs[j][o][r]: op o of the space (after zeroise) on state j, for its edge r.
        let mut outs = Vec::with_capacity(1 + STEPS);
        for (source, &x) in cell.sources.iter().zip(&states) {
            outs.push(source_forward(source, cell.plan.c, t, bufs, eval, x)?);
        }
        for i in 0..STEPS {
            let mut node: Option<Var> = None;
            for (j, by_op) in outs.iter().enumerate() {
                let r = i - cell.sources[j].first_node;
                let edge_outs: Vec<Var> = by_op.iter().map(|per_edge| per_edge[r]).collect();
                let w = t.slice(weights, edge_index(i, j) * k + z, k - z)?;
                let y = t.weighted_sum(&edge_outs, w)?;
                node = Some(match node {
                    Some(n) => t.add(n, y)?,
                    None => y,
                });
            }
            let node = node.expect("every node has inputs");
            states.push(node);
            if let Some(source) = cell.sources.get(2 + i) {
                outs.push(source_forward(source, cell.plan.c, t, bufs, eval, node)?);
            }
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

/// The initial weights of one op of one edge.
#[derive(Default)]
enum Init {
    #[default]
    None,
    Conv(Vec<f32>),
    Sep([Vec<f32>; 4]),
}

impl Init {
    fn draw(rng: &mut Rng, op: Op, c: usize) -> Init {
        if let Some((k, _, _)) = op.conv_shape() {
            Init::Conv(bin_conv_init(rng, c, c, k))
        } else if let Some((k, _)) = op.sep_conv_shape() {
            Init::Sep(BinSepConvLayer::init(rng, c, k))
        } else {
            Init::None
        }
    }
}

/// One op of a source, from its edges' initial weights (in edge order).
fn source_op<B: Backend>(
    b: &mut Builder<'_, B>,
    name: &str,
    op: Op,
    plan: &CellPlan,
    stride: usize,
    inits: Vec<Init>,
) -> SourceOp {
    let (c, hw, edges) = (plan.c, plan.hw_out * plan.hw_out, inits.len());
    match op {
        Op::Zeroise => unreachable!("zeroise has no op to compute"),
        Op::MaxPool3 => SourceOp::MaxPool { stride, bn: BnLayer::new(b, &format!("{name}.bn"), c, false) },
        Op::AvgPool3 => SourceOp::AvgPool { stride, bn: BnLayer::new(b, &format!("{name}.bn"), c, false) },
        Op::BinSepConv3 | Op::BinSepConv5 => {
            let (k, pad) = op.sep_conv_shape().expect("separable conv op");
            let layers = inits.into_iter().enumerate().map(|(r, init)| {
                let Init::Sep(init) = init else { unreachable!("separable conv weights drawn for every edge") };
                BinSepConvLayer::with_init(b, &format!("{name}.edge{r}"), c, k, pad, stride, false, hw, init)
            });
            SourceOp::SepConv(layers.collect())
        }
        conv => {
            let (k, pad, dil) = conv.conv_shape().expect("binary conv op");
            // The edges' filters stacked along the output channels.
            let stacked = inits
                .into_iter()
                .flat_map(|init| match init {
                    Init::Conv(w) => w,
                    _ => unreachable!("conv weights drawn for every edge"),
                })
                .collect();
            let spec = ConvSpec { k, stride, pad, dil };
            SourceOp::Conv(BinConvLayer::with_init(b, name, c, c * edges, spec, false, hw, stacked))
        }
    }
}

/// Every op of `source` on its state `x`: `[op][edge]`.
fn source_forward<B: Backend>(
    source: &Source,
    c: usize,
    t: &mut Tape<'_, B>,
    bufs: &mut Buffers<B>,
    eval: Option<&EvalCache<B>>,
    x: Var,
) -> Result<Vec<Vec<Var>>, ShapeError> {
    let mut outs = Vec::with_capacity(source.ops.len());
    for op in &source.ops {
        outs.push(match op {
            SourceOp::MaxPool { stride, bn } => {
                let y = t.max_pool(x, *stride)?;
                vec![bn.forward(t, bufs, y)?; source.edges]
            }
            SourceOp::AvgPool { stride, bn } => {
                let y = t.avg_pool(x, *stride)?;
                vec![bn.forward(t, bufs, y)?; source.edges]
            }
            SourceOp::Conv(l) => {
                let y = l.forward(t, bufs, eval, x)?;
                if source.edges == 1 {
                    vec![y]
                } else {
                    (0..source.edges).map(|r| t.channels(y, r * c, c)).collect::<Result<_, _>>()?
                }
            }
            SourceOp::SepConv(seps) => seps.iter().map(|s| s.forward(t, bufs, eval, x)).collect::<Result<_, _>>()?,
        });
    }
    Ok(outs)
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
