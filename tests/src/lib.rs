//! Shared fixtures for the end-to-end tests: the shared test data (skipped
//! with a visible reason where it is absent, an error under CI), synthetic
//! photos the repository owns, and a real `consentryd` child process with its
//! own config, share, key and data directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use opencv::core::{Mat, Scalar, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

pub mod browser;
pub mod console;
pub mod smtp;

/// `../shared/testdata` beside the checkout (or `$CONSENTRY_TESTDATA`).
/// Returns None, after saying so on stderr, when it is absent; panics instead
/// when `CONSENTRY_REQUIRE_TESTDATA=1` (as `.ci/run` sets).
pub fn testdata() -> Option<PathBuf> {
    let path = std::env::var_os("CONSENTRY_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"));
    if path.join("manifest.csv").is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("CONSENTRY_REQUIRE_TESTDATA").as_deref() != Ok("1"),
        "the shared test data is required but missing at {}",
        path.display()
    );
    eprintln!(
        "SKIPPED: shared test data not found at {} (set CONSENTRY_TESTDATA)",
        path.display()
    );
    None
}

/// Returns early from a test, with a visible reason, if the shared test data is absent.
#[macro_export]
macro_rules! require_testdata {
    () => {
        match $crate::testdata() {
            Some(path) => path,
            None => return,
        }
    };
}

/// Whether an external tool is on PATH.
pub fn on_path(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether an external tool is on PATH; says so when it is not.
pub fn have_tool(name: &str) -> bool {
    let found = on_path(name);
    if !found {
        assert!(
            std::env::var("CONSENTRY_REQUIRE_TESTDATA").as_deref() != Ok("1"),
            "{name} is required under CI but not installed (make deps installs it)"
        );
        eprintln!("SKIPPED: {name} is not installed (make deps installs it)");
    }
    found
}

/// The converted face models: `$CONSENTRY_MODELS_DIR`, else `target/models`
/// of this checkout (`make models` writes it; `make test` runs that first).
/// A `python3` that can import `module`: `$CONSENTRY_PYTHON`, else the first
/// such `python3` on PATH (a pyenv or venv interpreter ahead of the system's
/// does not see Debian's python3-* packages).
pub fn python_with(module: &str) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(explicit) = std::env::var_os("CONSENTRY_PYTHON") {
        candidates.push(explicit.into());
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(
            std::env::split_paths(&path)
                .map(|dir| dir.join("python3"))
                .filter(|p| p.is_file()),
        );
    }
    candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", &format!("import {module}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("CONSENTRY_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/models"));
    assert!(
        dir.join("models.json").is_file(),
        "face models not found in {}; run `make models` (`make test` does)",
        dir.display()
    );
    dir
}

/// A binary of the workspace, built next to the test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built; run `cargo build --bins` first (`make test` does)",
        path.display()
    );
    path
}

/// A deterministic xorshift generator for reproducible synthetic data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A distinct, decodable JPEG (seeded blocks of colour plus noise).
pub fn synthetic_jpeg(seed: u64, width: i32, height: i32) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut image =
        Mat::new_rows_cols_with_default(height, width, opencv::core::CV_8UC3, Scalar::all(0.0))
            .unwrap();
    for _ in 0..12 {
        let (x, y) = (
            rng.below(width as u64) as i32,
            rng.below(height as u64) as i32,
        );
        let (w, h) = (
            1 + rng.below(width as u64 / 2) as i32,
            1 + rng.below(height as u64 / 2) as i32,
        );
        let colour = Scalar::new(
            rng.below(256) as f64,
            rng.below(256) as f64,
            rng.below(256) as f64,
            0.0,
        );
        imgproc::rectangle_def(&mut image, opencv::core::Rect::new(x, y, w, h), colour).unwrap();
    }
    let data = image.data_bytes_mut().unwrap();
    for _ in 0..(data.len() / 50).max(1) {
        let idx = rng.below(data.len() as u64) as usize;
        data[idx] = rng.below(256) as u8;
    }
    let mut out = Vector::<u8>::new();
    imgcodecs::imencode(
        ".jpg",
        &image,
        &mut out,
        &Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, 90]),
    )
    .unwrap();
    out.to_vec()
}

pub fn blake3_hex(bytes: &[u8]) -> String {
    consentry::domain::AssetId::of_bytes(bytes).0
}

/// A daemon environment: config, share, key and data directory in a temp dir.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub share: PathBuf,
    pub data: PathBuf,
    pub key: PathBuf,
    pub socket: PathBuf,
}

impl Env {
    /// `after_ingest` is delete, move or keep; `extra_ingest` is appended to
    /// the `[ingest]` table.
    pub fn new(after_ingest: &str, extra_ingest: &str) -> Env {
        Env::with_people(after_ingest, extra_ingest, "")
    }

    /// As [`Env::new`], with `people` appended to a `[people]` table.
    pub fn with_people(after_ingest: &str, extra_ingest: &str, people: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("consentry-e2e")
            .tempdir()
            .unwrap();
        let root = dir.path().to_owned();
        let share = root.join("share");
        std::fs::create_dir_all(&share).unwrap();
        let key = root.join("master.key");
        consentry::pipeline::store::crypto::generate_key_file(&key).unwrap();
        let move_to = if after_ingest == "move" {
            "move_to = \"done\"\n"
        } else {
            ""
        };
        let config = root.join("consentry.toml");
        let models = models_dir().display().to_string();
        std::fs::write(
            &config,
            format!(
                "[store]\ndata_dir = \"data\"\nmaster_key_file = \"master.key\"\nflush_every = \"200ms\"\nerasure_ledger = \"ledger/erasures\"\n\
                 [audit]\nsigning_key_file = \"keys/audit-signing.key\"\n\
                 [ingest]\nquiet_period = \"400ms\"\nrescan_interval = \"2s\"\nretry_backoff = \"200ms\"\nworkers = 2\n{extra_ingest}\n\
                 [faces]\nmodels_dir = \"{models}\"\n\
                 [log]\nlevel = \"info\"\njournal = \"never\"\n\
                 [control]\nsocket = \"control.sock\"\n\
                 [web]\nlisten = \"127.0.0.1:0\"\ncert_file = \"tls/console.crt\"\nkey_file = \"tls/console.key\"\n\
                 [people]\n{people}\n\
                 [[share]]\npath = \"share\"\ncollection = \"e2e\"\nafter_ingest = \"{after_ingest}\"\n{move_to}"
            ),
        )
        .unwrap();
        Env {
            config,
            share,
            data: root.join("data"),
            key,
            socket: root.join("control.sock"),
            dir,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Starts `consentryd` and waits until its control socket answers.
    pub fn start(&self) -> Daemon {
        let log_path = self.root().join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(bin("consentryd"))
            .arg("--config")
            .arg(&self.config)
            // The config names the models; the variable would override it.
            .env_remove("CONSENTRY_MODELS_DIR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start consentryd");
        let mut daemon = Daemon {
            child: Some(child),
            log: log_path,
        };
        let started = Instant::now();
        while !consentry::control::daemon_listening(&self.socket) {
            if let Some(status) = daemon.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "consentryd exited with {status} at start-up:\n{}",
                    daemon.log()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "consentryd did not start:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    /// Runs the `consentry` CLI against this environment.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("consentry"))
            .arg("--config")
            .arg(&self.config)
            .env_remove("CONSENTRY_MODELS_DIR")
            .args(args)
            .output()
            .expect("run consentry")
    }

    pub fn cli_json_lines(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "consentry {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line}: {e}"))
            })
            .collect()
    }

    pub fn status(&self) -> serde_json::Value {
        self.cli_json_lines(&["status", "--json"]).remove(0)
    }

    pub fn assets(&self) -> Vec<serde_json::Value> {
        self.cli_json_lines(&["assets", "list", "--json"])
    }

    /// Waits until the queue is empty and the share holds no file (for
    /// delete/move shares), or panics after `timeout`.
    pub fn wait_drained(&self, daemon: &mut Daemon, timeout: Duration) {
        let started = Instant::now();
        loop {
            daemon.assert_alive();
            let status = self.status();
            let queue_empty = status["queue"]["total"].as_u64() == Some(0);
            if queue_empty && files_under(&self.share).is_empty() {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "not drained after {timeout:?}: queue {}, share still has {:?}\n{}",
                status["queue"],
                files_under(&self.share).iter().take(5).collect::<Vec<_>>(),
                daemon.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes a file into the share atomically enough for a test: written
    /// under a litter name, then renamed (as many SMB clients do).
    pub fn drop_file(&self, rel: &str, bytes: &[u8]) {
        let dest = self.share.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let tmp = dest.with_file_name(format!(
            "~${}.tmp",
            dest.file_name().unwrap().to_string_lossy()
        ));
        let mut file = std::fs::File::create(&tmp).unwrap();
        file.write_all(bytes).unwrap();
        file.sync_all().unwrap();
        std::fs::rename(&tmp, &dest).unwrap();
    }
}

/// Every regular file below `dir`, relative paths, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path.strip_prefix(dir).unwrap().to_owned()),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// A running `consentryd`; killed when dropped.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().expect("running").id()).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
            panic!("consentryd died ({status}):\n{}", self.log_tail(60));
        }
    }

    /// Peak resident memory (VmHWM) of the daemon, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status")
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit; returns the log.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "consentryd exited with {status}:\n{}",
                    self.log_tail(40)
                );
                return self.log();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "consentryd did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
