//! The models directory: checked, then loaded into a [`FaceEngine`].
//!
//! Input: a directory holding `models.json` and the safetensors files it
//! lists (`/usr/share/consentry/models` once packaged; `target/models` from
//! `make models`). Output: a ready engine on the chosen device, and the
//! manifest (engine name, provenance). Failure modes ([`ModelsError`]): a
//! missing directory, manifest or file; a file whose SHA-256 differs from
//! the manifest; a file that is intact but not the network it claims. Each
//! message names the file and says how to fix it; the daemon refuses to
//! start on any of them.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use consentry_models::face_detector::FaceDetector;
use consentry_models::face_embedder::FaceEmbedder;
use consentry_models::face_engine::{EngineConfig, FaceEngine};
use consentry_models::face_landmarks::FaceLandmarker;
use consentry_models::weights::{self, MANIFEST_FILE, ModelsManifest, Role};

/// How to get a good models directory back, appended to every error.
const FIX: &str = "reinstall the consentry package (it ships the models), or from a source checkout run `make models` and point faces.models_dir (or CONSENTRY_MODELS_DIR) at target/models";

#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error("face models: cannot read {path}: {source}; {FIX}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("face models in {dir}: {source}; {FIX}")]
    Invalid {
        dir: PathBuf,
        source: weights::WeightsError,
    },
    #[error("face models: {file} in {dir} is not a usable {what}: {message}; {FIX}")]
    Network {
        dir: PathBuf,
        file: String,
        what: &'static str,
        message: String,
    },
}

/// A loaded engine and the manifest it came from.
pub struct LoadedModels {
    pub engine: FaceEngine,
    pub manifest: ModelsManifest,
}

/// The device inference runs on: the first CUDA GPU in a `--features cuda`
/// build when one is present, else the CPU. The CPU build never looks for a GPU.
pub fn select_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        match Device::new_cuda(0) {
            Ok(device) => return device,
            Err(err) => {
                log::warn!(target: "consentry::faces", "CUDA build, but no usable GPU ({err}); running on the CPU")
            }
        }
    }
    Device::Cpu
}

pub fn describe_device(device: &Device) -> String {
    match device {
        Device::Cpu => format!("CPU ({} threads)", candle_core::utils::get_num_threads()),
        Device::Cuda(_) => "CUDA GPU 0".to_owned(),
        Device::Metal(_) => "Metal GPU".to_owned(),
    }
}

/// Reads `models.json`, checks every listed file's digest, and builds the
/// engine.
pub fn load(
    dir: &Path,
    device: &Device,
    config: EngineConfig,
) -> Result<LoadedModels, ModelsError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| ModelsError::Read { path, source })
    };
    let invalid = |source| ModelsError::Invalid {
        dir: dir.to_owned(),
        source,
    };
    let manifest = ModelsManifest::parse(&read(MANIFEST_FILE)?).map_err(invalid)?;

    let mut files = Vec::with_capacity(Role::ALL.len());
    for role in Role::ALL {
        let entry = manifest.file(role).map_err(invalid)?;
        let bytes = read(&entry.file)?;
        weights::verify(entry, &bytes).map_err(invalid)?;
        files.push((role, entry.file.clone(), bytes));
    }
    let build = |role: Role| {
        let (_, file, bytes) = files
            .iter()
            .find(|(r, _, _)| *r == role)
            .expect("all roles read");
        let network = move |e: candle_core::Error| ModelsError::Network {
            dir: dir.to_owned(),
            file: file.clone(),
            what: role.describe(),
            message: e.to_string(),
        };
        let vb = VarBuilder::from_buffered_safetensors(bytes.clone(), DType::F32, device)
            .map_err(network)?;
        Ok::<_, ModelsError>((vb, network))
    };
    let (vb, err) = build(Role::FaceDetector)?;
    let detector = FaceDetector::new(vb).map_err(err)?;
    let (vb, err) = build(Role::FaceLandmarks)?;
    let landmarker = FaceLandmarker::new(vb).map_err(err)?;
    let (vb, err) = build(Role::FaceEmbedder)?;
    let embedder = FaceEmbedder::new(vb).map_err(err)?;
    Ok(LoadedModels {
        engine: FaceEngine::new(detector, landmarker, embedder, device.clone(), config),
        manifest,
    })
}
