//! `consentry faces detect FILE…`: runs the face engine on files and prints
//! what it finds, storing nothing (for support and scripting).
//!
//! Input: image files on disk. Output: one JSON object per file and line
//! (`--json`), or a short text summary. A file that cannot be read or decoded
//! gets an `error` object with the same stage/code words as the quarantine;
//! the command then exits non-zero after printing every file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::api::FaceView;
use crate::config::Config;
use crate::daemon::start_faces;
use crate::pipeline::decode::{self, DecodeLimits, DecodedImage};
use crate::pipeline::faces::FaceStage;

#[derive(Debug, Serialize)]
struct FileReport {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    engine: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    faces: Option<Vec<FaceView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<FileError>,
}

#[derive(Debug, Serialize)]
struct FileError {
    stage: String,
    code: String,
    message: String,
}

/// Decodes a file the way ingest does (sniffed format, limits, orientation).
fn decode_file(
    path: &Path,
    limits: &DecodeLimits,
) -> Result<DecodedImage, (String, String, String)> {
    let bytes = std::fs::read(path).map_err(|e| {
        (
            "read".to_owned(),
            "unreadable".to_owned(),
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    decode::decode_upright(&bytes, limits)
        .map_err(|e| (e.stage().to_owned(), e.code().to_owned(), e.to_string()))
}

/// Returns whether every file was processed.
pub fn detect(
    config: &Config,
    files: &[PathBuf],
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let engine = start_faces(config)?;
    let limits = DecodeLimits {
        max_pixels: config.ingest.max_pixels,
        ..DecodeLimits::default()
    };
    let mut all_ok = true;
    for file in files {
        let report = match decode_file(file, &limits) {
            Err((stage, code, message)) => FileReport {
                file: file.display().to_string(),
                width: None,
                height: None,
                engine: None,
                faces: None,
                error: Some(FileError {
                    stage,
                    code,
                    message,
                }),
            },
            Ok(image) => match engine.process(&image) {
                Ok(faces) => FileReport {
                    file: file.display().to_string(),
                    width: Some(image.width),
                    height: Some(image.height),
                    engine: Some(engine.engine().to_owned()),
                    faces: Some(faces.iter().map(FaceView::detected).collect()),
                    error: None,
                },
                Err(err) => FileReport {
                    file: file.display().to_string(),
                    width: Some(image.width),
                    height: Some(image.height),
                    engine: Some(engine.engine().to_owned()),
                    faces: None,
                    error: Some(FileError {
                        stage: "faces".into(),
                        code: "engine-error".into(),
                        message: err.to_string(),
                    }),
                },
            },
        };
        all_ok &= report.error.is_none();
        if json {
            writeln!(out, "{}", serde_json::to_string(&report)?)?;
        } else {
            print_text(out, &report)?;
        }
    }
    Ok(all_ok)
}

fn print_text(out: &mut dyn Write, report: &FileReport) -> std::io::Result<()> {
    if let Some(err) = &report.error {
        return writeln!(
            out,
            "{}: {} ({}, {})",
            report.file, err.message, err.stage, err.code
        );
    }
    let faces = report.faces.as_deref().unwrap_or_default();
    writeln!(out, "{}: {} face(s)", report.file, faces.len())?;
    for f in faces {
        writeln!(
            out,
            "  #{} box {:.0},{:.0} {:.0}×{:.0}  score {:.3}  quality {:.2} (eyes {:.0} px apart, yaw {:+.2})",
            f.no,
            f.bbox.x,
            f.bbox.y,
            f.bbox.width,
            f.bbox.height,
            f.score,
            f.quality.score,
            f.quality.interocular_px,
            f.quality.yaw
        )?;
    }
    Ok(())
}
