//! What a search writes for people beside its checkpoint: the alphas of every epoch
//! (`alphas.csv`), their heat maps, the entropy and accuracy curves, `search_metrics.csv`, and
//! the cell diagrams of a genotype.

use std::path::Path;

use anyhow::Result;

use super::SearchEpoch;
use crate::nn::genotype::{Cell, Genotype};
use crate::nn::supernet::SearchSpace;
use crate::nn::Template;
use crate::report::csv::Cell as CsvCell;
use crate::report::diagram::{cell_diagram_png, cell_diagram_svg, CellDiagram};
use crate::report::{self, chart::Series};

/// Appends epoch `epoch`'s softmax(alpha) rows of both cells to `alphas.csv`.
pub(super) fn append_alphas(
    out: &Path,
    epoch: usize,
    wn: &[Vec<f32>],
    wr: &[Vec<f32>],
    space: &SearchSpace,
) -> Result<()> {
    let mut header: Vec<String> = vec!["epoch".into(), "cell".into(), "edge".into()];
    header.extend(space.ops.iter().map(|o| o.name().to_string()));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let log = report::csv::CsvLog::open(&out.join("alphas.csv"), &header)?;
    for (cell, rows) in [("normal", wn), ("reduce", wr)] {
        for (e, row) in rows.iter().enumerate() {
            let mut r: Vec<CsvCell> = vec![CsvCell::from(epoch), CsvCell::Text(cell.into()), CsvCell::from(e)];
            r.extend(row.iter().map(|&v| CsvCell::from(v)));
            log.append(&r)?;
        }
    }
    Ok(())
}

/// Edge labels `s0->n0`, `s1->n0`, `s0->n1`, ... in supernet order.
pub fn edge_labels() -> Vec<String> {
    let name = |j: usize| if j < 2 { format!("s{j}") } else { format!("n{}", j - 2) };
    (0..crate::nn::genotype::STEPS)
        .flat_map(|node| (0..2 + node).map(move |j| format!("{}->n{node}", name(j))))
        .collect()
}

/// The search's pictures and `search_metrics.csv`, for its `history` so far.
pub(super) fn write_search_report(
    out: &Path,
    history: &[SearchEpoch],
    wn: &[Vec<f32>],
    wr: &[Vec<f32>],
    space: &SearchSpace,
) -> Result<()> {
    let ops: Vec<&str> = space.ops.iter().map(|o| o.name()).collect();
    let labels = edge_labels();
    for (cell, rows) in [("normal", wn), ("reduce", wr)] {
        let values: Vec<Vec<f64>> = rows.iter().map(|r| r.iter().map(|&v| v as f64).collect()).collect();
        let title = format!("{cell} cell: softmax(alpha) after epoch {}", history.len());
        report::heatmap::heatmap(&out.join(format!("alpha_{cell}.png")), &title, &labels, &ops, &values)?;
    }
    let pts = |f: &dyn Fn(&SearchEpoch) -> f64| history.iter().map(|e| (e.epoch as f64, f(e))).collect::<Vec<_>>();
    report::chart::line_chart(
        &out.join("entropy.png"),
        "mean edge entropy and regularizer weight",
        "epoch",
        &[
            Series::new("mean entropy H", pts(&|e| e.entropy), report::palette(0)),
            Series::new("lambda exp(-t/tau)", pts(&|e| e.reg_weight), report::palette(1)),
            Series::new("max entropy ln(k)", pts(&|_| (ops.len() as f64).ln()), report::palette(2)),
        ],
        "nats / weight",
    )?;
    report::chart::line_chart(
        &out.join("curves.png"),
        "search accuracy",
        "epoch",
        &[
            Series::new("search-train %", pts(&|e| 100.0 * e.train_acc), report::palette(0)),
            Series::new("search-val %", pts(&|e| 100.0 * e.val_acc), report::palette(1)),
        ],
        "accuracy (%)",
    )?;
    let csv_path = out.join("search_metrics.csv");
    let tmp = csv_path.with_extension("csv.tmp");
    let _ = std::fs::remove_file(&tmp);
    let log = report::csv::CsvLog::open(
        &tmp,
        &[
            "epoch",
            "lr",
            "train_loss",
            "train_acc",
            "val_loss",
            "val_acc",
            "entropy",
            "reg_weight",
            "images_per_s",
            "genotype",
        ],
    )?;
    for e in history {
        log.append(&[
            CsvCell::from(e.epoch),
            e.lr.into(),
            e.train_loss.into(),
            e.train_acc.into(),
            e.val_loss.into(),
            e.val_acc.into(),
            e.entropy.into(),
            e.reg_weight.into(),
            e.images_per_s.into(),
            CsvCell::Text(e.genotype.summary().replace('\n', " || ")),
        ])?;
    }
    drop(log);
    std::fs::rename(&tmp, &csv_path)?;
    Ok(())
}

/// Cell diagrams of a genotype: `cell_normal.svg/png`, `cell_reduce.svg/png`.
pub fn draw_cells(out: &Path, g: &Genotype, template: Template) -> Result<()> {
    for (name, cell, skip) in [("normal", &g.normal, "identity"), ("reduce", &g.reduce, "BN + conv 2x2 s2")] {
        let d = diagram(name, cell, (template == Template::Bnas).then(|| skip.to_string()));
        std::fs::write(out.join(format!("cell_{name}.svg")), cell_diagram_svg(&d))?;
        cell_diagram_png(&out.join(format!("cell_{name}.png")), &d)?;
    }
    Ok(())
}

fn diagram(name: &str, cell: &Cell, skip: Option<String>) -> CellDiagram {
    let edges = cell.ops.iter().enumerate().map(|(i, &(op, input))| (op.name().to_string(), input, i / 2)).collect();
    CellDiagram { title: format!("{name} cell"), edges, skip }
}
