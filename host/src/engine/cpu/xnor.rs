//! The binary conv's forward counted with XNOR and popcount: `conv(x, w)` where every value of
//! `x` and `w` is +1 or -1 (a binary conv's signs), equal to the float conv bit for bit.
//!
//! Signs are bits (1 = +1). A filter's `K = k*k*c_in` weights are one dense bit string (tap
//! major, channel minor) of `kw = ceil(K/64)` words; each output pixel's input window is gathered
//! the same way into a bit-level im2col matrix `[kw, pixels]`. The sum of +-1 products over a
//! window is then `K - 2*popcount(x ^ w)`. Taps in the padding are 0 bits, which a float conv
//! counts as 0, not as a product: an output pixel whose window reaches into the padding adds back
//! the filter's 1 bits at those taps (`wones`) and counts only its `K_valid` products, so
//! `s = K_valid - 2*(popcount - ones of w at the padded taps)`. Every sum is an integer below
//! 2^24, exact in f32, and so is the float conv's: the two agree exactly. The filters' bit rows,
//! `wones` and the bases are [`super::xnor_weights`]'s, shared with the flat kernel.
//!
//! The counting kernel takes 4 filters x 32 pixels at a time, so each loaded input word serves 4
//! filters: `VPOPCNTQ` intrinsics where the CPU has AVX-512 VPOPCNTDQ, the compiler's nibble
//! lookups under AVX2, scalar counts elsewhere. Each task's whole loop nest (packing, gathering,
//! counting, the output's arithmetic) is compiled once per instruction set and chosen at run time.
//! At stride 1, where the CPU counts 16-bit lanes (AVX-512 BITALG) and it pays, the flat kernel
//! of [`super::xnor_flat`] runs instead, with no bit im2col.

use std::cell::RefCell;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::xnor_weights::{bases, pack_weights};
use super::{xnor_flat, Cpu};
use crate::engine::geom::ConvGeom;

/// Output pixels one kernel call counts per filter.
const LANES: usize = 32;
/// Filters counted together.
pub(super) const FILTERS: usize = 4;
/// Pixels of the bit im2col matrix per micro-batch of samples (bounds the scratch).
const TARGET_PIXELS: usize = 2048;

thread_local! {
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Whether [`sign_conv`] can count this geometry: a pixel's padded taps must fit one u64 mask.
pub(super) fn supported(g: &ConvGeom) -> bool {
    g.k * g.k <= 64 && g.c_in > 0 && g.c_out > 0
}

/// Word `q` of tap `t`'s channel bits, as it lands in the dense window row: at bit `shift` of
/// word `word`, its high bits spilling into `word + 1` when `spill`. `offset` is the tap's
/// pixel offset in the padded image.
struct Piece {
    offset: usize,
    q: usize,
    word: usize,
    shift: u32,
    spill: bool,
}

fn pieces(g: &ConvGeom, pw: usize) -> Vec<Piece> {
    let cw = g.c_in.div_ceil(64);
    let mut out = vec![];
    for t in 0..g.k * g.k {
        let offset = (t / g.k) * g.dil * pw + (t % g.k) * g.dil;
        for q in 0..cw {
            let bits = if q + 1 == cw { g.c_in - q * 64 } else { 64 };
            let at = t * g.c_in + q * 64;
            let shift = (at % 64) as u32;
            out.push(Piece { offset, q, word: at / 64, shift, spill: shift as usize + bits > 64 });
        }
    }
    out
}

/// `[n, c_out, oh, ow]`: the conv of +-1 values `x` `[n, c_in, h, w]` and `w` `[c_out, c_in, k, k]`
/// (see the module docs); with `scale`, `relu(scale[o] * conv)` as the binary conv's output.
/// `g` must be [`supported`].
pub(super) fn sign_conv(cpu: &Cpu, x: &[f32], w: &[f32], scale: Option<&[f32]>, g: ConvGeom) -> Vec<f32> {
    match xnor_flat::pick() {
        Some((run, _)) if xnor_flat::takes(&g) => xnor_flat::sign_conv_flat(run, cpu, x, w, scale, g),
        _ => sign_conv_with(pick_runner().0, cpu, x, w, scale, g),
    }
}

/// [`sign_conv`] run by the given runner.
fn sign_conv_with(run: Runner, cpu: &Cpu, x: &[f32], w: &[f32], scale: Option<&[f32]>, g: ConvGeom) -> Vec<f32> {
    // One hand-over to the pool for the whole op: each costs a wake-up, and at small shapes the
    // op takes a few hundred microseconds.
    cpu.pool.install(|| sign_conv_in_pool(run, cpu, x, w, scale, g))
}

/// [`sign_conv_with`]'s work, on a thread of the pool.
fn sign_conv_in_pool(run: Runner, cpu: &Cpu, x: &[f32], w: &[f32], scale: Option<&[f32]>, g: ConvGeom) -> Vec<f32> {
    debug_assert!(supported(&g));
    debug_assert_eq!(x.len(), g.in_len());
    debug_assert_eq!(w.len(), g.weight_len());
    let (ohow, kk) = (g.out_h() * g.out_w(), g.k * g.k);
    let kbits = kk * g.c_in;
    let kw = kbits.div_ceil(64);
    let (wbits, wones) = pack_weights(w, &g, kw);
    let base = bases(&g, &wones, ohow, g.out_w(), |s| s);
    let pw = g.w + 2 * g.pad;
    let per_task = g.n.div_ceil(cpu.threads().max(1)).max(1);
    let plan = Plan {
        g,
        x,
        scale,
        pieces: pieces(&g, pw),
        wbits,
        base,
        kw,
        mb: (TARGET_PIXELS / ohow.max(1)).clamp(1, per_task),
        per_task,
    };
    // Every output is written exactly once (each task covers all filters and pixels of its
    // samples), so the buffer is not zeroed first.
    let mut y = Vec::with_capacity(g.out_len());
    let out = &mut y.spare_capacity_mut()[..g.out_len()];
    out.par_chunks_mut(per_task * g.c_out * ohow).enumerate().for_each(|(task, y_task)| run(&plan, task, y_task));
    // SAFETY: the tasks wrote all `out_len` elements (run_task writes every filter and pixel of
    // every sample in its chunk).
    unsafe { y.set_len(g.out_len()) };
    y
}

/// What every task of one [`sign_conv`] shares.
struct Plan<'a> {
    g: ConvGeom,
    x: &'a [f32],
    scale: Option<&'a [f32]>,
    pieces: Vec<Piece>,
    /// The filters' bit rows, `[c_out rounded up to FILTERS, kw]`.
    wbits: Vec<u64>,
    /// `[c_out, oh*ow]`: `s = base - 2 * popcount`.
    base: Vec<i32>,
    kw: usize,
    /// Samples per micro-batch.
    mb: usize,
    per_task: usize,
}

/// Prefetches an input into L2 a few cache lines at a time, spread over the `calls` steps of the
/// work that runs before it is read, so that reading it later does not wait on memory.
pub(super) struct Prefetch<'a> {
    lines: std::slice::Chunks<'a, f32>,
    per_step: usize,
}

impl<'a> Prefetch<'a> {
    /// Floats per 64-byte cache line.
    const LINE: usize = 16;

    pub(super) fn new(input: &'a [f32], calls: usize) -> Self {
        Prefetch { lines: input.chunks(Self::LINE), per_step: input.len().div_ceil(Self::LINE).div_ceil(calls.max(1)) }
    }

    /// Asks for the next few lines (a hint: it reads nothing and never faults).
    #[inline(always)]
    pub(super) fn step(&mut self) {
        for line in self.lines.by_ref().take(self.per_step) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a prefetch of an address inside a live slice; it has no effect on memory.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
                _mm_prefetch::<_MM_HINT_T1>(line.as_ptr().cast())
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = line;
        }
    }
}

/// One task's share of [`sign_conv`]: the samples from `task * per_task` into `y_task`, in
/// micro-batches of `mb` samples, packed by `pack` (as [`pack_pixels`]), counted by `count` (as
/// [`count_body`]) and written by [`emit`], or by `emit_short` (as [`emit`]) where a sample ends
/// inside a count. Inlined into one copy per instruction set ([`pick_runner`]), so that packing,
/// gathering and the output's arithmetic are vectorized as wide as the counting.
#[inline(always)]
fn run_task(
    plan: &Plan,
    task: usize,
    y_task: &mut [MaybeUninit<f32>],
    pack: impl Fn(&[f32], &ConvGeom, &mut [u64]),
    count: impl Fn(&[u64], usize, usize, &[u64], usize) -> Pop,
    emit_short: impl Fn(&[u32], &[i32], Option<f32>, &mut [MaybeUninit<f32>]),
) {
    let Plan { g, x, scale, ref pieces, ref wbits, ref base, kw, mb, per_task } = *plan;
    let (ohow, cw) = (g.out_h() * g.out_w(), g.c_in.div_ceil(64));
    let (ph, pw) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
    let (in_s, out_s) = (g.c_in * g.h * g.w, g.c_out * ohow);
    let first = task * per_task;
    let samples = y_task.len() / out_s;
    // One cache line past the pixels, so that a power-of-two row stride does not put every
    // window word of a pixel in the same L1 set.
    let cols = (mb * ohow).next_multiple_of(LANES) + 8;
    // Taken out of the thread-local (not borrowed in a closure, which would compile the loops
    // outside this instruction set's copy) and put back.
    let mut s = SCRATCH.take();
    let need = cw * ph * pw + kw * cols;
    if s.len() < need {
        s.resize(need, 0);
    }
    let (pix, col) = s.split_at_mut(cw * ph * pw);
    for b0 in (0..samples).step_by(mb) {
        let nb = mb.min(samples - b0);
        for j in 0..nb {
            pack(&x[(first + b0 + j) * in_s..][..in_s], &g, pix);
            gather(pix, &g, pieces, kw, col, cols, j * ohow);
        }
        // The task's next micro-batch is fetched while this one counts.
        let next = &x[(first + b0 + nb) * in_s..][..mb.min(samples - b0 - nb) * in_s];
        let mut fetch = Prefetch::new(next, g.c_out.div_ceil(FILTERS) * (nb * ohow).div_ceil(LANES));
        let ys = &mut y_task[b0 * out_s..][..nb * out_s];
        for o0 in (0..g.c_out).step_by(FILTERS) {
            let wb = &wbits[o0 * kw..(o0 + FILTERS) * kw];
            for p0 in (0..nb * ohow).step_by(LANES) {
                fetch.step();
                let pop = count(col, cols, p0, wb, kw);
                let (mut q, end) = (p0, (p0 + LANES).min(nb * ohow));
                while q < end {
                    // A run of lanes inside one sample: contiguous in every output row.
                    let (j, p) = (q / ohow, q % ohow);
                    let run = (end - q).min(ohow - p);
                    for (f, pop) in pop.iter().enumerate().take(g.c_out - o0) {
                        let o = o0 + f;
                        let (pop, base) = (&pop[q - p0..][..run], &base[o * ohow + p..][..run]);
                        let dst = &mut ys[j * out_s + o * ohow + p..][..run];
                        let sc = scale.map(|sc| sc[o]);
                        if run < LANES {
                            // A sample ends inside this count (at 7x7 most do).
                            emit_short(pop, base, sc, dst);
                        } else {
                            emit(pop, base, sc, dst);
                        }
                    }
                    q += run;
                }
            }
        }
    }
    SCRATCH.set(s);
}

/// One run of a filter's outputs `y` from its popcounts `pop` and bases `base`: `s = base - 2 *
/// popcount`, then with a scale `relu(scale * s)`, exactly as channel_affine then relu.
#[inline(always)]
fn emit(pop: &[u32], base: &[i32], scale: Option<f32>, y: &mut [MaybeUninit<f32>]) {
    let sums = base.iter().zip(pop).map(|(&b, &c)| (b - 2 * c as i32) as f32);
    match scale {
        Some(sc) => y.iter_mut().zip(sums).for_each(|(d, v)| _ = d.write((v * sc + 0.0).max(0.0))),
        None => y.iter_mut().zip(sums).for_each(|(d, v)| _ = d.write(v)),
    }
}

/// [`emit`] for a run shorter than a count (a sample ends inside it) in AVX-512: 16 lanes at a
/// time with masks, not through the compiler's 4-lane and scalar remainder loops.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn emit_short_avx512(pop: &[u32], base: &[i32], scale: Option<f32>, y: &mut [MaybeUninit<f32>]) {
    use std::arch::x86_64::*;
    let run = pop.len().min(base.len()).min(y.len());
    for i in (0..run).step_by(16) {
        let m = (u32::MAX >> (32 - (run - i).min(16))) as u16;
        // SAFETY: the loads and the store touch only the first (run - i).min(16) lanes from `i`,
        // inside `base`, `pop` and `y` (masked lanes form no reference).
        unsafe {
            let b = _mm512_maskz_loadu_epi32(m, base[i..].as_ptr());
            let c = _mm512_maskz_loadu_epi32(m, pop[i..].as_ptr().cast());
            let mut v = _mm512_cvtepi32_ps(_mm512_sub_epi32(b, _mm512_slli_epi32::<1>(c)));
            if let Some(sc) = scale {
                v = scaled_relu_avx512(v, sc);
            }
            _mm512_mask_storeu_ps(y[i..].as_mut_ptr().cast(), m, v);
        }
    }
}

/// `relu(v * sc)` on 16 lanes, exactly as channel_affine then relu, `(v * sc + 0.0).max(0.0)`:
/// VMAXPS returns its second operand (+0) where the first is -0 or NaN, as the `+ 0.0` and `max`
/// do. Both XNOR kernels' outputs go through it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn scaled_relu_avx512(v: std::arch::x86_64::__m512, sc: f32) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    _mm512_max_ps(_mm512_mul_ps(v, _mm512_set1_ps(sc)), _mm512_setzero_ps())
}

/// Packs one sample's signs `[c_in, h, w]` into channel bits of the zero-padded image, one plane
/// per word of channels: `[cw, h + 2 pad, w + 2 pad]`. The input is read in order (one stream;
/// the planes of 64 channels read side by side would be 64) and the bits gathered in L1.
#[inline(always)]
fn pack_pixels(x: &[f32], g: &ConvGeom, pix: &mut [u64]) {
    let (hw, pw) = (g.h * g.w, g.w + 2 * g.pad);
    let plane_len = (g.h + 2 * g.pad) * pw;
    pix.fill(0);
    for (c, plane) in x.chunks_exact(hw).enumerate() {
        let out = &mut pix[(c / 64) * plane_len..][..plane_len];
        let bit = c % 64;
        for (src, dst) in plane.chunks_exact(g.w).zip(out[g.pad * pw..].chunks_exact_mut(pw)) {
            for (d, &v) in dst[g.pad..].iter_mut().zip(src) {
                *d |= u64::from(v > 0.0) << bit;
            }
        }
    }
}

/// [`pack_pixels`] in AVX-512: 16 pixels of a row at a time, their words built in two registers
/// over the plane's channels (a compare of 16 floats gives the 16 pixels' bits of one channel,
/// OR-ed into the lanes it sets), then stored once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn pack_pixels_avx512(x: &[f32], g: &ConvGeom, pix: &mut [u64]) {
    use std::arch::x86_64::*;
    let (hw, pw) = (g.h * g.w, g.w + 2 * g.pad);
    let plane_len = (g.h + 2 * g.pad) * pw;
    let zero = _mm512_setzero_ps();
    // Only the padding needs the zeros; the rows inside are overwritten whole.
    pix.fill(0);
    for (q, plane) in pix.chunks_exact_mut(plane_len).enumerate() {
        let channels = (g.c_in - q * 64).min(64);
        for y in 0..g.h {
            let dst = &mut plane[(y + g.pad) * pw + g.pad..][..g.w];
            for x0 in (0..g.w).step_by(16) {
                let n = (g.w - x0).min(16);
                let lanes = (u32::MAX >> (32 - n)) as u16;
                let (mut lo, mut hi, mut bit) = (_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_set1_epi64(1));
                for c in q * 64..q * 64 + channels {
                    let row = &x[c * hw + y * g.w + x0..][..n];
                    // SAFETY: the load reads only the n lanes of `row`; the others are masked off.
                    let v = unsafe { _mm512_maskz_loadu_ps(lanes, row.as_ptr()) };
                    let set = _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(lanes, v, zero);
                    lo = _mm512_mask_or_epi64(lo, set as u8, lo, bit);
                    hi = _mm512_mask_or_epi64(hi, (set >> 8) as u8, hi, bit);
                    bit = _mm512_add_epi64(bit, bit);
                }
                let out = &mut dst[x0..][..n];
                // SAFETY: the stores write only the first n lanes, the n u64 of `out` (the second
                // one's pointer is formed only when n > 8).
                unsafe {
                    _mm512_mask_storeu_epi64(out.as_mut_ptr().cast(), lanes as u8, lo);
                    if n > 8 {
                        _mm512_mask_storeu_epi64(out[8..].as_mut_ptr().cast(), (lanes >> 8) as u8, hi);
                    }
                }
            }
        }
    }
}

/// Writes the dense window rows of one sample's output pixels into columns `[off, off + ohow)`
/// of `col` (`[kw, cols]`): for each piece and output row, one pass over the row's pixels.
#[inline(always)]
fn gather(pix: &[u64], g: &ConvGeom, pieces: &[Piece], kw: usize, col: &mut [u64], cols: usize, off: usize) {
    let (oh, ow, pw) = (g.out_h(), g.out_w(), g.w + 2 * g.pad);
    let plane_len = (g.h + 2 * g.pad) * pw;
    // With whole words of channels, each piece is one whole word of the window, the only one
    // written there: it is copied, with no zeroing first.
    let whole = g.c_in.is_multiple_of(64);
    if !whole {
        for j in 0..kw {
            col[j * cols + off..][..oh * ow].fill(0);
        }
    }
    for pc in pieces {
        let plane = &pix[pc.q * plane_len..][..plane_len];
        for oy in 0..oh {
            let src = &plane[oy * g.stride * pw + pc.offset..];
            let at = off + oy * ow;
            let (lo, hi) = col.split_at_mut((pc.word + 1) * cols);
            let dst = &mut lo[pc.word * cols + at..][..ow];
            match (whole, g.stride) {
                (true, 1) => dst.copy_from_slice(&src[..ow]),
                (true, _) => dst.iter_mut().zip(src.iter().step_by(g.stride)).for_each(|(d, &v)| *d = v),
                (false, 1) => dst.iter_mut().zip(src).for_each(|(d, &v)| *d |= v << pc.shift),
                (false, _) => dst.iter_mut().zip(src.iter().step_by(g.stride)).for_each(|(d, &v)| *d |= v << pc.shift),
            }
            if pc.spill {
                let dst = &mut hi[at..][..ow];
                let back = 64 - pc.shift;
                dst.iter_mut().zip(src.iter().step_by(g.stride)).for_each(|(d, &v)| *d |= v >> back);
            }
        }
    }
}

/// Popcounts of `x ^ w` summed over a window's words, per filter and pixel.
type Pop = [[u32; LANES]; FILTERS];

/// Popcounts of `x ^ w` summed over the `kw` words of a window, for `FILTERS` filters (`w`
/// `[FILTERS, kw]`) and the `LANES` pixels from column `p0` of `col` (`[kw, cols]`).
#[inline(always)]
fn count_body(col: &[u64], cols: usize, p0: usize, w: &[u64], kw: usize) -> Pop {
    let mut acc = [[0u64; LANES]; FILTERS];
    for j in 0..kw {
        let xs: &[u64; LANES] = col[j * cols + p0..][..LANES].try_into().expect("LANES words");
        for (f, acc) in acc.iter_mut().enumerate() {
            let wj = w[f * kw + j];
            for (a, &x) in acc.iter_mut().zip(xs) {
                *a += u64::from((x ^ wj).count_ones());
            }
        }
    }
    acc.map(|a| a.map(|v| v as u32))
}

/// [`count_body`] written out in AVX-512: per window word, the 32 pixels' words are 4 vectors,
/// each XORed with a filter's broadcast word, VPOPCNTQ'd and added to that filter's 4 counters
/// (16 of the 32 vector registers), so every loaded word serves the 4 filters.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
fn count_avx512(col: &[u64], cols: usize, p0: usize, w: &[u64], kw: usize) -> Pop {
    use std::arch::x86_64::*;
    const V: usize = LANES / 8;
    let mut acc = [[_mm512_setzero_si512(); V]; FILTERS];
    for j in 0..kw {
        let xs = &col[j * cols + p0..][..LANES];
        // SAFETY: each load reads 8 u64 inside `xs` (LANES = 4 * 8 words).
        let x: [__m512i; V] = std::array::from_fn(|v| unsafe { _mm512_loadu_si512(xs[v * 8..].as_ptr().cast()) });
        // Indexed, not `w` cut into per-filter slices by `array::from_fn`: a closure that
        // inherits this function's target features cannot be inlined into `from_fn`, which
        // would then call it on every call of this function.
        for (f, acc) in acc.iter_mut().enumerate() {
            let wj = _mm512_set1_epi64(w[f * kw + j] as i64);
            for (a, &x) in acc.iter_mut().zip(&x) {
                *a = _mm512_add_epi64(*a, _mm512_popcnt_epi64(_mm512_xor_si512(x, wj)));
            }
        }
    }
    let mut out = [[0u32; LANES]; FILTERS];
    for (out, acc) in out.iter_mut().zip(&acc) {
        for (out, &a) in out.chunks_exact_mut(8).zip(acc) {
            // SAFETY: the store writes 8 u32 inside `out` (a chunk of 8).
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), _mm512_cvtepi64_epi32(a)) };
        }
    }
    out
}

/// One task of [`sign_conv`] ([`run_task`]) compiled for one instruction set.
type Runner = fn(&Plan, usize, &mut [MaybeUninit<f32>]);

fn run_generic(plan: &Plan, task: usize, y_task: &mut [MaybeUninit<f32>]) {
    run_task(plan, task, y_task, pack_pixels, count_body, emit)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq,avx2,fma,popcnt")]
fn run_avx512(plan: &Plan, task: usize, y_task: &mut [MaybeUninit<f32>]) {
    run_task(
        plan,
        task,
        y_task,
        |x, g, pix| pack_pixels_avx512(x, g, pix),
        |col, cols, p0, w, kw| count_avx512(col, cols, p0, w, kw),
        |pop, base, sc, y| emit_short_avx512(pop, base, sc, y),
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt")]
fn run_avx2(plan: &Plan, task: usize, y_task: &mut [MaybeUninit<f32>]) {
    run_task(plan, task, y_task, pack_pixels, count_body, emit)
}

/// The runners this CPU can run, fastest first, with their names.
fn runners() -> Vec<(Runner, &'static str)> {
    let mut out: Vec<(Runner, &'static str)> = vec![];
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("popcnt");
        if has_avx512() && has!("avx512vpopcntdq") {
            // SAFETY: the CPU has every feature run_avx512 is compiled for (checked just above).
            out.push((|p, t, y| unsafe { run_avx512(p, t, y) }, "AVX-512 VPOPCNTQ XNOR"));
        }
        if avx2 {
            // SAFETY: the CPU has every feature run_avx2 is compiled for (checked just above).
            out.push((|p, t, y| unsafe { run_avx2(p, t, y) }, "AVX2 XNOR"));
        }
    }
    out.push((run_generic, "scalar XNOR"));
    out
}

/// Whether the CPU has the features both XNOR kernels' AVX-512 runners are compiled for besides
/// their popcount: AVX-512 F, BW, VL and DQ, with AVX2, FMA and POPCNT.
#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx512() -> bool {
    use std::arch::is_x86_feature_detected as has;
    has!("avx2")
        && has!("fma")
        && has!("popcnt")
        && has!("avx512f")
        && has!("avx512bw")
        && has!("avx512vl")
        && has!("avx512dq")
}

/// The fastest runner this CPU runs, and its name (chosen once).
fn pick_runner() -> (Runner, &'static str) {
    static PICK: std::sync::OnceLock<(Runner, &'static str)> = std::sync::OnceLock::new();
    *PICK.get_or_init(|| runners()[0])
}

/// The counter [`sign_conv`] uses on this CPU, in words.
pub(super) fn counter_name() -> String {
    match xnor_flat::pick() {
        Some((_, flat)) => format!("{flat} where it pays (stride 1), else {}", pick_runner().1),
        None => pick_runner().1.to_string(),
    }
}

#[cfg(test)]
mod tests;
