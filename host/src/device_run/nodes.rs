//! Where one inference's instructions go: a label for each node, its binary MACs, and the table
//! `bnas device run` prints.

use super::DeviceRunSummary;
use bnas_device::{Model, Node};

/// One node of the profiled inference.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeProfile {
    /// What the node computes and at what shape ([`node_label`]).
    pub label: String,
    pub instructions: u64,
    /// Binary MACs for a binary conv (`c_out*oh*ow*c_in*k*k`), else 0.
    pub bin_macs: u64,
}

impl DeviceRunSummary {
    /// Where the profiled inference's instructions go, as a text table: the nodes with the same
    /// label summed into one row, most instructions first, or (`every_node`) each node in order;
    /// at most `max_rows` rows, the rest summed into one.
    pub fn profile_table(&self, every_node: bool, max_rows: usize) -> String {
        let mut rows: Vec<(String, usize, u64, u64)> = Vec::new();
        for (i, n) in self.per_node.iter().enumerate() {
            match rows.iter_mut().find(|r| !every_node && r.0 == n.label) {
                Some(r) => (r.1, r.2, r.3) = (r.1 + 1, r.2 + n.instructions, r.3 + n.bin_macs),
                None => rows.push((
                    if every_node { format!("{i:>3} {}", n.label) } else { n.label.clone() },
                    1,
                    n.instructions,
                    n.bin_macs,
                )),
            }
        }
        if !every_node {
            rows.sort_by_key(|r| std::cmp::Reverse(r.2));
        }
        let total: u64 = self.per_node.iter().map(|n| n.instructions).sum();
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(4);
        let mut out = format!(
            "{:<width$} {:>5} {:>12} {:>6} {:>17}\n",
            if every_node { "node" } else { "op" },
            "nodes",
            "instructions",
            "share",
            "binary MACs/instr"
        );
        if rows.len() > max_rows {
            let rest = rows.split_off(max_rows.saturating_sub(1));
            let n = rest.len();
            let sum = |f: fn(&(String, usize, u64, u64)) -> u64| rest.iter().map(f).sum::<u64>();
            // (No MACs per instruction for a row that mixes binary convs with other ops.)
            rows.push((format!("({n} more)"), sum(|r| r.1 as u64) as usize, sum(|r| r.2), 0));
        }
        for (label, nodes, instructions, macs) in rows {
            let ratio = if macs > 0 { format!("{:.2}", macs as f64 / instructions.max(1) as f64) } else { "".into() };
            let share = 100.0 * instructions as f64 / total.max(1) as f64;
            let line = format!("{label:<width$} {nodes:>5} {instructions:>12} {share:>5.1}% {ratio:>17}");
            out += line.trim_end();
            out.push('\n');
        }
        out
    }
}

/// A node in words, with the shapes that set its cost: `binary conv 5x5 dil 2, 12 -> 12 ch at
/// 28x28` (the output size), `max pool 3x3 stride 2, 24 ch at 14x14`, `linear 192 -> 10`.
pub fn node_label(model: &Model<'_>, node: &Node<'_>) -> String {
    let shape = |t| model.tensor(t).map_or((0, 0, 0), |t| (t.c, t.h, t.w));
    let (c, h, w) = shape(node.output());
    let geom = |g: bnas_device::ConvGeom| {
        let mut s = format!("{}x{}", g.k, g.k);
        if g.dil > 1 {
            s += &format!(" dil {}", g.dil);
        }
        if g.stride > 1 {
            s += &format!(" stride {}", g.stride);
        }
        s
    };
    let pool = |stride: usize| if stride > 1 { format!("3x3 stride {stride}") } else { "3x3".into() };
    match node {
        Node::BinConv(b) => format!("binary conv {}, {} -> {c} ch at {h}x{w}", geom(b.geom), b.c_in),
        Node::Conv(f) => format!("float conv {}, {} -> {c} ch at {h}x{w}", geom(f.geom), f.c_in),
        Node::Affine { .. } => format!("batch norm, {c} ch at {h}x{w}"),
        Node::MaxPool { stride, .. } => format!("max pool {}, {c} ch at {h}x{w}", pool(*stride)),
        Node::AvgPool { stride, .. } => format!("avg pool {}, {c} ch at {h}x{w}", pool(*stride)),
        Node::Add { .. } => format!("add, {c} ch at {h}x{w}"),
        Node::Zero { .. } => format!("zero, {c} ch at {h}x{w}"),
        Node::GlobalAvgPool { x, .. } => format!("global avg pool, {c} ch at {}x{}", shape(*x).1, shape(*x).2),
        Node::Linear { x, .. } => {
            let (xc, xh, xw) = shape(*x);
            format!("linear {} -> {c}", xc * xh * xw)
        }
    }
}

/// Binary MACs of each node (`c_out * oh * ow * c_in * k * k` for binary convs, 0 otherwise).
pub fn bin_macs_per_node(model: &Model<'_>) -> Vec<u64> {
    model
        .nodes()
        .map(|n| match n {
            Node::BinConv(b) => {
                let out = model.tensor(b.out).map(|t| (t.h * t.w) as u64).unwrap_or(0);
                (b.c_out * b.c_in * b.geom.k * b.geom.k) as u64 * out
            }
            _ => 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The profile table sums nodes with one label, sorts by instructions, and folds the rows past
    /// the limit into one.
    #[test]
    fn profile_table_sums_by_op_and_folds_the_tail() {
        let node = |label: &str, instructions, bin_macs| NodeProfile { label: label.into(), instructions, bin_macs };
        let s = DeviceRunSummary {
            images: 1,
            bit_identical: 1,
            class_agree: 1,
            instructions_mean: 1000.0,
            instructions_min: 1000,
            instructions_max: 1000,
            flash_bytes: 0,
            firmware: Default::default(),
            model_bytes: 0,
            static_ram_bytes: 0,
            peak_stack_bytes: 0,
            arena_bytes: 0,
            liveness_lower_bound_bytes: 0,
            bin_conv_macs: 0,
            bin_conv_instructions: 0,
            bin_macs_per_instruction: 0.0,
            per_node: vec![
                node("binary conv", 300, 900),
                node("add", 100, 0),
                node("binary conv", 300, 900),
                node("pool", 200, 0),
                node("linear", 100, 0),
            ],
            per_image: vec![],
        };
        let table = s.profile_table(false, 3);
        let lines: Vec<&str> = table.lines().collect();
        println!("{table}");
        assert_eq!(lines.len(), 4, "header and 3 rows");
        let cols = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
        assert_eq!(cols(1), ["binary", "conv", "2", "600", "60.0%", "3.00"]);
        assert_eq!(cols(2), ["pool", "1", "200", "20.0%"]);
        assert_eq!(cols(3), ["(2", "more)", "2", "200", "20.0%"]);
        let every = s.profile_table(true, usize::MAX);
        assert_eq!(every.lines().count(), 6);
        assert!(every.lines().nth(2).unwrap().starts_with("  1 add"), "{every}");
    }
}
