//! A cell's DAG drawn as SVG (and as PNG with the bitmap font): inputs c_{k-2}, c_{k-1} on
//! the left, intermediate nodes in a zig-zag, the output c_{k} on the right, every edge
//! labelled with its op, the inter-cell skip dashed underneath.

use std::fmt::Write as _;
use std::path::Path;

use super::canvas::{Align, Canvas};
use super::font::{text_height, text_width};
use super::{palette, ReportError, Rgb, INK, WHITE};

/// A cell to draw, independent of the genotype types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellDiagram {
    pub title: String,
    /// `(op, from, to)`: `from` is 0 for c_{k-2}, 1 for c_{k-1}, `2 + i` for intermediate node
    /// `i`; `to` is an intermediate node. Edges naming a node that is not drawn are skipped.
    pub edges: Vec<(String, usize, usize)>,
    /// The op of the inter-cell skip from c_{k-1} to c_{k}, if the cell has one.
    pub skip: Option<String>,
}

const COLUMN: f32 = 270.0;
const LEFT: f32 = 90.0;
const TOP: f32 = 100.0;
const BOX_W: f32 = 104.0;
const BOX_H: f32 = 44.0;
const ZIGZAG: f32 = 80.0;
const INPUT_FILL: Rgb = [196, 230, 196];
const NODE_FILL: Rgb = [200, 222, 245];
const OUTPUT_FILL: Rgb = [245, 232, 180];
const CONCAT: Rgb = [160, 160, 170];

struct Node {
    label: String,
    x: f32,
    y: f32,
    fill: Rgb,
}

struct Edge {
    p0: (f32, f32),
    ctrl: (f32, f32),
    p1: (f32, f32),
    label: Option<String>,
    color: Rgb,
    dashed: bool,
}

impl Edge {
    fn at(&self, t: f32) -> (f32, f32) {
        let u = 1.0 - t;
        let f = |a: f32, c: f32, b: f32| u * u * a + 2.0 * u * t * c + t * t * b;
        (f(self.p0.0, self.ctrl.0, self.p1.0), f(self.p0.1, self.ctrl.1, self.p1.1))
    }
}

struct Layout {
    width: f32,
    height: f32,
    title: String,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

/// Where the ray from a box's centre toward `toward` leaves the box.
fn box_exit((cx, cy): (f32, f32), toward: (f32, f32)) -> (f32, f32) {
    let (dx, dy) = (toward.0 - cx, toward.1 - cy);
    let sx = if dx.abs() > 1e-6 { (BOX_W / 2.0) / dx.abs() } else { f32::INFINITY };
    let sy = if dy.abs() > 1e-6 { (BOX_H / 2.0) / dy.abs() } else { f32::INFINITY };
    let s = sx.min(sy).min(1.0);
    (cx + dx * s, cy + dy * s)
}

fn layout(d: &CellDiagram) -> Layout {
    let steps = d.edges.iter().map(|e| e.2 + 1).max().unwrap_or(4).max(1);
    let mid = TOP + 150.0;
    let mut nodes = vec![
        Node { label: "c_{k-2}".into(), x: LEFT, y: mid - 120.0, fill: INPUT_FILL },
        Node { label: "c_{k-1}".into(), x: LEFT, y: mid + 120.0, fill: INPUT_FILL },
    ];
    for i in 0..steps {
        let y = if i % 2 == 0 { mid - ZIGZAG } else { mid + ZIGZAG };
        nodes.push(Node { label: i.to_string(), x: LEFT + COLUMN * (i + 1) as f32, y, fill: NODE_FILL });
    }
    let out = (LEFT + COLUMN * (steps + 1) as f32, mid);
    nodes.push(Node { label: "c_{k}".into(), x: out.0, y: out.1, fill: OUTPUT_FILL });

    // One colour per op, in order of first appearance.
    let mut ops: Vec<&str> = Vec::new();
    let mut edges = Vec::new();
    let mut seen: Vec<(usize, usize)> = Vec::new();
    for (op, from, to) in &d.edges {
        if *from >= 2 + steps || *to >= steps {
            continue;
        }
        let color = match ops.iter().position(|o| o == op) {
            Some(i) => palette(i),
            None => {
                ops.push(op);
                palette(ops.len() - 1)
            }
        };
        let (a, b) = (&nodes[*from], &nodes[2 + to]);
        let span = ((b.x - a.x).abs() / COLUMN).round().max(1.0);
        let repeat = seen.iter().filter(|&&p| p == (*from, *to)).count() as f32;
        seen.push((*from, *to));
        let up = (a.y + b.y) / 2.0 <= mid;
        let bend = 55.0 * (span - 1.0) + 50.0 * repeat;
        let ctrl = ((a.x + b.x) / 2.0, (a.y + b.y) / 2.0 + if up { -bend } else { bend });
        let (p0, p1) = (box_exit((a.x, a.y), ctrl), box_exit((b.x, b.y), ctrl));
        edges.push(Edge { p0, ctrl, p1, label: Some(op.clone()), color, dashed: false });
    }
    for i in 0..steps {
        let n = &nodes[2 + i];
        let ctrl = ((n.x + out.0) / 2.0, (n.y + out.1) / 2.0);
        let (p0, p1) = (box_exit((n.x, n.y), ctrl), box_exit(out, ctrl));
        edges.push(Edge { p0, ctrl, p1, label: None, color: CONCAT, dashed: false });
    }
    let bottom = mid + 120.0 + BOX_H / 2.0;
    if let Some(op) = &d.skip {
        let s = &nodes[1];
        let p0 = (s.x, s.y + BOX_H / 2.0);
        let p1 = (out.0, out.1 + BOX_H / 2.0);
        let ctrl = ((p0.0 + p1.0) / 2.0, bottom + 150.0);
        edges.push(Edge { p0, ctrl, p1, label: Some(op.clone()), color: INK, dashed: true });
    }
    let height = bottom + if d.skip.is_some() { 110.0 } else { 30.0 };
    Layout { width: out.0 + BOX_W / 2.0 + 40.0, height, title: d.title.clone(), nodes, edges }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// "c_{k-1}" as c with a real subscript; other labels escaped as they are.
fn svg_node_label(label: &str) -> String {
    match label.strip_prefix("c_{").and_then(|r| r.strip_suffix('}')) {
        Some(sub) => format!(r#"c<tspan dy="5" font-size="12">{}</tspan>"#, xml_escape(sub)),
        None => xml_escape(label),
    }
}

fn hex(c: Rgb) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// The diagram as a standalone SVG document.
pub fn cell_diagram_svg(d: &CellDiagram) -> String {
    let l = layout(d);
    let mut s = String::new();
    let (w, h) = (l.width.round(), l.height.round());
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace">"#
    );
    s.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"context-stroke\"/></marker></defs>\n");
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="34" font-size="22" font-weight="bold" text-anchor="middle" fill="{}">{}</text>"#,
        w / 2.0,
        hex(INK),
        xml_escape(&l.title)
    );
    for e in &l.edges {
        let dash = if e.dashed { r#" stroke-dasharray="9 6""# } else { "" };
        let _ = writeln!(
            s,
            r#"<path d="M{:.1},{:.1} Q{:.1},{:.1} {:.1},{:.1}" fill="none" stroke="{}" stroke-width="2.2"{dash} marker-end="url(#arrow)"/>"#,
            e.p0.0,
            e.p0.1,
            e.ctrl.0,
            e.ctrl.1,
            e.p1.0,
            e.p1.1,
            hex(e.color)
        );
    }
    for e in &l.edges {
        let Some(label) = &e.label else { continue };
        let (x, y) = e.at(0.5);
        let tw = 8.0 * label.chars().count() as f32 + 8.0;
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{tw:.1}" height="20" rx="4" fill="white" fill-opacity="0.9" stroke="{}" stroke-width="1"/>"#,
            x - tw / 2.0,
            y - 10.0,
            hex(e.color)
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" font-size="13" text-anchor="middle" fill="{}">{}</text>"#,
            y + 4.5,
            hex(INK),
            xml_escape(label)
        );
    }
    for n in &l.nodes {
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{}" stroke="{}" stroke-width="1.5"/>"#,
            n.x - BOX_W / 2.0,
            n.y - BOX_H / 2.0,
            hex(n.fill),
            hex(INK)
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="16" text-anchor="middle" fill="{}">{}</text>"#,
            n.x,
            n.y + 5.5,
            hex(INK),
            svg_node_label(&n.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The same diagram as a PNG drawn with the bitmap font.
pub fn cell_diagram_png(path: &Path, d: &CellDiagram) -> Result<(), ReportError> {
    let l = layout(d);
    let mut c = Canvas::new(l.width as usize, l.height as usize, WHITE);
    c.text(l.width as isize / 2, 18, &l.title, 3, INK, Align::Center);
    for e in &l.edges {
        let pts: Vec<(f32, f32)> = (0..=32).map(|k| e.at(k as f32 / 32.0)).collect();
        c.polyline(&pts, 2.2, e.color, e.dashed.then_some((9.0, 6.0)));
        // Arrowhead along the tangent at the end, p1 - ctrl.
        let (dx, dy) = (e.p1.0 - e.ctrl.0, e.p1.1 - e.ctrl.1);
        let len = (dx * dx + dy * dy).sqrt().max(1e-6);
        let (ux, uy) = (dx / len, dy / len);
        for side in [-1.0f32, 1.0] {
            let tip = (e.p1.0 - 11.0 * ux - 5.0 * side * uy, e.p1.1 - 11.0 * uy + 5.0 * side * ux);
            c.line(e.p1, tip, 2.2, e.color);
        }
    }
    let th = text_height(2) as isize;
    for e in &l.edges {
        let Some(label) = &e.label else { continue };
        let (x, y) = e.at(0.5);
        let tw = text_width(label, 2) + 10;
        let (bx, by) = (x as isize - tw as isize / 2, y as isize - th / 2 - 4);
        c.fill_rect(bx, by, tw, th as usize + 8, WHITE);
        c.stroke_rect(bx, by, tw, th as usize + 8, e.color);
        c.text(x as isize, y as isize - th / 2, label, 2, INK, Align::Center);
    }
    for n in &l.nodes {
        let (x, y) = ((n.x - BOX_W / 2.0) as isize, (n.y - BOX_H / 2.0) as isize);
        c.fill_rect(x, y, BOX_W as usize, BOX_H as usize, n.fill);
        c.stroke_rect(x, y, BOX_W as usize, BOX_H as usize, INK);
        c.text(n.x as isize, n.y as isize - th / 2, &n.label, 2, INK, Align::Center);
    }
    c.save_png(path)
}
