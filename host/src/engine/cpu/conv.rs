//! 2-D convolution as im2col + GEMM, parallel over the batch.
//!
//! The batch is split into one contiguous range of samples per thread. Inside a range,
//! samples are processed in micro-batches whose im2col columns sit side by side, so that the
//! GEMM sees at least `TARGET_COLS` columns even at 7x7 (one sample of 7x7 is only 49 columns,
//! too few for the GEMM's packing to pay off). A 1x1, stride-1, unpadded convolution needs no
//! im2col: the input already is the column matrix.

use std::cell::RefCell;

use super::dots;
use super::gemm::{gemm, Mat};
use super::Cpu;
use crate::engine::geom::ConvGeom;

/// Columns a micro-batch aims for in one GEMM.
const TARGET_COLS: usize = 512;
/// Largest im2col scratch (f32 values) one micro-batch may use, per thread.
const MAX_COL_LEN: usize = 4 << 20;

thread_local! {
    /// Per-thread scratch (im2col columns and a staging matrix), reused across calls.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch of at least `len` values (contents unspecified).
/// `f` must not call `with_scratch` again.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// How a convolution is cut into GEMMs.
struct Plan {
    g: ConvGeom,
    oh: usize,
    ow: usize,
    /// Output pixels per channel.
    ohow: usize,
    /// Input values per sample, `c_in * h * w`.
    in_s: usize,
    /// Output values per sample, `c_out * ohow`.
    out_s: usize,
    /// Rows of the column matrix, `c_in * k * k`.
    kdim: usize,
    /// 1x1, stride 1, no padding: the input is its own column matrix.
    direct: bool,
    /// Samples per parallel task.
    per_task: usize,
    /// Samples per GEMM.
    mb: usize,
}

impl Plan {
    fn new(g: ConvGeom, threads: usize) -> Self {
        let (oh, ow) = (g.out_h(), g.out_w());
        let ohow = oh * ow;
        let kdim = g.c_in * g.k * g.k;
        let per_task = g.n.div_ceil(threads.max(1));
        let by_memory = (MAX_COL_LEN / (kdim * ohow).max(1)).max(1);
        let mb = TARGET_COLS.div_ceil(ohow).min(per_task).min(by_memory).max(1);
        Self {
            g,
            oh,
            ow,
            ohow,
            in_s: g.c_in * g.h * g.w,
            out_s: g.c_out * ohow,
            kdim,
            direct: g.k == 1 && g.stride == 1 && g.pad == 0,
            per_task,
            mb,
        }
    }

    /// Scratch for one task: the column matrix `[kdim, mb * ohow]` (or its transpose), then a
    /// staging matrix `[c_out, mb * ohow]`.
    fn scratch_len(&self) -> usize {
        (self.kdim + self.g.c_out) * self.mb * self.ohow
    }

    /// Writes the column matrix of `nb` consecutive samples `xs` into `col` (`[kdim, nb * ohow]`).
    fn im2col_batch(&self, xs: &[f32], nb: usize, col: &mut [f32]) {
        let ld = nb * self.ohow;
        for j in 0..nb {
            let x = &xs[j * self.in_s..(j + 1) * self.in_s];
            if self.direct {
                for (r, src) in x.chunks_exact(self.ohow).enumerate() {
                    col[r * ld + j * self.ohow..][..self.ohow].copy_from_slice(src);
                }
            } else {
                self.im2col(x, col, ld, j * self.ohow);
            }
        }
    }

    /// Column matrix of one sample `x` `[c_in, h, w]` into columns `[off, off + ohow)` of
    /// `col` (leading dimension `ld`). Padded taps are 0.
    fn im2col(&self, x: &[f32], col: &mut [f32], ld: usize, off: usize) {
        let g = &self.g;
        let (ow, hw) = (self.ow, g.h * g.w);
        for ci in 0..g.c_in {
            let plane = &x[ci * hw..(ci + 1) * hw];
            for ky in 0..g.k {
                let (y_lo, y_hi) = valid_range(self.oh, g.stride, ky * g.dil, g.pad, g.h);
                for kx in 0..g.k {
                    let (x_lo, x_hi) = valid_range(ow, g.stride, kx * g.dil, g.pad, g.w);
                    let r = (ci * g.k + ky) * g.k + kx;
                    let dst = &mut col[r * ld + off..][..self.ohow];
                    dst[..y_lo * ow].fill(0.0);
                    dst[y_hi * ow..].fill(0.0);
                    if g.stride == 1 && ow == g.w && x_lo < x_hi && y_lo < y_hi {
                        // Same-size output: tap (ky, kx) is the whole plane shifted by a constant,
                        // so one contiguous copy, then zero the columns that fell off an edge
                        // (thousands of row-sized copies would cost a third of the convolution).
                        let (first, end) = (y_lo * ow + x_lo, (y_hi - 1) * ow + x_hi);
                        let src0 = (y_lo + ky * g.dil - g.pad) * g.w + x_lo + kx * g.dil - g.pad;
                        dst[first..end].copy_from_slice(&plane[src0..src0 + (end - first)]);
                        for oy in y_lo..y_hi {
                            dst[oy * ow..oy * ow + x_lo].fill(0.0);
                            dst[oy * ow + x_hi..(oy + 1) * ow].fill(0.0);
                        }
                        continue;
                    }
                    for oy in y_lo..y_hi {
                        let row = &mut dst[oy * ow..(oy + 1) * ow];
                        row[..x_lo].fill(0.0);
                        row[x_hi..].fill(0.0);
                        if x_lo == x_hi {
                            continue;
                        }
                        let iy = oy * g.stride + ky * g.dil - g.pad;
                        let ix0 = x_lo * g.stride + kx * g.dil - g.pad;
                        let src = &plane[iy * g.w..(iy + 1) * g.w];
                        let row = &mut row[x_lo..x_hi];
                        if g.stride == 1 {
                            row.copy_from_slice(&src[ix0..ix0 + row.len()]);
                        } else {
                            for (j, v) in row.iter_mut().enumerate() {
                                *v = src[ix0 + j * g.stride];
                            }
                        }
                    }
                }
            }
        }
    }

    /// Copies `nb` samples of `dy` (`[nb, c_out, ohow]`) into `dyg` as `[c_out, nb * ohow]`.
    fn gather_out(&self, dys: &[f32], nb: usize, dyg: &mut [f32]) {
        let ld = nb * self.ohow;
        for j in 0..nb {
            for co in 0..self.g.c_out {
                let src = &dys[j * self.out_s + co * self.ohow..][..self.ohow];
                dyg[co * ld + j * self.ohow..][..self.ohow].copy_from_slice(src);
            }
        }
    }

    /// The inverse of `gather_out`.
    fn scatter_out(&self, tmp: &[f32], nb: usize, ys: &mut [f32]) {
        let ld = nb * self.ohow;
        for j in 0..nb {
            for co in 0..self.g.c_out {
                let src = &tmp[co * ld + j * self.ohow..][..self.ohow];
                ys[j * self.out_s + co * self.ohow..][..self.ohow].copy_from_slice(src);
            }
        }
    }
}

/// Output positions `o` in `[lo, hi)` along one axis whose input index
/// `o * stride + tap - pad` lies in `[0, len_in)`.
pub(super) fn valid_range(out_len: usize, stride: usize, tap: usize, pad: usize, len_in: usize) -> (usize, usize) {
    let lo = if pad > tap { (pad - tap).div_ceil(stride) } else { 0 };
    let limit = len_in + pad;
    let hi = if limit > tap { (limit - tap).div_ceil(stride).min(out_len) } else { 0 };
    (lo.min(hi), hi)
}

/// `y = conv(x, w) + bias`, `[n, c_out, out_h, out_w]`.
pub(super) fn forward(cpu: &Cpu, x: &[f32], w: &[f32], bias: Option<&[f32]>, g: ConvGeom) -> Vec<f32> {
    debug_assert_eq!(x.len(), g.in_len());
    debug_assert_eq!(w.len(), g.weight_len());
    let p = Plan::new(g, cpu.threads());
    let wm = Mat::rows(w, p.kdim);
    cpu.new_zeroed_tasks(g.out_len(), p.per_task * p.out_s, |t, y_task| {
        let first = t * p.per_task;
        let count = y_task.len() / p.out_s;
        with_scratch(p.scratch_len(), |scratch| {
            let (col, tmp) = scratch.split_at_mut(p.kdim * p.mb * p.ohow);
            for b0 in (0..count).step_by(p.mb) {
                let nb = p.mb.min(count - b0);
                let ld = nb * p.ohow;
                let xs = &x[(first + b0) * p.in_s..][..nb * p.in_s];
                let ys = &mut y_task[b0 * p.out_s..][..nb * p.out_s];
                let bm = if p.direct && nb == 1 {
                    Mat::rows(xs, ld)
                } else {
                    p.im2col_batch(xs, nb, col);
                    Mat::rows(col, ld)
                };
                if nb == 1 {
                    gemm(g.c_out, p.kdim, ld, wm, bm, 0.0, ys, ld);
                } else {
                    gemm(g.c_out, p.kdim, ld, wm, bm, 0.0, tmp, ld);
                    p.scatter_out(tmp, nb, ys);
                }
                if let Some(bias) = bias {
                    for (i, row) in ys.chunks_exact_mut(p.ohow).enumerate() {
                        let b = bias[i % g.c_out];
                        row.iter_mut().for_each(|v| *v += b);
                    }
                }
            }
        })
    })
}

/// Gradient w.r.t. the input, `[n, c_in, h, w]`: directly (`direct`) for stride-1 convs where
/// that applies, else [`backward_data_gemm`].
pub(super) fn backward_data(cpu: &Cpu, dy: &[f32], w: &[f32], g: ConvGeom) -> Vec<f32> {
    if super::direct::applies(&g) {
        super::direct::backward_data(cpu, dy, w, g)
    } else {
        backward_data_gemm(cpu, dy, w, g)
    }
}

/// Gradient w.r.t. the input, `[n, c_in, h, w]`, through pixel-major columns: `dcol = dy^T W'`
/// by GEMM (`[pixels, k*k*c_in]`, `W'` the weights with the taps outermost), so that each
/// input pixel's gradient is the sum of its taps' channel vectors, contiguous rows of `dcol`.
/// Each pixel is summed once in registers ([`sum_taps`]), in tap order, then a sample's pixels
/// are transposed into its channel planes. (The channel-major `dcol = W^T dy` added back row by
/// row, col2im, spent more than its GEMM at 7x7: 5-7 values per row.) A 1x1, stride-1,
/// unpadded conv's columns are its gradient already.
pub(super) fn backward_data_gemm(cpu: &Cpu, dy: &[f32], w: &[f32], g: ConvGeom) -> Vec<f32> {
    debug_assert_eq!(dy.len(), g.out_len());
    debug_assert_eq!(w.len(), g.weight_len());
    let p = Plan::new(g, cpu.threads());
    let kk = g.k * g.k;
    // `W'[o][t * c_in + c] = w[o][c][t]` (for a 1x1 conv, `w` itself).
    let wp: Vec<f32> = (0..g.c_out * p.kdim)
        .map(|i| (i / p.kdim, i % p.kdim))
        .map(|(o, r)| w[(o * g.c_in + r % g.c_in) * kk + r / g.c_in])
        .collect();
    let taps = Taps::new(&p);
    // The direct case's columns are channel-major; the others are pixel-major, plus one sample's
    // pixels before their transpose.
    let hwc_len = if p.direct { 0 } else { p.in_s };
    cpu.new_zeroed_tasks(g.in_len(), p.per_task * p.in_s, |t, dx_task| {
        let first = t * p.per_task;
        let count = dx_task.len() / p.in_s;
        with_scratch(p.scratch_len() + hwc_len, |scratch| {
            let (dcol, rest) = scratch.split_at_mut(p.kdim * p.mb * p.ohow);
            let (dyg, hwc) = rest.split_at_mut(g.c_out * p.mb * p.ohow);
            for b0 in (0..count).step_by(p.mb) {
                let nb = p.mb.min(count - b0);
                let ld = nb * p.ohow;
                let dys = &dy[(first + b0) * p.out_s..][..nb * p.out_s];
                let dxs = &mut dx_task[b0 * p.in_s..][..nb * p.in_s];
                let dym: &[f32] = if nb == 1 {
                    dys
                } else {
                    p.gather_out(dys, nb, dyg);
                    dyg
                };
                if p.direct {
                    if nb == 1 {
                        gemm(p.kdim, g.c_out, ld, Mat::cols(&wp, p.kdim), Mat::rows(dym, ld), 0.0, dxs, ld);
                        continue;
                    }
                    gemm(p.kdim, g.c_out, ld, Mat::cols(&wp, p.kdim), Mat::rows(dym, ld), 0.0, dcol, ld);
                    for (j, dx1) in dxs.chunks_exact_mut(p.in_s).enumerate() {
                        for (r, dst) in dx1.chunks_exact_mut(p.ohow).enumerate() {
                            dst.copy_from_slice(&dcol[r * ld + j * p.ohow..][..p.ohow]);
                        }
                    }
                    continue;
                }
                gemm(ld, g.c_out, p.kdim, Mat::cols(dym, ld), Mat::rows(&wp, p.kdim), 0.0, dcol, p.kdim);
                for (j, dx1) in dxs.chunks_exact_mut(p.in_s).enumerate() {
                    let cols = &dcol[j * p.ohow * p.kdim..][..p.ohow * p.kdim];
                    taps.sum(cols, hwc);
                    let hw = g.h * g.w;
                    for (c, plane) in dx1.chunks_exact_mut(hw).enumerate() {
                        for (d, px) in plane.iter_mut().zip(hwc.chunks_exact(g.c_in)) {
                            *d = px[c];
                        }
                    }
                }
            }
        })
    })
}

/// Which columns of a sample's pixel-major `dcol` (`[ohow, k*k*c_in]`) each input pixel sums:
/// per input row, the `(ky, oy)` whose tap lands on it, and per input column the `(kx, ox)`.
struct Taps {
    rows: Vec<Vec<(usize, usize)>>,
    cols: Vec<Vec<(usize, usize)>>,
    k: usize,
    ow: usize,
    c_in: usize,
    kdim: usize,
}

impl Taps {
    fn new(p: &Plan) -> Self {
        let g = &p.g;
        // Input index `i` meets tap `t` of output `o` where `o * stride + t * dil = i + pad`.
        let along = |len_in: usize, len_out: usize| -> Vec<Vec<(usize, usize)>> {
            (0..len_in)
                .map(|i| {
                    (0..g.k)
                        .filter_map(|t| {
                            let at = (i + g.pad).checked_sub(t * g.dil)?;
                            (at % g.stride == 0 && at / g.stride < len_out).then_some((t, at / g.stride))
                        })
                        .collect()
                })
                .collect()
        };
        Self { rows: along(g.h, p.oh), cols: along(g.w, p.ow), k: g.k, ow: p.ow, c_in: g.c_in, kdim: p.kdim }
    }

    /// `hwc[iy * w + ix][c]`: the sum over the pixel's taps, in tap order, of its columns of
    /// `cols` (one sample's pixel-major `dcol`); 0 where no tap lands.
    fn sum(&self, cols: &[f32], hwc: &mut [f32]) {
        let mut offs = Vec::with_capacity(self.k * self.k);
        let pixels = self.rows.iter().flat_map(|r| self.cols.iter().map(move |c| (r, c)));
        for ((rows, cols_x), dst) in pixels.zip(hwc.chunks_exact_mut(self.c_in)) {
            offs.clear();
            for &(ky, oy) in rows {
                offs.extend(
                    cols_x.iter().map(|&(kx, ox)| (oy * self.ow + ox) * self.kdim + (ky * self.k + kx) * self.c_in),
                );
            }
            sum_taps(cols, &offs, dst);
        }
    }
}

/// `dst[c] = sum over offs of src[off + c]`, in the order of `offs`, 16 channels at a time in
/// registers.
#[inline]
fn sum_taps(src: &[f32], offs: &[usize], dst: &mut [f32]) {
    const B: usize = 16;
    let c0 = dst.len() / B * B;
    let mut blocks = dst.chunks_exact_mut(B);
    for (b, d) in (&mut blocks).enumerate() {
        let mut acc = [0f32; B];
        for &o in offs {
            let s: &[f32; B] = src[o + b * B..][..B].try_into().expect("B values");
            acc.iter_mut().zip(s).for_each(|(a, v)| *a += v);
        }
        d.copy_from_slice(&acc);
    }
    for (c, d) in blocks.into_remainder().iter_mut().enumerate() {
        *d = offs.iter().fold(0.0, |a, &o| a + src[o + c0 + c]);
    }
}

/// Gradient w.r.t. the weights: `dW += dy col^T` per micro-batch (as dot products, `gemm_nt`), one partial `dW` per task,
/// summed at the end; `[c_out, c_in, k, k]`.
pub(super) fn backward_weight(cpu: &Cpu, dy: &[f32], x: &[f32], g: ConvGeom) -> Vec<f32> {
    debug_assert_eq!(dy.len(), g.out_len());
    debug_assert_eq!(x.len(), g.in_len());
    let p = Plan::new(g, cpu.threads());
    let tasks = g.n.div_ceil(p.per_task);
    let dots = dots::available();
    let partial = |t: usize| {
        let first = t * p.per_task;
        let count = p.per_task.min(g.n - first);
        let mut dw = vec![0.0; g.weight_len()];
        with_scratch(p.scratch_len(), |scratch| {
            let (col, dyg) = scratch.split_at_mut(p.kdim * p.mb * p.ohow);
            for b0 in (0..count).step_by(p.mb) {
                let nb = p.mb.min(count - b0);
                let ld = nb * p.ohow;
                let xs = &x[(first + b0) * p.in_s..][..nb * p.in_s];
                let dys = &dy[(first + b0) * p.out_s..][..nb * p.out_s];
                let colm: &[f32] = if p.direct && nb == 1 {
                    xs
                } else {
                    p.im2col_batch(xs, nb, col);
                    col
                };
                let dym: &[f32] = if nb == 1 {
                    dys
                } else {
                    p.gather_out(dys, nb, dyg);
                    dyg
                };
                weight_product(g.c_out, p.kdim, ld, dym, colm, &mut dw, dots);
            }
        });
        dw
    };
    cpu.sum_of_tasks(tasks, g.weight_len(), partial)
}

/// `dw [c_out, kdim] += dy [c_out, ld] col [kdim, ld]^T`: dot products along the pixels where the
/// CPU has AVX-512 (`dots`), the packing GEMM elsewhere.
fn weight_product(c_out: usize, kdim: usize, ld: usize, dy: &[f32], col: &[f32], dw: &mut [f32], dots: bool) {
    if dots {
        dots::gemm_nt(c_out, kdim, ld, dy, ld, col, ld, dw, kdim);
    } else {
        gemm(c_out, ld, kdim, Mat::rows(dy, ld), Mat::cols(col, ld), 1.0, dw, kdim);
    }
}

#[cfg(test)]
mod tests {
    /// The two ways of forming the weight gradient's product agree (the tests of the passes run
    /// only the one this CPU picks).
    #[test]
    fn weight_products_agree() {
        let mut rng = crate::rng::Rng::new(5);
        let (c_out, kdim, ld) = (6, 37, 211);
        let dy: Vec<f32> = (0..c_out * ld).map(|_| rng.normal()).collect();
        let col: Vec<f32> = (0..kdim * ld).map(|_| rng.normal()).collect();
        let (mut a, mut b) = (vec![0.5; c_out * kdim], vec![0.5; c_out * kdim]);
        super::weight_product(c_out, kdim, ld, &dy, &col, &mut a, false);
        super::weight_product(c_out, kdim, ld, &dy, &col, &mut b, super::dots::available());
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / (1.0 + x.abs())).fold(0f32, f32::max);
        println!(
            "GEMM vs dot products (AVX-512: {}): largest relative difference {worst:.2e}",
            super::dots::available()
        );
        assert!(worst < 1e-5);
    }
}
