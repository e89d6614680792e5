//! Parity of [`consentry_models::align`] with dlib's `get_face_chip`.
//!
//! For every face in the shared reference data (`shared/testdata/reference`,
//! see its README) this takes dlib's own 5 landmarks, builds our chip from the
//! photo and compares it with dlib's chip pixel by pixel. With
//! `CONSENTRY_DLIB_RESNET_DAT` set (path to
//! `dlib_face_recognition_resnet_model_v1.dat`) it also embeds our chips and
//! compares the descriptors with dlib's.
//!
//! Without the reference data the test prints `SKIPPED: …` to stderr and
//! passes, unless `CONSENTRY_REQUIRE_TESTDATA=1`, in which case it fails.
//!
//! Figures and speed: `cargo test --release -p consentry-models --test align_parity -- --nocapture`.

mod support;
use support::{load_rgb, testdata_dir};

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use consentry_models::align::{CHIP_SIZE, ChipDetails, chip_details, extract_chip};
use consentry_models::face_embedder::{DESCRIPTOR_LEN, FaceEmbedder, chip_to_tensor};
use consentry_models::{Point, RgbImage, dlib_dat};

const WEIGHTS_ENV: &str = "CONSENTRY_DLIB_RESNET_DAT";
// Measured: 15 of 12.8 M values differ, by 1, all on chips without the
// pyramid (float rounding in the fit flipping a truncation); descriptors
// within 1.4e-5 of dlib's.
/// Largest pixel difference allowed on chips sampled straight from the photo.
const MAX_DIFF_DIRECT: u8 = 1;
/// Largest pixel difference allowed on chips sampled from the pyramid.
const MAX_DIFF_PYRAMID: u8 = 1;
/// Mean absolute pixel difference allowed over all chips.
const MEAN_DIFF: f64 = 1e-4;
/// Euclidean descriptor distance to dlib's allowed per face (the embedder
/// alone differs from dlib by up to ~1e-4 per value on identical chips).
const DESCRIPTOR_DISTANCE: f32 = 1e-3;
const BATCH: usize = 16;

/// One face of `dlib_reference.json`.
struct Face {
    /// The photo, relative to the testdata dir.
    image: String,
    landmarks5: [Point; 5],
    chip: PathBuf,
    descriptor: Vec<f32>,
}

fn reference_faces(dir: &Path) -> Vec<Face> {
    let text = std::fs::read_to_string(dir.join("reference/dlib_reference.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let images = json["images"]
        .as_object()
        .expect("dlib_reference.json: `images` is an object");
    let mut faces = Vec::new();
    for (image, entry) in images {
        for face in entry["faces"].as_array().into_iter().flatten() {
            let chip = face["chip"]
                .as_str()
                .unwrap_or_else(|| panic!("{image}: face without `chip`"));
            let points: Vec<Point> = face["landmarks5"]
                .as_array()
                .unwrap_or_else(|| panic!("{image}: face without `landmarks5`"))
                .iter()
                .map(|p| {
                    let xy = p.as_array().expect("landmark [x, y]");
                    Point::new(
                        xy[0].as_f64().expect("x") as f32,
                        xy[1].as_f64().expect("y") as f32,
                    )
                })
                .collect();
            let landmarks5: [Point; 5] = points
                .try_into()
                .unwrap_or_else(|p: Vec<Point>| panic!("{image}: {} landmarks, not 5", p.len()));
            let descriptor: Vec<f32> = face["descriptor"]
                .as_array()
                .unwrap_or_else(|| panic!("{image}: face without `descriptor`"))
                .iter()
                .map(|v| v.as_f64().expect("descriptor value") as f32)
                .collect();
            assert_eq!(descriptor.len(), DESCRIPTOR_LEN, "{image}: {chip}");
            faces.push(Face {
                image: image.clone(),
                landmarks5,
                chip: dir.join("reference").join(chip),
                descriptor,
            });
        }
    }
    faces
}

/// dlib's 5-point order is image-right eye (outer, inner), image-left eye
/// (outer, inner), nose base: check the reference follows it, or our
/// template pairing would be wrong.
fn check_point_order(face: &Face) {
    let [p0, p1, p2, p3, p4] = face.landmarks5;
    let ok = p0.x > p1.x && p1.x > p3.x && p3.x > p2.x && p4.y > p1.y.max(p3.y);
    // Strongly tilted faces could break the x ordering; none in the set are.
    assert!(
        ok,
        "{}: landmarks5 not in dlib's order: {:?}",
        face.image, face.landmarks5
    );
}

/// Per-chip comparison with dlib's chip.
struct Diff {
    sum: u64,
    max: u8,
    differing: usize,
}

fn diff(ours: &RgbImage, dlib: &RgbImage) -> Diff {
    assert_eq!((dlib.width, dlib.height), (CHIP_SIZE, CHIP_SIZE));
    let mut d = Diff {
        sum: 0,
        max: 0,
        differing: 0,
    };
    for (a, b) in ours.data.iter().zip(&dlib.data) {
        let e = a.abs_diff(*b);
        d.sum += u64::from(e);
        d.max = d.max.max(e);
        d.differing += usize::from(e != 0);
    }
    d
}

#[derive(Default)]
struct Stats {
    chips: usize,
    sum: u64,
    max: u8,
    differing: usize,
    worst: String,
}

impl Stats {
    fn add(&mut self, name: &str, d: &Diff) {
        self.chips += 1;
        self.sum += d.sum;
        self.differing += d.differing;
        if d.max > self.max || self.worst.is_empty() {
            self.max = self.max.max(d.max);
            self.worst = name.to_string();
        }
    }

    fn mean(&self) -> f64 {
        self.sum as f64 / (self.chips.max(1) * CHIP_SIZE * CHIP_SIZE * 3) as f64
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what}: {} chips, mean abs {:.5}, max {} (worst {}), {} of {} values differ",
            self.chips,
            self.mean(),
            self.max,
            self.worst,
            self.differing,
            self.chips * CHIP_SIZE * CHIP_SIZE * 3
        )
    }
}

#[test]
fn chips_match_dlib_on_every_reference_face() {
    let Some(dir) = testdata_dir("dlib_reference.json") else {
        return;
    };
    let faces = reference_faces(&dir);
    assert!(!faces.is_empty(), "dlib_reference.json lists no faces");

    let mut direct = Stats::default();
    let mut pyramid = Stats::default();
    let mut chips: Vec<RgbImage> = Vec::with_capacity(faces.len());
    let mut extract_s = 0.0;
    // The face with the largest footprint, for the timing below.
    let mut largest: Option<(RgbImage, ChipDetails)> = None;
    let mut smallest: Option<(RgbImage, ChipDetails)> = None;
    let mut image: Option<(String, RgbImage)> = None;
    for face in &faces {
        check_point_order(face);
        if image.as_ref().is_none_or(|(name, _)| *name != face.image) {
            image = Some((face.image.clone(), load_rgb(&dir.join(&face.image))));
        }
        let photo = &image.as_ref().unwrap().1;
        let t0 = Instant::now();
        let details = chip_details(&face.landmarks5);
        let ours = extract_chip(photo.as_ref(), &details);
        extract_s += t0.elapsed().as_secs_f64();

        let dlib = load_rgb(&face.chip);
        let d = diff(&ours, &dlib);
        let name = format!(
            "{} (scale {:.2}, {} levels)",
            face.chip.file_name().unwrap().to_string_lossy(),
            details.scale,
            details.pyramid_levels()
        );
        if d.differing > 0 {
            println!("  {name}: {} values differ, max {}", d.differing, d.max);
        }
        if details.pyramid_levels() == 0 {
            direct.add(&name, &d);
        } else {
            pyramid.add(&name, &d);
        }
        if largest
            .as_ref()
            .is_none_or(|(_, l)| details.scale > l.scale)
        {
            largest = Some((photo.clone(), details));
        }
        if smallest
            .as_ref()
            .is_none_or(|(_, l)| details.scale < l.scale)
        {
            smallest = Some((photo.clone(), details));
        }
        chips.push(ours);
    }
    let mut all = Stats::default();
    for s in [&direct, &pyramid] {
        all.chips += s.chips;
        all.sum += s.sum;
        all.differing += s.differing;
    }
    println!("{}", direct.line("no pyramid"));
    println!("{}", pyramid.line("pyramid"));
    println!(
        "all: {} chips, mean abs {:.5}, max {}",
        all.chips,
        all.mean(),
        direct.max.max(pyramid.max)
    );

    // Speed: every reference chip once, then the largest face repeatedly.
    println!(
        "speed: {:.3} ms per chip over {} reference faces",
        extract_s * 1e3 / faces.len() as f64,
        faces.len()
    );
    for (what, face) in [("smallest", &smallest), ("largest", &largest)] {
        let Some((photo, details)) = face else {
            continue;
        };
        let reps = 50;
        let t0 = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(extract_chip(photo.as_ref(), details));
        }
        println!(
            "speed: {:.3} ms per chip for the {what} face ({}x{} photo, scale {:.2}, \
             footprint {:.0} px, {} pyramid levels)",
            t0.elapsed().as_secs_f64() * 1e3 / reps as f64,
            photo.width,
            photo.height,
            details.scale,
            details.scale * CHIP_SIZE as f64,
            details.pyramid_levels()
        );
    }

    assert!(
        direct.max <= MAX_DIFF_DIRECT,
        "chip without pyramid differs from dlib by {} (worst {})",
        direct.max,
        direct.worst
    );
    assert!(
        pyramid.max <= MAX_DIFF_PYRAMID,
        "chip with pyramid differs from dlib by {} (worst {})",
        pyramid.max,
        pyramid.worst
    );
    assert!(
        all.mean() <= MEAN_DIFF,
        "mean abs pixel difference {} above {MEAN_DIFF}",
        all.mean()
    );

    check_descriptors(&faces, &chips);
}

/// Embeds our chips and compares with dlib's descriptors (only when the
/// weights are given).
fn check_descriptors(faces: &[Face], chips: &[RgbImage]) {
    let Some(path) = std::env::var_os(WEIGHTS_ENV) else {
        let _ = writeln!(
            std::io::stderr(),
            "descriptor check skipped: set {WEIGHTS_ENV} to dlib_face_recognition_resnet_model_v1.dat"
        );
        return;
    };
    let dat = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"));
    let tensors = dlib_dat::parse(&dat, &Device::Cpu).expect("parsing the .dat");
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let net = FaceEmbedder::new(vb).expect("building the embedder");

    let mut ours: Vec<Vec<f32>> = Vec::with_capacity(chips.len());
    for batch in chips.chunks(BATCH) {
        let inputs: Vec<Tensor> = batch
            .iter()
            .map(|c| chip_to_tensor(&c.data, &Device::Cpu).unwrap())
            .collect();
        let out = net.forward(&Tensor::cat(&inputs, 0).unwrap()).unwrap();
        ours.extend(out.to_vec2::<f32>().unwrap());
    }
    let (mut max, mut sum, mut worst) = (0f32, 0f64, 0usize);
    for (i, (face, got)) in faces.iter().zip(&ours).enumerate() {
        let dist = face
            .descriptor
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            .sqrt();
        sum += f64::from(dist);
        if dist > max {
            (max, worst) = (dist, i);
        }
    }
    println!(
        "descriptor distance to dlib over {} faces: max {max:.2e} (worst {}), mean {:.2e}",
        faces.len(),
        faces[worst].chip.file_name().unwrap().to_string_lossy(),
        sum / faces.len() as f64
    );
    assert!(
        max <= DESCRIPTOR_DISTANCE,
        "descriptor of {} is {max} from dlib's (tolerance {DESCRIPTOR_DISTANCE})",
        faces[worst].chip.display()
    );
}
