//! Pictures and logs: training curves, alpha heat maps, cell diagrams, CSV, progress bars.
//! Everything is drawn with a built-in bitmap font, so no font files or system libraries are
//! needed.

pub mod canvas;
pub mod chart;
pub mod csv;
pub mod diagram;
pub mod font;
pub mod heatmap;
pub mod progress;

use std::path::PathBuf;

pub use canvas::{read_png, Align, Canvas};
pub use chart::{line_chart, Series};
pub use csv::{read_csv, Cell, CsvLog};
pub use diagram::{cell_diagram_png, cell_diagram_svg, CellDiagram};
pub use heatmap::{colormap, confusion_matrix, heatmap};
pub use progress::{Counter, Progress, StepStats};

/// An 8-bit RGB colour.
pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];
/// Dark grey for text and axes (softer than black).
pub const INK: Rgb = [40, 40, 48];
/// Light grey for grid lines.
pub const GRID: Rgb = [228, 228, 234];

/// Distinct series colours (Tableau 10).
pub const PALETTE: [Rgb; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// The `i`-th palette colour, cycling.
pub fn palette(i: usize) -> Rgb {
    PALETTE[i % PALETTE.len()]
}

/// What went wrong writing a report file; one sentence naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot encode or decode PNG {}: {problem}", .path.display())]
    Png { path: PathBuf, problem: String },
    #[error("{} already has columns [{found}], not [{expected}]", .path.display())]
    CsvHeader { path: PathBuf, found: String, expected: String },
    #[error("cannot draw {}: {problem}", .path.display())]
    BadInput { path: PathBuf, problem: String },
}

/// A short label for a number: up to 4 significant digits, no trailing zeros, exponent form
/// for very large or small magnitudes.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.1e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// "Nice" axis ticks (steps of 1, 2 or 5 x 10^k) covering `[lo, hi]`, about `target` of them.
/// Returns the rounded-out range and the ticks.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> ((f64, f64), Vec<f64>) {
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5 * lo.abs().max(1.0), hi + 0.5 * hi.abs().max(1.0)) };
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let (a, b) = ((lo / step + 1e-9).floor() * step, (hi / step - 1e-9).ceil() * step);
    let n = ((b - a) / step).round() as usize;
    // Rounding a..b by the step keeps tick labels free of 0.30000000000000004.
    let ticks = (0..=n).map(|i| ((a + i as f64 * step) / step).round() * step).collect();
    ((a, b), ticks)
}

#[cfg(test)]
mod tests;
