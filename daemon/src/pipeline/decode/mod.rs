//! Decode: the original's bytes → [`DecodedImage`] (8-bit BGR, upright).
//!
//! Input: the file's bytes. Output: [`ContainerInfo`] from [`inspect`] (format
//! sniffed from the magic bytes, header dimensions, embedded metadata blocks),
//! then pixels from [`decode`], with EXIF orientation (or the HEIF rotation)
//! applied. Failure modes ([`DecodeError`]): not an image, an unsupported
//! format, a truncated or corrupt container, too many pixels, and decoder
//! errors. Each has a stable code and a sentence a person can act on.
//!
//! Architecture Invariant: the pixel limit is checked against the header's
//! dimensions *before* any decoder allocates (decompression bombs), and a file
//! whose container is incomplete is refused even when a decoder would "repair"
//! it with grey or green fill.
//!
//! JPEG, PNG, TIFF and WebP go through OpenCV's imgcodecs; HEIF and AVIF through
//! libheif. For large JPEGs libjpeg's DCT scaling (`IMREAD_REDUCED_*`) decodes
//! straight to the working size that later stages need.

pub mod container;

use opencv::core::{self as cv, Mat};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

pub use container::{ContainerError, ContainerInfo, ImageFormat};

/// Limits and sizes for decoding.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_pixels: u64,
    /// Later stages need at most this longest edge; large JPEGs are decoded reduced.
    pub working_edge: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 100_000_000,
            working_edge: 2048,
        }
    }
}

/// An upright 8-bit BGR image, possibly reduced from the original.
pub struct DecodedImage {
    pub pixels: Mat,
    pub format: ImageFormat,
    /// Full-resolution size as displayed (after orientation).
    pub width: u32,
    pub height: u32,
    /// The original was decoded at 1/`reduction` of its size (1, 2, 4 or 8).
    pub reduction: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(
        "image is {width}×{height} ({megapixels} MP), over the {limit_megapixels} MP limit (ingest.max_pixels)"
    )]
    TooManyPixels {
        width: u32,
        height: u32,
        megapixels: u64,
        limit_megapixels: u64,
    },
    #[error("image header gives a zero width or height")]
    ZeroSize,
    #[error("{format} decoder failed: {detail}")]
    Decoder {
        format: &'static str,
        detail: String,
    },
    #[error(
        "{format} decoder produced {got_width}×{got_height} pixels, but the header says {width}×{height}"
    )]
    SizeMismatch {
        format: &'static str,
        width: u32,
        height: u32,
        got_width: u32,
        got_height: u32,
    },
}

impl DecodeError {
    /// Stable kebab-case code for the quarantine record and the API.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Container(ContainerError::Empty) => "empty-file",
            DecodeError::Container(ContainerError::NotAnImage(_)) => "not-an-image",
            DecodeError::Container(ContainerError::Unsupported(_)) => "unsupported-format",
            DecodeError::Container(ContainerError::Truncated { .. }) => "truncated",
            DecodeError::Container(ContainerError::Corrupt { .. }) => "corrupt",
            DecodeError::TooManyPixels { .. } => "too-many-pixels",
            DecodeError::ZeroSize => "zero-size",
            DecodeError::Decoder { .. } => "decoder-error",
            DecodeError::SizeMismatch { .. } => "size-mismatch",
        }
    }

    /// The stage that refused the file.
    pub fn stage(&self) -> &'static str {
        match self {
            DecodeError::Container(_) => "sniff",
            DecodeError::TooManyPixels { .. } | DecodeError::ZeroSize => "limits",
            DecodeError::Decoder { .. } | DecodeError::SizeMismatch { .. } => "decode",
        }
    }
}

/// Sniffs the container and checks the pixel limit, without decoding pixels.
pub fn inspect(bytes: &[u8], limits: &DecodeLimits) -> Result<ContainerInfo, DecodeError> {
    let info = container::inspect(bytes)?;
    check_limits(&info, limits)?;
    Ok(info)
}

/// Bytes to upright pixels in one call (inspect, limits, EXIF orientation,
/// decode), for callers outside ingest: `consentry faces detect`, benches.
pub fn decode_upright(bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedImage, DecodeError> {
    let info = inspect(bytes, limits)?;
    let orientation = super::metadata::read(&info.metadata).orientation;
    decode(bytes, &info, orientation, limits)
}

/// The pixel limit, against the header's dimensions (before any decoder allocates).
pub fn check_limits(info: &ContainerInfo, limits: &DecodeLimits) -> Result<(), DecodeError> {
    if info.width == 0 || info.height == 0 {
        return Err(DecodeError::ZeroSize);
    }
    let pixels = u64::from(info.width) * u64::from(info.height);
    if pixels > limits.max_pixels {
        return Err(DecodeError::TooManyPixels {
            width: info.width,
            height: info.height,
            megapixels: pixels.div_ceil(1_000_000),
            limit_megapixels: limits.max_pixels / 1_000_000,
        });
    }
    Ok(())
}

/// Whether a file name's extension fits the sniffed format (`None`: no extension).
pub fn extension_fits(format: ImageFormat, file_name: &str) -> Option<bool> {
    let ext = std::path::Path::new(file_name)
        .extension()?
        .to_str()?
        .to_ascii_lowercase();
    let fits: &[&str] = match format {
        ImageFormat::Jpeg => &["jpg", "jpeg", "jpe", "jfif"],
        ImageFormat::Png => &["png"],
        ImageFormat::Tiff => &["tif", "tiff"],
        ImageFormat::WebP => &["webp"],
        ImageFormat::Heif => &["heic", "heif", "hif"],
        ImageFormat::Avif => &["avif"],
    };
    Some(fits.contains(&ext.as_str()))
}

/// Size as displayed: EXIF orientations 5–8 and odd HEIF quarter turns swap the axes.
pub fn oriented_size(info: &ContainerInfo, exif_orientation: Option<u16>) -> (u32, u32) {
    let swap = match info.format {
        ImageFormat::Heif | ImageFormat::Avif => info.quarter_turns % 2 == 1,
        _ => matches!(exif_orientation, Some(5..=8)),
    };
    if swap {
        (info.height, info.width)
    } else {
        (info.width, info.height)
    }
}

/// Decodes pixels of a file that passed [`inspect`].
pub fn decode(
    bytes: &[u8],
    info: &ContainerInfo,
    exif_orientation: Option<u16>,
    limits: &DecodeLimits,
) -> Result<DecodedImage, DecodeError> {
    let format = info.format;
    let (width, height) = oriented_size(info, exif_orientation);
    let (pixels, reduction) = match format {
        ImageFormat::Heif | ImageFormat::Avif => (decode_heif(bytes, format)?, 1),
        _ => {
            let reduction = if format == ImageFormat::Jpeg {
                jpeg_reduction(info.width.max(info.height), limits.working_edge)
            } else {
                1
            };
            let stored = decode_opencv(bytes, format, reduction)?;
            let (expect_w, expect_h) = (
                info.width.div_ceil(reduction),
                info.height.div_ceil(reduction),
            );
            let (got_w, got_h) = mat_size(&stored);
            if (got_w, got_h) != (expect_w, expect_h) {
                return Err(DecodeError::SizeMismatch {
                    format: format.name(),
                    width: info.width,
                    height: info.height,
                    got_width: got_w,
                    got_height: got_h,
                });
            }
            (
                apply_orientation(stored, exif_orientation.unwrap_or(1))
                    .map_err(|e| cv_err(format, &e))?,
                reduction,
            )
        }
    };
    let (got_w, got_h) = mat_size(&pixels);
    if reduction == 1 && (got_w, got_h) != (width, height) {
        return Err(DecodeError::SizeMismatch {
            format: format.name(),
            width,
            height,
            got_width: got_w,
            got_height: got_h,
        });
    }
    Ok(DecodedImage {
        pixels,
        format,
        width,
        height,
        reduction,
    })
}

/// The largest libjpeg scale (1, 2, 4, 8) that keeps the longest edge ≥ `working_edge`.
pub fn jpeg_reduction(longest_edge: u32, working_edge: u32) -> u32 {
    [8, 4, 2]
        .into_iter()
        .find(|&r| longest_edge / r >= working_edge)
        .unwrap_or(1)
}

fn decode_opencv(bytes: &[u8], format: ImageFormat, reduction: u32) -> Result<Mat, DecodeError> {
    let mode = match reduction {
        2 => imgcodecs::IMREAD_REDUCED_COLOR_2,
        4 => imgcodecs::IMREAD_REDUCED_COLOR_4,
        8 => imgcodecs::IMREAD_REDUCED_COLOR_8,
        _ => imgcodecs::IMREAD_COLOR,
    };
    // Orientation is applied by us, from the EXIF we parsed, for every format alike.
    let flags = mode | imgcodecs::IMREAD_IGNORE_ORIENTATION;
    let buf = Mat::from_slice(bytes).map_err(|e| cv_err(format, &e))?;
    let mat = imgcodecs::imdecode(&buf, flags).map_err(|e| cv_err(format, &e))?;
    if mat.empty() {
        return Err(DecodeError::Decoder {
            format: format.name(),
            detail: "the image data could not be decoded".into(),
        });
    }
    Ok(mat)
}

fn decode_heif(bytes: &[u8], format: ImageFormat) -> Result<Mat, DecodeError> {
    use libheif_rs::{ColorSpace, HeifContext, LibHeif, RgbChroma};
    let heif_err = |e: libheif_rs::HeifError| DecodeError::Decoder {
        format: format.name(),
        detail: e.message.clone(),
    };
    let context = HeifContext::read_from_bytes(bytes).map_err(heif_err)?;
    let handle = context.primary_image_handle().map_err(heif_err)?;
    // decode() applies the container's rotation, mirroring and cropping.
    let image = LibHeif::new()
        .decode(&handle, ColorSpace::Rgb(RgbChroma::Rgb), None)
        .map_err(heif_err)?;
    let planes = image.planes();
    let plane = planes.interleaved.ok_or_else(|| DecodeError::Decoder {
        format: format.name(),
        detail: "no interleaved RGB plane".into(),
    })?;
    let (w, h) = (plane.width as usize, plane.height as usize);
    if w == 0 || h == 0 || plane.stride < 3 * w || plane.data.len() < plane.stride * (h - 1) + 3 * w
    {
        return Err(DecodeError::Decoder {
            format: format.name(),
            detail: "decoded plane has an invalid layout".into(),
        });
    }
    let cv = |e: opencv::Error| cv_err(format, &e);
    let mut rgb = Mat::new_rows_cols_with_default(
        i32::try_from(h).map_err(|_| DecodeError::ZeroSize)?,
        i32::try_from(w).map_err(|_| DecodeError::ZeroSize)?,
        cv::CV_8UC3,
        cv::Scalar::all(0.0),
    )
    .map_err(cv)?;
    let dest = rgb.data_bytes_mut().map_err(cv)?;
    for row in 0..h {
        dest[row * 3 * w..(row + 1) * 3 * w]
            .copy_from_slice(&plane.data[row * plane.stride..row * plane.stride + 3 * w]);
    }
    let mut bgr = Mat::default();
    imgproc::cvt_color_def(&rgb, &mut bgr, imgproc::COLOR_RGB2BGR).map_err(cv)?;
    Ok(bgr)
}

/// Turns a stored image upright, for EXIF orientations 1–8 (as OpenCV's own
/// ExifTransform does).
pub fn apply_orientation(image: Mat, orientation: u16) -> opencv::Result<Mat> {
    let flip = |src: &Mat, code: i32| -> opencv::Result<Mat> {
        let mut out = Mat::default();
        cv::flip(src, &mut out, code)?;
        Ok(out)
    };
    let transpose = |src: &Mat| -> opencv::Result<Mat> {
        let mut out = Mat::default();
        cv::transpose(src, &mut out)?;
        Ok(out)
    };
    match orientation {
        2 => flip(&image, 1),
        3 => flip(&image, -1),
        4 => flip(&image, 0),
        5 => transpose(&image),
        6 => flip(&transpose(&image)?, 1),
        7 => flip(&transpose(&image)?, -1),
        8 => flip(&transpose(&image)?, 0),
        _ => Ok(image),
    }
}

pub fn mat_size(mat: &Mat) -> (u32, u32) {
    (
        u32::try_from(mat.cols()).unwrap_or(0),
        u32::try_from(mat.rows()).unwrap_or(0),
    )
}

fn cv_err(format: ImageFormat, err: &opencv::Error) -> DecodeError {
    DecodeError::Decoder {
        format: format.name(),
        detail: err.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_keeps_the_working_edge() {
        assert_eq!(jpeg_reduction(4000, 2048), 1);
        assert_eq!(jpeg_reduction(4096, 2048), 2);
        assert_eq!(jpeg_reduction(9000, 2048), 4);
        assert_eq!(jpeg_reduction(20000, 2048), 8);
        assert_eq!(jpeg_reduction(100, 2048), 1);
    }

    fn gradient(w: i32, h: i32) -> Mat {
        let mut mat =
            Mat::new_rows_cols_with_default(h, w, cv::CV_8UC3, cv::Scalar::all(0.0)).unwrap();
        let data = mat.data_bytes_mut().unwrap();
        for (idx, px) in data.chunks_mut(3).enumerate() {
            let (x, y) = (idx as i32 % w, idx as i32 / w);
            px.copy_from_slice(&[
                (x * 7 % 256) as u8,
                (y * 13 % 256) as u8,
                ((x + y) % 256) as u8,
            ]);
        }
        mat
    }

    /// Stores `upright` the way a camera with `orientation` would, so that
    /// applying the orientation must give `upright` back.
    fn as_stored(upright: &Mat, orientation: u16) -> Mat {
        // The inverse of each orientation's correction.
        let inverse = match orientation {
            6 => 8,
            8 => 6,
            other => other,
        };
        apply_orientation(upright.clone(), inverse).unwrap()
    }

    #[test]
    fn every_orientation_comes_back_upright() {
        let upright = gradient(6, 4);
        for orientation in 1..=8u16 {
            let stored = as_stored(&upright, orientation);
            let fixed = apply_orientation(stored, orientation).unwrap();
            assert_eq!(mat_size(&fixed), (6, 4), "orientation {orientation}");
            assert_eq!(
                fixed.data_bytes().unwrap(),
                upright.data_bytes().unwrap(),
                "orientation {orientation}"
            );
        }
    }

    #[test]
    fn pixel_limit_is_checked_from_the_header() {
        // A PNG header claiming 65535×65535 with no pixel data at all.
        let limits = DecodeLimits {
            max_pixels: 100_000_000,
            working_edge: 2048,
        };
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&65535u32.to_be_bytes());
        ihdr.extend_from_slice(&65535u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        match inspect(&png, &limits) {
            Err(err @ DecodeError::TooManyPixels { .. }) => {
                assert_eq!(err.code(), "too-many-pixels");
                assert!(err.to_string().contains("65535×65535"), "{err}");
            }
            Err(DecodeError::Container(ContainerError::Truncated { .. })) => {}
            other => panic!(
                "expected a refusal, got {:?}",
                other.map(|i| (i.width, i.height))
            ),
        }
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
