//! Parity of the candle landmark net with face-api 1.7.15 itself.
//!
//! Needs the face-api weights (`CONSENTRY_FACEAPI_DIR` = the folder holding
//! `face_landmark_68_model.bin` and its `-weights_manifest.json`, e.g.
//! `target/models/raw`) and the shared reference data
//! (`shared/testdata/reference/faceapi_reference.json`, see its README).
//! Without them the test prints `SKIPPED: …` to stderr and passes, unless
//! `CONSENTRY_REQUIRE_TESTDATA=1`, in which case it fails.
//!
//! Each reference face is run from face-api's own box (`box_xywh`), so the
//! comparison isolates the landmark net and its pre- and post-processing.
//! Two figures per face:
//! - "ours": our points as the library returns them;
//! - "face-api frame": the same points moved into face-api's output
//!   convention (it shifts by the unfloored box corner and by half the
//!   unrounded padding; see the `face_landmarks` module docs). This one
//!   measures the network alone and is held to a tight tolerance.
//!
//! Speed figures: `cargo test --release -p consentry-models --test landmarks_parity -- --nocapture`.

mod support;
use support::{load_rgb, testdata_dir};

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use consentry_models::face_landmarks::{FaceCrop, FaceLandmarker, NUM_LANDMARKS};
use consentry_models::{Point, Rect, RgbImage};

const MODEL: &str = "face_landmark_68_model";

/// Largest point error allowed for our points: this many pixels, or this
/// fraction of the box width, whichever is larger. Our frame differs from
/// face-api's by under 1 px on each axis (the fraction of the box corner)
/// plus up to 0.5 px on the padded axis (its unrounded half padding): under
/// 1.42 px in all.
const TOL_PX: f32 = 1.5;
const TOL_REL: f32 = 0.0;
/// The same in face-api's output frame, where only float rounding (and JPEG
/// decoding, identical here) differ: measured max about 0.012 px.
const TOL_FRAME_PX: f32 = 0.05;
const TOL_FRAME_REL: f32 = 1e-4;

fn landmarker() -> Option<FaceLandmarker> {
    let vb = support::faceapi_weights(MODEL)?;
    Some(FaceLandmarker::new(vb).expect("building the landmark net from the tfjs tensors"))
}

/// One face of `faceapi_reference.json`.
struct Face {
    image: usize,
    rect: Rect,
    landmarks: Vec<Point>,
}

/// The photos with at least one reference face, and those faces.
fn reference(dir: &Path) -> (Vec<(String, RgbImage)>, Vec<Face>) {
    let text = std::fs::read_to_string(dir.join("reference/faceapi_reference.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entries = json["images"]
        .as_object()
        .expect("faceapi_reference.json: `images` is an object");
    let num = |v: &serde_json::Value| v.as_f64().expect("a number") as f32;
    let (mut images, mut faces) = (Vec::new(), Vec::new());
    for (rel, entry) in entries {
        let listed = entry["faces"].as_array().cloned().unwrap_or_default();
        let lower = rel.to_ascii_lowercase();
        if listed.is_empty() || lower.ends_with(".heic") || lower.ends_with(".avif") {
            continue;
        }
        let image = load_rgb(&dir.join(rel));
        let size = (entry["width"].as_u64(), entry["height"].as_u64());
        assert_eq!(
            (Some(image.width as u64), Some(image.height as u64)),
            size,
            "{rel}: decoded size differs from the reference (EXIF orientation?)"
        );
        for face in &listed {
            let b: Vec<f32> = face["box_xywh"]
                .as_array()
                .expect("box_xywh")
                .iter()
                .map(num)
                .collect();
            let landmarks: Vec<Point> = face["landmarks68"]
                .as_array()
                .expect("landmarks68")
                .iter()
                .map(|p| Point::new(num(&p[0]), num(&p[1])))
                .collect();
            assert_eq!(landmarks.len(), NUM_LANDMARKS, "{rel}");
            faces.push(Face {
                image: images.len(),
                rect: Rect {
                    x: b[0],
                    y: b[1],
                    width: b[2],
                    height: b[3],
                },
                landmarks,
            });
        }
        images.push((rel.clone(), image));
    }
    (images, faces)
}

/// Our points as face-api reports them: shifted by the unfloored box corner
/// instead of the crop's, and by half the padding unrounded.
fn in_faceapi_frame(points: &[Point], rect: Rect, crop: FaceCrop) -> Vec<Point> {
    let (left, top) = crop.pad_before();
    let d = (crop.width as f32 - crop.height as f32).abs() / 2.0;
    let (half_x, half_y) = if crop.width < crop.height {
        (d, 0.0)
    } else if crop.height < crop.width {
        (0.0, d)
    } else {
        (0.0, 0.0)
    };
    let dx = rect.x - crop.x as f32 - (half_x - left as f32);
    let dy = rect.y - crop.y as f32 - (half_y - top as f32);
    points
        .iter()
        .map(|p| Point::new(p.x + dx, p.y + dy))
        .collect()
}

/// The reference rounds boxes to 0.01 px, so a value printed as a whole
/// number may have been just below it, and face-api then floored it one
/// pixel lower. Returns the box as given, then every reading with such
/// values taken from just below.
fn floor_variants(rect: Rect) -> Vec<Rect> {
    let near_whole = |v: f32| (v - v.round()).abs() < 0.006;
    let fields: [fn(&mut Rect) -> &mut f32; 4] = [
        |r| &mut r.x,
        |r| &mut r.y,
        |r| &mut r.width,
        |r| &mut r.height,
    ];
    let mut out = vec![rect];
    for field in fields {
        if near_whole(*field(&mut rect.clone())) {
            let lower: Vec<Rect> = out
                .iter()
                .map(|&r| {
                    let mut r = r;
                    *field(&mut r) -= 0.01;
                    r
                })
                .collect();
            out.extend(lower);
        }
    }
    out
}

/// Mean and max point distance.
fn errors(a: &[Point], b: &[Point]) -> (f32, f32) {
    let d: Vec<f32> = a
        .iter()
        .zip(b)
        .map(|(p, q)| (p.x - q.x).hypot(p.y - q.y))
        .collect();
    (
        d.iter().sum::<f32>() / d.len() as f32,
        d.iter().copied().fold(0.0, f32::max),
    )
}

#[test]
fn landmarks_match_faceapi_on_every_reference_face() {
    let (Some(net), Some(dir)) = (landmarker(), testdata_dir("faceapi_reference.json")) else {
        return;
    };
    let (images, faces) = reference(&dir);
    assert!(!faces.is_empty(), "faceapi_reference.json lists no faces");
    let inputs: Vec<_> = faces
        .iter()
        .map(|f| (images[f.image].1.as_ref(), f.rect))
        .collect();

    let t0 = Instant::now();
    let ours = net.landmarks(&inputs).unwrap();
    let all_at_once = t0.elapsed().as_secs_f64();

    println!(
        "{:<58} {:>6} | {:>6} {:>6} {:>6} | {:>6} {:>6}",
        "image (face; * = floor-ambiguous box)", "box w", "mean", "max", "max %", "fa max", "fa %"
    );
    let (mut sum, mut sum_frame, mut count) = (0f64, 0f64, 0usize);
    let (mut worst, mut worst_frame) = ((0f32, 0f32), (0f32, 0f32));
    let mut failures = Vec::new();
    for (k, (face, got)) in faces.iter().zip(ours).enumerate() {
        let (rel, image) = &images[face.image];
        assert_eq!(got.len(), NUM_LANDMARKS, "{rel}: no landmarks");
        // One candidate per reading of the rounded box; the one closest to
        // face-api in its frame is the crop face-api cut.
        let variants = floor_variants(face.rect);
        let ambiguous = variants.len() > 1;
        let mut candidates = vec![(face.rect, got)];
        for &rect in &variants[1..] {
            let points = net.landmarks(&[(image.as_ref(), rect)]).unwrap().remove(0);
            candidates.push((rect, points));
        }
        let ((mean, max), (mean_f, max_f)) = candidates
            .iter()
            .map(|(rect, points)| {
                let crop = FaceCrop::new(*rect, image.width, image.height).unwrap();
                let framed = in_faceapi_frame(points, face.rect, crop);
                (
                    errors(points, &face.landmarks),
                    errors(&framed, &face.landmarks),
                )
            })
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .unwrap();
        let w = face.rect.width;
        sum += f64::from(mean);
        sum_frame += f64::from(mean_f);
        count += 1;
        if max > worst.0 {
            worst = (max, max / w);
        }
        if max_f > worst_frame.0 {
            worst_frame = (max_f, max_f / w);
        }
        let name = format!("{rel} ({k}){}", if ambiguous { "*" } else { "" });
        let chars = name.chars().count();
        let name = if chars > 58 {
            format!("…{}", name.chars().skip(chars - 57).collect::<String>())
        } else {
            name
        };
        println!(
            "{name:<58} {w:>6.1} | {mean:>6.3} {max:>6.3} {:>5.2}% | {max_f:>6.3} {:>5.2}%",
            100.0 * max / w,
            100.0 * max_f / w
        );
        if max > TOL_PX.max(TOL_REL * w) {
            failures.push(format!("{name}: max {max:.3} px (box width {w:.1})"));
        }
        if max_f > TOL_FRAME_PX.max(TOL_FRAME_REL * w) {
            failures.push(format!(
                "{name}: max {max_f:.3} px in face-api's frame (box width {w:.1})"
            ));
        }
    }
    println!(
        "landmark parity over {count} faces in {} photos: ours mean {:.3} px, max {:.3} px \
         ({:.2}% of box width); face-api frame mean {:.4} px, max {:.4} px ({:.3}%)",
        images.len(),
        sum / count as f64,
        worst.0,
        100.0 * worst.1,
        sum_frame / count as f64,
        worst_frame.0,
        100.0 * worst_frame.1,
    );
    assert!(
        failures.is_empty(),
        "landmarks differ from face-api:\n{}",
        failures.join("\n")
    );

    // Throughput (information only): whole `landmarks` calls, crop and
    // resize included, then the network alone. Best of three rounds, as the
    // build machine is shared.
    let singles = &inputs[..inputs.len().min(32)];
    let one = best_of(3, || {
        for input in singles {
            net.landmarks(std::slice::from_ref(input)).unwrap();
        }
    });
    let sixteen = best_of(3, || {
        for batch in inputs.chunks(16) {
            net.landmarks(batch).unwrap();
        }
    });
    let x1 = Tensor::zeros((1, 3, 112, 112), DType::F32, &Device::Cpu).unwrap();
    let x16 = Tensor::zeros((16, 3, 112, 112), DType::F32, &Device::Cpu).unwrap();
    let net_one = best_of(3, || {
        for _ in 0..16 {
            net.forward(&x1).unwrap();
        }
    });
    let net_sixteen = best_of(3, || {
        net.forward(&x16).unwrap();
    });
    println!(
        "speed, landmarks(): batch 1: {:.1} faces/s; batch 16: {:.1} faces/s; \
         all {} in one call: {:.1} faces/s (first call, cold)",
        singles.len() as f64 / one,
        inputs.len() as f64 / sixteen,
        inputs.len(),
        inputs.len() as f64 / all_at_once,
    );
    println!(
        "speed, forward() alone: batch 1: {:.1} faces/s ({:.2} ms/face); \
         batch 16: {:.1} faces/s ({:.2} ms/face)",
        16.0 / net_one,
        1e3 * net_one / 16.0,
        16.0 / net_sixteen,
        1e3 * net_sixteen / 16.0,
    );
}

/// The shortest of `rounds` timings of `f`, in seconds, after a warm-up run.
fn best_of(rounds: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..rounds)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
