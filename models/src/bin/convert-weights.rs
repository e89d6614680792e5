//! Build-time converter: registry files → safetensors + `models.json`.
//!
//!     convert-weights RAW_DIR OUT_DIR
//!
//! RAW_DIR is what `models/fetch-weights` wrote (the verified registry files
//! and their `provenance.json`). OUT_DIR receives one safetensors file per
//! network and the manifest the daemon checks at start-up. Runs offline.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use consentry_models::weights::{
    self, MANIFEST_FILE, MANIFEST_FORMAT, ModelFile, ModelsManifest, Role, Source,
};

/// Bump when a conversion or the engine's processing changes its output.
const ENGINE: &str =
    "consentry-faces-1 (face-api 1.7.15 ssd_mobilenetv1 + face_landmark_68, dlib resnet v1)";

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [raw, out] = args.as_slice() else {
        eprintln!("usage: convert-weights RAW_DIR OUT_DIR");
        return ExitCode::from(2);
    };
    match run(raw, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(raw: &Path, out: &Path) -> Result<(), String> {
    let read = |name: &str| {
        std::fs::read(raw.join(name)).map_err(|e| {
            format!(
                "{}: {e}; run models/fetch-weights first",
                raw.join(name).display()
            )
        })
    };
    let provenance: Vec<Source> = serde_json::from_slice(&read("provenance.json")?)
        .map_err(|e| format!("{}/provenance.json: {e}", raw.display()))?;
    let source = |name: &str| -> Result<Source, String> {
        let bytes = read(name)?;
        let entry = provenance
            .iter()
            .find(|s| s.file == name)
            .ok_or_else(|| format!("provenance.json does not list {name}"))?;
        if weights::sha256_hex(&bytes) != entry.sha256 {
            return Err(format!(
                "{name} does not match its pinned SHA-256; run models/fetch-weights again"
            ));
        }
        Ok(entry.clone())
    };

    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut files = Vec::new();
    for role in Role::ALL {
        let (tensors, sources) = match role {
            Role::FaceDetector | Role::FaceLandmarks => {
                let stem = if role == Role::FaceDetector {
                    "ssd_mobilenetv1_model"
                } else {
                    "face_landmark_68_model"
                };
                let (json, bin) = (
                    format!("{stem}-weights_manifest.json"),
                    format!("{stem}.bin"),
                );
                let sources = vec![source(&bin)?, source(&json)?];
                let tensors = weights::convert_tfjs(&bin, &read(&json)?, &read(&bin)?)
                    .map_err(|e| e.to_string())?;
                (tensors, sources)
            }
            Role::FaceEmbedder => {
                let dat = "dlib_face_recognition_resnet_model_v1.dat";
                let sources = vec![source(dat)?];
                (
                    weights::convert_dlib(dat, &read(dat)?).map_err(|e| e.to_string())?,
                    sources,
                )
            }
        };
        files.push(write_safetensors(out, role, &tensors, sources)?);
    }
    let manifest = ModelsManifest {
        format: MANIFEST_FORMAT,
        engine: ENGINE.to_owned(),
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    write_atomic(&out.join(MANIFEST_FILE), &json)?;
    eprintln!("face models converted into {}", out.display());
    Ok(())
}

fn write_safetensors(
    out: &Path,
    role: Role,
    tensors: &HashMap<String, candle_core::Tensor>,
    sources: Vec<Source>,
) -> Result<ModelFile, String> {
    let path = out.join(role.file_name());
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(tensors, &tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let bytes = std::fs::read(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    // Read by the unprivileged daemon user; written by root at package build.
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(ModelFile {
        role,
        file: role.file_name().to_owned(),
        sha256: weights::sha256_hex(&bytes),
        bytes: bytes.len() as u64,
        sources,
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}
