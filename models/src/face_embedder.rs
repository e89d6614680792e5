//! dlib's metric-learning ResNet face embedder (`dlib_face_recognition_resnet_model_v1`).
//!
//! Maps a 150×150 RGB face chip, aligned the dlib way (5-point landmarks,
//! `get_face_chip(size=150, padding=0.25)`), to a 128-D descriptor. Two faces
//! are the same person when the Euclidean distance of their descriptors is
//! below 0.6. Descriptors are not normalised (norm ≈ 1.46).
//!
//! - Reference implementation: dlib `examples/dnn_face_recognition_ex.cpp`
//!   (`anet_type`), Davis King.
//! - Weights: `dlib_face_recognition_resnet_model_v1.dat` from PyPI
//!   `face-recognition-models` 0.3.0, CC0 1.0; load them with
//!   [`crate::dlib_dat::parse`] (which folds dlib's affine layers into the
//!   convolutions) or from a safetensors file written from that map.
//!
//! Architecture (29 conv layers, 5.6 M parameters):
//! - input `(x − mean_rgb) / 256`;
//! - stem: conv 7×7/2 pad 0 (3 → 32), ReLU, max-pool 3×3/2: 150 → 72 → 35;
//! - residual blocks `relu(conv2(relu(conv1(x))) + x)` with 3×3 pad 1 convs;
//! - down blocks `relu(conv2(relu(conv1(x))) ⊕ avgpool2×2/2(x))`, `conv1` 3×3/2
//!   pad 0, where ⊕ is dlib's `add_prev`: the smaller operand is zero-extended
//!   at the end of C, H and W;
//! - stages 3×32, down+3×64, down+2×128, down+2×256, down 256
//!   (35², 17², 8², 4², 2²);
//! - global average pool, then a 256 → 128 projection without bias.

use candle_core::{DType, Device, Module, Result, Tensor, bail};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder};

/// Side of the square input chip, in pixels.
pub const CHIP_SIZE: usize = 150;
/// Length of a descriptor.
pub const DESCRIPTOR_LEN: usize = 128;
/// Per-channel means dlib subtracts from the R, G, B pixel values.
pub const INPUT_MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];
/// dlib divides by 256 (not 255) after subtracting the mean.
const INPUT_SCALE: f64 = 1.0 / 256.0;

/// Convolution (affine folded in) with an optional ReLU.
#[derive(Debug, Clone)]
struct ConvBlock {
    conv: Conv2d,
    relu: bool,
}

impl ConvBlock {
    fn new(
        in_c: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        relu: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding,
            stride,
            ..Default::default()
        };
        Ok(Self {
            conv: candle_nn::conv2d(in_c, out_c, kernel, cfg, vb)?,
            relu,
        })
    }
}

impl Module for ConvBlock {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = self.conv.forward(xs)?;
        if self.relu { ys.relu() } else { Ok(ys) }
    }
}

/// `relu(conv2(relu(conv1(x))) + x)`, channels unchanged.
#[derive(Debug, Clone)]
struct Residual {
    conv1: ConvBlock,
    conv2: ConvBlock,
}

impl Residual {
    fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: ConvBlock::new(channels, channels, 3, 1, 1, true, vb.pp("conv1"))?,
            conv2: ConvBlock::new(channels, channels, 3, 1, 1, false, vb.pp("conv2"))?,
        })
    }
}

impl Module for Residual {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        (self.conv2.forward(&self.conv1.forward(xs)?)? + xs)?.relu()
    }
}

/// `relu(conv2(relu(conv1_s2(x))) ⊕ avgpool(x))`, halving H and W.
#[derive(Debug, Clone)]
struct ResidualDown {
    conv1: ConvBlock,
    conv2: ConvBlock,
}

impl ResidualDown {
    fn new(in_c: usize, out_c: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: ConvBlock::new(in_c, out_c, 3, 2, 0, true, vb.pp("conv1"))?,
            conv2: ConvBlock::new(out_c, out_c, 3, 1, 1, false, vb.pp("conv2"))?,
        })
    }
}

impl Module for ResidualDown {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let main = self.conv2.forward(&self.conv1.forward(xs)?)?;
        let skip = xs.avg_pool2d_with_stride(2, 2)?;
        add_zero_extended(&main, &skip)?.relu()
    }
}

/// dlib's `add_prev`: zero-extends the smaller operand at the end of each of
/// C, H and W, then adds. The result has the larger extent in every dim.
fn add_zero_extended(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (mut a, mut b) = (a.clone(), b.clone());
    for dim in 1..4 {
        let (na, nb) = (a.dim(dim)?, b.dim(dim)?);
        if na < nb {
            a = a.pad_with_zeros(dim, 0, nb - na)?;
        } else if nb < na {
            b = b.pad_with_zeros(dim, 0, na - nb)?;
        }
    }
    a + b
}

#[derive(Debug, Clone)]
enum Block {
    Plain(Residual),
    Down(ResidualDown),
}

impl Module for Block {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Plain(b) => b.forward(xs),
            Self::Down(b) => b.forward(xs),
        }
    }
}

/// The dlib ResNet face embedder. See the module docs.
#[derive(Debug, Clone)]
pub struct FaceEmbedder {
    mean: Tensor,
    conv1: ConvBlock,
    blocks: Vec<Block>,
    fc: Linear,
}

impl FaceEmbedder {
    /// Builds the network from tensors named as documented in
    /// [`crate::dlib_dat`] (`conv1.*`, `layer{1..5}.{i}.conv{1,2}.*`, `fc.weight`).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let mean =
            Tensor::from_slice(&INPUT_MEAN_RGB, (1, 3, 1, 1), vb.device())?.to_dtype(vb.dtype())?;
        let conv1 = ConvBlock::new(3, 32, 7, 2, 0, true, vb.pp("conv1"))?;
        // (channels, whether the stage starts with a down block, plain blocks)
        let stages: [(usize, bool, usize); 5] = [
            (32, false, 3),
            (64, true, 3),
            (128, true, 2),
            (256, true, 2),
            (256, true, 0),
        ];
        let mut blocks = Vec::with_capacity(15);
        let mut in_c = 32;
        for (s, &(channels, down, plain)) in stages.iter().enumerate() {
            let vb = vb.pp(format!("layer{}", s + 1));
            let mut i = 0;
            if down {
                blocks.push(Block::Down(ResidualDown::new(in_c, channels, vb.pp(i))?));
                i += 1;
            }
            for _ in 0..plain {
                blocks.push(Block::Plain(Residual::new(channels, vb.pp(i))?));
                i += 1;
            }
            in_c = channels;
        }
        let fc = candle_nn::linear_no_bias(in_c, DESCRIPTOR_LEN, vb.pp("fc"))?;
        Ok(Self {
            mean,
            conv1,
            blocks,
            fc,
        })
    }

    /// `chips`: `[N, 3, 150, 150]`, RGB, values in 0..=255 (not normalised),
    /// in the builder's dtype. Returns `[N, 128]` descriptors.
    pub fn forward(&self, chips: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = chips.dims4()?;
        if (c, h, w) != (3, CHIP_SIZE, CHIP_SIZE) {
            bail!(
                "face embedder expects [N, 3, {CHIP_SIZE}, {CHIP_SIZE}] chips, got {:?}",
                chips.dims()
            );
        }
        let xs = chips.broadcast_sub(&self.mean)?.affine(INPUT_SCALE, 0.0)?;
        let mut xs = self.conv1.forward(&xs)?.max_pool2d_with_stride(3, 2)?;
        for block in &self.blocks {
            xs = block.forward(&xs)?;
        }
        self.fc.forward(&xs.mean((2, 3))?)
    }
}

impl Module for FaceEmbedder {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        FaceEmbedder::forward(self, xs)
    }
}

/// Turns one interleaved RGB chip (`150·150·3` bytes, row-major, as
/// `get_face_chip` produces) into a `[1, 3, 150, 150]` f32 tensor for
/// [`FaceEmbedder::forward`]. Concatenate along dim 0 to batch.
pub fn chip_to_tensor(rgb: &[u8], device: &Device) -> Result<Tensor> {
    let expected = CHIP_SIZE * CHIP_SIZE * 3;
    if rgb.len() != expected {
        bail!(
            "a {CHIP_SIZE}x{CHIP_SIZE} RGB chip has {expected} bytes, got {}",
            rgb.len()
        );
    }
    Tensor::from_slice(rgb, (CHIP_SIZE, CHIP_SIZE, 3), device)?
        .permute((2, 0, 1))?
        .to_dtype(DType::F32)?
        .unsqueeze(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlib_dat;

    #[test]
    fn zero_weights_give_batch_of_descriptors() {
        let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
        let net = FaceEmbedder::new(vb).unwrap();
        let chips = Tensor::zeros((2, 3, 150, 150), DType::F32, &Device::Cpu).unwrap();
        let out = net.forward(&chips).unwrap();
        assert_eq!(out.dims(), &[2, DESCRIPTOR_LEN]);
    }

    #[test]
    fn rejects_wrong_chip_size() {
        let net = FaceEmbedder::new(VarBuilder::zeros(DType::F32, &Device::Cpu)).unwrap();
        let chips = Tensor::zeros((1, 3, 112, 112), DType::F32, &Device::Cpu).unwrap();
        let err = net.forward(&chips).unwrap_err().to_string();
        assert!(err.contains("[N, 3, 150, 150]"), "{err}");
    }

    type Reads = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<usize>)>>>;

    /// Records the (name, shape) of every tensor the network asks for.
    struct Recorder(Reads);

    impl candle_nn::var_builder::SimpleBackend for Recorder {
        fn get(
            &self,
            s: candle_core::Shape,
            name: &str,
            _: candle_nn::Init,
            dtype: DType,
            dev: &Device,
        ) -> Result<Tensor> {
            let read = (name.to_owned(), s.dims().to_vec());
            self.0.lock().unwrap().push(read);
            Tensor::zeros(s, dtype, dev)
        }
        fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
            bail!("unexpected unchecked read of {name}")
        }
        fn contains_tensor(&self, _: &str) -> bool {
            true
        }
    }

    /// The names and shapes the parser produces are exactly those the
    /// network reads, none missing and none unused.
    #[test]
    fn parser_names_match_network() {
        let reads = Reads::default();
        let backend = Box::new(Recorder(reads.clone()));
        FaceEmbedder::new(VarBuilder::from_backend(backend, DType::F32, Device::Cpu)).unwrap();
        let mut read = reads.lock().unwrap().clone();
        let mut expected = dlib_dat::expected_shapes();
        read.sort();
        expected.sort();
        assert_eq!(read, expected);
    }

    /// dlib's `add_prev` geometry: zero-extension at the end of C, H and W.
    #[test]
    fn add_prev_zero_extends_at_the_end() {
        let dev = Device::Cpu;
        let a = Tensor::ones((1, 4, 1, 1), DType::F32, &dev).unwrap();
        let b = Tensor::ones((1, 2, 2, 2), DType::F32, &dev).unwrap();
        let s = add_zero_extended(&a, &b).unwrap();
        assert_eq!(s.dims(), &[1, 4, 2, 2]);
        let v = s.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // channel 0: [2,1,1,1]; channel 1: [2,1,1,1]; channels 2,3: [1,0,0,0]
        assert_eq!(
            v,
            [
                2., 1., 1., 1., 2., 1., 1., 1., 1., 0., 0., 0., 1., 0., 0., 0.
            ]
        );
    }

    #[test]
    fn chip_to_tensor_is_channel_major() {
        let mut rgb = vec![0u8; 150 * 150 * 3];
        // pixel (row 1, col 2) = (10, 20, 30)
        let p = (150 + 2) * 3;
        rgb[p..p + 3].copy_from_slice(&[10, 20, 30]);
        let t = chip_to_tensor(&rgb, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[1, 3, 150, 150]);
        let px: Vec<f32> = (0..3)
            .map(|c| {
                t.get(0)
                    .unwrap()
                    .get(c)
                    .unwrap()
                    .get(1)
                    .unwrap()
                    .get(2)
                    .unwrap()
            })
            .map(|v| v.to_scalar::<f32>().unwrap())
            .collect();
        assert_eq!(px, [10.0, 20.0, 30.0]);
        assert!(chip_to_tensor(&rgb[1..], &Device::Cpu).is_err());
    }
}
