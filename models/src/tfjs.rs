//! Reader for tfjs "weights manifests", the format face-api ships its
//! networks in (`*-weights_manifest.json` plus one or more `.bin` shards).
//!
//! Input: the manifest JSON and the concatenated shard bytes.
//! Output: `(name, tensor)` pairs in manifest order, as f32 tensors on the
//! CPU, **in tfjs layout** (NHWC activations, HWIO filters, depthwise
//! filters `[kh, kw, C, 1]`); each network file permutes what it loads.
//! Failure modes: malformed JSON, an unknown dtype, or shard bytes that do
//! not match the manifest's sizes ([`TfjsError`]).
//!
//! Quantised tensors (face-api stores nearly everything as uint8) are
//! dequantised as `q · scale + min`, as tfjs does at load time. int32
//! tensors are converted to f32. The conversion step in the daemon writes
//! the result to safetensors so the daemon never parses this format.

use candle_core::{Device, Tensor};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum TfjsError {
    #[error("weights manifest is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("weights manifest names unsupported dtype {dtype:?} for tensor {name}")]
    Dtype { name: String, dtype: String },
    #[error("weights data is {actual} bytes but the manifest describes {expected}")]
    Size { expected: usize, actual: usize },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

#[derive(Debug, Deserialize)]
struct Group {
    weights: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    quantization: Option<Quantization>,
}

#[derive(Debug, Deserialize)]
struct Quantization {
    dtype: String,
    scale: f64,
    min: f64,
}

/// Decodes every tensor of a tfjs weights manifest. `data` is the
/// concatenation of the manifest's shards in order.
pub fn load(manifest_json: &[u8], data: &[u8]) -> Result<Vec<(String, Tensor)>, TfjsError> {
    let groups: Vec<Group> = serde_json::from_slice(manifest_json)?;
    let entries: Vec<&Entry> = groups.iter().flat_map(|g| &g.weights).collect();
    let expected: usize = entries.iter().map(|e| byte_len(e)).sum::<Result<_, _>>()?;
    if expected != data.len() {
        return Err(TfjsError::Size {
            expected,
            actual: data.len(),
        });
    }
    let mut offset = 0;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let len = byte_len(e)?;
        let bytes = &data[offset..offset + len];
        offset += len;
        let values: Vec<f32> = match (&e.quantization, e.dtype.as_str()) {
            (Some(q), _) if q.dtype == "uint8" => bytes
                .iter()
                .map(|&b| (b as f64 * q.scale + q.min) as f32)
                .collect(),
            (Some(q), _) if q.dtype == "uint16" => bytes
                .chunks_exact(2)
                .map(|c| (u16::from_le_bytes([c[0], c[1]]) as f64 * q.scale + q.min) as f32)
                .collect(),
            (None, "float32") => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            (None, "int32") => bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            (q, dtype) => {
                let dtype = q.as_ref().map_or(dtype, |q| q.dtype.as_str());
                return Err(TfjsError::Dtype {
                    name: e.name.clone(),
                    dtype: dtype.to_owned(),
                });
            }
        };
        out.push((
            e.name.clone(),
            Tensor::from_vec(values, e.shape.as_slice(), &Device::Cpu)?,
        ));
    }
    Ok(out)
}

/// Bytes one tensor takes in the shard data.
fn byte_len(e: &Entry) -> Result<usize, TfjsError> {
    let count: usize = e.shape.iter().product();
    let width = match (&e.quantization, e.dtype.as_str()) {
        (Some(q), _) => match q.dtype.as_str() {
            "uint8" => 1,
            "uint16" | "float16" => 2,
            other => {
                return Err(TfjsError::Dtype {
                    name: e.name.clone(),
                    dtype: other.to_owned(),
                });
            }
        },
        (None, "float32" | "int32") => 4,
        (None, other) => {
            return Err(TfjsError::Dtype {
                name: e.name.clone(),
                dtype: other.to_owned(),
            });
        }
    };
    Ok(count * width)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"[{"paths": ["m.bin"], "weights": [
        {"name": "a", "shape": [2, 2], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "b", "shape": [2], "dtype": "float32"},
        {"name": "n", "shape": [], "dtype": "int32",
         "quantization": {"dtype": "uint8", "scale": 1, "min": 5118}}
    ]}]"#;

    fn data() -> Vec<u8> {
        let mut d = vec![0u8, 1, 2, 255];
        d.extend_from_slice(&1.5f32.to_le_bytes());
        d.extend_from_slice(&(-2.0f32).to_le_bytes());
        d.push(0);
        d
    }

    #[test]
    fn dequantises_in_manifest_order() {
        let t = load(MANIFEST.as_bytes(), &data()).unwrap();
        let names: Vec<&str> = t.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "n"]);
        let a: Vec<Vec<f32>> = t[0].1.to_vec2().unwrap();
        assert_eq!(a, vec![vec![-1.0, -0.5], vec![0.0, 126.5]]);
        assert_eq!(t[1].1.to_vec1::<f32>().unwrap(), vec![1.5, -2.0]);
        assert_eq!(t[2].1.to_scalar::<f32>().unwrap(), 5118.0);
    }

    #[test]
    fn a_short_shard_is_refused_with_both_sizes() {
        let mut d = data();
        d.pop();
        let err = load(MANIFEST.as_bytes(), &d).unwrap_err().to_string();
        assert!(err.contains("12 bytes") && err.contains("13"), "{err}");
    }

    #[test]
    fn unknown_dtype_is_named() {
        let m =
            r#"[{"paths": [], "weights": [{"name": "x", "shape": [1], "dtype": "complex64"}]}]"#;
        let err = load(m.as_bytes(), &[]).unwrap_err().to_string();
        assert!(err.contains("complex64") && err.contains('x'), "{err}");
    }
}
