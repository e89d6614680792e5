//! The audit trail end to end: every CLI action that reads or changes a
//! photo produces exactly its audit events (through the daemon's socket, with
//! the caller's Unix user as actor), reading the log is audited too, and the
//! chain verifies.

use std::time::Duration;

use consentry_tests::{Env, require_testdata};
use serde_json::Value;

fn json_field(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_owned()
}

/// The audit events after `after`, as (action, object, outcome).
fn events_after(env: &Env, after: u64) -> Vec<(String, String, String)> {
    env.cli_json_lines(&["audit", "export", "--format", "jsonl"])
        .into_iter()
        .filter(|e| e["seq"].as_u64().unwrap() > after)
        .map(|e| {
            (
                json_field(&e, "action"),
                json_field(&e, "object"),
                json_field(&e, "outcome"),
            )
        })
        .collect()
}

fn last_seq(env: &Env) -> u64 {
    env.cli_json_lines(&["audit", "export"])
        .last()
        .map_or(0, |e| e["seq"].as_u64().unwrap())
}

/// Runs one action and checks the events it added (the `audit export` used
/// to read them adds its own `audit.export`, checked by the next step).
struct Walk<'a> {
    env: &'a Env,
    seq: u64,
}

impl Walk<'_> {
    fn step(
        &mut self,
        args: &[&str],
        succeeds: bool,
        expected: &[(&str, &str, &str)],
    ) -> Vec<Value> {
        let out = self.env.cli(args);
        assert_eq!(
            out.status.success(),
            succeeds,
            "consentry {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = events_after(self.env, self.seq);
        // The first event is the previous step's `audit export`.
        assert_eq!(got[0].0, "audit.export", "{args:?}: {got:?}");
        let got: Vec<(String, String, String)> = got[1..].to_vec();
        let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        // `person:{new}`: the person this command created, by id.
        let new_person = lines
            .first()
            .and_then(|l| l["person"]["id"].as_str())
            .map(|id| format!("person:{id}"));
        let want: Vec<(String, String, String)> = expected
            .iter()
            .map(|(a, o, r)| {
                let o = match (*o, &new_person) {
                    ("person:{new}", Some(p)) => p.clone(),
                    _ => (*o).to_owned(),
                };
                ((*a).to_owned(), o, (*r).to_owned())
            })
            .collect();
        assert_eq!(got, want, "consentry {args:?}");
        self.seq = last_seq(self.env);
        lines
    }
}

#[test]
fn every_photo_action_is_audited_exactly_once() {
    let data = require_testdata!();
    let env = Env::with_people("delete", "", "recognition = [\"*\"]\n");
    let mut daemon = env.start();
    env.drop_file(
        "two.jpg",
        &std::fs::read(data.join("faces/groups/fr_two_people.jpg")).unwrap(),
    );
    env.wait_drained(&mut daemon, Duration::from_secs(120));
    let asset = json_field(&env.assets()[0], "id");
    let a = format!("asset:{asset}");
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;

    // The daemon's own events so far: start, config, the ingest.
    let log = env.cli_json_lines(&["audit", "export"]);
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        &actions[..3],
        ["daemon.start", "config.change", "asset.ingest"],
        "{actions:?}"
    );
    assert_eq!(log[2]["object"], a.as_str());
    assert_eq!(log[2]["actor"], "consentryd");
    let mut walk = Walk {
        env: &env,
        seq: last_seq(&env),
    };

    walk.step(
        &["assets", "list", "--json"],
        true,
        &[("asset.list", "catalogue", "ok")],
    );
    walk.step(
        &["assets", "show", &asset, "--json"],
        true,
        &[("asset.view", &a, "ok")],
    );
    let f0 = format!("{asset}:0");
    let f1 = format!("{asset}:1");
    let lea = walk.step(
        &["people", "add", "Lea", "--face", &f0, "--json"],
        true,
        &[
            ("person.add", "person:{new}", "ok"),
            ("face.confirm", &format!("face:{f0}"), "ok"),
        ],
    );
    // Persons are logged by id, never by the name typed.
    let lea_obj = format!("person:{}", json_field(&lea[0]["person"], "id"));
    walk.step(
        &["people", "add", "Bystander", "--json"],
        true,
        &[("person.add", "person:{new}", "ok")],
    );
    walk.step(
        &["faces", "confirm", &f1, "Bystander", "--json"],
        true,
        &[("face.confirm", &format!("face:{f1}"), "ok")],
    );
    walk.step(
        &["faces", "reject", &f1, "--json"],
        true,
        &[("face.reject", &format!("face:{f1}"), "ok")],
    );
    let pdf = env.root().join("release.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\n% release\n%%EOF\n").unwrap();
    let added = walk.step(
        &[
            "consent",
            "add",
            "Lea",
            "--purpose",
            "website",
            "--signed-on",
            "2026-01-05",
            "--document",
            pdf.to_str().unwrap(),
            "--json",
        ],
        true,
        &[("consent.add", &lea_obj, "ok")],
    );
    let consent = json_field(&added[0], "id");
    assert_eq!(
        added[0]["recorded_by"],
        me.as_str(),
        "the socket peer, not the daemon's user"
    );
    let c = format!("consent:{consent}");
    let back = env.root().join("back.pdf");
    walk.step(
        &[
            "consent",
            "document",
            &consent,
            "--out",
            back.to_str().unwrap(),
        ],
        true,
        &[("consent.document.download", &c, "ok")],
    );
    walk.step(
        &["licence", "set", &asset, "--copyright", "© Test", "--json"],
        true,
        &[("licence.set", &a, "ok")],
    );
    walk.step(
        &["decide", &asset, "--purpose", "website", "--json"],
        true,
        &[("asset.decide", &a, "ok")],
    );
    let out = env.root().join("out");
    walk.step(
        &[
            "export",
            &asset,
            "--purpose",
            "website",
            "--redact",
            "--out",
            out.to_str().unwrap(),
        ],
        true,
        &[("asset.export", &a, "ok")],
    );
    walk.step(
        &["restrict", &asset, "--reason", "objection", "--json"],
        true,
        &[("restriction.add", &a, "ok")],
    );
    // A refused export is recorded as refused.
    walk.step(
        &[
            "export",
            &asset,
            "--purpose",
            "website",
            "--redact",
            "--out",
            out.to_str().unwrap(),
        ],
        false,
        &[("asset.export", &a, "refused")],
    );
    walk.step(
        &[
            "consent",
            "withdraw",
            &consent,
            "--reason",
            "changed mind",
            "--json",
        ],
        true,
        &[("consent.withdraw", &c, "ok")],
    );
    walk.step(
        &["report", "blocked", "--json"],
        true,
        &[("report.blocked", "rights", "ok")],
    );
    let opened = walk.step(
        &["dsr", "open", "Lea", "--kind", "access", "--json"],
        true,
        &[("dsr.open", &lea_obj, "ok")],
    );
    let case = json_field(&opened[0], "id");
    let pkg = env.root().join("pkg.zip");
    walk.step(
        &["dsr", "package", &case, "--out", pkg.to_str().unwrap()],
        true,
        &[
            ("asset.download", &a, "ok"),
            ("dsr.package", &format!("case:{case}"), "ok"),
        ],
    );
    let cs = format!("case:{case}");
    assert_eq!(
        format!("person:{}", json_field(&opened[0], "person")),
        lea_obj
    );
    walk.step(
        &["consent", "show", &consent, "--json"],
        true,
        &[("consent.view", &c, "ok")],
    );
    walk.step(
        &["consent", "list", "--json"],
        true,
        &[("consent.list", "consents", "ok")],
    );
    walk.step(
        &["licence", "show", &asset, "--json"],
        true,
        &[("licence.view", &a, "ok")],
    );
    let dump = env.root().join("dump.jsonl");
    walk.step(
        &["export", "-o", dump.to_str().unwrap()],
        true,
        &[("catalogue.export", "catalogue", "ok")],
    );
    walk.step(
        &["search", "--face", &f0, "--json"],
        true,
        &[("search.face", &format!("face:{f0}"), "ok")],
    );
    walk.step(
        &["faces", "incidental", &f1, "--json"],
        true,
        &[("face.incidental", &format!("face:{f1}"), "ok")],
    );
    walk.step(
        &["faces", "not-a-face", &f1, "--json"],
        true,
        &[("face.not_a_face", &format!("face:{f1}"), "ok")],
    );
    walk.step(
        &["dsr", "find", &case, "--json"],
        true,
        &[("dsr.find", &cs, "ok")],
    );
    walk.step(
        &[
            "dsr",
            "extend",
            &case,
            "--months",
            "1",
            "--reason",
            "many archives",
            "--json",
        ],
        true,
        &[("dsr.extend", &cs, "ok")],
    );
    walk.step(
        &["dsr", "restrict", &case, "--json"],
        true,
        &[
            ("restriction.add", &lea_obj, "ok"),
            ("dsr.restrict", &cs, "ok"),
        ],
    );
    walk.step(
        &["dsr", "erase", &case, "--mode", "whole", "--json"],
        true,
        &[
            ("asset.erase", &a, "ok"),
            ("person.templates.erase", &lea_obj, "ok"),
            ("dsr.erase", &cs, "ok"),
        ],
    );
    walk.step(
        &["assets", "show", &asset, "--json"],
        false,
        &[("asset.view", &a, "refused")],
    );
    walk.step(
        &["dsr", "close", &case, "--result", "erased", "--json"],
        true,
        &[("dsr.close", &cs, "ok")],
    );
    walk.step(
        &["audit", "checkpoint"],
        true,
        &[("audit.checkpoint", "audit", "ok")],
    );
    walk.step(
        &["audit", "verify", "--json"],
        true,
        &[("audit.verify", "audit", "ok")],
    );
    walk.step(
        &["audit", "checkpoints"],
        true,
        &[("audit.checkpoints", "audit", "ok")],
    );

    // Who: the Unix user behind the CLI, through the socket.
    let log = env.cli_json_lines(&["audit", "export"]);
    let view = log.iter().find(|e| e["action"] == "asset.view").unwrap();
    assert_eq!(view["actor"], me.as_str());
    assert_eq!(view["via"], "socket");
    // Never the photo's content, never the document's, never a name: only
    // ids and small details.
    for e in &log {
        assert!(e.to_string().len() < 2000, "an event carries too much: {e}");
        assert!(
            !e.to_string().contains("Lea") && !e.to_string().contains("Bystander"),
            "a name in {e}"
        );
    }
    // CSV export: a header and one row per event.
    let csv = env.cli(&["audit", "export", "--format", "csv"]);
    let text = String::from_utf8(csv.stdout).unwrap();
    assert!(text.starts_with("seq,at,actor,via,action,object,outcome,details,prev,hash\n"));
    assert!(text.lines().count() > log.len());
    // The same action without the daemon: the CLI opens the store itself.
    daemon.stop();
    let before = last_seq(&env);
    env.cli_json_lines(&["assets", "list", "--json"]);
    let direct = env.cli_json_lines(&["audit", "export"]);
    let view = direct
        .iter()
        .find(|e| e["seq"].as_u64().unwrap() > before && e["action"] == "asset.list")
        .unwrap();
    assert_eq!(view["via"], "cli");
    let verify = env.cli_json_lines(&["audit", "verify", "--json"]);
    assert_eq!(verify[0]["ok"], true, "{verify:?}");
    assert!(
        verify[0]["checkpoints"].as_u64().unwrap() >= 1,
        "a checkpoint at the daemon's stop"
    );
}
