//! Pictures decode at the right size with ink where it belongs; SVG and CSV contents.
//! Set `BNAS_REPORT_DIR=DIR` to keep the pictures for a look.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// An output folder: `BNAS_REPORT_DIR` (kept) or a fresh temp folder (removed on drop).
struct OutDir {
    path: PathBuf,
    keep: bool,
}

impl OutDir {
    fn new(tag: &str) -> OutDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let (path, keep) = match std::env::var_os("BNAS_REPORT_DIR") {
            Some(d) => (PathBuf::from(d), true),
            None => {
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                (std::env::temp_dir().join(format!("bnas-report-{tag}-{}-{n}", std::process::id())), false)
            }
        };
        std::fs::create_dir_all(&path).unwrap();
        OutDir { path, keep }
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn count(pixels: &[Rgb], pred: impl Fn(Rgb) -> bool) -> usize {
    pixels.iter().filter(|&&p| pred(p)).count()
}

fn near(a: Rgb, b: Rgb, tol: u8) -> bool {
    (0..3).all(|c| a[c].abs_diff(b[c]) <= tol)
}

#[test]
fn line_chart_draws_axes_series_and_legend() {
    let out = OutDir::new("chart");
    let path = out.path.join("chart.png");
    let loss: Vec<(f64, f64)> = (0..50).map(|e| (e as f64, 2.3 * (-(e as f64) / 12.0).exp() + 0.25)).collect();
    let val: Vec<(f64, f64)> = (0..50).map(|e| (e as f64, 2.3 * (-(e as f64) / 10.0).exp() + 0.35)).collect();
    let mut broken = val.iter().map(|&(x, y)| (x, y + 0.2)).collect::<Vec<_>>();
    broken[20].1 = f64::NAN;
    let series = [
        Series::new("train loss", loss, palette(0)),
        Series::new("val loss", val, palette(1)),
        Series::new("with gap", broken, palette(2)),
    ];
    line_chart(&path, "Search: loss per epoch", "epoch", &series, "cross-entropy").unwrap();
    let (w, h, px) = read_png(&path).unwrap();
    assert_eq!((w, h), (960, 600));
    for s in &series {
        let n = count(&px, |p| p == s.color);
        println!("{}: {n} pixels of its colour", s.name);
        assert!(n > 300, "series {} is drawn", s.name);
    }
    // Title: ink in the top band; y-axis label: ink in the left band.
    assert!(count(&px[..60 * w], |p| p == INK) > 200);
    assert!((100..500).any(|y| (24..38).any(|x| px[y * w + x] == INK)));
    line_chart(&out.path.join("empty.png"), "nothing", "x", &[], "y").unwrap();
}

#[test]
fn heatmap_shows_alphas_with_numbers() {
    let out = OutDir::new("heat");
    let path = out.path.join("alpha.png");
    let ops =
        ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "bin_conv_3x3", "bin_conv_5x5", "bin_dil_conv_3x3"];
    let mut edges = Vec::new();
    for to in 0..4 {
        for from in 0..to + 2 {
            let name = |i: usize| if i < 2 { format!("c{}", i) } else { format!("n{}", i - 2) };
            edges.push(format!("{}->n{to}", name(from)));
        }
    }
    assert_eq!(edges.len(), 14);
    let values: Vec<Vec<f64>> = (0..14)
        .map(|e| {
            let raw: Vec<f64> = (0..7).map(|o| ((e * 7 + o * 3) % 11) as f64 / 4.0).collect();
            let z: f64 = raw.iter().map(|v| v.exp()).sum();
            raw.iter().map(|v| v.exp() / z).collect()
        })
        .collect();
    heatmap(&path, "Normal cell alpha (softmax)", &edges, &ops, &values).unwrap();
    let (w, h, px) = read_png(&path).unwrap();
    println!("heat map {w}x{h}");
    assert!(w > 7 * 44 && h > 14 * 30);
    let lo = count(&px, |p| near(p, colormap(0.0), 2));
    let hi = count(&px, |p| near(p, colormap(1.0), 2));
    println!("{lo} pixels of the lowest colour, {hi} of the highest");
    assert!(lo > 500 && hi > 500, "cells take the colours of the smallest and largest values");
    assert!(count(&px, |p| p == WHITE) > 0 && count(&px, |p| p == INK) > 1000, "labels and numbers are printed");

    let err = heatmap(&path, "bad", &["a"], &["x", "y"], &[vec![1.0]]).unwrap_err().to_string();
    println!("{err}");
    assert!(err.contains("alpha.png"));
}

#[test]
fn confusion_matrix_picture() {
    let out = OutDir::new("confusion");
    let path = out.path.join("confusion.png");
    let names =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
    let counts: Vec<Vec<u64>> = (0..10)
        .map(|i| (0..10).map(|j| if i == j { 900 - 13 * i as u64 } else { ((i * 7 + j * 3) % 17) as u64 }).collect())
        .collect();
    confusion_matrix(&path, "Fashion-MNIST test", &names, &counts).unwrap();
    let (w, h, px) = read_png(&path).unwrap();
    println!("confusion matrix {w}x{h}");
    assert!(count(&px, |p| near(p, colormap(0.0), 8)) > 1000);
}

#[test]
fn cell_diagram_svg_has_every_op_and_the_dashed_skip() {
    let d = CellDiagram {
        title: "Normal cell <epoch 50>".into(),
        edges: vec![
            ("bin_conv_3x3".into(), 0, 0),
            ("max_pool_3x3".into(), 1, 0),
            ("skip_connect".into(), 1, 1),
            ("bin_dil_conv_3x3".into(), 2, 1),
            ("avg_pool_3x3".into(), 0, 2),
            ("bin_conv_5x5".into(), 3, 2),
            ("bin_conv_3x3".into(), 4, 3),
            ("skip_connect".into(), 0, 3),
        ],
        skip: Some("skip: identity".into()),
    };
    let svg = cell_diagram_svg(&d);
    for (op, _, _) in &d.edges {
        assert!(svg.contains(&format!(">{op}</text>")), "label {op}");
    }
    for node in [">k-2</tspan>", ">k-1</tspan>", ">k</tspan>", ">0<", ">3<", "skip: identity", "stroke-dasharray"] {
        assert!(svg.contains(node), "{node}");
    }
    assert!(svg.contains("Normal cell &lt;epoch 50&gt;"), "the title is escaped");
    assert_eq!(svg.matches("marker-end").count(), 8 + 4 + 1, "op edges, concat edges, skip");

    let out = OutDir::new("diagram");
    std::fs::write(out.path.join("cell.svg"), &svg).unwrap();
    let path = out.path.join("cell.png");
    cell_diagram_png(&path, &d).unwrap();
    let (w, h, px) = read_png(&path).unwrap();
    println!("cell diagram {w}x{h}, svg {} bytes", svg.len());
    assert!(w > 1000 && h > 300 && count(&px, |p| p == INK) > 1000);
}

#[test]
fn csv_round_trip_and_resume() {
    let out = OutDir::new("csv");
    let path = out.path.join("log.csv");
    let _ = std::fs::remove_file(&path);
    let header = ["epoch", "loss", "note"];
    let log = CsvLog::open(&path, &header).unwrap();
    log.append(&[Cell::from(0usize), Cell::from(std::f64::consts::LN_10), Cell::from("warm-up, \"lr\" 0.1")]).unwrap();
    log.append(&[1usize.into(), 0.1f64.into(), "".into()]).unwrap();
    let log = CsvLog::open(&path, &header).unwrap(); // a resumed run keeps appending
    log.append(&[2usize.into(), f64::NAN.into(), "line\nbreak".into()]).unwrap();
    let (h, rows) = read_csv(&path).unwrap();
    assert_eq!(h, header);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], ["0", "2.302585092994046", "warm-up, \"lr\" 0.1"]);
    assert_eq!(rows[0][1].parse::<f64>().unwrap(), std::f64::consts::LN_10);
    assert_eq!(rows[2], ["2", "NaN", "line\nbreak"]);
    let err = CsvLog::open(&path, &["epoch", "acc"]).unwrap_err().to_string();
    println!("{err}");
    assert!(err.contains("log.csv") && err.contains("epoch,loss,note"));
}

#[test]
fn numbers_and_ticks_read_well() {
    assert_eq!(fmt_num(0.30000000000000004), "0.3");
    assert_eq!(fmt_num(1234.5678), "1235");
    assert_eq!(fmt_num(0.012345), "0.01235");
    assert_eq!(fmt_num(-2.5), "-2.5");
    assert_eq!(fmt_num(1e-5), "1.0e-5");
    let ((a, b), ticks) = nice_ticks(0.23, 2.31, 6);
    println!("{a} {b} {ticks:?}");
    assert!(a <= 0.23 && b >= 2.31 && (4..=10).contains(&ticks.len()));
    assert_eq!(ticks.iter().map(|&t| fmt_num(t)).collect::<Vec<_>>()[..3], ["0", "0.5", "1"]);
    let (_, flat) = nice_ticks(3.0, 3.0, 5);
    assert!(flat.len() >= 2);
}

#[test]
fn hidden_progress_prints_epoch_lines() {
    let mut p = Progress::with_visibility("train", 2, false);
    assert!(!p.is_visible());
    p.start_epoch(0, 10, 3);
    let stats = StepStats { loss: Some(0.53214), accuracy: Some(0.8123), images_per_s: Some(4210.4) };
    p.step(5, &stats);
    assert_eq!(stats.message(), "loss 0.5321  acc 81.23%  4210 img/s");
    p.end_epoch("val 79.10%");
    p.finish();
    assert_eq!(progress::epoch_line("train", 0, 2, "x", 1.25), "train epoch 1/2  x  (1.2 s)");
}
