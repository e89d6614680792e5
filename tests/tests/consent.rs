//! Consent end to end: reminders through a real SMTP server (sent once,
//! across restarts), and the purpose export of a two-person photo with
//! consent for one person only (XMP read back with exiftool, the other face
//! redacted beyond our own engine's recognition).

use std::time::Duration;

use consentry_tests::smtp::{SmtpServer, smtp_server_available};
use consentry_tests::{Env, have_tool, require_testdata};
use jiff::ToSpan;

fn today() -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap())
        .date()
}

fn json_field(v: &serde_json::Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_owned()
}

fn add_person(env: &Env, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["people", "add", name, "--json"];
    args.extend_from_slice(extra);
    let out = env.cli_json_lines(&args);
    let p = &out[0];
    let p = if p["person"].is_object() {
        &p["person"]
    } else {
        p
    };
    json_field(p, "id")
}

fn add_consent(env: &Env, person: &str, args: &[&str]) -> String {
    let mut all = vec!["consent", "add", person, "--json"];
    all.extend_from_slice(args);
    json_field(&env.cli_json_lines(&all)[0], "id")
}

#[test]
fn reminders_reach_a_real_smtp_server_once() {
    if !smtp_server_available() {
        return;
    }
    let server = SmtpServer::start(Some(("reminders", "s3cret"))).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let password = tmp.path().join("smtp.password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let extra = format!(
        "[consent]\ntime_zone = \"Europe/Amsterdam\"\n\
         [reminders]\nsend_at = \"00:00\"\n\
         [reminders.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"starttls\"\n\
         username = \"reminders\"\npassword_file = \"{}\"\nca_file = \"{}\"\n\
         from = \"consentry@gemeente.test\"\nto = [\"dpo@gemeente.test\", \"comms@gemeente.test\"]\n",
        server.port(),
        password.display(),
        server.ca_pem().display()
    );
    let env = Env::with_people("keep", "", &extra);

    // Before the daemon runs (direct mode): three things worth a reminder.
    let today = today();
    let soon = today.checked_add(10.days()).unwrap();
    let anna = add_person(&env, "Anna Jansen", &[]);
    let anna_consent = add_consent(
        &env,
        &anna,
        &[
            "--purpose",
            "website",
            "--signed-on",
            "2025-01-01",
            "--until",
            &soon.to_string(),
        ],
    );
    let bram = add_person(&env, "Bram Bakker", &[]);
    let bram_consent = add_consent(
        &env,
        &bram,
        &["--purpose", "print", "--signed-on", "2025-01-01"],
    );
    let withdrawn = env.cli_json_lines(&[
        "consent",
        "withdraw",
        &bram_consent,
        "--reason",
        "asked by e-mail",
        "--json",
    ]);
    assert_eq!(withdrawn[0]["consent"]["status"], "withdrawn");
    let sam = add_person(&env, "Sam de Vries", &["--kind", "minor"]);
    let birthday = today
        .checked_add(20.days())
        .unwrap()
        .checked_sub(16.years())
        .unwrap();
    env.cli_json_lines(&[
        "people",
        "set",
        &sam,
        "--born",
        &birthday.to_string(),
        "--json",
    ]);
    add_consent(
        &env,
        &sam,
        &[
            "--purpose",
            "intranet",
            "--signed-on",
            "2024-09-01",
            "--guardian",
            "Eva de Vries",
        ],
    );
    // An open-ended consent is no reminder.
    let quiet = add_person(&env, "Quiet Person", &[]);
    add_consent(
        &env,
        &quiet,
        &["--purpose", "website", "--signed-on", "2025-01-01"],
    );

    let daemon = env.start();
    let mails = server.wait_for(1, Duration::from_secs(30));
    assert_eq!(
        mails.len(),
        1,
        "daemon log:\n{}\nserver log:\n{}",
        daemon.log(),
        server.log()
    );
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["dpo@gemeente.test", "comms@gemeente.test"]);
    assert_eq!(mail.from, "consentry@gemeente.test");
    assert!(mail.subject.contains("3 reminder(s)"), "{}", mail.subject);
    let body = &mail.body;
    for needle in [
        format!("Consent {anna_consent} of Anna Jansen ends on {soon} (10 days)"),
        format!("Bram Bakker withdrew consent {bram_consent}"),
        "asked by e-mail".to_owned(),
        format!(
            "Sam de Vries turns 16 on {}",
            today.checked_add(20.days()).unwrap()
        ),
    ] {
        assert!(body.contains(&needle), "missing {needle:?} in:\n{body}");
    }
    assert!(!body.contains("Quiet Person"), "{body}");
    drop(daemon.stop());

    // A restart sends nothing again, nor does a manual run.
    let daemon = env.start();
    std::thread::sleep(Duration::from_secs(3));
    let run = env.cli_json_lines(&["reminders", "run", "--json"]);
    assert_eq!(run[0]["mailed"], 0, "{run:?}");
    assert_eq!(run[0]["already_sent"], 3, "{run:?}");
    assert_eq!(server.messages().len(), 1, "{}", daemon.log());

    // A new withdrawal is news: it alone goes out on the next run.
    env.cli_json_lines(&[
        "consent",
        "withdraw",
        &anna_consent,
        "--reason",
        "moved away",
        "--json",
    ]);
    let run = env.cli_json_lines(&["reminders", "run", "--json"]);
    assert_eq!(run[0]["mailed"], 1, "{run:?}");
    let mails = server.wait_for(2, Duration::from_secs(10));
    assert_eq!(mails.len(), 2);
    assert!(
        mails[1].body.contains("Anna Jansen withdrew consent"),
        "{}",
        mails[1].body
    );
    assert!(!mails[1].body.contains("Bram"), "{}", mails[1].body);

    // A consent covering recognition is the person's Art. 9 basis; its
    // withdrawal takes the basis away. A publication-only consent does not
    // touch the basis.
    let recognition = |who: &str| {
        let shown = env.cli_json_lines(&["people", "show", who, "--json"]);
        let p = if shown[0]["person"].is_object() {
            &shown[0]["person"]
        } else {
            &shown[0]
        };
        json_field(p, "recognition")
    };
    assert_eq!(recognition(&quiet), "no-basis");
    let basis = add_consent(
        &env,
        &quiet,
        &["--recognition", "--signed-on", "2025-01-01"],
    );
    assert_eq!(recognition(&quiet), "allowed");
    env.cli_json_lines(&[
        "consent",
        "withdraw",
        &basis,
        "--reason",
        "no more recognition",
        "--json",
    ]);
    assert_eq!(recognition(&quiet), "no-basis");
    drop(daemon.stop());
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

fn embeddings(env: &Env, file: &std::path::Path) -> Vec<(Vec<f64>, [f64; 4])> {
    let out = env.cli_json_lines(&["faces", "detect", "--json", file.to_str().unwrap()]);
    out[0]["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let e = f["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let b = &f["box"];
            (
                e,
                [
                    b["x"].as_f64().unwrap(),
                    b["y"].as_f64().unwrap(),
                    b["width"].as_f64().unwrap(),
                    b["height"].as_f64().unwrap(),
                ],
            )
        })
        .collect()
}

#[test]
fn a_photo_with_one_consenting_person_exports_with_the_other_redacted() {
    let data = require_testdata!();
    if !have_tool("exiftool") {
        return;
    }
    let env = Env::with_people(
        "delete",
        "",
        "recognition = [\"*\"]\n[consent]\ntime_zone = \"Europe/Amsterdam\"\n",
    );
    let photo = data.join("faces/groups/fr_two_people.jpg");
    let mut daemon = env.start();
    env.drop_file("fr_two_people.jpg", &std::fs::read(&photo).unwrap());
    env.wait_drained(&mut daemon, Duration::from_secs(120));
    let asset = json_field(&env.assets()[0], "id");
    let detail = env.cli_json_lines(&["assets", "show", &asset, "--json"])[0].clone();
    let mut faces: Vec<(u64, f64, f64, f64, f64)> = detail["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let b = &f["box"];
            (
                f["no"].as_u64().unwrap(),
                b["x"].as_f64().unwrap(),
                b["y"].as_f64().unwrap(),
                b["width"].as_f64().unwrap(),
                b["height"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(faces.len(), 2, "{detail}");
    faces.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (left, right) = (faces[0], faces[1]);
    let left_person = add_person(
        &env,
        "Léa Martin",
        &["--face", &format!("{asset}:{}", left.0)],
    );
    add_person(
        &env,
        "Bystander",
        &["--face", &format!("{asset}:{}", right.0)],
    );

    // The signed release, stored encrypted and given back byte for byte.
    let pdf = env.root().join("release.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\n% signed release of Lea Martin\n%%EOF\n").unwrap();
    let consent = add_consent(
        &env,
        &left_person,
        &[
            "--purpose",
            "website",
            "--purpose",
            "print",
            "--signed-on",
            "2026-01-05",
            "--document",
            pdf.to_str().unwrap(),
        ],
    );
    let back = env.root().join("back.pdf");
    assert!(
        env.cli(&[
            "consent",
            "document",
            &consent,
            "--out",
            back.to_str().unwrap()
        ])
        .status
        .success()
    );
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&pdf).unwrap());
    env.cli_json_lines(&[
        "licence",
        "set",
        &asset,
        "--copyright",
        "© Gemeente Test",
        "--licensor",
        "Studio Noord",
        "--until",
        "2027-12-31",
        "--json",
    ]);

    // The decision: blocked by the bystander alone.
    let d = env.cli_json_lines(&["decide", &asset, "--purpose", "website", "--json"])[0].clone();
    assert_eq!(d["allowed"], false, "{d}");
    let blocking: Vec<&str> = d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["blocking"] == true)
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(blocking, vec!["no_consent"], "{d}");

    // Without --redact the export is refused, with the reason.
    let out_dir = env.root().join("out");
    let refused = env.cli(&[
        "export",
        &asset,
        "--purpose",
        "website",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--redact") && stderr.contains("Bystander has no consent"),
        "{stderr}"
    );

    let done = env.cli(&[
        "export",
        &asset,
        "--purpose",
        "website",
        "--xmp",
        "--redact",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let stem = format!("{}-website", &asset[..16]);
    let redacted = out_dir.join(format!("{stem}-redacted.jpg"));
    let sidecar = out_dir.join(format!("{stem}-redacted.xmp"));
    assert!(
        redacted.is_file()
            && sidecar.is_file()
            && out_dir.join(format!("{stem}.decision.json")).is_file()
    );

    // Our own engine: the bystander is gone, Léa is still Léa.
    let original = embeddings(&env, &photo);
    assert_eq!(original.len(), 2);
    let by_x = |faces: &[(Vec<f64>, [f64; 4])], x: f64| {
        faces
            .iter()
            .min_by(|a, b| (a.1[0] - x).abs().total_cmp(&(b.1[0] - x).abs()))
            .unwrap()
            .0
            .clone()
    };
    let (lea, bystander) = (by_x(&original, left.1), by_x(&original, right.1));
    let after = embeddings(&env, &redacted);
    let nearest_bystander = after
        .iter()
        .map(|f| distance(&f.0, &bystander))
        .fold(f64::INFINITY, f64::min);
    let nearest_lea = after
        .iter()
        .map(|f| distance(&f.0, &lea))
        .fold(f64::INFINITY, f64::min);
    println!(
        "redacted copy: {} face(s); nearest to the bystander {nearest_bystander:.3}, to Léa {nearest_lea:.3}",
        after.len()
    );
    assert!(
        nearest_bystander >= 0.6,
        "a face in the redacted copy still matches the bystander ({nearest_bystander:.3})"
    );
    assert!(nearest_lea < 0.2, "Léa's face changed ({nearest_lea:.3})");

    // The sidecar, as exiftool reads it.
    let exif = std::process::Command::new("exiftool")
        .args(["-j", "-struct"])
        .arg(&sidecar)
        .output()
        .unwrap();
    assert!(exif.status.success());
    let x: serde_json::Value = serde_json::from_slice(&exif.stdout).unwrap();
    let x = &x[0];
    println!("{}", serde_json::to_string_pretty(x).unwrap());
    assert_eq!(x["PersonInImage"], serde_json::json!(["Léa Martin"]), "{x}");
    assert!(
        x["ModelReleaseStatus"].to_string().contains("Limited"),
        "{x}"
    );
    assert_eq!(x["ModelReleaseID"], serde_json::json!([consent]), "{x}");
    assert!(x["LicenseEndDate"].to_string().contains("2027"), "{x}");
    assert_eq!(x["Rights"], "© Gemeente Test", "{x}");
    let regions = x["RegionInfo"]["RegionList"]
        .as_array()
        .expect("MWG regions");
    assert_eq!(regions.len(), 1, "only the kept face has a region: {x}");
    let r = &regions[0];
    assert_eq!(r["Name"], "Léa Martin");
    let (w, h) = (
        x["RegionInfo"]["AppliedToDimensions"]["W"]
            .as_f64()
            .unwrap(),
        x["RegionInfo"]["AppliedToDimensions"]["H"]
            .as_f64()
            .unwrap(),
    );
    let area = &r["Area"];
    let cx = area["X"].as_f64().unwrap() * w;
    let cy = area["Y"].as_f64().unwrap() * h;
    assert!(
        (cx - (left.1 + left.3 / 2.0)).abs() <= 1.0 && (cy - (left.2 + left.4 / 2.0)).abs() <= 1.0,
        "region centre {cx},{cy} vs box {left:?}"
    );
    assert!(
        (area["W"].as_f64().unwrap() * w - left.3).abs() <= 1.0
            && (area["H"].as_f64().unwrap() * h - left.4).abs() <= 1.0
    );

    // Withdrawal takes effect at once, and the report names the photo.
    env.cli_json_lines(&[
        "consent",
        "withdraw",
        &consent,
        "--reason",
        "asked in person",
        "--json",
    ]);
    let d = env.cli_json_lines(&["decide", &asset, "--purpose", "print", "--json"])[0].clone();
    let codes: Vec<&str> = d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["blocking"] == true)
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"consent_withdrawn"), "{d}");
    let report = env.cli_json_lines(&["report", "withdrawn", "--json"]);
    assert_eq!(report[0]["assets"], serde_json::json!([asset]));
    let blocked = env.cli_json_lines(&["report", "blocked", "--purpose", "print", "--json"]);
    assert_eq!(blocked.len(), 1);
    daemon.stop();
}
