//! One suite against the store facade: keys, assets, dedupe, queue, export.

use std::time::Duration;

use super::crypto::{self, SecretKey};
use super::jobs::JobId;
use super::*;
use crate::config::StoreConfig;
use crate::domain::{Asset, AssetId, AssetStatus, SourceRef};

struct Fixture {
    _dir: tempfile::TempDir,
    config: StoreConfig,
    store: Store,
}

fn fixture() -> Fixture {
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
    Fixture {
        _dir: dir,
        config,
        store,
    }
}

fn source(path: &str) -> SourceRef {
    SourceRef {
        collection: "press".into(),
        path: path.into(),
        size: 3,
        mtime_ms: 1000,
        ingested_at_ms: 2000,
    }
}

fn asset(store: &Store, bytes: &[u8], path: &str) -> Asset {
    let id = AssetId::of_bytes(bytes);
    let (data_key, key) = store.keys().new_data_key(id.as_str()).unwrap();
    let original = store.blobs().put(&data_key, bytes).unwrap();
    Asset {
        id,
        status: AssetStatus::Ready,
        collection: "press".into(),
        sources: vec![source(path)],
        bytes: bytes.len() as u64,
        format: Some("JPEG".into()),
        mime: Some("image/jpeg".into()),
        width: Some(1),
        height: Some(1),
        metadata: Default::default(),
        original: Some(original),
        sidecar: None,
        thumbnails: vec![],
        key,
        quarantine: None,
        faces: Vec::new(),
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

#[test]
fn wrong_key_is_refused_before_anything_is_touched() {
    let fx = fixture();
    let record = asset(&fx.store, b"abc", "a.jpg");
    fx.store.commit_asset(&record, None).unwrap();
    drop(fx.store);
    let listing = |dir: &std::path::Path| {
        let mut entries: Vec<_> = walk(dir)
            .into_iter()
            .map(|p| (p.clone(), std::fs::metadata(&p).unwrap().len()))
            .collect();
        entries.sort();
        entries
    };
    let before = listing(&fx.config.data_dir);
    let err = Store::open_with_key(&fx.config, SecretKey::random().unwrap(), "test key")
        .err()
        .expect("must fail");
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
    assert_eq!(
        listing(&fx.config.data_dir),
        before,
        "a refused start changes nothing"
    );
    // And the right key still opens it.
    let (store, _) = Store::open(&fx.config).unwrap();
    assert_eq!(store.asset(&record.id).unwrap().unwrap(), record);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

#[test]
fn duplicate_bytes_become_a_second_source_and_redo_is_idempotent() {
    let fx = fixture();
    let first = asset(&fx.store, b"same", "a.jpg");
    assert_eq!(
        fx.store.commit_asset(&first, None).unwrap(),
        CommitOutcome::Created
    );
    assert_eq!(
        fx.store.commit_asset(&first, None).unwrap(),
        CommitOutcome::AlreadyCommitted
    );
    let outcome = fx
        .store
        .add_source_if_known(&first.id, &source("b.jpg"), None)
        .unwrap();
    assert_eq!(outcome, Some(CommitOutcome::AddedSource));
    let stored = fx.store.asset(&first.id).unwrap().unwrap();
    assert_eq!(
        stored
            .sources
            .iter()
            .map(|s| s.path.as_str())
            .collect::<Vec<_>>(),
        ["a.jpg", "b.jpg"]
    );
    assert_eq!(
        fx.store.asset_for_source(&source("b.jpg")).unwrap(),
        Some(first.id.clone())
    );
    assert_eq!(
        fx.store
            .add_source_if_known(&AssetId::of_bytes(b"other"), &source("c.jpg"), None)
            .unwrap(),
        None
    );
    assert_eq!(fx.store.asset_count(), 1);
}

#[test]
fn blobs_round_trip_and_orphans_are_removed() {
    let fx = fixture();
    let record = asset(&fx.store, b"photo bytes", "a.jpg");
    fx.store.commit_asset(&record, None).unwrap();
    let (orphan_key, _) = fx.store.keys().new_data_key("x").unwrap();
    let orphan = fx
        .store
        .blobs()
        .put(&orphan_key, b"never committed")
        .unwrap();
    assert_eq!(
        fx.store
            .read_blob(&record, record.original.as_ref().unwrap())
            .unwrap(),
        b"photo bytes"
    );
    assert_eq!(fx.store.remove_orphan_blobs().unwrap(), 1);
    assert!(fx.store.blobs().get(&orphan_key, &orphan).is_err());
    assert_eq!(
        fx.store
            .read_blob(&record, record.original.as_ref().unwrap())
            .unwrap(),
        b"photo bytes"
    );
}

#[test]
fn records_hold_no_plaintext() {
    let fx = fixture();
    let mut record = asset(&fx.store, b"x", "Anna Beispiel consent form.jpg");
    record.collection = "paediatrics-ward".into();
    fx.store.commit_asset(&record, None).unwrap();
    fx.store
        .push_job(
            &[b"paediatrics-ward", b"Anna.jpg"],
            &"Anna Beispiel queued job",
        )
        .unwrap();
    fx.store.flush().unwrap();
    for path in walk(&fx.config.data_dir) {
        let bytes = std::fs::read(&path).unwrap();
        for needle in [&b"Anna Beispiel"[..], b"paediatrics-ward"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds plaintext",
                path.display()
            );
        }
    }
}

#[test]
fn queue_claims_once_retries_and_takes_over_dead_leases() {
    let fx = fixture();
    let store = &fx.store;
    let a = store
        .push_job(&[b"c", b"a"], &"job a".to_owned())
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .push_job(&[b"c", b"a"], &"job a again".to_owned())
            .unwrap(),
        None,
        "one job per source"
    );
    let b = store
        .push_job(&[b"c", b"b"], &"job b".to_owned())
        .unwrap()
        .unwrap();
    let (boot, lease_ms) = (1, 10_000);

    let first = store
        .claim_job::<String>(boot, "w1", lease_ms, 100)
        .unwrap()
        .unwrap();
    assert_eq!((first.id, first.job.as_str()), (a, "job a"), "FIFO");
    let second = store
        .claim_job::<String>(boot, "w2", lease_ms, 100)
        .unwrap()
        .unwrap();
    assert_eq!(second.id, b);
    assert!(
        store
            .claim_job::<String>(boot, "w3", lease_ms, 100)
            .unwrap()
            .is_none(),
        "both are leased"
    );

    // A failed attempt comes back after its backoff, with its error.
    store
        .retry_job::<String>(a, 5_000, true, Some("disk hiccup"))
        .unwrap();
    assert!(
        store
            .claim_job::<String>(boot, "w3", lease_ms, 4_999)
            .unwrap()
            .is_none()
    );
    let again = store
        .claim_job::<String>(boot, "w3", lease_ms, 5_000)
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.id, again.state.attempts, again.last_error.as_deref()),
        (a, 1, Some("disk hiccup"))
    );

    // A stale heartbeat in the same run is dead after the lease.
    assert!(store.heartbeat(b, boot, 6_000).unwrap());
    assert!(
        store
            .claim_job::<String>(boot, "w4", lease_ms, 15_000)
            .unwrap()
            .is_none()
    );
    let stale = store
        .claim_job::<String>(boot, "w4", lease_ms, 15_001)
        .unwrap()
        .unwrap();
    assert_eq!((stale.id, stale.state.interrupted), (a, 1));
    // Every lease from an earlier run of the daemon is dead at once.
    let taken_over = store
        .claim_job::<String>(2, "w5", lease_ms, 15_002)
        .unwrap()
        .unwrap();
    assert_eq!((taken_over.id, taken_over.state.interrupted), (a, 2));
    let taken_over = store
        .claim_job::<String>(2, "w6", lease_ms, 15_002)
        .unwrap()
        .unwrap();
    assert_eq!((taken_over.id, taken_over.state.interrupted), (b, 1));
    assert!(
        !store.heartbeat(b, boot, 15_003).unwrap(),
        "b's lease belongs to run 2 now"
    );

    store.finish_job(a).unwrap();
    store.finish_job(b).unwrap();
    assert_eq!(store.queue_summary(0).unwrap().total, 0);
    assert!(
        store
            .push_job(&[b"c", b"a"], &"job a, later".to_owned())
            .unwrap()
            .is_some(),
        "a finished source can be queued again"
    );
}

#[test]
fn commit_marks_the_job_and_survives_reopen() {
    let fx = fixture();
    let job = fx
        .store
        .push_job(&[b"press", b"a.jpg"], &"job".to_owned())
        .unwrap()
        .unwrap();
    let record = asset(&fx.store, b"bytes", "a.jpg");
    fx.store.commit_asset(&record, Some(job)).unwrap();
    drop(fx.store);
    let (store, _) = Store::open(&fx.config).unwrap();
    let claimed = store.claim_job::<String>(9, "w", 1000, 1).unwrap().unwrap();
    assert!(
        claimed.state.committed,
        "after a crash only the post-action is left"
    );
    assert_eq!(claimed.id, JobId(job.0));
    assert!(store.asset(&record.id).unwrap().is_some());
}

#[test]
fn export_import_round_trip() {
    let fx = fixture();
    let one = asset(&fx.store, b"one", "1.jpg");
    let two = asset(&fx.store, b"two", "2.jpg");
    fx.store.commit_asset(&one, None).unwrap();
    fx.store.commit_asset(&two, None).unwrap();
    let mut exported = Vec::new();
    assert_eq!(fx.store.export(&mut exported).unwrap(), 2);

    // Same key, a new data directory (an engine migration).
    let mut config = fx.config.clone();
    config.data_dir = fx._dir.path().join("migrated");
    let (target, _) = Store::open(&config).unwrap();
    assert_eq!(target.import(&mut exported.as_slice()).unwrap(), 2);
    assert_eq!(target.asset(&one.id).unwrap().unwrap(), one);
    assert_eq!(
        target.asset_for_source(&source("2.jpg")).unwrap(),
        Some(two.id.clone())
    );
    assert!(
        matches!(
            target.import(&mut exported.as_slice()),
            Err(StoreError::Import(_))
        ),
        "only into an empty catalogue"
    );
    assert!(matches!(
        target.import(&mut &b"{\"type\":\"other\"}\n"[..]),
        Err(StoreError::Import(_))
    ));
}

#[test]
fn a_second_process_is_told_the_catalogue_is_locked() {
    let fx = fixture();
    let mut config = fx.config.clone();
    config.flush_every = Duration::from_millis(100);
    // sled's lock is per process (fcntl); another open in-process succeeds, so
    // check the message mapping on a child process instead.
    let exe = std::env::current_exe().unwrap();
    if std::env::var_os("CONSENTRY_LOCK_CHILD").is_some() {
        return;
    }
    let status = std::process::Command::new(exe)
        .args([
            "--exact",
            "pipeline::store::tests::lock_child",
            "--nocapture",
        ])
        .env("CONSENTRY_LOCK_CHILD_DATA", &config.data_dir)
        .env("CONSENTRY_LOCK_CHILD_KEY", &config.master_key_file)
        .status()
        .unwrap();
    assert!(status.success(), "the child saw the lock");
    drop(fx.store);
}

#[test]
fn lock_child() {
    let (Some(data), Some(key)) = (
        std::env::var_os("CONSENTRY_LOCK_CHILD_DATA"),
        std::env::var_os("CONSENTRY_LOCK_CHILD_KEY"),
    ) else {
        return;
    };
    let config = StoreConfig {
        data_dir: data.into(),
        master_key_file: key.into(),
        ..StoreConfig::default()
    };
    match Store::open(&config) {
        Err(err @ StoreError::Locked { .. }) => {
            assert!(err.to_string().contains("consentryd running"), "{err}")
        }
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("expected Locked, the catalogue opened twice"),
    }
}

/// An asset with `n` faces whose templates are stored.
fn asset_with_faces(store: &Store, bytes: &[u8], path: &str, n: u32) -> Asset {
    let mut asset = asset(store, bytes, path);
    for no in 0..n {
        asset.faces.push(crate::domain::Face {
            no,
            bbox: crate::domain::FaceBox {
                x: no as f32 * 100.0,
                y: 0.0,
                width: 50.0,
                height: 50.0,
            },
            landmarks: vec![],
            score: 0.9,
            quality: crate::domain::FaceQuality {
                score: 1.0,
                interocular_px: 20.0,
                sharpness: 100.0,
                yaw: 0.0,
                pitch: 0.5,
                roll_deg: 0.0,
            },
            embedding: (0..128)
                .map(|i| (i as f32 + no as f32 * 7.0 + bytes[0] as f32).sin() * 0.2)
                .collect(),
            engine: "test".into(),
            detected_at_ms: 0,
            template: crate::domain::TemplateStatus::Stored,
            attribution: Default::default(),
        });
    }
    asset
}

#[test]
fn purged_templates_cannot_be_opened_with_any_remaining_key() {
    let f = fixture();
    let a = asset_with_faces(&f.store, b"aaa", "a.jpg", 3);
    let b = asset_with_faces(&f.store, b"bbb", "b.jpg", 2);
    f.store.commit_asset(&a, None).unwrap();
    f.store.commit_asset(&b, None).unwrap();
    // Templates never enter the asset record.
    let stored = f.store.asset(&a.id).unwrap().unwrap();
    assert!(stored.faces.iter().all(|face| face.embedding.is_empty()));
    let all: Vec<_> = f.store.face_templates().map(Result::unwrap).collect();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].1.embedding, a.faces[0].embedding);

    let doomed = a.faces[1].face_ref(&a.id);
    let raw = f.store.raw_face_template(&doomed).unwrap();
    assert!(
        f.store.any_key_opens(&doomed, &raw),
        "readable before the purge"
    );
    let slots_before = f.store.template_slot_count();
    assert_eq!(
        f.store
            .purge_templates(std::slice::from_ref(&doomed), &[])
            .unwrap(),
        1
    );
    assert!(f.store.raw_face_template(&doomed).is_none());
    assert!(
        !f.store.any_key_opens(&doomed, &raw),
        "no key that remains opens the purged template"
    );
    assert_eq!(
        f.store.template_slot_count(),
        slots_before,
        "one slot replaced by one"
    );
    // The survivors of the slot were re-encrypted and still read back.
    let survivors: Vec<_> = f.store.face_templates().map(Result::unwrap).collect();
    assert_eq!(survivors.len(), 4);
    assert!(survivors.iter().all(|(r, _)| *r != doomed));
    let b0 = b.faces[0].face_ref(&b.id);
    assert_eq!(
        f.store.face_template(&b0).unwrap().unwrap().embedding,
        b.faces[0].embedding
    );

    // And after a reopen (the key file is the only key store).
    let config = f.config.clone();
    drop(f.store);
    let (store, _) = Store::open(&config).unwrap();
    assert_eq!(store.face_templates().count(), 4);
    assert_eq!(
        store.face_template(&b0).unwrap().unwrap().embedding,
        b.faces[0].embedding
    );
    assert!(store.face_template(&doomed).unwrap().is_none());
}

#[test]
fn a_missing_template_key_file_is_refused() {
    let f = fixture();
    f.store
        .commit_asset(&asset_with_faces(&f.store, b"ccc", "c.jpg", 1), None)
        .unwrap();
    let config = f.config.clone();
    drop(f.store);
    std::fs::remove_file(config.data_dir.join("template-keys")).unwrap();
    let err = Store::open(&config).err().expect("refused").to_string();
    assert!(err.contains("template-keys is missing"), "{err}");
}
