//! The binary conv's weight side, shared by both XNOR kernels ([`super::xnor`] and
//! [`super::xnor_flat`]): each filter's signs as a dense bit row (tap major, channel minor) with
//! its count of +1 weights per tap, and per output position the base `s = base - 2 * popcount`
//! counts from, which adds back the filter's 1 bits at the taps in the padding.

use rayon::prelude::*;

use super::xnor::{has_avx512, FILTERS};
use crate::engine::geom::ConvGeom;

/// The filters as dense bit rows, `[c_out rounded up to FILTERS, kw]` (extra rows 0), and each
/// filter's count of +1 weights per tap, `[c_out, k*k]`. One filter per task, packed by
/// [`pack_filter_avx512`] where the CPU has AVX-512, else by [`pack_filter`]. Runs in the pool.
pub(super) fn pack_weights(w: &[f32], g: &ConvGeom, kw: usize) -> (Vec<u64>, Vec<u32>) {
    let kk = g.k * g.k;
    let mut bits = vec![0u64; g.c_out.next_multiple_of(FILTERS) * kw];
    let mut ones = vec![0u32; g.c_out * kk];
    let pack = pick_pack_filter();
    bits.par_chunks_mut(kw)
        .zip(ones.par_chunks_mut(kk))
        .zip(w.par_chunks(g.c_in * kk))
        .for_each(|((row, ones), filter)| pack(filter, g, row, ones));
    (bits, ones)
}

/// Packs one filter `[c_in, k, k]` into its dense bit row (tap major, channel minor; `row` zero
/// on entry) and its count of +1 weights per tap.
type PackFilter = fn(&[f32], &ConvGeom, &mut [u64], &mut [u32]);

/// [`PackFilter`], portably: bit `t * c_in + c` set where weight `(c, t)` is positive.
fn pack_filter(filter: &[f32], g: &ConvGeom, row: &mut [u64], ones: &mut [u32]) {
    let kk = g.k * g.k;
    for (t, one) in ones.iter_mut().enumerate() {
        for (c, &v) in filter[t..].iter().step_by(kk).enumerate() {
            let at = t * g.c_in + c;
            row[at / 64] |= u64::from(v > 0.0) << (at % 64);
            *one += u32::from(v > 0.0);
        }
    }
}

/// [`pack_filter`] in AVX-512: per tap, 16 channels' weights in one gather (`kk` floats apart),
/// their signs one compare, and the 16 bits OR-ed into the row at once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn pack_filter_avx512(filter: &[f32], g: &ConvGeom, row: &mut [u64], ones: &mut [u32]) {
    use std::arch::x86_64::*;
    let kk = g.k * g.k;
    let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let apart = _mm512_mullo_epi32(iota, _mm512_set1_epi32(kk as i32));
    let zero = _mm512_setzero_ps();
    for c0 in (0..g.c_in).step_by(16) {
        let n = (g.c_in - c0).min(16);
        let lanes = (u32::MAX >> (32 - n)) as u16;
        let chunk = &filter[c0 * kk..][..n * kk];
        for (t, one) in ones.iter_mut().enumerate() {
            let at = _mm512_add_epi32(apart, _mm512_set1_epi32(t as i32));
            // SAFETY: lane c (c < n) reads float c * kk + t < n * kk of `chunk`; the other lanes
            // are masked off and read nothing.
            let v = unsafe { _mm512_mask_i32gather_ps::<4>(zero, lanes, at, chunk.as_ptr().cast()) };
            let signs = u64::from(_mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(lanes, v, zero));
            let bit = t * g.c_in + c0;
            row[bit / 64] |= signs << (bit % 64);
            if bit % 64 + n > 64 {
                row[bit / 64 + 1] |= signs >> (64 - bit % 64);
            }
            *one += signs.count_ones();
        }
    }
}

/// The [`PackFilter`] this CPU runs best.
fn pick_pack_filter() -> PackFilter {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the CPU has AVX-512 F (checked just above).
            return |f, g, r, o| unsafe { pack_filter_avx512(f, g, r, o) };
        }
    }
    pack_filter
}

/// Per filter and output position, `K_valid + 2 * (ones of w at the padded taps)`, so that
/// `s = base - 2 * popcount` (`wones` from [`pack_weights`]): `[c_out, row]`, output `(oy, ox)`
/// of a filter at `oy * pitch + ox` of its row (positions that are no output hold the full
/// `k k c_in`), each as `cast` makes it. Each filter's value is worked out once per distinct set
/// of padded taps, then written at the positions that have it.
pub(super) fn bases<T: Copy + Send>(
    g: &ConvGeom,
    wones: &[u32],
    row: usize,
    pitch: usize,
    cast: impl Fn(i32) -> T + Sync,
) -> Vec<T> {
    let kk = g.k * g.k;
    let full = (kk * g.c_in) as i32;
    let mut base = vec![cast(full); g.c_out * row];
    let (masks, padded) = padded_taps(g);
    base.par_chunks_mut(row).zip(wones.par_chunks(kk)).for_each(|(base, wones)| {
        let values: Vec<T> = masks
            .iter()
            .map(|&mask| {
                let (mut m, mut ones) = (mask, 0);
                while m != 0 {
                    ones += wones[m.trailing_zeros() as usize];
                    m &= m - 1;
                }
                cast(full - (mask.count_ones() as usize * g.c_in) as i32 + 2 * ones as i32)
            })
            .collect();
        for &(oy, ox, class) in &padded {
            base[oy * pitch + ox] = values[class];
        }
    });
    base
}

/// The distinct non-empty masks of taps that fall in the padding, and each output position
/// that has one (`oy`, `ox`), with its mask's index. A tap is padded when its row or its column
/// is, so each position's mask is its row's padded tap rows OR its column's padded tap columns.
fn padded_taps(g: &ConvGeom) -> (Vec<u64>, Vec<(usize, usize, usize)>) {
    let outside =
        |o: usize, tap: usize, len: usize| (o * g.stride + tap * g.dil).checked_sub(g.pad).is_none_or(|i| i >= len);
    // Every tap of kernel row 0, and every kernel row's tap of column 0.
    let (row0, col0) = ((1u64 << g.k) - 1, (0..g.k).fold(0u64, |m, ky| m | 1 << (ky * g.k)));
    let mask = |o: usize, len: usize, unit: u64, step: usize| {
        (0..g.k).filter(|&t| outside(o, t, len)).fold(0, |m, t| m | unit << (t * step))
    };
    let cols: Vec<u64> = (0..g.out_w()).map(|ox| mask(ox, g.w, col0, 1)).collect();
    let (mut masks, mut padded) = (Vec::new(), Vec::new());
    for oy in 0..g.out_h() {
        let row = mask(oy, g.h, row0, g.k);
        for (ox, &col) in cols.iter().enumerate().filter(|&(_, &col)| row | col != 0) {
            let m = row | col;
            let class = masks.iter().position(|&seen| seen == m).unwrap_or(masks.len());
            if class == masks.len() {
                masks.push(m);
            }
            padded.push((oy, ox, class));
        }
    }
    (masks, padded)
}

#[cfg(test)]
mod tests {
    use super::super::tests_fwd::conv as geom;
    use super::*;
    use crate::rng::Rng;

    /// The AVX-512 weight packing against the portable one, bit for bit, over channel counts
    /// either side of a gather (16) and a word (64), every kernel size the search uses, and
    /// weights that are +-0, tiny and NaN as well as random.
    #[test]
    fn pack_filter_avx512_equals_portable() {
        #[cfg(target_arch = "x86_64")]
        {
            if !has_avx512() {
                println!("no AVX-512 on this CPU: only the portable packing runs here");
                return;
            }
            let mut rng = Rng::new(3);
            let mut filters = 0;
            for c_in in [1, 3, 15, 16, 17, 31, 32, 63, 64, 65, 100, 130] {
                for k in [1, 3, 5, 7] {
                    let g = geom(1, c_in, 8, 8, 4, k, 1, k / 2, 1);
                    let (kk, kw) = (k * k, (k * k * c_in).div_ceil(64));
                    let specials = [0.0, -0.0, 1e-30, -1e-30, f32::NAN];
                    let w: Vec<f32> = (0..g.c_in * kk)
                        .map(|_| match rng.below(8) {
                            0 => specials[rng.below(specials.len())],
                            _ => rng.normal(),
                        })
                        .collect();
                    let (mut row, mut ones) = (vec![0u64; kw], vec![0u32; kk]);
                    pack_filter(&w, &g, &mut row, &mut ones);
                    let (mut row2, mut ones2) = (vec![0u64; kw], vec![0u32; kk]);
                    // SAFETY: this CPU has AVX-512 F (checked above).
                    unsafe { pack_filter_avx512(&w, &g, &mut row2, &mut ones2) };
                    assert_eq!((row, ones), (row2, ones2), "c_in {c_in}, {k}x{k}");
                    filters += 1;
                }
            }
            println!("{filters} filters packed alike by AVX-512 and portably");
        }
    }
}
