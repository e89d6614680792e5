//! Audit trail speed on a real sled store on disk: appending events (the cost
//! every audited request pays before its answer leaves), verifying the whole
//! chain, exporting it, and signing a checkpoint.
//!
//! Run: `cargo bench -p consentry-daemon --bench audit`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use consentry::audit::{Actor, Audit, Entry, Outcome};
use consentry::config::{AuditConfig, StoreConfig};
use consentry::pipeline::store::{Store, crypto};

const EVENTS: u64 = 50_000;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    crypto::generate_key_file(&key_file).unwrap();
    let config = StoreConfig {
        data_dir: dir.path().join("data"),
        master_key_file: key_file,
        flush_every: Duration::from_millis(500),
        ..StoreConfig::default()
    };
    let (store, _) = Store::open(&config).unwrap();
    let audit = Audit::open(
        Arc::new(store),
        &AuditConfig {
            signing_key_file: dir.path().join("audit-signing.key"),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(3600),
        },
    )
    .unwrap();
    let actor = Actor {
        name: "editor".into(),
        via: "socket".into(),
    };

    let mut latencies = Vec::with_capacity(EVENTS as usize);
    let started = Instant::now();
    for i in 0..EVENTS {
        let t = Instant::now();
        audit
            .record(
                &actor,
                Outcome::Ok,
                Entry::new("asset.view", format!("asset:{:064x}", i * 7919))
                    .with("purpose", "website"),
            )
            .unwrap();
        latencies.push(t.elapsed());
    }
    let append = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "append: {EVENTS} events in {:.2} s = {:.0} events/s; p50 {:.1} µs, p99 {:.1} µs, max {:.1} ms (checkpoint every 1000, incl. its flush)",
        append.as_secs_f64(),
        EVENTS as f64 / append.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );

    let t = Instant::now();
    let report = audit.verify(&[]).unwrap();
    let verify = t.elapsed();
    assert!(report.ok && report.last_seq == EVENTS, "{report:?}");
    println!(
        "verify: {} events, {} checkpoints in {:.2} s = {:.0} events/s",
        report.events,
        report.checkpoints,
        verify.as_secs_f64(),
        report.events as f64 / verify.as_secs_f64()
    );

    let t = Instant::now();
    let events = audit.events_since(0).unwrap();
    let rows: usize = events.iter().map(|e| e.csv_row().len()).sum();
    let export = t.elapsed();
    println!(
        "export: {} events ({:.1} MB as CSV) in {:.2} s",
        events.len(),
        rows as f64 / 1e6,
        export.as_secs_f64()
    );

    let t = Instant::now();
    let n = 200;
    for i in 0..n {
        audit
            .record(
                &actor,
                Outcome::Ok,
                Entry::new("asset.view", format!("asset:{i}")),
            )
            .unwrap();
        audit.checkpoint().unwrap();
    }
    println!(
        "checkpoint (Ed25519 sign + sled flush): {:.2} ms each",
        t.elapsed().as_secs_f64() * 1e3 / f64::from(n)
    );
}
