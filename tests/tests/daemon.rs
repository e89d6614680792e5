//! Daemon behaviour that needs no shared test data: litter, post-actions,
//! a share that disappears and returns, config checking, the CLI.

use std::process::Command;
use std::time::{Duration, Instant};

use consentry_tests::{Env, bin, blake3_hex, files_under, synthetic_jpeg};

#[test]
fn litter_is_ignored_and_a_vanished_share_is_picked_up_again() {
    let env = Env::new("delete", "");
    let mut daemon = env.start();
    for litter in [
        "~$budget.xlsx",
        "upload.tmp",
        "._photo.jpg",
        ".DS_Store",
        "Thumbs.db",
        "big.jpg.part",
        ".hidden.jpg",
    ] {
        env.drop_file(litter, &synthetic_jpeg(litter.len() as u64, 32, 32));
    }
    let photo = synthetic_jpeg(1, 80, 60);
    env.drop_file("first.jpg", &photo);
    wait_for(
        || env.assets().len() == 1 && !env.share.join("first.jpg").exists(),
        "first photo ingested",
    );
    std::thread::sleep(Duration::from_secs(3)); // a full rescan passes over the litter
    assert_eq!(env.assets().len(), 1, "litter is never ingested");
    assert_eq!(
        files_under(&env.share).len(),
        7,
        "litter stays on the share"
    );

    // Unmount-like: the share folder goes away, the daemon keeps running.
    let parked = env.root().join("parked");
    std::fs::rename(&env.share, &parked).unwrap();
    wait_for(
        || daemon.log().contains("is not available"),
        "the daemon notices the share is gone",
    );
    daemon.assert_alive();
    assert_eq!(env.status()["shares"][0]["available"], false);
    std::fs::rename(&parked, &env.share).unwrap();
    let second = synthetic_jpeg(2, 80, 60);
    env.drop_file("after/second.jpg", &second);
    wait_for(
        || env.assets().len() == 2,
        "a photo dropped after the share returned is ingested",
    );
    wait_for(
        || daemon.log().contains("is available again"),
        "the next walk reports the share back",
    );
    let ids: Vec<String> = env
        .assets()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&blake3_hex(&photo)) && ids.contains(&blake3_hex(&second)));
    daemon.stop();
}

#[test]
fn move_and_keep_post_actions() {
    let moved = Env::new("move", "");
    let mut daemon = moved.start();
    let photo = synthetic_jpeg(3, 64, 64);
    moved.drop_file("a/b.jpg", &photo);
    moved.drop_file("a/b.xmp", b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>");
    moved.wait_drained(&mut daemon, Duration::from_secs(60));
    assert_eq!(
        std::fs::read(moved.root().join("done/a/b.jpg")).unwrap(),
        photo,
        "moved, byte for byte"
    );
    assert!(
        moved.root().join("done/a/b.xmp").exists(),
        "the sidecar moves with its photo"
    );
    daemon.stop();

    let kept = Env::new("keep", "");
    let daemon = kept.start();
    kept.drop_file("c.jpg", &synthetic_jpeg(4, 64, 64));
    wait_for(|| kept.assets().len() == 1, "kept photo ingested");
    std::thread::sleep(Duration::from_secs(3)); // rescans must not re-ingest a kept file
    let assets = kept.assets();
    assert_eq!(assets.len(), 1);
    assert_eq!(
        assets[0]["sources"].as_array().unwrap().len(),
        1,
        "a kept file is one source, not one per rescan"
    );
    assert!(kept.share.join("c.jpg").exists());
    daemon.stop();
}

#[test]
fn check_config_names_the_bad_key() {
    let env = Env::new("delete", "");
    let ok = Command::new(bin("consentryd"))
        .arg("--check-config")
        .arg(&env.config)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = env.root().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&env.config)
            .unwrap()
            .replace("quiet_period", "quiet_perod"),
    )
    .unwrap();
    let out = Command::new(bin("consentryd"))
        .arg("--check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("quiet_perod") && stderr.contains("unknown field"),
        "{stderr}"
    );
    std::fs::write(
        &bad,
        std::fs::read_to_string(&env.config)
            .unwrap()
            .replace("after_ingest = \"delete\"", "after_ingest = \"move\""),
    )
    .unwrap();
    let stderr = String::from_utf8_lossy(
        &Command::new(bin("consentryd"))
            .arg("--check-config")
            .arg(&bad)
            .output()
            .unwrap()
            .stderr,
    )
    .into_owned();
    assert!(stderr.contains("share[0].move_to"), "{stderr}");
}

#[test]
fn cli_works_without_a_daemon_and_refuses_one_shot_ingest_beside_one() {
    let env = Env::new("delete", "");
    let photo = env.root().join("loose.jpg");
    std::fs::write(&photo, synthetic_jpeg(5, 120, 90)).unwrap();
    let junk = env.root().join("notes.jpg");
    std::fs::write(&junk, "meeting notes, not a photo\n").unwrap();
    let out = env.cli(&[
        "ingest",
        photo.to_str().unwrap(),
        junk.to_str().unwrap(),
        "--collection",
        "archive",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(photo.exists(), "one-shot ingest never deletes its sources");
    let assets = env.assets();
    assert_eq!(assets.len(), 2);
    let junk_asset = assets
        .iter()
        .find(|a| a["status"] == "quarantined")
        .unwrap();
    assert!(
        junk_asset["reason"].as_str().unwrap().contains("text"),
        "{junk_asset}"
    );
    assert_eq!(env.status()["assets"]["quarantined"], 1);

    let exported = env.cli(&["export"]);
    assert!(exported.status.success());
    assert_eq!(
        String::from_utf8_lossy(&exported.stdout).lines().count(),
        3,
        "header + two assets"
    );

    let daemon = env.start();
    let out = env.cli(&["ingest", photo.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("consentryd is running"));
    assert_eq!(
        env.status()["daemon_running"],
        true,
        "status goes through the daemon"
    );
    daemon.stop();
}

fn wait_for(mut condition: impl FnMut() -> bool, what: &str) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
