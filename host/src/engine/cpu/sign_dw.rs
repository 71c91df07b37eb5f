//! The binary conv's weight gradient, `dW = dy col^T`, where the column matrix holds only the
//! input's signs (+1, -1) and the padding's 0: sums of `dy` by sign pattern instead of products.
//!
//! For one tap and one group of 4 input channels, the 4 signs a pixel's tap reads form one of 16
//! patterns, or the tap lies in the padding. Adding the pixel's `dy` (16 output channels, one
//! AVX-512 vector) into that pattern's entry of a table is one add where the products take 4
//! FMAs. After the last pixel,
//! `dW[o, c, tap] = sum over patterns b of T[b][o] * (+1 if b has c's bit, else -1)`,
//! and the padding's entry is dropped.
//!
//! Each pixel updates every table of a pass (up to [`MAX_TABLES`], each 17 vectors, together in
//! L1) before the next pixel, so no entry is updated twice in a row: a run of equal patterns
//! along a row (a plain background) does not chain one add's store into the next add's load.
//! The sums run in another order than the float conv's products, so the gradient equals
//! `conv2d_bwd_weight`'s up to rounding. Only for CPUs with AVX-512 ([`available`]).

use super::Cpu;
use crate::engine::geom::ConvGeom;

/// Output channels per vector.
const LANES: usize = 16;
/// Input channels per sign pattern.
const GROUP: usize = 4;
/// Patterns of a group's signs.
const PATTERNS: usize = 1 << GROUP;
/// The entry of taps that fall in the padding (their products are 0).
const PAD: u8 = PATTERNS as u8;
/// Entries per table: the patterns, then the padding's.
const ENTRIES: usize = PATTERNS + 1;
/// An entry index masked with this is at most 15 entries past its table's last one (the
/// padding's); the table buffer keeps 15 spare, so no pattern map can make an access leave it.
const ENTRY_MASK: usize = 31;
/// Tables one pass updates per pixel: 36 x 17 x 64 bytes = 39 KiB, within L1.
const MAX_TABLES: usize = 36;

/// One vector of output channels, aligned so that a load or store touches one cache line.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Lanes([f32; LANES]);

/// Whether this CPU runs [`backward_weight`].
pub(super) fn available() -> bool {
    super::dots::available()
}

/// How the tables of one convolution are laid out.
struct Plan {
    g: ConvGeom,
    oh: usize,
    ow: usize,
    /// Padded input width and height.
    wp: usize,
    hp: usize,
    /// Groups of 4 input channels.
    groups: usize,
    /// Groups a slot's consecutive tables cover: 4, 2 or 1 (whichever divides `groups`).
    per_slot: usize,
    /// Each slot's tap and first group.
    slots: Vec<(usize, usize)>,
    /// Each slot's offset into a pattern map.
    offsets: Vec<usize>,
    /// Blocks of 16 output channels.
    blocks: usize,
}

impl Plan {
    fn new(g: ConvGeom) -> Self {
        let (wp, hp) = (g.w + 2 * g.pad, g.h + 2 * g.pad);
        let groups = g.c_in.div_ceil(GROUP);
        let per_slot = [4, 2, 1].into_iter().find(|&d| groups.is_multiple_of(d)).unwrap_or(1);
        let (mut slots, mut offsets) = (Vec::new(), Vec::new());
        for ky in 0..g.k {
            for kx in 0..g.k {
                for g0 in (0..groups).step_by(per_slot) {
                    slots.push((ky * g.k + kx, g0));
                    offsets.push((ky * g.dil * wp + kx * g.dil) * groups + g0);
                }
            }
        }
        let (oh, ow, blocks) = (g.out_h(), g.out_w(), g.c_out.div_ceil(LANES));
        Self { g, oh, ow, wp, hp, groups, per_slot, slots, offsets, blocks }
    }

    fn tables(&self) -> usize {
        self.blocks * self.slots.len() * self.per_slot
    }

    /// The pattern map of one sample `x` `[c_in, h, w]`: `[hp, wp, groups]` entry indices, the
    /// padding's where a tap reads padding (`row` is scratch). A value is read as +1 when it is
    /// at least 0 (as `sign` writes them).
    fn patterns(&self, x: &[f32], map: &mut Vec<u8>, row: &mut Vec<u8>) {
        let g = &self.g;
        map.clear();
        map.resize(self.hp * self.wp * self.groups, PAD);
        let hw = g.h * g.w;
        for gi in 0..self.groups {
            let planes: Vec<&[f32]> = (gi * GROUP..g.c_in.min((gi + 1) * GROUP)).map(|c| &x[c * hw..][..hw]).collect();
            for y in 0..g.h {
                // One row's patterns, a plane at a time (a loop the compiler vectorizes), then
                // spread into the map, whose groups are interleaved.
                row.clear();
                row.resize(g.w, 0);
                for (j, plane) in planes.iter().enumerate() {
                    for (b, &v) in row.iter_mut().zip(&plane[y * g.w..][..g.w]) {
                        *b |= u8::from(v >= 0.0) << j;
                    }
                }
                let dst = &mut map[((y + g.pad) * self.wp + g.pad) * self.groups + gi..];
                for (d, &b) in dst.iter_mut().step_by(self.groups).zip(row.iter()) {
                    *d = b;
                }
            }
        }
    }

    /// `dy` of one sample `[c_out, oh * ow]` as `[blocks, oh * ow]` vectors, zero past `c_out`.
    fn transpose(&self, dy: &[f32], out: &mut Vec<Lanes>) {
        let ohow = self.oh * self.ow;
        out.clear();
        for block in 0..self.blocks {
            let planes: [&[f32]; LANES] = std::array::from_fn(|l| {
                let o = block * LANES + l;
                if o < self.g.c_out {
                    &dy[o * ohow..][..ohow]
                } else {
                    &[]
                }
            });
            out.extend((0..ohow).map(|i| Lanes(std::array::from_fn(|l| planes[l].get(i).copied().unwrap_or(0.0)))));
        }
    }

    /// Adds the tables (`[blocks, slots, per_slot]` tables of [`ENTRIES`]) into `dw`
    /// `[c_out, c_in, k, k]`.
    fn combine(&self, tables: &[Lanes], dw: &mut [f32]) {
        let (g, kk) = (&self.g, self.g.k * self.g.k);
        let mut t = 0;
        for block in 0..self.blocks {
            for &(tap, g0) in &self.slots {
                for gi in g0..g0 + self.per_slot {
                    let table = &tables[t * ENTRIES..][..PATTERNS];
                    t += 1;
                    for j in 0..GROUP {
                        let c = gi * GROUP + j;
                        if c >= g.c_in {
                            break;
                        }
                        let mut sum = [0f32; LANES];
                        for (b, v) in table.iter().enumerate() {
                            let s = if b >> j & 1 == 1 { 1.0 } else { -1.0 };
                            sum.iter_mut().zip(&v.0).for_each(|(a, &x)| *a += s * x);
                        }
                        for (l, &v) in sum.iter().enumerate().take(g.c_out - block * LANES) {
                            dw[((block * LANES + l) * g.c_in + c) * kk + tap] += v;
                        }
                    }
                }
            }
        }
    }
}

/// `dW` `[c_out, c_in, k, k]` of the conv `g` for the output gradient `dy` and an input `x` of
/// signs (every value +1 or -1): one set of tables per task of samples, summed at the end. The
/// caller checks [`available`] first.
pub(super) fn backward_weight(cpu: &Cpu, dy: &[f32], x: &[f32], g: ConvGeom) -> Vec<f32> {
    assert!(available(), "sign_dw needs AVX-512");
    assert_eq!(dy.len(), g.out_len(), "sign_dw: dy's length");
    assert_eq!(x.len(), g.in_len(), "sign_dw: x's length");
    let p = Plan::new(g);
    let (in_s, out_s) = (g.c_in * g.h * g.w, g.c_out * p.oh * p.ow);
    let per_task = g.n.div_ceil(cpu.threads().max(1)).max(1);
    let tasks = g.n.div_ceil(per_task);
    let chunk = (MAX_TABLES / p.per_slot).max(1);
    let partial = |t: usize| {
        let samples = t * per_task..(t * per_task + per_task).min(g.n);
        let mut tables = vec![Lanes::default(); p.tables() * ENTRIES + ENTRY_MASK - PATTERNS];
        let (mut map, mut row, mut dyt) = (Vec::new(), Vec::new(), Vec::new());
        for s in samples {
            p.patterns(&x[s * in_s..][..in_s], &mut map, &mut row);
            p.transpose(&dy[s * out_s..][..out_s], &mut dyt);
            let ohow = p.oh * p.ow;
            for block in 0..p.blocks {
                let dyb = &dyt[block * ohow..][..ohow];
                for (c, offs) in p.offsets.chunks(chunk).enumerate() {
                    let tab = &mut tables[(block * p.slots.len() + c * chunk) * p.per_slot * ENTRIES..];
                    // SAFETY: available() checked that the CPU has AVX-512F.
                    unsafe {
                        match p.per_slot {
                            4 => accumulate::<4>(&p, dyb, &map, offs, tab),
                            2 => accumulate::<2>(&p, dyb, &map, offs, tab),
                            _ => accumulate::<1>(&p, dyb, &map, offs, tab),
                        }
                    }
                }
            }
        }
        let mut dw = vec![0.0; g.weight_len()];
        p.combine(&tables, &mut dw);
        dw
    };
    cpu.sum_of_tasks(tasks, g.weight_len(), partial)
}

/// Adds every output pixel's `dy` (`dyb`, `[oh * ow]`) into the entry its pattern selects in each
/// of the `offs.len() * S` tables at the start of `tables`: slot `i`'s `S` groups are read from
/// the pattern map at the pixel's offset plus `offs[i]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn accumulate<const S: usize>(p: &Plan, dyb: &[Lanes], map: &[u8], offs: &[usize], tables: &mut [Lanes]) {
    use std::arch::x86_64::{_mm512_add_ps, _mm512_load_ps, _mm512_store_ps};
    if p.oh == 0 || p.ow == 0 || offs.is_empty() {
        return;
    }
    let (s, groups) = (p.g.stride, p.groups);
    let last_base = ((p.oh - 1) * s * p.wp + (p.ow - 1) * s) * groups;
    let last_off = offs.iter().max().copied().unwrap_or(0) + S - 1;
    assert!(last_base + last_off < map.len(), "sign_dw: a tap past the pattern map");
    assert!(dyb.len() >= p.oh * p.ow, "sign_dw: dy shorter than the output");
    assert!(tables.len() > (offs.len() * S - 1) * ENTRIES + ENTRY_MASK, "sign_dw: too few tables");
    let t0 = tables.as_mut_ptr();
    for oy in 0..p.oh {
        for ox in 0..p.ow {
            let base = (oy * s * p.wp + ox * s) * groups;
            // SAFETY: oy < oh and ox < ow, so base <= last_base, and every map index read below
            // is at most last_base + last_off, in bounds (asserted). Every table index is at most
            // (offs.len() * S - 1) * ENTRIES + ENTRY_MASK, in bounds (asserted). The vectors are
            // `Lanes`, 64-byte aligned as the aligned load and store need.
            unsafe {
                let d = _mm512_load_ps(dyb.get_unchecked(oy * p.ow + ox).0.as_ptr());
                let mut t = t0;
                for &off in offs {
                    let m = map.as_ptr().add(base + off);
                    for i in 0..S {
                        let e = t.add(i * ENTRIES + (*m.add(i) as usize & ENTRY_MASK)) as *mut f32;
                        _mm512_store_ps(e, _mm512_add_ps(_mm512_load_ps(e), d));
                    }
                    t = t.add(S * ENTRIES);
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn accumulate<const S: usize>(_: &Plan, _: &[Lanes], _: &[u8], _: &[usize], _: &mut [Lanes]) {
    unreachable!("sign_dw::available() is false off x86_64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// `dy col^T` in f64, col from the signs of `x` with 0 in the padding.
    fn reference(dy: &[f32], x: &[f32], g: ConvGeom) -> Vec<f64> {
        let (oh, ow) = (g.out_h(), g.out_w());
        let mut dw = vec![0f64; g.weight_len()];
        for n in 0..g.n {
            for o in 0..g.c_out {
                for c in 0..g.c_in {
                    for ky in 0..g.k {
                        for kx in 0..g.k {
                            let mut acc = 0f64;
                            for oy in 0..oh {
                                for ox in 0..ow {
                                    let iy = (oy * g.stride + ky * g.dil) as isize - g.pad as isize;
                                    let ix = (ox * g.stride + kx * g.dil) as isize - g.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                        continue;
                                    }
                                    let xv = x[((n * g.c_in + c) * g.h + iy as usize) * g.w + ix as usize] as f64;
                                    acc += dy[((n * g.c_out + o) * oh + oy) * ow + ox] as f64 * xv;
                                }
                            }
                            dw[((o * g.c_in + c) * g.k + ky) * g.k + kx] += acc;
                        }
                    }
                }
            }
        }
        dw
    }

    /// Against f64 products over strides, dilations, padding, 1x1 and 5x5 kernels, channel
    /// counts that are not multiples of 4 (inputs) or 16 (outputs), and one and two threads.
    #[test]
    fn sums_by_pattern_match_f64_products() {
        assert!(available(), "this test needs AVX-512 (the project's machines have it)");
        let mut rng = Rng::new(23);
        let mut worst = 0f64;
        #[rustfmt::skip]
        let geoms = [
            // n, c_in, h, w, c_out, k, stride, pad, dil
            (3, 16, 9, 9, 16, 3, 1, 1, 1),
            (2, 5, 7, 6, 3, 3, 2, 1, 1),
            (2, 8, 8, 8, 20, 5, 1, 4, 2),
            (3, 32, 5, 5, 33, 1, 1, 0, 1),
            (1, 12, 6, 7, 7, 3, 1, 2, 2),
            (4, 4, 4, 4, 1, 1, 2, 0, 1),
            (2, 64, 4, 4, 16, 3, 1, 1, 1),
        ];
        for (n, c_in, h, w, c_out, k, stride, pad, dil) in geoms {
            let g = ConvGeom { n, c_in, h, w, c_out, k, stride, pad, dil };
            let x: Vec<f32> = (0..g.in_len()).map(|_| if rng.normal() >= 0.0 { 1.0 } else { -1.0 }).collect();
            let dy: Vec<f32> = (0..g.out_len()).map(|_| rng.normal()).collect();
            let want = reference(&dy, &x, g);
            let scale = dy.iter().map(|v| v.abs() as f64).sum::<f64>() / g.c_out as f64;
            for threads in [1, 2] {
                let got = backward_weight(&Cpu::new(Some(threads)).unwrap(), &dy, &x, g);
                assert_eq!(got.len(), want.len());
                for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
                    let err = (a as f64 - b).abs() / (1.0 + scale);
                    worst = worst.max(err);
                    assert!(err < 1e-5, "{g:?} ({threads} threads) at {i}: {a} vs {b}");
                }
            }
        }
        println!("sums by sign pattern against f64 products: largest difference {worst:.2e} of the sum of |dy|");
    }

    /// Side by side with the float path (`conv::backward_weight`: im2col, then dot products) at
    /// the binary convs' shapes of an 8-cell, 16-channel network at batch 64.
    #[test]
    #[ignore = "benchmark: cargo test --release -p bnas --lib bench_sign_dw -- --ignored --nocapture"]
    fn bench_sign_dw() {
        assert!(available(), "this benchmark needs AVX-512");
        let cpu = Cpu::new(None).unwrap();
        let mut rng = Rng::new(3);
        println!(
            "{:>6} {:>5} {:>6} {:>8} {:>10} {:>10} {:>6}",
            "c_in", "c_out", "size", "kernel", "float ms", "sums ms", "ratio"
        );
        #[rustfmt::skip]
        let geoms = [
            (16, 16, 28, 3, 1, 1, 1), (16, 16, 28, 5, 1, 4, 2), (16, 16, 28, 1, 1, 0, 1),
            (32, 32, 14, 3, 1, 1, 1), (32, 32, 14, 5, 1, 4, 2), (16, 32, 28, 3, 2, 1, 1),
            (64, 64, 7, 3, 1, 1, 1), (64, 64, 7, 5, 1, 4, 2), (64, 64, 7, 1, 1, 0, 1),
        ];
        for (c_in, c_out, hw, k, stride, pad, dil) in geoms {
            let g = ConvGeom { n: 64, c_in, h: hw, w: hw, c_out, k, stride, pad, dil };
            let x: Vec<f32> = (0..g.in_len()).map(|_| if rng.normal() >= 0.0 { 1.0 } else { -1.0 }).collect();
            let dy: Vec<f32> = (0..g.out_len()).map(|_| rng.normal()).collect();
            let time = |f: &dyn Fn() -> Vec<f32>| {
                let _ = f();
                let reps = 10;
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    std::hint::black_box(f());
                }
                t.elapsed().as_secs_f64() * 1e3 / reps as f64
            };
            let float = time(&|| super::super::conv::backward_weight(&cpu, &dy, &x, g));
            let sums = time(&|| backward_weight(&cpu, &dy, &x, g));
            let kernel = format!("{k}x{k}{}{}", if stride > 1 { " s2" } else { "" }, if dil > 1 { " d2" } else { "" });
            println!(
                "{c_in:>6} {c_out:>5} {:>6} {kernel:>8} {float:>10.3} {sums:>10.3} {:>5.2}x",
                format!("{hw}x{hw}"),
                float / sums
            );
        }
    }
}
