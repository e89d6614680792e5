//! Reader for dlib's `dlib_face_recognition_resnet_model_v1.dat`.
//!
//! The file is dlib's own serialization of the `anet_type` network from
//! `dnn_face_recognition_ex.cpp` (layers written input → output). This module
//! pulls out the 29 convolutions, their 29 affine layers (batch norm already
//! folded by dlib) and the final `fc_no_bias`, checks every shape against the
//! known architecture, folds each affine into the convolution before it, and
//! returns named candle tensors ready for [`candle_nn::VarBuilder::from_tensors`]
//! and [`crate::face_embedder::FaceEmbedder::new`].
//!
//! Format, as far as it matters here:
//! - integer: one control byte (low nibble = number of bytes, `0x80` = negative)
//!   followed by that many little-endian bytes;
//! - float (scalars only, e.g. the input means): integer mantissa `m` then
//!   integer exponent `e`, value `m · 2^e`;
//! - string: integer length then the bytes; each layer starts with its version
//!   string (`con_4`, `affine_`, `fc_2`, …);
//! - tensor: integer version (2), four integers `n, k, nr, nc`, then
//!   `n·k·nr·nc` raw little-endian `f32`.
//!
//! Layers without parameters (relu, pooling, tags, skips, add_prev) are not
//! decoded: the reader searches for the next tag it needs, always starting
//! right after the last tensor it consumed, so it never looks inside weight
//! data.
//!
//! # Tensor names
//!
//! | name | shape | dlib layers (face-api names) |
//! |---|---|---|
//! | `conv1.{weight,bias}` | `[32,3,7,7]`, `[32]` | stem con 7×7/2 (`conv32_down`) |
//! | `layer1.{0,1,2}.conv{1,2}.*` | 32 → 32 | `conv32_1..3` |
//! | `layer2.0.conv{1,2}.*` | 32 → 64, first stride 2 | `conv64_down` |
//! | `layer2.{1,2,3}.conv{1,2}.*` | 64 → 64 | `conv64_1..3` |
//! | `layer3.0` / `layer3.{1,2}` | 64 → 128 / 128 → 128 | `conv128_down`, `conv128_1..2` |
//! | `layer4.0` / `layer4.{1,2}` | 128 → 256 / 256 → 256 | `conv256_down`, `conv256_1..2` |
//! | `layer5.0.conv{1,2}.*` | 256 → 256, first stride 2 | `conv256_down_out` |
//! | `fc.weight` | `[128,256]` (out, in) | `fc_no_bias<128>` (stored in, out by dlib) |
//!
//! Convolution weights are OIHW with the affine folded in
//! (`w' = w·γ[o]`, `b' = b·γ[o] + β[o]`).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::face_embedder::{CHIP_SIZE, DESCRIPTOR_LEN, INPUT_MEAN_RGB};

/// Why a `.dat` file could not be turned into tensors.
#[derive(Debug, thiserror::Error)]
pub enum DatError {
    /// The bytes end before a value that must be there.
    #[error(
        "file truncated at offset {offset} while reading {what} (file has {len} bytes); \
         re-download dlib_face_recognition_resnet_model_v1.dat"
    )]
    Truncated {
        offset: usize,
        what: String,
        len: usize,
    },
    /// The bytes are a different file, or a different dlib network.
    #[error(
        "not a dlib ResNet model file (expected dlib_face_recognition_resnet_model_v1.dat): {0}"
    )]
    NotDlibResnet(String),
    /// A value could not be decoded where the format says one must be.
    #[error("malformed dlib data at offset {offset}: {reason}")]
    Malformed { offset: usize, reason: String },
    /// A named tensor is missing, extra or has the wrong shape or dtype.
    #[error("weights do not match the dlib ResNet architecture: {0}")]
    Architecture(String),
    /// candle failed to build a tensor.
    #[error("building tensor: {0}")]
    Candle(#[from] candle_core::Error),
}

/// One convolution of the network and the name prefix of its tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Prefix of `.weight` / `.bias`.
    pub name: &'static str,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

const fn conv(
    name: &'static str,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> ConvSpec {
    ConvSpec {
        name,
        in_channels,
        out_channels,
        kernel,
        stride,
        padding,
    }
}

/// The 29 convolutions in file (input → output) order.
pub const CONVS: [ConvSpec; 29] = [
    conv("conv1", 3, 32, 7, 2, 0),
    conv("layer1.0.conv1", 32, 32, 3, 1, 1),
    conv("layer1.0.conv2", 32, 32, 3, 1, 1),
    conv("layer1.1.conv1", 32, 32, 3, 1, 1),
    conv("layer1.1.conv2", 32, 32, 3, 1, 1),
    conv("layer1.2.conv1", 32, 32, 3, 1, 1),
    conv("layer1.2.conv2", 32, 32, 3, 1, 1),
    conv("layer2.0.conv1", 32, 64, 3, 2, 0),
    conv("layer2.0.conv2", 64, 64, 3, 1, 1),
    conv("layer2.1.conv1", 64, 64, 3, 1, 1),
    conv("layer2.1.conv2", 64, 64, 3, 1, 1),
    conv("layer2.2.conv1", 64, 64, 3, 1, 1),
    conv("layer2.2.conv2", 64, 64, 3, 1, 1),
    conv("layer2.3.conv1", 64, 64, 3, 1, 1),
    conv("layer2.3.conv2", 64, 64, 3, 1, 1),
    conv("layer3.0.conv1", 64, 128, 3, 2, 0),
    conv("layer3.0.conv2", 128, 128, 3, 1, 1),
    conv("layer3.1.conv1", 128, 128, 3, 1, 1),
    conv("layer3.1.conv2", 128, 128, 3, 1, 1),
    conv("layer3.2.conv1", 128, 128, 3, 1, 1),
    conv("layer3.2.conv2", 128, 128, 3, 1, 1),
    conv("layer4.0.conv1", 128, 256, 3, 2, 0),
    conv("layer4.0.conv2", 256, 256, 3, 1, 1),
    conv("layer4.1.conv1", 256, 256, 3, 1, 1),
    conv("layer4.1.conv2", 256, 256, 3, 1, 1),
    conv("layer4.2.conv1", 256, 256, 3, 1, 1),
    conv("layer4.2.conv2", 256, 256, 3, 1, 1),
    conv("layer5.0.conv1", 256, 256, 3, 2, 0),
    conv("layer5.0.conv2", 256, 256, 3, 1, 1),
];

/// Name of the final projection (`[128, 256]`, out × in, no bias).
pub const FC_WEIGHT: &str = "fc.weight";
/// Input width of the final projection.
pub const FC_IN: usize = 256;

/// Number of scalars in the folded tensor map (conv weights and biases plus
/// `fc.weight`). dlib's file holds 5,614,592; folding drops the 7,104 affine
/// scalars.
pub const EXPECTED_PARAMETERS: usize = 5_607_488;

/// Every tensor name [`parse`] returns, with its shape.
pub fn expected_shapes() -> Vec<(String, Vec<usize>)> {
    let mut shapes = Vec::with_capacity(2 * CONVS.len() + 1);
    for c in &CONVS {
        shapes.push((
            format!("{}.weight", c.name),
            vec![c.out_channels, c.in_channels, c.kernel, c.kernel],
        ));
        shapes.push((format!("{}.bias", c.name), vec![c.out_channels]));
    }
    shapes.push((FC_WEIGHT.to_owned(), vec![DESCRIPTOR_LEN, FC_IN]));
    shapes
}

/// Checks that `tensors` holds exactly the names of [`expected_shapes`], all
/// `f32` with those shapes (e.g. for a safetensors file of unknown origin).
pub fn check_tensors(tensors: &HashMap<String, Tensor>) -> Result<(), DatError> {
    let expected = expected_shapes();
    for (name, shape) in &expected {
        let t = tensors
            .get(name)
            .ok_or_else(|| DatError::Architecture(format!("tensor {name} is missing")))?;
        if t.dims() != shape.as_slice() || t.dtype() != DType::F32 {
            return Err(DatError::Architecture(format!(
                "tensor {name} is {:?} {:?}, expected F32 {shape:?}",
                t.dtype(),
                t.dims()
            )));
        }
    }
    if tensors.len() != expected.len() {
        let mut extra: Vec<&str> = tensors
            .keys()
            .filter(|k| !expected.iter().any(|(n, _)| n == *k))
            .map(String::as_str)
            .collect();
        extra.sort_unstable();
        return Err(DatError::Architecture(format!(
            "unexpected tensors {extra:?}"
        )));
    }
    Ok(())
}

const TAG_INPUT: &str = "input_rgb_image_sized";
const TAG_CON: &str = "con_4";
const TAG_AFFINE: &str = "affine_";
const TAG_FC: &str = "fc_2";

/// Parses the bytes of `dlib_face_recognition_resnet_model_v1.dat` into the
/// folded, named tensors described in the module docs, placed on `device`.
///
/// Pure: no I/O. Takes about as long as copying the 22 MB.
pub fn parse(bytes: &[u8], device: &Device) -> Result<HashMap<String, Tensor>, DatError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let mut out = HashMap::with_capacity(2 * CONVS.len() + 1);

    r.expect_tag(TAG_INPUT, "the input layer")?;
    read_input_layer(&mut r)?;

    for (i, spec) in CONVS.iter().enumerate() {
        let layer = format!("convolution {} of {} ({})", i + 1, CONVS.len(), spec.name);
        let con_at = r.expect_tag(TAG_CON, &layer)?;
        let (mut weight, mut bias) = read_con(&mut r, spec, con_at, &layer)?;

        let affine = format!("the affine layer after {layer}");
        let affine_at = r.expect_tag(TAG_AFFINE, &affine)?;
        let params = r.tensor(&affine)?;
        let o = spec.out_channels;
        if params.len() != 2 * o {
            return Err(DatError::NotDlibResnet(format!(
                "{affine} (offset {affine_at}) has {} parameters, expected {}",
                params.len(),
                2 * o
            )));
        }
        let (gamma, beta) = params.split_at(o);
        let per_filter = spec.in_channels * spec.kernel * spec.kernel;
        for (oc, filter) in weight.chunks_exact_mut(per_filter).enumerate() {
            filter.iter_mut().for_each(|w| *w *= gamma[oc]);
            bias[oc] = bias[oc] * gamma[oc] + beta[oc];
        }

        let k = spec.kernel;
        out.insert(
            format!("{}.weight", spec.name),
            Tensor::from_vec(weight, (o, spec.in_channels, k, k), device)?,
        );
        out.insert(
            format!("{}.bias", spec.name),
            Tensor::from_vec(bias, o, device)?,
        );
    }

    let fc_at = r.expect_tag(TAG_FC, "the final fc_no_bias layer")?;
    let outputs = r.usize("fc output count")?;
    let inputs = r.usize("fc input count")?;
    if (outputs, inputs) != (DESCRIPTOR_LEN, FC_IN) {
        return Err(DatError::NotDlibResnet(format!(
            "fc layer (offset {fc_at}) maps {inputs} → {outputs}, expected {FC_IN} → {DESCRIPTOR_LEN}"
        )));
    }
    let fc = r.tensor("fc weights")?;
    if fc.len() != FC_IN * DESCRIPTOR_LEN {
        return Err(DatError::NotDlibResnet(format!(
            "fc layer (offset {fc_at}) has {} weights, expected {}",
            fc.len(),
            FC_IN * DESCRIPTOR_LEN
        )));
    }
    // dlib stores [in, out] (out = x · W); candle's Linear wants [out, in].
    let fc = Tensor::from_vec(fc, (FC_IN, DESCRIPTOR_LEN), device)?
        .t()?
        .contiguous()?;
    out.insert(FC_WEIGHT.to_owned(), fc);

    if let Some(at) = r.find_next_tag()
        && r.tag_at(at, TAG_CON)
    {
        return Err(DatError::NotDlibResnet(format!(
            "a convolution follows the fc layer at offset {at}; this is a different network"
        )));
    }
    Ok(out)
}

/// Checks the input layer: RGB means (dlib floats) then the 150×150 size.
fn read_input_layer(r: &mut Reader<'_>) -> Result<(), DatError> {
    for (channel, &expected) in ["red", "green", "blue"].iter().zip(&INPUT_MEAN_RGB) {
        let at = r.pos;
        let mean = r.dlib_float(&format!("input mean {channel}"))?;
        if (mean - f64::from(expected)).abs() > 1e-3 {
            return Err(DatError::NotDlibResnet(format!(
                "input mean {channel} is {mean} at offset {at}, expected {expected}"
            )));
        }
    }
    let rows = r.usize("input rows")?;
    let cols = r.usize("input columns")?;
    if (rows, cols) != (CHIP_SIZE, CHIP_SIZE) {
        return Err(DatError::NotDlibResnet(format!(
            "input is {rows}x{cols}, expected {CHIP_SIZE}x{CHIP_SIZE}"
        )));
    }
    Ok(())
}

/// Reads one `con_` layer (after its tag): returns (filters OIHW, biases).
fn read_con(
    r: &mut Reader<'_>,
    spec: &ConvSpec,
    con_at: usize,
    layer: &str,
) -> Result<(Vec<f32>, Vec<f32>), DatError> {
    let mut params = r.tensor(layer)?;
    let mut geometry = [0usize; 7];
    for (v, what) in geometry.iter_mut().zip([
        "filter count",
        "filter rows",
        "filter columns",
        "vertical stride",
        "horizontal stride",
        "vertical padding",
        "horizontal padding",
    ]) {
        *v = r.usize(&format!("{layer} {what}"))?;
    }
    let expected = [
        spec.out_channels,
        spec.kernel,
        spec.kernel,
        spec.stride,
        spec.stride,
        spec.padding,
        spec.padding,
    ];
    let n_weights = spec.out_channels * spec.in_channels * spec.kernel * spec.kernel;
    if geometry != expected || params.len() != n_weights + spec.out_channels {
        return Err(DatError::NotDlibResnet(format!(
            "{layer} (offset {con_at}) has {} parameters and [filters, rows, cols, stride y/x, \
             pad y/x] = {geometry:?}; expected {} and {expected:?}",
            params.len(),
            n_weights + spec.out_channels,
        )));
    }
    let bias = params.split_off(n_weights);
    Ok((params, bias))
}

/// A cursor over the file.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn truncated(&self, what: &str) -> DatError {
        DatError::Truncated {
            offset: self.pos,
            what: what.to_owned(),
            len: self.buf.len(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], DatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.truncated(what))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// dlib's variable-length integer.
    fn int(&mut self, what: &str) -> Result<i64, DatError> {
        let at = self.pos;
        let control = self.take(1, what)?[0];
        let n = usize::from(control & 0x0f);
        if n > 8 || control & 0x70 != 0 {
            return Err(DatError::Malformed {
                offset: at,
                reason: format!("bad integer control byte {control:#04x} for {what}"),
            });
        }
        let bytes = self.take(n, what)?;
        let magnitude = bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let magnitude = i64::try_from(magnitude).map_err(|_| DatError::Malformed {
            offset: at,
            reason: format!("integer for {what} overflows"),
        })?;
        Ok(if control & 0x80 != 0 {
            -magnitude
        } else {
            magnitude
        })
    }

    /// A non-negative dlib integer that fits in `usize`.
    fn usize(&mut self, what: &str) -> Result<usize, DatError> {
        let at = self.pos;
        let v = self.int(what)?;
        usize::try_from(v).map_err(|_| DatError::Malformed {
            offset: at,
            reason: format!("{what} is {v}, expected a non-negative count"),
        })
    }

    /// dlib's portable float: mantissa then exponent, value `m · 2^e`.
    fn dlib_float(&mut self, what: &str) -> Result<f64, DatError> {
        let mantissa = self.int(what)?;
        let at = self.pos;
        let exponent = self.int(what)?;
        let exponent = i32::try_from(exponent)
            .ok()
            .filter(|e| e.abs() <= 1100)
            .ok_or_else(|| DatError::Malformed {
                offset: at,
                reason: format!("exponent {exponent} of {what} is out of range"),
            })?;
        // Rounding a 64-bit mantissa to f64 is irrelevant for these values.
        Ok(mantissa as f64 * 2f64.powi(exponent))
    }

    /// A dlib tensor (version 2), flattened.
    fn tensor(&mut self, what: &str) -> Result<Vec<f32>, DatError> {
        let at = self.pos;
        let version = self.int(what)?;
        if version != 2 {
            return Err(DatError::Malformed {
                offset: at,
                reason: format!("tensor version {version} for {what}, expected 2"),
            });
        }
        let mut count = 1usize;
        for _ in 0..4 {
            let d = self.usize(what)?;
            count = count.checked_mul(d).ok_or_else(|| DatError::Malformed {
                offset: at,
                reason: format!("tensor size overflows for {what}"),
            })?;
        }
        let n_bytes = count.checked_mul(4).ok_or_else(|| DatError::Malformed {
            offset: at,
            reason: format!("tensor size overflows for {what}"),
        })?;
        let raw = self.take(n_bytes, &format!("{count} floats of {what}"))?;
        Ok(raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Whether the serialized string `tag` (length 1-byte integer + bytes)
    /// starts at `at`.
    fn tag_at(&self, at: usize, tag: &str) -> bool {
        let t = tag.as_bytes();
        let end = at + 2 + t.len();
        end <= self.buf.len()
            && self.buf[at] == 0x01
            && usize::from(self.buf[at + 1]) == t.len()
            && &self.buf[at + 2..end] == t
    }

    /// Offset of the next tag of interest at or after the cursor.
    fn find_next_tag(&self) -> Option<usize> {
        (self.pos..self.buf.len()).find(|&at| {
            self.buf[at] == 0x01
                && [TAG_INPUT, TAG_CON, TAG_AFFINE, TAG_FC]
                    .iter()
                    .any(|t| self.tag_at(at, t))
        })
    }

    /// Moves past the next tag of interest, which must be `tag`; returns its
    /// offset.
    fn expect_tag(&mut self, tag: &str, what: &str) -> Result<usize, DatError> {
        let from = self.pos;
        let Some(at) = self.find_next_tag() else {
            return Err(DatError::NotDlibResnet(format!(
                "layer {tag} ({what}) not found after offset {from}"
            )));
        };
        if !self.tag_at(at, tag) {
            let found = [TAG_INPUT, TAG_CON, TAG_AFFINE, TAG_FC]
                .into_iter()
                .find(|t| self.tag_at(at, t))
                .unwrap_or("?");
            return Err(DatError::NotDlibResnet(format!(
                "expected layer {tag} ({what}) after offset {from}, found {found} at offset {at}"
            )));
        }
        self.pos = at + 2 + tag.len();
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dlib's integer encoding (minimal byte count, like dlib except that
    /// dlib writes 0 as `01 00`; both decode the same).
    fn enc_int(out: &mut Vec<u8>, v: i64) {
        let m = v.unsigned_abs();
        let bytes = m.to_le_bytes();
        let n = 8 - (m.leading_zeros() as usize / 8);
        let n = n.max(1);
        out.push(n as u8 | if v < 0 { 0x80 } else { 0 });
        out.extend_from_slice(&bytes[..n]);
    }

    fn enc_str(out: &mut Vec<u8>, s: &str) {
        enc_int(out, s.len() as i64);
        out.extend_from_slice(s.as_bytes());
    }

    fn enc_tensor(out: &mut Vec<u8>, dims: [usize; 4], f: impl Fn(usize) -> f32) {
        enc_int(out, 2);
        for d in dims {
            enc_int(out, d as i64);
        }
        for i in 0..dims.iter().product() {
            out.extend_from_slice(&f(i).to_le_bytes());
        }
    }

    /// dlib float with a 2^-17 exponent, as in the real file.
    fn enc_float(out: &mut Vec<u8>, v: f32) {
        enc_int(out, (f64::from(v) * 131_072.0).round() as i64);
        enc_int(out, -17);
    }

    /// A synthetic file with the real layout: every weight is 0.5 + small
    /// index pattern, biases 1, γ = 2 and β = 3 (per channel: + o).
    fn synthetic_dat() -> Vec<u8> {
        let mut b = Vec::new();
        enc_int(&mut b, 1);
        enc_str(&mut b, "loss_metric_2");
        enc_str(&mut b, TAG_INPUT);
        for m in INPUT_MEAN_RGB {
            enc_float(&mut b, m);
        }
        enc_int(&mut b, 150);
        enc_int(&mut b, 150);
        for spec in &CONVS {
            enc_str(&mut b, TAG_CON);
            let nw = spec.out_channels * spec.in_channels * spec.kernel * spec.kernel;
            enc_tensor(&mut b, [nw + spec.out_channels, 1, 1, 1], |i| {
                if i < nw { 0.5 } else { 1.0 }
            });
            for v in [
                spec.out_channels,
                spec.kernel,
                spec.kernel,
                spec.stride,
                spec.stride,
                spec.padding,
                spec.padding,
            ] {
                enc_int(&mut b, v as i64);
            }
            // what dlib writes next (alias tensors, learning rates, relu) is
            // skipped by the reader; put something tag-like but different.
            enc_str(&mut b, "relu_");
            enc_str(&mut b, TAG_AFFINE);
            let o = spec.out_channels;
            enc_tensor(&mut b, [2 * o, 1, 1, 1], |i| {
                if i < o { 2.0 } else { 3.0 + (i - o) as f32 }
            });
            enc_int(&mut b, 1);
        }
        enc_str(&mut b, TAG_FC);
        enc_int(&mut b, 128);
        enc_int(&mut b, 256);
        enc_tensor(&mut b, [256, 128, 1, 1], |i| i as f32);
        enc_str(&mut b, "loss_metric_2_end");
        b
    }

    #[test]
    fn expected_parameter_count_matches_shapes() {
        let n: usize = expected_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(n, EXPECTED_PARAMETERS);
        // dlib's count (5,614,592) minus γ and β of every affine layer.
        let affine: usize = CONVS.iter().map(|c| 2 * c.out_channels).sum();
        assert_eq!(n + affine, 5_614_592);
    }

    #[test]
    fn parses_synthetic_file_and_folds_affine() {
        let t = parse(&synthetic_dat(), &Device::Cpu).unwrap();
        check_tensors(&t).unwrap();
        let w = t["layer2.0.conv1.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(w.iter().all(|&x| x == 1.0), "w' = 0.5 · γ(2)");
        let b = t["layer2.0.conv1.bias"].to_vec1::<f32>().unwrap();
        // b' = 1 · 2 + (3 + o)
        assert_eq!(b[0], 5.0);
        assert_eq!(b[63], 68.0);
        // fc: dlib [in, out] row-major value i = in·128 + out; ours [out, in].
        let fc = t[FC_WEIGHT].to_vec2::<f32>().unwrap();
        assert_eq!(fc[5][7], (7 * 128 + 5) as f32);
    }

    #[test]
    fn garbage_is_not_a_model() {
        let garbage: Vec<u8> = (0..10_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let err = parse(&garbage, &Device::Cpu).unwrap_err();
        assert!(matches!(err, DatError::NotDlibResnet(_)), "{err}");
        assert!(err.to_string().contains("input_rgb_image_sized"), "{err}");
        let err = parse(&[], &Device::Cpu).unwrap_err();
        assert!(matches!(err, DatError::NotDlibResnet(_)), "{err}");
    }

    #[test]
    fn truncation_is_reported_with_offset() {
        let full = synthetic_dat();
        // Inside the fc weights: a tensor read runs off the end.
        let cut = full.len() - 1000;
        let err = parse(&full[..cut], &Device::Cpu).unwrap_err();
        match &err {
            DatError::Truncated { offset, len, .. } => {
                assert_eq!(*len, cut);
                assert!(*offset < cut);
            }
            other => panic!("expected Truncated, got {other}"),
        }
        assert!(
            err.to_string().contains("file truncated at offset"),
            "{err}"
        );
        // Between layers: the next layer is simply missing.
        let half = parse(&full[..full.len() / 2], &Device::Cpu).unwrap_err();
        assert!(
            matches!(
                half,
                DatError::Truncated { .. } | DatError::NotDlibResnet(_)
            ),
            "{half}"
        );
        // Every prefix that cuts into the weights fails cleanly (never
        // panics). The trailer after fc (loss layer settings) is not needed.
        let weights_end = full.len() - (2 + "loss_metric_2_end".len());
        for cut in (0..weights_end)
            .step_by(weights_end / 23)
            .chain([weights_end - 1])
        {
            assert!(parse(&full[..cut], &Device::Cpu).is_err());
        }
    }

    #[test]
    fn wrong_geometry_is_rejected() {
        let mut b = Vec::new();
        enc_str(&mut b, TAG_INPUT);
        for m in INPUT_MEAN_RGB {
            enc_float(&mut b, m);
        }
        enc_int(&mut b, 150);
        enc_int(&mut b, 150);
        enc_str(&mut b, TAG_CON);
        enc_tensor(&mut b, [16 * 3 * 9 + 16, 1, 1, 1], |_| 0.0);
        for v in [16, 3, 3, 1, 1, 1, 1] {
            enc_int(&mut b, v);
        }
        let err = parse(&b, &Device::Cpu).unwrap_err();
        assert!(
            matches!(err, DatError::NotDlibResnet(ref m) if m.contains("convolution 1 of 29")),
            "{err}"
        );
    }

    #[test]
    fn missing_affine_is_rejected() {
        let full = synthetic_dat();
        // Rename the first "affine_" so the reader meets the second con_4.
        let at = full
            .windows(TAG_AFFINE.len())
            .position(|w| w == TAG_AFFINE.as_bytes())
            .unwrap();
        let mut broken = full.clone();
        broken[at] = b'X';
        let err = parse(&broken, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("found con_4"), "{err}");
    }

    #[test]
    fn check_tensors_reports_wrong_shape_and_extras() {
        let mut t = parse(&synthetic_dat(), &Device::Cpu).unwrap();
        t.insert(
            "extra".into(),
            Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap(),
        );
        assert!(check_tensors(&t).unwrap_err().to_string().contains("extra"));
        t.remove("extra");
        t.insert(
            FC_WEIGHT.into(),
            Tensor::zeros((256, 128), DType::F32, &Device::Cpu).unwrap(),
        );
        assert!(
            check_tensors(&t)
                .unwrap_err()
                .to_string()
                .contains("fc.weight")
        );
    }
}
