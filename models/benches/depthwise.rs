//! Per-layer timings of the depthwise 3×3 kernel against candle's grouped
//! convolution (the reference it replaced), at the sizes SSD-MobileNetV1
//! runs it: input `[1, C, S, S]`, stride 1 and 2, TF "same" padding.
//!
//! Input: nothing (random tensors). Output: a table on stdout, median of
//! several runs after a warm-up. Run with
//! `cargo bench -p consentry-models --bench depthwise`.

use std::time::Instant;

use candle_core::{Device, Result, Tensor};
use consentry_models::depthwise::{Pad, depthwise3x3};

/// What `depthwise3x3` replaced: one convolution per channel.
fn grouped(x: &Tensor, w: &Tensor, stride: usize, pad: Pad) -> Result<Tensor> {
    let c = x.dim(1)?;
    x.pad_with_zeros(2, pad.top, pad.bottom)?
        .pad_with_zeros(3, pad.left, pad.right)?
        .conv2d(w, 0, stride, 1, c)
}

/// Median wall time of `f` in milliseconds.
fn median_ms(runs: usize, mut f: impl FnMut() -> Result<Tensor>) -> f64 {
    f().unwrap();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let t0 = Instant::now();
            f().unwrap();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[runs / 2]
}

fn main() -> Result<()> {
    let dev = Device::Cpu;
    println!("threads: {}", rayon::current_num_threads());
    println!(
        "{:>6} {:>6} {:>6} {:>12} {:>14} {:>8}",
        "C", "size", "stride", "kernel ms", "grouped ms", "speed-up"
    );
    for (c, s) in [(32, 256), (512, 32), (1024, 16)] {
        for stride in [1, 2] {
            let x = Tensor::randn(0f32, 1.0, (1, c, s, s), &dev)?;
            let w = Tensor::randn(0f32, 1.0, (c, 1, 3, 3), &dev)?;
            let pad = Pad::tf_same(s, s, 3, stride);
            let ours = median_ms(21, || depthwise3x3(&x, &w, stride, pad));
            let reference = median_ms(3, || grouped(&x, &w, stride, pad));
            println!(
                "{c:>6} {:>6} {stride:>6} {ours:>12.3} {reference:>14.1} {:>7.0}×",
                format!("{s}²"),
                reference / ours
            );
        }
    }
    Ok(())
}
