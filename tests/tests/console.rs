//! The web console's access rules and security, end to end over HTTPS:
//! - the authorisation matrix: every route of the route table × every role ×
//!   an object in the user's collection and one outside it, against this
//!   file's own statement of the policy (zero leaks, lists included);
//! - CSRF, cookie flags, login throttling, no password in any log, the
//!   generated certificate, plain HTTP never carrying data, and the privacy
//!   officer's audited override of a restriction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use consentry::console::authz::Permission;
use consentry::console::routes::{ROUTES, Target};
use consentry_tests::console::{Console, Reply};
use consentry_tests::{Env, files_under, require_testdata};
use serde_json::Value;

const PASSWORD: &str = "a long console passphrase";

/// The roles under test, with the grants they are created with.
const ROLES: [(&str, &str); 5] = [
    ("adm", "admin"),
    ("pia", "privacy-officer"),
    ("eve", "editor:e2e"),
    ("vic", "viewer:e2e"),
    ("aud", "auditor"),
];

/// The policy in this test's own words: which permission a path needs.
fn expected_permission(method: &str, path: &str) -> Permission {
    use Permission::*;
    let p = path.strip_prefix("/api/v1").unwrap_or(path);
    match p {
        "/" | "/status.json" | "/logout" | "/status" | "/session" => SignedIn,
        "/metrics" => SystemStatus,
        _ if p.starts_with("/users") => Users,
        _ if p.starts_with("/audit") => Audit,
        _ if p.starts_with("/dsr") => Dsr,
        _ if p.ends_with("/original") || p.ends_with("/redacted") => PhotoDownload,
        _ if p.ends_with("/crop") || p == "/search" => FaceView,
        _ if p.ends_with("/restrict") || p.ends_with("/optout") => Restrict,
        _ if p.ends_with("/consents") || p.ends_with("/withdraw") => ConsentEdit,
        _ if p.starts_with("/review")
            || p.ends_with("/name")
            || p.ends_with("/merge")
            || p.ends_with("/reject")
            || p.ends_with("/licence") =>
        {
            FaceEdit
        }
        _ if p.starts_with("/people") || p.starts_with("/consents") => PersonView,
        _ if p.starts_with("/photos") => PhotoView,
        _ => panic!("{method} {path}: this test does not know what it should need; add it"),
    }
}

/// Whether `role` may use `permission` on an object in its own collection
/// (`own`), outside it, or on nothing in particular (`None`).
fn expected_allowed(role: &str, permission: Permission, own: Option<bool>) -> bool {
    use Permission::*;
    match role {
        "admin" => matches!(permission, SignedIn | SystemStatus | Users),
        "privacy-officer" => permission != Users,
        "auditor" => matches!(permission, SignedIn | Audit),
        "editor:e2e" => {
            permission == SignedIn
                || (own != Some(false)
                    && matches!(
                        permission,
                        PhotoView | PhotoDownload | FaceView | FaceEdit | PersonView | ConsentEdit
                    ))
        }
        "viewer:e2e" => {
            permission == SignedIn
                || (own != Some(false) && matches!(permission, PhotoView | PhotoDownload))
        }
        other => panic!("unknown role {other}"),
    }
}

/// Identities with at least `n` photos.
fn identities(data: &Path, n: usize) -> Vec<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data.join("faces/identities"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|d| {
            files_under(&d)
                .into_iter()
                .map(|f| d.join(f))
                .collect::<Vec<_>>()
        })
        .filter(|f| f.len() >= n)
        .collect()
}

fn ok(env: &Env, args: &[&str]) -> Vec<Value> {
    env.cli_json_lines(args)
}

/// Everything the matrix needs, in two collections: `e2e` (the editor's and
/// viewer's) and `other`.
struct World {
    env: Env,
    asset: BTreeMap<bool, String>,
    face: BTreeMap<bool, String>,
    person: BTreeMap<bool, String>,
    consent: BTreeMap<bool, String>,
    cluster: BTreeMap<bool, String>,
    /// A photo of `e2e` no purpose allows (an unknown face, no consent).
    blocked_own: String,
    names: Vec<String>,
}

fn asset_by_source(env: &Env, file: &Path) -> Value {
    let name = file.file_name().unwrap().to_string_lossy();
    env.assets()
        .into_iter()
        .find(|a| {
            a["sources"][0]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&*name))
        })
        .unwrap_or_else(|| panic!("{name} was not ingested"))
}

fn first_face(env: &Env, asset: &Value) -> String {
    let id = asset["id"].as_str().unwrap();
    let shown = ok(env, &["assets", "show", id, "--json"]);
    let faces = shown[0]["faces"].as_array().unwrap();
    assert!(!faces.is_empty(), "no face found in {id}");
    format!("{id}:{}", faces[0]["no"])
}

fn build_world(data: &Path) -> World {
    let env = Env::with_people("keep", "", "recognition = [\"*\"]\ncluster_min_faces = 2");
    let ids = identities(data, 2);
    let (alice, bob, carol, dan) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let ingest = |collection: &str, files: &[&PathBuf]| {
        let mut args = vec!["ingest", "--collection", collection];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        let out = env.cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ingest("e2e", &[&alice[0], &carol[0], &carol[1]]);
    ingest("other", &[&bob[0], &dan[0], &dan[1]]);
    let pdf = env.root().join("release.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\n% signed release\n%%EOF\n").unwrap();
    let mut world = World {
        asset: BTreeMap::new(),
        face: BTreeMap::new(),
        person: BTreeMap::new(),
        consent: BTreeMap::new(),
        cluster: BTreeMap::new(),
        blocked_own: asset_by_source(&env, &carol[0])["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        names: vec!["Alice Example".into(), "Bob Example".into()],
        env,
    };
    for (own, file, name) in [
        (true, &alice[0], "Alice Example"),
        (false, &bob[0], "Bob Example"),
    ] {
        let env = &world.env;
        let asset = asset_by_source(env, file);
        let face = first_face(env, &asset);
        let added = ok(env, &["people", "add", name, "--face", &face, "--json"]);
        let person = added[0]["person"]["id"].as_str().unwrap().to_owned();
        let consent = ok(
            env,
            &[
                "consent",
                "add",
                &person,
                "--purpose",
                "website",
                "--purpose",
                "internal",
                "--signed-on",
                "2026-01-05",
                "--document",
                pdf.to_str().unwrap(),
                "--json",
            ],
        );
        world
            .consent
            .insert(own, consent[0]["id"].as_str().unwrap().to_owned());
        world
            .asset
            .insert(own, asset["id"].as_str().unwrap().to_owned());
        world.face.insert(own, face);
        world.person.insert(own, person);
    }
    ok(&world.env, &["people", "maintain", "--json"]);
    for cluster in ok(&world.env, &["clusters", "list", "--json"]) {
        let first = cluster["faces"][0].as_str().unwrap();
        let asset = first.split(':').next().unwrap();
        let shown = ok(&world.env, &["assets", "show", asset, "--json"]);
        let own = shown[0]["collection"] == "e2e";
        world
            .cluster
            .insert(own, cluster["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        world.cluster.len(),
        2,
        "one cluster in each collection expected"
    );
    world
}

/// The concrete path for `route` on the own or other object.
fn concrete(world: &World, path: &str, target: Target, own: bool, case: &str) -> String {
    let mut out = Vec::new();
    let mut index = 0;
    for segment in path.split('/') {
        if segment.starts_with('{') {
            let value = match (target, index, segment) {
                (_, _, "{case}") => case.to_owned(),
                (_, _, "{name}") => "target".to_owned(),
                (Target::Photo, 0, _) => world.asset[&own].clone(),
                (Target::Photo, _, "{no}") => {
                    world.face[&own].split(':').nth(1).unwrap().to_owned()
                }
                (Target::Person, _, _) => world.person[&own].clone(),
                (Target::Consent, _, _) => world.consent[&own].clone(),
                (Target::Cluster, _, _) => world.cluster[&own].clone(),
                other => panic!("cannot fill {segment} of {path} ({other:?})"),
            };
            index += 1;
            out.push(value);
        } else {
            out.push(segment.to_owned());
        }
    }
    out.join("/")
}

/// What must never be in a refusal: photo bytes, names, file names.
fn assert_no_leak(reply: &Reply, world: &World, what: &str) {
    assert!(
        !reply.body.starts_with(&[0xFF, 0xD8, 0xFF]),
        "{what}: JPEG bytes in a refusal"
    );
    assert!(!reply.body.starts_with(b"PK"), "{what}: a zip in a refusal");
    assert!(
        !reply.body.starts_with(b"%PDF"),
        "{what}: a document in a refusal"
    );
    let text = reply.text();
    for name in &world.names {
        assert!(
            !text.contains(name.as_str()),
            "{what}: the refusal names {name}"
        );
    }
}

fn signed_in(world: &World, base: &str, user: &str) -> Console {
    let mut c = Console::new(base, &world.env.console_cert());
    let reply = c.signin(user, PASSWORD);
    assert_eq!(reply.status, 200, "sign-in as {user}: {}", reply.text());
    c
}

#[test]
fn every_route_for_every_role_in_and_outside_its_collections() {
    let data = require_testdata!();
    let world = build_world(&data);
    let env = &world.env;
    for (user, role) in ROLES {
        env.add_user(user, PASSWORD, &[role]);
    }
    env.add_user("target", PASSWORD, &["viewer:e2e"]);
    let case = ok(
        env,
        &[
            "dsr",
            "open",
            &world.person[&true],
            "--kind",
            "access",
            "--json",
        ],
    )[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let daemon = env.start();
    let base = daemon.console_url();
    let clients: Vec<(&str, Console)> = ROLES
        .iter()
        .map(|(u, r)| (*r, signed_in(&world, &base, u)))
        .collect();

    // Not signed in: nothing but a redirect to the sign-in page (or 401).
    let anonymous = Console::new(&base, &env.console_cert());
    let mut checked = 0;
    for route in ROUTES {
        let permission = expected_permission(route.method, route.path);
        assert_eq!(
            permission, route.permission,
            "{} {} is labelled {:?}",
            route.method, route.path, route.permission
        );
        if route.path == "/logout" || route.path == "/api/v1/session" {
            continue; // signing out is checked at the end
        }
        let sides: &[Option<bool>] = if route.target == Target::Global {
            &[None]
        } else {
            &[Some(true), Some(false)]
        };
        for &own in sides {
            let path = concrete(&world, route.path, route.target, own.unwrap_or(true), &case);
            let what = format!("{} {path}", route.method);
            let reply = match route.method {
                "GET" => anonymous.get(&path),
                _ => anonymous.post_form(&path, &[]),
            };
            assert!(
                matches!(reply.status, 303 | 401),
                "{what} without a session answered {}",
                reply.status
            );
            assert_no_leak(&reply, &world, &what);
            for (role, client) in &clients {
                let reply = match route.method {
                    "GET" => client.get(&path),
                    "POST" => client.post(&path, &[]),
                    other => panic!("{other} routes are not covered"),
                };
                let allowed = expected_allowed(role, permission, own);
                let what = format!(
                    "{role}: {what} ({:?}, {})",
                    permission,
                    match own {
                        Some(true) => "own",
                        Some(false) => "other",
                        None => "global",
                    }
                );
                if allowed {
                    assert!(
                        !matches!(reply.status, 401 | 403 | 404),
                        "{what} was refused ({}): {}",
                        reply.status,
                        reply.text().chars().take(300).collect::<String>()
                    );
                } else {
                    assert!(
                        matches!(reply.status, 403 | 404),
                        "{what} was allowed ({}) — a leak",
                        reply.status
                    );
                    assert_no_leak(&reply, &world, &what);
                }
                checked += 1;
            }
        }
    }
    eprintln!(
        "authorisation matrix: {checked} checks over {} routes",
        ROUTES.len()
    );

    // Lists, searches and the API leak nothing from outside the collections.
    let editor = &clients[2].1;
    let viewer = &clients[3].1;
    let (own, other) = (&world.asset[&true], &world.asset[&false]);
    for (who, client) in [("editor", editor), ("viewer", viewer)] {
        for path in ["/photos", "/", "/api/v1/photos", "/people", "/review"] {
            let text = client.get(path).text();
            assert!(
                !text.contains(other.as_str()),
                "{who}: {path} shows the other collection's photo"
            );
            assert!(
                !text.contains("Bob Example"),
                "{who}: {path} names a person of the other collection"
            );
        }
    }
    assert!(editor.get("/photos").text().contains(own.as_str()));
    assert!(editor.get("/people").text().contains("Alice Example"));
    assert!(editor.get("/review").text().contains(&world.cluster[&true]));
    assert!(
        !editor
            .get("/review")
            .text()
            .contains(&world.cluster[&false])
    );
    let photos = viewer.get("/api/v1/photos").json();
    let seen: Vec<&str> = photos
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["asset"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        seen,
        [own.as_str()],
        "the viewer sees exactly the usable photo of its collection"
    );
    assert_eq!(
        viewer.get(&format!("/photos/{}", world.blocked_own)).status,
        404,
        "a blocked photo is hidden from viewers"
    );
    assert_eq!(
        viewer.get(&format!("/api/v1/photos/{own}")).json()["faces"],
        serde_json::json!([]),
        "viewers get no faces"
    );
    let search = editor.get(&format!("/api/v1/search?person={}", world.person[&false]));
    assert_eq!(
        search.status, 404,
        "search for a person outside the collections"
    );
    let search = editor
        .get(&format!("/api/v1/search?person={}", world.person[&true]))
        .json();
    assert!(
        search
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["asset"] == own.as_str())
    );

    // Signing out ends the session for every role.
    for (role, client) in &clients {
        let reply = client.post("/logout", &[]);
        assert_eq!(reply.status, 303, "{role}: sign out");
        assert!(reply.header("set-cookie").unwrap().contains("Max-Age=0"));
        assert_eq!(
            client.get("/").status,
            303,
            "{role}: the session still works after signing out"
        );
    }
    let mut api = signed_in(&world, &base, "eve");
    assert_eq!(
        api.request(
            "DELETE",
            "/api/v1/session",
            None,
            &[("x-csrf-token", &api.csrf.clone().unwrap())]
        )
        .status,
        200
    );
    assert_eq!(api.get("/api/v1/status").status, 401);
    api.cookie = None;
    drop(daemon);
}

#[test]
fn sessions_csrf_throttling_tls_and_plain_http() {
    let data = require_testdata!();
    let world = build_world(&data);
    let env = &world.env;
    // A plain-HTTP port that may only redirect.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        config.replace("[web]\n", "[web]\nhttp_listen = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    env.add_user("pia", PASSWORD, &["privacy-officer"]);
    env.add_user("eve", PASSWORD, &["editor:e2e"]);
    let mut daemon = env.start();
    let base = daemon.console_url();
    let own = world.asset[&true].clone();

    // The certificate served is the generated one, and the log says which.
    let cert = env.root().join("tls/console.crt");
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl");
    let fingerprint = String::from_utf8_lossy(&out.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        daemon
            .log()
            .contains(&format!("certificate SHA-256 {fingerprint}")),
        "fingerprint {fingerprint} not logged"
    );
    // (`Console` trusts only that certificate: every request below proves it is served.)

    // Cookie flags.
    let mut pia = Console::new(&base, &env.console_cert());
    let reply = pia.signin("pia", PASSWORD);
    let cookie = reply.header("set-cookie").unwrap();
    for flag in [
        "__Host-consentry=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(
            cookie.contains(flag),
            "session cookie lacks {flag}: {cookie}"
        );
    }
    assert!(!cookie.contains("Domain"), "a __Host- cookie has no Domain");
    let page = pia.get("/");
    assert!(
        page.header("strict-transport-security")
            .is_some_and(|h| h.contains("max-age="))
    );
    assert!(
        page.header("content-security-policy")
            .is_some_and(|h| h.contains("default-src 'self'"))
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));

    // CSRF: missing or wrong token → refused, nothing changes.
    let restrict = format!("/photos/{own}/restrict");
    let no_token = pia.post_form(
        &restrict,
        &[("reason", "objection"), ("restricted", "true")],
    );
    assert_eq!(no_token.status, 403, "no CSRF token");
    let wrong = pia.post_form(
        &restrict,
        &[
            ("reason", "objection"),
            ("restricted", "true"),
            ("csrf", "00ff"),
        ],
    );
    assert_eq!(wrong.status, 403, "a wrong CSRF token");
    let api_wrong = pia.request(
        "POST",
        &format!("/api/v1/consents/{}/withdraw", world.consent[&true]),
        Some(("application/json", br#"{"reason":"x"}"#.to_vec())),
        &[("x-csrf-token", "bad")],
    );
    assert_eq!(api_wrong.status, 403, "API: a wrong CSRF header");
    let eve = {
        let mut c = Console::new(&base, &env.console_cert());
        c.signin("eve", PASSWORD);
        c
    };
    assert_eq!(
        eve.get(&format!("/photos/{own}")).status,
        200,
        "not restricted yet"
    );

    // With the token: restricted. Editors lose sight of it; the privacy
    // officer's look past the restriction is audited as an override.
    let done = pia.post(
        &restrict,
        &[("reason", "objection (Art. 21)"), ("restricted", "true")],
    );
    assert_eq!(done.status, 303, "{}", done.text());
    assert_eq!(eve.get(&format!("/photos/{own}")).status, 404);
    assert_eq!(eve.get(&format!("/photos/{own}/thumb")).status, 404);
    let page = pia.get(&format!("/photos/{own}"));
    assert_eq!(page.status, 200);
    assert!(page.text().contains("restricted"));
    let thumb = pia.get(&format!("/photos/{own}/thumb"));
    assert!(
        thumb.body.starts_with(&[0xFF, 0xD8, 0xFF]),
        "the officer gets the thumbnail"
    );
    let events = env.cli_json_lines(&["audit", "export", "--format", "jsonl"]);
    assert!(
        events.iter().any(|e| e["action"] == "asset.thumbnail"
            && e["actor"] == "pia"
            && e["via"] == "web"
            && e["details"]["override"] == "restriction"),
        "the override is audited"
    );
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "console.csrf" && e["outcome"] == "refused"),
        "CSRF refusals are audited"
    );
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "console.denied" && e["actor"] == "eve"),
        "denials are audited"
    );

    // Plain HTTP: a redirect and no data, on the redirect port and the TLS port.
    let plain = daemon
        .log()
        .lines()
        .find_map(|l| {
            l.split("plain HTTP on http://")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        })
        .expect("the plain-HTTP port in the log");
    let raw = |addr: &str, request: &str| -> Vec<u8> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    };
    let cookie_pair = pia.cookie.clone().unwrap();
    let answer = raw(
        &plain,
        &format!(
            "GET /photos/{own}/original HTTP/1.1\r\nHost: archive.example\r\nCookie: {cookie_pair}\r\nConnection: close\r\n\r\n"
        ),
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 308"), "plain HTTP: {text}");
    assert!(text.contains(&format!(
        "https://archive.example:{}/photos/{own}/original",
        base.rsplit(':').next().unwrap()
    )));
    assert!(text.ends_with("\r\n\r\n"), "a redirect with a body: {text}");
    let tls_port = base.trim_start_matches("https://");
    let answer = raw(
        tls_port,
        &format!("GET /photos/{own}/original HTTP/1.1\r\nHost: x\r\nCookie: {cookie_pair}\r\n\r\n"),
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
        "plain HTTP on the TLS port answered"
    );
    assert!(
        !answer.windows(3).any(|w| w == [0xFF, 0xD8, 0xFF]),
        "photo bytes over plain HTTP"
    );

    // Throttling: after 5 wrong passwords the right one is refused too.
    let wrong_password = "not-the-password-123";
    let mut attacker = Console::new(&base, &env.console_cert());
    for _ in 0..5 {
        assert_eq!(attacker.signin("eve", wrong_password).status, 401);
    }
    let locked = attacker.signin("eve", PASSWORD);
    assert_eq!(locked.status, 429, "locked out: {}", locked.text());
    assert!(locked.text().contains("Try again in"));
    // The sign-in page itself says the same.
    let form = attacker.get("/login");
    assert_eq!(form.status, 200);
    daemon.assert_alive();

    // No password, right or wrong, in the log or the audit trail.
    let events = env.cli(&["audit", "export", "--format", "jsonl"]);
    let audit = String::from_utf8_lossy(&events.stdout);
    assert!(audit.contains("session.signin"), "sign-ins are audited");
    let log = daemon.stop();
    for secret in [PASSWORD, wrong_password] {
        assert!(!log.contains(secret), "a password in the daemon's log");
        assert!(!audit.contains(secret), "a password in the audit trail");
    }
}
