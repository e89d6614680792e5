//! Console load: `wrk` drives the web console and `/api/v1` at a fixed rate
//! (200 requests/s for 60 s by default) with a signed-in mix of screens and
//! API calls, while a photo is dropped into the share every 300 ms so that
//! ingest (face detection and recognition included) runs at the same time.
//! Prints wrk's report, per-route latency from a light probe running beside
//! it, and a summary: requests, achieved rate, p50/p90/p99/max, errors,
//! photos ingested during the run, and whether p99 < 200 ms.
//!
//! Run: `cargo bench -p consentry-tests --bench console_load` (`make bench`).
//! Needs `wrk` (`make deps`), the face models (`make models`) and the
//! workspace's binaries in this profile, which it builds first
//! (`cargo build --release -p consentry-daemon --bins`; set
//! `CONSOLE_LOAD_NO_BUILD=1` to skip that).
//!
//! Options (environment): `CONSOLE_LOAD_SECS` (default 60),
//! `CONSOLE_LOAD_RATE` (requests/s, default 200), `CONSOLE_LOAD_CONNECTIONS`
//! (default 20), `CONSOLE_LOAD_THREADS` (default 2), `CONSOLE_LOAD_DROP_MS`
//! (one new photo every …, default 300; 0: no ingest), `CONSOLE_LOAD_ENFORCE=1`
//! (also fail when p99 ≥ 200 ms or the rate is not reached),
//! `CONSENTRY_TESTDATA` as for the tests.
//!
//! Fails (exit status 1) on any response that is not 2xx, any socket error
//! or timeout, or when `wrk` is missing. wrk is paced by `console_load.lua`;
//! the probe adds about 10 requests/s on top of the target rate.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use consentry_tests::console::Console;
use consentry_tests::{Env, files_under, synthetic_jpeg, testdata};

const USER: &str = "loadbench";
const PASSWORD: &str = "a long console load passphrase";
/// Photos ingested before the load starts.
const SEED_PHOTOS: usize = 20;
/// The target of the issue.
const P99_TARGET_MS: f64 = 200.0;
/// Time between two probe requests.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// The request mix (`console_load.lua` has the same list): label, path.
const ROUTES: [(&str, &str); 9] = [
    ("dashboard", "/"),
    ("photo grid", "/photos"),
    ("photo page", "/photos/{id}"),
    ("thumbnail", "/photos/{id}/thumb"),
    ("api photos", "/api/v1/photos"),
    ("api decisions", "/api/v1/photos/{id}/decisions"),
    ("api status", "/api/v1/status"),
    ("status.json", "/status.json"),
    ("healthz", "/healthz"),
];

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("console_load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn env_u64(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v} is not a whole number")),
        _ => Ok(default),
    }
}

fn run() -> anyhow::Result<bool> {
    let secs = env_u64("CONSOLE_LOAD_SECS", 60)?;
    let rate = env_u64("CONSOLE_LOAD_RATE", 200)?;
    let connections = env_u64("CONSOLE_LOAD_CONNECTIONS", 20)?;
    let threads = env_u64("CONSOLE_LOAD_THREADS", 2)?;
    let drop_every = Duration::from_millis(env_u64("CONSOLE_LOAD_DROP_MS", 300)?);
    let enforce = std::env::var("CONSOLE_LOAD_ENFORCE").as_deref() == Ok("1");
    ensure!(
        secs > 0 && rate > 0,
        "CONSOLE_LOAD_SECS and CONSOLE_LOAD_RATE must be positive"
    );
    ensure!(
        threads > 0 && connections >= threads,
        "CONSOLE_LOAD_CONNECTIONS ({connections}) must be at least CONSOLE_LOAD_THREADS ({threads}) > 0"
    );

    let wrk_found = Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !wrk_found {
        bail!("wrk is not installed; install it with `apt-get install wrk` (or `make deps`)");
    }
    build_binaries()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/console_load.lua");
    ensure!(
        script.is_file(),
        "the wrk script is missing: {}",
        script.display()
    );

    // ---- a daemon with recognition on, an editor, some photos ----------------------
    let photos = jpeg_photos();
    let env = Env::with_people("delete", "", "recognition = [\"*\"]\n");
    let mut daemon = env.start();
    env.add_user(USER, PASSWORD, &["editor:e2e"]);
    let started = Instant::now();
    for i in 0..SEED_PHOTOS {
        let (name, bytes) = photo(&photos, i as u64);
        env.drop_file(&format!("seed/{name}"), &bytes);
    }
    env.wait_drained(&mut daemon, Duration::from_secs(600));
    println!(
        "console_load: {SEED_PHOTOS} seed photos ({}) ingested in {:.1} s",
        if photos.is_empty() {
            "synthetic"
        } else {
            "shared test data"
        },
        started.elapsed().as_secs_f64()
    );

    let url = daemon.console_url();
    let cert = env.console_cert();
    let mut console = Console::new(&url, &cert);
    let signin = console.signin(USER, PASSWORD);
    ensure!(
        signin.status == 200,
        "sign-in answered {}: {}",
        signin.status,
        signin.text()
    );
    let cookie = console
        .cookie
        .clone()
        .context("no session cookie after sign-in")?;

    let list = console.get("/api/v1/photos");
    ensure!(
        list.status == 200,
        "GET /api/v1/photos answered {}: {}",
        list.status,
        list.text()
    );
    let listed = list.json();
    let items = listed
        .as_array()
        .context("/api/v1/photos is not a JSON array")?;
    // The photo with the most faces: its page and decisions do the most work.
    let asset = items
        .iter()
        .max_by_key(|item| item["asset"]["faces"].as_u64().unwrap_or(0))
        .and_then(|item| item["asset"]["id"].as_str())
        .context("/api/v1/photos lists no photo")?
        .to_owned();
    name_a_face(&env, &asset);
    println!(
        "console_load: {} photos listed; the load uses {asset}",
        items.len()
    );

    // Every route once, before the load: a route that fails is named here.
    for (label, path) in ROUTES {
        let path = path.replace("{id}", &asset);
        let t = Instant::now();
        let reply = console.get(&path);
        ensure!(
            (200..300).contains(&reply.status),
            "{label}: GET {path} answered {} before the load: {}",
            reply.status,
            reply.text().chars().take(300).collect::<String>()
        );
        println!(
            "console_load: warm-up {label:<14} {:>8.2} ms  {}",
            ms(t.elapsed()),
            short(&path, &asset)
        );
    }

    let (ready_before, quarantined_before) = catalogue(&console)?;

    // ---- the load -----------------------------------------------------------------
    let stop = AtomicBool::new(false);
    let dropped = AtomicU64::new(0);
    let probe_samples: Mutex<Vec<(usize, Duration, u16)>> = Mutex::new(Vec::new());
    let wrk_args: Vec<String> = vec![
        format!("-t{threads}"),
        format!("-c{connections}"),
        format!("-d{secs}s"),
        "--latency".into(),
        "--timeout".into(),
        "10s".into(),
        "-s".into(),
        script.display().to_string(),
        format!("{url}/"),
    ];
    println!(
        "console_load: wrk {} (target {rate} req/s for {secs} s; a photo dropped every {} ms; {} CPUs shared by daemon, wrk and this process)",
        wrk_args.join(" "),
        drop_every.as_millis(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let (wrk_output, wrk_wall) = std::thread::scope(|scope| {
        if !drop_every.is_zero() {
            scope.spawn(|| {
                let mut n = 1000;
                while !stop.load(Ordering::Relaxed) {
                    let (name, bytes) = photo(&photos, n);
                    env.drop_file(&format!("load/{n:05}-{name}"), &bytes);
                    dropped.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                    sleep_unless(&stop, drop_every);
                }
            });
        }
        scope.spawn(|| {
            let mut probe = Console::new(&url, &cert);
            probe.cookie = Some(cookie.clone());
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let route = i % ROUTES.len();
                let path = ROUTES[route].1.replace("{id}", &asset);
                let t = Instant::now();
                let reply = probe.get(&path);
                probe_samples
                    .lock()
                    .unwrap()
                    .push((route, t.elapsed(), reply.status));
                i += 1;
                sleep_unless(&stop, PROBE_EVERY.saturating_sub(t.elapsed()));
            }
        });
        let t = Instant::now();
        let output = Command::new("wrk")
            .args(&wrk_args)
            .env("CONSOLE_LOAD_COOKIE", &cookie)
            .env("CONSOLE_LOAD_ASSET", &asset)
            .env("CONSOLE_LOAD_RATE", rate.to_string())
            .env("CONSOLE_LOAD_THREADS", threads.to_string())
            .env_remove("CONSOLE_LOAD_PATHS")
            .stdin(Stdio::null())
            .output();
        let wall = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        (output, wall)
    });
    let wrk_output = wrk_output.context("run wrk")?;
    let (ready_after, quarantined_after) = catalogue(&console)?;
    daemon.assert_alive();
    let status = console.get("/api/v1/status");
    let queue_left = if status.status == 200 {
        status.json()["queue"]["depth"].as_u64().unwrap_or(0)
    } else {
        0
    };

    let stdout = String::from_utf8_lossy(&wrk_output.stdout);
    let stderr = String::from_utf8_lossy(&wrk_output.stderr);
    println!("---- wrk ----\n{}{}", stdout, stderr);
    ensure!(
        wrk_output.status.success(),
        "wrk exited with {} after {:.1} s",
        wrk_output.status,
        wrk_wall.as_secs_f64()
    );
    let figures = Figures::parse(&stdout)
        .context("wrk printed no CONSOLE_LOAD line (is the script's done() running?)")?;
    let samples = probe_samples.into_inner().unwrap();
    print_probe(&samples, &asset);

    // ---- summary ------------------------------------------------------------------
    let dropped = dropped.load(Ordering::Relaxed);
    let ingested = ready_after.saturating_sub(ready_before);
    let quarantined = quarantined_after.saturating_sub(quarantined_before);
    let socket_errors =
        figures.get("connect_errors") + figures.get("read_errors") + figures.get("write_errors");
    let timeouts = figures.get("timeouts");
    let non2xx = figures.get("non2xx");
    let probe_bad = samples
        .iter()
        .filter(|(_, _, s)| !(200..300).contains(s))
        .count();
    let p99 = figures.get("p99_ms");
    let achieved = figures.get("rate");
    let rate_reached = achieved >= 0.95 * rate as f64;
    let p99_met = p99 < P99_TARGET_MS;
    println!("---- console load: summary ----");
    println!(
        "target          {rate} req/s for {secs} s (wrk -t{threads} -c{connections}, paced by delay())"
    );
    println!(
        "requests        {:.0} in {:.2} s",
        figures.get("requests"),
        figures.get("duration_s")
    );
    println!(
        "achieved rate   {achieved:.1} req/s{} (+ probe {:.1} req/s)",
        if rate_reached {
            ""
        } else {
            "  ** below the target **"
        },
        samples.len() as f64 / wrk_wall.as_secs_f64()
    );
    println!("latency p50     {:.2} ms", figures.get("p50_ms"));
    println!("latency p90     {:.2} ms", figures.get("p90_ms"));
    println!("latency p99     {p99:.2} ms");
    println!(
        "latency max     {:.2} ms (mean {:.2} ms)",
        figures.get("max_ms"),
        figures.get("mean_ms")
    );
    println!(
        "pacing lag max  {:.1} ms (a slot sent late because every connection was busy)",
        figures.get("lag_max_ms")
    );
    println!(
        "errors          {non2xx:.0} non-2xx ({}), {socket_errors:.0} socket errors, {timeouts:.0} timeouts; probe: {probe_bad} non-2xx",
        figures.text("statuses")
    );
    println!(
        "ingest          {ingested} photos ingested during the run ({quarantined} quarantined; {dropped} dropped, {queue_left} still queued)"
    );
    println!(
        "p99 < {P99_TARGET_MS:.0} ms    {}",
        if p99_met { "yes" } else { "NO" }
    );
    if let Some(bad) = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CONSOLE_LOAD_FIRST_BAD "))
    {
        println!("first non-2xx   {bad}");
    }

    let mut ok = true;
    if non2xx > 0.0 || socket_errors > 0.0 || timeouts > 0.0 || probe_bad > 0 {
        eprintln!(
            "console_load: FAILED: responses that are not 2xx, socket errors or timeouts (see above)"
        );
        ok = false;
    }
    if enforce && !(p99_met && rate_reached) {
        eprintln!(
            "console_load: FAILED (CONSOLE_LOAD_ENFORCE=1): p99 {p99:.1} ms, rate {achieved:.1} req/s"
        );
        ok = false;
    }
    daemon.stop();
    Ok(ok)
}

/// Builds the daemon's binaries in this benchmark's profile: `Env::start`
/// runs them from beside this executable, and a stale `consentryd` would
/// measure an older console.
fn build_binaries() -> anyhow::Result<()> {
    if std::env::var("CONSOLE_LOAD_NO_BUILD").as_deref() == Ok("1") {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("this benchmark's profile directory")?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(["build", "-p", "consentry-daemon", "--bins"]);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    println!("console_load: building the daemon's binaries ({profile}) …");
    let status = command.status().context("run cargo build")?;
    ensure!(
        status.success(),
        "cargo build of the daemon's binaries failed ({status})"
    );
    Ok(())
}

/// The JPEGs of the shared test data's identities, in turn across identities
/// (empty without the test data).
fn jpeg_photos() -> Vec<(String, Vec<u8>)> {
    let Some(data) = testdata() else {
        return Vec::new();
    };
    let root = data.join("faces/identities");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    let per_identity: Vec<Vec<PathBuf>> = dirs
        .iter()
        .map(|d| {
            files_under(d)
                .into_iter()
                .filter(|f| f.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
                .map(|f| d.join(f))
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    for round in 0.. {
        let mut any = false;
        for files in &per_identity {
            if let Some(path) = files.get(round) {
                any = true;
                let name = format!(
                    "{}-{}",
                    path.parent()
                        .and_then(Path::file_name)
                        .unwrap_or_default()
                        .to_string_lossy(),
                    path.file_name().unwrap_or_default().to_string_lossy()
                );
                if let Ok(bytes) = std::fs::read(path) {
                    out.push((name, bytes));
                }
            }
        }
        if !any {
            break;
        }
    }
    out
}

/// Photo number `n`: a real photo made unique by a JPEG comment segment after
/// the start-of-image marker (same pixels, a new asset), or a synthetic one.
fn photo(photos: &[(String, Vec<u8>)], n: u64) -> (String, Vec<u8>) {
    if photos.is_empty() {
        return (format!("synthetic-{n}.jpg"), synthetic_jpeg(n, 800, 600));
    }
    let (name, bytes) = &photos[(n as usize) % photos.len()];
    let comment = format!("consentry console load {n}");
    let mut out = Vec::with_capacity(bytes.len() + comment.len() + 4);
    out.extend_from_slice(&bytes[..2]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(
        &u16::try_from(comment.len() + 2)
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(comment.as_bytes());
    out.extend_from_slice(&bytes[2..]);
    (name.clone(), out)
}

/// Confirms the first face of `asset` as a person with a consent, so that the
/// photo page and the decisions have a named face and a consent to weigh.
/// Best effort: the load runs on an unnamed photo if this does not work.
fn name_a_face(env: &Env, asset: &str) {
    let shown = env.cli(&["assets", "show", asset, "--json"]);
    let first_face = String::from_utf8_lossy(&shown.stdout)
        .lines()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["faces"].get(0).map(|f| f["no"].to_string()));
    let Some(no) = first_face else {
        println!("console_load: {asset} has no face; the load runs on a photo without one");
        return;
    };
    let added = env.cli(&[
        "people",
        "add",
        "Load Example",
        "--face",
        &format!("{asset}:{no}"),
        "--json",
    ]);
    let person = String::from_utf8_lossy(&added.stdout)
        .lines()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["person"]["id"].as_str().map(str::to_owned));
    let Some(person) = person else {
        println!(
            "console_load: naming a face failed: {}",
            String::from_utf8_lossy(&added.stderr).trim()
        );
        return;
    };
    let consent = env.cli(&[
        "consent",
        "add",
        &person,
        "--purpose",
        "website",
        "--signed-on",
        "2026-01-05",
        "--json",
    ]);
    if !consent.status.success() {
        println!(
            "console_load: recording a consent failed: {}",
            String::from_utf8_lossy(&consent.stderr).trim()
        );
    }
}

/// Photos ready and quarantined, from `/api/v1/status`.
fn catalogue(console: &Console) -> anyhow::Result<(u64, u64)> {
    let reply = console.get("/api/v1/status");
    ensure!(
        reply.status == 200,
        "GET /api/v1/status answered {}",
        reply.status
    );
    let assets = &reply.json()["assets"];
    Ok((
        assets["ready"].as_u64().unwrap_or(0),
        assets["quarantined"].as_u64().unwrap_or(0),
    ))
}

fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `CONSOLE_LOAD key=value …` line of the script's `done()`.
struct Figures(Vec<(String, String)>);

impl Figures {
    fn parse(stdout: &str) -> Option<Figures> {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("CONSOLE_LOAD "))?;
        Some(Figures(
            line.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ))
    }

    fn text(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or("-", |(_, v)| v.as_str())
    }

    fn get(&self, key: &str) -> f64 {
        self.text(key).parse().unwrap_or(f64::NAN)
    }
}

/// Per-route latency as the probe saw it during the load, slowest first.
fn print_probe(samples: &[(usize, Duration, u16)], asset: &str) {
    println!(
        "---- per route, during the load (probe: one request every {} ms, in turn) ----",
        PROBE_EVERY.as_millis()
    );
    println!(
        "{:<14} {:>5} {:>9} {:>9} {:>9} {:>6}  path",
        "route", "n", "p50 ms", "p90 ms", "max ms", "!2xx"
    );
    let mut rows: Vec<(usize, Vec<f64>, usize)> = (0..ROUTES.len())
        .map(|route| {
            let mut times: Vec<f64> = samples
                .iter()
                .filter(|(r, _, _)| *r == route)
                .map(|(_, d, _)| ms(*d))
                .collect();
            times.sort_by(f64::total_cmp);
            let bad = samples
                .iter()
                .filter(|(r, _, s)| *r == route && !(200..300).contains(s))
                .count();
            (route, times, bad)
        })
        .collect();
    rows.sort_by(|a, b| percentile(&b.1, 50.0).total_cmp(&percentile(&a.1, 50.0)));
    for (route, times, bad) in rows {
        let (label, path) = ROUTES[route];
        println!(
            "{label:<14} {:>5} {:>9.2} {:>9.2} {:>9.2} {bad:>6}  {}",
            times.len(),
            percentile(&times, 50.0),
            percentile(&times, 90.0),
            times.last().copied().unwrap_or(f64::NAN),
            short(path, asset)
        );
    }
}

/// `path` with its `{id}` (or the asset id) shortened, for the tables.
fn short(path: &str, asset: &str) -> String {
    let id: String = asset.chars().take(8).collect();
    path.replace("{id}", asset)
        .replace(asset, &format!("{id}…"))
}

/// Nearest-rank percentile of sorted values (NaN when empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
