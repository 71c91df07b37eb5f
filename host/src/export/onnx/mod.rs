//! ONNX export of a packed model: a float graph (opset 13, no custom ops) that computes what the
//! device kernels compute, op for op.
//!
//! - The input is f32 NCHW pixels in [0, 1] (`p / 255`) with a symbolic batch `N`. `Round(x * 255)`
//!   recovers the integer pixel exactly, then the model's input affine `p * scale[c] + bias[c]`.
//! - A binary conv is `Where(x * flip >= threshold, 1, -1)` (bit-exact, see DESIGN.md), a `Conv`
//!   with +-1 weights (small integer sums, exact in f32, zero padding contributes 0 as the device's
//!   skipped taps do), `Mul` by the per-filter scale (shaped so that tract cannot fold it into the
//!   kernel), `Relu`: the device's `count * scale` rounding.
//! - Every multi-term float sum runs in the device's summation order ([`Arithmetic::DeviceOrder`]):
//!   a full-precision conv is an exact im2col (a `Conv` with one-hot kernels) and a `Scan` over
//!   its `(c, ky, kx)` taps whose body is `acc = acc + tap * w` starting from the bias; the global
//!   average pool and the linear layer are `Scan`s over pixels and inputs from 0; an average pool
//!   adds its 9 padded taps row-major from 0 and multiplies by `1 / count`. Each step is one f32
//!   rounding, as on the device, so tract computes the device's numbers bit for bit: no value
//!   near a BN + sign threshold can take the other sign, and the logits are equal.
//!   [`Arithmetic::Native`] writes plain `Conv`, `AveragePool`, `GlobalAveragePool` and `Gemm`
//!   instead (tract's own order: equal to rounding, and faster in tract).
//! - Tensors that are channel slices of a concat are tracked per root: every node output is an SSA
//!   value covering a channel range of its root; reading a tensor emits the `Slice`s and the
//!   `Concat` (axis 1) of the values that currently cover its channels.
//! - No intermediate value_info is written (tract fails to unify a symbolic batch with it).

use bnas_device::{Model, Node, TensorId};

mod exact;
use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;

/// Opset the graph is written for.
pub const OPSET: i64 = 13;
/// Name of the graph input (`[N, C, H, W]` f32 pixels in [0, 1]).
pub const INPUT_NAME: &str = "input";
/// Name of the graph output (`[N, classes]` f32 logits).
pub const OUTPUT_NAME: &str = "logits";

/// How the graph computes its multi-term float sums (full-precision convs, pools, linear).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arithmetic {
    /// Tap by tap in the device kernels' order: bit-identical to them (what `export` writes).
    DeviceOrder,
    /// ONNX `Conv`, `AveragePool`, `GlobalAveragePool` and `Gemm`: tract sums in its own order,
    /// so values agree to rounding and a value within an ulp of a threshold may take the other
    /// sign. Faster in tract; for speed comparisons.
    Native,
}

/// Why a packed model could not be written as ONNX.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the packed model is inconsistent: {0}")]
    Model(#[from] bnas_device::Error),
    #[error("node {node} reads channels {lo}..{hi} of tensor {tensor}, which no earlier node wrote")]
    Unwritten { node: usize, tensor: usize, lo: usize, hi: usize },
    #[error("the logits tensor {tensor} is never written")]
    NoLogits { tensor: usize },
}

/// An SSA value of the ONNX graph: `[N, c, h, w]`, or `[N, c]` for a Gemm output (`rank2`).
#[derive(Debug, Clone)]
struct Val {
    name: String,
    c: usize,
    rank2: bool,
}

/// Root channels `[lo, hi)` currently hold channels `[vlo, vlo + hi - lo)` of `val`.
#[derive(Debug, Clone)]
struct Seg {
    lo: usize,
    hi: usize,
    val: Val,
    vlo: usize,
}

fn attr_i(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i, ..Default::default() }
}

fn attr_ints(name: &str, ints: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

fn dim_val(v: i64) -> pb::tensor_shape_proto::Dimension {
    pb::tensor_shape_proto::Dimension {
        value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)),
        ..Default::default()
    }
}

fn dim_param(p: &str) -> pb::tensor_shape_proto::Dimension {
    pb::tensor_shape_proto::Dimension {
        value: Some(pb::tensor_shape_proto::dimension::Value::DimParam(p.into())),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: Vec<pb::tensor_shape_proto::Dimension>) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A float tensor of unknown shape (a `Scan` body's inputs and outputs).
fn float_info(name: &str) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn i64_tensor(name: &str, data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![i64_of(data.len())],
        data_type: DataType::Int64 as i32,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

fn i64_of(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The graph being written plus the per-root channel map.
struct Builder<'m> {
    model: &'m Model<'m>,
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    counter: usize,
    /// Per root tensor index: segments sorted by `lo`, non-overlapping.
    segs: Vec<Vec<Seg>>,
    /// `[1]` int64: the batch size, built on first use (for zero tensors).
    batch_dim: Option<String>,
    one_mone: Option<(String, String)>,
    /// Index of the node being translated (for errors).
    node_index: usize,
    arithmetic: Arithmetic,
}

impl<'m> Builder<'m> {
    fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{hint}_{}", self.counter)
    }

    fn init_f32(&mut self, hint: &str, dims: &[usize], data: &[f32]) -> String {
        let name = self.fresh(hint);
        self.inits.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| i64_of(d)).collect(),
            data_type: DataType::Float as i32,
            float_data: data.to_vec(),
            ..Default::default()
        });
        name
    }

    fn init_i64(&mut self, hint: &str, data: &[i64]) -> String {
        let name = self.fresh(hint);
        self.inits.push(i64_tensor(&name, data));
        name
    }

    /// Per-channel parameter `[1, c, 1, 1]`.
    fn per_channel(&mut self, hint: &str, data: &[f32]) -> String {
        self.init_f32(hint, &[1, data.len(), 1, 1], data)
    }

    /// Appends a node; returns its (single) output name.
    fn op(&mut self, op_type: &str, inputs: &[&str], attribute: Vec<pb::AttributeProto>) -> String {
        let out = self.fresh(&op_type.to_ascii_lowercase());
        self.op_named(op_type, inputs, attribute, out.clone());
        out
    }

    fn op_named<S: AsRef<str>>(
        &mut self,
        op_type: &str,
        inputs: &[S],
        attribute: Vec<pb::AttributeProto>,
        out: String,
    ) {
        self.nodes.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.as_ref().to_string()).collect(),
            output: vec![out.clone()],
            name: out,
            op_type: op_type.into(),
            attribute,
            ..Default::default()
        });
    }

    /// Root index and channel range of tensor `t`.
    fn place(&self, t: TensorId) -> Result<(usize, usize, usize), ExportError> {
        let i = self.model.tensor(t)?;
        Ok(match i.parent {
            Some(p) => (p.index(), i.channel_offset, i.channel_offset + i.c),
            None => (t.index(), 0, i.c),
        })
    }

    /// Records that tensor `t` now holds `val` (all of its channels).
    fn write(&mut self, t: TensorId, val: Val) -> Result<(), ExportError> {
        let (r, a, b) = self.place(t)?;
        let old = std::mem::take(&mut self.segs[r]);
        let mut kept = Vec::with_capacity(old.len() + 2);
        for s in old {
            if s.hi <= a || s.lo >= b {
                kept.push(s);
                continue;
            }
            if s.lo < a {
                kept.push(Seg { lo: s.lo, hi: a, val: s.val.clone(), vlo: s.vlo });
            }
            if s.hi > b {
                kept.push(Seg { lo: b, hi: s.hi, vlo: s.vlo + (b - s.lo), val: s.val });
            }
        }
        kept.push(Seg { lo: a, hi: b, val, vlo: 0 });
        kept.sort_by_key(|s| s.lo);
        self.segs[r] = kept;
        Ok(())
    }

    /// `[N, c, 1, 1]` from a `[N, c]` value.
    fn to4d(&mut self, v: Val) -> Val {
        if !v.rank2 {
            return v;
        }
        let axes = self.init_i64("axes", &[2, 3]);
        let name = self.op("Unsqueeze", &[&v.name, &axes], vec![]);
        Val { name, c: v.c, rank2: false }
    }

    /// The value of tensor `t` (rank 2 if it is a Gemm output read whole).
    fn read_any(&mut self, t: TensorId) -> Result<Val, ExportError> {
        let (r, a, b) = self.place(t)?;
        let mut pieces: Vec<(Val, usize, usize)> = Vec::new(); // value, its first channel, count
        let mut at = a;
        for s in self.segs[r].iter().filter(|s| s.hi > a && s.lo < b) {
            if s.lo > at {
                break;
            }
            let (lo, hi) = (s.lo.max(a), s.hi.min(b));
            pieces.push((s.val.clone(), s.vlo + (lo - s.lo), hi - lo));
            at = hi;
        }
        if at < b {
            return Err(ExportError::Unwritten { node: self.node_index, tensor: t.index(), lo: at - a, hi: b - a });
        }
        if let [(v, 0, n)] = pieces.as_slice() {
            if *n == v.c {
                return Ok(v.clone());
            }
        }
        let mut names = Vec::with_capacity(pieces.len());
        for (v, vlo, n) in pieces {
            if vlo == 0 && n == v.c {
                names.push(self.to4d(v).name);
            } else {
                let starts = self.init_i64("starts", &[i64_of(vlo)]);
                let ends = self.init_i64("ends", &[i64_of(vlo + n)]);
                let axes = self.init_i64("axes", &[1]);
                let sliced = self.op("Slice", &[&v.name, &starts, &ends, &axes], vec![]);
                names.push(self.to4d(Val { name: sliced, c: n, rank2: v.rank2 }).name);
            }
        }
        let val = if names.len() == 1 {
            Val { name: names.swap_remove(0), c: b - a, rank2: false }
        } else {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let name = self.op("Concat", &refs, vec![attr_i("axis", 1)]);
            Val { name, c: b - a, rank2: false }
        };
        if a == 0 && b == self.model.tensor(TensorId(u16::try_from(r).unwrap_or(u16::MAX)))?.c {
            // The whole root is now one value: later readers reuse the Concat.
            self.segs[r] = vec![Seg { lo: a, hi: b, val: val.clone(), vlo: 0 }];
        }
        Ok(val)
    }

    /// The value of tensor `t` as `[N, c, h, w]`.
    fn read(&mut self, t: TensorId) -> Result<String, ExportError> {
        let v = self.read_any(t)?;
        Ok(self.to4d(v).name)
    }

    fn batch_dim(&mut self) -> String {
        if let Some(b) = &self.batch_dim {
            return b.clone();
        }
        let shape = self.op("Shape", &[INPUT_NAME], vec![]);
        let (s, e, a) = (self.init_i64("starts", &[0]), self.init_i64("ends", &[1]), self.init_i64("axes", &[0]));
        let b = self.op("Slice", &[&shape, &s, &e, &a], vec![]);
        self.batch_dim = Some(b.clone());
        b
    }

    fn one_mone(&mut self) -> (String, String) {
        if let Some(v) = &self.one_mone {
            return v.clone();
        }
        let v = (self.init_f32("one", &[], &[1.0]), self.init_f32("minus_one", &[], &[-1.0]));
        self.one_mone = Some(v.clone());
        v
    }

    fn conv_attrs(k: usize, stride: usize, pad: usize, dil: usize) -> Vec<pb::AttributeProto> {
        let (k, s, p, d) = (i64_of(k), i64_of(stride), i64_of(pad), i64_of(dil));
        vec![
            attr_ints("kernel_shape", &[k, k]),
            attr_ints("strides", &[s, s]),
            attr_ints("pads", &[p, p, p, p]),
            attr_ints("dilations", &[d, d]),
        ]
    }

    fn pool_attrs(stride: usize) -> Vec<pb::AttributeProto> {
        let s = i64_of(stride);
        vec![attr_ints("kernel_shape", &[3, 3]), attr_ints("strides", &[s, s]), attr_ints("pads", &[1, 1, 1, 1])]
    }

    fn node(&mut self, node: &Node<'_>) -> Result<Val, ExportError> {
        let out = self.model.tensor(node.output())?;
        let four = |name: String| Val { name, c: out.c, rank2: false };
        Ok(match *node {
            Node::Affine { x, scale, bias, .. } => {
                let x = self.read(x)?;
                let (s, b) = (self.per_channel("affine_scale", scale), self.per_channel("affine_bias", bias));
                let m = self.op("Mul", &[&x, &s], vec![]);
                four(self.op("Add", &[&m, &b], vec![]))
            }
            Node::Conv(c) if self.arithmetic == Arithmetic::DeviceOrder => {
                let x = self.read(c.x)?;
                let y = self.conv_device_order(&c, &x)?;
                four(if c.relu { self.op("Relu", &[&y], vec![]) } else { y })
            }
            Node::Conv(c) => {
                let x = self.read(c.x)?;
                let w = self.init_f32("conv_w", &[c.c_out, c.c_in, c.geom.k, c.geom.k], c.weights);
                let mut inputs = vec![x, w];
                if let Some(b) = c.bias {
                    inputs.push(self.init_f32("conv_b", &[c.c_out], b));
                }
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let g = c.geom;
                let y = self.op("Conv", &refs, Self::conv_attrs(g.k, g.stride, g.pad, g.dil));
                four(if c.relu { self.op("Relu", &[&y], vec![]) } else { y })
            }
            Node::BinConv(b) => {
                let x = self.read(b.x)?;
                let flip = self.per_channel("bin_flip", b.flip);
                let thr = self.per_channel("bin_threshold", b.threshold);
                let (one, mone) = self.one_mone();
                let xf = self.op("Mul", &[&x, &flip], vec![]);
                let ge = self.op("GreaterOrEqual", &[&xf, &thr], vec![]);
                let sign = self.op("Where", &[&ge, &one, &mone], vec![]);
                let weights: Vec<f32> = b.weights_pm1().collect();
                let g = b.geom;
                let w = self.init_f32("bin_w", &[b.c_out, b.c_in, g.k, g.k], &weights);
                let count = self.op("Conv", &[&sign, &w], Self::conv_attrs(g.k, g.stride, g.pad, g.dil));
                // The scale as [1, c, 1, w], not [1, c, 1, 1]: tract folds a per-channel Mul
                // after a Conv into its kernel, which would sum +-scale terms instead of exact
                // integers and round differently from the device's `count * scale`.
                let cols = out.w;
                let wide: Vec<f32> = b.scale.iter().flat_map(|&s| std::iter::repeat_n(s, cols)).collect();
                let scale = self.init_f32("bin_scale", &[1, b.c_out, 1, cols], &wide);
                let y = self.op("Mul", &[&count, &scale], vec![]);
                four(self.op("Relu", &[&y], vec![]))
            }
            Node::MaxPool { x, stride, .. } => {
                let x = self.read(x)?;
                four(self.op("MaxPool", &[&x], Self::pool_attrs(stride)))
            }
            Node::AvgPool { x, stride, .. } if self.arithmetic == Arithmetic::DeviceOrder => {
                let xi = self.model.tensor(x)?;
                let x = self.read(x)?;
                four(self.avg_pool_device_order(&x, xi, stride, out))
            }
            Node::AvgPool { x, stride, .. } => {
                let x = self.read(x)?;
                let mut attrs = Self::pool_attrs(stride);
                attrs.push(attr_i("count_include_pad", 0));
                four(self.op("AveragePool", &[&x], attrs))
            }
            Node::Add { a, b, .. } => {
                let (a, b) = (self.read(a)?, self.read(b)?);
                four(self.op("Add", &[&a, &b], vec![]))
            }
            Node::Zero { .. } => {
                let zeros = self.init_f32("zeros", &[1, out.c, out.h, out.w], &vec![0.0; out.len()]);
                let batch = self.batch_dim();
                let chw = self.init_i64("chw", &[i64_of(out.c), i64_of(out.h), i64_of(out.w)]);
                let shape = self.op("Concat", &[&batch, &chw], vec![attr_i("axis", 0)]);
                four(self.op("Expand", &[&zeros, &shape], vec![]))
            }
            Node::GlobalAvgPool { x, .. } if self.arithmetic == Arithmetic::DeviceOrder => {
                let xi = self.model.tensor(x)?;
                let x = self.read(x)?;
                four(self.global_avg_pool_device_order(&x, xi))
            }
            Node::GlobalAvgPool { x, .. } => {
                let x = self.read(x)?;
                four(self.op("GlobalAveragePool", &[&x], vec![]))
            }
            Node::Linear { x, weights, bias, .. } => {
                let xv = self.read_any(x)?;
                let n_in = self.model.tensor(x)?.len();
                let flat = if xv.rank2 { xv.name } else { self.op("Flatten", &[&xv.name], vec![attr_i("axis", 1)]) };
                let name = if self.arithmetic == Arithmetic::DeviceOrder {
                    self.linear_device_order(&flat, weights, bias, n_in)
                } else {
                    let w = self.init_f32("linear_w", &[out.len(), n_in], weights);
                    let b = self.init_f32("linear_b", &[out.len()], bias);
                    self.op("Gemm", &[&flat, &w, &b], vec![attr_i("transB", 1)])
                };
                Val { name, c: out.len(), rank2: true }
            }
        })
    }
}

/// Writes `model` as an ONNX ModelProto (opset 13): input `input` `[N, C, H, W]` f32 pixels / 255,
/// output `logits` `[N, classes]`, in the device's arithmetic (what `export` ships).
pub fn to_onnx(model: &Model<'_>) -> Result<Vec<u8>, ExportError> {
    to_onnx_with(model, Arithmetic::DeviceOrder)
}

/// [`to_onnx`] with a choice of arithmetic for full-precision convs and average pools.
pub fn to_onnx_with(model: &Model<'_>, arithmetic: Arithmetic) -> Result<Vec<u8>, ExportError> {
    let mut g = Builder {
        arithmetic,
        model,
        nodes: Vec::new(),
        inits: Vec::new(),
        counter: 0,
        segs: vec![Vec::new(); model.n_tensors()],
        batch_dim: None,
        one_mone: None,
        node_index: 0,
    };
    let (c, h, w) = model.input_shape();
    // Pixels: round(x * 255) is the integer p exactly (|p/255 * 255 - p| < 1e-4), then p * s + b.
    let k255 = g.init_f32("k255", &[], &[255.0]);
    let scaled = g.op("Mul", &[INPUT_NAME, &k255], vec![]);
    let mut x = g.op("Round", &[&scaled], vec![]);
    if let Some((scale, bias)) = model.input_affine() {
        let (s, b) = (g.per_channel("input_scale", scale), g.per_channel("input_bias", bias));
        let m = g.op("Mul", &[&x, &s], vec![]);
        x = g.op("Add", &[&m, &b], vec![]);
    }
    g.write(model.input(), Val { name: x, c, rank2: false })?;
    for (i, node) in model.nodes().enumerate() {
        g.node_index = i;
        let v = g.node(&node)?;
        g.write(node.output(), v)?;
    }
    g.node_index = model.n_nodes();
    let logits = g.read_any(model.logits()).map_err(|e| match e {
        ExportError::Unwritten { tensor, .. } => ExportError::NoLogits { tensor },
        e => e,
    })?;
    if logits.rank2 {
        g.op_named("Identity", &[&logits.name], vec![], OUTPUT_NAME.into());
    } else {
        g.op_named("Flatten", &[&logits.name], vec![attr_i("axis", 1)], OUTPUT_NAME.into());
    }
    let classes = i64_of(model.classes());
    let graph = pb::GraphProto {
        name: "bnas".into(),
        node: g.nodes,
        initializer: g.inits,
        input: vec![value_info(
            INPUT_NAME,
            vec![dim_param("N"), dim_val(i64_of(c)), dim_val(i64_of(h)), dim_val(i64_of(w))],
        )],
        output: vec![value_info(OUTPUT_NAME, vec![dim_param("N"), dim_val(classes)])],
        ..Default::default()
    };
    let proto = pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "bnas".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..Default::default()
    };
    Ok(proto.encode_to_vec())
}
