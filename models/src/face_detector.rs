//! SSD-MobileNetV1 face detector, a port of face-api's `SsdMobilenetv1`.
//!
//! Input: RGB photos ([`RgbRef`], any size, upright), batched. Output: per
//! photo, the faces found ([`Detection`]: box in pixels of that photo and a
//! score in 0..1), best first, after greedy non-maximum suppression.
//! Failure modes: loading fails when a tensor is missing from the
//! [`VarBuilder`] or has an unexpected shape; inference only fails when a
//! tensor op does (e.g. out of GPU memory). A photo without pixels has no
//! faces.
//!
//! Everything follows face-api 1.7.15 (`src/ssdMobilenetv1/*.ts`,
//! `src/dom/NetInput.ts`; Vladimir Mandic's fork of Vincent Mühler's
//! face-api.js, MIT licence) so that the same weights give the same boxes:
//! - pre-processing: zero-pad at the bottom/right to a square, resize to
//!   512×512 with `tf.image.resizeBilinear` (no corner alignment, no half
//!   pixel centres), `x / 127.5 − 1`;
//! - MobileNetV1 backbone: 3×3/2 conv (3 → 32), then 13 pairs of depthwise
//!   3×3 (+ BatchNorm) and pointwise 1×1 convolutions, all with ReLU6 and TF
//!   "same" padding; strides 2 at pairs 2, 4, 6 and 12;
//! - eight extra layers (1×1 and 3×3/2) down to 1×1, and six box predictors
//!   on the 32², 16², 8², 4², 2² and 1² maps (3 anchors per cell on the first,
//!   6 elsewhere): 5118 anchors;
//! - box decoding with scales (10, 10, 5, 5) against the anchors stored in
//!   the weights (`Output/extra_dim`), score = `sigmoid(logit of class 1)`;
//! - face-api's greedy NMS (IoU > 0.5 suppresses, at most 100 boxes), boxes
//!   clipped to the padded square and scaled back with face-api's rounded
//!   "reshaped input dimensions".
//!
//! The weights are face-api's `ssd_mobilenetv1_model` (the TensorFlow object
//! detection API SSD-MobileNetV1 trained on WIDER FACE by yeephycho,
//! Apache-2.0), in tfjs layout under their tfjs names (see [`crate::tfjs`]).
//! Layout changes and the BatchNorm folding happen here, at load time.
//!
//! Speed (≈ 70–80 ms per photo on 2 cores; face-api's wasm build takes
//! ≈ 470 ms): activations are NCHW; 1×1 convolutions are plain matrix
//! products `W[Cout, Cin] · X[Cin, H·W]` (candle's `conv2d` with k = 1
//! copies its input element by element first), 3×3 ones are an im2col
//! (CPU) and one product; bias + ReLU6 runs in place over the product;
//! depthwise layers use [`crate::depthwise`]. On the CPU the photos of a
//! batch go through the network one at a time (see [`FaceDetector::detect`]),
//! and the first detector built tunes glibc to keep activation memory
//! mapped between calls (`keep_freed_activations_mapped`). Other devices
//! (CUDA) run the whole batch through candle's own convolutions.

use std::time::{Duration, Instant};

use candle_core::{
    CpuStorage, CustomOp1, DType, Device, InplaceOp1, Layout, Result, Shape, Tensor, bail,
};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use crate::depthwise::{Pad, depthwise3x3_bias_relu6};
use crate::image::{Rect, RgbRef};

/// Number of anchors (boxes per image) the network predicts.
pub const NUM_ANCHORS: usize = 5118;
/// face-api's default `maxResults`.
pub const MAX_RESULTS: usize = 100;
/// face-api suppresses a box whose IoU with a kept one exceeds this.
pub const IOU_THRESHOLD: f32 = 0.5;
/// The epsilon of face-api's depthwise BatchNorm (TF's 1e-3 as f32).
const BN_EPSILON: f64 = 0.0010000000474974513;
/// Output channels of the 13 depthwise/pointwise pairs.
const PAIR_CHANNELS: [usize; 13] = [
    64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024,
];
/// Extra layers `Prediction/Conv2d_i_pointwise`: (kernel, in, out, stride).
const EXTRA_LAYERS: [(usize, usize, usize, usize); 8] = [
    (1, 1024, 256, 1),
    (3, 256, 512, 2),
    (1, 512, 128, 1),
    (3, 128, 256, 2),
    (1, 256, 128, 1),
    (3, 128, 256, 2),
    (1, 256, 64, 1),
    (3, 64, 128, 2),
];
/// Box predictors: input channels and anchors per cell.
const PREDICTORS: [(usize, usize); 6] =
    [(512, 3), (1024, 6), (512, 6), (256, 6), (256, 6), (128, 6)];

/// One face: its box in pixels of the photo it was found in, and the score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub rect: Rect,
    pub score: f32,
}

/// Where the time of one [`FaceDetector::detect_timed`] call went. The
/// split is exact on the CPU; on an asynchronous device (CUDA) work queued
/// in one stage may be paid for in the next.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DetectTimings {
    /// Padding, resizing and normalising the photos into the input tensor.
    pub preprocess: Duration,
    /// MobileNetV1 up to the 16×16×1024 map.
    pub backbone: Duration,
    /// Extra layers and box predictors, raw outputs copied to the host.
    pub heads: Duration,
    /// Box decoding, scores, NMS and the conversion to pixels.
    pub postprocess: Duration,
}

impl DetectTimings {
    pub fn total(&self) -> Duration {
        self.preprocess + self.backbone + self.heads + self.postprocess
    }
}

/// Bias (+ ReLU6) added in place over an NCHW tensor on the CPU: one pass
/// instead of candle's broadcast add followed by a clamp (two more
/// full-size temporaries).
struct BiasAct<'a> {
    bias: &'a [f32],
    min: f32,
    max: f32,
}

impl InplaceOp1 for BiasAct<'_> {
    fn name(&self) -> &'static str {
        "bias-relu6"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let CpuStorage::F32(v) = storage else {
            bail!("bias-relu6: f32 only");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("bias-relu6: tensor must be contiguous");
        };
        let dims = layout.dims();
        let (c, plane) = (dims[1], dims[2..].iter().product::<usize>());
        if c != self.bias.len() {
            bail!("bias-relu6: {c} channels but {} biases", self.bias.len());
        }
        if plane == 0 {
            return Ok(());
        }
        let (min, max) = (self.min, self.max);
        v[start..end]
            .par_chunks_mut(plane)
            .enumerate()
            .for_each(|(p, chunk)| {
                let b = self.bias[p % c];
                for x in chunk {
                    *x = (*x + b).max(min).min(max);
                }
            });
        Ok(())
    }
}

/// Adds `bias` per channel (dim 1) and clamps to [0, 6] if `relu6`.
fn bias_act(y: Tensor, bias: &Tensor, bias_host: &[f32], relu6: bool) -> Result<Tensor> {
    let (min, max) = if relu6 {
        (0.0, 6.0)
    } else {
        (f32::NEG_INFINITY, f32::INFINITY)
    };
    if y.device().is_cpu() && y.dtype() == DType::F32 && y.is_contiguous() {
        y.inplace_op1(&BiasAct {
            bias: bias_host,
            min,
            max,
        })?;
        return Ok(y);
    }
    let mut shape = vec![1; y.rank()];
    shape[1] = bias_host.len();
    let y = y.broadcast_add(&bias.reshape(shape)?)?;
    if relu6 { y.clamp(0f32, 6f32) } else { Ok(y) }
}

/// im2col on the CPU: `[N, C, H, W]` → `[N, C·k·k, H'·W']`, row
/// `c·k² + ky·k + kx` holding the input sample under that tap for every
/// output position (zero in the padding), so that a k×k convolution is one
/// matrix product with the filters as `[Cout, C·k·k]`. candle's own conv2d
/// took 13 ms for MobileNet's first layer and 5 ms for the 8×8 extra layer.
struct Im2col {
    k: usize,
    stride: usize,
    pad: Pad,
}

impl Im2col {
    fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        let (p, k, s) = (self.pad, self.k, self.stride);
        (
            (h + p.top + p.bottom - k) / s + 1,
            (w + p.left + p.right - k) / s + 1,
        )
    }
}

impl CustomOp1 for Im2col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(v) = storage else {
            bail!("im2col: f32 only");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("im2col: input must be contiguous");
        };
        let x = &v[start..end];
        let (n, c, h, w) = layout.shape().dims4()?;
        let (k, s, p) = (self.k, self.stride, self.pad);
        let (ho, wo) = self.out_size(h, w);
        let mut out = vec![0f32; n * c * k * k * ho * wo];
        out.par_chunks_mut(ho * wo)
            .enumerate()
            .for_each(|(row, dst)| {
                let (plane, tap) = (row / (k * k), row % (k * k));
                let (ky, kx) = (tap / k, tap % k);
                let src = &x[plane * h * w..][..h * w];
                // Output columns whose input column lies inside the image.
                let ox_lo = p.left.saturating_sub(kx).div_ceil(s);
                let ox_hi = ((w + p.left).saturating_sub(kx).div_ceil(s)).min(wo);
                for (oy, d) in dst.chunks_exact_mut(wo).enumerate() {
                    let Some(iy) = (oy * s + ky).checked_sub(p.top).filter(|&iy| iy < h) else {
                        continue;
                    };
                    if ox_lo >= ox_hi {
                        continue;
                    }
                    let first = ox_lo * s + kx - p.left;
                    let row = &src[iy * w..][..w];
                    for (d, v) in d[ox_lo..ox_hi]
                        .iter_mut()
                        .zip(row[first..].iter().step_by(s))
                    {
                        *d = *v;
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((n, c * k * k, ho * wo))))
    }
}

/// Convolution with bias and optional ReLU6, TF "same" padding. Filters
/// arrive as tfjs HWIO.
#[derive(Debug, Clone)]
struct Conv {
    /// `[Cout, Cin·k·k]` (rows in candle's `[Cout, Cin, k, k]` order).
    weight: Tensor,
    bias: Tensor,
    bias_host: Vec<f32>,
    k: usize,
    stride: usize,
    relu6: bool,
}

impl Conv {
    fn from_hwio(w: Tensor, bias: Tensor, stride: usize, relu6: bool) -> Result<Self> {
        let (k, _, cin, cout) = w.dims4()?;
        let weight = w
            .permute((3, 2, 0, 1))?
            .contiguous()?
            .reshape((cout, cin * k * k))?;
        let bias_host = bias.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        Ok(Self {
            weight,
            bias,
            bias_host,
            k,
            stride,
            relu6,
        })
    }

    /// face-api's `pointwiseConvLayer`: `weights` and `convolution_bn_offset`
    /// (BatchNorm already folded in by the converter), ReLU6.
    fn pointwise(
        vb: &VarBuilder,
        name: &str,
        k: usize,
        cin: usize,
        cout: usize,
        stride: usize,
    ) -> Result<Self> {
        let w = vb.get((k, k, cin, cout), &format!("{name}/weights"))?;
        let b = vb.get(cout, &format!("{name}/convolution_bn_offset"))?;
        Self::from_hwio(w, b, stride, true)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, cin, h, w) = x.dims4()?;
        let (k, s) = (self.k, self.stride);
        let cout = self.weight.dim(0)?;
        let pad = Pad::tf_same(h, w, k, s);
        let (cols, ho, wo) = if k == 1 && s == 1 {
            (x.reshape((n, cin, h * w))?, h, w)
        } else if x.device().is_cpu() && x.dtype() == DType::F32 {
            let op = Im2col { k, stride: s, pad };
            let (ho, wo) = op.out_size(h, w);
            (x.contiguous()?.apply_op1_no_bwd(&op)?, ho, wo)
        } else {
            let y = x
                .pad_with_zeros(2, pad.top, pad.bottom)?
                .pad_with_zeros(3, pad.left, pad.right)?
                .conv2d(&self.weight.reshape((cout, cin, k, k))?, 0, s, 1, 1)?;
            return bias_act(y, &self.bias, &self.bias_host, self.relu6);
        };
        // One product per image: W[Cout, Cin·k²] · cols[Cin·k², H'·W'].
        let y = if n == 1 {
            self.weight.matmul(&cols.squeeze(0)?)?
        } else {
            self.weight.broadcast_left(n)?.matmul(&cols)?
        };
        bias_act(
            y.reshape((n, cout, ho, wo))?,
            &self.bias,
            &self.bias_host,
            self.relu6,
        )
    }
}

/// Depthwise 3×3 with its BatchNorm folded in (scale into the filters,
/// shift as a bias), ReLU6.
#[derive(Debug, Clone)]
struct DepthwiseBn {
    /// `[C, 1, 3, 3]`.
    weight: Tensor,
    shift: Tensor,
    stride: usize,
}

impl DepthwiseBn {
    fn new(vb: &VarBuilder, name: &str, c: usize, stride: usize) -> Result<Self> {
        let w = vb.get((3, 3, c, 1), &format!("{name}/depthwise_weights"))?;
        let bn = |p: &str| -> Result<Vec<f32>> {
            vb.get(c, &format!("{name}/BatchNorm/{p}"))?
                .to_dtype(DType::F32)?
                .to_vec1()
        };
        let (gamma, beta, mean, var) = (
            bn("gamma")?,
            bn("beta")?,
            bn("moving_mean")?,
            bn("moving_variance")?,
        );
        // tf.batchNorm: (x − mean) · gamma / sqrt(var + eps) + beta.
        let scale: Vec<f32> = (0..c)
            .map(|i| (f64::from(gamma[i]) / (f64::from(var[i]) + BN_EPSILON).sqrt()) as f32)
            .collect();
        let shift: Vec<f32> = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
        let dev = w.device();
        let scale = Tensor::from_vec(scale, (c, 1, 1, 1), dev)?;
        let weight = w
            .permute((2, 3, 0, 1))?
            .broadcast_mul(&scale)?
            .contiguous()?;
        Ok(Self {
            weight,
            shift: Tensor::from_vec(shift, c, dev)?,
            stride,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        depthwise3x3_bias_relu6(
            x,
            &self.weight,
            &self.shift,
            self.stride,
            Pad::tf_same(h, w, 3, self.stride),
        )
    }
}

/// face-api's `mobileNetV1`.
#[derive(Debug, Clone)]
struct MobileNetV1 {
    conv_0: Conv,
    pairs: Vec<(DepthwiseBn, Conv)>,
}

impl MobileNetV1 {
    fn new(vb: &VarBuilder) -> Result<Self> {
        let conv_0 = Conv::pointwise(vb, "MobilenetV1/Conv2d_0_pointwise", 3, 3, 32, 2)?;
        let mut pairs = Vec::with_capacity(PAIR_CHANNELS.len());
        let mut cin = 32;
        for (i, &cout) in PAIR_CHANNELS.iter().enumerate() {
            let idx = i + 1;
            let stride = if [2, 4, 6, 12].contains(&idx) { 2 } else { 1 };
            let dw = DepthwiseBn::new(
                vb,
                &format!("MobilenetV1/Conv2d_{idx}_depthwise"),
                cin,
                stride,
            )?;
            let pw = Conv::pointwise(
                vb,
                &format!("MobilenetV1/Conv2d_{idx}_pointwise"),
                1,
                cin,
                cout,
                1,
            )?;
            pairs.push((dw, pw));
            cin = cout;
        }
        Ok(Self { conv_0, pairs })
    }

    /// `(conv11, out)`: the output of pair 11 (32²×512) and the last one (16²×1024).
    fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let pair = |x: &Tensor, (dw, pw): &(DepthwiseBn, Conv)| pw.forward(&dw.forward(x)?);
        let mut out = self.conv_0.forward(x)?;
        for p in &self.pairs[..11] {
            out = pair(&out, p)?;
        }
        let conv11 = out.clone();
        for p in &self.pairs[11..] {
            out = pair(&out, p)?;
        }
        Ok((conv11, out))
    }
}

/// face-api's `boxPredictionLayer`: the box-encoding and class 1×1 convs
/// of one feature map, fused into one product of `7·a` output channels.
#[derive(Debug, Clone)]
struct BoxPredictor {
    conv: Conv,
    anchors_per_cell: usize,
}

impl BoxPredictor {
    fn new(vb: &VarBuilder, idx: usize, cin: usize, a: usize) -> Result<Self> {
        let p = format!("Prediction/BoxPredictor_{idx}");
        let bw = vb.get(
            (1, 1, cin, 4 * a),
            &format!("{p}/BoxEncodingPredictor/weights"),
        )?;
        let bb = vb.get(4 * a, &format!("{p}/BoxEncodingPredictor/biases"))?;
        let cw = vb.get((1, 1, cin, 3 * a), &format!("{p}/ClassPredictor/weights"))?;
        let cb = vb.get(3 * a, &format!("{p}/ClassPredictor/biases"))?;
        let w = Tensor::cat(&[bw, cw], 3)?;
        let b = Tensor::cat(&[bb, cb], 0)?;
        Ok(Self {
            conv: Conv::from_hwio(w, b, 1, false)?,
            anchors_per_cell: a,
        })
    }

    /// `(encodings [N, H·W·a, 4], logits [N, H·W·a, 3])` in NHWC row-major
    /// order (cell-major, then anchor), as tfjs' reshape of the NHWC output.
    fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let a = self.anchors_per_cell;
        let (n, _, h, w) = x.dims4()?;
        let y = self
            .conv
            .forward(x)?
            .reshape((n, 7 * a, h * w))?
            .transpose(1, 2)?;
        let enc = y
            .narrow(2, 0, 4 * a)?
            .contiguous()?
            .reshape((n, h * w * a, 4))?;
        let cls = y
            .narrow(2, 4 * a, 3 * a)?
            .contiguous()?
            .reshape((n, h * w * a, 3))?;
        Ok((enc, cls))
    }
}

/// face-api's `predictionLayer`: extra layers and the six box predictors.
#[derive(Debug, Clone)]
struct PredictionLayer {
    extras: Vec<Conv>,
    predictors: Vec<BoxPredictor>,
}

impl PredictionLayer {
    fn new(vb: &VarBuilder) -> Result<Self> {
        let extras = EXTRA_LAYERS
            .iter()
            .enumerate()
            .map(|(i, &(k, cin, cout, s))| {
                Conv::pointwise(
                    vb,
                    &format!("Prediction/Conv2d_{i}_pointwise"),
                    k,
                    cin,
                    cout,
                    s,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let predictors = PREDICTORS
            .iter()
            .enumerate()
            .map(|(i, &(cin, a))| BoxPredictor::new(vb, i, cin, a))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { extras, predictors })
    }

    /// `(encodings [N, 5118, 4], logits [N, 5118, 3])`.
    fn forward(&self, conv11: &Tensor, out: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut maps = Vec::with_capacity(8);
        let mut x = out.clone();
        for conv in &self.extras {
            x = conv.forward(&x)?;
            maps.push(x.clone());
        }
        // Predictors 2..5 read the outputs of the stride-2 extra layers 1, 3, 5, 7.
        let inputs = [conv11, out, &maps[1], &maps[3], &maps[5], &maps[7]];
        let mut enc = Vec::with_capacity(6);
        let mut cls = Vec::with_capacity(6);
        for (p, x) in self.predictors.iter().zip(inputs) {
            let (e, c) = p.forward(x)?;
            enc.push(e);
            cls.push(c);
        }
        Ok((Tensor::cat(&enc, 1)?, Tensor::cat(&cls, 1)?))
    }
}

/// The SSD-MobileNetV1 face detector.
#[derive(Debug, Clone)]
pub struct FaceDetector {
    backbone: MobileNetV1,
    prediction: PredictionLayer,
    /// `Output/extra_dim`: (ymin, xmin, ymax, xmax), normalised.
    anchors: Vec<[f32; 4]>,
    device: Device,
}

impl FaceDetector {
    /// Side of the square network input.
    pub const INPUT_SIZE: usize = 512;

    /// Builds the network from face-api's tensors (tfjs names and layout),
    /// on `vb.device()`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        if vb.device().is_cpu() {
            keep_freed_activations_mapped();
        }
        let backbone = MobileNetV1::new(&vb)?;
        let prediction = PredictionLayer::new(&vb)?;
        let anchors = vb
            .get((1, NUM_ANCHORS, 4), "Output/extra_dim")?
            .to_dtype(DType::F32)?
            .squeeze(0)?
            .to_vec2::<f32>()?
            .into_iter()
            .map(|r| [r[0], r[1], r[2], r[3]])
            .collect();
        Ok(Self {
            backbone,
            prediction,
            anchors,
            device: vb.device().clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Detects faces in every photo: one list per photo, best first, boxes
    /// in that photo's pixels. `min_score` is face-api's `minConfidence`
    /// (a box needs a score strictly above it; face-api's default is 0.5).
    /// On the CPU the photos run through the network one after the other
    /// (no gain from batching there); on a GPU as one batch.
    pub fn detect(&self, images: &[RgbRef<'_>], min_score: f32) -> Result<Vec<Vec<Detection>>> {
        Ok(self.detect_timed(images, min_score)?.0)
    }

    /// [`Self::detect`], also reporting where the time went.
    pub fn detect_timed(
        &self,
        images: &[RgbRef<'_>],
        min_score: f32,
    ) -> Result<(Vec<Vec<Detection>>, DetectTimings)> {
        let mut timings = DetectTimings::default();
        let mut results = vec![Vec::new(); images.len()];
        // A photo without pixels has no faces and no place in the batch.
        let live: Vec<usize> = (0..images.len())
            .filter(|&i| images[i].width > 0 && images[i].height > 0)
            .collect();
        if live.is_empty() {
            return Ok((results, timings));
        }

        let t = Instant::now();
        let x = input_tensor(
            &live.iter().map(|&i| images[i]).collect::<Vec<_>>(),
            &self.device,
        )?;
        timings.preprocess = t.elapsed();

        let (enc, logits) = self.run(&x, &mut timings)?;

        let t = Instant::now();
        for (b, &i) in live.iter().enumerate() {
            let boxes = decode_boxes(
                &self.anchors,
                &enc[b * NUM_ANCHORS * 4..][..NUM_ANCHORS * 4],
            );
            let scores = scores_from_logits(&logits[b * NUM_ANCHORS * 3..][..NUM_ANCHORS * 3]);
            let (w, h) = (images[i].width, images[i].height);
            results[i] = nms(&boxes, &scores, MAX_RESULTS, IOU_THRESHOLD, min_score)
                .into_iter()
                .map(|k| Detection {
                    rect: to_pixels(&boxes[k], w, h),
                    score: scores[k],
                })
                .collect();
        }
        timings.postprocess = t.elapsed();
        Ok((results, timings))
    }

    /// Raw network pass on a prepared `[N, 3, 512, 512]` input (see
    /// [`input_tensor`]): decoded boxes `[N, 5118, 4]` (ymin, xmin, ymax,
    /// xmax, normalised to the padded square, not clipped) and scores
    /// `[N, 5118]`.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = x.dim(0)?;
        let (enc, logits) = self.run(x, &mut DetectTimings::default())?;
        let mut boxes: Vec<f32> = Vec::with_capacity(n * NUM_ANCHORS * 4);
        let mut scores = Vec::with_capacity(n * NUM_ANCHORS);
        for b in 0..n {
            let bx = decode_boxes(
                &self.anchors,
                &enc[b * NUM_ANCHORS * 4..][..NUM_ANCHORS * 4],
            );
            boxes.extend(bx.iter().flatten());
            scores.extend(scores_from_logits(
                &logits[b * NUM_ANCHORS * 3..][..NUM_ANCHORS * 3],
            ));
        }
        let dev = x.device();
        Ok((
            Tensor::from_vec(boxes, (n, NUM_ANCHORS, 4), dev)?,
            Tensor::from_vec(scores, (n, NUM_ANCHORS), dev)?,
        ))
    }

    /// Backbone and heads on a prepared batch: box encodings (`N·5118·4`)
    /// and class logits (`N·5118·3`) on the host. Adds to `timings`.
    fn run(&self, x: &Tensor, timings: &mut DetectTimings) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = x.dim(0)?;
        // On the CPU one photo at a time: the matrix products are as
        // efficient at N = 1, while a batch's activations (64 MB for the
        // largest layer at N = 4, above glibc's 32 MB mmap cap) are mapped
        // afresh on every call, and the page faults cost more than the
        // layer itself (≈ 95 vs 75 ms per photo at N = 4).
        let step = if x.device().is_cpu() { 1 } else { n.max(1) };
        let (mut enc, mut logits) = (Vec::new(), Vec::new());
        for start in (0..n).step_by(step) {
            let xb = x.narrow(0, start, step.min(n - start))?;
            let t = Instant::now();
            let (conv11, out) = self.backbone.forward(&xb)?;
            timings.backbone += t.elapsed();
            let t = Instant::now();
            let (e, l) = self.raw_heads(&conv11, &out)?;
            timings.heads += t.elapsed();
            enc.extend(e);
            logits.extend(l);
        }
        Ok((enc, logits))
    }

    /// Box encodings and class logits of one batch, on the host.
    fn raw_heads(&self, conv11: &Tensor, out: &Tensor) -> Result<(Vec<f32>, Vec<f32>)> {
        let (enc, logits) = self.prediction.forward(conv11, out)?;
        let a = enc.dim(1)?;
        if a != NUM_ANCHORS {
            bail!("face detector: {a} anchors predicted, {NUM_ANCHORS} expected");
        }
        Ok((
            enc.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
            logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
        ))
    }
}

/// Makes glibc keep the detector's activations mapped between calls.
///
/// A forward pass allocates and frees ~50 MB of activations. With glibc's
/// defaults that memory is returned to the kernel when the last tensor is
/// freed (the heap is trimmed once more than 2× the largest freed mmap
/// chunk sits free at its top) and faulted in again, page by page, on the
/// next call: about 10 ms of an 80 ms detection. Freeing one mmap-sized
/// block just under glibc's 32 MB cap raises the dynamic thresholds (mmap
/// to ~31 MB, trim to ~62 MB), so later passes reuse the same pages. This is
/// plain allocation; with another allocator it is a harmless 31 MB round
/// trip. Done once per process.
fn keep_freed_activations_mapped() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| drop(std::hint::black_box(vec![0u8; 31 << 20])));
}

/// The network input for a batch of photos: `[N, 3, 512, 512]`, each photo
/// zero-padded at the bottom/right to a square, resized with tf bilinear
/// (no corner alignment, no half-pixel centres) and mapped to `px/127.5 − 1`.
pub fn input_tensor(images: &[RgbRef<'_>], device: &Device) -> Result<Tensor> {
    let s = FaceDetector::INPUT_SIZE;
    let mut data = vec![0f32; images.len() * 3 * s * s];
    for (img, out) in images.iter().zip(data.chunks_exact_mut(3 * s * s)) {
        if img.width == 0 || img.height == 0 {
            bail!("face detector: empty image");
        }
        prepare_input(*img, s, out);
    }
    Tensor::from_vec(data, (images.len(), 3, s, s), device)
}

/// One photo into `out` (`3 × size × size`, planar RGB, normalised).
///
/// Same arithmetic as `pad_to_square_end()` then `resize_bilinear_tf(size,
/// size)` on [`RgbRef`], but reading the unpadded photo (samples beyond its
/// edge are the zero padding), so no padded copy of a large photo is made.
fn prepare_input(img: RgbRef<'_>, size: usize, out: &mut [f32]) {
    let side = img.width.max(img.height);
    let scale = side as f32 / size as f32;
    // Source index pairs and weights along one axis of the padded square.
    let axis: Vec<(usize, usize, f32)> = (0..size)
        .map(|d| {
            let src = d as f32 * scale;
            let i0 = (src.floor() as usize).min(side - 1);
            let i1 = (i0 + 1).min(side - 1);
            (i0, i1, src - i0 as f32)
        })
        .collect();
    let pixel = |x: usize, y: usize, c: usize| -> f32 {
        if x < img.width && y < img.height {
            f32::from(img.data[(y * img.width + x) * 3 + c])
        } else {
            0.0
        }
    };
    let (r, gb) = out.split_at_mut(size * size);
    let (g, b) = gb.split_at_mut(size * size);
    r.par_chunks_mut(size)
        .zip(g.par_chunks_mut(size))
        .zip(b.par_chunks_mut(size))
        .enumerate()
        .for_each(|(y, ((r, g), b))| {
            let (y0, y1, fy) = axis[y];
            for (x, &(x0, x1, fx)) in axis.iter().enumerate() {
                for (c, plane) in [&mut *r, &mut *g, &mut *b].into_iter().enumerate() {
                    let (tl, tr) = (pixel(x0, y0, c), pixel(x1, y0, c));
                    let (bl, br) = (pixel(x0, y1, c), pixel(x1, y1, c));
                    let top = tl + (tr - tl) * fx;
                    let bottom = bl + (br - bl) * fx;
                    plane[x] = (top + (bottom - top) * fy) / 127.5 - 1.0;
                }
            }
        });
}

/// face-api's `decodeBoxesLayer`: encodings `(ty, tx, th, tw)` per anchor
/// (`enc.len() = 4·anchors.len()`) to `(ymin, xmin, ymax, xmax)`, with the
/// operations in the same order as the tfjs graph.
pub fn decode_boxes(anchors: &[[f32; 4]], enc: &[f32]) -> Vec<[f32; 4]> {
    anchors
        .iter()
        .zip(enc.chunks_exact(4))
        .map(|(a, t)| {
            let (ha, wa) = (a[2] - a[0], a[3] - a[1]);
            let (cya, cxa) = (a[0] + ha / 2.0, a[1] + wa / 2.0);
            let half_h = (t[2] / 5.0).exp() * ha / 2.0;
            let half_w = (t[3] / 5.0).exp() * wa / 2.0;
            let cy = t[0] / 10.0 * ha + cya;
            let cx = t[1] / 10.0 * wa + cxa;
            [cy - half_h, cx - half_w, cy + half_h, cx + half_w]
        })
        .collect()
}

/// face-api's scores: `sigmoid` of the class-1 ("face") logit of each
/// anchor; `logits` holds 3 per anchor (background, face, unused).
pub fn scores_from_logits(logits: &[f32]) -> Vec<f32> {
    logits
        .chunks_exact(3)
        .map(|l| 1.0 / (1.0 + (-l[1]).exp()))
        .collect()
}

/// face-api's IoU of two `(ymin, xmin, ymax, xmax)` boxes (corners in any
/// order; 0 when either is empty), in f64 like the JavaScript original.
fn iou(a: &[f32; 4], b: &[f32; 4]) -> f64 {
    let corners = |b: &[f32; 4]| {
        let v = b.map(f64::from);
        (
            v[0].min(v[2]),
            v[1].min(v[3]),
            v[0].max(v[2]),
            v[1].max(v[3]),
        )
    };
    let (ay0, ax0, ay1, ax1) = corners(a);
    let (by0, bx0, by1, bx1) = corners(b);
    let area_a = (ay1 - ay0) * (ax1 - ax0);
    let area_b = (by1 - by0) * (bx1 - bx0);
    if area_a <= 0.0 || area_b <= 0.0 {
        return 0.0;
    }
    let ih = (ay1.min(by1) - ay0.max(by0)).max(0.0);
    let iw = (ax1.min(bx1) - ax0.max(bx0)).max(0.0);
    let inter = ih * iw;
    inter / (area_a + area_b - inter)
}

/// face-api's greedy non-maximum suppression. Candidates are the boxes
/// scoring strictly above `min_score`, taken best first (ties in index
/// order); one is kept unless its IoU with an already kept box exceeds
/// `iou_threshold`; at most `max_results` are kept. Returns indices into
/// `boxes`, best first.
pub fn nms(
    boxes: &[[f32; 4]],
    scores: &[f32],
    max_results: usize,
    iou_threshold: f32,
    min_score: f32,
) -> Vec<usize> {
    let limit = max_results.min(boxes.len());
    let mut candidates: Vec<usize> = (0..boxes.len().min(scores.len()))
        .filter(|&i| scores[i] > min_score)
        .collect();
    // Stable, like JavaScript's Array.prototype.sort.
    candidates.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut kept: Vec<usize> = Vec::new();
    for c in candidates {
        if kept.len() >= limit {
            break;
        }
        if kept
            .iter()
            .all(|&k| iou(&boxes[c], &boxes[k]) <= f64::from(iou_threshold))
        {
            kept.push(c);
        }
    }
    kept
}

/// A decoded box (normalised to the padded square) to pixels of the
/// `width × height` photo, as face-api's `locateFaces` does: clip to [0, 1]
/// (lower edge at 0, upper at 1), scale by `512 / reshaped` where `reshaped`
/// is the photo's side scaled to 512 and *rounded*, then by the photo's
/// size. (For the longer side this is exactly `max(width, height)`; for
/// the shorter one the rounding moves it by up to ~0.1 %.) JavaScript
/// numbers are f64, and so is this arithmetic.
pub fn to_pixels(b: &[f32; 4], width: usize, height: usize) -> Rect {
    let (w, h) = (width as f64, height as f64);
    let input = FaceDetector::INPUT_SIZE as f64;
    let scale = input / w.max(h);
    let pad_x = input / (w * scale).round();
    let pad_y = input / (h * scale).round();
    let top = f64::from(b[0]).max(0.0) * pad_y;
    let bottom = f64::from(b[2]).min(1.0) * pad_y;
    let left = f64::from(b[1]).max(0.0) * pad_x;
    let right = f64::from(b[3]).min(1.0) * pad_x;
    Rect {
        x: (left * w) as f32,
        y: (top * h) as f32,
        width: ((right - left) * w) as f32,
        height: ((bottom - top) * h) as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::RgbImage;

    fn noise(w: usize, h: usize, seed: u32) -> RgbImage {
        let data = (0..w * h * 3)
            .map(|i| ((i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        RgbImage::new(w, h, data)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn im2col_convolution_matches_candle_conv2d() {
        let dev = Device::Cpu;
        for (n, cin, cout, h, w, k, s, relu6) in [
            (1, 3, 8, 16, 16, 3, 2, true),
            (2, 5, 7, 9, 8, 3, 2, false),
            (1, 4, 6, 7, 7, 3, 1, true),
            (2, 6, 5, 5, 6, 1, 1, false),
            (1, 4, 3, 2, 2, 3, 2, false),
            (1, 4, 3, 1, 1, 3, 2, false),
        ] {
            let x = Tensor::randn(0f32, 1.0, (n, cin, h, w), &dev).unwrap();
            let hwio = Tensor::randn(0f32, 1.0, (k, k, cin, cout), &dev).unwrap();
            let b = Tensor::randn(0f32, 1.0, cout, &dev).unwrap();
            let conv = Conv::from_hwio(hwio.clone(), b.clone(), s, relu6).unwrap();
            let ours = conv.forward(&x).unwrap();
            let p = Pad::tf_same(h, w, k, s);
            let mut reference = x
                .pad_with_zeros(2, p.top, p.bottom)
                .unwrap()
                .pad_with_zeros(3, p.left, p.right)
                .unwrap()
                .conv2d(
                    &hwio.permute((3, 2, 0, 1)).unwrap().contiguous().unwrap(),
                    0,
                    s,
                    1,
                    1,
                )
                .unwrap()
                .broadcast_add(&b.reshape((1, cout, 1, 1)).unwrap())
                .unwrap();
            if relu6 {
                reference = reference.clamp(0f32, 6f32).unwrap();
            }
            let d = max_diff(&ours, &reference);
            assert!(d < 1e-4, "{n}×{cin}×{h}×{w} k {k} s {s}: {d}");
        }
    }

    #[test]
    fn input_equals_pad_then_tf_resize() {
        for (w, h, size) in [
            (37, 23, 16),
            (23, 37, 16),
            (600, 300, 64),
            (5, 5, 16),
            (1, 3, 8),
            (40, 40, 40),
        ] {
            let img = noise(w, h, (w * h) as u32);
            let mut ours = vec![0f32; 3 * size * size];
            prepare_input(img.as_ref(), size, &mut ours);
            let reference = img
                .as_ref()
                .pad_to_square_end()
                .as_ref()
                .resize_bilinear_tf(size, size);
            for (i, px) in reference.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    assert_eq!(
                        ours[c * size * size + i],
                        px[c] / 127.5 - 1.0,
                        "{w}×{h}→{size} at {i}/{c}"
                    );
                }
            }
        }
    }

    #[test]
    fn input_tensor_is_batched_nchw() {
        let a = noise(30, 20, 1);
        let b = noise(8, 9, 2);
        let x = input_tensor(&[a.as_ref(), b.as_ref()], &Device::Cpu).unwrap();
        assert_eq!(x.dims(), [2, 3, 512, 512]);
        // The bottom right of the first photo is padding: 0 → −1.
        let v: f32 = x
            .get(0)
            .unwrap()
            .get(1)
            .unwrap()
            .get(511)
            .unwrap()
            .get(511)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(v, -1.0);
        assert!(input_tensor(&[RgbRef::new(0, 0, &[])], &Device::Cpu).is_err());
    }

    #[test]
    fn zero_encoding_decodes_to_the_anchor() {
        let anchors = [[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0]];
        let boxes = decode_boxes(&anchors, &[0.0; 8]);
        for (b, a) in boxes.iter().zip(&anchors) {
            for k in 0..4 {
                assert!((b[k] - a[k]).abs() < 1e-6, "{b:?} vs {a:?}");
            }
        }
    }

    #[test]
    fn encodings_shift_and_scale_with_ssd_scales() {
        // Anchor centred at (0.5, 0.5), 0.2 × 0.4 (h × w).
        let anchors = [[0.4, 0.3, 0.6, 0.7]];
        // ty = 10 → centre y moves by one anchor height; tw = 5 ln 2 → width doubles.
        let b = decode_boxes(&anchors, &[10.0, 0.0, 0.0, 5.0 * 2f32.ln()])[0];
        let expect = [0.6, 0.1, 0.8, 0.9];
        for k in 0..4 {
            assert!((b[k] - expect[k]).abs() < 1e-6, "{b:?}");
        }
    }

    #[test]
    fn score_is_the_sigmoid_of_the_face_logit() {
        let s = scores_from_logits(&[5.0, 0.0, -3.0, 0.0, 2.0, 9.0]);
        assert_eq!(s[0], 0.5);
        assert!((s[1] - 1.0 / (1.0 + (-2f32).exp())).abs() < 1e-7);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let boxes = [
            [0.0, 0.0, 1.0, 1.0],
            [0.0, 0.0, 1.0, 0.9], // IoU 0.9 with box 0
            [0.0, 0.0, 1.0, 0.4], // IoU 0.4 with box 0: kept
            [2.0, 2.0, 3.0, 3.0],
            [5.0, 5.0, 6.0, 6.0],
        ];
        let scores = [0.8, 0.9, 0.7, 0.6, 0.5];
        assert_eq!(nms(&boxes, &scores, 100, 0.5, 0.5), vec![1, 2, 3]);
        assert_eq!(nms(&boxes, &scores, 2, 0.5, 0.5), vec![1, 2]);
        assert_eq!(nms(&boxes, &scores, 100, 0.5, 0.0), vec![1, 2, 3, 4]);
        assert!(nms(&boxes, &scores, 100, 0.5, 0.95).is_empty());
    }

    #[test]
    fn nms_breaks_ties_by_index_and_ignores_empty_boxes() {
        let boxes = [
            [0.0, 0.0, 1.0, 1.0],
            [0.0, 0.0, 1.0, 1.0],
            [0.5, 0.5, 0.5, 0.9],
        ];
        let scores = [0.7, 0.7, 0.9];
        // The empty box 2 overlaps nothing (IoU 0), box 1 is a duplicate of 0.
        assert_eq!(nms(&boxes, &scores, 100, 0.5, 0.5), vec![2, 0]);
    }

    #[test]
    fn iou_accepts_swapped_corners() {
        let a = [0.0, 0.0, 1.0, 1.0];
        let b = [1.0, 0.5, 0.0, 1.5];
        assert!((iou(&a, &b) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn pixels_follow_face_apis_rounded_reshape() {
        // 2000 × 1428: the short side scales to 365.568, rounded to 366.
        let r = to_pixels(&[0.5, 0.25, 1.2, 0.5], 2000, 1428);
        assert!(
            (r.x - 500.0).abs() < 1e-3 && (r.width - 500.0).abs() < 1e-3,
            "{r:?}"
        );
        let pad_y = 512.0 / 366.0;
        assert!(
            (f64::from(r.y) - 0.5 * pad_y * 1428.0).abs() < 1e-3,
            "{r:?}"
        );
        assert!(
            (f64::from(r.bottom()) - pad_y * 1428.0).abs() < 1e-2,
            "{r:?}"
        );
        // A square photo scales by its side; negative corners clip to 0.
        let r = to_pixels(&[-0.1, 0.1, 0.5, 0.3], 150, 150);
        assert_eq!((r.x, r.y), (15.0, 0.0));
        assert!(
            (r.width - 30.0).abs() < 1e-4 && (r.height - 75.0).abs() < 1e-4,
            "{r:?}"
        );
    }
}
