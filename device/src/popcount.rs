//! Popcount of `a XOR b` over packed words: the inner loop of every binary conv.
//!
//! Harley-Seal carry-save adders reduce each block of 8 words to one word of "eights", so the
//! expensive horizontal popcount runs once per 8 words instead of once per word. The flush folds
//! ones/twos/fours into per-byte counts before a single multiply-sum (no popcount instruction on
//! a Cortex-M4).

/// Carry-save adder over 32 bit lanes: returns (carry, sum) of a + b + c per lane.
#[inline(always)]
fn csa(a: u32, b: u32, c: u32) -> (u32, u32) {
    let u = a ^ b;
    (((a ^ c) & u) ^ a, u ^ c)
}

/// Per-byte bit counts of `v` (each byte 0..=8), before the horizontal sum.
#[inline(always)]
fn byte_counts(v: u32) -> u32 {
    let v = v - ((v >> 1) & 0x5555_5555);
    let v = (v & 0x3333_3333) + ((v >> 2) & 0x3333_3333);
    (v + (v >> 4)) & 0x0F0F_0F0F
}

/// Sum of the four bytes of `v` (each byte must be < 256 / 4 safe by the caller's bounds).
#[inline(always)]
fn sum_bytes(v: u32) -> u32 {
    v.wrapping_mul(0x0101_0101) >> 24
}

/// `sum_i popcount(a[i] ^ b[i])` over the common length of `a` and `b`.
///
/// Where the target has a popcount instruction (x86-64 built with `-C target-cpu=native` or
/// `+popcnt`, AArch64), one instruction per two words beats the carry-save tree; elsewhere
/// (Cortex-M4) the Harley-Seal tree is used.
#[inline]
pub fn xor_popcount(a: &[u32], b: &[u32]) -> u32 {
    if cfg!(any(target_feature = "popcnt", target_arch = "aarch64")) {
        xor_popcount_plain(a, b)
    } else {
        xor_popcount_harley_seal(a, b)
    }
}

/// Harley-Seal carry-save popcount of `a ^ b` (the Cortex-M4 path; see the module docs).
#[inline]
pub fn xor_popcount_harley_seal(a: &[u32], b: &[u32]) -> u32 {
    let mut blocks_a = a.chunks_exact(8);
    let mut blocks_b = b.chunks_exact(8);
    let (mut ones, mut twos, mut fours) = (0u32, 0u32, 0u32);
    let mut eights_total = 0u32;
    for (x, y) in (&mut blocks_a).zip(&mut blocks_b) {
        if let (&[x0, x1, x2, x3, x4, x5, x6, x7], &[y0, y1, y2, y3, y4, y5, y6, y7]) = (x, y) {
            let (twos_a, o) = csa(ones, x0 ^ y0, x1 ^ y1);
            let (twos_b, o) = csa(o, x2 ^ y2, x3 ^ y3);
            let (fours_a, t) = csa(twos, twos_a, twos_b);
            let (twos_a, o) = csa(o, x4 ^ y4, x5 ^ y5);
            let (twos_b, o) = csa(o, x6 ^ y6, x7 ^ y7);
            let (fours_b, t) = csa(t, twos_a, twos_b);
            let (eights, f) = csa(fours, fours_a, fours_b);
            ones = o;
            twos = t;
            fours = f;
            eights_total += sum_bytes(byte_counts(eights));
        }
    }
    // Remainder words (fewer than 8) go through the carry-save chain one pair at a time.
    let mut rest = blocks_a.remainder().iter().zip(blocks_b.remainder()).map(|(x, y)| x ^ y);
    let mut rest_total = 0u32;
    while let Some(v0) = rest.next() {
        match rest.next() {
            Some(v1) => {
                let (carry, o) = csa(ones, v0, v1);
                ones = o;
                let (carry4, t) = (twos & carry, twos ^ carry);
                twos = t;
                rest_total += 4 * sum_bytes(byte_counts(carry4));
            }
            None => rest_total += sum_bytes(byte_counts(v0)),
        }
    }
    // Each byte of the weighted sum is at most 4*8 + 2*8 + 8 = 56: no carry between bytes.
    let weighted = (byte_counts(fours) << 2) + (byte_counts(twos) << 1) + byte_counts(ones);
    8 * eights_total + sum_bytes(weighted) + rest_total
}

/// Plain popcount, one instruction per pair of words where the target has one: the twin the
/// Harley-Seal tree is tested against.
#[inline]
pub fn xor_popcount_plain(a: &[u32], b: &[u32]) -> u32 {
    // Adjacent words joined into u64s (the compiler loads each pair at once): one popcnt per 64
    // bits instead of per 32.
    let (mut pa, mut pb) = (a.chunks_exact(2), b.chunks_exact(2));
    let joined = |p: &[u32]| p.iter().rev().fold(0u64, |acc, &w| (acc << 32) | u64::from(w));
    let pairs: u32 = (&mut pa).zip(&mut pb).map(|(x, y)| (joined(x) ^ joined(y)).count_ones()).sum();
    let rest: u32 = pa.remainder().iter().zip(pb.remainder()).map(|(x, y)| (x ^ y).count_ones()).sum();
    pairs + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harley_seal_matches_plain_popcount_for_every_length() {
        let mut seed = 0x1234_5678u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for n in 0..70 {
            for _ in 0..20 {
                let a: std::vec::Vec<u32> = (0..n).map(|_| next()).collect();
                let b: std::vec::Vec<u32> = (0..n).map(|_| next()).collect();
                assert_eq!(xor_popcount_harley_seal(&a, &b), xor_popcount_plain(&a, &b), "n = {n}");
                assert_eq!(xor_popcount(&a, &b), xor_popcount_plain(&a, &b));
            }
            let ones = std::vec![u32::MAX; n];
            assert_eq!(xor_popcount_harley_seal(&ones, &std::vec![0; n]), 32 * n as u32);
        }
    }
}
