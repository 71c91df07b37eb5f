//! Per-lane sums of 32-bit lane words for the bit-lane binary conv ([`super::bin_conv_lanes`]):
//! bit-sliced carry-save counters over a list of word offsets, then bit-matrix transposes that
//! turn the counter planes into one count per lane.

use crate::format::BITS;
use crate::popcount::csa;

/// Words per carry-save block.
const BLOCK: usize = 16;
/// Counter bit planes: counts up to [`MAX_COUNT`] per lane.
pub(super) const PLANES: usize = 16;
/// Largest number of words one count takes (longer lists are counted in parts).
pub(super) const MAX_COUNT: usize = (1 << PLANES) - 1;

/// Adds one bit plane `v` of weight `2^from` into the counter planes.
#[inline(always)]
fn ripple(planes: &mut [u32; PLANES], from: usize, mut v: u32) {
    for p in planes.iter_mut().skip(from) {
        if v == 0 {
            return;
        }
        let carry = *p & v;
        *p ^= v;
        v = carry;
    }
}

/// A Harley-Seal count in progress: blocks of 16 words go through 15 carry-save adders into the
/// ones, twos, fours and eights planes, whose carry out, the sixteens, ripples into `planes` from
/// 4 up (16 measured 3% fewer instructions than blocks of 8 on the Cortex-M4).
///
/// Planes 0-3 are written when the count finishes and 4 and up are rippled into. A count that
/// stays under 256 (started with `wide` false) only ever reaches planes 0-7, which are all
/// [`counts8`] reads: planes 8 and up are left as they were, so starting or forking it moves 4
/// words, not 16 (the 64-byte `memset` and `memcpy` calls had cost ~150 K instructions per
/// `fmnist-demo` inference; the branches take back about 100 K of that).
struct Count<'p> {
    ones: u32,
    twos: u32,
    fours: u32,
    eights: u32,
    planes: &'p mut [u32; PLANES],
}

impl<'p> Count<'p> {
    /// A count starting from zero, in `planes`; `wide` where it may reach 256 or more.
    fn new(planes: &'p mut [u32; PLANES], wide: bool) -> Self {
        let [_, _, _, _, p4, p5, p6, p7, high @ ..] = &mut *planes;
        (*p4, *p5, *p6, *p7) = (0, 0, 0, 0);
        if wide {
            *high = [0; PLANES - 8];
        }
        Count { ones: 0, twos: 0, fours: 0, eights: 0, planes }
    }

    /// A copy of this count in `planes` (`wide` as it was started): words counted before the fork
    /// count for both.
    #[inline(always)]
    fn fork<'q>(&self, planes: &'q mut [u32; PLANES], wide: bool) -> Count<'q> {
        let [_, _, _, _, s4, s5, s6, s7, s_high @ ..] = &*self.planes;
        let [_, _, _, _, p4, p5, p6, p7, high @ ..] = &mut *planes;
        (*p4, *p5, *p6, *p7) = (*s4, *s5, *s6, *s7);
        if wide {
            *high = *s_high;
        }
        Count { ones: self.ones, twos: self.twos, fours: self.fours, eights: self.eights, planes }
    }

    /// Adds the words `at(o)` of the whole blocks of `offsets`; returns the offsets left (fewer
    /// than a block).
    #[inline(always)]
    fn blocks<'o>(&mut self, offsets: &'o [u32], at: &impl Fn(u32) -> u32) -> &'o [u32] {
        let (blocks, rest) = offsets.as_chunks::<BLOCK>();
        let (mut ones, mut twos, mut fours, mut eights) = (self.ones, self.twos, self.fours, self.eights);
        for block in blocks {
            let (lo, hi) = block.split_at(BLOCK / 2);
            let (fa, fb) = eight(&mut ones, &mut twos, lo, at);
            let (ea, f) = csa(fours, fa, fb);
            let (fa, fb) = eight(&mut ones, &mut twos, hi, at);
            let (eb, f) = csa(f, fa, fb);
            let (sixteens, e) = csa(eights, ea, eb);
            (fours, eights) = (f, e);
            ripple(self.planes, 4, sixteens);
        }
        (self.ones, self.twos, self.fours, self.eights) = (ones, twos, fours, eights);
        rest
    }

    /// Adds the words at `rest` (fewer than a block) as up to two half blocks padded with zeros:
    /// cheaper than rippling each word into the planes once there are two or more.
    #[inline(always)]
    fn halves(&mut self, rest: &[u32], at: &impl Fn(u32) -> u32) {
        for half in rest.chunks(BLOCK / 2).take(2) {
            let (fa, fb) = eight(&mut self.ones, &mut self.twos, half, at);
            let (e, f) = csa(self.fours, fa, fb);
            let sixteens = self.eights & e;
            (self.fours, self.eights) = (f, self.eights ^ e);
            ripple(self.planes, 4, sixteens);
        }
    }

    /// Adds the words at `rest` (fewer than a block) and leaves the count's bit planes in
    /// `planes`.
    #[inline(always)]
    fn finish(mut self, rest: &[u32], at: &impl Fn(u32) -> u32) {
        self.halves(rest, at);
        // The blocks only ripple into the planes from 4 up, so 0..4 are still zero here.
        let [p0, p1, p2, p3, ..] = self.planes;
        (*p0, *p1, *p2, *p3) = (self.ones, self.twos, self.fours, self.eights);
    }
}

/// Counts for up to two filters sharing their common terms, into `out`: the words `at(o)` for `o`
/// in `root` count once, then the count forks, and each copy adds one leaf list (each count at
/// most [`MAX_COUNT`] words). Where both counts are under 256 words, planes 8 and up are left as
/// they were (see [`Count`]).
#[inline(always)]
fn count_fork(root: &[u32], leaves: [&[u32]; 2], at: impl Fn(u32) -> u32, out: &mut [[u32; PLANES]; 2]) {
    let [out_a, out_b] = out;
    let wide = leaves.iter().any(|leaf| root.len() + leaf.len() > 255);
    let mut shared = Count::new(out_b, wide);
    let rest = shared.blocks(root, &at);
    shared.halves(rest, &at);
    let a = shared.fork(out_a, wide);
    for (mut count, leaf) in [a, shared].into_iter().zip(leaves) {
        let rest = count.blocks(leaf, &at);
        count.finish(rest, &at);
    }
}

/// Eight words (`at` of the first 8 offsets) into the ones and twos planes by 6 carry-save adders;
/// returns the two fours-weight carries.
#[inline(always)]
fn eight(ones: &mut u32, twos: &mut u32, o: &[u32], at: impl Fn(u32) -> u32) -> (u32, u32) {
    let w = |i: usize| o.get(i).map_or(0, |&o| at(o));
    let (ta, x) = csa(*ones, w(0), w(1));
    let (tb, x) = csa(x, w(2), w(3));
    let (fa, t) = csa(*twos, ta, tb);
    let (ta, x) = csa(x, w(4), w(5));
    let (tb, x) = csa(x, w(6), w(7));
    let (fb, t) = csa(t, ta, tb);
    (*ones, *twos) = (x, t);
    (fa, fb)
}

/// Largest stack window with a load path free of bounds checks.
const MAX_WINDOW: usize = 1 << 16;

/// The stack window for `seg_words` words: the power of two at or above it (at least 16), whose
/// mask keeps every load in bounds without a check; 0 above [`MAX_WINDOW`] (checked loads).
pub(super) fn window_for(seg_words: usize) -> usize {
    let n = seg_words.next_power_of_two().max(16);
    if n <= MAX_WINDOW {
        n
    } else {
        0
    }
}

/// Counts for up to two filters over the stack words after group base `base`, into `out`: the
/// words at `root` count for both, each leaf for its own filter (see [`count_fork`]; a count
/// under 256 words is in planes 0-7, for [`counts8`]). The loads go
/// through a `window`-word array indexed by masked offsets (in bounds by construction, so the
/// compiler drops the check), or are checked (words past the end of `stacks` read 0) where the
/// window is 0 or under 256 words (layers that small do not repay a copy of the loop in flash). A
/// window past the end (which the work sizing rules out) counts nothing.
pub(super) fn count_pair(
    stacks: &[u32],
    window: usize,
    base: usize,
    root: &[u32],
    leaves: [&[u32]; 2],
    out: &mut [[u32; PLANES]; 2],
) {
    fn go<const N: usize>(
        stacks: &[u32],
        base: usize,
        root: &[u32],
        leaves: [&[u32]; 2],
        out: &mut [[u32; PLANES]; 2],
    ) {
        match stacks.get(base..).and_then(|s| s.first_chunk::<N>()) {
            Some(win) => count_fork(root, leaves, |o| win.get(o as usize & (N - 1)).copied().unwrap_or(0), out),
            None => *out = [[0; PLANES]; 2],
        }
    }
    match window {
        256 => go::<256>(stacks, base, root, leaves, out),
        512 => go::<512>(stacks, base, root, leaves, out),
        1024 => go::<1024>(stacks, base, root, leaves, out),
        2048 => go::<2048>(stacks, base, root, leaves, out),
        4096 => go::<4096>(stacks, base, root, leaves, out),
        8192 => go::<8192>(stacks, base, root, leaves, out),
        16384 => go::<16384>(stacks, base, root, leaves, out),
        32768 => go::<32768>(stacks, base, root, leaves, out),
        65536 => go::<65536>(stacks, base, root, leaves, out),
        _ => count_fork(root, leaves, |o| stacks.get(base + o as usize).copied().unwrap_or(0), out),
    }
}

/// Counter planes of the stack words at `offsets` (at most [`MAX_COUNT`]) after group base `base`:
/// all 16 valid, whatever the count.
pub(super) fn count_window(stacks: &[u32], window: usize, base: usize, offsets: &[u32]) -> [u32; PLANES] {
    let mut out = [[0; PLANES]; 2];
    count_pair(stacks, window, base, &[], [offsets, &[]], &mut out);
    let [planes, _] = out;
    planes
}

/// One round of a matrix transpose by delta swaps, over columns of `width` bits: in each block of
/// `2s` words, word `i`'s columns `j + s` trade places with word `i + s`'s columns `j` (`mask`
/// marks the columns `j` with `j & s == 0`).
#[inline(always)]
pub(super) fn swap_blocks(a: &mut [u32], s: usize, width: usize, mask: u32) {
    let shift = s * width;
    for block in a.chunks_exact_mut(2 * s) {
        let (lo, hi) = block.split_at_mut(s);
        for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
            let t = ((*x >> shift) ^ *y) & mask;
            *y ^= t;
            *x ^= t << shift;
        }
    }
}

/// Per-lane counts (lane order) from counter planes of counts below 256: the low 8 planes are
/// transposed as four 8x8 bit matrices at once, after which byte `q` of word `j` is lane `8q + j`;
/// two 4x4 byte transposes then put lane `4i + e` at byte `e` of word `i`.
pub(super) fn counts8(planes: &[u32; PLANES]) -> [u8; BITS] {
    let mut a: [u32; 8] = *planes.first_chunk().unwrap_or(&[0; 8]);
    swap_blocks(&mut a, 4, 1, 0x0F0F_0F0F);
    swap_blocks(&mut a, 2, 1, 0x3333_3333);
    swap_blocks(&mut a, 1, 1, 0x5555_5555);
    let (lo, hi) = a.split_at_mut(4);
    for half in [&mut *lo, &mut *hi] {
        swap_blocks(half, 2, 8, 0x0000_FFFF);
        swap_blocks(half, 1, 8, 0x00FF_00FF);
    }
    // Word 2q of the lanes is lo[q], word 2q + 1 is hi[q].
    let mut out = [0u8; BITS];
    for ((pair, &l), &h) in out.chunks_exact_mut(8).zip(lo.iter()).zip(hi.iter()) {
        let (pl, ph) = pair.split_at_mut(4);
        pl.copy_from_slice(&l.to_le_bytes());
        ph.copy_from_slice(&h.to_le_bytes());
    }
    out
}

/// Per-lane counts (lane order) from counter planes: two 16x16 bit matrices transposed at once,
/// after which half `h` of word `j` is lane `16h + j`.
pub(super) fn counts16(planes: &[u32; PLANES]) -> [u16; BITS] {
    let mut a = *planes;
    swap_blocks(&mut a, 8, 1, 0x00FF_00FF);
    swap_blocks(&mut a, 4, 1, 0x0F0F_0F0F);
    swap_blocks(&mut a, 2, 1, 0x3333_3333);
    swap_blocks(&mut a, 1, 1, 0x5555_5555);
    let mut out = [0u16; BITS];
    let (lo, hi) = out.split_at_mut(PLANES);
    for ((l, h), &w) in lo.iter_mut().zip(hi.iter_mut()).zip(&a) {
        (*l, *h) = (w as u16, (w >> 16) as u16);
    }
    out
}

/// Per-lane sums of the stack words at `offsets` after group base `base`, any number of them.
pub(super) fn lane_sums(stacks: &[u32], window: usize, base: usize, offsets: &[u32]) -> [u32; BITS] {
    let mut sums = [0u32; BITS];
    for part in offsets.chunks(MAX_COUNT) {
        let counts = counts16(&count_window(stacks, window, base, part));
        sums.iter_mut().zip(&counts).for_each(|(s, &c)| *s += u32::from(c));
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lane sums of random words at random offsets, through every window size's masked path and
    /// the checked one, against a per-lane loop: lists of 0-300 words (byte counts) and one of
    /// 70,000 (counted in parts, 16-bit transposes).
    #[test]
    fn lane_sums_match_a_per_lane_loop() {
        let mut next = crate::xorshift32(0x2545_F491);
        let stacks: std::vec::Vec<u32> = (0..2 * MAX_WINDOW).map(|_| next()).collect();
        let want = |base: usize, offsets: &[u32]| -> [u32; BITS] {
            core::array::from_fn(|j| offsets.iter().map(|&o| (stacks[base + o as usize] >> j) & 1).sum())
        };
        for n in (0..300).step_by(7).chain([70_000]) {
            for window in [16usize, 1024, MAX_WINDOW, 0] {
                let span = if window == 0 { MAX_WINDOW } else { window };
                let offsets: std::vec::Vec<u32> = (0..n).map(|_| next() % span as u32).collect();
                let base = next() as usize % 64;
                let got = lane_sums(&stacks, window, base, &offsets);
                assert_eq!(got, want(base, &offsets), "n {n}, window {window}");
                if n <= 255 {
                    let bytes = counts8(&count_window(&stacks, window, base, &offsets));
                    assert_eq!(bytes.map(u32::from), got, "bytes, n {n}, window {window}");
                }
            }
        }
    }

    /// Pair counts (a root list, then a fork, then one leaf list per filter) against a per-lane
    /// loop over the root and each leaf, through the masked and the checked loads: every length
    /// from 0 to 19 for each of the three lists (blocks, half blocks and the fork at every fill),
    /// and lists around and above two blocks, the output holding garbage before each call. Where a
    /// count may pass 255 every plane is checked (16-bit transposes), so a plane the count does
    /// not reach must be zero; otherwise planes 0-7, which is what the lane kernel reads.
    #[test]
    fn pair_counts_match_a_per_lane_loop() {
        let mut next = crate::xorshift32(0x0BAD_CAFE);
        let stacks: std::vec::Vec<u32> = (0..4096).map(|_| next()).collect();
        let mut out = [[next(); PLANES]; 2];
        let lengths = (0..20).chain([31, 32, 33, 100, 200]);
        let mut cases = 0;
        for n_root in lengths.clone() {
            for (n_a, n_b) in lengths.clone().flat_map(|a| lengths.clone().map(move |b| (a, b))) {
                let window = [1024, 0][cases % 2];
                let mut list = |n: usize| -> std::vec::Vec<u32> { (0..n).map(|_| next() % 1024).collect() };
                let (root, leaf_a, leaf_b) = (list(n_root), list(n_a), list(n_b));
                let base = next() as usize % 64;
                count_pair(&stacks, window, base, &root, [&leaf_a, &leaf_b], &mut out);
                let wide = n_root + n_a.max(n_b) > 255;
                for (planes, leaf) in out.iter().zip([&leaf_a, &leaf_b]) {
                    let want: [u32; BITS] = core::array::from_fn(|j| {
                        root.iter().chain(leaf).map(|&o| (stacks[base + o as usize] >> j) & 1).sum()
                    });
                    // All 16 planes where a count may pass 255, else the 8 that `counts8` reads.
                    let got = if wide { counts16(planes).map(u32::from) } else { counts8(planes).map(u32::from) };
                    assert_eq!(got, want, "root {n_root}, leaves {n_a} and {n_b}, window {window}");
                }
                cases += 1;
            }
        }
        std::println!("pair counts: {cases} list lengths, each == the per-lane loop");
    }
}
