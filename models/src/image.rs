//! Plain-Rust image types and the pre-processing the face-api networks expect.
//!
//! Input: interleaved 8-bit RGB pixels ([`RgbImage`] / [`RgbRef`]).
//! Output: padded, resized copies and candle input tensors.
//! No failure modes beyond shape checks; everything here is pure arithmetic.
//!
//! The resize follows `tf.image.resizeBilinear(alignCorners = false,
//! halfPixelCenters = false)`, which face-api uses: the source coordinate is
//! `dst · in/out`, its floor is clamped at `in − 1`.

/// A point in image pixels (x to the right, y down).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }
}

/// An axis-aligned rectangle in image pixels: top-left corner and size.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl Rect {
    pub fn right(&self) -> f32 {
        self.x + self.width
    }

    pub fn bottom(&self) -> f32 {
        self.y + self.height
    }

    pub fn area(&self) -> f32 {
        self.width.max(0.0) * self.height.max(0.0)
    }

    /// Intersection over union; 0 when either rectangle is empty.
    pub fn iou(&self, other: &Rect) -> f32 {
        let w = self.right().min(other.right()) - self.x.max(other.x);
        let h = self.bottom().min(other.bottom()) - self.y.max(other.y);
        if w <= 0.0 || h <= 0.0 {
            return 0.0;
        }
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

/// An owned interleaved RGB image.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    /// `height · width · 3` bytes, row-major, R G B.
    pub data: Vec<u8>,
}

/// A borrowed interleaved RGB image.
#[derive(Debug, Clone, Copy)]
pub struct RgbRef<'a> {
    pub width: usize,
    pub height: usize,
    pub data: &'a [u8],
}

impl RgbImage {
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Self {
        assert_eq!(data.len(), width * height * 3, "RGB buffer size");
        Self {
            width,
            height,
            data,
        }
    }

    pub fn zeros(width: usize, height: usize) -> Self {
        Self::new(width, height, vec![0; width * height * 3])
    }

    pub fn as_ref(&self) -> RgbRef<'_> {
        RgbRef {
            width: self.width,
            height: self.height,
            data: &self.data,
        }
    }
}

impl<'a> RgbRef<'a> {
    pub fn new(width: usize, height: usize, data: &'a [u8]) -> Self {
        assert_eq!(data.len(), width * height * 3, "RGB buffer size");
        Self {
            width,
            height,
            data,
        }
    }

    /// The pixel at (x, y) as `[r, g, b]`.
    #[inline]
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Copies the pixels inside `[x0, x1) × [y0, y1)` (clipped to the image).
    pub fn crop(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> RgbImage {
        let (x1, y1) = (x1.min(self.width), y1.min(self.height));
        let (x0, y0) = (x0.min(x1), y0.min(y1));
        let (w, h) = (x1 - x0, y1 - y0);
        let mut data = Vec::with_capacity(w * h * 3);
        for y in y0..y1 {
            let row = (y * self.width + x0) * 3;
            data.extend_from_slice(&self.data[row..row + w * 3]);
        }
        RgbImage::new(w, h, data)
    }

    /// Places the image on a black canvas of `width × height` with its
    /// top-left corner at (`left`, `top`). Pixels falling outside are cut.
    pub fn on_canvas(&self, width: usize, height: usize, left: usize, top: usize) -> RgbImage {
        let mut out = RgbImage::zeros(width, height);
        let w = self.width.min(width.saturating_sub(left));
        for y in 0..self.height.min(height.saturating_sub(top)) {
            let src = y * self.width * 3;
            let dst = ((y + top) * width + left) * 3;
            out.data[dst..dst + w * 3].copy_from_slice(&self.data[src..src + w * 3]);
        }
        out
    }

    /// Zero-pads the short side at the end (bottom or right), as face-api's
    /// detectors do.
    pub fn pad_to_square_end(&self) -> RgbImage {
        let side = self.width.max(self.height);
        self.on_canvas(side, side, 0, 0)
    }

    /// Zero-pads the short side on both ends, as face-api's landmark net
    /// does: `round(d / 2)` after, the rest before.
    pub fn pad_to_square_centred(&self) -> RgbImage {
        let side = self.width.max(self.height);
        let d = side - self.width.min(self.height);
        let before = d - (d as f64 / 2.0).round() as usize;
        if self.width < self.height {
            self.on_canvas(side, side, before, 0)
        } else {
            self.on_canvas(side, side, 0, before)
        }
    }

    /// Bilinear resize exactly as `tf.image.resizeBilinear` with
    /// `alignCorners = false, halfPixelCenters = false`, as f32 RGB
    /// (interleaved, not rounded).
    pub fn resize_bilinear_tf(&self, out_w: usize, out_h: usize) -> Vec<f32> {
        let (in_w, in_h) = (self.width, self.height);
        let sx = in_w as f32 / out_w as f32;
        let sy = in_h as f32 / out_h as f32;
        let xs: Vec<(usize, usize, f32)> = (0..out_w)
            .map(|x| {
                let src = x as f32 * sx;
                let x0 = (src.floor() as usize).min(in_w - 1);
                let x1 = (x0 + 1).min(in_w - 1);
                (x0, x1, src - x0 as f32)
            })
            .collect();
        let mut out = Vec::with_capacity(out_w * out_h * 3);
        for y in 0..out_h {
            let src = y as f32 * sy;
            let y0 = (src.floor() as usize).min(in_h - 1);
            let y1 = (y0 + 1).min(in_h - 1);
            let fy = src - y0 as f32;
            let (r0, r1) = (y0 * in_w * 3, y1 * in_w * 3);
            for &(x0, x1, fx) in &xs {
                for c in 0..3 {
                    let tl = self.data[r0 + x0 * 3 + c] as f32;
                    let tr = self.data[r0 + x1 * 3 + c] as f32;
                    let bl = self.data[r1 + x0 * 3 + c] as f32;
                    let br = self.data[r1 + x1 * 3 + c] as f32;
                    let top = tl + (tr - tl) * fx;
                    let bottom = bl + (br - bl) * fx;
                    out.push(top + (bottom - top) * fy);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_overlapping_rects() {
        let a = Rect {
            x: 0.0,
            y: 0.0,
            width: 10.0,
            height: 10.0,
        };
        let b = Rect {
            x: 5.0,
            y: 0.0,
            width: 10.0,
            height: 10.0,
        };
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&Rect { x: 20.0, ..a }), 0.0);
        assert_eq!(a.iou(&a), 1.0);
    }

    #[test]
    fn centred_padding_puts_the_rounded_half_after() {
        // 2 × 5: d = 3, round(1.5) = 2 after, 1 before.
        let img = RgbImage::new(2, 5, vec![255; 2 * 5 * 3]);
        let sq = img.as_ref().pad_to_square_centred();
        assert_eq!((sq.width, sq.height), (5, 5));
        let row: Vec<u8> = (0..5).map(|x| sq.as_ref().pixel(x, 0)[0]).collect();
        assert_eq!(row, vec![0, 255, 255, 0, 0]);
    }

    #[test]
    fn end_padding_keeps_the_image_top_left() {
        let img = RgbImage::new(3, 1, vec![9; 9]);
        let sq = img.as_ref().pad_to_square_end();
        assert_eq!(sq.as_ref().pixel(2, 0), [9, 9, 9]);
        assert_eq!(sq.as_ref().pixel(0, 1), [0, 0, 0]);
    }

    #[test]
    fn tf_resize_samples_from_the_top_left_without_half_pixel_offset() {
        // 2 × 1 → 4 × 1: src x = 0, 0.5, 1, 1.5 → 0, 50, 100, 100 (clamped).
        let img = RgbImage::new(2, 1, vec![0, 0, 0, 100, 100, 100]);
        let out = img.as_ref().resize_bilinear_tf(4, 1);
        let red: Vec<f32> = out.chunks(3).map(|p| p[0]).collect();
        assert_eq!(red, vec![0.0, 50.0, 100.0, 100.0]);
    }

    #[test]
    fn crop_is_clipped_to_the_image() {
        let data: Vec<u8> = (0..4 * 3 * 3).map(|i| i as u8).collect();
        let img = RgbImage::new(4, 3, data);
        let c = img.as_ref().crop(2, 1, 10, 10);
        assert_eq!((c.width, c.height), (2, 2));
        assert_eq!(c.as_ref().pixel(0, 0), img.as_ref().pixel(2, 1));
    }
}
