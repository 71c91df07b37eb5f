//! The binary conv with output pixels as bit lanes: the Cortex-M4's kernel where the output map
//! spans at least 4 lane groups ([`use_lanes`]; the dense-row kernel runs elsewhere, and on every
//! target with a popcount instruction).
//!
//! A Cortex-M4 has no popcount, and counting the bits of `x ^ w` one output at a time costs ~10
//! instructions per 32-bit word plus ~40 per output. Here a 32-bit word holds one bit for each
//! of up to 32 output pixels (`rows` output rows of `seg_w` columns: 1 x 28 at 28x28, 2 x 14 at
//! 14x14), and sums run down the lanes in bit-sliced counters (carry-save adders), so one
//! instruction works on up to 32 outputs at once and nothing is counted per output.
//!
//! With `x` the input bits (1 for +1; 0 for -1 and for padding) and `w` a filter's bits, the
//! conv over the taps inside the image is
//!
//! `s = sum_valid (2x-1)(2w-1) = 2 (B - A) - W = sigma (4 M - 2 P) - W`
//!
//! - `P = sum x` over every term (channel, ky, kx): one count per pixel, shared by all filters
//!   (and by the groups, where [`row_sums`] counts it once per stack start row);
//! - `B = sum over terms with w = 1 of x`, `A = P - B`; each filter counts only its minority `M`
//!   (`B` if at most half its bits are 1, else `A`, `sigma = -1`), at most half the terms;
//! - `W = sum_valid (2w-1)`, the filter's sum over the taps inside the image: a constant in the
//!   interior, read from a per-filter prefix table at the borders.
//!
//! Padded taps have `x = 0`, so they add nothing to `P`, `A` or `B`, and `W` leaves them out:
//! padding contributes exactly 0, as zero padding after sign does in the float network.
//!
//! Filters go in pairs where the work space allows: each filter of a pair counts one side of its
//! weights (`B` or `A`), chosen so that the two sets overlap most, and the terms in both sets
//! count once before the count forks (a root list, then one leaf list per filter). For random
//! weights that is about 3/4 of the terms per pair, against about 0.48 per filter alone.
//!
//! Layout of the work words (see [`lane_work_words`]):
//! - phase rows `[c_in, h_in, stride, pw]`: input row bits, column `ix` at phase `ix % stride`,
//!   bit `ix / stride` ([`super::binarize_rows`] writes them);
//! - stacks `[n_seg, c_in, k, t]` (+ `N` words of slack): for segment `seg`, channel `c`, tap
//!   column `kx` and start row `t`, the word whose lane `(r, j)` is input bit
//!   `(c, t - pad + r*stride, (seg*seg_w + j)*stride - pad + kx*dil)`. Term `(c, ky, kx)` of
//!   output group `g` is stack `(c*k + kx)*t_rows + ky*dil` after the group's base: every filter's
//!   term list is a list of offsets valid for every group;
//! - per-lane `P` for every group, one filter's offsets (or a pair's three lists), one filter's
//!   border prefix table (a pair's second table goes in the phase rows, dead by then).

use super::lane_count::{count_pair, count_window, counts16, counts8, lane_sums, window_for, MAX_COUNT, PLANES};
use super::lane_emit::{Filter, Interior};
use super::lane_stacks::build_stacks;
use super::{full_windows, tap_range, Shape};
use crate::format::{words_for, BITS};
use crate::model::ConvGeom;

/// Output width of a conv over `w_in` input columns (0 when the window does not fit).
pub fn out_width(w_in: usize, g: ConvGeom) -> usize {
    let span = g.dil.saturating_mul(g.k.saturating_sub(1)) + 1;
    (w_in + 2 * g.pad).checked_sub(span).map_or(0, |d| d / g.stride.max(1) + 1)
}

/// How output pixels map to lanes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lanes {
    /// Output columns per lane row (at most 32) and segments per output row.
    pub(super) seg_w: usize,
    pub(super) n_seg: usize,
    /// Output rows per group and groups per segment.
    pub(super) rows: usize,
    pub(super) groups: usize,
    /// Start rows per stack: `(groups - 1) * rows * stride + (k - 1) * dil + 1`.
    pub(super) t_rows: usize,
    /// Words of one segment's stacks (`c_in * k * t_rows`) and the stack window ([`window_for`]).
    pub(super) seg_words: usize,
    pub(super) window: usize,
}

impl Lanes {
    fn new(c_in: usize, g: ConvGeom, h_out: usize, w_out: usize) -> Self {
        let seg_w = w_out.clamp(1, BITS);
        let rows = (BITS / seg_w).clamp(1, h_out.max(1));
        let groups = h_out.div_ceil(rows);
        let t_rows = groups.saturating_sub(1) * rows * g.stride.max(1) + g.k.saturating_sub(1) * g.dil.max(1) + 1;
        let seg_words = c_in.saturating_mul(g.k).saturating_mul(t_rows);
        Lanes { seg_w, n_seg: w_out.div_ceil(seg_w), rows, groups, t_rows, seg_words, window: window_for(seg_words) }
    }
}

/// Whether the lane kernel pays for this conv: when its output map spans at least 4 lane groups.
/// Each filter's term list costs about as much to build as one pass over it, so with fewer groups
/// (7x7 and 8x8 maps: 2) the list does not pay. Measured on the Cortex-M4 (QEMU), this rule picks
/// the faster kernel on every shape profiled (docs/figures.md). It does not depend on the target:
/// the exported arena plan sizes the scratch by it.
pub fn lanes_pay(c_in: usize, g: ConvGeom, h_out: usize, w_out: usize) -> bool {
    let l = Lanes::new(c_in, g, h_out, w_out);
    l.n_seg * l.groups >= 4
}

/// Whether this build runs the lane kernel for this conv: where [`lanes_pay`] and the target has
/// no popcount instruction (with one, the dense-row kernel is 1.1-3.4x faster on x86-64).
pub fn use_lanes(c_in: usize, g: ConvGeom, h_out: usize, w_out: usize) -> bool {
    !crate::popcount::HARDWARE_POPCOUNT && lanes_pay(c_in, g, h_out, w_out)
}

/// Work words [`bin_conv_lanes`] needs besides the phase rows: stacks and their window slack,
/// one lane row per input row, per-lane `P` of every group, one filter's term offsets and its
/// border prefix table.
pub fn lane_work_words(c_in: usize, g: ConvGeom, h_in: usize, w_in: usize) -> usize {
    let (h_out, w_out) = (out_width(h_in, g), out_width(w_in, g));
    let l = Lanes::new(c_in, g, h_out, w_out);
    let stacks = l.n_seg.saturating_mul(l.seg_words).saturating_add(l.window).saturating_add(h_in);
    let p = l.n_seg.saturating_mul(l.groups).saturating_mul(BITS);
    let terms = c_in.saturating_mul(g.k).saturating_mul(g.k);
    let prefix = (g.k + 1).saturating_mul(w_out);
    stacks.saturating_add(p).saturating_add(terms).saturating_add(prefix)
}

/// XNOR-popcount conv over phase rows ([`super::binarize_rows`] with `g.stride`) with weights
/// `[c_out, k*k, words]`, `words = ceil(c_in/32)`, through output lanes (see the module docs).
/// `work` needs [`lane_work_words`] words. `out[o, p] = relu(s as f32 * scale[o])` with `s` the
/// sum of +-1 products over the taps inside the image, exactly as [`super::bin_conv`]. Once the
/// stacks are built the phase rows are work space too: they come back overwritten.
#[allow(clippy::too_many_arguments)]
pub fn bin_conv_lanes(
    rows: &mut [u32],
    xs: Shape,
    g: ConvGeom,
    scale: &[f32],
    packed: &[u32],
    work: &mut [u32],
    out: &mut [f32],
    os: Shape,
) {
    let (k, s, d, wpt) = (g.k, g.stride.max(1), g.dil.max(1), words_for(xs.c));
    let l = Lanes::new(xs.c, g, os.h, os.w);
    let n_terms = xs.c * k * k;
    let valid = wpt > 0 && wpt <= MAX_BIN_WORDS && n_terms > 0 && k <= MAX_KERNEL && os.hw() > 0;
    if !valid || out_width(xs.w, g) != os.w || out_width(xs.h, g) != os.h {
        return;
    }
    if work.len() < lane_work_words(xs.c, g, xs.h, xs.w) {
        return;
    }
    let Some((stacks, rest)) = work.split_at_mut_checked(l.n_seg * l.seg_words + l.window) else { return };
    let Some((strips, rest)) = rest.split_at_mut_checked(xs.h) else { return };
    let Some((q_all, rest)) = rest.split_at_mut_checked(l.n_seg * l.groups * BITS) else { return };
    let Some((offsets, prefix)) = rest.split_at_mut_checked(n_terms) else { return };
    build_stacks(rows, xs, g, l, strips, stacks);
    let stacks: &[u32] = stacks;
    // Term (c, ky, kx) is stack (c*k + kx)*t_rows + ky*d after its group's base.
    let kt = (k * l.t_rows) as u32;
    let tap_offset = |ky: usize, kx: usize| (kx * l.t_rows + ky * d) as u32;
    let group_base = |i: usize| (i / l.groups) * l.seg_words + (i % l.groups) * l.rows * s;
    // The kernel rows that reach inside the image for some row of group `i`: all of them for the
    // groups inside the image's rows, without working them out.
    let inner_rows = full_windows(os.h, xs.h, g);
    let group_rows = |i: usize| {
        let first = (i % l.groups) * l.rows;
        let last = (first + l.rows).min(os.h).saturating_sub(1);
        if inner_rows.contains(&first) && inner_rows.contains(&last) {
            (0, k)
        } else {
            (tap_range(last, xs.h, g).0, tap_range(first, xs.h, g).1)
        }
    };
    // q = -2 P for every lane of every (segment, group): from counts per start row where they
    // count fewer words, else down each group's stacks.
    if !row_sums(stacks, xs, g, l, rows, offsets, q_all) {
        // All terms, kernel row by kernel row, so a group's list is the sub-list of the kernel
        // rows that reach inside the image for some row of the group (all-padding rows add
        // nothing).
        let mut slots = offsets.iter_mut();
        for ky in 0..k {
            for kx in 0..k {
                for (c, slot) in (0..xs.c as u32).zip(&mut slots) {
                    *slot = c * kt + tap_offset(ky, kx);
                }
            }
        }
        for (i, q) in q_all.chunks_exact_mut(BITS).enumerate() {
            let (ky0, ky1) = group_rows(i);
            let all = offsets.get(ky0 * k * xs.c..ky1.max(ky0) * k * xs.c).unwrap_or(&[]);
            let p = lane_sums(stacks, l.window, group_base(i), all);
            q.iter_mut().zip(&p).for_each(|(q, &p)| *q = p.wrapping_mul(2).wrapping_neg());
        }
    }
    let q_all: &[u32] = q_all;
    // Each packed word's real channels (the padding channels' bits are ignored).
    let mut masks = [0u32; MAX_BIN_WORDS];
    masks.iter_mut().take(wpt).enumerate().for_each(|(i, m)| *m = channel_mask(xs.c, i));
    let masks = masks.get(..wpt).unwrap_or(&[]);
    let inner = Interior::new(xs, g, os);
    let list = |wa: &[u32], wb: &[u32], pick: &dyn Fn(u32, u32) -> u32, slots: &mut [u32]| {
        term_list(wa, wb, masks, k, &tap_offset, kt, pick, slots)
    };
    // Filters go two at a time where the phase rows (dead once the stacks are built) can hold the
    // second filter's prefix table and every count fits the counters; otherwise one at a time.
    let (prefix, _) = prefix.split_at_mut(prefix.len().min((k + 1) * os.w));
    let paired = n_terms <= MAX_COUNT && rows.len() >= prefix.len();
    let (prefix_b, _) = rows.split_at_mut(prefix.len().min(rows.len()));
    let mut filters = packed.chunks_exact(k * k * wpt).zip(scale).zip(out.chunks_exact_mut(os.hw())).peekable();
    while let Some(((wa, &sa), out_a)) = filters.next() {
        let fa = Filter::new(wa, sa, masks, xs.c);
        let Some(((wb, &sb), out_b)) = filters.next_if(|_| paired) else {
            // One filter: it counts its minority terms.
            let ones_side = 2 * fa.ones as usize <= n_terms;
            let (n, rs) = list(wa, wa, &|a, _| if ones_side { a } else { !a }, offsets);
            let e = fa.emit(ones_side, &inner, prefix, l, g, xs, os);
            let all_terms = offsets.get(..n).unwrap_or(&[]);
            for (i, q) in q_all.chunks_exact(BITS).enumerate() {
                let (ky0, ky1) = group_rows(i);
                let terms = sub_list(all_terms, &rs, ky0, ky1);
                if terms.len() <= 255 {
                    e.group(&counts8(&count_window(stacks, l.window, group_base(i), terms)), q, out_a, i);
                } else {
                    e.group(&lane_sums(stacks, l.window, group_base(i), terms), q, out_a, i);
                }
            }
            continue;
        };
        // Two filters: the terms in both one's set and the other's count once (the root list),
        // then each filter's own terms (the leaf lists). Each set is the terms under the +1 or the
        // -1 weights, whichever choice of the four counts the fewest words in all.
        let fb = Filter::new(wb, sb, masks, xs.c);
        let (na, nb, n) = (fa.ones as usize, fb.ones as usize, n_terms);
        let pairs = wa.iter().zip(wb);
        let both: usize = match *masks {
            // One word per tap (up to 32 channels): one mask.
            [m] => pairs.map(|(a, b)| (a & b & m).count_ones() as usize).sum(),
            _ => pairs.zip(masks.iter().cycle()).map(|((a, b), m)| (a & b & m).count_ones() as usize).sum(),
        };
        let choices = [
            (true, true, na + nb - both),
            (true, false, n - nb + both),
            (false, true, n - na + both),
            (false, false, n - both),
        ];
        let (pa, pb) = choices.into_iter().min_by_key(|c| c.2).map_or((true, true), |c| (c.0, c.1));
        let side = |ones: bool, w: u32| if ones { w } else { !w };
        let (n_root, rs_root) = list(wa, wb, &|a, b| side(pa, a) & side(pb, b), offsets);
        let (_, leaves) = offsets.split_at_mut(n_root.min(n_terms));
        let (n_a, rs_a) = list(wa, wb, &|a, b| side(pa, a) & !side(pb, b), leaves);
        let (_, leaf_b) = leaves.split_at_mut(n_a.min(leaves.len()));
        let (n_b, rs_b) = list(wa, wb, &|a, b| side(pb, b) & !side(pa, a), leaf_b);
        let (ea, eb) = (fa.emit(pa, &inner, prefix, l, g, xs, os), fb.emit(pb, &inner, prefix_b, l, g, xs, os));
        let offsets: &[u32] = offsets;
        let root = offsets.get(..n_root).unwrap_or(&[]);
        let leaf_a = offsets.get(n_root..n_root + n_a).unwrap_or(&[]);
        let leaf_b = offsets.get(n_root + n_a..n_root + n_a + n_b).unwrap_or(&[]);
        let mut counts = [[0u32; PLANES]; 2];
        for (i, q) in q_all.chunks_exact(BITS).enumerate() {
            let (root, leaves) = match group_rows(i) {
                (0, ky1) if ky1 == k => (root, [leaf_a, leaf_b]),
                (ky0, ky1) => {
                    let sub = |list, rs| sub_list(list, rs, ky0, ky1);
                    (sub(root, &rs_root), [sub(leaf_a, &rs_a), sub(leaf_b, &rs_b)])
                }
            };
            count_pair(stacks, l.window, group_base(i), root, leaves, &mut counts);
            for ((e, out_o), (c, leaf)) in
                [(&ea, &mut *out_a), (&eb, &mut *out_b)].into_iter().zip(counts.iter().zip(leaves))
            {
                if root.len() + leaf.len() <= 255 {
                    e.group(&counts8(c), q, out_o, i);
                } else {
                    e.group(&counts16(c), q, out_o, i);
                }
            }
        }
    }
}

/// Writes `q = -2 P` for every lane of every group (see the module docs) from one count per
/// stack start row, where that counts fewer words than a count per group: stack start row `t`'s
/// words over every channel and kernel column (`c_in * k` of them) hold the input row of each of
/// its lanes summed along the kernel columns, and a group's `P` is the sum of those counts over
/// its kernel rows, start rows `t0 + ky*dil`. With one or two output rows per group, each start
/// row serves up to `k` groups. The start rows' lane counts (bytes) go in `scratch`
/// (`n_seg * t_rows * 8` words: the phase rows, dead once the stacks are built), the `c_in * k`
/// offsets in `list`. Kernel rows outside the image add nothing (their stack words are 0), so
/// every lane inside the output map gets the count down the group's stacks. Returns false,
/// writing nothing, where this would count more words (each count's fixed work taken as ~20
/// words, a group's sums as ~43), where a count could pass 255, or where the scratch is short.
#[inline(never)]
fn row_sums(
    stacks: &[u32],
    xs: Shape,
    g: ConvGeom,
    l: Lanes,
    scratch: &mut [u32],
    list: &mut [u32],
    q_all: &mut [u32],
) -> bool {
    let (k, s, d, ck) = (g.k, g.stride.max(1), g.dil.max(1), xs.c * g.k);
    let by_rows = l.n_seg.saturating_mul(l.t_rows.saturating_mul(ck + 20).saturating_add(l.groups.saturating_mul(43)));
    let by_groups = l.n_seg.saturating_mul(l.groups).saturating_mul(ck.saturating_mul(k) + 20);
    if ck > 255 || by_rows >= by_groups {
        return false;
    }
    let (Some(counts), Some(list)) = (scratch.get_mut(..l.n_seg * l.t_rows * 8), list.get_mut(..ck)) else {
        return false;
    };
    // Word (c*k + kx)*t_rows + t of a segment's stacks is channel c, kernel column kx, row t.
    list.iter_mut().enumerate().for_each(|(j, o)| *o = (j * l.t_rows) as u32);
    for (i, row) in counts.as_chunks_mut::<8>().0.iter_mut().enumerate() {
        let base = (i / l.t_rows.max(1)) * l.seg_words + i % l.t_rows.max(1);
        let bytes = counts8(&count_window(stacks, l.window, base, list));
        for (w, b) in row.iter_mut().zip(bytes.as_chunks::<4>().0) {
            *w = u32::from_le_bytes(*b);
        }
    }
    let counts: &[u32] = counts;
    for (i, q) in q_all.chunks_exact_mut(BITS).enumerate() {
        let t0 = (i / l.groups.max(1)) * l.t_rows + (i % l.groups.max(1)) * l.rows * s;
        // Lanes 4j and 4j + 2 in the halves of even[j], 4j + 1 and 4j + 3 in those of odd[j]
        // (at most 7 * 255 each).
        let (mut even, mut odd) = ([0u32; 8], [0u32; 8]);
        for ky in 0..k {
            let at = (t0 + ky * d) * 8;
            let Some(row) = counts.get(at..at + 8) else { continue };
            for ((e, o), &w) in even.iter_mut().zip(odd.iter_mut()).zip(row) {
                *e += w & 0x00FF_00FF;
                *o += (w >> 8) & 0x00FF_00FF;
            }
        }
        for ((q, &e), &o) in q.as_chunks_mut::<4>().0.iter_mut().zip(&even).zip(&odd) {
            let p = [e & 0xFFFF, o & 0xFFFF, e >> 16, o >> 16];
            q.iter_mut().zip(p).for_each(|(q, p)| *q = p.wrapping_mul(2).wrapping_neg());
        }
    }
    true
}

/// The part of a term list (see [`term_list`]) in kernel rows `ky0..ky1`.
fn sub_list<'a>(list: &'a [u32], row_start: &[usize; MAX_KERNEL + 1], ky0: usize, ky1: usize) -> &'a [u32] {
    let (from, to) = (row_start.get(ky0).copied().unwrap_or(0), row_start.get(ky1).copied().unwrap_or(0));
    list.get(from..to.max(from)).unwrap_or(&[])
}

/// Writes into `slots` the offsets of the terms whose bits `pick(a, b)` sets, from the words `a`
/// and `b` of two filters' weights (`[k*k, words]`), kernel row by kernel row; returns how many
/// and where each kernel row's terms start.
#[allow(clippy::too_many_arguments)]
fn term_list(
    wa: &[u32],
    wb: &[u32],
    masks: &[u32],
    k: usize,
    tap_offset: &impl Fn(usize, usize) -> u32,
    kt: u32,
    pick: &dyn Fn(u32, u32) -> u32,
    slots: &mut [u32],
) -> (usize, [usize; MAX_KERNEL + 1]) {
    let wpt = masks.len().max(1);
    let mut slots = slots.iter_mut();
    let (mut n, mut row_start) = (0usize, [0usize; MAX_KERNEL + 1]);
    let rows = wa.chunks_exact(k * wpt).zip(wb.chunks_exact(k * wpt)).zip(row_start.iter_mut()).enumerate();
    for (ky, ((ra, rb), start)) in rows {
        *start = n;
        for (kx, (ta, tb)) in ra.chunks_exact(wpt).zip(rb.chunks_exact(wpt)).enumerate() {
            let at = tap_offset(ky, kx);
            for (wi, ((&a, &b), &mask)) in ta.iter().zip(tb).zip(masks).enumerate() {
                let mut v = pick(a, b) & mask;
                let base = at + (wi * BITS) as u32 * kt;
                while v != 0 {
                    let Some(slot) = slots.next() else { break };
                    *slot = base + v.trailing_zeros() * kt;
                    n += 1;
                    v &= v - 1;
                }
            }
        }
    }
    if let Some(r) = row_start.get_mut(k) {
        *r = n;
    }
    (n, row_start)
}

/// Bits of word `i` of a tap that hold real channels (the padding channels' bits are ignored).
#[inline]
fn channel_mask(c_in: usize, i: usize) -> u32 {
    let left = c_in.saturating_sub(i * BITS);
    if left >= BITS {
        u32::MAX
    } else {
        (1u32 << left) - 1
    }
}

/// Largest kernel size, and number of taps (`k*k` for k <= 7).
pub(super) const MAX_KERNEL: usize = crate::format::MAX_KERNEL;
pub(super) const MAX_TAPS: usize = MAX_KERNEL * MAX_KERNEL;
/// Largest number of packed words per tap (8192 input channels; `Model::parse` rejects more).
pub const MAX_BIN_WORDS: usize = 256;

#[cfg(test)]
mod tests {
    extern crate std;
    use super::super::lane_stacks::{binarize_rows, phase_row_words};
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// [`row_sums`] against `P` by its definition (the +1 inputs over every channel and every tap
    /// inside the image), in every lane inside the output map: 1-51 channels, 3x3, 5x5 and 7x7
    /// kernels, strides 1-3, dilations, padding wider than the window, maps from 1 x 9 up to
    /// 30 x 70 (several segments). Where its cost rule declines it writes nothing; it must run on
    /// `fmnist-demo`'s 12-channel 28x28 and 24-channel 14x14 5x5 convs.
    #[test]
    fn row_sums_are_the_window_counts() {
        let mut next = crate::xorshift32(0x51ED_270B);
        let (mut ran, mut cases) = (0, 0);
        for &c in &[1usize, 5, 12, 24, 33, 51] {
            for k in [3usize, 5, 7] {
                for (stride, pad, dil) in [(1, 1, 1), (1, 2, 1), (2, 1, 1), (1, 4, 2), (2, 4, 2), (1, 5, 1), (3, 2, 2)]
                {
                    let random = (1 + next() as usize % 30, 1 + next() as usize % 70);
                    for (h, w) in [(28, 28), (14, 14), (1, 9), (9, 1), random] {
                        let (xs, g) = (Shape { c, h, w }, ConvGeom { k, stride, pad, dil });
                        let os = Shape { c: 1, h: out_width(h, g), w: out_width(w, g) };
                        if os.hw() == 0 {
                            continue;
                        }
                        cases += 1;
                        let x: Vec<f32> = (0..c * h * w).map(|_| (next() % 1000) as f32 - 500.0).collect();
                        let mut rows = vec![0u32; phase_row_words(c, h, w, stride)];
                        binarize_rows(&x, xs, stride, &vec![1.0; c], &vec![0.0; c], &mut rows);
                        let l = Lanes::new(c, g, os.h, os.w);
                        let mut stacks = vec![0xDEAD_BEEFu32; l.n_seg * l.seg_words + l.window];
                        build_stacks(&rows, xs, g, l, &mut vec![0u32; h], &mut stacks);
                        let mut list = vec![0u32; c * k * k];
                        let mut q = vec![0xDEAD_BEEFu32; l.n_seg * l.groups * BITS];
                        let demo_conv = k == 5 && stride == 1 && [(2, 1), (4, 2)].contains(&(pad, dil));
                        let demo = demo_conv && [(12, 28), (24, 14)].contains(&(c, h)) && w == h;
                        if !row_sums(&stacks, xs, g, l, &mut rows, &mut list, &mut q) {
                            assert!(!demo, "{xs:?} {g:?}: the row sums did not run");
                            assert!(q.iter().all(|&q| q == 0xDEAD_BEEF), "{xs:?} {g:?}: declined, but wrote");
                            continue;
                        }
                        ran += 1;
                        for (oy, ox) in (0..os.h).flat_map(|oy| (0..os.w).map(move |ox| (oy, ox))) {
                            let mut p = 0u32;
                            for (ch, ky, kx) in (0..c).flat_map(|ch| (0..k * k).map(move |t| (ch, t / k, t % k))) {
                                let iy = (oy * stride + ky * dil) as isize - pad as isize;
                                let ix = (ox * stride + kx * dil) as isize - pad as isize;
                                if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                                    p += u32::from(x[(ch * h + iy as usize) * w + ix as usize] >= 0.0);
                                }
                            }
                            let i = (ox / l.seg_w) * l.groups + oy / l.rows;
                            let got = q[i * BITS + (oy % l.rows) * l.seg_w + ox % l.seg_w];
                            assert_eq!(got, p.wrapping_mul(2).wrapping_neg(), "{xs:?} {g:?} at ({oy}, {ox})");
                        }
                    }
                }
            }
        }
        std::println!("row sums: ran on {ran} of {cases} geometries, each == the window counts");
        assert!(ran >= 30, "the row sums ran on only {ran} of {cases} geometries");
    }
}
