//! Thumbnails: [`DecodedImage`] → JPEG previews at the configured sizes.
//!
//! Input: the upright working image. Output: one [`ThumbnailImage`] per
//! configured longest edge (never upscaled: a small photo's thumbnail is the
//! photo's own size). Failure modes: OpenCV resize or encode errors.
//! The caller stores them encrypted, like originals.

use opencv::core::{Mat, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

use super::decode::{DecodedImage, mat_size};

pub const THUMBNAIL_MIME: &str = "image/jpeg";
const JPEG_QUALITY: i32 = 85;

pub struct ThumbnailImage {
    pub size: u32,
    pub width: u32,
    pub height: u32,
    pub jpeg: Vec<u8>,
}

/// Fits `(width, height)` into a square of `edge`, keeping the aspect ratio.
pub fn fit(width: u32, height: u32, edge: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= edge {
        return (width.max(1), height.max(1));
    }
    let scale = f64::from(edge) / f64::from(longest);
    let fit_one = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, edge);
    (fit_one(width), fit_one(height))
}

pub fn make_thumbnails(image: &DecodedImage, sizes: &[u32]) -> opencv::Result<Vec<ThumbnailImage>> {
    let (src_w, src_h) = mat_size(&image.pixels);
    let mut thumbnails = Vec::with_capacity(sizes.len());
    for &size in sizes {
        // Sized against the full-resolution image, capped by what was decoded.
        let (mut w, mut h) = fit(image.width, image.height, size);
        if w > src_w || h > src_h {
            (w, h) = (src_w, src_h);
        }
        let resized;
        let source: &Mat = if (w, h) == (src_w, src_h) {
            &image.pixels
        } else {
            let mut out = Mat::default();
            imgproc::resize(
                &image.pixels,
                &mut out,
                Size::new(i32::try_from(w).unwrap_or(1), i32::try_from(h).unwrap_or(1)),
                0.0,
                0.0,
                imgproc::INTER_AREA,
            )?;
            resized = out;
            &resized
        };
        let mut jpeg = Vector::<u8>::new();
        let params = Vector::<i32>::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, JPEG_QUALITY]);
        imgcodecs::imencode(".jpg", source, &mut jpeg, &params)?;
        thumbnails.push(ThumbnailImage {
            size,
            width: w,
            height: h,
            jpeg: jpeg.to_vec(),
        });
    }
    Ok(thumbnails)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_aspect_and_never_upscales() {
        assert_eq!(fit(4000, 3000, 320), (320, 240));
        assert_eq!(fit(3000, 4000, 1280), (960, 1280));
        assert_eq!(fit(100, 50, 320), (100, 50));
        assert_eq!(fit(10_000, 1, 320), (320, 1));
    }
}
