//! The face engine's acceptance figures on the shared test data, through the
//! real `consentry faces detect --json` (decode → detect → landmarks → align
//! → embed), run once over every photo:
//! - pipeline parity with dlib (`reference/dlib_reference.json`): every dlib
//!   face matched by one of ours (box IoU ≥ 0.4), descriptor distance median
//!   ≤ 0.2 and max ≤ 0.35;
//! - identity: over the 111 identity photos (largest face each), ≥ 98% of all
//!   pairs on the right side of 0.6;
//! - detection: group photos within ±1 of `expected_faces` (all but at most
//!   two), and no face at all in `nofaces/`.
//!
//! Each test prints its figures (`cargo test -- --nocapture` shows them).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use consentry_tests::{bin, models_dir, testdata};
use serde_json::Value;

/// Prints past libtest's capture, so the figures show in `make test` logs.
macro_rules! report {
    ($($arg:tt)*) => {{ let _ = writeln!(std::io::stderr(), $($arg)*); }};
}

struct Face {
    bbox: [f32; 4], // x, y, w, h
    embedding: Vec<f32>,
}

struct Manifest {
    category: String,
    identity: String,
    expected_faces: Option<usize>,
}

fn manifest(testdata: &Path) -> HashMap<String, Manifest> {
    let text = std::fs::read_to_string(testdata.join("manifest.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            // The first four columns never contain quotes or commas.
            let cols: Vec<&str> = line.splitn(5, ',').collect();
            (
                cols[0].to_owned(),
                Manifest {
                    category: cols[1].to_owned(),
                    identity: cols[2].to_owned(),
                    expected_faces: cols[3].parse().ok(),
                },
            )
        })
        .collect()
}

fn is_photo(path: &str) -> bool {
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    ["jpg", "jpeg", "png", "heic", "avif", "webp", "tif", "tiff"].contains(&ext.as_str())
}

/// Runs the engine once over every photo under faces/ and nofaces/.
fn detections() -> Option<&'static HashMap<String, Vec<Face>>> {
    static RESULT: OnceLock<Option<HashMap<String, Vec<Face>>>> = OnceLock::new();
    RESULT
        .get_or_init(|| {
            let data = testdata()?;
            let mut rel: Vec<String> = manifest(&data)
                .into_keys()
                .filter(|p| (p.starts_with("faces/") || p.starts_with("nofaces/")) && is_photo(p))
                .collect();
            rel.sort();
            let files: Vec<PathBuf> = rel.iter().map(|r| data.join(r)).collect();
            let output = Command::new(bin("consentry"))
                .args(["faces", "detect", "--json", "--models"])
                .arg(models_dir())
                .args(&files)
                .output()
                .expect("run consentry faces detect");
            assert!(
                output.status.success(),
                "faces detect failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let stdout = String::from_utf8(output.stdout).unwrap();
            let lines: Vec<Value> = stdout
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len(), files.len(), "one line per file");
            Some(
                rel.into_iter()
                    .zip(lines)
                    .map(|(rel, line)| {
                        let faces = line["faces"]
                            .as_array()
                            .unwrap_or_else(|| panic!("{rel}: {line}"))
                            .iter()
                            .map(|f| {
                                let b = &f["box"];
                                let num = |v: &Value| v.as_f64().unwrap() as f32;
                                assert_eq!(f["landmarks"].as_array().unwrap().len(), 68);
                                Face {
                                    bbox: [
                                        num(&b["x"]),
                                        num(&b["y"]),
                                        num(&b["width"]),
                                        num(&b["height"]),
                                    ],
                                    embedding: f["embedding"]
                                        .as_array()
                                        .unwrap()
                                        .iter()
                                        .map(num)
                                        .collect(),
                                }
                            })
                            .collect();
                        (rel, faces)
                    })
                    .collect(),
            )
        })
        .as_ref()
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), 128);
    assert_eq!(b.len(), 128);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let h = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    if w <= 0.0 || h <= 0.0 {
        return 0.0;
    }
    w * h / (a[2] * a[3] + b[2] * b[3] - w * h)
}

#[test]
fn pipeline_matches_dlib_on_every_reference_face() {
    let Some(ours) = detections() else { return };
    let data = testdata().unwrap();
    let reference: Value =
        serde_json::from_slice(&std::fs::read(data.join("reference/dlib_reference.json")).unwrap())
            .unwrap();
    let manifest = manifest(&data);
    let mut distances = Vec::new();
    let mut unmatched = Vec::new();
    let mut hog_extras = Vec::new();
    for (rel, image) in reference["images"].as_object().unwrap() {
        let found = ours.get(rel).unwrap_or_else(|| panic!("{rel} was not run"));
        // dlib's HOG detector fires on some non-faces (the README says so): an
        // image may have as many unmatched dlib boxes as it has boxes beyond
        // the true face count in the manifest, and no more.
        let dlib_boxes = image["faces"].as_array().unwrap().len();
        let surplus = manifest[rel]
            .expected_faces
            .map_or(0, |n| dlib_boxes.saturating_sub(n));
        let mut misses = Vec::new();
        for face in image["faces"].as_array().unwrap() {
            let ltrb: Vec<f32> = face["box_ltrb"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let dlib_box = [ltrb[0], ltrb[1], ltrb[2] - ltrb[0], ltrb[3] - ltrb[1]];
            let descriptor: Vec<f32> = face["descriptor"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let best = found
                .iter()
                .map(|f| (iou(f.bbox, dlib_box), f))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            match best {
                Some((overlap, f)) if overlap >= 0.4 => {
                    distances.push((distance(&f.embedding, &descriptor), rel.clone()));
                }
                other => misses.push(format!(
                    "{rel} dlib box {dlib_box:?} (best IoU {:.2})",
                    other.map_or(0.0, |(o, _)| o)
                )),
            }
        }
        if misses.len() <= surplus {
            hog_extras.extend(misses);
        } else {
            unmatched.extend(misses);
        }
    }
    report!("dlib boxes beyond the manifest's face count, left unmatched: {hog_extras:?}");
    distances.sort_by(|a, b| a.0.total_cmp(&b.0));
    let median = distances[distances.len() / 2].0;
    let (max, worst) = distances.last().cloned().unwrap();
    let mean = distances.iter().map(|d| d.0).sum::<f32>() / distances.len() as f32;
    report!(
        "pipeline parity: {} dlib faces matched, {} unmatched; descriptor distance median {median:.3}, mean {mean:.3}, max {max:.3} ({worst})",
        distances.len(),
        unmatched.len()
    );
    assert!(
        unmatched.is_empty(),
        "dlib faces without a match: {unmatched:#?}"
    );
    assert!(median <= 0.2, "median distance {median}");
    assert!(max <= 0.35, "max distance {max} on {worst}");
}

#[test]
fn identity_pairs_are_separated_at_0_6() {
    let Some(ours) = detections() else { return };
    let data = testdata().unwrap();
    let mut photos: Vec<(String, String, Option<Vec<f32>>)> = manifest(&data)
        .into_iter()
        .filter(|(_, m)| m.category == "identity")
        .map(|(rel, m)| {
            let largest = ours[&rel]
                .iter()
                .max_by(|a, b| (a.bbox[2] * a.bbox[3]).total_cmp(&(b.bbox[2] * b.bbox[3])))
                .map(|f| f.embedding.clone());
            (rel, m.identity, largest)
        })
        .collect();
    photos.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(photos.len(), 111, "identity photos in the manifest");
    let missing: Vec<&str> = photos
        .iter()
        .filter(|p| p.2.is_none())
        .map(|p| p.0.as_str())
        .collect();
    let (mut right, mut total) = (0usize, 0usize);
    let (mut false_match, mut false_split) = (0usize, 0usize);
    for i in 0..photos.len() {
        for j in i + 1..photos.len() {
            total += 1;
            let same = photos[i].1 == photos[j].1;
            // A photo without a face gets every one of its pairs wrong.
            let (Some(a), Some(b)) = (&photos[i].2, &photos[j].2) else {
                continue;
            };
            let close = distance(a, b) < 0.6;
            match (same, close) {
                (true, true) | (false, false) => right += 1,
                (false, true) => false_match += 1,
                (true, false) => false_split += 1,
            }
        }
    }
    let accuracy = 100.0 * right as f64 / total as f64;
    report!(
        "identity: {right}/{total} pairs right = {accuracy:.2}% ({false_match} different people below 0.6, {false_split} same person at or above 0.6, {} photo(s) without a face: {missing:?})",
        missing.len()
    );
    assert!(accuracy >= 98.0, "identity accuracy {accuracy:.2}%");
}

#[test]
fn group_photos_have_the_expected_number_of_faces() {
    let Some(ours) = detections() else { return };
    let data = testdata().unwrap();
    let mut groups: Vec<(String, usize)> = manifest(&data)
        .into_iter()
        .filter(|(rel, m)| m.category == "group" && is_photo(rel))
        .map(|(rel, m)| (rel, m.expected_faces.expect("expected_faces")))
        .collect();
    groups.sort();
    let mut off = Vec::new();
    for (rel, expected) in &groups {
        let found = ours[rel].len();
        let ok = found.abs_diff(*expected) <= 1;
        report!(
            "faces: {found:>2} found, {expected:>2} expected {} {rel}",
            if ok { "  " } else { "✗" }
        );
        if !ok {
            off.push(rel.as_str());
        }
    }
    report!(
        "detection: {} of {} group photos within ±1",
        groups.len() - off.len(),
        groups.len()
    );
    assert!(
        off.len() <= 2,
        "more than two group photos off by more than one: {off:?}"
    );
}

#[test]
fn photos_without_people_have_no_faces() {
    let Some(ours) = detections() else { return };
    let mut checked = 0;
    for (rel, faces) in ours.iter().filter(|(rel, _)| rel.starts_with("nofaces/")) {
        checked += 1;
        assert!(
            faces.is_empty(),
            "{rel}: {} face(s) at {:?}",
            faces.len(),
            faces.iter().map(|f| f.bbox).collect::<Vec<_>>()
        );
    }
    report!("nofaces: 0 faces in each of {checked} photos");
    assert!(checked >= 10, "only {checked} nofaces photos");
}
