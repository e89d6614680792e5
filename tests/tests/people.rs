//! People, end to end through `consentryd` and the `consentry` CLI:
//! - the shared identities: enrolled from one photo each, every other photo
//!   gets the right suggestion (≥ 95%) and none a wrong one, at the defaults;
//! - "not this person" survives a re-run of the engine and a restart; a merge
//!   followed by undo restores both persons exactly;
//! - clustering is order-independent and does not mix people;
//! - an opt-out leaves no template anywhere; a new photo of the person is
//!   neither matched nor stored; templates past the retention period go.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use consentry_tests::{Env, Rng, files_under, require_testdata};
use serde_json::Value;

const RECOGNISE_ALL: &str = "recognition = [\"*\"]\n";

/// Identity photos: (identity, file), sorted by identity then file name.
fn identity_photos(data: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for person in files_sorted(&data.join("faces/identities")) {
        let name = person.file_name().unwrap().to_string_lossy().into_owned();
        for file in files_sorted(&person) {
            out.push((name.clone(), file));
        }
    }
    out
}

fn files_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries
}

/// Every asset record of the catalogue, by each of its source paths (a
/// byte-identical photo dropped twice is one asset with two sources).
fn export(env: &Env) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for asset in env.cli_json_lines(&["export"]) {
        if asset["type"] != "asset" {
            continue;
        }
        for source in asset["sources"].as_array().unwrap() {
            out.insert(source["path"].as_str().unwrap().to_owned(), asset.clone());
        }
    }
    out
}

fn largest_face(asset: &Value) -> Option<&Value> {
    asset["faces"].as_array()?.iter().max_by(|a, b| {
        let area = |f: &Value| {
            f["bbox"]["width"].as_f64().unwrap() * f["bbox"]["height"].as_f64().unwrap()
        };
        area(a).total_cmp(&area(b))
    })
}

fn face_ref(asset: &Value, face: &Value) -> String {
    format!("{}:{}", asset["id"].as_str().unwrap(), face["no"])
}

fn ok(env: &Env, args: &[&str]) -> Vec<Value> {
    env.cli_json_lines(args)
}

fn fails(env: &Env, args: &[&str]) -> String {
    let out = env.cli(args);
    assert!(!out.status.success(), "consentry {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn identities_are_suggested_right_and_decisions_stick() {
    let data = require_testdata!();
    let env = Env::with_people("delete", "", RECOGNISE_ALL);
    let mut daemon = env.start();
    let photos = identity_photos(&data);
    let mut by_identity: BTreeMap<String, Vec<&PathBuf>> = BTreeMap::new();
    for (name, file) in &photos {
        by_identity.entry(name.clone()).or_default().push(file);
    }
    // Enrol each person from their first photo.
    let mut person_of: BTreeMap<String, String> = BTreeMap::new();
    let mut enrolment: BTreeSet<&PathBuf> = BTreeSet::new();
    for (name, files) in &by_identity {
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
        assert_eq!(added[0]["person"]["confirmed_faces"], 1, "{added:?}");
        person_of.insert(
            added[0]["person"]["id"].as_str().unwrap().to_owned(),
            name.clone(),
        );
        enrolment.insert(files[0]);
    }
    // A photo of two people is refused as a reference, and nothing is added.
    let group = data.join("faces/groups/deepface_couple.jpg");
    let refused = fails(
        &env,
        &[
            "people",
            "add",
            "Couple",
            "--photo",
            group.to_str().unwrap(),
        ],
    );
    assert!(refused.contains("2 faces found"), "{refused}");

    for (name, file) in &photos {
        if !enrolment.contains(file) {
            let rel = format!("{name}__{}", file.file_name().unwrap().to_string_lossy());
            env.drop_file(&rel, &std::fs::read(file).unwrap());
        }
    }
    env.wait_drained(&mut daemon, Duration::from_secs(600));
    let assets = export(&env);
    let (mut right, mut wrong, mut missed, mut review) = (0, 0, 0, 0);
    let mut confusion: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut wrong_on_other_faces = 0;
    for (path, asset) in &assets {
        let Some((identity, _)) = path.split_once("__") else {
            continue;
        };
        let main = largest_face(asset).expect("every identity photo has a face");
        let attribution = &main["attribution"];
        let suggested = attribution["identity"]["person"]
            .as_str()
            .map(|p| person_of[p].clone());
        match &suggested {
            Some(s) if s == identity => right += 1,
            Some(s) => {
                wrong += 1;
                eprintln!("WRONG: {path} suggested as {s}");
            }
            None if attribution["review"].is_string() => review += 1,
            None => missed += 1,
        }
        *confusion
            .entry((identity.to_owned(), suggested.unwrap_or_else(|| "-".into())))
            .or_default() += 1;
        for face in asset["faces"].as_array().unwrap() {
            if face["no"] != main["no"] && face["attribution"]["identity"]["person"].is_string() {
                wrong_on_other_faces += 1;
            }
        }
    }
    let total = right + wrong + missed + review;
    eprintln!(
        "identities: {total} photos; right {right}, wrong {wrong}, no suggestion {missed}, flagged {review}"
    );
    eprintln!("confusion (identity → suggestion: photos):");
    for ((identity, suggestion), n) in &confusion {
        eprintln!("  {identity:<16} → {suggestion:<16} {n}");
    }
    assert_eq!(total, 96, "111 photos minus 15 enrolment photos");
    assert_eq!(wrong, 0, "no photo may get a wrong suggestion");
    assert_eq!(
        wrong_on_other_faces, 0,
        "background faces are not suggested as anyone"
    );
    assert!(
        right * 100 >= total * 95,
        "right suggestions {right}/{total} below 95%"
    );

    // ---- "not this person" survives a re-run of the engine and a restart.
    let (path, asset) = assets
        .iter()
        .find(|(p, a)| {
            p.starts_with("obama__")
                && largest_face(a).unwrap()["attribution"]["identity"]["state"] == "suggested"
        })
        .expect("a suggested obama photo");
    let face = face_ref(asset, largest_face(asset).unwrap());
    let obama = person_of
        .iter()
        .find(|(_, n)| *n == "obama")
        .unwrap()
        .0
        .clone();
    let rejected = ok(&env, &["faces", "reject", &face, "--json"]);
    assert_eq!(rejected[0]["rejected"], obama.as_str());
    let check_rejected = |env: &Env, when: &str| {
        let asset = &export(env)[path];
        let main = largest_face(asset).unwrap();
        assert_eq!(
            face_ref(asset, main),
            face,
            "{when}: the face keeps its number"
        );
        assert_eq!(
            main["attribution"]["rejected"][0],
            obama.as_str(),
            "{when}: {main}"
        );
        assert_ne!(
            main["attribution"]["identity"]["person"],
            obama.as_str(),
            "{when}"
        );
    };
    check_rejected(&env, "after reject");
    let asset_id = asset["id"].as_str().unwrap();
    let redone = ok(&env, &["faces", "redetect", asset_id, "--json"]);
    assert_eq!(redone[0]["asset"], asset_id);
    check_rejected(&env, "after redetect");
    daemon.stop();
    let daemon = env.start();
    check_rejected(&env, "after restart");

    // ---- a merge followed by undo restores both persons exactly.
    let penny = person_of
        .iter()
        .find(|(_, n)| *n == "penny")
        .unwrap()
        .0
        .clone();
    let amy = person_of
        .iter()
        .find(|(_, n)| *n == "amy")
        .unwrap()
        .0
        .clone();
    let before_persons = (
        ok(&env, &["people", "show", &penny, "--json"]),
        ok(&env, &["people", "show", &amy, "--json"]),
    );
    let before_assets = export(&env);
    let merged = ok(&env, &["people", "merge", &penny, &amy, "--json"]);
    let seq = merged[0]["operation"].as_u64().unwrap().to_string();
    let after_merge = ok(&env, &["people", "show", &penny, "--json"]);
    assert_eq!(
        after_merge[0]["person"]["confirmed_faces"]
            .as_u64()
            .unwrap(),
        before_persons.0[0]["person"]["confirmed_faces"]
            .as_u64()
            .unwrap()
            + before_persons.1[0]["person"]["confirmed_faces"]
                .as_u64()
                .unwrap()
    );
    let amy_now = ok(&env, &["people", "list", "--all", "--json"]);
    assert!(
        amy_now
            .iter()
            .any(|p| p["id"] == amy.as_str() && p["merged_into"] == penny.as_str())
    );
    ok(&env, &["people", "undo", &seq, "--json"]);
    let after_persons = (
        ok(&env, &["people", "show", &penny, "--json"]),
        ok(&env, &["people", "show", &amy, "--json"]),
    );
    assert_eq!(before_persons, after_persons, "persons restored exactly");
    let after_assets = export(&env);
    for (path, asset) in &before_assets {
        let faces = |a: &Value| {
            a["faces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| (f["no"].clone(), f["attribution"].clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            faces(asset),
            faces(&after_assets[path]),
            "{path}: faces restored exactly"
        );
    }
    let again = fails(&env, &["people", "undo", &seq]);
    assert!(again.contains("already undone"), "{again}");

    // ---- search: all photos of a person, and by photo.
    let hits = ok(&env, &["search", "--person", &penny, "--json"]);
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h["person"] == penny.as_str()));
    let query = by_identity["sheldon"][1];
    let similar = ok(
        &env,
        &["search", "--photo", query.to_str().unwrap(), "--json"],
    );
    let distances: Vec<f64> = similar
        .iter()
        .map(|h| h["hit"]["distance"].as_f64().unwrap())
        .collect();
    assert!(
        distances.windows(2).all(|w| w[0] <= w[1]),
        "nearest first: {distances:?}"
    );
    assert!(
        distances[0] < 0.01,
        "the photo itself is in the catalogue: {distances:?}"
    );
    daemon.stop();
}

/// Embeddings `faces detect` computes for a file (deterministic).
fn embeddings(env: &Env, file: &Path) -> Vec<Vec<f32>> {
    let out = ok(env, &["faces", "detect", "--json", file.to_str().unwrap()]);
    out[0]["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

/// Whether any file under `dir` contains 16 plaintext bytes of a template.
fn plaintext_found(dir: &Path, templates: &[Vec<f32>]) -> Option<PathBuf> {
    let needles: Vec<Vec<u8>> = templates
        .iter()
        .flat_map(|t| {
            [0usize, 60, 124].map(|at| t[at..at + 4].iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    for rel in files_under(dir) {
        let bytes = std::fs::read(dir.join(&rel)).unwrap();
        if needles
            .iter()
            .any(|n| bytes.windows(n.len()).any(|w| w == n.as_slice()))
        {
            return Some(rel);
        }
    }
    None
}

#[test]
fn an_opt_out_leaves_no_template_and_new_photos_are_not_matched() {
    let data = require_testdata!();
    let env = Env::with_people("delete", "", RECOGNISE_ALL);
    let obama: Vec<PathBuf> = files_sorted(&data.join("faces/identities/obama"));
    let others: Vec<PathBuf> = files_sorted(&data.join("faces/identities/howard"));
    let (held_back, rest) = obama.split_last().unwrap();
    let mut daemon = env.start();
    let person = ok(
        &env,
        &[
            "people",
            "add",
            "Barack",
            "--photo",
            rest[0].to_str().unwrap(),
            "--json",
        ],
    );
    let id = person[0]["person"]["id"].as_str().unwrap().to_owned();
    for file in rest[1..].iter().chain(&others) {
        let rel = format!(
            "{}-{}",
            file.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy(),
            file.file_name().unwrap().to_string_lossy()
        );
        env.drop_file(&rel, &std::fs::read(file).unwrap());
    }
    env.wait_drained(&mut daemon, Duration::from_secs(300));
    // Confirm every suggestion, as an editor would.
    for (_, asset) in export(&env) {
        for face in asset["faces"].as_array().unwrap() {
            if face["attribution"]["identity"]["state"] == "suggested"
                && face["attribution"]["identity"]["person"] == id.as_str()
            {
                ok(
                    &env,
                    &["faces", "confirm", &face_ref(&asset, face), &id, "--json"],
                );
            }
        }
    }
    let confirmed = ok(&env, &["people", "show", &id, "--json"])[0]["person"]["confirmed_faces"]
        .as_u64()
        .unwrap();
    assert!(
        confirmed >= 3,
        "enrolment plus confirmed suggestions: {confirmed}"
    );
    let templates: Vec<Vec<f32>> = obama.iter().flat_map(|f| embeddings(&env, f)).collect();
    assert_eq!(
        plaintext_found(&env.data, &templates),
        None,
        "templates are stored encrypted only"
    );

    let keys_before = std::fs::read(env.data.join("template-keys")).unwrap();
    let out = ok(&env, &["people", "recognition", &id, "opted-out", "--json"]);
    assert_eq!(out[0]["purged_templates"].as_u64().unwrap(), confirmed);
    assert_ne!(
        std::fs::read(env.data.join("template-keys")).unwrap(),
        keys_before,
        "old slot keys destroyed"
    );
    for (_, asset) in export(&env) {
        for face in asset["faces"].as_array().unwrap() {
            if face["attribution"]["identity"]["person"] == id.as_str() {
                assert_eq!(face["template"], "purged", "{face}");
            }
            assert!(face.get("embedding").is_none(), "no template in an export");
        }
    }
    let exported = env.cli(&["export"]);
    assert!(!String::from_utf8_lossy(&exported.stdout).contains("embedding"));

    // A new photo of them: neither matched nor stored.
    env.drop_file("new-obama.jpg", &std::fs::read(held_back).unwrap());
    env.wait_drained(&mut daemon, Duration::from_secs(120));
    let assets = export(&env);
    let new = &assets["new-obama.jpg"];
    let main = largest_face(new).unwrap();
    assert_eq!(main["template"], "suppressed", "{main}");
    assert!(main["attribution"]["identity"].is_null(), "{main}");
    // Howard's photos are untouched.
    let howard = assets
        .iter()
        .find(|(p, _)| p.starts_with("howard"))
        .unwrap()
        .1;
    assert_eq!(largest_face(howard).unwrap()["template"], "stored");
    daemon.stop();
    assert_eq!(plaintext_found(&env.data, &templates), None);
}

#[test]
fn unknown_templates_are_purged_after_the_retention_period() {
    let data = require_testdata!();
    let env = Env::with_people(
        "delete",
        "",
        "recognition = [\"*\"]\ntemplate_retention = \"3s\"\nmaintenance_interval = \"1h\"\n",
    );
    let leonard = files_sorted(&data.join("faces/identities/leonard"));
    let raj = files_sorted(&data.join("faces/identities/raj"));
    let mut daemon = env.start();
    let kept = ok(
        &env,
        &[
            "people",
            "add",
            "Leonard",
            "--photo",
            leonard[0].to_str().unwrap(),
            "--json",
        ],
    );
    let kept_id = kept[0]["person"]["id"].as_str().unwrap().to_owned();
    ok(
        &env,
        &["people", "recognition", &kept_id, "allowed", "--json"],
    );
    let no_basis = ok(
        &env,
        &[
            "people",
            "add",
            "Raj",
            "--photo",
            raj[0].to_str().unwrap(),
            "--json",
        ],
    );
    let no_basis_id = no_basis[0]["person"]["id"].as_str().unwrap().to_owned();
    env.drop_file(
        "unknown.jpg",
        &std::fs::read(
            data.join("faces/identities/stuart")
                .read_dir()
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path(),
        )
        .unwrap(),
    );
    env.wait_drained(&mut daemon, Duration::from_secs(120));
    let status = env.status();
    assert_eq!(status["people"]["persons"], 2, "{status}");
    assert_eq!(status["people"]["templates"], 3, "{status}");
    assert_eq!(status["people"]["recognition"][0], "*");
    let early = ok(&env, &["people", "maintain", "--json"]);
    assert_eq!(
        early[0]["purged_templates"], 0,
        "nothing is older than 3 s yet"
    );
    std::thread::sleep(Duration::from_secs(4));
    let purged = ok(&env, &["people", "maintain", "--json"]);
    assert_eq!(
        purged[0]["purged_templates"], 2,
        "the unknown face and Raj's (no basis) go; Leonard's stays"
    );
    let assets = export(&env);
    let status_of = |person: &str| {
        assets
            .values()
            .flat_map(|a| a["faces"].as_array().unwrap().iter())
            .find(|f| f["attribution"]["identity"]["person"] == person)
            .map(|f| f["template"].clone())
    };
    assert_eq!(status_of(&kept_id), Some(Value::from("stored")));
    assert_eq!(status_of(&no_basis_id), Some(Value::from("purged")));
    assert_eq!(
        largest_face(&assets["unknown.jpg"]).unwrap()["template"],
        "purged"
    );
    daemon.stop();
}

/// Ingests files in the given order with `consentry ingest` and returns the clusters.
fn clusters_after_ingest(files: &[PathBuf]) -> (Env, Vec<Vec<String>>) {
    let env = Env::with_people("keep", "", RECOGNISE_ALL);
    let mut args = vec!["ingest", "--collection", "e2e"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = env.cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&env, &["people", "maintain", "--json"]);
    let clusters = ok(&env, &["clusters", "list", "--json"])
        .into_iter()
        .map(|c| {
            c["faces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    (env, clusters)
}

#[test]
fn clustering_does_not_depend_on_ingest_order_or_mix_people() {
    let data = require_testdata!();
    let photos = identity_photos(&data);
    let identity_of_asset: BTreeMap<String, String> = photos
        .iter()
        .map(|(name, file)| {
            (
                consentry_tests::blake3_hex(&std::fs::read(file).unwrap()),
                name.clone(),
            )
        })
        .collect();
    let mut orders = Vec::new();
    for seed in [7, 1234] {
        let mut files: Vec<PathBuf> = photos.iter().map(|(_, f)| f.clone()).collect();
        let mut rng = Rng::new(seed);
        for i in (1..files.len()).rev() {
            files.swap(i, rng.below(i as u64 + 1) as usize);
        }
        orders.push(files);
    }
    assert_ne!(orders[0], orders[1]);
    let (_a, first) = clusters_after_ingest(&orders[0]);
    let (_b, second) = clusters_after_ingest(&orders[1]);
    assert_eq!(first, second, "the same clusters whatever the ingest order");
    let mut clustered = 0;
    for cluster in &first {
        let people: BTreeSet<&String> = cluster
            .iter()
            .map(|f| &identity_of_asset[f.split(':').next().unwrap()])
            .collect();
        assert_eq!(people.len(), 1, "cluster mixes {people:?}");
        clustered += cluster.len();
    }
    eprintln!(
        "identities: {} clusters covering {clustered} faces",
        first.len()
    );
    // Measured at the defaults (people/cluster.rs): one cluster per person,
    // 110 of 111 faces (stuart5 is 0.523 from its nearest Stuart).
    assert_eq!(first.len(), 15, "one cluster per person");
    assert!(clustered >= 105, "{clustered} faces clustered");
}

/// Who is where in dlib's bald guys collage (face box centres, assigned by
/// looking at the image; every face's four nearest faces agree).
const COLLAGE: [(&str, [(f64, f64); 6]); 4] = [
    (
        "Vin Diesel",
        [
            (138.0, 449.5),
            (639.0, 164.5),
            (146.0, 140.0),
            (151.0, 1359.0),
            (646.5, 494.0),
            (381.5, 290.0),
        ],
    ),
    (
        "Jason Statham",
        [
            (143.5, 759.5),
            (396.0, 505.0),
            (957.0, 470.0),
            (954.0, 170.0),
            (392.0, 99.5),
            (507.0, 912.5),
        ],
    ),
    (
        "The Rock",
        [
            (1169.0, 1381.0),
            (1867.5, 1381.5),
            (1510.0, 1392.0),
            (1875.0, 484.5),
            (1593.5, 234.5),
            (1691.5, 752.5),
        ],
    ),
    (
        "Bruce Willis",
        [
            (1149.0, 825.0),
            (860.5, 886.5),
            (854.5, 1310.5),
            (131.0, 1043.0),
            (460.5, 1321.0),
            (1188.0, 1131.0),
        ],
    ),
];

fn collage_man(x: f64, y: f64) -> &'static str {
    COLLAGE
        .iter()
        .flat_map(|(man, centres)| {
            centres
                .iter()
                .map(move |c| (*man, (c.0 - x).hypot(c.1 - y)))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .filter(|(_, d)| *d < 40.0)
        .map_or("nobody", |(man, _)| man)
}

#[test]
fn the_bald_guys_collage_gives_four_clean_clusters() {
    let data = require_testdata!();
    let collage = data.join("faces/groups/dlib_bald_guys_collage.jpg");
    let (env, clusters) = clusters_after_ingest(&[collage]);
    let asset = export(&env).into_values().next().unwrap();
    let man_of: BTreeMap<String, &str> = asset["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let b = &f["bbox"];
            let cx = b["x"].as_f64().unwrap() + b["width"].as_f64().unwrap() / 2.0;
            let cy = b["y"].as_f64().unwrap() + b["height"].as_f64().unwrap() / 2.0;
            (face_ref(&asset, f), collage_man(cx, cy))
        })
        .collect();
    assert_eq!(man_of.len(), 24, "24 faces found");
    assert!(!man_of.values().any(|m| *m == "nobody"), "{man_of:?}");
    let mut seen = BTreeSet::new();
    for cluster in &clusters {
        let men: BTreeSet<&str> = cluster.iter().map(|f| man_of[f]).collect();
        assert_eq!(men.len(), 1, "a cluster mixes {men:?}");
        seen.extend(men.iter().copied());
        eprintln!("cluster of {} faces: {men:?}", cluster.len());
    }
    assert_eq!(clusters.len(), 4, "{clusters:?}");
    assert_eq!(seen.len(), 4, "each man has his cluster");

    // Naming a cluster confirms its faces as a new person; dismissing one
    // takes its faces out of clustering for good.
    let named = ok(
        &env,
        &["clusters", "name", &clusters[0][0], "First Man", "--json"],
    );
    assert_eq!(
        named[0]["confirmed"].as_u64().unwrap() as usize,
        clusters[0].len()
    );
    ok(&env, &["clusters", "dismiss", &clusters[1][0], "--json"]);
    ok(&env, &["people", "maintain", "--json"]);
    let left = ok(&env, &["clusters", "list", "--json"]);
    assert_eq!(left.len(), 2, "{left:?}");
    let person = ok(&env, &["people", "show", "First Man", "--json"]);
    assert_eq!(
        person[0]["person"]["confirmed_faces"].as_u64().unwrap() as usize,
        clusters[0].len()
    );
}
