//! The web console's acceptance test in a real headless Chromium (Debian
//! `chromium` + `chromium-driver`): an editor signs in, drops a photo through
//! the share, waits for it on the dashboard, names the face, records a
//! consent for "website" (with a signed PDF), sees the decision for "website"
//! turn to allowed, withdraws the consent and sees it blocked again with the
//! withdrawal as the reason. A privacy officer then opens a data-subject
//! request and looks at the audit trail, and an admin at the users.
//!
//! Screenshots of every screen (`NN-<screen>.png`) and chromedriver's log are
//! kept in `target/test-artefacts/console/` for CI and people to look at.
//! Skipped with a visible reason where the shared test data or Chromium is
//! absent (an error under CI).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use consentry_tests::browser::{self, Browser};
use consentry_tests::{Daemon, Env, require_testdata};

const RECOGNISE_ALL: &str = "recognition = [\"*\"]\n";
/// The photo dropped into the share: one face, big enough to look at.
const PHOTO: &str = "faces/identities/obama/obama.jpg";
const PHOTO_NAME: &str = "obama.jpg";
const PERSON: &str = "Barack Obama";
const EDITOR: (&str, &str) = ("eve", "correct-horse-battery-1");
const OFFICER: (&str, &str) = ("pia", "staple-orbit-lantern-2");
const ADMIN: (&str, &str) = ("ada", "quiet-meadow-harbour-3");

const INGEST: Duration = Duration::from_secs(90);
const PAGE: Duration = Duration::from_secs(20);

/// `target/test-artefacts/console` of this workspace, emptied of the last
/// run's screenshots.
fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artefacts/console");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    std::path::absolute(&dir).unwrap()
}

/// Everything a failure needs: the browser's state (screenshot and page
/// source saved) and the end of the daemon's log.
struct Run<'a> {
    browser: &'a Browser,
    daemon: &'a Daemon,
    base: String,
    /// The browser console's entries, collected as the test goes.
    console: Vec<String>,
}

impl Run<'_> {
    fn ok<T>(&self, result: Result<T, String>) -> T {
        result.unwrap_or_else(|e| {
            panic!(
                "{e}\n{}\nthe daemon's log ends:\n{}",
                self.browser.dump("failure"),
                self.daemon.log_tail(30)
            )
        })
    }

    fn check(&self, condition: bool, what: &str) {
        if !condition {
            self.ok::<()>(Err(what.to_owned()));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn goto(&mut self, path: &str) {
        let url = self.url(path);
        self.ok(self.browser.goto(&url));
        self.collect_console();
    }

    fn shot(&mut self, name: &str) {
        let path = self.ok(self.browser.screenshot(name));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        self.check(
            size > 4096,
            &format!("screenshot {name} is only {size} bytes"),
        );
        self.collect_console();
    }

    fn collect_console(&mut self) {
        let here = self.browser.url().unwrap_or_default();
        let entries = self.ok(self.browser.console_log());
        self.console
            .extend(entries.into_iter().map(|e| format!("{e} (on {here})")));
    }

    /// Scrolls the element to the top of the viewport (for a screenshot).
    fn scroll_to(&self, css: &str) {
        let element = self.ok(self.browser.find(css));
        self.ok(self.browser.execute(
            "arguments[0].scrollIntoView({block: 'start'}); return null;",
            vec![element.to_json()],
        ));
    }

    /// Waits until every `<img>` and SVG `<image>` has finished loading
    /// (a screenshot with half-loaded photos says nothing).
    fn images_loaded(&self) {
        let started = Instant::now();
        loop {
            let pending = self.ok(self.browser.execute(
                "return Array.from(document.images).filter(i => !i.complete).length;",
                vec![],
            ));
            if pending.as_u64() == Some(0) {
                return;
            }
            self.check(
                started.elapsed() < PAGE,
                &format!("{pending} image(s) still loading after {PAGE:?}"),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every `<img>` on the page that failed to decode (a broken thumbnail).
    fn broken_images(&self) -> Vec<String> {
        let broken = self.ok(self.browser.execute(
            "return Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0).map(i => i.src);",
            vec![],
        ));
        broken
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn no_broken_images(&self) {
        let broken = self.broken_images();
        self.check(broken.is_empty(), &format!("broken images: {broken:?}"));
    }

    fn sign_in(&mut self, (user, password): (&str, &str)) {
        self.goto("/");
        self.ok(self.browser.wait_url("/login", PAGE));
        self.ok(self.browser.fill("#user", user));
        self.ok(self.browser.fill("#password", password));
        self.ok(self.browser.click("#signin"));
        // The dashboard, with the signed-in user in the header.
        self.ok(self.browser.wait_text("header.top .who", user, PAGE, None));
        self.collect_console();
    }

    fn sign_out(&mut self) {
        self.ok(self.browser.click("header.top .signout button"));
        self.ok(self.browser.wait_url("/login", PAGE));
        self.collect_console();
    }

    /// The decision row for `purpose` on the photo page: (data-allowed, text).
    fn decision(&self, purpose: &str) -> (String, String) {
        let css = format!("tr#decision-{purpose}");
        let allowed = self
            .ok(self.browser.attr(&css, "data-allowed"))
            .unwrap_or_default();
        let text = self.ok(self.browser.text(&css));
        (allowed, text)
    }
}

/// A one-page PDF, enough to be stored and handed back as the signed form.
fn consent_pdf(dir: &Path) -> PathBuf {
    let body = "%PDF-1.4\n\
1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >> endobj\n\
trailer << /Root 1 0 R >>\n%%EOF\n";
    let path = dir.join("consent-signed.pdf");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn editor_names_a_face_and_consent_decides_website_use() {
    let data = require_testdata!();
    let started = Instant::now();
    let dir = artefacts();
    let Some(browser) = browser::start_or_skip(&dir) else {
        return;
    };
    let env = Env::with_people("delete", "", RECOGNISE_ALL);
    let daemon = env.start();
    env.add_user(EDITOR.0, EDITOR.1, &["editor:e2e"]);
    env.add_user(OFFICER.0, OFFICER.1, &["privacy-officer"]);
    env.add_user(ADMIN.0, ADMIN.1, &["admin"]);
    let mut run = Run {
        browser: &browser,
        daemon: &daemon,
        base: daemon.console_url(),
        console: Vec::new(),
    };
    let b = &browser;

    // 1. Not signed in: the console sends us to the sign-in form.
    run.goto("/");
    run.ok(b.wait_url("/login", PAGE));
    run.ok(b.wait_for("#signin", PAGE));
    run.shot("01-signin");

    // 2. The editor signs in and lands on the (empty) dashboard.
    run.sign_in(EDITOR);
    let url = run.ok(b.url());
    run.check(
        url == run.url("/"),
        &format!("after signing in the browser is at {url}, not the dashboard"),
    );
    run.ok(b.wait_for("#recent", PAGE));
    run.check(
        run.ok(b.find_all("#recent li")).is_empty(),
        "the dashboard of an empty catalogue lists recent photos",
    );
    run.shot("02-dashboard-empty");

    // The session cookie: HttpOnly, Secure, SameSite=Strict, a __Host- name.
    let cookies = run.ok(b.cookies());
    let session = cookies.iter().find(|c| c.name == "__Host-consentry");
    run.check(
        session.is_some(),
        &format!("no __Host-consentry cookie; the browser holds {cookies:?}"),
    );
    let session = session.unwrap();
    run.check(
        session.http_only && session.secure && session.same_site.as_deref() == Some("Strict"),
        &format!("the session cookie is not HttpOnly, Secure and SameSite=Strict: {session:?}"),
    );
    run.check(
        session.path.as_deref() == Some("/") && !session.value.is_empty(),
        &format!("the session cookie's path is not / (or it is empty): {session:?}"),
    );

    // 3. A photo arrives through the share: the live numbers change without
    //    a reload (console.js polls), the recent list on the next reload.
    let bytes = std::fs::read(data.join(PHOTO)).unwrap();
    let dropped = Instant::now();
    env.drop_file(PHOTO_NAME, &bytes);
    run.ok(b.wait_text("#assets-ready", "1", INGEST, None));
    let ingest_time = dropped.elapsed();
    run.ok(b.wait_text("#recent", PHOTO_NAME, PAGE, Some(Duration::from_secs(2))));
    run.images_loaded();
    run.no_broken_images();
    run.shot("03-dashboard-ingested");

    // 4. The photo page: one unknown face, boxed; nothing may be used for
    //    the website yet (an unknown face blocks it).
    let link = run.ok(b.find("#recent a[data-asset]"));
    let asset = run
        .ok(b.element_attr(&link, "data-asset"))
        .unwrap_or_default();
    run.ok(b.click_element(&link));
    let photo_path = format!("/photos/{asset}");
    run.ok(b.wait_url(&photo_path, PAGE));
    run.ok(b.wait_for("svg#photo image", PAGE));
    let faces = run.ok(b.find_all("svg#photo g[data-face]"));
    run.check(
        faces.len() == 1,
        &format!("{} face boxes on the photo, not 1", faces.len()),
    );
    let no = run
        .ok(b.element_attr(&faces[0], "data-face"))
        .unwrap_or_default();
    run.check(
        run.ok(b.attr("svg#photo g[data-face]", "class")).as_deref() == Some("face unknown"),
        "the face is not drawn as unknown",
    );
    run.ok(b.wait_text(&format!("#face-{no}"), "unknown", PAGE, None));
    let (allowed, text) = run.decision("website");
    run.check(
        allowed == "false" && text.contains("blocked"),
        &format!("an unknown face must block the website: {allowed} {text:?}"),
    );
    run.images_loaded();
    run.no_broken_images();
    run.shot("04-photo-unknown-face");

    // Name the face: a new person.
    run.ok(b.fill(&format!("#name-{no}"), PERSON));
    run.scroll_to("section:has(> ul.faces)");
    run.shot("05-photo-naming-face");
    run.ok(b.click(&format!("#name-{no}-save")));
    run.ok(b.wait_text(&format!("#face-{no}"), PERSON, PAGE, None));
    run.ok(b.wait_for(
        &format!("svg#photo g.face.confirmed[data-face=\"{no}\"]"),
        PAGE,
    ));
    let (allowed, text) = run.decision("website");
    run.check(
        allowed == "false" && text.contains("blocked"),
        &format!("a named person without consent must block the website: {allowed} {text:?}"),
    );
    run.images_loaded();
    run.shot("06-photo-named");

    // 5. The person page: record a consent for "website" with its signed form.
    run.ok(b.click(&format!("#face-{no} a[href^=\"/people/\"]")));
    run.ok(b.wait_for("#consent-form", PAGE));
    let person_url = run.ok(b.url());
    run.ok(b.wait_text("main h1", PERSON, PAGE, None));
    let signed = run.ok(b.property("#consent-signed", "value"));
    run.check(
        signed.as_str().is_some_and(|d| d.len() == 10),
        &format!("the signed-on date is not pre-filled: {signed}"),
    );
    run.images_loaded();
    run.no_broken_images();
    run.shot("07-person");
    run.ok(b.click("#purpose-website"));
    run.check(
        run.ok(b.property("#purpose-website", "checked")) == serde_json::json!(true),
        "ticking #purpose-website did not check it",
    );
    let scratch = tempfile::tempdir().unwrap();
    run.ok(b.upload("#consent-document", &consent_pdf(scratch.path())));
    run.ok(b.click("#consent-save"));
    run.ok(b.wait_for("#consents tr.consent", PAGE));
    let row = run.ok(b.text("#consents tr.consent"));
    run.check(
        row.contains("website") && row.contains("valid") && row.contains("document"),
        &format!("the consent row does not show website, valid and its document: {row:?}"),
    );
    run.scroll_to("#consents");
    run.shot("08-person-consent");

    // 6. The photo may now be used on the website.
    run.goto(&photo_path);
    let (allowed, text) = run.decision("website");
    run.check(
        allowed == "true" && text.contains("allowed") && text.contains("consent"),
        &format!("with the consent the website must be allowed: {allowed} {text:?}"),
    );
    let (print_allowed, _) = run.decision("print");
    run.check(
        print_allowed == "false",
        "the consent covers the website only, yet print is allowed",
    );
    run.images_loaded();
    run.shot("09-photo-allowed");

    // 7. Withdraw the consent; the website is blocked again, and the
    //    withdrawal is the reason.
    run.ok(b.goto(&person_url));
    let reason = "asked by e-mail to stop";
    run.ok(b.fill("input[id^=withdraw-reason-]", reason));
    run.ok(b.click("button[id^=withdraw-]"));
    run.ok(b.wait_text("#consents tr.consent", "withdrawn", PAGE, None));
    run.check(
        run.ok(b.find_all("button[id^=withdraw-]")).is_empty(),
        "a withdrawn consent still offers to be withdrawn",
    );
    run.scroll_to("#consents");
    run.shot("10-person-withdrawn");
    run.goto(&photo_path);
    let (allowed, text) = run.decision("website");
    run.check(
        allowed == "false"
            && text.contains("blocked")
            && text.contains("withdrawn")
            && text.contains(reason),
        &format!(
            "after the withdrawal the website must be blocked because of it: {allowed} {text:?}"
        ),
    );
    run.images_loaded();
    run.shot("11-photo-blocked-after-withdrawal");

    // On a tablet (800 px wide) the photo page stacks and nothing overflows.
    run.ok(b.set_window_size(800, 1100));
    run.ok(b.refresh());
    run.images_loaded();
    let overflow = run.ok(b.execute(
        "return document.documentElement.scrollWidth - window.innerWidth;",
        vec![],
    ));
    run.check(
        overflow.as_i64().is_some_and(|o| o <= 0),
        &format!("the photo page is {overflow} px wider than a tablet's window"),
    );
    run.shot("11t-photo-tablet");
    run.ok(b.set_window_size(1280, 900));

    // 8. The editor's other screens.
    run.goto("/photos");
    run.ok(b.wait_text("#photo-grid", PHOTO_NAME, PAGE, None));
    run.images_loaded();
    run.no_broken_images();
    run.shot("12-photos");
    run.goto("/review");
    run.shot("13-review");
    run.goto("/people");
    run.ok(b.wait_text("main table", PERSON, PAGE, None));
    run.shot("14-people");
    run.goto("/");
    run.ok(b.wait_text("#withdrawals", PERSON, PAGE, None));
    run.images_loaded();
    run.shot("15-dashboard-editor");
    run.sign_out();
    // Signed out: the old session no longer opens the console.
    run.goto("/photos");
    run.ok(b.wait_url("/login", PAGE));

    // The privacy officer: a data-subject request for the person, the audit trail.
    run.sign_in(OFFICER);
    run.ok(b.wait_for("#dsr-due", PAGE));
    run.shot("16-dashboard-officer");
    run.goto("/dsr");
    run.ok(b.fill("#person", PERSON));
    run.ok(b.select("#kind", "access"));
    run.ok(b.fill(
        "#notes",
        "Letter of 2 June, asks for a copy of every photo.",
    ));
    run.shot("17-dsr");
    run.ok(b.click("#dsr-open-submit"));
    run.ok(b.wait_for("#deadline", PAGE));
    run.ok(b.wait_text("main", PERSON, PAGE, None));
    run.images_loaded();
    run.shot("18-dsr-case");
    run.goto("/dsr");
    run.ok(b.wait_text("main table", PERSON, PAGE, None));
    run.shot("19-dsr-list");
    run.goto("/audit");
    run.ok(b.wait_text("main", "consent", PAGE, None));
    run.shot("20-audit");
    run.sign_out();

    // The admin: users.
    run.sign_in(ADMIN);
    run.shot("21-dashboard-admin");
    run.goto("/users");
    run.ok(b.wait_text("main", OFFICER.0, PAGE, None));
    run.shot("22-users");
    run.sign_out();

    // 9. No script errors, no Content-Security-Policy violations, no failed loads.
    run.collect_console();
    let bad: Vec<&String> = run
        .console
        .iter()
        .filter(|e| {
            e.starts_with("SEVERE")
                || e.contains("Content Security Policy")
                || e.contains("Content-Security-Policy")
                || e.contains("Uncaught")
        })
        .collect();
    assert!(
        bad.is_empty(),
        "the browser console reported problems:\n{bad:#?}"
    );
    eprintln!(
        "console in Chromium: photo ingested and on the dashboard {ingest_time:?} after the drop; \
         whole run {:?}; screenshots in {}; browser console: {:?}",
        started.elapsed(),
        dir.display(),
        run.console
    );
}
