//! Ingest throughput on the shared test data: photos/s and MB/s for the whole
//! in-process ingest (hash + encrypt + inspect + metadata + decode + thumbnails
//! + commit), and the share of time per stage.
//!
//! Run: `cargo bench -p consentry-daemon --bench ingest` (or `make bench`).
//! Options (environment): `CONSENTRY_TESTDATA` (default ../shared/testdata),
//! `CONSENTRY_BENCH_ROUNDS` (default 3; each round ingests every image once
//! into a fresh store, so deduplication never short-cuts the work).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consentry::config::{IngestConfig, StoreConfig};
use consentry::domain::SourceRef;
use consentry::pipeline::faces::NoFaceStage;
use consentry::pipeline::ingest::{Ingestor, SourceFile, StageTimings};
use consentry::pipeline::store::{Store, crypto};

fn main() {
    let testdata = std::env::var_os("CONSENTRY_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"));
    if !testdata.join("manifest.csv").is_file() {
        eprintln!("benchmark skipped: no test data at {}", testdata.display());
        return;
    }
    let rounds: usize = std::env::var("CONSENTRY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let files = load_images(&testdata);
    let total_bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    println!(
        "ingest benchmark: {} photos, {:.1} MB, {rounds} round(s), {} CPU(s), one worker",
        files.len(),
        total_bytes as f64 / 1e6,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let mut per_round = Vec::new();
    let mut stages = StageTimings::default();
    for _ in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("master.key");
        crypto::generate_key_file(&key).unwrap();
        let store_config = StoreConfig {
            data_dir: dir.path().join("data"),
            master_key_file: key,
            ..StoreConfig::default()
        };
        let (store, _) = Store::open(&store_config).unwrap();
        let people = consentry::people::People::open(Arc::new(store), Default::default()).unwrap();
        let ingestor = Ingestor::new(
            Arc::new(people),
            IngestConfig::default(),
            Arc::new(NoFaceStage),
        );
        let started = Instant::now();
        for (idx, (path, bytes)) in files.iter().enumerate() {
            let source = SourceRef {
                collection: "bench".into(),
                path: format!("{idx}"),
                size: bytes.len() as u64,
                mtime_ms: 0,
                ingested_at_ms: 0,
            };
            let report = ingestor
                .ingest(
                    SourceFile {
                        source,
                        path: path.clone(),
                        bytes: bytes.clone(),
                        sidecar: None,
                    },
                    None,
                )
                .unwrap();
            add(&mut stages, &report.timings);
        }
        per_round.push(started.elapsed());
    }
    per_round.sort();
    let median = per_round[per_round.len() / 2];
    println!(
        "median round: {:.2} s → {:.1} photos/s, {:.1} MB/s",
        median.as_secs_f64(),
        files.len() as f64 / median.as_secs_f64(),
        total_bytes as f64 / 1e6 / median.as_secs_f64()
    );
    let rows = [
        ("hash (BLAKE3)", stages.hash),
        ("encrypt + write original", stages.encrypt_original),
        ("inspect (sniff, limits)", stages.inspect),
        ("metadata", stages.metadata),
        ("decode + orientation", stages.decode),
        ("thumbnails (encode + encrypt + write)", stages.thumbnails),
        ("commit (sled transaction + flush)", stages.commit),
    ];
    let sum: Duration = rows.iter().map(|(_, d)| *d).sum();
    println!("share of time per stage (all rounds):");
    for (name, took) in rows {
        println!(
            "  {name:<40} {:>8.1} ms  {:>5.1} %",
            took.as_secs_f64() * 1000.0,
            100.0 * took.as_secs_f64() / sum.as_secs_f64()
        );
    }
}

fn load_images(testdata: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let manifest = std::fs::read_to_string(testdata.join("manifest.csv")).unwrap();
    manifest
        .lines()
        .skip(1)
        .filter_map(|line| line.split(',').next())
        .filter(|path| !path.starts_with("broken/"))
        .filter(|path| {
            let ext = Path::new(path)
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            ["jpg", "jpeg", "png", "tif", "tiff", "webp", "heic", "avif"].contains(&ext.as_str())
        })
        .map(|path| {
            (
                testdata.join(path),
                std::fs::read(testdata.join(path)).unwrap(),
            )
        })
        .collect()
}

fn add(total: &mut StageTimings, one: &StageTimings) {
    total.hash += one.hash;
    total.encrypt_original += one.encrypt_original;
    total.inspect += one.inspect;
    total.metadata += one.metadata;
    total.decode += one.decode;
    total.thumbnails += one.thumbnails;
    total.commit += one.commit;
}
