//! Convolution throughput of any `Backend`, measured side by side (no timed tests: callers
//! print the table; see the ignored test `engine::cpu::tests_misc::bench_supernet_convs`).

use std::fmt::Write as _;
use std::time::Instant;

use super::backend::Backend;
use super::geom::ConvGeom;
use crate::rng::Rng;

/// Measured wall time (seconds per pass) and throughput (GFLOP/s, counting 2 FLOPs per
/// multiply-accumulate, `2 * geom.macs()` per pass) of the three convolution passes.
#[derive(Debug, Clone, Copy)]
pub struct ConvBench {
    pub geom: ConvGeom,
    pub forward_s: f64,
    /// The binary conv's forward over +-1 operands, `sign_conv2d` (XNOR-popcount on the CPU, with
    /// its scale and ReLU).
    pub sign_s: f64,
    pub bwd_data_s: f64,
    pub bwd_weight_s: f64,
}

impl ConvBench {
    fn gflops(&self, seconds: f64) -> f64 {
        2.0 * self.geom.macs() as f64 / seconds / 1e9
    }
    pub fn forward_gflops(&self) -> f64 {
        self.gflops(self.forward_s)
    }
    pub fn bwd_data_gflops(&self) -> f64 {
        self.gflops(self.bwd_data_s)
    }
    pub fn bwd_weight_gflops(&self) -> f64 {
        self.gflops(self.bwd_weight_s)
    }
}

/// Times `reps` runs (after one warm-up) of each pass per geometry, on random data.
///
/// Each timed span ends by downloading the last run's result: on the GPU that submits the
/// queued work and waits for it, so the time includes execution (not just recording); the
/// download itself is counted (once per `reps` runs). On the CPU it is one copy.
pub fn bench_conv<B: Backend>(backend: &B, geoms: &[ConvGeom], reps: usize) -> Vec<ConvBench> {
    let reps = reps.max(1);
    let mut rng = Rng::new(0xBE7C);
    let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.normal()).collect() };
    geoms
        .iter()
        .map(|&g| {
            let x = backend.upload(&random(g.in_len()));
            let w = backend.upload(&random(g.weight_len()));
            let dy = backend.upload(&random(g.out_len()));
            let signs =
                |b: &B::Buf| backend.upload(&backend.download(b).iter().map(|v| v.signum()).collect::<Vec<_>>());
            let (xs, ws) = (signs(&x), signs(&w));
            let scale = backend.upload(&vec![0.01; g.c_out]);
            let time = |pass: &dyn Fn() -> B::Buf| {
                backend.download(&pass());
                let start = Instant::now();
                let mut last = pass();
                for _ in 1..reps {
                    last = pass();
                }
                backend.download(&last);
                start.elapsed().as_secs_f64() / reps as f64
            };
            ConvBench {
                geom: g,
                forward_s: time(&|| backend.conv2d(&x, &w, None, g)),
                sign_s: time(&|| backend.sign_conv2d(&xs, &ws, &scale, g)),
                bwd_data_s: time(&|| backend.conv2d_bwd_data(&dy, &w, g)),
                bwd_weight_s: time(&|| backend.conv2d_bwd_weight(&dy, &x, g)),
            }
        })
        .collect()
}

/// The convolutions of a BNAS supernet at batch 64: channels 16, 32, 64 at 28x28, 14x14,
/// 7x7 (ImageNet-style) and 32x32, 16x16, 8x8 (CIFAR); each as bin_conv 3x3 (padding 1),
/// 5x5 (padding 2), dilated 3x3 (dilation 2, padding 2) and dilated 5x5 (dilation 2, padding 4).
pub fn supernet_conv_shapes() -> Vec<ConvGeom> {
    const BATCH: usize = 64;
    let stages = [(16, 28), (32, 14), (64, 7), (16, 32), (32, 16), (64, 8)];
    let ops = [(3, 1, 1), (5, 2, 1), (3, 2, 2), (5, 4, 2)];
    let mut geoms = vec![];
    for (c, hw) in stages {
        for (k, pad, dil) in ops {
            geoms.push(ConvGeom { n: BATCH, c_in: c, h: hw, w: hw, c_out: c, k, stride: 1, pad, dil });
        }
    }
    geoms
}

/// A text table of the results, one line per geometry, times in milliseconds.
pub fn conv_table(results: &[ConvBench]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<34} {:>8} {:>8} {:>8} | {:>7} {:>7} {:>7} | {:>8} {:>7}",
        "conv (n c hxw k pad dil)",
        "fwd ms",
        "bwd_d ms",
        "bwd_w ms",
        "fwd GF",
        "bwd_d GF",
        "bwd_w GF",
        "xnor ms",
        "fwd/xnor"
    );
    for r in results {
        let g = r.geom;
        let name = format!("{} {} {}x{} k{} p{} d{}", g.n, g.c_in, g.h, g.w, g.k, g.pad, g.dil);
        let _ = writeln!(
            out,
            "{:<34} {:>8.2} {:>8.2} {:>8.2} | {:>7.1} {:>7.1} {:>7.1} | {:>8.3} {:>7.1}x",
            name,
            r.forward_s * 1e3,
            r.bwd_data_s * 1e3,
            r.bwd_weight_s * 1e3,
            r.forward_gflops(),
            r.bwd_data_gflops(),
            r.bwd_weight_gflops(),
            r.sign_s * 1e3,
            r.forward_s / r.sign_s
        );
    }
    out
}
