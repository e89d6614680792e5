//! dlib's 5-point face alignment: 150×150 RGB chips for the face descriptor.
//!
//! Input: an interleaved 8-bit RGB image ([`RgbRef`]) and five landmarks in
//! dlib's `shape_predictor_5_face_landmarks` order (image-right eye outer and
//! inner corner, image-left eye outer and inner corner, nose base), or 68
//! iBUG landmarks reduced with [`five_from_68`]. Output: the similarity
//! transform ([`ChipDetails`]) and the `150 × 150` chip ([`RgbImage`]) exactly
//! as `dlib.get_face_chip(img, shape, size=150, padding=0.25)` builds it.
//! There are no failure modes: a chip reaching past the image is black there
//! (one wholly outside is all black); degenerate landmarks (all equal, or
//! not finite) give a zero-scale or NaN transform and a meaningless chip,
//! never a panic.
//! [`five_from_68`] panics on fewer than 68 points.
//!
//! Reference: dlib (Davis E. King, Boost Software License 1.0),
//! `dlib/image_transforms/interpolation.h` (`get_face_chip_details`,
//! `chip_details`, `extract_image_chips`, `interpolate_bilinear`),
//! `dlib/image_transforms/image_pyramid.h` (`pyramid_down<2>`),
//! `dlib/geometry/point_transforms.h` (`find_similarity_transform`) and
//! `dlib/geometry/drectangle.h` (`centered_drect`). This is a re-implementation
//! of the algorithm, not a copy of the code; the steps that decide pixel values
//! (rectangle arithmetic, pyramid rounding, bilinear truncation) follow dlib
//! exactly so that the descriptor network sees the pixels it was trained on.
//!
//! The algorithm:
//! 1. Fit a similarity transform (Umeyama, no reflection) from the padded
//!    template points in chip pixels to the landmarks. dlib keeps only its
//!    angle, its scale `s` and where it sends the chip centre (75, 75): the chip
//!    footprint is `centered_drect(centre, 150·s, 150·s)`, whose corners (which
//!    lie `(150·s − 1)/2` from the centre, dlib's rectangles count pixels
//!    inclusively) map onto chip pixels 0 and 149.
//! 2. When the chip is much smaller than its footprint (`s` above about 2),
//!    bilinear sampling would alias, so dlib first halves the region around the
//!    footprint with `pyramid_down<2>` (a 5×5 binomial filter, integer
//!    arithmetic, truncating division by 256) until one more halving would make
//!    the footprint smaller than the chip, and samples that level.
//! 3. Each chip pixel samples its level bilinearly in f64 and truncates to u8;
//!    samples whose 2×2 neighbourhood leaves the image (or the cropped region
//!    dlib works in) are 0.
//!
//! dlib already restricts the pyramid to the bounding box of the rotated
//! footprint plus a margin, and the pyramid's pixel grid depends on where that
//! box starts, so we use exactly its box: the work per chip is proportional to
//! the face's area, not the photo's.

use crate::image::{Point, RgbImage, RgbRef};

/// Side of the square chip, in pixels.
pub const CHIP_SIZE: usize = 150;
/// Margin around the template, as a fraction of the template's side.
pub const CHIP_PADDING: f64 = 0.25;

/// dlib's 5-point template (x, y) in the unit square: image-right eye outer and
/// inner corner, image-left eye outer and inner corner, nose base.
const TEMPLATE: [[f64; 2]; 5] = [
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
];

/// iBUG-68 indices of the five template points, in template order.
const IBUG_INDICES: [usize; 5] = [45, 42, 36, 39, 33];

/// The 5 dlib points (45, 42, 36, 39, 33) picked from 68 iBUG landmarks.
///
/// Panics when `lm68` has fewer than 68 points.
pub fn five_from_68(lm68: &[Point]) -> [Point; 5] {
    assert!(
        lm68.len() >= 68,
        "five_from_68 needs 68 iBUG landmarks, got {}",
        lm68.len()
    );
    IBUG_INDICES.map(|i| lm68[i])
}

/// Where a chip lies in the image: dlib's `chip_details` for a square chip of
/// [`CHIP_SIZE`] pixels.
///
/// Chip pixel `(u, v)` (without the pyramid) samples the image at
/// `centre + R(angle) · spacing · ((u, v) − (size − 1)/2)`. `centre` is where
/// chip point `(size/2, size/2)` lands, not pixel centre `(size − 1)/2`, so the
/// identity similarity samples the image at `(u + 0.5, v + 0.5)`: that is
/// dlib's convention and the network was trained on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChipDetails {
    /// Image point (pixels) that the chip point `(size/2, size/2)` maps to under
    /// the fitted similarity: the centre of dlib's chip rectangle.
    pub centre: [f64; 2],
    /// Rotation of the chip's x axis in the image, radians (positive turns x
    /// towards y, i.e. clockwise on screen); dlib's `chip_details::angle`.
    pub angle: f64,
    /// Image pixels per chip pixel of the fitted similarity; the footprint is
    /// `size · scale` pixels wide in dlib's inclusive pixel count.
    pub scale: f64,
}

impl ChipDetails {
    /// dlib's `chip_details::rect` (left, top, right, bottom; inclusive
    /// corners, unrotated, centred on [`Self::centre`]).
    pub fn rect(&self) -> [f64; 4] {
        let r = self.drect();
        [r.l, r.t, r.r, r.b]
    }

    /// Distance in image pixels between neighbouring chip pixels when no
    /// pyramid is used: `(size · scale − 1) / (size − 1)`.
    pub fn spacing(&self) -> f64 {
        let n = CHIP_SIZE as f64;
        (n * self.scale - 1.0) / (n - 1.0)
    }

    /// The image point chip pixel `(u, v)` stands for, ignoring the pyramid's
    /// small offsets (exact when [`Self::pyramid_levels`] is 0, up to rounding).
    pub fn chip_to_image(&self, u: f64, v: f64) -> Point {
        let half = (CHIP_SIZE as f64 - 1.0) / 2.0;
        let (sin, cos) = (self.angle.sin(), self.angle.cos());
        let (du, dv) = ((u - half) * self.spacing(), (v - half) * self.spacing());
        Point::new(
            (self.centre[0] + cos * du - sin * dv) as f32,
            (self.centre[1] + sin * du + cos * dv) as f32,
        )
    }

    /// How many `pyramid_down<2>` halvings dlib applies before sampling (0 for
    /// chips up to about twice the chip size).
    pub fn pyramid_levels(&self) -> usize {
        let limit = (CHIP_SIZE * CHIP_SIZE) as f64;
        let mut rect = self.drect();
        let mut levels = 0;
        while rect.down().area() > limit {
            rect = rect.down();
            levels += 1;
        }
        levels
    }

    fn drect(&self) -> DRect {
        // `centered_drect`: the width counts pixels inclusively, so the
        // corners are (width − 1)/2 from the centre.
        let side = CHIP_SIZE as f64 * self.scale - 1.0;
        let [cx, cy] = self.centre;
        DRect {
            l: cx - side / 2.0,
            t: cy - side / 2.0,
            r: cx + side / 2.0,
            b: cy + side / 2.0,
        }
    }
}

/// The similarity transform that maps the padded template onto `points5`
/// (dlib's `get_face_chip_details` with size 150, padding 0.25).
pub fn chip_details(points5: &[Point; 5]) -> ChipDetails {
    let n = CHIP_SIZE as f64;
    let from = TEMPLATE.map(|[x, y]| {
        [
            (CHIP_PADDING + x) / (2.0 * CHIP_PADDING + 1.0) * n,
            (CHIP_PADDING + y) / (2.0 * CHIP_PADDING + 1.0) * n,
        ]
    });
    let to = points5.map(|p| [f64::from(p.x), f64::from(p.y)]);
    let (a, t) = similarity(&from, &to);
    // dlib reads angle and scale off the image of the unit x vector.
    let (px, py) = (a[0][0], a[1][0]);
    let half = n / 2.0;
    ChipDetails {
        centre: [
            a[0][0] * half + a[0][1] * half + t[0],
            a[1][0] * half + a[1][1] * half + t[1],
        ],
        angle: py.atan2(px),
        scale: px.hypot(py),
    }
}

/// Least-squares similarity `to ≈ A·from + t` without reflection (Umeyama
/// 1991, eqs. 34–43), as dlib's `find_similarity_transform`.
///
/// In 2-D the SVD is not needed: over rotations, `trace(Rᵀ·Σ)` for the
/// cross-covariance `Σ = [[a, b], [c, d]]` peaks at `θ = atan2(c − b, a + d)`
/// with value `hypot(a + d, c − b)`, which equals Umeyama's `trace(D·S)`.
fn similarity<const N: usize>(
    from: &[[f64; 2]; N],
    to: &[[f64; 2]; N],
) -> ([[f64; 2]; 2], [f64; 2]) {
    let count = N as f64;
    let mean = |pts: &[[f64; 2]; N]| {
        let s = pts
            .iter()
            .fold([0.0, 0.0], |s, p| [s[0] + p[0], s[1] + p[1]]);
        [s[0] / count, s[1] / count]
    };
    let (mf, mt) = (mean(from), mean(to));
    let mut sigma_from = 0.0;
    let mut cov = [[0.0f64; 2]; 2];
    for (f, t) in from.iter().zip(to) {
        let df = [f[0] - mf[0], f[1] - mf[1]];
        let dt = [t[0] - mt[0], t[1] - mt[1]];
        sigma_from += df[0] * df[0] + df[1] * df[1];
        for (i, row) in cov.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v += dt[i] * df[j];
            }
        }
    }
    sigma_from /= count;
    for v in cov.iter_mut().flatten() {
        *v /= count;
    }
    let (cos_sum, sin_sum) = (cov[0][0] + cov[1][1], cov[1][0] - cov[0][1]);
    let norm = cos_sum.hypot(sin_sum);
    let (cos, sin) = if norm > 0.0 {
        (cos_sum / norm, sin_sum / norm)
    } else {
        (1.0, 0.0)
    };
    let scale = if sigma_from != 0.0 {
        norm / sigma_from
    } else {
        1.0
    };
    let a = [[scale * cos, -scale * sin], [scale * sin, scale * cos]];
    let t = [
        mt[0] - (a[0][0] * mf[0] + a[0][1] * mf[1]),
        mt[1] - (a[1][0] * mf[0] + a[1][1] * mf[1]),
    ];
    (a, t)
}

/// The 150×150 RGB chip, dlib-style (pyramid for large faces, bilinear,
/// truncation, 0 outside).
pub fn extract_chip(image: RgbRef<'_>, details: &ChipDetails) -> RgbImage {
    let n = CHIP_SIZE;
    let rect = details.drect();
    // dlib copies pixels directly when there is nothing to resample.
    if details.angle == 0.0 && rect.width() == n as f64 && rect.height() == n as f64 {
        return copy_chip(image, rect.l.round() as i64, rect.t.round() as i64);
    }

    let limit = (n * n) as f64;
    // The margin dlib adds around the footprint so that the pyramid's border
    // effects stay outside it: 2 pixels at the sampled level, doubled (plus
    // the filter's reach) per halving.
    let mut grow = 2.0;
    let mut down = rect.down();
    while down.area() > limit {
        down = down.down();
        grow = grow * 2.0 + 2.0;
    }
    let (sin, cos) = (details.angle.sin(), details.angle.cos());
    let rotated = |r: &DRect, p: [f64; 2]| {
        let c = r.centre();
        let (dx, dy) = (p[0] - c[0], p[1] - c[1]);
        [cos * dx - sin * dy + c[0], sin * dx + cos * dy + c[1]]
    };
    let corners = [rect.tl(), rect.tr(), rect.bl(), rect.br()].map(|p| rotated(&rect, p));
    let footprint = DRect {
        l: corners.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min),
        t: corners.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min),
        r: corners
            .iter()
            .map(|p| p[0])
            .fold(f64::NEG_INFINITY, f64::max),
        b: corners
            .iter()
            .map(|p| p[1])
            .fold(f64::NEG_INFINITY, f64::max),
    };
    let whole = DRect {
        l: 0.0,
        t: 0.0,
        r: image.width as f64 - 1.0,
        b: image.height as f64 - 1.0,
    };
    let region = footprint.grown(grow).intersect(&whole);
    // dlib converts to an integer rectangle with `lround` (half away from
    // zero, as `f64::round`); an empty one stays dlib's empty (0, 0, −1, −1).
    let (x0, y0, x1, y1) = (
        region.l.round() as i64,
        region.t.round() as i64,
        region.r.round() as i64,
        region.b.round() as i64,
    );
    let (x0, y0, w, h) = if x0 > x1 || y0 > y1 {
        (0, 0, 0, 0)
    } else {
        (x0, y0, (x1 - x0 + 1) as usize, (y1 - y0 + 1) as usize)
    };
    let base = View {
        data: image.data,
        offset: (y0 as usize * image.width + x0 as usize) * 3,
        stride: image.width * 3,
        width: w,
        height: h,
    };

    // The level is chosen on the footprint moved into the region's frame.
    let mut local = rect.translated(-(x0 as f64), -(y0 as f64));
    let mut levels = 0usize;
    while local.down().area() > limit {
        levels += 1;
        local = local.down();
    }

    let mut chip = RgbImage::zeros(n, n);
    let mut level = None;
    for _ in 0..levels {
        let next = match &level {
            None => pyramid_down(&base),
            Some(img) => pyramid_down(&View::of(img)),
        };
        level = Some(next);
    }
    let src = level.as_ref().map_or(base, View::of);

    // Chip corners (0, 0), (n−1, 0), (0, n−1) go to the rotated corners of
    // the footprint at the chosen level; the affine map in between is exact.
    let tl = rotated(&local, local.tl());
    let tr = rotated(&local, local.tr());
    let bl = rotated(&local, local.bl());
    let last = (n - 1) as f64;
    let m = [
        [(tr[0] - tl[0]) / last, (bl[0] - tl[0]) / last],
        [(tr[1] - tl[1]) / last, (bl[1] - tl[1]) / last],
    ];
    for v in 0..n {
        let fv = v as f64;
        let row = &mut chip.data[v * n * 3..(v + 1) * n * 3];
        for (u, out) in row.chunks_exact_mut(3).enumerate() {
            let fu = u as f64;
            let x = m[0][0] * fu + m[0][1] * fv + tl[0];
            let y = m[1][0] * fu + m[1][1] * fv + tl[1];
            if let Some(px) = src.bilinear(x, y) {
                out.copy_from_slice(&px);
            }
        }
    }
    chip
}

/// dlib's `basic_extract_image_chip`: a plain copy of the square at (x0, y0),
/// zero where it leaves the image.
fn copy_chip(image: RgbRef<'_>, x0: i64, y0: i64) -> RgbImage {
    let n = CHIP_SIZE;
    let mut chip = RgbImage::zeros(n, n);
    for v in 0..n {
        let y = y0 + v as i64;
        if y < 0 || y >= image.height as i64 {
            continue;
        }
        for u in 0..n {
            let x = x0 + u as i64;
            if x >= 0 && x < image.width as i64 {
                let px = image.pixel(x as usize, y as usize);
                chip.data[(v * n + u) * 3..(v * n + u) * 3 + 3].copy_from_slice(&px);
            }
        }
    }
    chip
}

/// A rectangle with dlib's `drectangle` conventions: inclusive corners, so
/// `width = r − l + 1`, and empty when `l > r` or `t > b`.
#[derive(Debug, Clone, Copy)]
struct DRect {
    l: f64,
    t: f64,
    r: f64,
    b: f64,
}

impl DRect {
    fn is_empty(&self) -> bool {
        self.t > self.b || self.l > self.r
    }

    fn width(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.r - self.l + 1.0
        }
    }

    fn height(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.b - self.t + 1.0
        }
    }

    fn area(&self) -> f64 {
        self.width() * self.height()
    }

    fn centre(&self) -> [f64; 2] {
        [(self.l + self.r) / 2.0, (self.t + self.b) / 2.0]
    }

    fn tl(&self) -> [f64; 2] {
        [self.l, self.t]
    }

    fn tr(&self) -> [f64; 2] {
        [self.r, self.t]
    }

    fn bl(&self) -> [f64; 2] {
        [self.l, self.b]
    }

    fn br(&self) -> [f64; 2] {
        [self.r, self.b]
    }

    /// `pyramid_down<2>::rect_down`: both corners through `p/2 − (1.25, 0.75)`.
    /// dlib's offsets are not the filter's true phase (that would be −1, −1),
    /// but they decide which chip pixels sample where, so they are kept.
    fn down(&self) -> DRect {
        DRect {
            l: self.l / 2.0 - 1.25,
            t: self.t / 2.0 - 0.75,
            r: self.r / 2.0 - 1.25,
            b: self.b / 2.0 - 0.75,
        }
    }

    fn grown(&self, by: f64) -> DRect {
        DRect {
            l: self.l - by,
            t: self.t - by,
            r: self.r + by,
            b: self.b + by,
        }
    }

    fn intersect(&self, o: &DRect) -> DRect {
        DRect {
            l: self.l.max(o.l),
            t: self.t.max(o.t),
            r: self.r.min(o.r),
            b: self.b.min(o.b),
        }
    }

    fn translated(&self, dx: f64, dy: f64) -> DRect {
        DRect {
            l: self.l + dx,
            t: self.t + dy,
            r: self.r + dx,
            b: self.b + dy,
        }
    }
}

/// A window into interleaved RGB bytes (the whole image or a sub-image).
#[derive(Debug, Clone, Copy)]
struct View<'a> {
    data: &'a [u8],
    /// Byte index of the window's top-left pixel.
    offset: usize,
    /// Bytes per row of the underlying image.
    stride: usize,
    width: usize,
    height: usize,
}

impl<'a> View<'a> {
    fn of(img: &'a RgbImage) -> Self {
        View {
            data: &img.data,
            offset: 0,
            stride: img.width * 3,
            width: img.width,
            height: img.height,
        }
    }

    /// The first `len` bytes of row `y`.
    #[inline]
    fn row(&self, y: usize, len: usize) -> &'a [u8] {
        let start = self.offset + y * self.stride;
        &self.data[start..start + len]
    }

    /// dlib's `interpolate_bilinear`: `None` unless the whole 2×2
    /// neighbourhood is inside (so the last row and column only count when
    /// hit exactly from inside), f64 weights, truncation to u8.
    #[inline]
    fn bilinear(&self, x: f64, y: f64) -> Option<[u8; 3]> {
        // For non-negative values truncation is `floor` (which is a libm call
        // on baseline x86-64); negative ones, and NaN, are outside anyway.
        if !(x >= 0.0 && y >= 0.0) {
            return None;
        }
        let (left, top) = (x as usize, y as usize);
        if left + 1 >= self.width || top + 1 >= self.height {
            return None;
        }
        let (lr, tb) = (x - left as f64, y - top as f64);
        let i = self.offset + top * self.stride + left * 3;
        let (upper, lower) = (
            &self.data[i..i + 6],
            &self.data[i + self.stride..i + self.stride + 6],
        );
        let mut out = [0u8; 3];
        for (k, o) in out.iter_mut().enumerate() {
            let (tl, tr) = (f64::from(upper[k]), f64::from(upper[3 + k]));
            let (bl, br) = (f64::from(lower[k]), f64::from(lower[3 + k]));
            let v = (1.0 - tb) * ((1.0 - lr) * tl + lr * tr) + tb * ((1.0 - lr) * bl + lr * br);
            // `as` truncates towards zero like dlib's `static_cast<unsigned char>`
            // (the value is within 0..=255 up to rounding, and saturates).
            *o = v as u8;
        }
        Some(out)
    }
}

/// dlib's `pyramid_down<2>` on RGB: a separable `[1 4 6 4 1]` filter, keeping
/// every other row and column, `((h − 3)/2) × ((w − 3)/2)` pixels; output
/// pixel (r, c) covers input rows `2r..2r+5` and columns `2c..2c+5`. Images
/// with a side of 8 or less give an empty result, as in dlib.
///
/// dlib sums rows first then columns in 16-bit integers and divides by 256
/// with truncation; the sums are exact (at most 16·16·255 = 65280), so doing
/// the vertical pass first, which runs over contiguous bytes, gives the same
/// pixels.
fn pyramid_down(src: &View<'_>) -> RgbImage {
    if src.width <= 8 || src.height <= 8 {
        return RgbImage::zeros(0, 0);
    }
    let (ow, oh) = ((src.width - 3) / 2, (src.height - 3) / 2);
    // Input columns 0..2·ow + 3 are the only ones any output pixel reads.
    let used = (2 * ow + 3) * 3;
    let mut out = RgbImage::zeros(ow, oh);
    let mut column = vec![0u16; used];
    // Horizontal sums at every input column; every other pixel is kept.
    // Computing the unused half costs less than a strided gather, which does
    // not vectorise.
    let mut across = vec![0u16; used - 12];
    for (r, out_row) in out.data.chunks_exact_mut(ow * 3).enumerate() {
        let [r0, r1, r2, r3, r4]: [&[u8]; 5] = std::array::from_fn(|i| src.row(2 * r + i, used));
        for (i, s) in column.iter_mut().enumerate() {
            *s = u16::from(r0[i])
                + 4 * u16::from(r1[i])
                + 6 * u16::from(r2[i])
                + 4 * u16::from(r3[i])
                + u16::from(r4[i]);
        }
        let len = across.len();
        let taps: [&[u16]; 5] = std::array::from_fn(|j| &column[3 * j..3 * j + len]);
        for (i, s) in across.iter_mut().enumerate() {
            *s = taps[0][i] + 4 * taps[1][i] + 6 * taps[2][i] + 4 * taps[3][i] + taps[4][i];
        }
        for (px, sums) in out_row.chunks_exact_mut(3).zip(across.chunks(6)) {
            for (o, s) in px.iter_mut().zip(sums) {
                *o = (s >> 8) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template points in chip pixels.
    fn chip_points() -> [Point; 5] {
        TEMPLATE.map(|[x, y]| {
            let n = CHIP_SIZE as f64;
            Point::new(
                ((CHIP_PADDING + x) / (1.0 + 2.0 * CHIP_PADDING) * n) as f32,
                ((CHIP_PADDING + y) / (1.0 + 2.0 * CHIP_PADDING) * n) as f32,
            )
        })
    }

    /// A deterministic, non-trivial test pattern.
    fn pattern(w: usize, h: usize) -> RgbImage {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&[
                    (x * 7 + y * 3) as u8,
                    ((x ^ y) * 5) as u8,
                    ((x * y) % 251) as u8,
                ]);
            }
        }
        RgbImage::new(w, h, data)
    }

    #[test]
    fn template_maps_to_itself() {
        let d = chip_details(&chip_points());
        // The points are rounded to f32, so identity holds to about 1e-6.
        assert!(d.angle.abs() < 1e-6, "angle {}", d.angle);
        assert!((d.scale - 1.0).abs() < 1e-6, "scale {}", d.scale);
        assert!((d.centre[0] - 75.0).abs() < 1e-4 && (d.centre[1] - 75.0).abs() < 1e-4);
        assert_eq!(d.pyramid_levels(), 0);
        // dlib sends chip point (75, 75), not pixel centre 74.5, to the
        // footprint's centre, so the identity similarity samples the image
        // half a pixel down and right of each chip pixel.
        for (got, want) in d.rect().iter().zip([0.5, 0.5, 149.5, 149.5]) {
            assert!((got - want).abs() < 1e-4, "rect {:?}", d.rect());
        }

        let img = pattern(CHIP_SIZE, CHIP_SIZE);
        let chip = extract_chip(img.as_ref(), &d);
        let at = |x: usize, y: usize, k: usize| u32::from(img.as_ref().pixel(x, y)[k]);
        for y in 0..CHIP_SIZE {
            for x in 0..CHIP_SIZE {
                let got = chip.as_ref().pixel(x, y);
                if x == CHIP_SIZE - 1 || y == CHIP_SIZE - 1 {
                    // The 2×2 neighbourhood leaves the image.
                    assert_eq!(got, [0; 3], "({x}, {y})");
                    continue;
                }
                for (k, &g) in got.iter().enumerate() {
                    let sum = at(x, y, k) + at(x + 1, y, k) + at(x, y + 1, k) + at(x + 1, y + 1, k);
                    // Weights within 1e-5 of 1/4, truncated.
                    let want = sum as f64 / 4.0;
                    assert!(
                        (f64::from(g) - want.floor()).abs() <= 1.0,
                        "({x}, {y}, {k}): {g} vs {want}"
                    );
                }
            }
        }

        // The exact identity takes dlib's copy path and reproduces the image.
        let exact = ChipDetails {
            centre: [74.5, 74.5],
            angle: 0.0,
            scale: 1.0,
        };
        assert_eq!(exact.rect(), [0.0, 0.0, 149.0, 149.0]);
        assert_eq!(extract_chip(img.as_ref(), &exact), img);
    }

    #[test]
    fn rotated_and_scaled_points_give_that_transform() {
        let (angle, scale) = (0.3f64, 1.7f64);
        let (centre_x, centre_y) = (200.0, 180.0);
        let (sin, cos) = angle.sin_cos();
        let points = chip_points().map(|p| {
            let (u, v) = (f64::from(p.x) - 75.0, f64::from(p.y) - 75.0);
            Point::new(
                (centre_x + scale * (cos * u - sin * v)) as f32,
                (centre_y + scale * (sin * u + cos * v)) as f32,
            )
        });
        let d = chip_details(&points);
        assert!((d.angle - angle).abs() < 1e-5, "angle {}", d.angle);
        assert!((d.scale - scale).abs() < 1e-5, "scale {}", d.scale);
        assert!((d.centre[0] - centre_x).abs() < 1e-3 && (d.centre[1] - centre_y).abs() < 1e-3);
        assert!((d.spacing() - (150.0 * scale - 1.0) / 149.0).abs() < 1e-5);

        // Draw a bright disc where the chip's centre lands and a dark one
        // where chip pixel (130, 75), right of the centre on the chip's x
        // axis, lands; both must show up there in the chip.
        let bright = d.chip_to_image(74.5, 74.5);
        let dark = d.chip_to_image(130.0, 74.5);
        let (w, h) = (400, 400);
        let mut img = RgbImage::new(w, h, vec![128; w * h * 3]);
        for y in 0..h {
            for x in 0..w {
                let near = |p: Point| (x as f32 - p.x).hypot(y as f32 - p.y) < 12.0;
                let value = if near(bright) {
                    255
                } else if near(dark) {
                    0
                } else {
                    continue;
                };
                img.data[(y * w + x) * 3..(y * w + x) * 3 + 3].fill(value);
            }
        }
        let chip = extract_chip(img.as_ref(), &d);
        assert_eq!(chip.as_ref().pixel(75, 75), [255; 3]);
        assert_eq!(chip.as_ref().pixel(130, 75), [0; 3]);
        assert_eq!(chip.as_ref().pixel(75, 130), [128; 3]);
        assert_eq!(chip.as_ref().pixel(20, 75), [128; 3]);
    }

    #[test]
    fn five_from_68_picks_dlibs_indices() {
        let lm: Vec<Point> = (0..68).map(|i| Point::new(i as f32, -(i as f32))).collect();
        let five = five_from_68(&lm);
        let xs: Vec<f32> = five.iter().map(|p| p.x).collect();
        assert_eq!(xs, vec![45.0, 42.0, 36.0, 39.0, 33.0]);
    }

    #[test]
    #[should_panic(expected = "68 iBUG landmarks")]
    fn five_from_68_rejects_short_input() {
        five_from_68(&[Point::default(); 5]);
    }

    #[test]
    fn pixels_outside_the_image_are_zero() {
        let img = RgbImage::new(100, 100, vec![200; 100 * 100 * 3]);
        // Chip centred on the top-left corner: three quarters lie outside.
        let d = ChipDetails {
            centre: [0.0, 0.0],
            angle: 0.1,
            scale: 1.0,
        };
        let chip = extract_chip(img.as_ref(), &d);
        assert_eq!(chip.as_ref().pixel(10, 10), [0; 3]);
        assert_eq!(chip.as_ref().pixel(140, 10), [0; 3]);
        assert_eq!(chip.as_ref().pixel(10, 140), [0; 3]);
        assert_eq!(chip.as_ref().pixel(120, 120), [200; 3]);

        // Wholly outside, also with a pyramid.
        for scale in [1.0, 5.0] {
            let far = ChipDetails {
                centre: [-2000.0, 50.0],
                angle: 0.2,
                scale,
            };
            assert!(
                extract_chip(img.as_ref(), &far)
                    .data
                    .iter()
                    .all(|&v| v == 0)
            );
        }
    }

    #[test]
    fn degenerate_landmarks_do_not_panic() {
        let img = pattern(64, 48);
        for p in [Point::new(20.0, 20.0), Point::new(f32::NAN, 3.0)] {
            let d = chip_details(&[p; 5]);
            let chip = extract_chip(img.as_ref(), &d);
            assert_eq!((chip.width, chip.height), (CHIP_SIZE, CHIP_SIZE));
        }
        let huge = ChipDetails {
            centre: [30.0, 20.0],
            angle: 1.0,
            scale: 1e6,
        };
        assert!(
            extract_chip(img.as_ref(), &huge)
                .data
                .iter()
                .all(|&v| v == 0)
        );
    }

    #[test]
    fn pyramid_matches_dlibs_filter_and_size() {
        // 11 × 10 → 4 × 3; pixel (0, 0) is the weighted mean of the top-left
        // 5 × 5 block, truncated.
        let img = pattern(11, 10);
        let down = pyramid_down(&View::of(&img));
        assert_eq!((down.width, down.height), (4, 3));
        let w = [1u32, 4, 6, 4, 1];
        for (r, c) in [(0usize, 0usize), (2, 3), (1, 2)] {
            for k in 0..3 {
                let mut sum = 0u32;
                for (i, wi) in w.iter().enumerate() {
                    for (j, wj) in w.iter().enumerate() {
                        sum += wi * wj * u32::from(img.as_ref().pixel(2 * c + j, 2 * r + i)[k]);
                    }
                }
                assert_eq!(u32::from(down.as_ref().pixel(c, r)[k]), sum / 256);
            }
        }
        assert_eq!(pyramid_down(&View::of(&pattern(9, 8))).width, 0);
    }

    #[test]
    fn large_faces_use_the_pyramid_and_keep_flat_colour() {
        let d = ChipDetails {
            centre: [300.0, 300.0],
            angle: -0.2,
            scale: 4.1,
        };
        assert_eq!(d.pyramid_levels(), 2);
        let img = RgbImage::new(600, 600, [10u8, 120, 240].repeat(600 * 600));
        let chip = extract_chip(img.as_ref(), &d);
        // The footprint reaches past the image: zeros there, the flat colour
        // (the filter's weights sum to exactly 256) in the middle.
        assert_eq!(chip.as_ref().pixel(75, 75), [10, 120, 240]);
        assert_eq!(chip.as_ref().pixel(0, 0), [0; 3]);
    }
}
