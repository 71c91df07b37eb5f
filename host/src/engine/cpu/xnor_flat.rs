//! The binary conv's XNOR forward at stride 1 without the bit im2col of [`super::xnor`].
//!
//! At 16 channels a 3x3 window is 144 bits, 2.25 u64 words: the im2col kernel gathers 3 words
//! per output pixel and counts them, and the gathering costs about as much as the counting. Here
//! each pixel's signs of 16 channels are one u16 of the zero-padded image, laid out flat
//! (`[h + 2 pad, w + 2 pad]`, row length `pw`; one such plane per 16 channels). Output
//! `(oy, ox)` is flat position `q = oy * pw + ox`, and its tap `(ky, kx)` reads position
//! `q + ky * dil * pw + kx * dil`: one offset per tap, the same for every output. So 32
//! consecutive flat positions take one load per tap and plane, and each filter XORs it with its
//! tap's u16 and counts per 16-bit lane (`VPOPCNTW`), with nothing gathered. Positions in the
//! padding columns (`ox >= ow`) are counted and dropped: 2 of 30 at 28x28 with a 3x3 kernel.
//!
//! The sums and the padding correction are [`super::xnor`]'s (`s = base - 2 * popcount`), stored
//! per flat position, so the outputs equal the float conv of the signs bit for bit.

use std::cell::RefCell;
use std::mem::MaybeUninit;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::xnor::scaled_relu_avx512;
use super::xnor::Prefetch;
use super::xnor_weights::{bases, pack_weights};
use super::Cpu;
use crate::engine::geom::ConvGeom;

/// Flat positions one block counts per filter.
const LANES: usize = 32;
/// Filters counted together (their counters stay in registers).
const FILTERS: usize = 8;
/// Channels per plane.
const PLANE: usize = 16;

thread_local! {
    static PIXELS: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
}

/// Planes of 16 channels.
fn planes(g: &ConvGeom) -> usize {
    g.c_in.div_ceil(PLANE)
}

/// Whether [`sign_conv_flat`] can run this geometry: stride 1 and sums that fit i16.
pub(super) fn fits(g: &ConvGeom) -> bool {
    g.stride == 1 && super::xnor::supported(g) && g.k * g.k * g.c_in <= 10_000
}

/// Whether [`super::xnor::sign_conv`] runs this geometry here: where it [`fits`] at up to 32
/// channels, where the im2col kernel's gathering (a piece per tap and pixel) costs most.
/// `bench_xnor_vs_float` (batch 16-64, both threads, Intel Xeon, three runs): the flat kernel is
/// faster at 16 channels (1.4-1.7x at 28x28) and at 32 channels 3x3 (1.15-1.3x at 14x14), and as
/// fast at 32 channels 5x5 dilation 2; from 64 channels on, since the im2col kernel packs its pixel
/// words in registers, the im2col kernel is as fast or faster at every shape there (1.0-1.7x).
pub(super) fn takes(g: &ConvGeom) -> bool {
    fits(g) && g.c_in <= 32
}

/// Which of a block's lanes are outputs: the lanes of `mask` (bit `l` for lane `l`, ascending) are
/// outputs `out, out + 1, ...` of the plane. Flat positions ascend with the outputs they hold, so
/// a block's output lanes are consecutive outputs, even where they span two rows.
#[derive(Clone, Copy)]
pub(super) struct Lanes {
    mask: u32,
    out: usize,
}

/// What every task of one [`sign_conv_flat`] shares.
pub(super) struct Plan<'a> {
    g: ConvGeom,
    x: &'a [f32],
    scale: Option<&'a [f32]>,
    /// `[c_out / FILTERS rounded up, k*k, planes]`: for each group of `FILTERS` filters, tap and
    /// plane, the filters' signs at the tap (bit `c` for the plane's channel `c`) twice, in both
    /// halves of a u32 (the vector kernel broadcasts it to every 16-bit lane as a 32-bit load).
    taps: Vec<[u32; FILTERS]>,
    /// Flat offset of each tap.
    offsets: Vec<usize>,
    /// `[c_out, blocks * LANES]`: `s = base - 2 * popcount` at each flat position that is an
    /// output (at most `3 * k * k * c_in`, which [`fits`] bounds).
    base: Vec<i16>,
    /// Each block's output lanes.
    lanes: Vec<Lanes>,
    per_task: usize,
}

/// `[n, c_out, oh, ow]`, exactly as [`super::xnor::sign_conv`], for a geometry that [`fits`].
pub(super) fn sign_conv_flat(
    run: FlatRunner,
    cpu: &Cpu,
    x: &[f32],
    w: &[f32],
    scale: Option<&[f32]>,
    g: ConvGeom,
) -> Vec<f32> {
    cpu.pool.install(|| in_pool(run, cpu, x, w, scale, g))
}

fn in_pool(run: FlatRunner, cpu: &Cpu, x: &[f32], w: &[f32], scale: Option<&[f32]>, g: ConvGeom) -> Vec<f32> {
    debug_assert!(fits(&g));
    debug_assert_eq!(x.len(), g.in_len());
    let (oh, ow, pw, kk) = (g.out_h(), g.out_w(), g.w + 2 * g.pad, g.k * g.k);
    let kw = (kk * g.c_in).div_ceil(64);
    let (wbits, wones) = pack_weights(w, &g, kw);
    let planes = planes(&g);
    let mut taps = vec![[0u32; FILTERS]; g.c_out.div_ceil(FILTERS) * kk * planes];
    for (o, row) in wbits.chunks_exact(kw).enumerate().take(g.c_out) {
        for (i, tw) in taps[o / FILTERS * kk * planes..][..kk * planes].iter_mut().enumerate() {
            // The plane's channels of tap t: bits from t * c_in + p * PLANE of the dense row.
            let (t, p) = (i / planes, i % planes);
            let (at, n) = (t * g.c_in + p * PLANE, PLANE.min(g.c_in - p * PLANE));
            let (word, bit) = (at / 64, at % 64);
            let spill = if bit + n > 64 { row[word + 1] << (64 - bit) } else { 0 };
            let word = ((row[word] >> bit | spill) & ((1 << n) - 1)) as u32;
            tw[o % FILTERS] = word | word << 16;
        }
    }
    let offsets = (0..kk).map(|t| (t / g.k) * g.dil * pw + (t % g.k) * g.dil).collect();
    let blocks = (oh * pw).div_ceil(LANES);
    let mut out = 0;
    let lanes = (0..blocks)
        .map(|b| {
            let inside = |l: usize| (b * LANES + l) / pw < oh && (b * LANES + l) % pw < ow;
            let mask = (0..LANES).filter(|&l| inside(l)).fold(0u32, |m, l| m | 1 << l);
            out += mask.count_ones() as usize;
            Lanes { mask, out: out - mask.count_ones() as usize }
        })
        .collect();
    let nq = blocks * LANES;
    // At most 3 k k c_in, which `fits` bounds, so the cast is exact.
    let base = bases(&g, &wones, nq, pw, |s| s as i16);
    let per_task = g.n.div_ceil(cpu.threads().max(1)).max(1);
    let plan = Plan { g, x, scale, taps, offsets, base, lanes, per_task };
    let mut y = Vec::with_capacity(g.out_len());
    let out = &mut y.spare_capacity_mut()[..g.out_len()];
    out.par_chunks_mut(per_task * g.c_out * oh * ow).enumerate().for_each(|(task, y_task)| run(&plan, task, y_task));
    // SAFETY: every output of every filter of every sample in each task's chunk is written (the
    // blocks' output lanes cover each plane's outputs exactly once).
    unsafe { y.set_len(g.out_len()) };
    y
}

/// One task: the samples from `task * per_task`, each packed into the flat padded image, then
/// its outputs block by block for `FILTERS` filters at a time: `pack` and `block` as
/// [`pack_body`] and [`block_body`].
#[inline(always)]
fn run_task(
    plan: &Plan,
    task: usize,
    y_task: &mut [MaybeUninit<f32>],
    pack: impl Fn(&[f32], &ConvGeom, usize, usize, &mut [u16]),
    block: impl Fn(&Plan, &[u16], usize, usize, usize, &mut [MaybeUninit<f32>]),
) {
    let g = plan.g;
    let (ph, pw) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
    let in_s = g.c_in * g.h * g.w;
    let out_s = g.c_out * g.out_h() * g.out_w();
    let nq = plan.lanes.len() * LANES;
    // The planes' stride: every block's loads stay inside, the last reaching `nq - 1` plus the
    // largest offset.
    let stride = (nq + plan.offsets.iter().max().copied().unwrap_or(0)).max(ph * pw);
    let mut pix = PIXELS.take();
    pix.clear();
    pix.resize(planes(&g) * stride, 0);
    // The task's next sample is fetched while this one's blocks count, so that packing it does
    // not wait on memory: the packing's loads were a fifth of the kernel's profile, and the kernel
    // runs 6% faster (16 channels at 28x28, Intel Xeon).
    let samples = y_task.len() / out_s;
    for (j, y) in y_task.chunks_exact_mut(out_s).enumerate() {
        let at = (task * plan.per_task + j) * in_s;
        pack(&plan.x[at..][..in_s], &g, pw, stride, &mut pix);
        let next = if j + 1 < samples { &plan.x[at + in_s..][..in_s] } else { &[] };
        let mut fetch = Prefetch::new(next, g.c_out.div_ceil(FILTERS) * plan.lanes.len());
        for o0 in (0..g.c_out).step_by(FILTERS) {
            for b in 0..plan.lanes.len() {
                fetch.step();
                block(plan, &pix, stride, o0, b, y);
            }
        }
    }
    PIXELS.set(pix);
}

/// Packs one sample's signs `[c_in, h, w]` into the flat zero-padded images of u16 pixels (one
/// per 16 channels, `stride` apart), bit `c % 16` for channel `c` (each image holds at least
/// `ph * pw` zeros past which nothing is written).
#[cfg(test)]
fn pack_body(x: &[f32], g: &ConvGeom, pw: usize, stride: usize, pix: &mut [u16]) {
    for (ch, plane) in x.chunks_exact(g.h * g.w).enumerate() {
        let (pix, c) = (&mut pix[ch / PLANE * stride..][..stride], ch % PLANE);
        for (src, dst) in plane.chunks_exact(g.w).zip(pix[g.pad * pw..].chunks_exact_mut(pw)) {
            let dst = &mut dst[g.pad..][..g.w];
            if c == 0 {
                dst.iter_mut().zip(src).for_each(|(d, &v)| *d = u16::from(v > 0.0));
            } else {
                dst.iter_mut().zip(src).for_each(|(d, &v)| *d |= u16::from(v > 0.0) << c);
            }
        }
    }
}

/// Block `b` of filters `o0..o0 + FILTERS` (fewer at the last filters) of the packed sample
/// `pix` into its output planes `y`, portably: each filter's popcounts of `x ^ w`
/// summed over the taps for the `LANES` positions, then `s = base - 2 * popcount`, the scale and
/// ReLU, and the output lanes stored.
#[cfg(test)]
fn block_body(plan: &Plan, pix: &[u16], stride: usize, o0: usize, b: usize, y: &mut [MaybeUninit<f32>]) {
    let (kk, np, q0) = (plan.offsets.len(), planes(&plan.g), b * LANES);
    let taps = &plan.taps[o0 / FILTERS * kk * np..][..kk * np];
    let mut acc = [[0u16; LANES]; FILTERS];
    for (wt, &off) in taps.chunks_exact(np).zip(&plan.offsets) {
        for (p, wt) in wt.iter().enumerate() {
            let xs: &[u16; LANES] = pix[p * stride + q0 + off..][..LANES].try_into().expect("LANES pixels");
            for (acc, &w) in acc.iter_mut().zip(wt) {
                for (a, &x) in acc.iter_mut().zip(xs) {
                    *a += (x ^ w as u16).count_ones() as u16;
                }
            }
        }
    }
    let ohow = plan.g.out_h() * plan.g.out_w();
    let Lanes { mask, out } = plan.lanes[b];
    for (f, pop) in acc.iter().enumerate().take(plan.g.c_out - o0) {
        let o = o0 + f;
        let base = &plan.base[o * plan.lanes.len() * LANES + q0..][..LANES];
        let plane = &mut y[o * ohow..][..ohow];
        let lanes = (0..LANES).filter(|&l| mask >> l & 1 == 1);
        for (d, l) in plane[out..].iter_mut().zip(lanes) {
            let v = (base[l] as i32 - 2 * pop[l] as i32) as f32;
            // Exactly as channel_affine then relu.
            d.write(plan.scale.map_or(v, |sc| (v * sc[o] + 0.0).max(0.0)));
        }
    }
}

/// [`block_body`] written out in AVX-512: per tap, the 32 positions' pixels are one vector, and
/// each filter XORs it with its tap's word broadcast, counts each 16-bit lane (`VPOPCNTW`) and
/// adds into its counter (`FILTERS` of the 32 vector registers). Each half of a counter then
/// becomes 16 floats whose output lanes are compressed together and stored at their outputs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bitalg")]
fn block_avx512(plan: &Plan, pix: &[u16], stride: usize, o0: usize, b: usize, y: &mut [MaybeUninit<f32>]) {
    use std::arch::x86_64::*;
    let (kk, np, q0) = (plan.offsets.len(), planes(&plan.g), b * LANES);
    let taps = &plan.taps[o0 / FILTERS * kk * np..][..kk * np];
    let mut acc = [_mm512_setzero_si512(); FILTERS];
    for (wt, &off) in taps.chunks_exact(np).zip(&plan.offsets) {
        for (p, wt) in wt.iter().enumerate() {
            let xs = &pix[p * stride + q0 + off..][..LANES];
            // SAFETY: the load reads the 32 u16 of `xs`.
            let x = unsafe { _mm512_loadu_si512(xs.as_ptr().cast()) };
            for (a, &w) in acc.iter_mut().zip(wt) {
                *a = _mm512_add_epi16(*a, _mm512_popcnt_epi16(_mm512_xor_si512(x, _mm512_set1_epi32(w as i32))));
            }
        }
    }
    let ohow = plan.g.out_h() * plan.g.out_w();
    let Lanes { mask, out } = plan.lanes[b];
    let halves = [(mask as u16, out), ((mask >> 16) as u16, out + (mask as u16).count_ones() as usize)];
    for (f, &pop) in acc.iter().enumerate().take(plan.g.c_out - o0) {
        let o = o0 + f;
        let base = &plan.base[o * plan.lanes.len() * LANES + q0..][..LANES];
        // SAFETY: the load reads the 32 i16 of `base`.
        let s = _mm512_sub_epi16(unsafe { _mm512_loadu_si512(base.as_ptr().cast()) }, _mm512_slli_epi16::<1>(pop));
        let sums = [_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64::<1>(s)];
        let plane = &mut y[o * ohow..][..ohow];
        for (sum, (m, at)) in sums.into_iter().zip(halves) {
            let mut v = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(sum));
            if let Some(sc) = plan.scale {
                v = scaled_relu_avx512(v, sc[o]);
            }
            let n = m.count_ones() as usize;
            let dst = &mut plane[at..][..n];
            // SAFETY: the store writes the first n lanes, the n floats of `dst`.
            unsafe {
                _mm512_mask_storeu_ps(
                    dst.as_mut_ptr().cast(),
                    (1u32 << n).wrapping_sub(1) as u16,
                    _mm512_maskz_compress_ps(m, v),
                )
            };
        }
    }
}

/// One task of [`sign_conv_flat`] compiled for one instruction set.
pub(super) type FlatRunner = fn(&Plan, usize, &mut [MaybeUninit<f32>]);

#[cfg(test)]
fn run_generic(plan: &Plan, task: usize, y_task: &mut [MaybeUninit<f32>]) {
    run_task(plan, task, y_task, pack_body, block_body)
}

/// [`pack_body`] written out in AVX-512: 32 pixels of a row at a time, their bits gathered in one
/// register over the channels (a compare of 16 floats gives 16 pixels' bits of one channel, OR-ed
/// into the lanes it sets). Plain nested loops: an iterator adapter's closure, compiled with this
/// function's target features, could not be inlined into the adapter.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn pack_avx512(x: &[f32], g: &ConvGeom, pw: usize, stride: usize, pix: &mut [u16]) {
    use std::arch::x86_64::*;
    let (hw, zero) = (g.h * g.w, _mm512_setzero_ps());
    for y in 0..g.h {
        for p in 0..planes(g) {
            let dst = &mut pix[p * stride + (y + g.pad) * pw + g.pad..][..g.w];
            for x0 in (0..g.w).step_by(LANES) {
                let n = (g.w - x0).min(LANES);
                let mask = u32::MAX >> (LANES - n);
                let (mut acc, mut bit) = (_mm512_setzero_si512(), _mm512_set1_epi16(1));
                for c in p * PLANE..((p + 1) * PLANE).min(g.c_in) {
                    let row = &x[c * hw + y * g.w + x0..][..n];
                    let half = |h: usize| {
                        // SAFETY: the load reads only the lanes of `row` (the others are masked
                        // off, and their addresses are not formed into a reference).
                        let v = unsafe {
                            _mm512_maskz_loadu_ps((mask >> (16 * h)) as u16, row.as_ptr().wrapping_add(16 * h))
                        };
                        u32::from(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, zero)) << (16 * h)
                    };
                    // Adding channel c's bit where it is set: each channel's bit is distinct, so
                    // this is an OR.
                    let set = if n > 16 { half(0) | half(1) } else { half(0) };
                    acc = _mm512_mask_add_epi16(acc, set, acc, bit);
                    bit = _mm512_add_epi16(bit, bit);
                }
                // SAFETY: the store writes only the first n lanes, the n u16 of dst[x0..].
                unsafe { _mm512_mask_storeu_epi16(dst[x0..].as_mut_ptr().cast(), mask, acc) };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bitalg,avx2,fma,popcnt")]
fn run_avx512(plan: &Plan, task: usize, y_task: &mut [MaybeUninit<f32>]) {
    run_task(
        plan,
        task,
        y_task,
        |x, g, pw, stride, pix| pack_avx512(x, g, pw, stride, pix),
        |p, pix, stride, o0, b, y| block_avx512(p, pix, stride, o0, b, y),
    )
}

/// The runner that counts u16 lanes in vectors, where this CPU has one: only then does the flat
/// kernel beat the im2col one.
fn vector_runner() -> Option<(FlatRunner, &'static str)> {
    #[cfg(target_arch = "x86_64")]
    {
        if super::xnor::has_avx512() && std::arch::is_x86_feature_detected!("avx512bitalg") {
            // SAFETY: the CPU has every feature run_avx512 is compiled for (checked just above).
            return Some((|p, t, y| unsafe { run_avx512(p, t, y) }, "AVX-512 VPOPCNTW flat XNOR"));
        }
    }
    None
}

/// The runners this CPU can run, with their names: the vector one if any, then the portable twin.
#[cfg(test)]
pub(super) fn runners() -> Vec<(FlatRunner, &'static str)> {
    vector_runner().into_iter().chain([(run_generic as FlatRunner, "scalar flat XNOR")]).collect()
}

/// The runner [`super::xnor::sign_conv`] uses for the geometries this kernel [`takes`] (chosen
/// once), if any.
pub(super) fn pick() -> Option<(FlatRunner, &'static str)> {
    static PICK: std::sync::OnceLock<Option<(FlatRunner, &'static str)>> = std::sync::OnceLock::new();
    *PICK.get_or_init(vector_runner)
}
