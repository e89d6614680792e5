//! Face engine speed, end to end per photo (read → decode → detect →
//! landmarks → align → embed), against the two peers that run here: dlib
//! (PyPI `dlib-bin` + `face-recognition-models`: HOG, 5-point shape
//! predictor, ResNet) and face-api 1.7.15 on the tfjs wasm backend (SSD,
//! 68-point net, ResNet). All three get the same photo files in one run.
//!
//! The set: a 1920×1280 photo with 4 faces (made from `faces/groups/
//! faceapi_bbt1.jpg`, the acceptance target's shape), every group photo and
//! the astronaut.
//!
//! Run: `make bench` (or `cargo bench -p consentry-daemon --bench faces`).
//! Environment: `CONSENTRY_TESTDATA`, `CONSENTRY_MODELS_DIR` (default
//! target/models), `CONSENTRY_BENCH_ROUNDS` (default 3), `CONSENTRY_BENCH_PEERS=0`
//! to skip the peers (their first run installs them from the registries into
//! a cache, see models/peers/README.md).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use consentry::pipeline::decode::{self, DecodeLimits};
use consentry::pipeline::faces::{models, to_rgb};
use consentry_models::face_engine::EngineConfig;
use consentry_models::image::RgbRef;
use opencv::core::{Mat, Rect, Scalar, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

struct Figures {
    name: String,
    photos: usize,
    faces: usize,
    seconds: f64,
    target_seconds: Option<f64>,
}

impl Figures {
    fn per_photo(&self) -> f64 {
        self.seconds / self.photos as f64
    }
    fn faces_per_s(&self) -> f64 {
        self.faces as f64 / self.seconds
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let testdata = std::env::var_os("CONSENTRY_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/testdata"));
    if !testdata.join("manifest.csv").is_file() {
        eprintln!("benchmark skipped: no test data at {}", testdata.display());
        return;
    }
    let models_dir = std::env::var_os("CONSENTRY_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/models"));
    let rounds: usize = std::env::var("CONSENTRY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let work = tempfile::tempdir().unwrap();
    let photos = photo_set(&testdata, work.path());
    let target = photos[0].clone();
    println!(
        "face benchmark: {} photos ({} is the 1920×1280 4-face target), {} CPU(s), {rounds} round(s)",
        photos.len(),
        target.file_name().unwrap().to_string_lossy(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );

    let mut results = vec![
        ours(&models_dir, &photos, rounds, 1),
        ours(&models_dir, &photos, rounds, 4),
    ];
    if std::env::var("CONSENTRY_BENCH_PEERS").as_deref() != Ok("0") {
        results.extend(peers(&root, &photos));
    }

    println!();
    println!(
        "{:<58} {:>8} {:>9} {:>8} {:>12}",
        "engine", "s/photo", "target s", "faces/s", "vs ours (b1)"
    );
    let base = results[0].per_photo();
    for r in &results {
        println!(
            "{:<58} {:>8.3} {:>9} {:>8.1} {:>11.1}×",
            r.name,
            r.per_photo(),
            r.target_seconds
                .map_or("-".to_owned(), |t| format!("{t:.3}")),
            r.faces_per_s(),
            r.per_photo() / base
        );
    }
    println!("(ratios: peer time per photo ÷ ours at batch 1; above 1× means we are faster)");
}

/// The photo files, the synthetic 1920×1280 target first.
fn photo_set(testdata: &Path, work: &Path) -> Vec<PathBuf> {
    let source = imgcodecs::imread_def(testdata.join("faces/groups/faceapi_bbt1.jpg")).unwrap();
    // 1366×768 → 1920×1080, centred on a 1920×1280 canvas.
    let mut scaled = Mat::default();
    imgproc::resize(
        &source,
        &mut scaled,
        Size::new(1920, 1080),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )
    .unwrap();
    let mut canvas =
        Mat::new_rows_cols_with_default(1280, 1920, scaled.typ(), Scalar::all(40.0)).unwrap();
    let mut roi = Mat::roi_mut(&mut canvas, Rect::new(0, 100, 1920, 1080)).unwrap();
    scaled.copy_to(&mut roi).unwrap();
    let target = work.join("target_1920x1280_4faces.jpg");
    let params = Vector::<i32>::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, 92]);
    imgcodecs::imwrite(&target, &canvas, &params).unwrap();

    let mut photos = vec![target];
    let mut groups: Vec<PathBuf> = std::fs::read_dir(testdata.join("faces/groups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
        .collect();
    groups.sort();
    photos.extend(groups);
    photos.push(testdata.join("faces/astronaut_nasa_public_domain.png"));
    photos
}

/// Our engine in-process: each photo read, decoded and analysed; photos
/// handed to the engine `batch` at a time (the daemon batches across photos).
fn ours(models_dir: &Path, photos: &[PathBuf], rounds: usize, batch: usize) -> Figures {
    let device = models::select_device();
    let engine = models::load(models_dir, &device, EngineConfig::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .engine;
    let limits = DecodeLimits::default();
    let run = |paths: &[PathBuf]| -> usize {
        let images: Vec<_> = paths
            .iter()
            .map(|p| {
                let decoded = decode::decode_upright(&std::fs::read(p).unwrap(), &limits).unwrap();
                to_rgb(&decoded.pixels).unwrap()
            })
            .collect();
        let refs: Vec<RgbRef<'_>> = images.iter().map(|i| i.as_ref()).collect();
        engine.analyse(&refs).unwrap().iter().map(Vec::len).sum()
    };
    run(&photos[..1]); // warm-up
    let mut target = f64::MAX;
    for _ in 0..rounds {
        let started = Instant::now();
        run(&photos[..1]);
        target = target.min(started.elapsed().as_secs_f64());
    }
    let (mut faces, mut best) = (0, f64::MAX);
    for _ in 0..rounds {
        let started = Instant::now();
        faces = photos.chunks(batch).map(run).sum();
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "ours, batch {batch}: {faces} faces in {} photos, best of {rounds}: {best:.2} s; target photo {target:.3} s ({})",
        photos.len(),
        models::describe_device(&device)
    );
    Figures {
        name: format!(
            "consentry (candle, {}, batch {batch})",
            models::describe_device(&device)
        ),
        photos: photos.len(),
        faces,
        seconds: best,
        target_seconds: Some(target),
    }
}

/// Installs (once, cached) and runs the two peers; a peer that cannot run is
/// reported and left out.
fn peers(root: &Path, photos: &[PathBuf]) -> Vec<Figures> {
    let peers_dir = root.join("models/peers");
    let setup = Command::new("sh").arg(peers_dir.join("setup")).output();
    let cache = match setup {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => {
            println!(
                "peers unavailable: setup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return Vec::new();
        }
        Err(e) => {
            println!("peers unavailable: cannot run models/peers/setup: {e}");
            return Vec::new();
        }
    };
    let cache = PathBuf::from(cache);
    let runs: [(&str, Command); 2] = [
        ("dlib", {
            let mut c = Command::new(cache.join("venv/bin/python"));
            c.arg(peers_dir.join("dlib_peer.py"));
            c
        }),
        ("face-api", {
            let mut c = Command::new("node");
            c.arg(peers_dir.join("faceapi_peer.mjs"))
                .arg("--modules")
                .arg(cache.join("node/node_modules"));
            c
        }),
    ];
    let mut out = Vec::new();
    for (label, mut command) in runs {
        let result = command.args(photos).output();
        let Ok(result) = result else {
            println!("{label} peer could not start");
            continue;
        };
        let stdout = String::from_utf8_lossy(&result.stdout);
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let Some(summary) = lines.iter().find(|l| l.get("peer").is_some()) else {
            println!(
                "{label} peer failed: {}",
                String::from_utf8_lossy(&result.stderr)
            );
            continue;
        };
        let target = lines
            .iter()
            .find(|l| {
                l["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("target_1920x1280"))
            })
            .and_then(|l| l["seconds"].as_f64());
        println!("{label} peer: {summary}");
        out.push(Figures {
            name: summary["peer"].as_str().unwrap_or(label).to_owned(),
            photos: summary["images"].as_u64().unwrap_or(0) as usize,
            faces: summary["faces"].as_u64().unwrap_or(0) as usize,
            seconds: summary["seconds"].as_f64().unwrap_or(f64::NAN),
            target_seconds: target,
        });
    }
    out
}
