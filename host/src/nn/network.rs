//! The final network built from a genotype on the cell template T_B (bnas-method.md).

use serde::{Deserialize, Serialize};

use super::genotype::{Cell, Genotype, Op, STEPS};
use super::layers::{BinConvLayer, BinSepConvLayer, BnLayer, Builder, ConvLayer, EvalCache};
use crate::engine::{Backend, Buffers, ConvSpec, ParamStore, ShapeError, Tape, Var};
use crate::rng::Rng;

/// Output channels of the small stem are `STEM_MULT * C`.
pub const STEM_MULT: usize = 3;
/// A cell's output has `MULT * C` channels (concat of 4 nodes).
pub const MULT: usize = 4;

/// Cell template: T_B with the inter-cell skip, or DARTS's (no skip; the ablation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Template {
    Bnas,
    Darts,
}

/// The shape of a network: everything but the cells' choice of ops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetConfig {
    pub layers: usize,
    pub channels: usize,
    pub classes: usize,
    /// `[C, H, W]` of one input image.
    pub input: [usize; 3],
    pub template: Template,
}

impl NetConfig {
    /// Inputs of 128 pixels or more use the ImageNet stem (three stride-2 convs to 1/8).
    pub fn imagenet_stem(&self) -> bool {
        self.input[1] >= 128
    }

    pub fn is_reduction(&self, i: usize) -> bool {
        i == self.layers / 3 || i == 2 * self.layers / 3
    }
}

/// Per cell: its input and output channels and resolution, derived from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellPlan {
    pub reduction: bool,
    pub reduction_prev: bool,
    pub first: bool,
    /// Channels of s0, s1, and of each node.
    pub c_pp: usize,
    pub c_p: usize,
    pub c: usize,
    /// Resolution of s1 (s0 is twice as large when `reduction_prev`) and of the output.
    pub hw_in: usize,
    pub hw_out: usize,
}

/// The stem's output channels (s0, s1) and resolution of s1.
pub fn stem_shape(cfg: &NetConfig) -> (usize, usize, usize) {
    if cfg.imagenet_stem() {
        (cfg.channels, cfg.channels, cfg.input[1] / 8)
    } else {
        (STEM_MULT * cfg.channels, STEM_MULT * cfg.channels, cfg.input[1])
    }
}

pub fn cell_plans(cfg: &NetConfig) -> Vec<CellPlan> {
    let (mut c_pp, mut c_p, mut hw) = stem_shape(cfg);
    let mut c = cfg.channels;
    let mut reduction_prev = cfg.imagenet_stem();
    let mut plans = Vec::with_capacity(cfg.layers);
    for i in 0..cfg.layers {
        let reduction = cfg.is_reduction(i);
        if reduction {
            c *= 2;
        }
        let hw_out = if reduction { hw.div_ceil(2) } else { hw };
        plans.push(CellPlan { reduction, reduction_prev, first: i == 0, c_pp, c_p, c, hw_in: hw, hw_out });
        reduction_prev = reduction;
        c_pp = c_p;
        c_p = MULT * c;
        hw = hw_out;
    }
    plans
}

/// The inter-cell skip of T_B.
#[derive(Debug, Clone)]
pub enum Skip {
    None,
    Identity,
    /// BN -> full-precision conv 2x2 stride 2 with bias. The BN is not affine: before a
    /// linear conv without padding, gamma and beta are absorbed by the conv's weights and
    /// bias, so they add parameters but no function. Without them the paper's BNAS-A count
    /// (5,578,252 at 20 layers, 36 channels) is matched exactly; with them it is 864 more.
    Reduce {
        bn: BnLayer,
        conv: ConvLayer,
    },
}

impl Skip {
    pub fn new<B: Backend>(b: &mut Builder<'_, B>, name: &str, plan: &CellPlan, template: Template) -> Self {
        if plan.first || template == Template::Darts {
            return Skip::None;
        }
        if !plan.reduction {
            assert_eq!(plan.c_p, MULT * plan.c, "identity skip needs matching channels");
            return Skip::Identity;
        }
        let bn = BnLayer::new(b, &format!("{name}.skip.bn"), plan.c_p, false);
        let spec = ConvSpec { k: 2, stride: 2, pad: 0, dil: 1 };
        let conv = ConvLayer::new(
            b,
            &format!("{name}.skip.conv"),
            plan.c_p,
            MULT * plan.c,
            spec,
            true,
            plan.hw_out * plan.hw_out,
        );
        Skip::Reduce { bn, conv }
    }

    pub fn forward<B: Backend>(
        &self,
        t: &mut Tape<'_, B>,
        bufs: &mut Buffers<B>,
        s1: Var,
        out: Var,
    ) -> Result<Var, ShapeError> {
        match self {
            Skip::None => Ok(out),
            Skip::Identity => t.add(out, s1),
            Skip::Reduce { bn, conv } => {
                let y = bn.forward(t, bufs, s1)?;
                let y = conv.forward(t, y)?;
                t.add(out, y)
            }
        }
    }
}

/// One op of a final cell.
#[derive(Debug, Clone)]
pub enum EdgeOp {
    Zero { stride: usize },
    MaxPool { stride: usize },
    AvgPool { stride: usize },
    Conv(BinConvLayer),
    SepConv(Box<BinSepConvLayer>),
}

#[derive(Debug, Clone)]
pub struct FinalCell {
    pub plan: CellPlan,
    pub pre0: BinConvLayer,
    pub pre1: BinConvLayer,
    /// `(op, input state)` for node `i` at positions `2i`, `2i + 1`.
    pub edges: Vec<(EdgeOp, usize)>,
    pub concat: Vec<usize>,
    pub skip: Skip,
}

/// Stems: full precision.
#[derive(Debug, Clone)]
pub enum Stem {
    /// BN -> conv 3x3 -> ReLU (CIFAR, Fashion-MNIST).
    Small { bn: BnLayer, conv: ConvLayer },
    /// Three stride-2 convs, each conv -> BN (-> ReLU); s0 after the second, s1 after the third.
    ImageNet { convs: Vec<(ConvLayer, BnLayer)> },
}

impl Stem {
    pub fn new<B: Backend>(b: &mut Builder<'_, B>, cfg: &NetConfig) -> Self {
        let [c_in, h, _] = cfg.input;
        let c = cfg.channels;
        if !cfg.imagenet_stem() {
            let bn = BnLayer::new(b, "stem.bn", c_in, true);
            let spec = ConvSpec { k: 3, stride: 1, pad: 1, dil: 1 };
            let conv = ConvLayer::new(b, "stem.conv", c_in, STEM_MULT * c, spec, false, h * h);
            return Stem::Small { bn, conv };
        }
        let spec = ConvSpec { k: 3, stride: 2, pad: 1, dil: 1 };
        let chans = [(c_in, c / 2), (c / 2, c), (c, c)];
        let convs = chans
            .iter()
            .enumerate()
            .map(|(i, &(ci, co))| {
                let hw = h >> (i + 1);
                let conv = ConvLayer::new(b, &format!("stem.{i}.conv"), ci, co, spec, false, hw * hw);
                (conv, BnLayer::new(b, &format!("stem.{i}.bn"), co, true))
            })
            .collect();
        Stem::ImageNet { convs }
    }

    /// Returns `(s0, s1)`.
    pub fn forward<B: Backend>(
        &self,
        t: &mut Tape<'_, B>,
        bufs: &mut Buffers<B>,
        x: Var,
    ) -> Result<(Var, Var), ShapeError> {
        match self {
            Stem::Small { bn, conv } => {
                let y = bn.forward(t, bufs, x)?;
                let y = conv.forward(t, y)?;
                let y = t.relu(y);
                Ok((y, y))
            }
            Stem::ImageNet { convs } => {
                let mut y = x;
                let mut states = Vec::new();
                for (i, (conv, bn)) in convs.iter().enumerate() {
                    y = conv.forward(t, y)?;
                    y = bn.forward(t, bufs, y)?;
                    if i < 2 {
                        y = t.relu(y);
                    }
                    states.push(y);
                }
                Ok((states[1], states[2]))
            }
        }
    }
}

/// A network from a genotype: layer descriptions holding ids into a `ParamStore`.
#[derive(Debug, Clone)]
pub struct Network {
    pub cfg: NetConfig,
    pub genotype: Genotype,
    pub stem: Stem,
    pub cells: Vec<FinalCell>,
    pub classifier: (crate::engine::ParamId, crate::engine::ParamId),
    pub bin_convs: usize,
    pub binary_macs: u64,
    pub fp_macs: u64,
}

/// Preprocessing of s0/s1 to C channels: binary 1x1, or binary 3x3 stride 2 for s0 after a reduction.
pub fn preprocess_specs(plan: &CellPlan) -> (ConvSpec, ConvSpec) {
    let one = ConvSpec { k: 1, stride: 1, pad: 0, dil: 1 };
    let pre0 = if plan.reduction_prev { ConvSpec { k: 3, stride: 2, pad: 1, dil: 1 } } else { one };
    (pre0, one)
}

fn edge_op<B: Backend>(b: &mut Builder<'_, B>, name: &str, op: Op, c: usize, stride: usize, out_hw: usize) -> EdgeOp {
    match op {
        Op::Zeroise => EdgeOp::Zero { stride },
        Op::MaxPool3 => EdgeOp::MaxPool { stride },
        Op::AvgPool3 => EdgeOp::AvgPool { stride },
        Op::BinSepConv3 | Op::BinSepConv5 => {
            let (k, pad) = op.sep_conv_shape().expect("separable conv op");
            let init = BinSepConvLayer::init(b.rng, c, k);
            EdgeOp::SepConv(Box::new(BinSepConvLayer::with_init(b, name, c, k, pad, stride, true, out_hw, init)))
        }
        conv => {
            let (k, pad, dil) = conv.conv_shape().expect("binary conv op");
            EdgeOp::Conv(BinConvLayer::new(b, name, c, c, ConvSpec { k, stride, pad, dil }, true, out_hw))
        }
    }
}

impl Network {
    /// Builds the network, registering its parameters and buffers; initial weights come from `rng`.
    pub fn new<B: Backend>(
        backend: &B,
        genotype: &Genotype,
        cfg: &NetConfig,
        params: &mut ParamStore<B>,
        buffers: &mut Buffers<B>,
        rng: &mut Rng,
    ) -> Self {
        let mut b = Builder { backend, params, buffers, rng, bin_convs: 0, binary_macs: 0, fp_macs: 0 };
        let stem = Stem::new(&mut b, cfg);
        let mut cells = Vec::new();
        for (i, plan) in cell_plans(cfg).into_iter().enumerate() {
            let name = format!("cells.{i}");
            let (s0, s1) = preprocess_specs(&plan);
            let hw_in2 = plan.hw_in * plan.hw_in;
            let pre0 = BinConvLayer::new(&mut b, &format!("{name}.pre0"), plan.c_pp, plan.c, s0, true, hw_in2);
            let pre1 = BinConvLayer::new(&mut b, &format!("{name}.pre1"), plan.c_p, plan.c, s1, true, hw_in2);
            let cell: &Cell = if plan.reduction { &genotype.reduce } else { &genotype.normal };
            let edges = cell
                .ops
                .iter()
                .enumerate()
                .map(|(j, &(op, input))| {
                    let stride = if plan.reduction && input < 2 { 2 } else { 1 };
                    let out = plan.hw_out * plan.hw_out;
                    (edge_op(&mut b, &format!("{name}.op{j}"), op, plan.c, stride, out), input)
                })
                .collect();
            let skip = Skip::new(&mut b, &name, &plan, cfg.template);
            cells.push(FinalCell { plan, pre0, pre1, edges, concat: cell.concat.clone(), skip });
        }
        let c_last = MULT * cells.last().map_or(cfg.channels, |c| c.plan.c);
        let (wid, bid) = super::layers::classifier(&mut b, c_last, cfg.classes);
        let (bin_convs, binary_macs, fp_macs) = (b.bin_convs, b.binary_macs, b.fp_macs);
        Self {
            cfg: cfg.clone(),
            genotype: genotype.clone(),
            stem,
            cells,
            classifier: (wid, bid),
            bin_convs,
            binary_macs,
            fp_macs,
        }
    }

    /// Every binary conv layer, in creation order (`layer.index`).
    pub fn bin_conv_layers(&self) -> Vec<&BinConvLayer> {
        let mut out = Vec::with_capacity(self.bin_convs);
        for cell in &self.cells {
            out.push(&cell.pre0);
            out.push(&cell.pre1);
            for (op, _) in &cell.edges {
                match op {
                    EdgeOp::Conv(l) => out.push(l),
                    EdgeOp::SepConv(sep) => out.extend(sep.convs.iter()),
                    _ => {}
                }
            }
        }
        out.sort_by_key(|l| l.index);
        out
    }

    /// Thresholds for evaluation mode (call after training, before an eval pass).
    pub fn eval_cache<B: Backend>(&self, backend: &B, params: &ParamStore<B>, bufs: &Buffers<B>) -> EvalCache<B> {
        EvalCache::new(backend, params, bufs, &self.bin_conv_layers())
    }

    /// Logits `[N, classes]` for images `x [N, C, H, W]`. In training mode `drop_path`
    /// gives the drop probability and the generator of its masks; evaluation needs `eval`.
    pub fn forward<B: Backend>(
        &self,
        t: &mut Tape<'_, B>,
        bufs: &mut Buffers<B>,
        eval: Option<&EvalCache<B>>,
        x: Var,
        mut drop_path: Option<(f32, &mut Rng)>,
    ) -> Result<Var, ShapeError> {
        let (mut s0, mut s1) = self.stem.forward(t, bufs, x)?;
        for cell in &self.cells {
            let out = cell_forward(cell, t, bufs, eval, s0, s1, drop_path.as_mut().map(|(p, r)| (*p, &mut **r)))?;
            s0 = s1;
            s1 = out;
        }
        let pooled = t.global_avg_pool(s1)?;
        t.linear(pooled, self.classifier.0, self.classifier.1)
    }
}

fn cell_forward<B: Backend>(
    cell: &FinalCell,
    t: &mut Tape<'_, B>,
    bufs: &mut Buffers<B>,
    eval: Option<&EvalCache<B>>,
    s0: Var,
    s1: Var,
    mut drop_path: Option<(f32, &mut Rng)>,
) -> Result<Var, ShapeError> {
    let mut states = vec![cell.pre0.forward(t, bufs, eval, s0)?, cell.pre1.forward(t, bufs, eval, s1)?];
    for node in 0..STEPS {
        let mut sum: Option<Var> = None;
        for (op, input) in &cell.edges[2 * node..2 * node + 2] {
            let x = states[*input];
            let y = match op {
                EdgeOp::Zero { .. } => continue,
                EdgeOp::MaxPool { stride } => t.max_pool(x, *stride)?,
                EdgeOp::AvgPool { stride } => t.avg_pool(x, *stride)?,
                EdgeOp::Conv(l) => l.forward(t, bufs, eval, x)?,
                EdgeOp::SepConv(sep) => sep.forward(t, bufs, eval, x)?,
            };
            let y = match drop_path.as_mut() {
                Some((p, rng)) if *p > 0.0 => {
                    let n = t.shape(y)[0];
                    let keep: Vec<f32> =
                        (0..n).map(|_| if rng.uniform() < *p { 0.0 } else { 1.0 / (1.0 - *p) }).collect();
                    t.sample_scale(y, &keep)?
                }
                _ => y,
            };
            sum = Some(match sum {
                Some(s) => t.add(s, y)?,
                None => y,
            });
        }
        let node_out = match sum {
            Some(s) => s,
            None => {
                let n = t.shape(s1)[0];
                t.zeros(vec![n, cell.plan.c, cell.plan.hw_out, cell.plan.hw_out])
            }
        };
        states.push(node_out);
    }
    let parts: Vec<Var> = cell.concat.iter().map(|&i| states[i]).collect();
    let out = t.concat(&parts)?;
    cell.skip.forward(t, bufs, s1, out)
}
