//! Data-subject requests end to end, through `consentryd` and the CLI, on the
//! shared identities:
//! - find (confirmed, suggested, similar to a reference photo) and review;
//! - the access package holds exactly the person's photos, passes `unzip -t`
//!   and its JSON validates against the schema in the repo;
//! - erasure leaves nothing an admin with the master key could recover (no
//!   wrapped data key in any file, no blob, no template), survives the
//!   restore of a backup taken before it, and the audit chain still verifies
//!   and shows it;
//! - redaction keeps the photo for the other person in it;
//! - deadlines: overdue cases are listed, an extension keeps its reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use consentry_tests::{Env, blake3_hex, files_under, have_tool, require_testdata};
use serde_json::Value;

const WRAPPED_KEY_LEN: usize = 73;
const KEYS_MAGIC_LEN: usize = 24;

/// The same picture, other bytes (decoded and encoded again).
fn reencode(jpeg: &[u8]) -> Vec<u8> {
    use opencv::core::Vector;
    use opencv::imgcodecs;
    use opencv::prelude::*;
    let image =
        imgcodecs::imdecode(&Vector::<u8>::from_slice(jpeg), imgcodecs::IMREAD_COLOR).unwrap();
    assert!(!image.empty());
    let mut out = Vector::<u8>::new();
    let params = Vector::<i32>::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, 92]);
    imgcodecs::imencode(".jpg", &image, &mut out, &params).unwrap();
    out.to_vec()
}

fn json_field(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_owned()
}

fn ok(env: &Env, args: &[&str]) -> Vec<Value> {
    env.cli_json_lines(args)
}

fn files_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// The asset records of the catalogue dump, by id.
fn catalogue(env: &Env) -> BTreeMap<String, Value> {
    ok(env, &["export"])
        .into_iter()
        .filter(|r| r["type"] == "asset")
        .map(|r| (json_field(&r, "id"), r))
        .collect()
}

/// The wrapped data key of `asset` as it lies in its bucket file (the
/// documented layout of `asset-keys/`).
fn wrapped_key(env: &Env, asset: &str) -> Option<Vec<u8>> {
    let bucket = std::fs::read(env.data.join("asset-keys").join(&asset[..2])).ok()?;
    let id: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&asset[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    bucket[KEYS_MAGIC_LEN..]
        .chunks_exact(32 + WRAPPED_KEY_LEN)
        .find(|e| e[..32] == id[..])
        .map(|e| e[32..].to_vec())
}

/// Files under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|rel| {
            let bytes = std::fs::read(dir.join(rel)).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
        .collect()
}

/// Blob ids an asset record refers to.
fn blob_ids(asset: &Value) -> Vec<String> {
    let mut ids = vec![json_field(&asset["original"], "blob_id")];
    for t in asset["thumbnails"].as_array().unwrap() {
        ids.push(json_field(&t["blob"], "blob_id"));
    }
    if asset["sidecar"].is_object() {
        ids.push(json_field(&asset["sidecar"], "blob_id"));
    }
    ids
}

fn face_refs_of(asset: &Value, pred: impl Fn(&Value) -> bool) -> Vec<String> {
    asset["faces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| pred(f))
        .map(|f| format!("{}:{}", json_field(asset, "id"), f["no"]))
        .collect()
}

/// Opens a case, finds the person's faces from a reference photo, and
/// reviews them the way an officer would: confirms faces in the person's own
/// photos (`truth`, by asset id), rejects the rest. Returns the case id.
fn open_and_review(
    env: &Env,
    person: &str,
    person_id: &str,
    kind: &str,
    reference: &Path,
    truth: &BTreeSet<String>,
) -> String {
    let case = json_field(
        &ok(env, &["dsr", "open", person, "--kind", kind, "--json"])[0],
        "id",
    );
    let found = ok(
        env,
        &[
            "dsr",
            "find",
            &case,
            "--photo",
            reference.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(found.iter().any(|f| f["how"] == "confirmed"), "{found:?}");
    let cat = catalogue(env);
    for f in &found {
        let face = json_field(f, "face");
        let asset = json_field(f, "asset");
        let current = &cat[&asset]["faces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| format!("{asset}:{}", x["no"]) == face)
            .unwrap()["attribution"]["identity"];
        let confirmed_here = current["state"] == "confirmed" && current["person"] == person_id;
        if truth.contains(&asset) {
            if !confirmed_here {
                ok(env, &["faces", "confirm", &face, person_id, "--json"]);
            }
        } else if current["person"] == person_id {
            ok(env, &["faces", "reject", &face, "--json"]);
        }
    }
    case
}

#[test]
fn find_package_erase_restore_and_deadlines() {
    let data = require_testdata!();
    // Recognition on for the share only: the `archive` collection keeps no
    // templates, and only `dsr find --scan` can search it.
    let env = Env::with_people("delete", "", "recognition = [\"e2e\"]\n");
    let mut daemon = env.start();
    let ids = data.join("faces/identities");
    let mut truth: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut person: BTreeMap<&str, String> = BTreeMap::new();
    for name in ["obama", "angelina", "penny"] {
        let files = files_sorted(&ids.join(name));
        let added = ok(
            &env,
            &[
                "people",
                "add",
                name,
                "--photo",
                files[0].to_str().unwrap(),
                "--json",
            ],
        );
        person.insert(name, json_field(&added[0]["person"], "id"));
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            truth.entry(name).or_default().insert(blake3_hex(&bytes));
            if f != &files[0] {
                env.drop_file(
                    &format!("{name}__{}", f.file_name().unwrap().to_string_lossy()),
                    &bytes,
                );
            }
        }
    }
    for f in files_sorted(&ids.join("John_Salley")).into_iter().take(4) {
        env.drop_file(
            &format!("john__{}", f.file_name().unwrap().to_string_lossy()),
            &std::fs::read(f).unwrap(),
        );
    }
    let two = std::fs::read(data.join("faces/groups/fr_two_people.jpg")).unwrap();
    env.drop_file("two.jpg", &two);
    env.wait_drained(&mut daemon, Duration::from_secs(900));

    // ---- access (Art. 15/20): exactly obama's photos.
    let obama_ref = files_sorted(&ids.join("obama"))[1].clone();
    let case = open_and_review(
        &env,
        "obama",
        &person["obama"],
        "access",
        &obama_ref,
        &truth["obama"],
    );
    let pkg = env.root().join("obama.zip");
    let out = env.cli(&["dsr", "package", &case, "--out", pkg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if have_tool("unzip") {
        let t = std::process::Command::new("unzip")
            .arg("-t")
            .arg(&pkg)
            .output()
            .unwrap();
        assert!(
            t.status.success(),
            "unzip -t: {}",
            String::from_utf8_lossy(&t.stdout)
        );
    }
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&pkg).unwrap()).unwrap();
    let subject: Value = {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut zip.by_name("subject.json").unwrap(), &mut text)
            .unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let in_package: BTreeSet<String> = subject["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| json_field(p, "asset"))
        .collect();
    assert_eq!(
        &in_package, &truth["obama"],
        "the package holds exactly obama's photos"
    );
    for p in subject["photos"].as_array().unwrap() {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut zip.by_name(p["file"].as_str().unwrap()).unwrap(),
            &mut bytes,
        )
        .unwrap();
        assert_eq!(
            blake3_hex(&bytes),
            json_field(p, "asset"),
            "the original, decrypted"
        );
        assert!(zip.by_name(p["xmp"].as_str().unwrap()).is_ok());
    }
    assert_eq!(subject["templates_included"], false);
    assert_eq!(subject["person"]["name"], "obama");
    let schema =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/src/dsr/access-package.schema.json");
    let subject_file = env.root().join("subject.json");
    std::fs::write(&subject_file, subject.to_string()).unwrap();
    match consentry_tests::python_with("jsonschema") {
        Some(python) => {
            let validated = std::process::Command::new(python)
                .args(["-c", "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))"])
                .arg(&subject_file)
                .arg(&schema)
                .output()
                .unwrap();
            assert!(
                validated.status.success(),
                "subject.json does not validate against the schema: {}",
                String::from_utf8_lossy(&validated.stderr)
            );
        }
        None => {
            assert!(
                std::env::var("CONSENTRY_REQUIRE_TESTDATA").as_deref() != Ok("1"),
                "python3 with jsonschema is required under CI (make deps installs python3-jsonschema)"
            );
            eprintln!(
                "SKIPPED: schema validation: no python3 with jsonschema (make deps installs python3-jsonschema)"
            );
        }
    }
    ok(
        &env,
        &[
            "dsr",
            "close",
            &case,
            "--result",
            "package sent by registered mail",
            "--json",
        ],
    );

    // ---- restriction (Art. 18/21): penny is blocked everywhere, recognition off.
    let penny_ref = files_sorted(&ids.join("penny"))[0].clone();
    let case_p = open_and_review(
        &env,
        "penny",
        &person["penny"],
        "restriction",
        &penny_ref,
        &truth["penny"],
    );
    ok(
        &env,
        &[
            "dsr",
            "restrict",
            &case_p,
            "--opt-out-recognition",
            "--json",
        ],
    );
    let penny_asset = truth["penny"].iter().next().unwrap().clone();
    let d = &ok(
        &env,
        &["decide", &penny_asset, "--purpose", "internal", "--json"],
    )[0];
    assert_eq!(d["allowed"], false, "{d}");
    assert!(
        d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "person_restricted"),
        "{d}"
    );

    // ---- deadlines: received long ago → overdue; an extension records its reason.
    let late = json_field(
        &ok(
            &env,
            &[
                "dsr",
                "open",
                "obama",
                "--kind",
                "rectification",
                "--received",
                "2026-01-31",
                "--json",
            ],
        )[0],
        "id",
    );
    let due = ok(&env, &["dsr", "list", "--due", "--json"]);
    let listed = due
        .iter()
        .find(|c| c["id"] == late.as_str())
        .expect("an overdue case is listed");
    assert_eq!(listed["due"], "2026-02-28");
    assert_eq!(listed["overdue"], true);
    let extended = &ok(
        &env,
        &[
            "dsr",
            "extend",
            &late,
            "--months",
            "2",
            "--reason",
            "archive boxes to search",
            "--json",
        ],
    )[0];
    assert_eq!(extended["due"], "2026-04-30");
    assert_eq!(
        extended["extensions"][0]["reason"],
        "archive boxes to search"
    );
    assert!(
        !env.cli(&["dsr", "extend", &late, "--months", "1", "--reason", "more"])
            .status
            .success()
    );

    // ---- erasure (Art. 17) of angelina, with a backup taken before it.
    let angelina_ref = files_sorted(&ids.join("angelina"))[2].clone();
    let case_e = open_and_review(
        &env,
        "angelina",
        &person["angelina"],
        "erasure",
        &angelina_ref,
        &truth["angelina"],
    );
    let before = catalogue(&env);
    let doomed: Vec<String> = truth["angelina"].iter().cloned().collect();
    let mut keys = Vec::new();
    let mut blobs = Vec::new();
    for a in &doomed {
        let key =
            wrapped_key(&env, a).expect("every stored photo has its wrapped key in asset-keys/");
        assert!(
            !files_containing(&env.data, &key).is_empty(),
            "positive control: the key is found before"
        );
        keys.push(key);
        blobs.extend(blob_ids(&before[a]));
    }
    daemon.stop();
    // A copy of an obama photo (re-encoded: other bytes) in a collection
    // without recognition, ingested one-shot.
    let archived = env.root().join("obama-archive.jpg");
    let archived_bytes =
        reencode(&std::fs::read(files_sorted(&ids.join("obama"))[2].clone()).unwrap());
    std::fs::write(&archived, &archived_bytes).unwrap();
    let ingested = env.cli(&[
        "ingest",
        archived.to_str().unwrap(),
        "--collection",
        "archive",
    ]);
    assert!(
        ingested.status.success(),
        "{}",
        String::from_utf8_lossy(&ingested.stderr)
    );
    let archived_id = blake3_hex(&archived_bytes);
    let backup = env.root().join("before-erasure.zip");
    let b = env.cli(&["backup", "--out", backup.to_str().unwrap()]);
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let mut daemon = env.start();

    // ---- find --scan: the archive has no templates; the engine runs over it
    // for this request only, and stores nothing.
    let templates = |env: &Env| env.status()["people"]["templates"].as_u64().unwrap();
    let before_scan = templates(&env);
    let case_s = json_field(
        &ok(
            &env,
            &["dsr", "open", "obama", "--kind", "access", "--json"],
        )[0],
        "id",
    );
    let plain = ok(
        &env,
        &[
            "dsr",
            "find",
            &case_s,
            "--photo",
            obama_ref.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        !plain.iter().any(|f| f["asset"] == archived_id.as_str()),
        "no template in the archive: {plain:?}"
    );
    let scanned = ok(
        &env,
        &[
            "dsr",
            "find",
            &case_s,
            "--photo",
            obama_ref.to_str().unwrap(),
            "--scan",
            "--json",
        ],
    );
    let hit = scanned
        .iter()
        .find(|f| f["asset"] == archived_id.as_str())
        .unwrap_or_else(|| panic!("the scan finds obama in the archive: {scanned:?}"));
    assert_eq!(hit["how"], "scanned");
    assert!(hit["distance"].as_f64().unwrap() <= 0.55);
    assert_eq!(templates(&env), before_scan, "the scan stores no template");
    let erased = ok(&env, &["dsr", "erase", &case_e, "--json"]);
    let erased_assets: BTreeSet<String> = erased
        .iter()
        .filter(|e| e["how"] == "erased")
        .map(|e| json_field(e, "asset"))
        .collect();
    assert_eq!(
        erased_assets, truth["angelina"],
        "single-person photos are erased whole"
    );

    let check_gone = |env: &Env, when: &str| {
        let cat = catalogue(env);
        for a in &doomed {
            assert!(
                !cat.contains_key(a),
                "{when}: asset {a} still in the catalogue"
            );
            assert!(
                !env.cli(&["assets", "show", a]).status.success(),
                "{when}: {a} still shown"
            );
        }
        for key in &keys {
            let found = files_containing(&env.data, key);
            assert!(
                found.is_empty(),
                "{when}: a wrapped key of an erased photo remains in {found:?}"
            );
        }
        let on_disk: BTreeSet<String> = files_under(&env.data.join("blobs"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for blob in &blobs {
            assert!(
                !on_disk.contains(blob),
                "{when}: blob {blob} (original or thumbnail) remains"
            );
        }
        // No template of her: nothing found near her reference photo, and the
        // person holds no templates.
        let hits = ok(
            env,
            &[
                "search",
                "--photo",
                angelina_ref.to_str().unwrap(),
                "--json",
            ],
        );
        for h in &hits {
            assert!(
                !truth["angelina"].contains(h["asset"].as_str().unwrap_or_default()),
                "{when}: {h}"
            );
            assert_ne!(h["person"], person["angelina"].as_str(), "{when}: {h}");
        }
        let verify = &ok(env, &["audit", "verify", "--json"])[0];
        assert_eq!(verify["ok"], true, "{when}: {verify}");
        let log = ok(env, &["audit", "export"]);
        for a in &doomed {
            assert!(
                log.iter().any(|e| e["action"] == "asset.erase"
                    && e["object"] == format!("asset:{a}").as_str()),
                "{when}: the audit log shows the erasure of {a}"
            );
        }
    };
    check_gone(&env, "after the erasure");
    // Someone drops one of her photos again: it is not stored again.
    let again = std::fs::read(files_sorted(&ids.join("angelina"))[3].clone()).unwrap();
    env.drop_file("angelina-again.jpg", &again);
    env.wait_drained(&mut daemon, Duration::from_secs(120));
    assert!(
        !catalogue(&env).contains_key(&blake3_hex(&again)),
        "an erased photo is not ingested again"
    );
    let refused = ok(&env, &["audit", "export"]);
    assert!(
        refused.iter().any(|e| e["action"] == "asset.ingest"
            && e["outcome"] == "refused"
            && e["object"] == format!("asset:{}", blake3_hex(&again)).as_str()),
        "the refused drop is audited"
    );
    let ledger = std::fs::read_to_string(env.root().join("ledger/erasures")).unwrap();
    assert_eq!(
        ledger
            .lines()
            .filter(|l| l.starts_with("v1 erase "))
            .count(),
        doomed.len()
    );
    assert_eq!(
        ledger
            .lines()
            .filter(|l| l.starts_with("v1 forget-person "))
            .count(),
        1
    );
    assert!(!ledger.contains("angelina"), "ids only");

    // ---- redaction: the bystander leaves, Léa's photo stays.
    let two_id = blake3_hex(&two);
    let two_rec = &catalogue(&env)[&two_id];
    let faces = face_refs_of(two_rec, |_| true);
    assert_eq!(faces.len(), 2);
    ok(
        &env,
        &["people", "add", "Lea", "--face", &faces[0], "--json"],
    );
    ok(
        &env,
        &["people", "add", "Bystander", "--face", &faces[1], "--json"],
    );
    let case_r = json_field(
        &ok(
            &env,
            &["dsr", "open", "Bystander", "--kind", "erasure", "--json"],
        )[0],
        "id",
    );
    let old_two_key = wrapped_key(&env, &two_id).unwrap();
    let redacted = ok(&env, &["dsr", "erase", &case_r, "--json"]);
    assert_eq!(redacted[0]["how"], "redacted", "{redacted:?}");
    assert!(
        files_containing(&env.data, &old_two_key).is_empty(),
        "the old key of a redacted photo is gone"
    );
    let after = &catalogue(&env)[&two_id];
    assert_eq!(
        after["faces"].as_array().unwrap().len(),
        1,
        "only Léa's face is left"
    );
    for blob in blob_ids(two_rec) {
        assert!(
            !files_under(&env.data.join("blobs"))
                .iter()
                .any(|p| p.ends_with(&blob)),
            "old blob {blob} remains"
        );
    }
    daemon.stop();

    // ---- restore the backup taken before the erasure: nothing comes back.
    let r = env.cli(&["restore", backup.to_str().unwrap(), "--replace"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let said = String::from_utf8_lossy(&r.stdout);
    assert!(
        said.contains(&format!(
            "{} photo(s) erased or redacted since the backup were erased again",
            doomed.len() + 1
        )) && said.contains("the templates of 1 person(s)"),
        "{said}"
    );
    // The events the restore rolled back are kept beside the ledger.
    let kept = files_sorted(&env.root().join("ledger"))
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("audit-before-restore-")
        })
        .expect("the audit log before the restore is kept");
    let kept = std::fs::read_to_string(kept).unwrap();
    assert!(
        kept.lines()
            .any(|l| l.contains("\"asset.erase\"") && l.contains(&doomed[0])),
        "the kept log holds the erasure events"
    );
    let daemon = env.start();
    check_gone(&env, "after restoring the older backup");
    let restored_two = &catalogue(&env)[&two_id];
    assert_eq!(
        restored_two["faces"].as_array().unwrap().len(),
        1,
        "the redaction is replayed"
    );
    assert!(
        files_containing(&env.data, &old_two_key).is_empty(),
        "the replayed redaction destroyed the backup's key"
    );
    let angelina = &ok(&env, &["people", "show", &person["angelina"], "--json"])[0];
    assert_eq!(angelina["person"]["recognition"], "opted-out", "{angelina}");
    let log = ok(&env, &["audit", "export"]);
    assert!(log.iter().any(|e| e["action"] == "store.restore"));
    assert!(
        log.iter()
            .any(|e| e["action"] == "asset.erase" && e["details"]["replayed"] == "erasure ledger")
    );
    daemon.stop();
}
