//! Redacted copies: every listed face is irreversibly pixelated, then
//! blurred, in a new JPEG. The original is never touched; the copy carries no
//! metadata (no EXIF, no GPS), only pixels.
//!
//! Irreversible because the face region is first reduced to
//! [`CELLS`] × [`CELLS`] averages (the detail is gone, not hidden), then
//! smoothed so the blocks do not hint at edges. The region is the face box
//! grown by [`MARGIN`] on each side, so hair line, ears and jaw go too.

use opencv::core::{Mat, Rect, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

use crate::domain::FaceBox;

/// Cells across the face after pixelation.
pub const CELLS: i32 = 6;
/// Growth of the box on each side, as a fraction of its size.
pub const MARGIN: f32 = 0.25;

/// The region redacted for a face box, clamped to the image.
pub fn region(b: &FaceBox, width: i32, height: i32) -> Option<Rect> {
    let (mx, my) = (b.width * MARGIN, b.height * MARGIN);
    let x0 = ((b.x - mx).floor() as i32).clamp(0, width);
    let y0 = ((b.y - my).floor() as i32).clamp(0, height);
    let x1 = ((b.x + b.width + mx).ceil() as i32).clamp(0, width);
    let y1 = ((b.y + b.height + my).ceil() as i32).clamp(0, height);
    (x1 > x0 && y1 > y0).then(|| Rect::new(x0, y0, x1 - x0, y1 - y0))
}

/// Redacts `faces` (boxes in the image's pixels) in place.
pub fn redact(image: &mut Mat, faces: &[FaceBox]) -> opencv::Result<()> {
    let (w, h) = (image.cols(), image.rows());
    for b in faces {
        let Some(r) = region(b, w, h) else { continue };
        let mut roi = Mat::roi_mut(image, r)?;
        let mut small = Mat::default();
        imgproc::resize(
            &roi,
            &mut small,
            Size::new(CELLS.min(r.width), CELLS.min(r.height)),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )?;
        let mut blocks = Mat::default();
        imgproc::resize(
            &small,
            &mut blocks,
            Size::new(r.width, r.height),
            0.0,
            0.0,
            imgproc::INTER_NEAREST,
        )?;
        let k = ((r.width.min(r.height) / CELLS) | 1).max(3);
        let mut smooth = Mat::default();
        imgproc::gaussian_blur_def(&blocks, &mut smooth, Size::new(k, k), 0.0)?;
        smooth.copy_to(&mut roi)?;
    }
    Ok(())
}

/// Encodes a redacted copy as JPEG (quality 92).
pub fn encode_jpeg(image: &Mat) -> opencv::Result<Vec<u8>> {
    let mut out = Vector::<u8>::new();
    let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, 92]);
    imgcodecs::imencode(".jpg", image, &mut out, &params)?;
    Ok(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{CV_8UC3, Scalar};

    #[test]
    fn a_redacted_region_keeps_no_detail_and_the_rest_is_untouched() {
        // A fine checkerboard: any detail left would show as variance within a cell.
        let mut img = Mat::new_rows_cols_with_default(200, 300, CV_8UC3, Scalar::all(0.0)).unwrap();
        for y in 0..200 {
            for x in 0..300 {
                if (x / 2 + y / 2) % 2 == 0 {
                    *img.at_2d_mut::<opencv::core::Vec3b>(y, x).unwrap() = [255, 255, 255].into();
                }
            }
        }
        let before = img.try_clone().unwrap();
        let face = FaceBox {
            x: 100.0,
            y: 60.0,
            width: 80.0,
            height: 80.0,
        };
        redact(&mut img, &[face]).unwrap();
        let r = region(&face, 300, 200).unwrap();
        // Inside: the checkerboard is gone (all pixels near mid-grey).
        for y in r.y + 5..r.y + r.height - 5 {
            for x in r.x + 5..r.x + r.width - 5 {
                let p = img.at_2d::<opencv::core::Vec3b>(y, x).unwrap();
                assert!((100..=155).contains(&p[0]), "pixel {x},{y} = {p:?}");
            }
        }
        // Outside: byte-identical.
        for (y, x) in [
            (0, 0),
            (10, 290),
            (199, 0),
            (r.y - 1, r.x),
            (r.y, r.x + r.width),
        ] {
            assert_eq!(
                img.at_2d::<opencv::core::Vec3b>(y, x).unwrap(),
                before.at_2d::<opencv::core::Vec3b>(y, x).unwrap()
            );
        }
    }
}
