//! An RGB raster with anti-aliased lines and discs, filled rectangles and bitmap text, saved
//! as PNG with the `png` crate.

use std::path::Path;

use super::font::{self, ADVANCE, GLYPH_H, GLYPH_W};
use super::{ReportError, Rgb};

/// Horizontal text anchor: `x` is the left edge, the centre or the right edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Center,
    Right,
}

/// `width x height` RGB pixels, row-major, origin top-left.
#[derive(Debug, Clone)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<Rgb>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: Rgb) -> Canvas {
        Canvas { width, height, pixels: vec![background; width * height] }
    }

    pub fn get(&self, x: usize, y: usize) -> Rgb {
        self.pixels[y * self.width + x]
    }

    /// Blends `color` over pixel (x, y) with opacity `alpha` in [0, 1]; outside is ignored.
    pub fn blend(&mut self, x: isize, y: isize, color: Rgb, alpha: f32) {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height || alpha <= 0.0 {
            return;
        }
        let a = alpha.min(1.0);
        let p = &mut self.pixels[y as usize * self.width + x as usize];
        for c in 0..3 {
            p[c] = (p[c] as f32 * (1.0 - a) + color[c] as f32 * a).round() as u8;
        }
    }

    /// Fills the rectangle `[x, x + w) x [y, y + h)`, clipped to the canvas.
    pub fn fill_rect(&mut self, x: isize, y: isize, w: usize, h: usize, color: Rgb) {
        let (x0, y0) = (x.max(0) as usize, y.max(0) as usize);
        let x1 = ((x + w as isize).max(0) as usize).min(self.width);
        let y1 = ((y + h as isize).max(0) as usize).min(self.height);
        for yy in y0..y1 {
            self.pixels[yy * self.width + x0.min(x1)..yy * self.width + x1].fill(color);
        }
    }

    /// A one-pixel rectangle outline.
    pub fn stroke_rect(&mut self, x: isize, y: isize, w: usize, h: usize, color: Rgb) {
        self.fill_rect(x, y, w, 1, color);
        self.fill_rect(x, y + h as isize - 1, w, 1, color);
        self.fill_rect(x, y, 1, h, color);
        self.fill_rect(x + w as isize - 1, y, 1, h, color);
    }

    /// An anti-aliased segment `width` pixels wide with round caps, coordinates in pixels
    /// (pixel centres at +0.5).
    pub fn line(&mut self, (x0, y0): (f32, f32), (x1, y1): (f32, f32), width: f32, color: Rgb) {
        let r = width / 2.0;
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = dx * dx + dy * dy;
        let bx0 = (x0.min(x1) - r - 1.0).floor().max(0.0) as isize;
        let by0 = (y0.min(y1) - r - 1.0).floor().max(0.0) as isize;
        let bx1 = ((x0.max(x1) + r + 1.0).ceil() as isize).min(self.width as isize - 1);
        let by1 = ((y0.max(y1) + r + 1.0).ceil() as isize).min(self.height as isize - 1);
        for py in by0..=by1 {
            for px in bx0..=bx1 {
                let (cx, cy) = (px as f32 + 0.5, py as f32 + 0.5);
                let t = if len2 > 0.0 { (((cx - x0) * dx + (cy - y0) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
                let (ex, ey) = (x0 + t * dx - cx, y0 + t * dy - cy);
                let d = (ex * ex + ey * ey).sqrt();
                self.blend(px, py, color, (r + 0.5 - d).clamp(0.0, 1.0));
            }
        }
    }

    /// A polyline through `points`, dashed with `dash` on / `gap` off pixels when given.
    pub fn polyline(&mut self, points: &[(f32, f32)], width: f32, color: Rgb, dash: Option<(f32, f32)>) {
        let Some((on, off)) = dash else {
            for seg in points.windows(2) {
                self.line(seg[0], seg[1], width, color);
            }
            return;
        };
        let mut phase = 0.0f32; // distance along the current on+off period
        for seg in points.windows(2) {
            let ((x0, y0), (x1, y1)) = (seg[0], seg[1]);
            let len = ((x1 - x0).powi(2) + (y1 - y0).powi(2)).sqrt();
            let mut s = 0.0;
            while s < len {
                let step = if phase < on { on - phase } else { on + off - phase }.min(len - s);
                if phase < on {
                    let (a, b) = (s / len, (s + step) / len);
                    let p = |t: f32| (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
                    self.line(p(a), p(b), width, color);
                }
                s += step;
                phase = (phase + step) % (on + off);
            }
        }
    }

    /// An anti-aliased filled disc.
    pub fn disc(&mut self, (cx, cy): (f32, f32), radius: f32, color: Rgb) {
        self.line((cx, cy), (cx, cy), 2.0 * radius, color);
    }

    /// Draws `text` with its top at `y`, anchored at `x` by `align`, each font pixel a
    /// `scale x scale` block.
    pub fn text(&mut self, x: isize, y: isize, text: &str, scale: usize, color: Rgb, align: Align) {
        let w = font::text_width(text, scale) as isize;
        let left = match align {
            Align::Left => x,
            Align::Center => x - w / 2,
            Align::Right => x - w,
        };
        for (i, ch) in text.chars().enumerate() {
            let gx = left + (i * ADVANCE * scale) as isize;
            for row in 0..GLYPH_H {
                for col in 0..GLYPH_W {
                    if font::is_set(ch, col, row) {
                        let py = y + ((row + font::drop(ch)) * scale) as isize;
                        let px = gx + (col * scale) as isize;
                        self.fill_rect(px, py, scale, scale, color);
                    }
                }
            }
        }
    }

    /// Draws `text` turned 90 degrees counter-clockwise (reading bottom to top), its left
    /// edge at `x`, centred vertically on `cy`.
    pub fn text_vertical(&mut self, x: isize, cy: isize, text: &str, scale: usize, color: Rgb) {
        let w = font::text_width(text, scale) as isize;
        let bottom = cy + w / 2;
        for (i, ch) in text.chars().enumerate() {
            let gy = bottom - (i * ADVANCE * scale) as isize;
            for row in 0..GLYPH_H {
                for col in 0..GLYPH_W {
                    if font::is_set(ch, col, row) {
                        let px = x + ((row + font::drop(ch)) * scale) as isize;
                        let py = gy - ((col + 1) * scale) as isize;
                        self.fill_rect(px, py, scale, scale, color);
                    }
                }
            }
        }
    }

    /// Writes the canvas as an 8-bit RGB PNG.
    pub fn save_png(&self, path: &Path) -> Result<(), ReportError> {
        let io = |source| ReportError::Io { path: path.to_path_buf(), source };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), self.width as u32, self.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let png_err = |e: png::EncodingError| ReportError::Png { path: path.to_path_buf(), problem: e.to_string() };
        let mut writer = enc.write_header().map_err(png_err)?;
        let data: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        writer.write_image_data(&data).map_err(png_err)?;
        writer.finish().map_err(png_err)
    }
}

/// Reads an 8-bit RGB or RGBA PNG back as `(width, height, pixels)` (for tests and tools).
pub fn read_png(path: &Path) -> Result<(usize, usize, Vec<Rgb>), ReportError> {
    let err = |problem: String| ReportError::Png { path: path.to_path_buf(), problem };
    let file = std::fs::File::open(path).map_err(|source| ReportError::Io { path: path.to_path_buf(), source })?;
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().map_err(|e| err(e.to_string()))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| err(e.to_string()))?;
    let channels = match (info.color_type, info.bit_depth) {
        (png::ColorType::Rgb, png::BitDepth::Eight) => 3,
        (png::ColorType::Rgba, png::BitDepth::Eight) => 4,
        other => return Err(err(format!("unsupported pixel format {other:?}"))),
    };
    let pixels = buf[..info.buffer_size()].chunks_exact(channels).map(|p| [p[0], p[1], p[2]]).collect();
    Ok((info.width as usize, info.height as usize, pixels))
}
