//! The device-order emitters of the ONNX export ([`super::Arithmetic::DeviceOrder`]): every
//! multi-term float sum written so that tract adds its terms in the device kernels' order.

use super::{attr_i, attr_ints, float_info, i64_of, i64_tensor, Builder, ExportError};
use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;

impl Builder<'_> {
    /// `x` (`[N, c, h, w]`) zero-padded by `pad` on each side of h and w.
    pub(super) fn pad(&mut self, x: &str, pad: usize) -> String {
        if pad == 0 {
            return x.to_string();
        }
        let p = i64_of(pad);
        let pads = self.init_i64("pads", &[0, 0, p, p, 0, 0, p, p]);
        self.op("Pad", &[x, &pads], vec![])
    }

    /// `[N, rest...]` as an int64 shape tensor.
    pub(super) fn batch_shape(&mut self, rest: &[usize]) -> String {
        let batch = self.batch_dim();
        let rest: Vec<i64> = rest.iter().map(|&d| i64_of(d)).collect();
        let rest = self.init_i64("shape", &rest);
        self.op("Concat", &[&batch, &rest], vec![attr_i("axis", 0)])
    }

    /// `acc = init; for j in 0..K { acc = acc + x_j * w_j }`, one f32 rounding per step, j
    /// ascending: an ONNX `Scan` whose body is one `Mul` and one `Add`, so the order is the
    /// graph's, not the runtime's. `x_j` is slice j of `xs` along `axis`, unsqueezed at
    /// `x_unsqueeze`; `w_j` (if any) is row j of `ws` (`[K, m]`) reshaped to `w_shape`.
    pub(super) fn scan_sum(
        &mut self,
        init: &str,
        xs: &str,
        axis: usize,
        x_unsqueeze: &[i64],
        w: Option<(&str, &[i64])>,
    ) -> String {
        let scan = self.fresh("scan");
        let name = |s: &str| format!("{scan}_{s}");
        let mut body = pb::GraphProto { name: scan.clone(), ..Default::default() };
        let node = |op: &str, inputs: &[String], out: String| pb::NodeProto {
            input: inputs.to_vec(),
            output: vec![out.clone()],
            name: out,
            op_type: op.into(),
            ..Default::default()
        };
        body.input = vec![float_info(&name("acc")), float_info(&name("x"))];
        let mut x = name("x");
        if !x_unsqueeze.is_empty() {
            body.initializer.push(i64_tensor(&name("axes"), x_unsqueeze));
            body.node.push(node("Unsqueeze", &[x, name("axes")], name("xu")));
            x = name("xu");
        }
        let term = match w {
            Some((_, w_shape)) => {
                body.input.push(float_info(&name("w")));
                body.initializer.push(i64_tensor(&name("w_shape"), w_shape));
                body.node.push(node("Reshape", &[name("w"), name("w_shape")], name("wr")));
                body.node.push(node("Mul", &[x, name("wr")], name("term")));
                name("term")
            }
            None => x,
        };
        body.node.push(node("Add", &[name("acc"), term], name("acc_out")));
        body.output = vec![float_info(&name("acc_out"))];
        let mut inputs = vec![init, xs];
        let mut axes = vec![i64_of(axis)];
        if let Some((ws, _)) = w {
            inputs.push(ws);
            axes.push(0);
        }
        let attrs = vec![
            pb::AttributeProto {
                name: "body".into(),
                r#type: AttributeType::Graph as i32,
                g: Some(body),
                ..Default::default()
            },
            attr_i("num_scan_inputs", i64_of(axes.len())),
            attr_ints("scan_input_axes", &axes),
        ];
        self.op_named("Scan", &inputs, attrs, scan.clone());
        scan
    }

    /// A full-precision conv in the device's order: `acc = bias` (or 0), then for each input
    /// channel `c`, then `ky`, then `kx`: `acc = acc + x_tap * w[:, c, ky, kx]`. The taps come
    /// from a `Conv` with one-hot kernels (im2col: each output is one input value times 1, exact);
    /// a tap in the padding is 0 and adds `0 * w`, which leaves `acc` as the device's skipped tap.
    pub(super) fn conv_device_order(&mut self, c: &bnas_device::ConvNode<'_>, x: &str) -> Result<String, ExportError> {
        let g = c.geom;
        let out = self.model.tensor(c.out)?;
        let kk = g.k * g.k;
        let taps = c.c_in * kk;
        let mut one_hot = vec![0f32; taps * taps];
        for j in 0..taps {
            one_hot[j * taps + j] = 1.0;
        }
        let eye = self.init_f32("im2col_w", &[taps, c.c_in, g.k, g.k], &one_hot);
        let cols = self.op("Conv", &[x, &eye], Self::conv_attrs(g.k, g.stride, g.pad, g.dil));
        let bias: Vec<f32> = c.bias.map_or_else(|| vec![0.0; c.c_out], <[f32]>::to_vec);
        let bias = self.per_channel("conv_b", &bias);
        let shape = self.batch_shape(&[c.c_out, out.h, out.w]);
        let init = self.op("Expand", &[&bias, &shape], vec![]);
        // Row j = c * k * k + t of `ws` is w[:, c, t].
        let mut ws = vec![0f32; taps * c.c_out];
        for (o, w_o) in c.weights.chunks_exact(taps).enumerate() {
            for (j, &v) in w_o.iter().enumerate() {
                ws[j * c.c_out + o] = v;
            }
        }
        let ws = self.init_f32("conv_w", &[taps, c.c_out], &ws);
        let w_shape = [1, i64_of(c.c_out), 1, 1];
        Ok(self.scan_sum(&init, &cols, 1, &[1], Some((&ws, &w_shape))))
    }

    /// A 3x3, pad 1 average pool in the device's order: the 9 taps added row-major (padding
    /// adds 0), times `1 / count` of valid taps per output position.
    pub(super) fn avg_pool_device_order(
        &mut self,
        x: &str,
        xi: bnas_device::TensorInfo,
        stride: usize,
        out: bnas_device::TensorInfo,
    ) -> String {
        let xp = self.pad(x, 1);
        let mut sum = self.init_f32("zero", &[], &[0.0]);
        let axes = self.init_i64("axes", &[2, 3]);
        let steps = self.init_i64("steps", &[i64_of(stride), i64_of(stride)]);
        for t in 0..9 {
            let (dy, dx) = (t / 3, t % 3);
            let s0 = self.init_i64("starts", &[i64_of(dy), i64_of(dx)]);
            let ends =
                self.init_i64("ends", &[i64_of(dy + (out.h - 1) * stride + 1), i64_of(dx + (out.w - 1) * stride + 1)]);
            let tap = self.op("Slice", &[&xp, &s0, &ends, &axes, &steps], vec![]);
            sum = self.op("Add", &[&sum, &tap], vec![]);
        }
        let valid =
            |o: usize, n: usize| (0..3).filter(|&d| (o * stride + d).checked_sub(1).is_some_and(|i| i < n)).count();
        let recip: Vec<f32> = (0..out.h)
            .flat_map(|oy| (0..out.w).map(move |ox| (oy, ox)))
            .map(|(oy, ox)| bnas_device::kernels::reciprocal(valid(oy, xi.h) * valid(ox, xi.w)))
            .collect();
        let r = self.init_f32("pool_recip", &[1, 1, out.h, out.w], &recip);
        self.op("Mul", &[&sum, &r], vec![])
    }

    /// Global average pool in the device's order: `0 + x[0] + x[1] + ...` over pixels in order,
    /// times `1 / (h * w)`; `[N, c, 1, 1]`.
    pub(super) fn global_avg_pool_device_order(&mut self, x: &str, xi: bnas_device::TensorInfo) -> String {
        let flat_shape = self.init_i64("shape", &[0, i64_of(xi.c), -1]);
        let flat = self.op("Reshape", &[x, &flat_shape], vec![]);
        let zero = self.init_f32("zero", &[1, xi.c], &vec![0.0; xi.c]);
        let shape = self.batch_shape(&[xi.c]);
        let init = self.op("Expand", &[&zero, &shape], vec![]);
        let sum = self.scan_sum(&init, &flat, 2, &[], None);
        let r = self.init_f32("gap_recip", &[], &[bnas_device::kernels::reciprocal(xi.h * xi.w)]);
        let mean = self.op("Mul", &[&sum, &r], vec![]);
        let axes = self.init_i64("axes", &[2, 3]);
        self.op("Unsqueeze", &[&mean, &axes], vec![])
    }

    /// Linear layer in the device's order: `(0 + w[:, 0] x[0] + w[:, 1] x[1] + ...) + bias`;
    /// `[N, classes]`.
    pub(super) fn linear_device_order(&mut self, flat: &str, weights: &[f32], bias: &[f32], n_in: usize) -> String {
        let classes = bias.len();
        let zero = self.init_f32("zero", &[1, classes], &vec![0.0; classes]);
        let shape = self.batch_shape(&[classes]);
        let init = self.op("Expand", &[&zero, &shape], vec![]);
        let mut ws = vec![0f32; n_in * classes];
        for (j, w_j) in weights.chunks_exact(n_in.max(1)).enumerate() {
            for (i, &v) in w_j.iter().enumerate() {
                ws[i * classes + j] = v;
            }
        }
        let ws = self.init_f32("linear_w", &[n_in, classes], &ws);
        let dot = self.scan_sum(&init, flat, 1, &[1], Some((&ws, &[1, i64_of(classes)])));
        let b = self.init_f32("linear_b", &[1, classes], bias);
        self.op("Add", &[&dot, &b], vec![])
    }
}
