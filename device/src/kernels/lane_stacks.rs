//! The bit-lane conv's input (the layouts are in the module docs of
//! [`bin_conv_lanes`](mod@super::bin_conv_lanes)): the phase rows [`binarize_rows`] packs from
//! a float input, and the stacks [`build_stacks`] builds from them, one word per channel, kernel
//! column and start row, whose lanes are the input bits under each output pixel of a lane group.

use super::bin_conv_lanes::Lanes;
use super::{Packer, Shape};
use crate::format::BITS;
use crate::model::ConvGeom;

/// Words of one phase row: `ceil(ceil(w_in / stride) / 32)`.
fn phase_words(w_in: usize, stride: usize) -> usize {
    w_in.div_ceil(stride.max(1)).div_ceil(BITS)
}

/// Words of the phase rows [`binarize_rows`] writes.
pub fn phase_row_words(c_in: usize, h_in: usize, w_in: usize, stride: usize) -> usize {
    c_in.saturating_mul(h_in).saturating_mul(stride.max(1)).saturating_mul(phase_words(w_in, stride))
}

/// Writes `bit = x[c, iy, ix] * flip[c] >= threshold[c]` into phase rows `[c, iy, stride, pw]`:
/// column `ix` at phase `ix % stride`, bit `ix / stride` (LSB first; bits past the row are 0).
pub fn binarize_rows(x: &[f32], xs: Shape, stride: usize, flip: &[f32], threshold: &[f32], rows: &mut [u32]) {
    let (s, pw) = (stride.max(1), phase_words(xs.w, stride));
    if xs.w == 0 || pw == 0 {
        return;
    }
    let planes = x.chunks_exact(xs.hw().max(1)).zip(flip.iter().zip(threshold));
    for ((plane, (&f, &t)), dst_c) in planes.zip(rows.chunks_exact_mut(xs.h * s * pw)) {
        let th = super::Threshold::opaque(f, t);
        super::with_threshold!(th, |step| pack_plane(plane, xs.w, s, pw, dst_c, Packer(step)));
    }
}

/// Packs the bits of every row of one channel plane (`w` columns) into its phase rows (`stride`
/// of `pw` words each per row).
#[inline(always)]
fn pack_plane(plane: &[f32], w: usize, stride: usize, pw: usize, dst: &mut [u32], p: Packer<impl Fn(u32, f32) -> u32>) {
    let lines = plane.chunks_exact(w.max(1));
    if stride == 1 && w <= BITS {
        // One word per row.
        for (line, word) in lines.zip(dst.iter_mut()) {
            *word = p.word(line.iter());
        }
        return;
    }
    if stride == 2 && w <= BITS {
        // One word per phase row: the row packed as at stride 1, then split into its even and odd
        // bits.
        for (line, dst) in lines.zip(dst.chunks_exact_mut(2)) {
            let v = p.word(line.iter());
            if let [even, odd] = dst {
                (*even, *odd) = (even_bits(v), even_bits(v >> 1));
            }
        }
        return;
    }
    for (line, dst) in lines.zip(dst.chunks_exact_mut((stride * pw).max(1))) {
        pack_phases(line, stride, dst, &p);
    }
}

/// Packs the bits of one input row into its `stride` phase rows (`dst`, `stride * pw` words).
#[inline(always)]
fn pack_phases(line: &[f32], stride: usize, dst: &mut [u32], p: &Packer<impl Fn(u32, f32) -> u32>) {
    if stride == 1 {
        for (word, px) in dst.iter_mut().zip(line.chunks(BITS)) {
            *word = p.word(px.iter());
        }
        return;
    }
    let pw = dst.len() / stride.max(1);
    if stride == 2 {
        // 64 pixels at a time: pack them like a stride-1 row, then even bits to phase 0, odd
        // bits to phase 1.
        let (even, odd) = dst.split_at_mut(pw);
        for ((e, o), px) in even.iter_mut().zip(odd.iter_mut()).zip(line.chunks(2 * BITS)) {
            let (lo, hi) = px.split_at(px.len().min(BITS));
            let (lo, hi) = (p.word(lo.iter()), p.word(hi.iter()));
            *e = even_bits(lo) | even_bits(hi) << 16;
            *o = even_bits(lo >> 1) | even_bits(hi >> 1) << 16;
        }
        return;
    }
    for (ph, dst) in dst.chunks_exact_mut(pw.max(1)).enumerate() {
        for (j, word) in dst.iter_mut().enumerate() {
            let px = line.get(ph + j * BITS * stride..).unwrap_or(&[]);
            *word = p.word(px.iter().step_by(stride).take(BITS));
        }
    }
}

/// The even bits of `x` (0, 2, ..., 30) packed into the low 16 bits.
#[inline(always)]
fn even_bits(x: u32) -> u32 {
    let x = x & 0x5555_5555;
    let x = (x | (x >> 1)) & 0x3333_3333;
    let x = (x | (x >> 2)) & 0x0F0F_0F0F;
    let x = (x | (x >> 4)) & 0x00FF_00FF;
    (x | (x >> 8)) & 0x0000_FFFF
}

/// Bits `start..start + n` of a bit row (`n <= 32`); bits outside the row are 0.
#[inline]
fn row_bits(row: &[u32], start: isize, n: usize) -> u32 {
    let v = if start >= 0 {
        let (w, b) = (start as usize / BITS, start as usize % BITS);
        let lo = row.get(w).copied().unwrap_or(0) >> b;
        let hi = if b == 0 { 0 } else { row.get(w + 1).copied().unwrap_or(0) << (BITS - b) };
        lo | hi
    } else {
        row.first().copied().unwrap_or(0).checked_shl((-start) as u32).unwrap_or(0)
    };
    v & (u32::MAX >> (BITS - n.clamp(1, BITS)))
}

/// Fills the stacks (see the module docs of [`bin_conv_lanes`](mod@super::bin_conv_lanes)): for
/// each segment, channel and tap column, the lane row of every input row (`strips`, `h_in`
/// words), then `rows` of them per stack word.
pub(super) fn build_stacks(rows: &[u32], xs: Shape, g: ConvGeom, l: Lanes, strips: &mut [u32], stacks: &mut [u32]) {
    let (s, pw) = (g.stride.max(1), phase_words(xs.w, g.stride));
    let lane_mask = u32::MAX >> (BITS - l.seg_w.clamp(1, BITS));
    let mut blocks = stacks.chunks_exact_mut(l.t_rows);
    for seg in 0..l.n_seg {
        for rows_c in rows.chunks_exact(xs.h * s * pw).take(xs.c) {
            for kx in 0..g.k {
                let Some(block) = blocks.next() else { return };
                let off = (kx * g.dil) as isize - g.pad as isize;
                let (ph, q) = (off.rem_euclid(s as isize) as usize, off.div_euclid(s as isize));
                let start = (seg * l.seg_w) as isize + q;
                if pw == 1 {
                    // One word per row (up to 32 columns per phase): a shift right by `start` (left
                    // where it is negative), as two shifts that cannot overflow and a mask that is 0
                    // when every bit would be shifted out.
                    let (rsh, lsh) = (start.clamp(0, 31) as u32, (-start).clamp(0, 31) as u32);
                    let mask = if start.unsigned_abs() < BITS { lane_mask } else { 0 };
                    if l.rows == 1 {
                        // One row per group: stack word t is input row t - pad, written directly.
                        lane_rows(block, g.pad, rows_c, ph, s, [rsh, lsh, mask]);
                        continue;
                    }
                    lane_rows(strips, 0, rows_c, ph, s, [rsh, lsh, mask]);
                } else {
                    for (strip, row) in strips.iter_mut().zip(rows_c.chunks_exact(s * pw)) {
                        *strip = row_bits(row.get(ph * pw..(ph + 1) * pw).unwrap_or(&[]), start, l.seg_w);
                    }
                }
                if l.rows == 1 {
                    for (t, word) in block.iter_mut().enumerate() {
                        *word = strip_at(strips, t, g.pad);
                    }
                    continue;
                }
                if s == 1 {
                    stack_rows(block, strips, g.pad, l.rows, l.seg_w);
                    continue;
                }
                // Word t holds rows t - pad + r*s (r < rows), row r at bit r*seg_w: walking t by s,
                // each word is the last one shifted down a row with one new row on top.
                let top = (l.rows - 1) * l.seg_w;
                for t0 in 0..s.min(block.len()) {
                    let mut w = 0u32;
                    for r in 0..l.rows - 1 {
                        w |= strip_at(strips, t0 + r * s, g.pad) << ((r + 1) * l.seg_w);
                    }
                    // The row entering word t0 + j*s is strip t0 + (j + rows - 1)*s.
                    let mut t = t0 + (l.rows - 1) * s;
                    for word in block.iter_mut().skip(t0).step_by(s) {
                        w = (w >> l.seg_w) | strip_at(strips, t, g.pad) << top;
                        *word = w;
                        t += s;
                    }
                }
            }
        }
    }
}

/// The stack words of one channel and tap column at stride 1 from its lane rows `strips` (one per
/// input row): word `t` holds rows `t - pad + r` (`r < rows`, 0 outside the image), row `r` at
/// bit `r * seg_w`, each word the last one shifted down a row with one new row on top. The words
/// whose new row lies above the image, inside it and below it go in three loops, so the middle
/// one reads the rows without a check per word.
fn stack_rows(block: &mut [u32], strips: &[u32], pad: usize, rows: usize, seg_w: usize) {
    let top = (rows - 1) * seg_w;
    let mut w = 0u32;
    for r in 0..rows - 1 {
        w |= strip_at(strips, r, pad) << ((r + 1) * seg_w);
    }
    // Word j's new row is input row j + d.
    let (n, d) = (block.len() as isize, (rows - 1) as isize - pad as isize);
    let j1 = (-d).clamp(0, n);
    let j2 = (strips.len() as isize - d).clamp(j1, n);
    let (above, rest) = block.split_at_mut(j1 as usize);
    let (inside, below) = rest.split_at_mut((j2 - j1) as usize);
    // Above the image every row of the word is 0 (so is `w`: with j1 > 0, rows - 1 < pad).
    above.iter_mut().for_each(|word| *word = 0);
    for (word, &x) in inside.iter_mut().zip(strips.get((j1 + d) as usize..).unwrap_or(&[])) {
        w = (w >> seg_w) | x << top;
        *word = w;
    }
    for word in below {
        w >>= seg_w;
        *word = w;
    }
}

/// Writes one channel's lane rows: word `t` of `block` is phase `ph` of input row `t - pad` (of
/// `stride` phases per row in `rows_c`) shifted right by `rsh`, left by `lsh` and masked; 0
/// outside the image. That is the whole stack of one-row groups, or with `pad` 0 the strips a
/// multi-row stack is built from. Out of line, so that its loop keeps the shifts and the mask in
/// registers.
#[inline(never)]
fn lane_rows(block: &mut [u32], pad: usize, rows_c: &[u32], ph: usize, stride: usize, [rsh, lsh, mask]: [u32; 3]) {
    let (lead, body) = block.split_at_mut(pad.min(block.len()));
    lead.fill(0);
    let mut words = body.iter_mut();
    let lane = |row: u32| ((row >> rsh) << lsh) & mask;
    if stride == 1 {
        (&mut words).zip(rows_c).for_each(|(w, &row)| *w = lane(row));
    } else {
        let rows = rows_c.chunks_exact(stride.max(1)).map(|r| r.get(ph).copied().unwrap_or(0));
        (&mut words).zip(rows).for_each(|(w, row)| *w = lane(row));
    }
    words.for_each(|w| *w = 0);
}

/// The lane row of input row `t - pad` (0 outside the image: rows above it wrap to an index past
/// any slice).
#[inline(always)]
fn strip_at(strips: &[u32], t: usize, pad: usize) -> u32 {
    strips.get(t.wrapping_sub(pad)).copied().unwrap_or(0)
}
