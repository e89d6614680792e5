//! face-api's 68-point face landmark net (`FaceLandmark68Net`, 356 840
//! parameters), ported to candle.
//!
//! Input: an RGB photo and a face box from the detector, in image pixels
//! ([`FaceLandmarker::landmarks`]), or an already prepared
//! `[N, 3, 112, 112]` tensor ([`FaceLandmarker::forward`]).
//! Output: 68 points per face in image pixels, in the iBUG-68 order (jaw
//! 0–16, brows 17–26, nose 27–35, eyes 36–47, mouth 48–67); the raw pass
//! gives `[N, 136]` interleaved `x0, y0, x1, y1, …` in `[0, 1]` of the padded
//! 112 × 112 square.
//! Failure modes: missing or misshapen weights when building
//! ([`candle_core::Error`]); a prepared tensor that is not `[N, 3, 112, 112]`.
//! A box with no pixel inside its photo yields an empty point list rather than
//! an error, so one bad detection does not sink a batch.
//!
//! Reference: face-api 1.7.15 by Vladimir Mandic (npm `@vladmandic/face-api`,
//! MIT), itself a fork of Vincent Mühler's face-api.js (MIT):
//! `src/faceLandmarkNet/FaceLandmark68NetBase.ts`,
//! `src/faceFeatureExtractor/{FaceFeatureExtractor,denseBlock}.ts`,
//! `src/dom/{NetInput,extractFaceTensors}.ts`, `src/ops/padToSquare.ts`,
//! `src/classes/Box.ts` (`clipAtImageBorders`).
//!
//! Pre-processing, as face-api does it:
//! - the box is clipped to the photo, then x, y, width and height are each
//!   floored (`Box.clipAtImageBorders`; note: the width is floored, not the
//!   right edge) and those pixels are cut out;
//! - the short side is zero-padded to a square, `round(d/2)` after the crop
//!   and the rest before (`padToSquare(…, isCenterImage = true)`);
//! - resized to 112 × 112 with `tf.image.resizeBilinear(alignCorners = false,
//!   halfPixelCenters = false)`;
//! - `x = (pixel − [122.782, 117.001, 104.298]) / 255`.
//!
//! Architecture (tfjs "same" padding everywhere, the odd pixel at the
//! bottom/right): four dense blocks `dense0..3` of 32, 64, 128, 256 channels,
//! each halving the side (112 → 56 → 28 → 14 → 7):
//! `o1 = relu(conv0(x))` (stride 2; a full 3 × 3 conv in `dense0`, a separable
//! conv in the others), `o2 = sep(o1)`, `o3 = sep(relu(o1 + o2))`,
//! `o4 = sep(relu(o1 + o2 + o3))`, `out = relu(o1 + o2 + o3 + o4)`, where
//! `sep` is a depthwise 3 × 3, a pointwise 1 × 1 and a bias, no activation.
//! Then a 7 × 7 average pool (the global mean) and a 256 → 136 fully
//! connected layer, no activation.
//!
//! Post-processing deviates from face-api on purpose: a point is mapped back
//! through the crop that was actually cut out (`crop.x + o·S − pad_before`,
//! `S` the padded side). face-api instead adds the *unfloored* box corner and
//! subtracts half the padding unrounded (`d/2` where `floor(d/2)` was
//! padded), so its points sit up to 1 px right of/below the pixels the network
//! saw, plus up to 0.5 px off on the padded axis (under 1.42 px in all), and
//! for a box sticking out of the photo's top or left edge they are off by the
//! whole part outside.

use candle_core::{D, DType, Result, Tensor, bail};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use crate::depthwise::{Pad, depthwise3x3};
use crate::image::{Point, Rect, RgbRef};

/// Points per face.
pub const NUM_LANDMARKS: usize = 68;
/// Per-channel means face-api subtracts from the R, G, B pixel values.
pub const INPUT_MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];
/// face-api divides by 255 after subtracting the mean.
const INPUT_DIVISOR: f32 = 255.0;
/// Faces per forward pass in [`FaceLandmarker::landmarks`]. On the CPU the
/// cost per face is flat from batch 1 to 32 (the network is bound by memory
/// traffic, not by the GEMMs), so this only bounds the activations (about
/// 2.5 MB a face at the widest layer).
const MAX_BATCH: usize = 16;

/// The weights under face-api's names: tfjs joins scopes with `/`
/// (`dense1/conv2/bias`) where [`VarBuilder::pp`] would join with `.`.
#[derive(Clone)]
struct Vars<'a> {
    vb: VarBuilder<'a>,
    prefix: String,
}

impl<'a> Vars<'a> {
    fn new(vb: VarBuilder<'a>) -> Self {
        Self {
            vb,
            prefix: String::new(),
        }
    }

    fn pp(&self, scope: impl std::fmt::Display) -> Self {
        Self {
            vb: self.vb.clone(),
            prefix: format!("{}{scope}/", self.prefix),
        }
    }

    fn get<S: Into<candle_core::Shape>>(&self, shape: S, name: &str) -> Result<Tensor> {
        self.vb.get(shape, &format!("{}{name}", self.prefix))
    }
}

/// TensorFlow "same" padding for a 3 × 3 kernel on the activations `x`.
fn same_pad(x: &Tensor, stride: usize) -> Result<Pad> {
    let (_, _, h, w) = x.dims4()?;
    Ok(Pad::tf_same(h, w, 3, stride))
}

/// A full 3 × 3 convolution with bias and tf "same" padding
/// (`dense0/conv0`, 3 → 32, stride 2).
///
/// candle's `conv2d` (im2col + GEMM) is used as is: a hand-written phase
/// im2col was barely faster at batch 1 and slower at batch 16.
#[derive(Debug, Clone)]
struct Conv {
    /// `[C_out, C_in, 3, 3]`, from tfjs' HWIO.
    weight: Tensor,
    bias: Tensor,
    stride: usize,
}

impl Conv {
    fn new(c_in: usize, c_out: usize, stride: usize, vb: Vars) -> Result<Self> {
        let weight = vb
            .get((3, 3, c_in, c_out), "filters")?
            .permute((3, 2, 0, 1))?
            .contiguous()?;
        let bias = vb.get(c_out, "bias")?.reshape((1, c_out, 1, 1))?;
        Ok(Self {
            weight,
            bias,
            stride,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // candle pads symmetrically; tf's "same" puts the odd pixel at the end.
        let pad = same_pad(x, self.stride)?;
        let x = x
            .pad_with_zeros(2, pad.top, pad.bottom)?
            .pad_with_zeros(3, pad.left, pad.right)?;
        x.conv2d(&self.weight, 0, self.stride, 1, 1)?
            .broadcast_add(&self.bias)
    }
}

/// `tf.separableConv2d` plus bias: depthwise 3 × 3, pointwise 1 × 1.
#[derive(Debug, Clone)]
struct SeparableConv {
    /// `[C_in, 1, 3, 3]`, from tfjs' `[3, 3, C_in, 1]`.
    depthwise: Tensor,
    /// `[C_out, C_in]`, from tfjs' `[1, 1, C_in, C_out]`.
    pointwise: Tensor,
    bias: Tensor,
    stride: usize,
}

impl SeparableConv {
    fn new(c_in: usize, c_out: usize, stride: usize, vb: Vars) -> Result<Self> {
        let depthwise = vb
            .get((3, 3, c_in, 1), "depthwise_filter")?
            .permute((2, 3, 0, 1))?
            .contiguous()?;
        let pointwise = vb
            .get((1, 1, c_in, c_out), "pointwise_filter")?
            .reshape((c_in, c_out))?
            .t()?
            .contiguous()?;
        let bias = vb.get(c_out, "bias")?.reshape((1, c_out, 1))?;
        Ok(Self {
            depthwise,
            pointwise,
            bias,
            stride,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = depthwise3x3(x, &self.depthwise, self.stride, same_pad(x, self.stride)?)?;
        let (n, c, h, w) = y.dims4()?;
        // The 1 × 1 conv as one GEMM per image, `[C_out, C_in] · [C_in, H·W]`,
        // on NCHW as it is; the weight is broadcast with a zero batch stride,
        // which candle's CPU matmul takes without copying.
        let c_out = self.pointwise.dim(0)?;
        let y = y.reshape((n, c, h * w))?;
        let out = self.pointwise.broadcast_as((n, c_out, c))?.matmul(&y)?;
        out.broadcast_add(&self.bias)?.reshape((n, c_out, h, w))
    }
}

/// The first layer of a dense block: it halves the side and sets the width.
#[derive(Debug, Clone)]
enum Conv0 {
    Full(Conv),
    Separable(SeparableConv),
}

/// face-api's `denseBlock4` (with `isScaleDown`): every layer sees the sum of
/// the outputs of the layers before it.
#[derive(Debug, Clone)]
struct DenseBlock {
    conv0: Conv0,
    conv1: SeparableConv,
    conv2: SeparableConv,
    conv3: SeparableConv,
}

impl DenseBlock {
    fn new(c_in: usize, c_out: usize, first: bool, vb: Vars) -> Result<Self> {
        let conv0 = if first {
            Conv0::Full(Conv::new(c_in, c_out, 2, vb.pp("conv0"))?)
        } else {
            Conv0::Separable(SeparableConv::new(c_in, c_out, 2, vb.pp("conv0"))?)
        };
        Ok(Self {
            conv0,
            conv1: SeparableConv::new(c_out, c_out, 1, vb.pp("conv1"))?,
            conv2: SeparableConv::new(c_out, c_out, 1, vb.pp("conv2"))?,
            conv3: SeparableConv::new(c_out, c_out, 1, vb.pp("conv3"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let o1 = match &self.conv0 {
            Conv0::Full(c) => c.forward(x)?,
            Conv0::Separable(c) => c.forward(x)?,
        }
        .relu()?;
        // A running sum: face-api nests it the other way,
        // `o1 + (o2 + (o3 + o4))`, which costs twice the additions and moves
        // the outputs by float rounding only (parity is unchanged).
        let sum = (&o1 + self.conv1.forward(&o1)?)?;
        let sum = (&sum + self.conv2.forward(&sum.relu()?)?)?;
        let sum = (&sum + self.conv3.forward(&sum.relu()?)?)?;
        sum.relu()
    }
}

/// `tf.matMul(x, weights) + bias` with tfjs' `[C_in, C_out]` weights.
#[derive(Debug, Clone)]
struct FullyConnected {
    weight: Tensor,
    bias: Tensor,
}

impl FullyConnected {
    fn new(c_in: usize, c_out: usize, vb: Vars) -> Result<Self> {
        Ok(Self {
            weight: vb.get((c_in, c_out), "weights")?,
            bias: vb.get(c_out, "bias")?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// The pixels face-api cuts out for a face box: the box clipped to the photo,
/// then its x, y, width and height each floored (`Box.clipAtImageBorders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaceCrop {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl FaceCrop {
    /// The crop of `rect` in a `image_width × image_height` photo; `None`
    /// when not a single pixel is left (or the box is not finite).
    pub fn new(rect: Rect, image_width: usize, image_height: usize) -> Option<Self> {
        let [x, y, w, h] = [rect.x, rect.y, rect.width, rect.height].map(f64::from);
        if ![x, y, w, h].iter().all(|v| v.is_finite()) {
            return None;
        }
        // JavaScript numbers are doubles; so is this arithmetic.
        let (cx, cy) = (x.max(0.0), y.max(0.0));
        let cw = (x + w - cx).min(image_width as f64 - cx).floor();
        let ch = (y + h - cy).min(image_height as f64 - cy).floor();
        // Also covers a box starting right of or below the photo.
        if cw < 1.0 || ch < 1.0 {
            return None;
        }
        Some(Self {
            x: cx as usize,
            y: cy as usize,
            width: cw as usize,
            height: ch as usize,
        })
    }

    /// Side of the padded square.
    pub fn side(&self) -> usize {
        self.width.max(self.height)
    }

    /// Zero columns (left) and rows (top) the centred padding puts before
    /// the crop: the difference minus `round(d/2)`, which goes after it.
    pub fn pad_before(&self) -> (usize, usize) {
        let d = self.side() - self.width.min(self.height);
        // `Math.round` of a half-integer rounds up, so "after" is `ceil(d/2)`.
        let before = d - d.div_ceil(2);
        if self.width < self.height {
            (before, 0)
        } else {
            (0, before)
        }
    }

    /// The network input for this crop of `image`: `3 × 112 × 112` values,
    /// planar RGB, normalised.
    ///
    /// Crop, centred padding and tf bilinear resize in one pass: each sample
    /// reads the crop where the padded square has pixels and zero elsewhere,
    /// with the same float operations as padding then
    /// [`RgbRef::resize_bilinear_tf`], so the result is bit-identical.
    pub fn input(&self, image: RgbRef<'_>) -> Vec<f32> {
        const N: usize = FaceLandmarker::INPUT_SIZE;
        let side = self.side();
        let (left, top) = self.pad_before();
        let scale = side as f32 / N as f32;
        // Per output column/row: the two padded-square source indices and the
        // weight of the second.
        let taps: Vec<(usize, usize, f32)> = (0..N)
            .map(|i| {
                let src = i as f32 * scale;
                let i0 = (src.floor() as usize).min(side - 1);
                (i0, (i0 + 1).min(side - 1), src - i0 as f32)
            })
            .collect();
        // A padded-square pixel: inside the crop, the photo's; else black.
        let pixel = |px: usize, py: usize| -> [f32; 3] {
            let (Some(cx), Some(cy)) = (px.checked_sub(left), py.checked_sub(top)) else {
                return [0.0; 3];
            };
            if cx >= self.width || cy >= self.height {
                return [0.0; 3];
            }
            image.pixel(self.x + cx, self.y + cy).map(f32::from)
        };
        let mut out = vec![0f32; 3 * N * N];
        for (oy, &(y0, y1, fy)) in taps.iter().enumerate() {
            for (ox, &(x0, x1, fx)) in taps.iter().enumerate() {
                let (tl, tr) = (pixel(x0, y0), pixel(x1, y0));
                let (bl, br) = (pixel(x0, y1), pixel(x1, y1));
                for c in 0..3 {
                    let t = tl[c] + (tr[c] - tl[c]) * fx;
                    let b = bl[c] + (br[c] - bl[c]) * fx;
                    let v = t + (b - t) * fy;
                    out[(c * N + oy) * N + ox] = (v - INPUT_MEAN_RGB[c]) / INPUT_DIVISOR;
                }
            }
        }
        out
    }

    /// Maps one row of the raw output (`x0, y0, x1, y1, …` in `[0, 1]` of
    /// the padded square) to image pixels.
    pub fn to_image(&self, raw: &[f32]) -> Vec<Point> {
        let side = self.side() as f32;
        let (left, top) = self.pad_before();
        let x0 = self.x as f32 - left as f32;
        let y0 = self.y as f32 - top as f32;
        raw.chunks_exact(2)
            .map(|p| Point::new(x0 + p[0] * side, y0 + p[1] * side))
            .collect()
    }
}

/// face-api's `FaceLandmark68Net`. See the module docs.
#[derive(Debug, Clone)]
pub struct FaceLandmarker {
    dense: [DenseBlock; 4],
    fc: FullyConnected,
}

impl FaceLandmarker {
    /// Side of the square network input, in pixels.
    pub const INPUT_SIZE: usize = 112;

    /// Builds the network from tensors named and shaped as in face-api's
    /// weights manifest (`dense0/conv0/filters`, …, `fc/bias`), in tfjs
    /// layout; they are permuted here. Runs on `vb.device()`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let vb = Vars::new(vb);
        let block = |i: usize, c_in, c_out| {
            DenseBlock::new(c_in, c_out, i == 0, vb.pp(format!("dense{i}")))
        };
        Ok(Self {
            dense: [
                block(0, 3, 32)?,
                block(1, 32, 64)?,
                block(2, 64, 128)?,
                block(3, 128, 256)?,
            ],
            fc: FullyConnected::new(256, 2 * NUM_LANDMARKS, vb.pp("fc"))?,
        })
    }

    /// The landmarks of each face, batched across photos: one list of
    /// [`NUM_LANDMARKS`] points in image pixels per `(photo, box)`, or an
    /// empty list for a box with no pixel inside its photo.
    pub fn landmarks(&self, faces: &[(RgbRef<'_>, Rect)]) -> Result<Vec<Vec<Point>>> {
        let todo: Vec<(usize, FaceCrop)> = faces
            .iter()
            .enumerate()
            .filter_map(|(i, (img, rect))| Some((i, FaceCrop::new(*rect, img.width, img.height)?)))
            .collect();
        let mut out = vec![Vec::new(); faces.len()];
        let device = self.fc.weight.device();
        let n = Self::INPUT_SIZE;
        for chunk in todo.chunks(MAX_BATCH) {
            let inputs: Vec<Vec<f32>> = chunk
                .par_iter()
                .map(|&(i, crop)| crop.input(faces[i].0))
                .collect();
            let x = Tensor::from_vec(inputs.concat(), (chunk.len(), 3, n, n), device)?
                .to_dtype(self.fc.weight.dtype())?;
            let raw = self.forward(&x)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            for (&(i, crop), row) in chunk.iter().zip(&raw) {
                out[i] = crop.to_image(row);
            }
        }
        Ok(out)
    }

    /// The raw pass: `x` is `[N, 3, 112, 112]` as [`FaceCrop::input`] makes
    /// it; returns `[N, 136]`, `x, y` pairs in `[0, 1]` of the padded square.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        if (c, h, w) != (3, Self::INPUT_SIZE, Self::INPUT_SIZE) {
            bail!(
                "landmark net input must be [N, 3, 112, 112], got {:?}",
                x.dims()
            );
        }
        let mut x = x.clone();
        for block in &self.dense {
            x = block.forward(&x)?;
        }
        // `avgPool(7 × 7, stride 2, valid)` on the 7 × 7 map is its mean.
        let pooled = x.flatten_from(2)?.mean(D::Minus1)?;
        self.fc.forward(&pooled)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::Device;

    use super::*;
    use crate::image::RgbImage;

    fn rect(x: f32, y: f32, width: f32, height: f32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn crop_floors_the_clipped_width_not_the_right_edge() {
        // right = 31.3, but floor(10.7) + floor(20.6) = 30.
        let c = FaceCrop::new(rect(10.7, 5.2, 20.6, 30.9), 100, 100).unwrap();
        assert_eq!(
            c,
            FaceCrop {
                x: 10,
                y: 5,
                width: 20,
                height: 30
            }
        );
    }

    #[test]
    fn crop_is_clipped_before_flooring() {
        // x: clipped to 0, width 17.1 → 17; y: clipped at the bottom, 50 − 40.5 → 9.
        let c = FaceCrop::new(rect(-3.5, 40.5, 20.6, 30.0), 100, 50).unwrap();
        assert_eq!(
            c,
            FaceCrop {
                x: 0,
                y: 40,
                width: 17,
                height: 9
            }
        );
    }

    #[test]
    fn empty_or_invalid_boxes_have_no_crop() {
        assert_eq!(FaceCrop::new(rect(120.0, 0.0, 10.0, 10.0), 100, 100), None);
        assert_eq!(FaceCrop::new(rect(-20.0, 0.0, 10.0, 10.0), 100, 100), None);
        assert_eq!(FaceCrop::new(rect(10.0, 10.0, 0.5, 10.0), 100, 100), None);
        assert_eq!(
            FaceCrop::new(rect(f32::NAN, 0.0, 10.0, 10.0), 100, 100),
            None
        );
    }

    #[test]
    fn centred_padding_puts_the_rounded_half_after() {
        let crop = |width, height| FaceCrop {
            x: 0,
            y: 0,
            width,
            height,
        };
        // d = 3: round(1.5) = 2 after, 1 before.
        assert_eq!(crop(2, 5).pad_before(), (1, 0));
        assert_eq!(crop(5, 2).pad_before(), (0, 1));
        assert_eq!(crop(4, 8).pad_before(), (2, 0));
        assert_eq!(crop(7, 7).pad_before(), (0, 0));
    }

    #[test]
    fn input_matches_crop_pad_resize_of_the_image_module() {
        let (w, h) = (61, 47);
        let data: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 251) as u8).collect();
        let img = RgbImage::new(w, h, data);
        for crop in [
            FaceCrop {
                x: 3,
                y: 4,
                width: 40,
                height: 31,
            },
            FaceCrop {
                x: 0,
                y: 0,
                width: 20,
                height: 47,
            },
            FaceCrop {
                x: 5,
                y: 2,
                width: 9,
                height: 9,
            },
        ] {
            let cut = img
                .as_ref()
                .crop(crop.x, crop.y, crop.x + crop.width, crop.y + crop.height);
            let square = cut.as_ref().pad_to_square_centred();
            let n = FaceLandmarker::INPUT_SIZE;
            let hwc = square.as_ref().resize_bilinear_tf(n, n);
            let ours = crop.input(img.as_ref());
            for (i, px) in hwc.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    let want = (px[c] - INPUT_MEAN_RGB[c]) / 255.0;
                    assert_eq!(ours[c * n * n + i], want, "{crop:?} pixel {i} channel {c}");
                }
            }
        }
    }

    #[test]
    fn outputs_map_back_through_the_padded_square() {
        // 40 × 60 crop at (100, 200): S = 60, 10 columns of padding before.
        let crop = FaceCrop {
            x: 100,
            y: 200,
            width: 40,
            height: 60,
        };
        let pts = crop.to_image(&[0.0, 0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(
            pts,
            vec![
                Point::new(90.0, 200.0),
                Point::new(120.0, 230.0),
                Point::new(150.0, 260.0)
            ]
        );
    }

    /// Deterministic values in about [-0.5, 0.5).
    fn noise(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                ((i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 8) as f32
                    / (1u32 << 24) as f32)
                    - 0.5
            })
            .collect()
    }

    /// Every tensor of the weights manifest, tfjs layout, filled with noise.
    fn random_weights() -> HashMap<String, Tensor> {
        let dev = Device::Cpu;
        let mut map = HashMap::new();
        let mut add = |name: String, shape: &[usize]| {
            let len = shape.iter().product();
            let t = Tensor::from_vec(noise(len, map.len() as u32 * 7919), shape, &dev).unwrap();
            map.insert(name, t);
        };
        let widths = [3, 32, 64, 128, 256];
        for b in 0..4 {
            let (ci, co) = (widths[b], widths[b + 1]);
            if b == 0 {
                add("dense0/conv0/filters".into(), &[3, 3, ci, co]);
                add("dense0/conv0/bias".into(), &[co]);
            }
            for l in usize::from(b == 0)..4 {
                let cin = if l == 0 { ci } else { co };
                add(
                    format!("dense{b}/conv{l}/depthwise_filter"),
                    &[3, 3, cin, 1],
                );
                add(
                    format!("dense{b}/conv{l}/pointwise_filter"),
                    &[1, 1, cin, co],
                );
                add(format!("dense{b}/conv{l}/bias"), &[co]);
            }
        }
        add("fc/weights".into(), &[256, 136]);
        add("fc/bias".into(), &[136]);
        map
    }

    #[test]
    fn builds_from_the_manifest_names_and_counts_every_parameter() {
        let map = random_weights();
        assert_eq!(map.len(), 49);
        let params: usize = map.values().map(|t| t.elem_count()).sum();
        assert_eq!(params, 356_840);
        let net =
            FaceLandmarker::new(VarBuilder::from_tensors(map, DType::F32, &Device::Cpu)).unwrap();
        let x = Tensor::zeros((2, 3, 112, 112), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(net.forward(&x).unwrap().dims(), &[2, 136]);
        let bad = Tensor::zeros((1, 3, 100, 100), DType::F32, &Device::Cpu).unwrap();
        assert!(net.forward(&bad).is_err());
    }

    /// tfjs' separable conv with "same" padding, written out on NHWC/HWIO
    /// arrays, to pin down the weight permutations and the padding.
    fn separable_reference(
        x: &[f32],
        (h, w, c): (usize, usize, usize),
        dw: &[f32],
        pw: &[f32],
        c_out: usize,
        stride: usize,
    ) -> Vec<f32> {
        let (oh, ow) = (h.div_ceil(stride), w.div_ceil(stride));
        let pad_total = |n: usize, o: usize| ((o - 1) * stride + 3).saturating_sub(n);
        let (pt, pl) = (pad_total(h, oh) / 2, pad_total(w, ow) / 2);
        let mut mid = vec![0f32; oh * ow * c];
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let mut s = 0f32;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let iy = (oy * stride + ky) as isize - pt as isize;
                            let ix = (ox * stride + kx) as isize - pl as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                s += x[(iy as usize * w + ix as usize) * c + ch]
                                    * dw[(ky * 3 + kx) * c + ch];
                            }
                        }
                    }
                    mid[(oy * ow + ox) * c + ch] = s;
                }
            }
        }
        let mut out = vec![0f32; oh * ow * c_out];
        for p in 0..oh * ow {
            for co in 0..c_out {
                out[p * c_out + co] = (0..c).map(|ci| mid[p * c + ci] * pw[ci * c_out + co]).sum();
            }
        }
        out
    }

    #[test]
    fn full_conv_matches_tfjs_same_padding() {
        let dev = Device::Cpu;
        let (c, c_out) = (3, 4);
        let filters = noise(9 * c * c_out, 4);
        for (h, w) in [(6, 6), (7, 5)] {
            let x = noise(h * w * c, 5);
            let mut map = HashMap::new();
            map.insert(
                "filters".to_string(),
                Tensor::from_vec(filters.clone(), (3, 3, c, c_out), &dev).unwrap(),
            );
            map.insert(
                "bias".to_string(),
                Tensor::zeros(c_out, DType::F32, &dev).unwrap(),
            );
            let vb = VarBuilder::from_tensors(map, DType::F32, &dev);
            let layer = Conv::new(c, c_out, 2, Vars::new(vb)).unwrap();
            let nchw = Tensor::from_vec(x.clone(), (1, h, w, c), &dev)
                .unwrap()
                .permute((0, 3, 1, 2))
                .unwrap();
            let got = layer.forward(&nchw.contiguous().unwrap()).unwrap();
            let got: Vec<f32> = got
                .permute((0, 2, 3, 1))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            // tf "same", stride 2: `total = (out − 1)·2 + 3 − in`, the odd
            // pixel after (so none before on an even side).
            let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
            let before = |n: usize, o: usize| ((o - 1) * 2 + 3 - n) / 2;
            let (pt, pl) = (before(h, oh), before(w, ow));
            let mut want = vec![0f32; oh * ow * c_out];
            for (oy, ox, ky, kx, ci) in (0..oh).flat_map(|oy| {
                (0..ow).flat_map(move |ox| {
                    (0..9).flat_map(move |k| (0..c).map(move |ci| (oy, ox, k / 3, k % 3, ci)))
                })
            }) {
                let (Some(iy), Some(ix)) =
                    ((oy * 2 + ky).checked_sub(pt), (ox * 2 + kx).checked_sub(pl))
                else {
                    continue;
                };
                if iy < h && ix < w {
                    for co in 0..c_out {
                        want[(oy * ow + ox) * c_out + co] += x[(iy * w + ix) * c + ci]
                            * filters[((ky * 3 + kx) * c + ci) * c_out + co];
                    }
                }
            }
            for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                assert!((g - r).abs() < 1e-5, "{h}×{w} at {i}: {g} vs {r}");
            }
        }
    }

    #[test]
    fn separable_conv_matches_tfjs_semantics() {
        let dev = Device::Cpu;
        let (c, c_out) = (5, 4);
        let dw = noise(9 * c, 1);
        let pw = noise(c * c_out, 2);
        for (h, w, stride) in [(6, 6, 2), (7, 5, 2), (5, 6, 1)] {
            let x = noise(h * w * c, 3);
            let mut map = HashMap::new();
            map.insert(
                "depthwise_filter".to_string(),
                Tensor::from_vec(dw.clone(), (3, 3, c, 1), &dev).unwrap(),
            );
            map.insert(
                "pointwise_filter".to_string(),
                Tensor::from_vec(pw.clone(), (1, 1, c, c_out), &dev).unwrap(),
            );
            map.insert(
                "bias".to_string(),
                Tensor::zeros(c_out, DType::F32, &dev).unwrap(),
            );
            let vb = VarBuilder::from_tensors(map, DType::F32, &dev);
            let layer = SeparableConv::new(c, c_out, stride, Vars::new(vb)).unwrap();
            let nchw = Tensor::from_vec(x.clone(), (1, h, w, c), &dev)
                .unwrap()
                .permute((0, 3, 1, 2))
                .unwrap();
            let got = layer.forward(&nchw.contiguous().unwrap()).unwrap();
            let got: Vec<f32> = got
                .permute((0, 2, 3, 1))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let want = separable_reference(&x, (h, w, c), &dw, &pw, c_out, stride);
            assert_eq!(got.len(), want.len());
            for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                assert!((g - r).abs() < 1e-5, "{h}×{w}/{stride} at {i}: {g} vs {r}");
            }
        }
    }

    #[test]
    fn landmarks_skip_boxes_outside_the_photo() {
        let net = FaceLandmarker::new(VarBuilder::from_tensors(
            random_weights(),
            DType::F32,
            &Device::Cpu,
        ))
        .unwrap();
        let img = RgbImage::new(
            50,
            40,
            noise(50 * 40 * 3, 9)
                .iter()
                .map(|v| ((v + 0.5) * 255.0) as u8)
                .collect(),
        );
        let faces = [
            (img.as_ref(), rect(5.0, 5.0, 30.0, 20.0)),
            (img.as_ref(), rect(60.0, 0.0, 10.0, 10.0)),
        ];
        let out = net.landmarks(&faces).unwrap();
        assert_eq!(out[0].len(), NUM_LANDMARKS);
        assert!(out[1].is_empty());
    }
}
