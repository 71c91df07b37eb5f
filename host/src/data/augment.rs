//! Per-channel normalization and the standard light augmentation (random crop with zero
//! padding, horizontal flip) on u8 images.

use serde::{Deserialize, Serialize};

use super::Dataset;
use crate::rng::Rng;

/// Per-channel mean and standard deviation of pixel values scaled to [0, 1]; a network sees
/// `(byte / 255 - mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// Statistics of every pixel of `dataset` (pass the train split), accumulated in f64.
    /// A constant channel gets std 1 so that normalizing never divides by zero.
    pub fn of(dataset: &Dataset) -> Normalization {
        let (c, hw) = (dataset.c, dataset.h * dataset.w);
        // Byte histograms per channel: exact sums without rounding, one pass over the bytes.
        let mut hist = vec![[0u64; 256]; c];
        for image in dataset.images.chunks_exact(c * hw) {
            for (ch, plane) in image.chunks_exact(hw).enumerate() {
                for &b in plane {
                    hist[ch][b as usize] += 1;
                }
            }
        }
        let mut mean = Vec::with_capacity(c);
        let mut std = Vec::with_capacity(c);
        for h in &hist {
            let n: u64 = h.iter().sum();
            let (s1, s2) = h.iter().enumerate().fold((0f64, 0f64), |(s1, s2), (v, &k)| {
                let x = v as f64 / 255.0;
                (s1 + x * k as f64, s2 + x * x * k as f64)
            });
            let m = if n == 0 { 0.0 } else { s1 / n as f64 };
            let var = if n == 0 { 0.0 } else { (s2 / n as f64 - m * m).max(0.0) };
            let sd = var.sqrt();
            mean.push(m as f32);
            std.push(if sd > 1e-8 { sd as f32 } else { 1.0 });
        }
        Normalization { mean, std }
    }

    /// Mean 0, std 1 after scaling bytes to [0, 1], for `c` channels.
    pub fn identity(c: usize) -> Normalization {
        Normalization { mean: vec![0.0; c], std: vec![1.0; c] }
    }

    /// A 256-entry lookup table per channel, `[C][256]`, byte -> normalized f32.
    pub fn table(&self) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&m, &s)| {
                let mut t = [0f32; 256];
                for (b, v) in t.iter_mut().enumerate() {
                    *v = (b as f32 / 255.0 - m) / s;
                }
                t
            })
            .collect()
    }

    /// Normalizes one `[C, H, W]` byte image into `out` (same length).
    pub fn apply(&self, image: &[u8], out: &mut [f32]) {
        normalize_with(&self.table(), image, out)
    }
}

/// Normalizes a `[C, H, W]` image with a table from [`Normalization::table`].
pub(crate) fn normalize_with(table: &[[f32; 256]], image: &[u8], out: &mut [f32]) {
    let hw = image.len() / table.len();
    for (c, t) in table.iter().enumerate() {
        let range = c * hw..(c + 1) * hw;
        for (o, &b) in out[range.clone()].iter_mut().zip(&image[range]) {
            *o = t[b as usize];
        }
    }
}

/// Random crop with zero padding and random horizontal flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    /// Zero padding on each side before cropping back to H x W, pixels.
    pub pad: usize,
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
}

impl Augment {
    /// The usual settings for an image size: pad 2 for 28x28, 4 for 32x32 (h / 8 otherwise).
    pub fn for_size(h: usize, w: usize) -> Augment {
        let side = h.min(w);
        let pad = match side {
            28 => 2,
            32 => 4,
            _ => side / 8,
        };
        Augment { pad, flip: true }
    }

    /// Writes an augmented copy of the `[C, H, W]` image `src` into `dst` (same shape).
    pub fn apply(&self, src: &[u8], c: usize, h: usize, w: usize, rng: &mut Rng, dst: &mut [u8]) {
        let pad = self.pad as isize;
        let dy = rng.below(2 * self.pad + 1) as isize - pad;
        let dx = rng.below(2 * self.pad + 1) as isize - pad;
        let flip = self.flip && rng.below(2) == 1;
        crop_flip(src, c, h, w, dy, dx, flip, dst);
    }
}

/// `dst[c][y][x] = src[c][y + dy][x' + dx]` with `x' = w-1-x` when flipped, 0 outside.
#[allow(clippy::too_many_arguments)]
fn crop_flip(src: &[u8], c: usize, h: usize, w: usize, dy: isize, dx: isize, flip: bool, dst: &mut [u8]) {
    let hw = h * w;
    for ch in 0..c {
        let (s, d) = (&src[ch * hw..(ch + 1) * hw], &mut dst[ch * hw..(ch + 1) * hw]);
        for y in 0..h {
            let sy = y as isize + dy;
            let row = &mut d[y * w..(y + 1) * w];
            if sy < 0 || sy >= h as isize {
                row.fill(0);
                continue;
            }
            let srow = &s[sy as usize * w..(sy as usize + 1) * w];
            for (x, out) in row.iter_mut().enumerate() {
                let xs = if flip { w - 1 - x } else { x };
                let sx = xs as isize + dx;
                *out = if sx < 0 || sx >= w as isize { 0 } else { srow[sx as usize] };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_flip_shifts_and_mirrors() {
        // 1 channel, 2x3: [1 2 3; 4 5 6].
        let src = [1, 2, 3, 4, 5, 6];
        let mut dst = [0u8; 6];
        crop_flip(&src, 1, 2, 3, 0, 0, true, &mut dst);
        assert_eq!(dst, [3, 2, 1, 6, 5, 4]);
        crop_flip(&src, 1, 2, 3, 1, 0, false, &mut dst);
        assert_eq!(dst, [4, 5, 6, 0, 0, 0]);
        crop_flip(&src, 1, 2, 3, 0, -1, false, &mut dst);
        assert_eq!(dst, [0, 1, 2, 0, 4, 5]);
    }
}
