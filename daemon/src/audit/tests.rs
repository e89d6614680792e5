//! The chain against a real sled store on disk, and an attacker below it:
//! each tampering is found and the first bad sequence number named.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::{AuditConfig, StoreConfig};
use crate::pipeline::store::crypto;

struct Fixture {
    dir: tempfile::TempDir,
    audit: Audit,
}

fn fixture(checkpoint_every: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    crypto::generate_key_file(&key_file).unwrap();
    let config = StoreConfig {
        data_dir: dir.path().join("data"),
        master_key_file: key_file,
        flush_every: Duration::from_millis(100),
        ..StoreConfig::default()
    };
    let (store, _) = Store::open(&config).unwrap();
    let audit = Audit::open(
        Arc::new(store),
        &AuditConfig {
            signing_key_file: dir.path().join("keys/audit-signing.key"),
            checkpoint_every,
            checkpoint_interval: Duration::from_secs(3600),
        },
    )
    .unwrap();
    Fixture { dir, audit }
}

fn alice() -> Actor {
    Actor {
        name: "alice".into(),
        via: "cli".into(),
    }
}

fn fill(f: &Fixture, n: u64) {
    for i in 0..n {
        f.audit
            .record(
                &alice(),
                Outcome::Ok,
                Entry::new("asset.view", format!("asset:{i:064x}")).with("i", i),
            )
            .unwrap();
    }
}

fn first_bad(f: &Fixture) -> Option<u64> {
    let report = f.audit.verify(&[]).unwrap();
    assert_eq!(report.ok, report.first_bad_seq.is_none());
    report.first_bad_seq
}

#[test]
fn an_untouched_chain_verifies_and_links_every_event() {
    let f = fixture(4);
    fill(&f, 10);
    let report = f.audit.verify(&[]).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.events, report.last_seq), (10, 10));
    assert_eq!(report.checkpoints, 2, "checkpoints at 4 and 8");
    assert_eq!(report.checkpointed_seq, 8);
    let events = f.audit.events_since(0).unwrap();
    assert_eq!(events[0].prev, GENESIS);
    for pair in events.windows(2) {
        assert_eq!(pair[1].prev, pair[0].hash);
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    // The key file is private and outside the data directory.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(f.dir.path().join("keys/audit-signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn one_changed_byte_is_found() {
    let f = fixture(100);
    fill(&f, 8);
    let t = f.audit.store().audit_tamper();
    let mut raw = t.raw(5);
    let mid = raw.len() / 2;
    raw[mid] ^= 0x01;
    t.put_raw(5, &raw);
    assert_eq!(first_bad(&f), Some(5));
}

#[test]
fn an_edit_resealed_with_the_master_key_is_found_by_the_hash() {
    let f = fixture(100);
    fill(&f, 8);
    let t = f.audit.store().audit_tamper();
    let mut event: Event = t.open(3);
    event.actor = "mallory".into();
    t.reseal(3, &event);
    assert_eq!(first_bad(&f), Some(3));
    // Recomputing its hash moves the break to the next link.
    event.hash = event.compute_hash();
    t.reseal(3, &event);
    assert_eq!(first_bad(&f), Some(4));
}

#[test]
fn a_deleted_event_is_found() {
    let f = fixture(100);
    fill(&f, 8);
    f.audit.store().audit_tamper().remove(6);
    let report = f.audit.verify(&[]).unwrap();
    assert_eq!(report.first_bad_seq, Some(6));
    assert!(report.problem.unwrap().contains("missing"));
}

#[test]
fn two_swapped_events_are_found() {
    let f = fixture(100);
    fill(&f, 8);
    let t = f.audit.store().audit_tamper();
    let (a, b) = (t.raw(4), t.raw(5));
    t.put_raw(4, &b);
    t.put_raw(5, &a);
    assert_eq!(first_bad(&f), Some(4));
    // Also when re-sealed under their new places by someone with the master key.
    let (e4, e5): (Event, Event) = {
        t.put_raw(4, &a);
        t.put_raw(5, &b);
        (t.open(4), t.open(5))
    };
    t.reseal(4, &e5);
    t.reseal(5, &e4);
    assert_eq!(first_bad(&f), Some(4));
}

#[test]
fn a_tail_cut_after_a_checkpoint_is_found() {
    let f = fixture(5);
    fill(&f, 12);
    let t = f.audit.store().audit_tamper();
    // The attacker removes events 8..=12 and even rewrites the head.
    let event7: Event = t.open(7);
    for seq in 8..=12 {
        t.remove(seq);
    }
    t.set_head(7, &event7.hash);
    // The checkpoint at 10 is signed: the cut is found at 8.
    let report = f.audit.verify(&[]).unwrap();
    assert_eq!(report.first_bad_seq, Some(8), "{report:?}");
    assert!(report.problem.unwrap().contains("cut off"));
}

#[test]
fn a_tail_cut_without_touching_the_head_is_found() {
    let f = fixture(100);
    fill(&f, 6);
    let t = f.audit.store().audit_tamper();
    t.remove(6);
    t.remove(5);
    assert_eq!(first_bad(&f), Some(5));
}

#[test]
fn a_rewritten_log_fails_against_checkpoints_a_third_party_kept() {
    let f = fixture(100);
    fill(&f, 6);
    let kept = f.audit.checkpoint().unwrap().unwrap();
    assert_eq!(kept.seq, 6);
    assert!(kept.signed_by(&f.audit.public_key()));
    // Someone with the master key rewrites event 2 and re-chains everything
    // after it, including the head, and drops the stored checkpoints.
    let t = f.audit.store().audit_tamper();
    let mut prev = t.open::<Event>(1).hash;
    for seq in 2..=6 {
        let mut e: Event = t.open(seq);
        if seq == 2 {
            e.object = "asset:forged".into();
        }
        e.prev = prev.clone();
        e.hash = e.compute_hash();
        prev = e.hash.clone();
        t.reseal(seq, &e);
    }
    t.set_head(6, &prev);
    // Stored checkpoint still catches it (it is signed, the attacker has no key).
    assert_eq!(first_bad(&f), Some(6));
    // And so does the copy the DPO kept, given separately.
    let report = f.audit.verify(std::slice::from_ref(&kept)).unwrap();
    assert_eq!(report.first_bad_seq, Some(6));
    // A forged checkpoint (not signed by the audit key) is refused.
    let mut forged = kept.clone();
    forged.hash = prev;
    assert!(!forged.signed_by(&f.audit.public_key()));
}

#[test]
fn the_chain_continues_after_reopening() {
    let dir;
    let key_file;
    {
        let f = fixture(100);
        fill(&f, 3);
        dir = f.dir;
        key_file = dir.path().join("keys/audit-signing.key");
    }
    let config = StoreConfig {
        data_dir: dir.path().join("data"),
        master_key_file: dir.path().join("master.key"),
        ..StoreConfig::default()
    };
    let (store, _) = Store::open(&config).unwrap();
    let audit = Audit::open(
        Arc::new(store),
        &AuditConfig {
            signing_key_file: key_file,
            checkpoint_every: 100,
            checkpoint_interval: Duration::from_secs(3600),
        },
    )
    .unwrap();
    let e = audit
        .record(
            &alice(),
            Outcome::Refused,
            Entry::new("asset.download", "asset:x"),
        )
        .unwrap();
    assert_eq!(e.seq, 4);
    assert!(audit.verify(&[]).unwrap().ok);
}

#[test]
fn csv_quotes_what_needs_quoting() {
    assert_eq!(csv_field("plain"), "plain");
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
}

#[test]
fn a_checkpoint_is_signed_when_the_interval_passed_and_events_arrived() {
    let f = fixture(1000);
    let hour = Duration::from_secs(3600);
    let now = crate::clock::now_ms();
    assert!(
        f.audit.checkpoint_if_due(now, hour).unwrap().is_none(),
        "no events yet"
    );
    fill(&f, 3);
    // The first checkpoint is due at once (none was ever signed).
    let cp = f.audit.checkpoint_if_due(now, hour).unwrap().unwrap();
    assert_eq!(cp.seq, 3);
    fill(&f, 2);
    assert!(
        f.audit
            .checkpoint_if_due(now + 60_000, hour)
            .unwrap()
            .is_none(),
        "within the hour"
    );
    let cp = f
        .audit
        .checkpoint_if_due(cp.at_ms + 3_600_000, hour)
        .unwrap()
        .unwrap();
    assert_eq!(cp.seq, 5);
    assert!(
        f.audit
            .checkpoint_if_due(cp.at_ms + 7_200_000, hour)
            .unwrap()
            .is_none(),
        "nothing new"
    );
}
