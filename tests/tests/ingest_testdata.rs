//! The shared test data through a running daemon:
//! - every image outside `broken/` ends `ready` with the oriented size and the
//!   capture time, camera, GPS, PersonInImage, model-release status and MWG
//!   region names that `exiftool -j` reports;
//! - every broken file ends quarantined with a specific reason (files whose
//!   bytes are a valid image under a wrong name are sniffed and accepted);
//! - the decompression bombs are refused with the daemon's peak RSS < 1 GiB;
//! - the byte-identical pair is one asset with two sources;
//! - no 64-byte window of an original or a thumbnail is stored in plaintext;
//! - a wrong master key stops start-up with a clear message.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use consentry::config::Config;
use consentry::control::{self, Request};
use consentry::pipeline::store::Store;
use consentry_tests::{Env, blake3_hex, have_tool, require_testdata, synthetic_jpeg};
use serde_json::Value;

struct ManifestEntry {
    path: String,
}

fn manifest(testdata: &Path) -> Vec<ManifestEntry> {
    let text = std::fs::read_to_string(testdata.join("manifest.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| ManifestEntry {
            path: line.split(',').next().unwrap().to_owned(),
        })
        .collect()
}

fn is_image(path: &str) -> bool {
    let ext = Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    [
        "jpg", "jpeg", "png", "tif", "tiff", "webp", "heic", "heif", "avif",
    ]
    .contains(&ext.as_str())
}

/// Expected quarantine codes for the broken files that must be refused.
fn expected_refusal(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "zero_bytes.jpg" => &["empty-file"],
        "text_named_as.jpg" | "pdf_named_as.jpg" | "bad_magic_soi_zeroed.jpg" => &["not-an-image"],
        "bomb_header_65500x65500.jpg"
        | "bomb_header_65535x65535.png"
        | "bomb_valid_20000x20000_gray.png" => &["too-many-pixels"],
        "truncated_50pct.jpg"
        | "truncated_50pct.png"
        | "truncated_50pct.heic"
        | "truncated_header_only.jpg" => &["truncated"],
        "corrupt_scan_data.jpg" => &["corrupt", "truncated"],
        "exiftool_metadata_only.heic" => &["truncated", "corrupt", "decoder-error"],
        n if n.starts_with("fuzzed_") => {
            &["not-an-image", "corrupt", "truncated", "unsupported-format"]
        }
        // Valid image bytes under a wrong name, or with junk after the end:
        // sniffed from the content and accepted.
        _ => return None,
    })
}

fn exiftool(files: &[PathBuf]) -> HashMap<PathBuf, Value> {
    let output = Command::new("exiftool")
        .args(["-j", "-n", "-G1"])
        .args(files)
        .output()
        .expect("run exiftool");
    let all: Vec<Value> = serde_json::from_slice(&output.stdout).expect("exiftool JSON");
    all.into_iter()
        .map(|v| (PathBuf::from(v["SourceFile"].as_str().unwrap()), v))
        .collect()
}

fn list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().map(text).collect(),
        Value::Null => vec![],
        other => vec![text(other)],
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    }
}

/// exiftool's date "2019:08:21 11:21:36[.245][+02:00]" as "2019-08-21T11:21:36".
fn normalise_date(raw: &str) -> String {
    let raw = raw.trim();
    let (date, time) = raw.split_once([' ', 'T']).unwrap_or((raw, ""));
    let date = date.replace(':', "-");
    let time: String = time.chars().take(8).collect();
    if time.len() == 8 {
        format!("{date}T{time}")
    } else {
        date
    }
}

/// The capture time exiftool reports, in the precedence the product documents.
fn exif_capture_time(e: &Value) -> Option<String> {
    [
        "ExifIFD:DateTimeOriginal",
        "ExifIFD:CreateDate",
        "XMP-exif:DateTimeOriginal",
        "XMP-photoshop:DateCreated",
        "XMP-xmp:CreateDate",
    ]
    .iter()
    .find_map(|key| e.get(*key).map(text))
    .filter(|t| !t.starts_with("0000"))
    .map(|t| normalise_date(&t))
}

#[test]
fn shared_testdata_ingests_with_metadata_and_refusals() {
    let testdata = require_testdata!();
    if !have_tool("exiftool") {
        return;
    }
    let env = Env::new("delete", "");
    let entries = manifest(&testdata);

    // Drop everything: images under their own paths, and each XMP sidecar
    // beside a generated photo of the same name.
    let mut dropped: Vec<(String, PathBuf)> = Vec::new();
    for entry in &entries {
        if is_image(&entry.path) {
            env.drop_file(
                &entry.path,
                &std::fs::read(testdata.join(&entry.path)).unwrap(),
            );
            dropped.push((entry.path.clone(), testdata.join(&entry.path)));
        }
    }
    let mut sidecars = Vec::new();
    for entry in entries.iter().filter(|e| e.path.ends_with(".xmp")) {
        let stem = Path::new(&entry.path)
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        env.drop_file(
            &format!("sidecars/{stem}.xmp"),
            &std::fs::read(testdata.join(&entry.path)).unwrap(),
        );
        env.drop_file(
            &format!("sidecars/{stem}.jpg"),
            &synthetic_jpeg(stem.len() as u64, 64, 48),
        );
        sidecars.push((format!("sidecars/{stem}.jpg"), testdata.join(&entry.path)));
    }
    assert!(
        dropped.len() > 150,
        "the manifest lists the test images ({})",
        dropped.len()
    );

    let mut daemon = env.start();
    env.wait_drained(&mut daemon, Duration::from_secs(600));
    let peak_rss_kib = daemon.peak_rss_kib();

    // Every dropped path → its asset detail.
    let mut details: HashMap<String, Value> = HashMap::new();
    for summary in env.assets() {
        let mut detail = None;
        control::request(
            &env.socket,
            &Request::AssetShow {
                id: summary["id"].as_str().unwrap().to_owned(),
            },
            &mut |line| {
                detail = Some(serde_json::from_str::<Value>(line).unwrap());
                Ok(())
            },
        )
        .unwrap();
        let detail = detail.unwrap();
        for source in detail["sources"].as_array().unwrap() {
            details.insert(source["path"].as_str().unwrap().to_owned(), detail.clone());
        }
    }

    let exif = exiftool(&dropped.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>());
    let mut failures = Vec::new();
    let mut checked = HashMap::<&str, usize>::new();
    for (rel, original) in &dropped {
        let Some(asset) = details.get(rel) else {
            failures.push(format!("{rel}: no asset"));
            continue;
        };
        let name = Path::new(rel).file_name().unwrap().to_str().unwrap();
        if rel.starts_with("broken/")
            && let Some(codes) = expected_refusal(name)
        {
            let code = asset["quarantine"]["code"]
                .as_str()
                .unwrap_or("(not quarantined)");
            let reason = asset["quarantine"]["reason"].as_str().unwrap_or("");
            if asset["status"] != "quarantined" || !codes.contains(&code) || reason.len() < 10 {
                failures.push(format!(
                    "{rel}: expected quarantine {codes:?}, got {} {code}: {reason}",
                    asset["status"]
                ));
            }
            *checked.entry("refused").or_default() += 1;
            continue;
        }
        if asset["status"] != "ready" {
            failures.push(format!(
                "{rel}: {} ({})",
                asset["status"], asset["quarantine"]["reason"]
            ));
            continue;
        }
        let e = &exif[original];
        let stored = (
            e["File:ImageWidth"]
                .as_u64()
                .or(e["PNG:ImageWidth"].as_u64()),
            e["File:ImageHeight"]
                .as_u64()
                .or(e["PNG:ImageHeight"].as_u64()),
        );
        let stored = match stored {
            (Some(w), Some(h)) => (w, h),
            _ => {
                let size = text(&e["Composite:ImageSize"]);
                let mut parts = size.split([' ', 'x']).map(|p| p.parse::<u64>().unwrap());
                (parts.next().unwrap(), parts.next().unwrap())
            }
        };
        let heif = matches!(asset["format"].as_str(), Some("HEIF" | "AVIF"));
        let swap = if heif {
            matches!(e["QuickTime:Rotation"].as_u64(), Some(90 | 270))
        } else {
            matches!(e["IFD0:Orientation"].as_u64(), Some(5..=8))
        };
        let oriented = if swap { (stored.1, stored.0) } else { stored };
        let got = (
            asset["width"].as_u64().unwrap_or(0),
            asset["height"].as_u64().unwrap_or(0),
        );
        if got != oriented {
            failures.push(format!(
                "{rel}: size {got:?}, exiftool gives {oriented:?} (stored {stored:?}, swap {swap})"
            ));
        }
        let md = &asset["metadata"];
        if let Some(want) = exif_capture_time(e) {
            let have = md["capture_time"]["local"].as_str().unwrap_or("");
            if !have.starts_with(&want) {
                failures.push(format!("{rel}: capture time {have:?}, exiftool {want:?}"));
            }
            *checked.entry("capture time").or_default() += 1;
        }
        for (ours, theirs) in [("camera_make", "IFD0:Make"), ("camera_model", "IFD0:Model")] {
            if let Some(want) = e.get(theirs).map(text).filter(|t| !t.is_empty()) {
                if md[ours].as_str().map(str::trim) != Some(want.as_str()) {
                    failures.push(format!("{rel}: {ours} {:?}, exiftool {want:?}", md[ours]));
                }
                *checked.entry("camera").or_default() += 1;
            }
        }
        if let (Some(lat), Some(lon)) = (
            e["Composite:GPSLatitude"].as_f64(),
            e["Composite:GPSLongitude"].as_f64(),
        ) {
            let (have_lat, have_lon) = (
                md["gps"]["latitude"].as_f64().unwrap_or(999.0),
                md["gps"]["longitude"].as_f64().unwrap_or(999.0),
            );
            if (have_lat - lat).abs() > 1e-6 || (have_lon - lon).abs() > 1e-6 {
                failures.push(format!(
                    "{rel}: GPS ({have_lat}, {have_lon}), exiftool ({lat}, {lon})"
                ));
            }
            *checked.entry("gps").or_default() += 1;
        }
        let people = list(&e["XMP-iptcExt:PersonInImage"]);
        if !people.is_empty() {
            if list(&md["person_in_image"]) != people {
                failures.push(format!(
                    "{rel}: PersonInImage {:?}, exiftool {people:?}",
                    md["person_in_image"]
                ));
            }
            *checked.entry("person in image").or_default() += 1;
        }
        if let Some(status) = e.get("XMP-plus:ModelReleaseStatus").map(text) {
            if md["model_release_status"].as_str() != Some(status.as_str()) {
                failures.push(format!(
                    "{rel}: model release {:?}, exiftool {status:?}",
                    md["model_release_status"]
                ));
            }
            *checked.entry("model release").or_default() += 1;
        }
        let mwg = list(&e["XMP-mwg-rs:RegionName"]);
        if !mwg.is_empty() {
            let mut ours: Vec<String> = md["regions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["source"] == "mwg")
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect();
            let mut want = mwg.clone();
            ours.sort();
            want.sort();
            if ours != want {
                failures.push(format!("{rel}: MWG names {ours:?}, exiftool {want:?}"));
            }
            *checked.entry("mwg regions").or_default() += 1;
        }
        *checked.entry("ready").or_default() += 1;
    }

    // Sidecars: the photo's record carries the sidecar's XMP.
    let sidecar_exif = exiftool(&sidecars.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>());
    for (rel, xmp) in &sidecars {
        let asset = &details[rel];
        assert_eq!(asset["has_sidecar"], true, "{rel}");
        let e = &sidecar_exif[xmp];
        let keywords = list(&e["XMP-dc:Subject"]);
        if !keywords.is_empty() && list(&asset["metadata"]["keywords"]) != keywords {
            failures.push(format!(
                "{rel}: sidecar keywords {:?}, exiftool {keywords:?}",
                asset["metadata"]["keywords"]
            ));
        }
        let mwg = list(&e["XMP-mwg-rs:RegionName"]);
        let ours: Vec<String> = asset["metadata"]["regions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect();
        if !mwg.is_empty() && ours != mwg {
            failures.push(format!("{rel}: sidecar regions {ours:?}, exiftool {mwg:?}"));
        }
    }
    eprintln!("checked: {checked:?}");
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        checked["refused"] >= 15
            && checked["gps"] >= 5
            && checked["mwg regions"] >= 1
            && checked["capture time"] >= 20,
        "{checked:?}"
    );

    // The byte-identical pair: one asset, two sources.
    let pair = &details["faces/identities/John_Shimkus/000378_02340151.jpg"];
    assert_eq!(
        pair["id"],
        details["faces/identities/John_Shimkus/000378_03227610.jpg"]["id"]
    );
    assert_eq!(pair["sources"].as_array().unwrap().len(), 2);

    // Bombs were refused before any large allocation.
    eprintln!("daemon peak RSS: {} MiB", peak_rss_kib / 1024);
    assert!(
        peak_rss_kib < 1024 * 1024,
        "peak RSS {} MiB ≥ 1 GiB",
        peak_rss_kib / 1024
    );

    // One structured log record per stage, with asset id and path.
    let log = daemon.stop();
    for stage in [
        "hash",
        "store",
        "inspect",
        "metadata",
        "decode",
        "thumbnails",
        "faces",
        "commit",
    ] {
        assert!(
            log.lines().any(|l| l.contains(&format!("stage={stage}"))
                && l.contains("asset_id=")
                && l.contains("path=")),
            "no structured record for stage {stage}"
        );
    }

    assert_nothing_in_plaintext(&env);
    wrong_key_is_refused(&env);
}

/// No 64-byte window of any original or thumbnail appears anywhere under the
/// data directory. Any such window contains a whole 32-byte block of the
/// plaintext at a 32-aligned offset, so indexing those blocks and sliding over
/// the data files finds every occurrence.
fn assert_nothing_in_plaintext(env: &Env) {
    let config = Config::load(&env.config).unwrap();
    let (store, _) = Store::open(&config.store).unwrap();
    let mut blocks: HashSet<[u8; 32]> = HashSet::new();
    let mut n_plain = 0;
    let mut sample: Vec<u8> = Vec::new();
    for asset in store.assets() {
        let asset = asset.unwrap();
        let blobs = asset
            .original
            .iter()
            .chain(asset.thumbnails.iter().map(|t| &t.blob));
        for blob in blobs {
            let plain = store.read_blob(&asset, blob).unwrap();
            n_plain += 1;
            if sample.len() < 4096 && plain.len() > 200 {
                sample = plain[100..200].to_vec();
            }
            for chunk in plain.chunks_exact(32) {
                // Runs of one byte (padding, flat areas) also occur by chance; skip them.
                let distinct: HashSet<u8> = chunk.iter().copied().collect();
                if distinct.len() >= 8 {
                    blocks.insert(chunk.try_into().unwrap());
                }
            }
        }
    }
    drop(store);
    assert!(
        n_plain > 300 && blocks.len() > 10_000,
        "{n_plain} blobs, {} blocks",
        blocks.len()
    );
    // The scanner must find a planted 100-byte window at an unaligned offset.
    let mut planted = vec![0u8; 37];
    planted.extend_from_slice(&sample);
    assert!(
        planted
            .windows(32)
            .any(|w| blocks.contains(<&[u8; 32]>::try_from(w).unwrap())),
        "the scanner misses a planted window"
    );
    for rel in consentry_tests::files_under(&env.data) {
        let bytes = std::fs::read(env.data.join(&rel)).unwrap();
        if let Some(pos) = bytes
            .windows(32)
            .position(|w| blocks.contains(<&[u8; 32]>::try_from(w).unwrap()))
        {
            panic!(
                "{} holds plaintext of a photo at offset {pos}",
                rel.display()
            );
        }
    }
    eprintln!(
        "encryption at rest: {n_plain} originals/thumbnails, {} blocks, none found in the data directory",
        blocks.len()
    );
}

fn wrong_key_is_refused(env: &Env) {
    let other_key = env.root().join("other.key");
    consentry::pipeline::store::crypto::generate_key_file(&other_key).unwrap();
    let config = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("\"master.key\"", "\"other.key\"");
    let wrong = env.root().join("wrong.toml");
    std::fs::write(&wrong, config).unwrap();
    let before = blake3_hex(&std::fs::read(env.data.join("keycheck")).unwrap());
    let output = Command::new(consentry_tests::bin("consentryd"))
        .arg("--config")
        .arg(&wrong)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a wrong key must stop start-up");
    assert!(
        stderr.contains("does not match this data directory"),
        "{stderr}"
    );
    assert!(stderr.contains("Nothing was changed"), "{stderr}");
    assert_eq!(
        blake3_hex(&std::fs::read(env.data.join("keycheck")).unwrap()),
        before
    );
}
