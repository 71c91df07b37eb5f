//! Line charts (training curves) as PNG: axes, numbered ticks, grid, legend.

use std::path::Path;

use super::canvas::{Align, Canvas};
use super::font::{text_height, text_width};
use super::{fmt_num, nice_ticks, ReportError, Rgb, GRID, INK, WHITE};

/// One named curve; non-finite points break the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: Rgb,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, color: Rgb) -> Series {
        Series { name: name.into(), points, color }
    }
}

const WIDTH: usize = 960;
const HEIGHT: usize = 600;
const TITLE_SCALE: usize = 3;
const LABEL_SCALE: usize = 2;
const TICK_LEN: isize = 6;

/// The pixel rectangle of the plot area and the data range it shows.
struct Frame {
    left: f32,
    top: f32,
    width: f32,
    height: f32,
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn px(&self, (x, y): (f64, f64)) -> (f32, f32) {
        let fx = ((x - self.x.0) / (self.x.1 - self.x.0)) as f32;
        let fy = ((y - self.y.0) / (self.y.1 - self.y.0)) as f32;
        (self.left + fx * self.width, self.top + (1.0 - fy) * self.height)
    }
}

fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Draws `series` as a line chart into a 960x600 PNG at `path`.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[Series],
    y_label: &str,
) -> Result<(), ReportError> {
    let all = || series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (x_rng, y_rng) = match (finite_range(all().map(|p| p.0)), finite_range(all().map(|p| p.1))) {
        (Some(x), Some(y)) => (x, y),
        _ => ((0.0, 1.0), (0.0, 1.0)),
    };
    let (x_span, x_ticks) = nice_ticks(x_rng.0, x_rng.1, 8);
    let (y_span, y_ticks) = nice_ticks(y_rng.0, y_rng.1, 6);
    let y_labels: Vec<String> = y_ticks.iter().map(|&v| fmt_num(v)).collect();
    let y_label_w = y_labels.iter().map(|l| text_width(l, LABEL_SCALE)).max().unwrap_or(0);

    let th = text_height(LABEL_SCALE) as f32;
    let left = 24.0 + th + 16.0 + y_label_w as f32 + 10.0;
    let top = 24.0 + text_height(TITLE_SCALE) as f32 + 24.0;
    let frame = Frame {
        left,
        top,
        width: WIDTH as f32 - left - 32.0,
        height: HEIGHT as f32 - top - (24.0 + 2.0 * th + 26.0),
        x: x_span,
        y: y_span,
    };
    let mut c = Canvas::new(WIDTH, HEIGHT, WHITE);
    c.text(WIDTH as isize / 2, 24, title, TITLE_SCALE, INK, Align::Center);
    draw_axes(&mut c, &frame, &x_ticks, &y_ticks, &y_labels);
    let bottom = (frame.top + frame.height) as isize;
    c.text(
        (frame.left + frame.width / 2.0) as isize,
        bottom + 2 * th as isize,
        x_label,
        LABEL_SCALE,
        INK,
        Align::Center,
    );
    c.text_vertical(24, (frame.top + frame.height / 2.0) as isize, y_label, LABEL_SCALE, INK);

    for s in series {
        draw_series(&mut c, &frame, s);
    }
    draw_legend(&mut c, &frame, series);
    c.save_png(path)
}

fn draw_axes(c: &mut Canvas, f: &Frame, x_ticks: &[f64], y_ticks: &[f64], y_labels: &[String]) {
    let (l, t, r, b) = (f.left, f.top, f.left + f.width, f.top + f.height);
    for &v in x_ticks {
        let (x, _) = f.px((v, f.y.0));
        c.line((x, t), (x, b), 1.0, GRID);
        c.fill_rect(x as isize, b as isize, 1, TICK_LEN as usize, INK);
        c.text(x as isize, b as isize + TICK_LEN + 4, &fmt_num(v), LABEL_SCALE, INK, Align::Center);
    }
    let half_h = text_height(LABEL_SCALE) as isize / 2;
    for (&v, label) in y_ticks.iter().zip(y_labels) {
        let (_, y) = f.px((f.x.0, v));
        c.line((l, y), (r, y), 1.0, GRID);
        c.fill_rect(l as isize - TICK_LEN, y as isize, TICK_LEN as usize, 1, INK);
        c.text(l as isize - TICK_LEN - 4, y as isize - half_h, label, LABEL_SCALE, INK, Align::Right);
    }
    c.line((l, b), (r, b), 1.5, INK);
    c.line((l, t), (l, b), 1.5, INK);
}

fn draw_series(c: &mut Canvas, f: &Frame, s: &Series) {
    let mut run: Vec<(f32, f32)> = Vec::new();
    let finite = s.points.iter().filter(|(x, y)| x.is_finite() && y.is_finite()).count();
    for &(x, y) in s.points.iter().chain(std::iter::once(&(f64::NAN, f64::NAN))) {
        if x.is_finite() && y.is_finite() {
            run.push(f.px((x, y)));
            continue;
        }
        c.polyline(&run, 2.5, s.color, None);
        if finite <= 40 || run.len() == 1 {
            for &p in &run {
                c.disc(p, 3.5, s.color);
            }
        }
        run.clear();
    }
}

/// A legend box in the plot corner that covers the fewest points.
fn draw_legend(c: &mut Canvas, f: &Frame, series: &[Series]) {
    if series.is_empty() {
        return;
    }
    let line_h = text_height(LABEL_SCALE) as f32 + 10.0;
    let name_w = series.iter().map(|s| text_width(&s.name, LABEL_SCALE)).max().unwrap_or(0) as f32;
    let (w, h) = (name_w + 56.0, series.len() as f32 * line_h + 12.0);
    let pad = 10.0;
    let corners = [
        (f.left + f.width - w - pad, f.top + pad),
        (f.left + pad, f.top + pad),
        (f.left + f.width - w - pad, f.top + f.height - h - pad),
        (f.left + pad, f.top + f.height - h - pad),
    ];
    let covered = |&(x, y): &(f32, f32)| {
        let inside = |(px, py): (f32, f32)| px >= x - 6.0 && px <= x + w + 6.0 && py >= y - 6.0 && py <= y + h + 6.0;
        series
            .iter()
            .flat_map(|s| &s.points)
            .filter(|&&p| p.0.is_finite() && p.1.is_finite() && inside(f.px(p)))
            .count()
    };
    let (x, y) = corners.iter().copied().min_by_key(covered).unwrap_or(corners[0]);
    c.fill_rect(x as isize, y as isize, w as usize, h as usize, WHITE);
    c.stroke_rect(x as isize, y as isize, w as usize, h as usize, [200, 200, 208]);
    for (i, s) in series.iter().enumerate() {
        let cy = y + 6.0 + line_h * (i as f32 + 0.5);
        c.line((x + 10.0, cy), (x + 38.0, cy), 3.0, s.color);
        let ty = cy as isize - text_height(LABEL_SCALE) as isize / 2;
        c.text(x as isize + 46, ty, &s.name, LABEL_SCALE, INK, Align::Left);
    }
}
