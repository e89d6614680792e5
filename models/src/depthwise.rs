//! Depthwise 3×3 convolution (one filter per channel), the layer that
//! dominates SSD-MobileNetV1 and the landmark net.
//!
//! Input: activations `[N, C, H, W]`, filters `[C, 1, 3, 3]`, a stride of 1
//! or 2 (others work, unspecialised) and explicit zero padding (TF "same"
//! padding is asymmetric, see [`Pad::tf_same`]). Output: `[N, C, H', W']`,
//! `H' = (H + top + bottom − 3) / stride + 1`.
//! Failure modes: shape mismatches and an input smaller than the kernel are
//! candle errors.
//!
//! Why a kernel of our own: candle's `conv2d(groups = C)` splits the input
//! into C single-channel convolutions, each through im2col and a 1-wide
//! gemm, and concatenates them (33–154 ms per MobileNet layer on 2 cores).
//! On the CPU, for contiguous f32 tensors, [`depthwise3x3`] runs a direct
//! kernel instead (a candle [`CustomOp2`]): one rayon task per `(n, c)`
//! plane, each output row computed in one pass over three input rows with
//! bounds-check-free slice loops that LLVM vectorises. Padding is never
//! materialised: a row above/below the image is a shared zero row, and the
//! (at most a few) output columns whose taps leave the image are computed by
//! a scalar loop. Stride 2 de-interleaves each input row into even and odd
//! samples first, so the tap loop stays unit-stride.
//! Any other device or dtype (e.g. a `--features cuda` build) takes the
//! grouped-convolution path, which on a GPU is candle's CUDA convolution.
//!
//! [`depthwise3x3_bias_relu6`] fuses the per-channel shift of a folded
//! BatchNorm and ReLU6 into the same pass (MobileNet's depthwise block).

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Zero padding on each side, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pad {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Pad {
    pub const fn uniform(p: usize) -> Self {
        Self {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }

    /// TensorFlow's "same" padding for a `k`-wide kernel with stride `s` on
    /// an `h × w` input: `max((ceil(n/s) − 1)·s + k − n, 0)` in total, the
    /// extra pixel at the bottom/right.
    pub fn tf_same(h: usize, w: usize, k: usize, s: usize) -> Self {
        let total = |n: usize| ((n.div_ceil(s) - 1) * s + k).saturating_sub(n);
        let (th, tw) = (total(h), total(w));
        Self {
            top: th / 2,
            bottom: th - th / 2,
            left: tw / 2,
            right: tw - tw / 2,
        }
    }
}

/// Depthwise 3×3 convolution without bias.
pub fn depthwise3x3(x: &Tensor, w: &Tensor, stride: usize, pad: Pad) -> Result<Tensor> {
    run(x, w, None, stride, pad)
}

/// `min(max(depthwise3x3(x, w) + bias[c], 0), 6)`: MobileNet's depthwise
/// block once BatchNorm is folded into `w` (scale) and `bias` (shift).
/// `bias` is `[C]`.
pub fn depthwise3x3_bias_relu6(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: Pad,
) -> Result<Tensor> {
    run(x, w, Some(bias), stride, pad)
}

fn run(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, stride: usize, pad: Pad) -> Result<Tensor> {
    let (_, c, h, wd) = x.dims4()?;
    let (wc, one, kh, kw) = w.dims4()?;
    if (wc, one, kh, kw) != (c, 1, 3, 3) {
        bail!(
            "depthwise3x3: filters {:?} do not fit an input of {c} channels",
            w.dims()
        );
    }
    if stride == 0 || h + pad.top + pad.bottom < 3 || wd + pad.left + pad.right < 3 {
        bail!("depthwise3x3: input {h}×{wd} with {pad:?} and stride {stride} is too small");
    }
    if let Some(b) = bias
        && b.dims() != [c]
    {
        bail!(
            "depthwise3x3: bias {:?} does not fit {c} channels",
            b.dims()
        );
    }
    let cpu_f32 = x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32;
    if !cpu_f32 {
        return grouped_conv(x, w, bias, stride, pad);
    }
    let bias = match bias {
        Some(b) => Some(b.to_dtype(DType::F32)?.to_vec1::<f32>()?),
        None => None,
    };
    let op = Depthwise3x3 {
        stride,
        pad,
        bias: bias.as_deref(),
    };
    x.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, &op)
}

/// The portable path: candle's grouped convolution (cuDNN on CUDA).
fn grouped_conv(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    pad: Pad,
) -> Result<Tensor> {
    let c = x.dim(1)?;
    let x = x
        .pad_with_zeros(2, pad.top, pad.bottom)?
        .pad_with_zeros(3, pad.left, pad.right)?;
    let y = x.conv2d(w, 0, stride, 1, c)?;
    match bias {
        None => Ok(y),
        Some(b) => y
            .broadcast_add(&b.reshape((1, c, 1, 1))?)?
            .clamp(0f32, 6f32),
    }
}

/// The CPU kernel. `bias` present means: add it per channel, then ReLU6.
struct Depthwise3x3<'a> {
    stride: usize,
    pad: Pad,
    bias: Option<&'a [f32]>,
}

/// Geometry of one plane, shared by every task.
#[derive(Clone, Copy)]
struct Plane {
    h: usize,
    w: usize,
    wo: usize,
    stride: usize,
    pad: Pad,
    /// Output columns `lo..hi` have all three taps inside the input row.
    lo: usize,
    hi: usize,
    /// Clamp applied to every output: ReLU6 or nothing.
    min: f32,
    max: f32,
}

fn f32_slice<'s>(s: &'s CpuStorage, l: &Layout, what: &str) -> Result<&'s [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("depthwise3x3: {what} must be f32");
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => bail!("depthwise3x3: {what} must be contiguous"),
    }
}

impl CustomOp2 for Depthwise3x3<'_> {
    fn name(&self) -> &'static str {
        "depthwise3x3"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l1.shape().dims4()?;
        let x = f32_slice(s1, l1, "input")?;
        let k = f32_slice(s2, l2, "filters")?;
        let (s, pad) = (self.stride, self.pad);
        let ho = (h + pad.top + pad.bottom - 3) / s + 1;
        let wo = (w + pad.left + pad.right - 3) / s + 1;
        // Interior columns: ox·s − left ≥ 0 and ox·s − left + 2 ≤ w − 1.
        let lo = pad.left.div_ceil(s).min(wo);
        let hi = if w + pad.left >= 3 {
            ((w + pad.left - 3) / s + 1).min(wo)
        } else {
            0
        };
        let (min, max) = match self.bias {
            Some(_) => (0.0, 6.0),
            None => (f32::NEG_INFINITY, f32::INFINITY),
        };
        let g = Plane {
            h,
            w,
            wo,
            stride: s,
            pad,
            lo,
            hi: hi.max(lo),
            min,
            max,
        };
        let zeros = vec![0f32; w];
        let mut out = vec![0f32; n * c * ho * wo];
        if out.is_empty() {
            return Ok((CpuStorage::F32(out), Shape::from((n, c, ho, wo))));
        }
        out.par_chunks_mut(ho * wo).enumerate().for_each_init(
            || vec![0f32; 3 * (2 * wo + 2)],
            |scratch, (p, o)| {
                let ch = p % c;
                let taps: [f32; 9] = std::array::from_fn(|i| k[ch * 9 + i]);
                let bias = self.bias.map_or(0.0, |b| b[ch]);
                plane(
                    &g,
                    &x[p * h * w..][..h * w],
                    &taps,
                    bias,
                    o,
                    &zeros,
                    scratch,
                );
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((n, c, ho, wo))))
    }
}

/// One `(n, c)` plane: `x` is `h × w`, `out` is `ho × wo`.
fn plane(
    g: &Plane,
    x: &[f32],
    k: &[f32; 9],
    bias: f32,
    out: &mut [f32],
    zeros: &[f32],
    scratch: &mut [f32],
) {
    for (oy, orow) in out.chunks_exact_mut(g.wo).enumerate() {
        // Rows outside the image read as the shared zero row.
        let rows: [&[f32]; 3] =
            std::array::from_fn(|ky| match (oy * g.stride + ky).checked_sub(g.pad.top) {
                Some(iy) if iy < g.h => &x[iy * g.w..][..g.w],
                _ => zeros,
            });
        edges(g, &rows, k, bias, orow);
        let n = g.hi - g.lo;
        if n == 0 {
            continue;
        }
        let o = &mut orow[g.lo..g.hi];
        match g.stride {
            1 => {
                let b = g.lo - g.pad.left;
                let a: [&[f32]; 9] = std::array::from_fn(|j| &rows[j / 3][b + j % 3..][..n]);
                taps9(o, a, k, bias, g.min, g.max);
            }
            2 => {
                // Taps 0 and 2 read the even samples (shifted by one), tap 1
                // the odd ones: split each row so all nine reads are unit-stride.
                let b = 2 * g.lo - g.pad.left;
                let (even, odd) = scratch.split_at_mut(3 * (n + 1));
                for (ky, r) in rows.iter().enumerate() {
                    let src = &r[b..][..2 * n + 1];
                    let e = &mut even[ky * (n + 1)..][..n + 1];
                    let od = &mut odd[ky * n..][..n];
                    for ((e, od), pair) in e.iter_mut().zip(od.iter_mut()).zip(src.chunks_exact(2))
                    {
                        *e = pair[0];
                        *od = pair[1];
                    }
                    e[n] = src[2 * n];
                }
                let ev = |ky: usize, s: usize| &even[ky * (n + 1) + s..][..n];
                let od = |ky: usize| &odd[ky * n..][..n];
                let a = [
                    ev(0, 0),
                    od(0),
                    ev(0, 1),
                    ev(1, 0),
                    od(1),
                    ev(1, 1),
                    ev(2, 0),
                    od(2),
                    ev(2, 1),
                ];
                taps9(o, a, k, bias, g.min, g.max);
            }
            _ => {
                for (i, v) in o.iter_mut().enumerate() {
                    *v = tap_checked(g, &rows, k, bias, g.lo + i);
                }
            }
        }
    }
}

/// `o[i] = clamp(bias + Σ k[j]·a[j][i])` over nine equally long slices. The
/// slices are cut to `o.len()` up front so the loop carries no bounds checks
/// and vectorises.
#[inline(always)]
fn taps9(o: &mut [f32], a: [&[f32]; 9], k: &[f32; 9], bias: f32, min: f32, max: f32) {
    let n = o.len();
    let [a0, a1, a2, a3, a4, a5, a6, a7, a8] = a.map(|s| &s[..n]);
    for i in 0..n {
        let v = bias
            + k[0] * a0[i]
            + k[1] * a1[i]
            + k[2] * a2[i]
            + k[3] * a3[i]
            + k[4] * a4[i]
            + k[5] * a5[i]
            + k[6] * a6[i]
            + k[7] * a7[i]
            + k[8] * a8[i];
        o[i] = v.max(min).min(max);
    }
}

/// The columns outside `lo..hi`, whose taps may fall into the padding.
fn edges(g: &Plane, rows: &[&[f32]; 3], k: &[f32; 9], bias: f32, orow: &mut [f32]) {
    for ox in (0..g.lo).chain(g.hi..g.wo) {
        orow[ox] = tap_checked(g, rows, k, bias, ox);
    }
}

fn tap_checked(g: &Plane, rows: &[&[f32]; 3], k: &[f32; 9], bias: f32, ox: usize) -> f32 {
    let mut v = bias;
    for (ky, r) in rows.iter().enumerate() {
        for kx in 0..3 {
            if let Some(ix) = (ox * g.stride + kx).checked_sub(g.pad.left)
                && ix < g.w
            {
                v += k[ky * 3 + kx] * r[ix];
            }
        }
    }
    v.max(g.min).min(g.max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn tf_same_padding_puts_the_extra_pixel_at_the_end() {
        assert_eq!(
            Pad::tf_same(512, 512, 3, 2),
            Pad {
                top: 0,
                bottom: 1,
                left: 0,
                right: 1
            }
        );
        assert_eq!(Pad::tf_same(7, 7, 3, 2), Pad::uniform(1));
        assert_eq!(Pad::tf_same(32, 32, 3, 1), Pad::uniform(1));
        assert_eq!(Pad::tf_same(1, 1, 1, 1), Pad::uniform(0));
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

    fn check(n: usize, c: usize, h: usize, w: usize, stride: usize, pad: Pad) {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (n, c, h, w), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (c, 1, 3, 3), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, c, &dev).unwrap();
        let ours = depthwise3x3(&x, &k, stride, pad).unwrap();
        let reference = grouped_conv(&x, &k, None, stride, pad).unwrap();
        let d = max_diff(&ours, &reference);
        assert!(
            d < 1e-5,
            "{n}×{c}×{h}×{w} stride {stride} {pad:?}: max diff {d}"
        );
        let ours = depthwise3x3_bias_relu6(&x, &k, &b, stride, pad).unwrap();
        let reference = grouped_conv(&x, &k, Some(&b), stride, pad).unwrap();
        let d = max_diff(&ours, &reference);
        assert!(
            d < 1e-5,
            "fused {n}×{c}×{h}×{w} stride {stride} {pad:?}: max diff {d}"
        );
    }

    #[test]
    fn matches_grouped_conv_stride_1() {
        check(2, 5, 9, 12, 1, Pad::uniform(1));
        check(1, 3, 16, 16, 1, Pad::uniform(1));
        check(3, 4, 7, 5, 1, Pad::uniform(0));
        check(
            2,
            3,
            11,
            10,
            1,
            Pad {
                top: 0,
                bottom: 2,
                left: 2,
                right: 0,
            },
        );
        check(1, 2, 3, 3, 1, Pad::uniform(1));
        check(1, 2, 1, 1, 1, Pad::uniform(1));
    }

    #[test]
    fn matches_grouped_conv_stride_2() {
        check(2, 5, 16, 16, 2, Pad::tf_same(16, 16, 3, 2));
        check(1, 3, 15, 17, 2, Pad::tf_same(15, 17, 3, 2));
        check(3, 4, 9, 8, 2, Pad::uniform(1));
        check(
            2,
            3,
            10,
            13,
            2,
            Pad {
                top: 1,
                bottom: 0,
                left: 0,
                right: 2,
            },
        );
        check(1, 2, 2, 2, 2, Pad::tf_same(2, 2, 3, 2));
        check(2, 6, 33, 31, 2, Pad::uniform(0));
    }

    #[test]
    fn other_strides_use_the_checked_path() {
        check(1, 3, 14, 13, 3, Pad::uniform(1));
    }

    #[test]
    fn non_contiguous_input_is_accepted() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 9, 8, 3), &dev)
            .unwrap()
            .permute((0, 3, 1, 2))
            .unwrap();
        let k = Tensor::randn(0f32, 1.0, (3, 1, 3, 3), &dev).unwrap();
        let pad = Pad::uniform(1);
        let d = max_diff(
            &depthwise3x3(&x, &k, 1, pad).unwrap(),
            &grouped_conv(&x, &k, None, 1, pad).unwrap(),
        );
        assert!(d < 1e-5, "{d}");
    }

    #[test]
    fn mismatched_filters_are_refused() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 4, 8, 8), DType::F32, &dev).unwrap();
        let k = Tensor::zeros((3, 1, 3, 3), DType::F32, &dev).unwrap();
        assert!(depthwise3x3(&x, &k, 1, Pad::uniform(1)).is_err());
    }
}
