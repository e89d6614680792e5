//! The WebDriver client against a page served from this test: headless
//! Chromium fills a form, clicks, waits for text, reloads, screenshots and
//! reads cookies. Skipped with a visible reason where Chromium or
//! chromedriver is absent (an error under CI).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use consentry_tests::browser::{self, Browser};

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>consentry smoke</title></head>
<body>
<h1>Smoke</h1>
<p id="visits">visit {VISITS}</p>
<form id="form" onsubmit="return false">
  <input id="name" name="name" type="text" value="placeholder">
  <select id="purpose" name="purpose">
    <option value="web">Web</option>
    <option value="print">Print</option>
  </select>
  <input id="photo" name="photo" type="file">
  <button id="go" type="button" onclick="setTimeout(function () {
    var f = document.getElementById('photo').files;
    document.getElementById('out').textContent = 'Hello, ' +
      document.getElementById('name').value + ' (' +
      document.getElementById('purpose').value + ', ' +
      (f.length ? f[0].name : 'no file') + ')';
  }, 300)">Go</button>
</form>
<p id="out">waiting</p>
</body></html>
"#;

/// Serves `PAGE` at `/` (counting visits, setting an HttpOnly cookie) and
/// 404 elsewhere, one thread per connection, for the life of the process.
fn serve() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let visits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&visits);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || answer(stream, &counter));
        }
    });
    (url, visits)
}

fn answer(mut stream: TcpStream, visits: &AtomicUsize) {
    // Chromium opens speculative connections that may never send anything.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let response = if path == "/" {
        let n = visits.fetch_add(1, Ordering::SeqCst) + 1;
        let body = PAGE.replace("{VISITS}", &n.to_string());
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
             Set-Cookie: sid=s3cret; HttpOnly; SameSite=Lax; Path=/\r\n\
             Cache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
    };
    let _ = stream.write_all(response.as_bytes());
}

fn ok<T>(browser: &Browser, result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}\n{}", browser.dump("failure")))
}

#[test]
fn drives_headless_chromium() {
    let artefacts = tempfile::Builder::new()
        .prefix("consentry-browser")
        .tempdir()
        .unwrap();
    let (url, visits) = serve();

    let started = Instant::now();
    let Some(browser) = browser::start_or_skip(artefacts.path()) else {
        return;
    };
    let start_time = started.elapsed();

    let t = Instant::now();
    ok(&browser, browser.goto(&url));
    let goto_time = t.elapsed();
    assert_eq!(ok(&browser, browser.title()), "consentry smoke");
    assert_eq!(ok(&browser, browser.url()), url);
    assert_eq!(ok(&browser, browser.find_all("#purpose option")).len(), 2);
    assert!(ok(&browser, browser.page_source()).contains(r#"id="out""#));

    // Form: clear + type, choose an option, attach a file, click.
    ok(&browser, browser.fill("#name", "Ada"));
    // The attribute is the markup's; the property is what was typed.
    assert_eq!(
        ok(&browser, browser.attr("#name", "value")).as_deref(),
        Some("placeholder")
    );
    assert_eq!(
        ok(&browser, browser.property("#name", "value")),
        serde_json::json!("Ada")
    );
    assert_eq!(ok(&browser, browser.attr("#name", "data-none")), None);
    ok(&browser, browser.select("#purpose", "print"));
    assert_eq!(
        ok(&browser, browser.property("#purpose", "value")),
        serde_json::json!("print")
    );
    let missing = browser.select("#purpose", "tv").unwrap_err();
    assert!(missing.contains("no <option value=\"tv\">"), "{missing}");
    let photo = artefacts.path().join("photo.jpg");
    std::fs::write(&photo, b"not really a jpeg").unwrap();
    ok(&browser, browser.upload("#photo", &photo));
    ok(&browser, browser.click("#go"));
    let t = Instant::now();
    let text = ok(
        &browser,
        browser.wait_text(
            "#out",
            "Hello, Ada (print, photo.jpg)",
            Duration::from_secs(10),
            None,
        ),
    );
    assert_eq!(text, "Hello, Ada (print, photo.jpg)");
    let wait_time = t.elapsed();
    assert_eq!(ok(&browser, browser.text("h1")), "Smoke");

    // Errors name the selector, the page and what is on it.
    let err = browser.find("#signin").unwrap_err();
    assert!(
        err.starts_with(&format!("no element matches `#signin` on {url}")),
        "{err}"
    );
    let err = browser
        .wait_for("#never", Duration::from_millis(300))
        .unwrap_err();
    assert!(
        err.contains("#never") && err.contains("Hello, Ada"),
        "{err}"
    );
    let err = browser.find("#[bad").unwrap_err();
    assert!(err.contains("invalid selector"), "{err}");

    // Reloading until the page changes.
    let before = visits.load(Ordering::SeqCst);
    let needle = format!("visit {}", before + 2);
    ok(
        &browser,
        browser.wait_text(
            "#visits",
            &needle,
            Duration::from_secs(10),
            Some(Duration::from_millis(200)),
        ),
    );

    // Scripts: arguments in, JSON out.
    let sum = ok(
        &browser,
        browser.execute(
            "return arguments[0] + arguments[1];",
            vec![2.into(), 3.into()],
        ),
    );
    assert_eq!(sum, serde_json::json!(5));

    let t = Instant::now();
    let shot = ok(&browser, browser.screenshot("smoke"));
    let shot_time = t.elapsed();
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {shot:?}");
    assert!(png.len() > 1024, "screenshot only {} bytes", png.len());

    // Cookies: the server's HttpOnly one and one set by script.
    ok(
        &browser,
        browser.execute(
            "document.cookie = 'smoke=yes; SameSite=Strict; Path=/'; return null;",
            vec![],
        ),
    );
    let cookies = ok(&browser, browser.cookies());
    let smoke = cookies
        .iter()
        .find(|c| c.name == "smoke")
        .unwrap_or_else(|| panic!("no smoke cookie in {cookies:?}"));
    assert_eq!(smoke.value, "yes");
    assert!(!smoke.http_only && !smoke.secure);
    assert_eq!(smoke.same_site.as_deref(), Some("Strict"));
    let sid = cookies
        .iter()
        .find(|c| c.name == "sid")
        .unwrap_or_else(|| panic!("no sid cookie in {cookies:?}"));
    assert_eq!(sid.value, "s3cret");
    assert!(sid.http_only);
    assert_eq!(sid.same_site.as_deref(), Some("Lax"));
    assert_eq!(sid.expiry, None);
    ok(&browser, browser.delete_cookies());
    assert!(ok(&browser, browser.cookies()).is_empty());

    let console = ok(&browser, browser.console_log());
    let t = Instant::now();
    drop(browser);
    eprintln!(
        "browser timings: start {start_time:?}, first page {goto_time:?}, \
         click-to-text {wait_time:?}, screenshot {shot_time:?} ({} bytes), quit {:?}; \
         console: {console:?}",
        png.len(),
        t.elapsed()
    );
}
