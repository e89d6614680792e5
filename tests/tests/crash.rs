//! Crash safety: 1,000 files dropped while the daemon is killed with SIGKILL at
//! random moments and restarted. In the end every file is exactly one ready
//! asset with one source; at every kill, no file that left the share lacks a
//! durable asset.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use consentry::config::Config;
use consentry::domain::AssetStatus;
use consentry::pipeline::store::Store;
use consentry_tests::{Env, Rng, blake3_hex, files_under, synthetic_jpeg};

const N_FILES: usize = 1000;
const ROUNDS: usize = 10;

#[test]
fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    let seed = std::env::var("CONSENTRY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        });
    eprintln!("crash test seed {seed} (rerun with CONSENTRY_CRASH_SEED={seed})");
    let mut rng = Rng::new(seed);
    let env = Env::new("delete", "");

    // name → hash of what was dropped.
    let mut dropped: HashMap<String, String> = HashMap::new();
    let files: Vec<(String, Vec<u8>)> = (0..N_FILES)
        .map(|idx| {
            let bytes = synthetic_jpeg(
                seed.wrapping_mul(7919).wrapping_add(idx as u64),
                64 + (idx % 7) as i32,
                48,
            );
            (format!("batch{}/photo_{idx:04}.jpg", idx / 100), bytes)
        })
        .collect();
    let unique: HashSet<String> = files.iter().map(|(_, b)| blake3_hex(b)).collect();
    assert_eq!(unique.len(), N_FILES, "synthetic files must all differ");

    let mut kills = 0;
    let mut kills_mid_ingest = 0;
    let started = Instant::now();
    let batch = N_FILES / ROUNDS;
    for round in 0..ROUNDS {
        let mut daemon = env.start();
        for (name, bytes) in &files[round * batch..(round + 1) * batch] {
            env.drop_file(name, bytes);
            dropped.insert(name.clone(), blake3_hex(bytes));
        }
        let on_share = files_under(&env.share).len();
        if round % 2 == 0 {
            // A random moment from start-up on: recovery, quiet period, ingest.
            std::thread::sleep(Duration::from_millis(rng.below(1500)));
        } else {
            // A random moment while files are being taken (a batch takes ~0.5 s).
            let waiting = Instant::now();
            while files_under(&env.share).len() >= on_share
                && waiting.elapsed() < Duration::from_secs(20)
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(rng.below(100)));
        }
        daemon.assert_alive();
        daemon.kill9();
        kills += 1;
        let left = files_under(&env.share).len();
        if left > 0 && left < on_share {
            kills_mid_ingest += 1;
        }
        eprintln!("kill {kills}: {left} of {on_share} file(s) still on the share");
        assert_no_loss(&env, &dropped);
    }
    assert!(
        kills_mid_ingest >= ROUNDS / 2,
        "too few kills landed while files were in flight ({kills_mid_ingest})"
    );

    // A final, undisturbed run finishes the work.
    let mut daemon = env.start();
    env.wait_drained(&mut daemon, Duration::from_secs(600));
    daemon.stop();
    assert_no_loss(&env, &dropped);

    let config = Config::load(&env.config).unwrap();
    let (store, _) = Store::open(&config.store).unwrap();
    let assets: Vec<_> = store.assets().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        assets.len(),
        N_FILES,
        "one asset per file, none missing, none doubled"
    );
    for asset in &assets {
        assert_eq!(
            asset.status,
            AssetStatus::Ready,
            "{}: {:?}",
            asset.id,
            asset.quarantine
        );
        assert_eq!(
            asset.sources.len(),
            1,
            "{} has sources {:?}",
            asset.id,
            asset.sources
        );
        assert_eq!(
            dropped.get(&asset.sources[0].path),
            Some(&asset.id.0),
            "source path matches content"
        );
        // The stored original decrypts to the dropped bytes.
        let original = store
            .read_blob(asset, asset.original.as_ref().unwrap())
            .unwrap();
        assert_eq!(blake3_hex(&original), asset.id.0);
    }
    assert_eq!(store.queue_summary(0).unwrap().total, 0);
    eprintln!(
        "crash test: {kills} SIGKILLs ({kills_mid_ingest} mid-ingest), {N_FILES} files, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Every dropped file is either still on the share or a durable asset.
fn assert_no_loss(env: &Env, dropped: &HashMap<String, String>) {
    let on_share: HashSet<String> = files_under(&env.share)
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let config = Config::load(&env.config).unwrap();
    let (store, _) = Store::open(&config.store).unwrap();
    for (name, hash) in dropped {
        if on_share.contains(name) {
            continue;
        }
        let id = consentry::domain::AssetId(hash.clone());
        let asset = store
            .asset(&id)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} left the share without a durable asset"));
        assert!(
            asset.sources.iter().any(|s| &s.path == name),
            "{name}'s source reference is missing"
        );
    }
}
