//! Heat maps (architecture weights alpha: edges x ops) and confusion matrices as PNG, with a
//! colour bar and the values printed in the cells when they fit.

use std::path::Path;

use super::canvas::{Align, Canvas};
use super::font::{text_height, text_width};
use super::{fmt_num, ReportError, Rgb, INK, WHITE};

const TITLE_SCALE: usize = 3;
const LABEL_SCALE: usize = 2;
const MARGIN: usize = 24;
const MAX_GRID_W: usize = 1600;
const MAX_GRID_H: usize = 1400;

/// Viridis at nine evenly spaced stops.
const VIRIDIS: [Rgb; 9] = [
    [68, 1, 84],
    [71, 44, 122],
    [59, 81, 139],
    [44, 113, 142],
    [33, 144, 141],
    [39, 173, 129],
    [92, 200, 99],
    [170, 220, 50],
    [253, 231, 37],
];

/// Viridis colour of `t` in [0, 1] (clamped), linearly interpolated between stops.
pub fn colormap(t: f64) -> Rgb {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let pos = t * (VIRIDIS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(VIRIDIS.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    [0, 1, 2].map(|c| (a[c] as f64 + (b[c] as f64 - a[c] as f64) * f).round() as u8)
}

/// Text colour readable on `bg`.
fn ink_on(bg: Rgb) -> Rgb {
    let luma = 0.299 * bg[0] as f64 + 0.587 * bg[1] as f64 + 0.114 * bg[2] as f64;
    if luma < 140.0 {
        WHITE
    } else {
        INK
    }
}

/// One common format for all cells: integers as integers, else 2 decimals below 10.
fn cell_texts(values: &[Vec<f64>]) -> Vec<Vec<String>> {
    let finite = || values.iter().flatten().filter(|v| v.is_finite());
    let integers = finite().all(|v| v.fract() == 0.0 && v.abs() < 1e7);
    let max = finite().fold(0f64, |m, v| m.max(v.abs()));
    let fmt = |v: f64| match () {
        _ if !v.is_finite() => "-".to_string(),
        _ if integers => format!("{v:.0}"),
        _ if max < 10.0 => format!("{v:.2}"),
        _ if max < 1000.0 => format!("{v:.1}"),
        _ => fmt_num(v),
    };
    values.iter().map(|row| row.iter().map(|&v| fmt(v)).collect()).collect()
}

/// Draws `values` (`rows x cols`, rows matching `row_labels`) as a heat map PNG at `path`,
/// coloured from the smallest to the largest finite value.
pub fn heatmap<R: AsRef<str>, C: AsRef<str>>(
    path: &Path,
    title: &str,
    row_labels: &[R],
    col_labels: &[C],
    values: &[Vec<f64>],
) -> Result<(), ReportError> {
    let texts = cell_texts(values);
    let finite = values.iter().flatten().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
    let rows: Vec<&str> = row_labels.iter().map(AsRef::as_ref).collect();
    let cols: Vec<&str> = col_labels.iter().map(AsRef::as_ref).collect();
    let bar: Vec<String> = [hi, (lo + hi) / 2.0, lo].iter().map(|&v| bar_label(v, hi - lo)).collect();
    draw(path, title, &rows, &cols, values, &texts, (lo, hi), &bar)
}

/// A confusion matrix (`counts[true][predicted]`) as a heat map: cells show counts and are
/// coloured by the square root of their share of the row, so that rare confusions stay
/// visible next to a large diagonal.
pub fn confusion_matrix<S: AsRef<str>>(
    path: &Path,
    title: &str,
    class_names: &[S],
    counts: &[Vec<u64>],
) -> Result<(), ReportError> {
    let shade: Vec<Vec<f64>> = counts
        .iter()
        .map(|row| {
            let total = row.iter().sum::<u64>().max(1) as f64;
            row.iter().map(|&k| (k as f64 / total).sqrt()).collect()
        })
        .collect();
    let texts: Vec<Vec<String>> = counts.iter().map(|r| r.iter().map(u64::to_string).collect()).collect();
    let names: Vec<&str> = class_names.iter().map(AsRef::as_ref).collect();
    let title = format!("{title} (rows: true, columns: predicted)");
    // Bar positions are sqrt(share): the middle of the bar is a quarter of the row.
    let bar = ["1".to_string(), "0.25".to_string(), "0".to_string()];
    draw(path, &title, &names, &names, &shade, &texts, (0.0, 1.0), &bar)
}

/// A colour-bar label with about two significant digits of the bar's span.
fn bar_label(v: f64, span: f64) -> String {
    if !(span > 0.0 && span.is_finite()) {
        return fmt_num(v);
    }
    let decimals = (1 - span.log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

/// Cell size in pixels and whether the cell texts fit.
fn cell_size(n_rows: usize, n_cols: usize, text_w: usize) -> (usize, usize, bool) {
    let want_w = (text_w + 22).max(44);
    let want_h = text_height(LABEL_SCALE) + 16;
    let cw = want_w.min(MAX_GRID_W / n_cols.max(1)).max(4);
    let ch = want_h.min(MAX_GRID_H / n_rows.max(1)).max(4);
    (cw, ch, cw >= text_w + 6 && ch >= text_height(LABEL_SCALE) + 4)
}

/// Draws the grid; `colour` values map `lo..hi` onto the colour map, `texts` go in the
/// cells, `bar_labels` (top, middle, bottom) beside the colour bar.
#[allow(clippy::too_many_arguments)]
fn draw(
    path: &Path,
    title: &str,
    rows: &[&str],
    cols: &[&str],
    colour: &[Vec<f64>],
    texts: &[Vec<String>],
    (lo, hi): (f64, f64),
    bar_labels: &[String],
) -> Result<(), ReportError> {
    let bad = |problem: String| ReportError::BadInput { path: path.to_path_buf(), problem };
    if colour.len() != rows.len() || colour.iter().any(|r| r.len() != cols.len()) {
        let shape: Vec<usize> = colour.iter().map(Vec::len).collect();
        return Err(bad(format!("{} row and {} column labels but rows of lengths {shape:?}", rows.len(), cols.len())));
    }
    let text_w = texts.iter().flatten().map(|t| text_width(t, LABEL_SCALE)).max().unwrap_or(0);
    let (cw, ch, show_text) = cell_size(rows.len(), cols.len(), text_w);
    let col_label_w = cols.iter().map(|s| text_width(s, LABEL_SCALE)).max().unwrap_or(0);
    let vertical_cols = col_label_w + 6 > cw;
    let col_band = if vertical_cols { col_label_w + 12 } else { text_height(LABEL_SCALE) + 12 };
    let row_label_w = rows.iter().map(|s| text_width(s, LABEL_SCALE)).max().unwrap_or(0);
    let bar_label_w = bar_labels.iter().map(|s| text_width(s, LABEL_SCALE)).max().unwrap_or(0);

    let (grid_w, grid_h) = (cw * cols.len(), ch * rows.len());
    let gx = MARGIN + row_label_w + 10;
    let gy = MARGIN + text_height(TITLE_SCALE) + 30 + col_band;
    let bar_x = gx + grid_w + 24;
    let width = (bar_x + 22 + 8 + bar_label_w + MARGIN).max(text_width(title, TITLE_SCALE) + 2 * MARGIN);
    let height = gy + grid_h.max(120) + MARGIN;
    let mut c = Canvas::new(width, height, WHITE);
    c.text(width as isize / 2, MARGIN as isize, title, TITLE_SCALE, INK, Align::Center);

    let th = text_height(LABEL_SCALE) as isize;
    for (j, label) in cols.iter().enumerate() {
        let cx = (gx + j * cw + cw / 2) as isize;
        if vertical_cols {
            c.text_vertical(
                cx - th / 2,
                gy as isize - 8 - text_width(label, LABEL_SCALE) as isize / 2,
                label,
                LABEL_SCALE,
                INK,
            );
        } else {
            c.text(cx, gy as isize - 8 - th, label, LABEL_SCALE, INK, Align::Center);
        }
    }
    let span = if hi > lo { hi - lo } else { 1.0 };
    for (i, label) in rows.iter().enumerate() {
        let y = (gy + i * ch) as isize;
        c.text(gx as isize - 10, y + (ch as isize - th) / 2, label, LABEL_SCALE, INK, Align::Right);
        for j in 0..cols.len() {
            let v = colour[i][j];
            let bg = if v.is_finite() { colormap((v - lo) / span) } else { [235, 235, 235] };
            let x = (gx + j * cw) as isize;
            c.fill_rect(x, y, cw, ch, bg);
            if show_text {
                let ty = y + (ch as isize - th) / 2;
                c.text(x + cw as isize / 2, ty, &texts[i][j], LABEL_SCALE, ink_on(bg), Align::Center);
            }
        }
    }
    // Thin white separators between cells when the cells are large enough to need them.
    if cw >= 12 && ch >= 12 {
        for j in 1..cols.len() {
            c.fill_rect((gx + j * cw) as isize, gy as isize, 1, grid_h, WHITE);
        }
        for i in 1..rows.len() {
            c.fill_rect(gx as isize, (gy + i * ch) as isize, grid_w, 1, WHITE);
        }
    }
    draw_colour_bar(&mut c, bar_x, gy, grid_h.max(120), bar_labels);
    c.save_png(path)
}

/// A vertical bar, `hi` at the top, with labels for top, middle and bottom.
fn draw_colour_bar(c: &mut Canvas, x: usize, y: usize, h: usize, labels: &[String]) {
    for k in 0..h {
        let t = 1.0 - k as f64 / (h - 1).max(1) as f64;
        c.fill_rect(x as isize, (y + k) as isize, 22, 1, colormap(t));
    }
    c.stroke_rect(x as isize, y as isize, 22, h, INK);
    let th = text_height(LABEL_SCALE) as isize;
    for (k, label) in labels.iter().enumerate() {
        let ly = y as isize + (k * (h - 1) / 2) as isize;
        c.fill_rect(x as isize + 22, ly, 5, 1, INK);
        let ty = (ly - th / 2).clamp(y as isize, (y + h) as isize - th);
        c.text(x as isize + 32, ty, label, LABEL_SCALE, INK, Align::Left);
    }
}
