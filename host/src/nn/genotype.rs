//! Genotypes: the discrete cells a search produces and a network is built from.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// An operation of the search space S_B (bnas-method.md), plus the separable convs of the
/// paper's Table 1 ablation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Outputs zeros (strided on reduction edges). Kept as a real choice.
    Zeroise,
    #[serde(rename = "max_pool_3x3")]
    MaxPool3,
    #[serde(rename = "avg_pool_3x3")]
    AvgPool3,
    #[serde(rename = "bin_conv_3x3")]
    BinConv3,
    #[serde(rename = "bin_conv_5x5")]
    BinConv5,
    #[serde(rename = "bin_dil_conv_3x3")]
    BinDilConv3,
    #[serde(rename = "bin_dil_conv_5x5")]
    BinDilConv5,
    /// Binary separable convs: not in S_B; `--with-sep-conv` adds them for the paper's
    /// Table 1 ablation (they binarize badly).
    #[serde(rename = "bin_sep_conv_3x3")]
    BinSepConv3,
    #[serde(rename = "bin_sep_conv_5x5")]
    BinSepConv5,
}

impl Op {
    /// S_B in the order the search uses: zeroise first.
    pub const SEARCH_SPACE: [Op; 7] =
        [Op::Zeroise, Op::MaxPool3, Op::AvgPool3, Op::BinConv3, Op::BinConv5, Op::BinDilConv3, Op::BinDilConv5];

    /// Every op a genotype may name: S_B and the separable convs of the ablation.
    pub const ALL: [Op; 9] = [
        Op::Zeroise,
        Op::MaxPool3,
        Op::AvgPool3,
        Op::BinConv3,
        Op::BinConv5,
        Op::BinDilConv3,
        Op::BinDilConv5,
        Op::BinSepConv3,
        Op::BinSepConv5,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Zeroise => "zeroise",
            Op::MaxPool3 => "max_pool_3x3",
            Op::AvgPool3 => "avg_pool_3x3",
            Op::BinConv3 => "bin_conv_3x3",
            Op::BinConv5 => "bin_conv_5x5",
            Op::BinDilConv3 => "bin_dil_conv_3x3",
            Op::BinDilConv5 => "bin_dil_conv_5x5",
            Op::BinSepConv3 => "bin_sep_conv_3x3",
            Op::BinSepConv5 => "bin_sep_conv_5x5",
        }
    }

    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// `(k, padding)` of a binary separable conv op; `None` for the others.
    pub fn sep_conv_shape(self) -> Option<(usize, usize)> {
        match self {
            Op::BinSepConv3 => Some((3, 1)),
            Op::BinSepConv5 => Some((5, 2)),
            _ => None,
        }
    }

    /// `(k, padding, dilation)` of a binary conv op; `None` for the others.
    pub fn conv_shape(self) -> Option<(usize, usize, usize)> {
        match self {
            Op::BinConv3 => Some((3, 1, 1)),
            Op::BinConv5 => Some((5, 2, 1)),
            Op::BinDilConv3 => Some((3, 2, 2)),
            Op::BinDilConv5 => Some((5, 4, 2)),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Number of intermediate nodes per cell.
pub const STEPS: usize = 4;
/// Edges of a supernet cell: 2 + 3 + 4 + 5.
pub const EDGES: usize = 14;

/// One cell type: `STEPS` nodes, node `i` summing `ops[2i]` and `ops[2i+1]`, each an
/// `(op, input)` pair with input 0 = s0, 1 = s1, 2.. = earlier nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub ops: Vec<(Op, usize)>,
    /// States concatenated into the cell output (2..=5: all four nodes).
    pub concat: Vec<usize>,
}

/// A normal and a reduction cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genotype {
    pub normal: Cell,
    pub reduce: Cell,
}

/// A malformed genotype: names the source, the cell, the position and the valid choices.
#[derive(Debug, thiserror::Error)]
pub enum GenotypeError {
    #[error("{source_name}: cannot read: {err}")]
    Io { source_name: String, err: std::io::Error },
    #[error("{source_name}: not a genotype JSON ({err}); expected {{\"normal\": {{\"ops\": [[\"bin_conv_3x3\", 1], ...8 pairs], \"concat\": [2, 3, 4, 5]}}, \"reduce\": {{...}}}}")]
    Json { source_name: String, err: String },
    #[error("{source_name}: {cell} cell, position {position}: {problem}")]
    Invalid { source_name: String, cell: &'static str, position: usize, problem: String },
    #[error("unknown genotype '{0}': built in are bnas-a and bnas-imagenet, or give a path to a genotype JSON file")]
    UnknownName(String),
}

fn pairs(list: &[(&str, usize)]) -> Vec<(Op, usize)> {
    list.iter().map(|&(n, i)| (Op::from_name(n).expect("built-in op name"), i)).collect()
}

impl Genotype {
    /// The paper's CIFAR-10 cell, "latest_cell_zeroise".
    pub fn bnas_a() -> Self {
        let normal = pairs(&[
            ("zeroise", 1),
            ("bin_dil_conv_3x3", 0),
            ("bin_conv_3x3", 1),
            ("zeroise", 2),
            ("zeroise", 2),
            ("zeroise", 3),
            ("zeroise", 3),
            ("zeroise", 4),
        ]);
        let reduce = pairs(&[
            ("max_pool_3x3", 0),
            ("zeroise", 1),
            ("max_pool_3x3", 0),
            ("zeroise", 2),
            ("zeroise", 3),
            ("zeroise", 2),
            ("zeroise", 3),
            ("zeroise", 4),
        ]);
        Self::from_pairs(normal, reduce)
    }

    /// The paper's ImageNet cell, "latest_cell".
    pub fn bnas_imagenet() -> Self {
        let normal = pairs(&[
            ("bin_conv_3x3", 1),
            ("bin_dil_conv_3x3", 0),
            ("bin_conv_3x3", 1),
            ("bin_conv_3x3", 2),
            ("bin_conv_3x3", 2),
            ("bin_dil_conv_3x3", 1),
            ("bin_dil_conv_3x3", 1),
            ("bin_conv_3x3", 0),
        ]);
        let reduce = pairs(&[
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("max_pool_3x3", 0),
            ("bin_conv_3x3", 2),
            ("max_pool_3x3", 0),
            ("bin_dil_conv_3x3", 3),
            ("max_pool_3x3", 0),
            ("bin_dil_conv_3x3", 4),
        ]);
        Self::from_pairs(normal, reduce)
    }

    /// A uniformly random genotype of S_B (the random-search baseline): each node takes two
    /// distinct earlier states, each through an op drawn uniformly from the 7 ops.
    pub fn random(rng: &mut crate::rng::Rng) -> Self {
        let mut cell = || {
            let mut ops = Vec::with_capacity(2 * STEPS);
            for node in 0..STEPS {
                let states = node + 2;
                let a = rng.below(states);
                let b = (a + 1 + rng.below(states - 1)) % states;
                for input in [a.min(b), a.max(b)] {
                    ops.push((Op::SEARCH_SPACE[rng.below(Op::SEARCH_SPACE.len())], input));
                }
            }
            ops
        };
        let normal = cell();
        let reduce = cell();
        Self::from_pairs(normal, reduce)
    }

    pub fn from_pairs(normal: Vec<(Op, usize)>, reduce: Vec<(Op, usize)>) -> Self {
        let concat: Vec<usize> = (2..2 + STEPS).collect();
        Self { normal: Cell { ops: normal, concat: concat.clone() }, reduce: Cell { ops: reduce, concat } }
    }

    /// A built-in genotype by name, or a JSON file (a name that exists, or that looks like a path:
    /// a missing file is then said to be missing, not an unknown name).
    pub fn resolve(name_or_path: &str) -> Result<Self, GenotypeError> {
        let path = Path::new(name_or_path);
        let looks_like_path = path.components().count() > 1 || path.extension().is_some();
        match name_or_path {
            "bnas-a" | "bnas_a" | "latest_cell_zeroise" => Ok(Self::bnas_a()),
            "bnas-imagenet" | "latest_cell" => Ok(Self::bnas_imagenet()),
            _ if looks_like_path || path.exists() => Self::load(path),
            other => Err(GenotypeError::UnknownName(other.to_string())),
        }
    }

    pub fn load(path: &Path) -> Result<Self, GenotypeError> {
        let source_name = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|err| GenotypeError::Io { source_name: source_name.clone(), err })?;
        Self::parse(&text, &source_name)
    }

    /// Parses and validates JSON; `source_name` names the file in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, GenotypeError> {
        #[derive(Deserialize)]
        struct RawCell {
            ops: Vec<(String, i64)>,
            concat: Option<Vec<usize>>,
        }
        #[derive(Deserialize)]
        struct Raw {
            normal: RawCell,
            reduce: RawCell,
        }
        let raw: Raw = serde_json::from_str(text)
            .map_err(|e| GenotypeError::Json { source_name: source_name.into(), err: e.to_string() })?;
        let cell = |raw: RawCell, cell: &'static str| -> Result<Cell, GenotypeError> {
            let invalid = |position: usize, problem: String| GenotypeError::Invalid {
                source_name: source_name.into(),
                cell,
                position,
                problem,
            };
            if raw.ops.len() != 2 * STEPS {
                return Err(invalid(
                    raw.ops.len(),
                    format!("has {} (op, input) pairs, expected {}", raw.ops.len(), 2 * STEPS),
                ));
            }
            let mut ops = Vec::with_capacity(2 * STEPS);
            for (pos, (name, input)) in raw.ops.into_iter().enumerate() {
                let op = Op::from_name(&name).ok_or_else(|| {
                    let valid: Vec<&str> = Op::ALL.iter().map(|o| o.name()).collect();
                    invalid(pos, format!("unknown op '{name}'; valid ops are {}", valid.join(", ")))
                })?;
                let max = 2 + pos / 2;
                if input < 0 || input as usize >= max {
                    return Err(invalid(
                        pos,
                        format!("input {input} out of range for node {}: valid inputs are 0..={} (0 = s0, 1 = s1, 2.. = earlier nodes)", pos / 2, max - 1),
                    ));
                }
                ops.push((op, input as usize));
            }
            let concat = raw.concat.unwrap_or_else(|| (2..2 + STEPS).collect());
            if concat.is_empty() {
                return Err(invalid(0, "concat list is empty".into()));
            }
            for (pos, &c) in concat.iter().enumerate() {
                if !(2..2 + STEPS).contains(&c) {
                    return Err(invalid(pos, format!("concat entry {c} is not a node (valid: 2..={})", 1 + STEPS)));
                }
            }
            Ok(Cell { ops, concat })
        };
        Ok(Self { normal: cell(raw.normal, "normal")?, reduce: cell(raw.reduce, "reduce")? })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("genotype serializes")
    }

    /// One line per cell: `normal: (bin_conv_3x3,1) (zeroise,0) | ...`.
    pub fn summary(&self) -> String {
        let line = |c: &Cell| {
            c.ops
                .chunks(2)
                .map(|p| format!("({},{}) ({},{})", p[0].0, p[0].1, p[1].0, p[1].1))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        format!("normal: {}\nreduce: {}", line(&self.normal), line(&self.reduce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_convs_parse_by_name() {
        let g = Genotype::parse(
            &with_normal(
                r#"[["bin_sep_conv_3x3",0],["bin_sep_conv_5x5",1],["zeroise",0],["zeroise",1],["zeroise",0],["zeroise",1],["zeroise",0],["zeroise",1]]"#,
            ),
            "g.json",
        )
        .unwrap();
        assert_eq!(g.normal.ops[..2], [(Op::BinSepConv3, 0), (Op::BinSepConv5, 1)]);
        assert_eq!(Genotype::parse(&g.to_json(), "again").unwrap(), g);
    }

    #[test]
    fn builtin_round_trips_through_json() {
        for g in [Genotype::bnas_a(), Genotype::bnas_imagenet()] {
            let back = Genotype::parse(&g.to_json(), "test").unwrap();
            assert_eq!(back, g);
        }
    }

    fn err_of(text: &str) -> String {
        Genotype::parse(text, "g.json").unwrap_err().to_string()
    }

    fn with_normal(ops: &str) -> String {
        format!(
            r#"{{"normal": {{"ops": {ops}}}, "reduce": {{"ops": [["zeroise",0],["zeroise",1],["zeroise",0],["zeroise",1],["zeroise",0],["zeroise",1],["zeroise",0],["zeroise",1]]}}}}"#
        )
    }

    #[test]
    fn malformed_genotypes_name_file_cell_position_and_choices() {
        let e = err_of(&with_normal(
            r#"[["bin_conv_7x7",0],["zeroise",1],["zeroise",0],["zeroise",1],["zeroise",0],["zeroise",1],["zeroise",0],["zeroise",1]]"#,
        ));
        println!("{e}");
        assert!(e.starts_with("g.json: normal cell, position 0: unknown op 'bin_conv_7x7'"), "{e}");
        assert!(e.contains("bin_dil_conv_5x5") && e.contains("bin_sep_conv_5x5"), "{e}");
        let e = err_of(&with_normal(
            r#"[["zeroise",0],["zeroise",1],["zeroise",3],["zeroise",1],["zeroise",0],["zeroise",1],["zeroise",0],["zeroise",1]]"#,
        ));
        println!("{e}");
        assert!(e.contains("normal cell, position 2: input 3 out of range for node 1: valid inputs are 0..=2"), "{e}");
        let e = err_of(&with_normal(r#"[["zeroise",0]]"#));
        println!("{e}");
        assert!(e.contains("has 1 (op, input) pairs, expected 8"), "{e}");
        let e = err_of("{\"normal\": 3}");
        println!("{e}");
        assert!(e.starts_with("g.json: not a genotype JSON"), "{e}");
        let e = Genotype::resolve("no-such-cell").unwrap_err().to_string();
        assert!(e.contains("bnas-a and bnas-imagenet"), "{e}");
        // A missing file is said to be missing, not an unknown name.
        for path in ["/no/such/genotype.json", "cell.json", "runs/x/genotype"] {
            let e = Genotype::resolve(path).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{path}: cannot read: ")), "{e}");
        }
    }
}
