//! The face stage inside the daemon and the `faces` command line:
//! - a dropped photo's faces (box, 68 landmarks, score, quality, engine) are
//!   stored with the asset and shown by `assets show`, never its template;
//! - a damaged or missing model file stops start-up, naming the file and the fix;
//! - `faces detect` reports an undecodable file with the quarantine's words
//!   and exits non-zero, after printing every file.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use consentry_tests::{Env, bin, models_dir, require_testdata, synthetic_jpeg};
use serde_json::Value;

#[test]
fn faces_are_stored_with_the_asset_and_shown() {
    let data = require_testdata!();
    let env = Env::new("delete", "");
    let mut daemon = env.start();
    let photo = std::fs::read(data.join("faces/astronaut_nasa_public_domain.png")).unwrap();
    env.drop_file("astronaut.png", &photo);
    env.drop_file("noise.jpg", &synthetic_jpeg(7, 640, 480));
    env.wait_drained(&mut daemon, Duration::from_secs(60));

    let assets = env.assets();
    assert_eq!(assets.len(), 2, "{assets:?}");
    let astronaut = assets
        .iter()
        .find(|a| a["sources"][0]["path"] == "astronaut.png")
        .expect("astronaut asset");
    assert_eq!(astronaut["status"], "ready");
    assert_eq!(astronaut["faces"], 1);
    let noise = assets
        .iter()
        .find(|a| a["sources"][0]["path"] == "noise.jpg")
        .unwrap();
    assert_eq!(noise["faces"], 0, "random pixels have no face");

    let id = astronaut["id"].as_str().unwrap();
    let detail = env
        .cli_json_lines(&["assets", "show", id, "--json"])
        .remove(0);
    let faces = detail["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 1);
    let face = &faces[0];
    // Eileen Collins' face: face-api's box on this image is (181, 73, 83×102).
    let b = &face["box"];
    let (x, y) = (b["x"].as_f64().unwrap(), b["y"].as_f64().unwrap());
    assert!(
        (x - 181.0).abs() < 10.0 && (y - 73.0).abs() < 10.0,
        "box {b}"
    );
    assert_eq!(face["landmarks"].as_array().unwrap().len(), 68);
    // The template is biometric data: never in a catalogue view, and not
    // kept at all where recognition is off (the default).
    assert!(face.get("embedding").is_none(), "{face}");
    assert_eq!(face["template"], "recognition-off");
    assert_eq!(face["state"], "unknown");
    // `faces detect` (which stores nothing) prints the descriptor.
    let detected = env.cli_json_lines(&[
        "faces",
        "detect",
        "--json",
        data.join("faces/astronaut_nasa_public_domain.png")
            .to_str()
            .unwrap(),
    ]);
    let embedding = detected[0]["faces"][0]["embedding"].as_array().unwrap();
    assert_eq!(embedding.len(), 128);
    let norm: f64 = embedding
        .iter()
        .map(|v| v.as_f64().unwrap().powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        (1.2..1.7).contains(&norm),
        "dlib descriptors have a norm near 1.46, got {norm}"
    );
    assert!(face["score"].as_f64().unwrap() > 0.9);
    assert!(
        face["quality"]["score"].as_f64().unwrap() > 0.5,
        "{}",
        face["quality"]
    );
    assert!(
        face["engine"]
            .as_str()
            .unwrap()
            .starts_with("consentry-faces-")
    );
    assert_eq!(face["reviewed"], false);
    assert!(
        daemon.log().contains("face engine consentry-faces-"),
        "start-up logs the engine and device"
    );
    daemon.stop();
}

/// Copies the models directory so one file can be damaged.
fn models_copy(into: &Path) -> std::path::PathBuf {
    let dir = into.join("models");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(models_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

fn start_with_models(env: &Env, models: &Path) -> (bool, String) {
    let config = std::fs::read_to_string(&env.config).unwrap();
    let models_line = format!("models_dir = \"{}\"", models_dir().display());
    assert!(config.contains(&models_line));
    std::fs::write(
        &env.config,
        config.replace(
            &models_line,
            &format!("models_dir = \"{}\"", models.display()),
        ),
    )
    .unwrap();
    let out = Command::new(bin("consentryd"))
        .arg("--config")
        .arg(&env.config)
        .env_remove("CONSENTRY_MODELS_DIR")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_damaged_model_file_stops_start_up_with_the_fix() {
    let env = Env::new("keep", "");
    let models = models_copy(env.root());
    let file = models.join("face_landmarks.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();
    let (ok, stderr) = start_with_models(&env, &models);
    assert!(!ok, "consentryd must not start on a damaged model");
    assert!(
        stderr.contains("face_landmarks.safetensors is damaged"),
        "{stderr}"
    );
    assert!(
        stderr.contains("make models") && stderr.contains("reinstall"),
        "{stderr}"
    );
    assert!(!env.socket.exists(), "nothing was served");
}

#[test]
fn a_missing_model_file_stops_start_up_naming_it() {
    let env = Env::new("keep", "");
    let models = models_copy(env.root());
    std::fs::remove_file(models.join("face_detector.safetensors")).unwrap();
    let (ok, stderr) = start_with_models(&env, &models);
    assert!(!ok);
    assert!(stderr.contains("face_detector.safetensors"), "{stderr}");
    assert!(stderr.contains("make models"), "{stderr}");
}

#[test]
fn faces_detect_reports_each_file_and_fails_on_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("noise.jpg");
    std::fs::write(&good, synthetic_jpeg(3, 320, 240)).unwrap();
    let bad = dir.path().join("notes.jpg");
    std::fs::write(&bad, b"not a photo at all").unwrap();
    let out = Command::new(bin("consentry"))
        .args([
            "--config",
            "/nonexistent/consentry.toml",
            "faces",
            "detect",
            "--json",
            "--models",
        ])
        .arg(models_dir())
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a bad file makes the command fail");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one line per file, the bad one included");
    assert_eq!(lines[0]["faces"].as_array().unwrap().len(), 0);
    assert_eq!(lines[0]["width"], 320);
    assert_eq!(lines[1]["error"]["code"], "not-an-image");
    assert_eq!(lines[1]["error"]["stage"], "sniff");
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not be processed"));
}
