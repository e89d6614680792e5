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

/// Opens the store again after the last handle was dropped; sled's background
/// threads may hold the catalogue's file lock for a moment longer.
fn reopen(config: &StoreConfig) -> Result<Store, StoreError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open(config) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => return other.map(|(store, _)| store),
        }
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
    let data_key = store.asset_key_or_create(&id).unwrap();
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
        key: None,
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
    let store = reopen(&fx.config).unwrap();
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
    let store = reopen(&fx.config).unwrap();
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
    let wrapped = fx.store.wrapped_asset_key(&one.id).unwrap().unwrap();
    assert!(
        !String::from_utf8_lossy(&exported).contains("\"key\""),
        "the dump holds no data keys"
    );
    assert!(!contains(&exported, &wrapped));

    // Without the key files the import is refused, naming the folder.
    let mut bare = fx.config.clone();
    bare.data_dir = fx._dir.path().join("bare");
    let (target, _) = Store::open(&bare).unwrap();
    let err = target
        .import(&mut exported.as_slice())
        .unwrap_err()
        .to_string();
    assert!(err.contains("asset-keys"), "{err}");
    drop(target);

    // Same key, a new data directory (an engine migration): blobs and data
    // keys travel as files.
    let mut config = fx.config.clone();
    config.data_dir = fx._dir.path().join("migrated");
    for folder in ["blobs", "asset-keys"] {
        copy_tree(
            &fx.config.data_dir.join(folder),
            &config.data_dir.join(folder),
        );
    }
    let (target, _) = Store::open(&config).unwrap();
    assert_eq!(target.import(&mut exported.as_slice()).unwrap(), 2);
    assert_eq!(target.asset(&one.id).unwrap().unwrap(), one);
    assert_eq!(
        target
            .read_blob(&one, one.original.as_ref().unwrap())
            .unwrap(),
        b"one"
    );
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
    let store = reopen(&config).unwrap();
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
    let err = reopen(&config).err().expect("refused").to_string();
    assert!(err.contains("template-keys is missing"), "{err}");
}

// ---- asset key store and erasure ---------------------------------------------

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir` (recursively, raw bytes) that holds `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|path| contains(&std::fs::read(path).unwrap(), needle))
        .collect()
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Whether two data keys are the same key (they cannot be compared directly).
fn same_key(a: &SecretKey, b: &SecretKey) -> bool {
    let sealed = crypto::encrypt_blob(a, &[3; 16], b"probe").unwrap();
    crypto::decrypt_blob(b, &[3; 16], &sealed).is_ok()
}

fn bucket_path(config: &StoreConfig, id: &AssetId) -> std::path::PathBuf {
    config.data_dir.join("asset-keys").join(&id.as_str()[..2])
}

#[test]
fn asset_keys_survive_reopen_and_concurrent_creators_get_the_same_key() {
    let fx = fixture();
    let id = AssetId::of_bytes(b"photo");
    assert!(fx.store.asset_key(&id).unwrap().is_none());
    let key = fx.store.asset_key_or_create(&id).unwrap();
    assert!(same_key(&key, &fx.store.asset_key_or_create(&id).unwrap()));
    let wrapped = fx.store.wrapped_asset_key(&id).unwrap().unwrap();
    assert_eq!(wrapped.len(), keystore::WRAPPED_KEY_LEN);
    // The documented format: magic, then raw id ‖ wrapped key.
    let file = std::fs::read(bucket_path(&fx.config, &id)).unwrap();
    let mut expected = b"consentry asset keys v1\n".to_vec();
    expected.extend_from_slice(&id.key_bytes());
    expected.extend_from_slice(&wrapped);
    assert_eq!(file, expected);

    let config = fx.config.clone();
    drop(fx.store);
    let store = reopen(&config).unwrap();
    assert!(same_key(&key, &store.asset_key(&id).unwrap().unwrap()));
    assert_eq!(store.wrapped_asset_key(&id).unwrap().unwrap(), wrapped);

    // Many ingests of the same new bytes at once: one key, one entry.
    let fresh = AssetId::of_bytes(b"dropped twice at once");
    let barrier = std::sync::Barrier::new(8);
    let keys: Vec<SecretKey> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    store.asset_key_or_create(&fresh).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(keys.iter().all(|k| same_key(k, &keys[0])));
    let entries = walk(&config.data_dir.join("asset-keys"))
        .iter()
        .map(|p| (std::fs::metadata(p).unwrap().len() as usize - 24) / keystore::ENTRY_LEN)
        .sum::<usize>();
    assert_eq!(entries, 2, "one entry per asset");
    drop(store);
    let store = reopen(&config).unwrap();
    assert!(same_key(
        &keys[0],
        &store.asset_key(&fresh).unwrap().unwrap()
    ));
}

/// An asset with a sidecar, a thumbnail and `faces` stored templates.
fn full_asset(store: &Store, bytes: &[u8], path: &str, faces: u32) -> Asset {
    let mut record = asset_with_faces(store, bytes, path, faces);
    let key = store.asset_key(&record.id).unwrap().unwrap();
    record.sidecar = Some(store.blobs().put(&key, b"<x:xmpmeta/>").unwrap());
    record.thumbnails.push(crate::domain::Thumbnail {
        size: 256,
        width: 1,
        height: 1,
        mime: "image/jpeg".into(),
        blob: store.blobs().put(&key, b"thumbnail").unwrap(),
    });
    record
}

fn blob_ids(asset: &Asset) -> Vec<String> {
    asset
        .original
        .iter()
        .chain(&asset.sidecar)
        .chain(asset.thumbnails.iter().map(|t| &t.blob))
        .map(|b| b.blob_id.clone())
        .collect()
}

#[test]
fn erasure_leaves_no_key_blob_record_or_template() {
    let fx = fixture();
    let doomed = full_asset(&fx.store, b"erase me", "erase-me.jpg", 3);
    let kept = full_asset(&fx.store, b"keep me", "keep-me.jpg", 2);
    fx.store.commit_asset(&doomed, None).unwrap();
    fx.store.commit_asset(&kept, None).unwrap();
    let data_dir = fx.config.data_dir.clone();

    // Positive controls: the scan finds the wrapped key and the blob files.
    let wrapped = fx.store.wrapped_asset_key(&doomed.id).unwrap().unwrap();
    assert_eq!(
        files_containing(&data_dir, &wrapped),
        [bucket_path(&fx.config, &doomed.id)]
    );
    let names = |dir: &std::path::Path| -> Vec<String> {
        walk(dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let ids = blob_ids(&doomed);
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| names(&data_dir).contains(id)));
    let faces: Vec<_> = doomed
        .faces
        .iter()
        .map(|f| f.face_ref(&doomed.id))
        .collect();
    let raw_templates: Vec<_> = faces
        .iter()
        .map(|f| (f.clone(), fx.store.raw_face_template(f).unwrap()))
        .collect();
    assert!(
        raw_templates
            .iter()
            .all(|(f, raw)| fx.store.any_key_opens(f, raw))
    );

    let outcome = fx.store.erase_asset(&doomed.id, Some("DSR-7")).unwrap();
    assert_eq!(
        outcome,
        erase::EraseOutcome {
            erased: true,
            blobs_deleted: 3,
            templates_purged: 3
        }
    );
    assert!(fx.store.asset(&doomed.id).unwrap().is_none());
    assert!(fx.store.asset_key(&doomed.id).unwrap().is_none());
    assert!(matches!(
        fx.store
            .read_blob(&doomed, doomed.original.as_ref().unwrap()),
        Err(StoreError::NoAssetKey(_))
    ));
    assert_eq!(
        fx.store.asset_for_source(&source("erase-me.jpg")).unwrap(),
        None
    );
    let tombstone = fx.store.tombstone(&doomed.id).unwrap().unwrap();
    assert_eq!(tombstone.asset, doomed.id);
    assert_eq!(tombstone.case.as_deref(), Some("DSR-7"));
    assert!(tombstone.erased_at_ms > 0);
    assert_eq!(
        fx.store.tombstones().unwrap(),
        std::slice::from_ref(&tombstone)
    );
    for (face, raw) in &raw_templates {
        assert!(fx.store.face_template(face).unwrap().is_none());
        assert!(
            !fx.store.any_key_opens(face, raw),
            "no remaining slot key opens an erased template"
        );
    }
    assert!(
        fx.store
            .face_templates()
            .map(Result::unwrap)
            .all(|(f, _)| f.asset != doomed.id)
    );

    // Nothing of it in any file under the data directory.
    fx.store.flush().unwrap();
    assert_eq!(
        files_containing(&data_dir, &wrapped),
        Vec::<std::path::PathBuf>::new(),
        "the wrapped key is in no file"
    );
    let left = names(&data_dir);
    for id in &ids {
        assert!(!left.contains(id), "blob {id} is still on disk");
    }

    // The other asset is untouched.
    assert_eq!(
        fx.store
            .read_blob(&kept, kept.original.as_ref().unwrap())
            .unwrap(),
        b"keep me"
    );
    let kept_face = kept.faces[1].face_ref(&kept.id);
    assert_eq!(
        fx.store
            .face_template(&kept_face)
            .unwrap()
            .unwrap()
            .embedding,
        kept.faces[1].embedding
    );

    // Idempotent; the first tombstone stays.
    let again = fx.store.erase_asset(&doomed.id, Some("DSR-8")).unwrap();
    assert_eq!(again, erase::EraseOutcome::default());
    assert_eq!(fx.store.tombstone(&doomed.id).unwrap().unwrap(), tombstone);
    // An id that never existed leaves no tombstone.
    let never = AssetId::of_bytes(b"never stored");
    assert!(!fx.store.erase_asset(&never, None).unwrap().erased);
    assert!(fx.store.tombstone(&never).unwrap().is_none());

    let config = fx.config.clone();
    drop(fx.store);
    let store = reopen(&config).unwrap();
    assert!(store.asset(&doomed.id).unwrap().is_none());
    assert_eq!(store.tombstone(&doomed.id).unwrap().unwrap(), tombstone);
    assert!(store.asset_key(&doomed.id).unwrap().is_none());
    assert_eq!(store.face_templates().count(), 2);
}

#[test]
fn an_erasure_interrupted_after_the_key_is_finished_by_the_next_call() {
    let fx = fixture();
    let record = full_asset(&fx.store, b"half erased", "h.jpg", 1);
    fx.store.commit_asset(&record, None).unwrap();
    // A crash right after step 1.
    assert!(fx.store.destroy_asset_key(&record.id).unwrap());
    assert!(!fx.store.destroy_asset_key(&record.id).unwrap());
    let outcome = fx.store.erase_asset(&record.id, None).unwrap();
    assert_eq!(
        outcome,
        erase::EraseOutcome {
            erased: true,
            blobs_deleted: 3,
            templates_purged: 1
        }
    );
    assert!(
        fx.store
            .tombstone(&record.id)
            .unwrap()
            .unwrap()
            .case
            .is_none()
    );
}

#[test]
fn a_commit_whose_key_was_destroyed_meanwhile_is_refused() {
    let fx = fixture();
    let record = asset(&fx.store, b"racing an erasure", "r.jpg");
    fx.store.destroy_asset_key(&record.id).unwrap();
    assert!(matches!(
        fx.store.commit_asset(&record, None),
        Err(StoreError::NoAssetKey(_))
    ));
    assert!(fx.store.asset(&record.id).unwrap().is_none());
}

#[test]
fn rotation_leaves_the_old_wrapped_key_in_no_file() {
    let fx = fixture();
    let id = AssetId::of_bytes(b"rotate me");
    let neighbour = AssetId(format!("{}{}", &id.as_str()[..2], "0".repeat(62)));
    fx.store.asset_key_or_create(&neighbour).unwrap();
    let old = fx.store.asset_key_or_create(&id).unwrap();
    let old_wrapped = fx.store.wrapped_asset_key(&id).unwrap().unwrap();
    let neighbour_wrapped = fx.store.wrapped_asset_key(&neighbour).unwrap().unwrap();
    assert_eq!(files_containing(&fx.config.data_dir, &old_wrapped).len(), 1);

    let new = fx.store.rotate_asset_key(&id).unwrap();
    assert!(!same_key(&old, &new));
    assert!(same_key(&new, &fx.store.asset_key(&id).unwrap().unwrap()));
    let new_wrapped = fx.store.wrapped_asset_key(&id).unwrap().unwrap();
    assert!(files_containing(&fx.config.data_dir, &old_wrapped).is_empty());
    assert_eq!(files_containing(&fx.config.data_dir, &new_wrapped).len(), 1);
    assert_eq!(
        files_containing(&fx.config.data_dir, &neighbour_wrapped).len(),
        1,
        "the bucket's other keys stay"
    );

    let config = fx.config.clone();
    drop(fx.store);
    let store = reopen(&config).unwrap();
    assert!(same_key(&new, &store.asset_key(&id).unwrap().unwrap()));
    assert!(store.asset_key(&neighbour).unwrap().is_some());
}

#[test]
fn a_schema_1_catalogue_moves_its_keys_out_of_the_records() {
    let fx = fixture();
    // A record written the schema 1 way: the wrapped key inside it, no key
    // store, schema version 1.
    let bytes = b"photographed in 2025";
    let id = AssetId::of_bytes(bytes);
    let (data_key, wrapped) = fx.store.keys().new_data_key(id.as_str()).unwrap();
    let original = fx.store.blobs().put(&data_key, bytes).unwrap();
    let mut old = asset(&fx.store, b"unused", "old.jpg");
    fx.store.destroy_asset_key(&old.id).unwrap();
    old.id = id.clone();
    old.original = Some(original.clone());
    old.key = Some(wrapped.clone());
    let key = id.key_bytes();
    let sealed = fx.store.seal(TREE_ASSETS, &key, &old).unwrap();
    fx.store.assets.insert(&key, sealed).unwrap();
    fx.store.meta.insert(KEY_SCHEMA_VERSION, b"1").unwrap();
    fx.store.flush().unwrap();
    let config = fx.config.clone();
    drop(fx.store);
    std::fs::remove_dir_all(config.data_dir.join("asset-keys")).unwrap();

    let store = reopen(&config).unwrap();
    let migrated = store.asset(&id).unwrap().unwrap();
    assert_eq!(migrated.key, None);
    assert_eq!(
        migrated,
        Asset {
            key: None,
            ..old.clone()
        }
    );
    assert_eq!(store.read_blob(&migrated, &original).unwrap(), bytes);
    assert_eq!(store.wrapped_asset_key(&id).unwrap().unwrap(), wrapped.0);
    assert_eq!(
        store
            .meta
            .get(KEY_SCHEMA_VERSION)
            .unwrap()
            .unwrap()
            .as_ref(),
        b"2"
    );
    let mut exported = Vec::new();
    store.export(&mut exported).unwrap();
    assert!(!String::from_utf8_lossy(&exported).contains("\"key\""));
    drop(store);
    let store = reopen(&config).unwrap();
    assert_eq!(store.read_blob(&migrated, &original).unwrap(), bytes);
}

#[test]
fn a_schema_1_dump_imports_its_keys_into_the_key_store() {
    let fx = fixture();
    let bytes = b"from an old dump";
    let id = AssetId::of_bytes(bytes);
    let (data_key, wrapped) = fx.store.keys().new_data_key(id.as_str()).unwrap();
    let original = fx.store.blobs().put(&data_key, bytes).unwrap();
    let mut old = asset(&fx.store, b"unused", "dump.jpg");
    old.id = id.clone();
    old.original = Some(original.clone());
    old.key = Some(wrapped.clone());
    let line = serde_json::to_string(&ExportLine::Asset(old.clone())).unwrap();
    assert!(line.contains("\"key\""));
    let dump = format!("{{\"type\":\"consentry-export\",\"schema_version\":1}}\n{line}\n");

    let mut config = fx.config.clone();
    config.data_dir = fx._dir.path().join("imported");
    copy_tree(
        &fx.config.data_dir.join("blobs"),
        &config.data_dir.join("blobs"),
    );
    let (target, _) = Store::open(&config).unwrap();
    assert_eq!(target.import(&mut dump.as_bytes()).unwrap(), 1);
    let imported = target.asset(&id).unwrap().unwrap();
    assert_eq!(imported.key, None);
    assert_eq!(target.read_blob(&imported, &original).unwrap(), bytes);
    assert_eq!(target.wrapped_asset_key(&id).unwrap().unwrap(), wrapped.0);

    // A dump written under another master key is refused, naming the line.
    let mut other = config.clone();
    other.data_dir = fx._dir.path().join("other");
    let target = Store::open_with_key(&other, SecretKey::random().unwrap(), "another key").unwrap();
    let err = target.import(&mut dump.as_bytes()).unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn the_sweep_drops_keys_without_an_asset() {
    let fx = fixture();
    let record = asset(&fx.store, b"committed", "c.jpg");
    fx.store.commit_asset(&record, None).unwrap();
    // A crash between creating the key and committing the asset.
    let orphan = AssetId::of_bytes(b"never committed");
    fx.store.asset_key_or_create(&orphan).unwrap();
    let orphan_wrapped = fx.store.wrapped_asset_key(&orphan).unwrap().unwrap();
    assert_eq!(fx.store.sweep_asset_keys().unwrap(), 1);
    assert!(fx.store.asset_key(&orphan).unwrap().is_none());
    assert!(files_containing(&fx.config.data_dir, &orphan_wrapped).is_empty());
    assert_eq!(
        fx.store
            .read_blob(&record, record.original.as_ref().unwrap())
            .unwrap(),
        b"committed"
    );
    assert_eq!(fx.store.sweep_asset_keys().unwrap(), 0);
    // The start-up sweep runs it too.
    fx.store.asset_key_or_create(&orphan).unwrap();
    fx.store.remove_orphan_blobs().unwrap();
    assert!(fx.store.asset_key(&orphan).unwrap().is_none());
}

#[test]
fn missing_or_damaged_asset_key_files_are_refused() {
    let fx = fixture();
    let record = asset(&fx.store, b"keyed", "k.jpg");
    fx.store.commit_asset(&record, None).unwrap();
    let config = fx.config.clone();
    drop(fx.store);

    let bucket = bucket_path(&config, &record.id);
    let good = std::fs::read(&bucket).unwrap();
    std::fs::write(&bucket, &good[..good.len() - 1]).unwrap();
    let store = reopen(&config).unwrap();
    let err = store.asset_key(&record.id).unwrap_err();
    assert!(matches!(err, StoreError::AssetKeys { .. }), "{err}");
    assert!(
        err.to_string().contains(&bucket.display().to_string()),
        "{err}"
    );
    drop(store);

    std::fs::write(&bucket, &good).unwrap();
    std::fs::write(bucket.with_extension("tmp"), b"leftover").unwrap();
    let store = reopen(&config).unwrap();
    assert!(!bucket.with_extension("tmp").exists(), "crash leftovers go");
    assert!(store.asset_key(&record.id).unwrap().is_some());
    drop(store);

    std::fs::remove_dir_all(config.data_dir.join("asset-keys")).unwrap();
    let err = reopen(&config).err().expect("refused").to_string();
    assert!(
        err.contains("asset-keys") && err.contains("missing"),
        "{err}"
    );
    assert!(
        !config.data_dir.join("asset-keys").exists(),
        "a refused start creates nothing"
    );
}
