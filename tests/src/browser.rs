//! A minimal W3C WebDriver client for end-to-end tests of the web console:
//! one `chromedriver` child per [`Browser`], driving a headless Debian
//! Chromium over plain HTTP on 127.0.0.1.
//!
//! Every call returns `Err(reason)` with a message meant to be read in a test
//! failure: the CSS selector, the page's URL and WebDriver's own explanation.
//! Sessions accept self-signed certificates (`acceptInsecureCerts`), so the
//! console's HTTPS listener needs no trust set-up. A session is deleted, and
//! its `chromedriver` (with its Chromium) ended, when the `Browser` drops.
//!
//! `chromedriver` and Chromium write their logs to
//! `<artefacts>/chromedriver.log`; screenshots land beside it.

use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Debian's `chromium` package; `$CONSENTRY_CHROMIUM` overrides it.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's `chromium-driver` package; `$CONSENTRY_CHROMEDRIVER` overrides it.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The arguments Chromium runs with: headless, no sandbox (tests may run as
/// root in a container), no GPU, and nothing that talks to the network on
/// its own.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// The key under which WebDriver serialises an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Screenshots and page sources can be large; the default cap is 10 MB.
const MAX_BODY: u64 = 256 << 20;
const POLL: Duration = Duration::from_millis(100);
const PAGE_TEXT_CHARS: usize = 2000;

/// A headless Chromium session behind its own `chromedriver`.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    artefacts: PathBuf,
    agent: ureq::Agent,
}

/// A WebDriver element reference (valid until its page is left or reloaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(String);

impl Element {
    /// The WebDriver element id.
    pub fn id(&self) -> &str {
        &self.0
    }

    /// The reference as a script argument for [`Browser::execute`].
    pub fn to_json(&self) -> Value {
        json!({ ELEMENT_KEY: self.0 })
    }

    /// An element returned by [`Browser::execute`], if `value` is one.
    pub fn from_json(value: &Value) -> Option<Element> {
        value
            .get(ELEMENT_KEY)
            .and_then(Value::as_str)
            .map(|id| Element(id.to_owned()))
    }
}

/// A cookie as the browser holds it (for the current page's domain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub http_only: bool,
    pub secure: bool,
    /// "Strict", "Lax" or "None" as Chromium reports it.
    pub same_site: Option<String>,
    pub path: Option<String>,
    pub domain: Option<String>,
    /// Seconds since the epoch; None for a session cookie.
    pub expiry: Option<u64>,
}

/// Why a WebDriver command failed.
#[derive(Debug)]
enum WdError {
    /// WebDriver answered with an error code ("no such element", …).
    Driver { error: String, message: String },
    /// No usable answer at all.
    Transport(String),
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WdError::Driver { error, message } if message.starts_with(error.as_str()) => {
                f.write_str(message)
            }
            WdError::Driver { error, message } => write!(f, "{error}: {message}"),
            WdError::Transport(reason) => f.write_str(reason),
        }
    }
}

impl WdError {
    fn is(&self, code: &str) -> bool {
        matches!(self, WdError::Driver { error, .. } if error == code)
    }
}

enum Method {
    Get,
    Post(Value),
    Delete,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        // WebDriver's errors are JSON bodies on 4xx/5xx answers.
        .http_status_as_error(false)
        // chromedriver is on 127.0.0.1: never through a proxy from the environment.
        .proxy(None)
        .timeout_global(Some(timeout))
        .build()
        .new_agent()
}

/// One WebDriver request; returns the answer's `value`.
fn http(agent: &ureq::Agent, url: &str, method: &Method) -> Result<Value, WdError> {
    let response = match method {
        Method::Get => agent.get(url).call(),
        Method::Post(body) => agent
            .post(url)
            .header("Content-Type", "application/json; charset=utf-8")
            .send(body.to_string()),
        Method::Delete => agent.delete(url).call(),
    };
    let mut response =
        response.map_err(|e| WdError::Transport(format!("chromedriver at {url}: {e}")))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .map_err(|e| WdError::Transport(format!("reading chromedriver's answer: {e}")))?;
    let mut answer: Value = serde_json::from_str(&text).map_err(|e| {
        WdError::Transport(format!(
            "chromedriver answered HTTP {status} with no JSON ({e}): {}",
            truncate(&text, 300)
        ))
    })?;
    let value = answer["value"].take();
    if status < 400 {
        return Ok(value);
    }
    let error = value["error"]
        .as_str()
        .unwrap_or("unknown error")
        .to_owned();
    // The first line; the rest is "(Session info: …)" and a native stack.
    let message = value["message"]
        .as_str()
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    Err(WdError::Driver { error, message })
}

fn binary(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Why no browser can be started here (Chromium or `chromedriver` absent),
/// or None when both are installed.
pub fn missing() -> Option<String> {
    let driver = binary("CONSENTRY_CHROMEDRIVER", CHROMEDRIVER);
    if !is_executable(&driver) {
        return Some(format!(
            "chromedriver not found at {}: install chromium-driver (make deps does)",
            driver.display()
        ));
    }
    let chromium = binary("CONSENTRY_CHROMIUM", CHROMIUM);
    if !is_executable(&chromium) {
        return Some(format!(
            "chromium not found at {}: install chromium (make deps does)",
            chromium.display()
        ));
    }
    None
}

/// [`Browser::start`], or None when Chromium or `chromedriver` is not
/// installed, after a `SKIPPED:` line on stderr (shown even when the test
/// harness captures output); panics instead under
/// `CONSENTRY_REQUIRE_TESTDATA=1` (as `.ci/run` sets), and whenever they are
/// installed but do not start.
pub fn start_or_skip(artefacts: &Path) -> Option<Browser> {
    if let Some(why) = missing() {
        assert!(
            std::env::var("CONSENTRY_REQUIRE_TESTDATA").as_deref() != Ok("1"),
            "a browser is required under CI: {why}"
        );
        // Past the test harness's capture: a skip should be seen.
        let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
        return None;
    }
    match Browser::start(artefacts) {
        Ok(browser) => Some(browser),
        Err(why) => panic!("{why}"),
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

fn log_tail(path: &Path, lines: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn truncate(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Percent-encodes a URL path segment.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Standard base64 (with or without padding; whitespace ignored).
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return Err(format!("invalid base64 byte {c:#04x}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Starts `chromedriver` on a free port and waits until it is ready; the
/// port may be taken between choosing and binding it, so this tries thrice.
fn spawn_driver(driver: &Path, log_path: &Path) -> Result<(Child, u16), String> {
    let probe = agent(Duration::from_secs(2));
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port()?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
        let err_log = log
            .try_clone()
            .map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            // Chromium's own stderr goes into the same log.
            .arg("--enable-chrome-logs")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", driver.display()))?;
        let started = Instant::now();
        let status_url = format!("http://127.0.0.1:{port}/status");
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                last = format!(
                    "chromedriver exited with {status} at start-up (port {port}):\n{}",
                    log_tail(log_path, 20)
                );
                break;
            }
            if let Ok(value) = http(&probe, &status_url, &Method::Get)
                && value["ready"].as_bool() == Some(true)
            {
                return Ok((child, port));
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "chromedriver did not answer on port {port} within 20 s:\n{}",
                    log_tail(log_path, 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    Err(last)
}

impl Browser {
    /// Starts `chromedriver` on a free port and opens a headless session.
    /// `Err(reason)` if Chromium or `chromedriver` is missing (see
    /// [`missing`]; the caller decides skip vs fail) or does not start.
    /// `artefacts` is created; logs and screenshots go there.
    pub fn start(artefacts: &Path) -> Result<Browser, String> {
        if let Some(why) = missing() {
            return Err(why);
        }
        std::fs::create_dir_all(artefacts)
            .map_err(|e| format!("cannot create {}: {e}", artefacts.display()))?;
        let artefacts =
            std::path::absolute(artefacts).map_err(|e| format!("{}: {e}", artefacts.display()))?;
        let log_path = artefacts.join("chromedriver.log");
        let (mut driver, port) =
            spawn_driver(&binary("CONSENTRY_CHROMEDRIVER", CHROMEDRIVER), &log_path)?;
        let agent = agent(Duration::from_secs(60));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    // The console's certificate is self-signed.
                    "acceptInsecureCerts": true,
                    "pageLoadStrategy": "normal",
                    "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 30_000 },
                    "goog:loggingPrefs": { "browser": "ALL" },
                    "goog:chromeOptions": {
                        "binary": binary("CONSENTRY_CHROMIUM", CHROMIUM),
                        "args": CHROMIUM_ARGS,
                    },
                }
            }
        });
        let created = http(
            &agent,
            &format!("http://127.0.0.1:{port}/session"),
            &Method::Post(capabilities),
        );
        let session = match created {
            Ok(value) => value["sessionId"].as_str().map(str::to_owned),
            Err(e) => {
                let _ = driver.kill();
                let _ = driver.wait();
                return Err(format!(
                    "chromedriver could not start Chromium: {e}\nthe end of {}:\n{}",
                    log_path.display(),
                    log_tail(&log_path, 20)
                ));
            }
        };
        let Some(session) = session else {
            let _ = driver.kill();
            let _ = driver.wait();
            return Err("chromedriver's new session has no sessionId".to_owned());
        };
        Ok(Browser {
            driver,
            port,
            session,
            artefacts,
            agent,
        })
    }

    /// Where logs and screenshots go.
    pub fn artefacts(&self) -> &Path {
        &self.artefacts
    }

    fn cmd(&self, method: Method, path: &str) -> Result<Value, WdError> {
        let url = format!(
            "http://127.0.0.1:{}/session/{}{path}",
            self.port, self.session
        );
        http(&self.agent, &url, &method)
    }

    /// The current URL, or a placeholder for error messages.
    fn here(&self) -> String {
        self.url().unwrap_or_else(|_| "(unknown URL)".to_owned())
    }

    /// Navigates and waits for the page to load (30 s at most).
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.cmd(Method::Post(json!({ "url": url })), "/url")
            .map(drop)
            .map_err(|e| format!("cannot open {url}: {e}"))
    }

    pub fn url(&self) -> Result<String, String> {
        let value = self
            .cmd(Method::Get, "/url")
            .map_err(|e| format!("reading the URL: {e}"))?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    pub fn title(&self) -> Result<String, String> {
        let value = self
            .cmd(Method::Get, "/title")
            .map_err(|e| format!("reading the title on {}: {e}", self.here()))?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Resizes the window (CSS pixels), e.g. to a tablet's 800 × 1100.
    pub fn set_window_size(&self, width: u32, height: u32) -> Result<(), String> {
        self.cmd(
            Method::Post(json!({ "width": width, "height": height })),
            "/window/rect",
        )
        .map(drop)
        .map_err(|e| format!("resizing the window to {width}×{height}: {e}"))
    }

    /// Reloads the current page.
    pub fn refresh(&self) -> Result<(), String> {
        self.cmd(Method::Post(json!({})), "/refresh")
            .map(drop)
            .map_err(|e| format!("reloading {}: {e}", self.here()))
    }

    pub fn back(&self) -> Result<(), String> {
        self.cmd(Method::Post(json!({})), "/back")
            .map(drop)
            .map_err(|e| format!("going back from {}: {e}", self.here()))
    }

    /// Ok(None) when nothing matches; Err for a bad selector or a dead session.
    fn try_find(&self, css: &str) -> Result<Option<Element>, String> {
        let body = json!({ "using": "css selector", "value": css });
        match self.cmd(Method::Post(body), "/element") {
            Ok(value) => Element::from_json(&value)
                .map(Some)
                .ok_or_else(|| format!("finding `{css}`: no element reference in {value}")),
            Err(e) if e.is("no such element") => Ok(None),
            Err(e) => Err(format!("finding `{css}` on {}: {e}", self.here())),
        }
    }

    /// The first element matching `css`, now (no waiting: see [`Browser::wait_for`]).
    pub fn find(&self, css: &str) -> Result<Element, String> {
        self.try_find(css)?
            .ok_or_else(|| format!("no element matches `{css}` on {}", self.here()))
    }

    /// Every element matching `css` (possibly none).
    pub fn find_all(&self, css: &str) -> Result<Vec<Element>, String> {
        let body = json!({ "using": "css selector", "value": css });
        let value = self
            .cmd(Method::Post(body), "/elements")
            .map_err(|e| format!("finding `{css}` on {}: {e}", self.here()))?;
        Ok(value
            .as_array()
            .map(|all| all.iter().filter_map(Element::from_json).collect())
            .unwrap_or_default())
    }

    /// Every element matching `css` below `parent`.
    pub fn find_all_in(&self, parent: &Element, css: &str) -> Result<Vec<Element>, String> {
        let body = json!({ "using": "css selector", "value": css });
        let value = self
            .cmd(
                Method::Post(body),
                &format!("/element/{}/elements", parent.0),
            )
            .map_err(|e| format!("finding `{css}` in an element on {}: {e}", self.here()))?;
        Ok(value
            .as_array()
            .map(|all| all.iter().filter_map(Element::from_json).collect())
            .unwrap_or_default())
    }

    pub fn click(&self, css: &str) -> Result<(), String> {
        let element = self.find(css)?;
        self.click_element(&element)
            .map_err(|e| format!("clicking `{css}`: {e}"))
    }

    /// Clicks like a user: scrolls it into view, fails if it is covered or hidden.
    pub fn click_element(&self, element: &Element) -> Result<(), String> {
        self.cmd(
            Method::Post(json!({})),
            &format!("/element/{}/click", element.0),
        )
        .map(drop)
        .map_err(|e| format!("click on {}: {e}", self.here()))
    }

    /// Clears the field, then types `text` into it.
    pub fn fill(&self, css: &str, text: &str) -> Result<(), String> {
        let element = self.find(css)?;
        self.fill_element(&element, text)
            .map_err(|e| format!("filling `{css}`: {e}"))
    }

    pub fn fill_element(&self, element: &Element, text: &str) -> Result<(), String> {
        self.cmd(
            Method::Post(json!({})),
            &format!("/element/{}/clear", element.0),
        )
        .map_err(|e| format!("clear on {}: {e}", self.here()))?;
        self.cmd(
            Method::Post(json!({ "text": text })),
            &format!("/element/{}/value", element.0),
        )
        .map(drop)
        .map_err(|e| format!("typing on {}: {e}", self.here()))
    }

    /// Chooses the `<option value=…>` of the `<select>` matching `css` (by
    /// clicking it, so `input` and `change` fire).
    pub fn select(&self, css: &str, value: &str) -> Result<(), String> {
        let select = self.find(css)?;
        let tag = self
            .cmd(Method::Get, &format!("/element/{}/name", select.0))
            .map_err(|e| format!("reading the tag of `{css}`: {e}"))?;
        if !tag
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("select"))
        {
            return Err(format!("`{css}` is a <{tag}>, not a <select>"));
        }
        let option = self.execute(
            "for (const o of arguments[0].options) { if (o.value === arguments[1]) return o; } \
             return null;",
            vec![select.to_json(), json!(value)],
        )?;
        let Some(option) = Element::from_json(&option) else {
            let values = self.execute(
                "return Array.from(arguments[0].options, o => o.value);",
                vec![select.to_json()],
            )?;
            return Err(format!(
                "`{css}` has no <option value={value:?}> on {}; its values are {values}",
                self.here()
            ));
        };
        let selected = self
            .cmd(Method::Get, &format!("/element/{}/selected", option.0))
            .map_err(|e| format!("reading option {value:?} of `{css}`: {e}"))?;
        // Clicking a selected option of a <select multiple> would deselect it.
        if selected.as_bool() != Some(true) {
            self.click_element(&option)
                .map_err(|e| format!("choosing {value:?} in `{css}`: {e}"))?;
        }
        Ok(())
    }

    /// Gives `file` (made absolute; it must exist) to the `<input type=file>`
    /// matching `css`. Call it again on a `multiple` input to add files.
    pub fn upload(&self, css: &str, file: &Path) -> Result<(), String> {
        let path = std::fs::canonicalize(file)
            .map_err(|e| format!("cannot upload {}: {e}", file.display()))?;
        let path = path
            .to_str()
            .ok_or_else(|| format!("cannot upload {}: not UTF-8", path.display()))?;
        let element = self.find(css)?;
        self.cmd(
            Method::Post(json!({ "text": path })),
            &format!("/element/{}/value", element.0),
        )
        .map(drop)
        .map_err(|e| format!("uploading {path} through `{css}` on {}: {e}", self.here()))
    }

    /// The rendered (visible) text of the first element matching `css`.
    pub fn text(&self, css: &str) -> Result<String, String> {
        let element = self.find(css)?;
        self.element_text(&element)
            .map_err(|e| format!("text of `{css}`: {e}"))
    }

    pub fn element_text(&self, element: &Element) -> Result<String, String> {
        self.cmd(Method::Get, &format!("/element/{}/text", element.0))
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .map_err(|e| format!("reading text on {}: {e}", self.here()))
    }

    /// An attribute of the first element matching `css`, as in the markup
    /// (None when absent). For what the user typed or ticked, read the live
    /// DOM property instead: [`Browser::property`] (`value`, `checked`).
    pub fn attr(&self, css: &str, name: &str) -> Result<Option<String>, String> {
        let element = self.find(css)?;
        self.element_attr(&element, name)
            .map_err(|e| format!("attribute {name} of `{css}`: {e}"))
    }

    pub fn element_attr(&self, element: &Element, name: &str) -> Result<Option<String>, String> {
        let value = self
            .cmd(
                Method::Get,
                &format!("/element/{}/attribute/{}", element.0, segment(name)),
            )
            .map_err(|e| format!("reading an attribute on {}: {e}", self.here()))?;
        Ok(match value {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        })
    }

    /// A DOM property of the first element matching `css` (e.g. `value` of an
    /// input, `checked` of a checkbox) as JSON.
    pub fn property(&self, css: &str, name: &str) -> Result<Value, String> {
        let element = self.find(css)?;
        self.cmd(
            Method::Get,
            &format!("/element/{}/property/{}", element.0, segment(name)),
        )
        .map_err(|e| format!("property {name} of `{css}` on {}: {e}", self.here()))
    }

    /// The current DOM, serialised.
    pub fn page_source(&self) -> Result<String, String> {
        self.cmd(Method::Get, "/source")
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .map_err(|e| format!("page source of {}: {e}", self.here()))
    }

    /// Runs `script` as a function body (`return …` gives the result);
    /// `args` are `arguments[0]`…, elements as [`Element::to_json`].
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.cmd(
            Method::Post(json!({ "script": script, "args": args })),
            "/execute/sync",
        )
        .map_err(|e| format!("script on {}: {e}", self.here()))
    }

    /// The first 2 000 characters of the page's visible text.
    pub fn page_text(&self) -> String {
        match self.execute(
            "return document.body ? document.body.innerText : document.documentElement.outerHTML;",
            vec![],
        ) {
            Ok(text) => truncate(text.as_str().unwrap_or_default(), PAGE_TEXT_CHARS),
            Err(e) => format!("(no page text: {e})"),
        }
    }

    /// Polls every 100 ms until `css` matches an element; Err after
    /// `timeout` with the URL and the page's text.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element, String> {
        let started = Instant::now();
        loop {
            if let Some(element) = self.try_find(css)? {
                return Ok(element);
            }
            if started.elapsed() >= timeout {
                return Err(format!(
                    "no element matches `{css}` after {timeout:?} on {}; the page says:\n{}",
                    self.here(),
                    self.page_text()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Polls until the text of `css` contains `needle` and returns that text;
    /// meanwhile reloads the page every `reload_every` if Some (for pages
    /// that do not update themselves).
    pub fn wait_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
        reload_every: Option<Duration>,
    ) -> Result<String, String> {
        let started = Instant::now();
        let mut reloaded = Instant::now();
        let mut last: Option<String> = None;
        loop {
            if let Some(element) = self.try_find(css)? {
                // The element may go stale under a reload or a re-render.
                if let Ok(text) = self.element_text(&element) {
                    if text.contains(needle) {
                        return Ok(text);
                    }
                    last = Some(text);
                }
            }
            if started.elapsed() >= timeout {
                let seen = match &last {
                    Some(text) => format!("its text was {:?}", truncate(text, 500)),
                    None => "it never matched an element".to_owned(),
                };
                return Err(format!(
                    "the text of `{css}` did not contain {needle:?} after {timeout:?} on {}: \
                     {seen}; the page says:\n{}",
                    self.here(),
                    self.page_text()
                ));
            }
            if let Some(every) = reload_every
                && reloaded.elapsed() >= every
            {
                self.refresh()?;
                reloaded = Instant::now();
            }
            std::thread::sleep(POLL);
        }
    }

    /// Polls until the current URL contains `needle` (e.g. after a redirect).
    pub fn wait_url(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        let started = Instant::now();
        loop {
            let url = self.url()?;
            if url.contains(needle) {
                return Ok(url);
            }
            if started.elapsed() >= timeout {
                return Err(format!(
                    "the URL did not contain {needle:?} after {timeout:?}; it is {url}; \
                     the page says:\n{}",
                    self.page_text()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Saves the viewport as `<artefacts>/<name>.png` and returns that path.
    pub fn screenshot(&self, name: &str) -> Result<PathBuf, String> {
        let value = self
            .cmd(Method::Get, "/screenshot")
            .map_err(|e| format!("screenshot of {}: {e}", self.here()))?;
        let png = base64_decode(value.as_str().unwrap_or_default())
            .map_err(|e| format!("screenshot of {}: {e}", self.here()))?;
        if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err(format!(
                "screenshot of {} is not a PNG ({} bytes)",
                self.here(),
                png.len()
            ));
        }
        let path = self.artefacts.join(format!("{name}.png"));
        std::fs::write(&path, png).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Saves a screenshot and the page source as `<name>.png` and
    /// `<name>.html` in the artefacts; returns a line naming them (or why
    /// not), for a failure message.
    pub fn dump(&self, name: &str) -> String {
        let shot = match self.screenshot(name) {
            Ok(path) => path.display().to_string(),
            Err(e) => format!("(no screenshot: {e})"),
        };
        let html = self.artefacts.join(format!("{name}.html"));
        let source = match self.page_source() {
            Ok(text) => match std::fs::write(&html, text) {
                Ok(()) => html.display().to_string(),
                Err(e) => format!("(cannot write {}: {e})", html.display()),
            },
            Err(e) => format!("(no source: {e})"),
        };
        format!("browser state of {}: {shot}, {source}", self.here())
    }

    /// The cookies visible to the current page (HttpOnly ones included).
    pub fn cookies(&self) -> Result<Vec<Cookie>, String> {
        let value = self
            .cmd(Method::Get, "/cookie")
            .map_err(|e| format!("cookies of {}: {e}", self.here()))?;
        Ok(value
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|c| Cookie {
                        name: c["name"].as_str().unwrap_or_default().to_owned(),
                        value: c["value"].as_str().unwrap_or_default().to_owned(),
                        http_only: c["httpOnly"].as_bool().unwrap_or(false),
                        secure: c["secure"].as_bool().unwrap_or(false),
                        same_site: c["sameSite"].as_str().map(str::to_owned),
                        path: c["path"].as_str().map(str::to_owned),
                        domain: c["domain"].as_str().map(str::to_owned),
                        expiry: c["expiry"].as_u64(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Forgets every cookie of the current page's domain (a fresh visitor).
    pub fn delete_cookies(&self) -> Result<(), String> {
        self.cmd(Method::Delete, "/cookie")
            .map(drop)
            .map_err(|e| format!("deleting cookies on {}: {e}", self.here()))
    }

    /// The text of an open `alert`/`confirm`/`prompt`, None when there is none.
    pub fn alert_text(&self) -> Result<Option<String>, String> {
        match self.cmd(Method::Get, "/alert/text") {
            Ok(value) => Ok(Some(value.as_str().unwrap_or_default().to_owned())),
            Err(e) if e.is("no such alert") => Ok(None),
            Err(e) => Err(format!("reading an alert: {e}")),
        }
    }

    /// Accepts (OK) the open dialog. An unhandled dialog is dismissed and
    /// makes the next command fail with "unexpected alert open".
    pub fn accept_alert(&self) -> Result<(), String> {
        self.cmd(Method::Post(json!({})), "/alert/accept")
            .map(drop)
            .map_err(|e| format!("accepting an alert: {e}"))
    }

    pub fn dismiss_alert(&self) -> Result<(), String> {
        self.cmd(Method::Post(json!({})), "/alert/dismiss")
            .map(drop)
            .map_err(|e| format!("dismissing an alert: {e}"))
    }

    /// The browser console's entries since the last call, as "LEVEL message"
    /// (JavaScript errors, failed loads, Content-Security-Policy violations).
    pub fn console_log(&self) -> Result<Vec<String>, String> {
        let value = self
            .cmd(Method::Post(json!({ "type": "browser" })), "/se/log")
            .map_err(|e| format!("reading the console log: {e}"))?;
        Ok(value
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|entry| {
                        format!(
                            "{} {}",
                            entry["level"].as_str().unwrap_or("?"),
                            entry["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let quick = agent(Duration::from_secs(10));
        let base = format!("http://127.0.0.1:{}", self.port);
        // Deleting the session quits Chromium and removes its profile.
        let _ = http(
            &quick,
            &format!("{base}/session/{}", self.session),
            &Method::Delete,
        );
        let _ = http(&quick, &format!("{base}/shutdown"), &Method::Get);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.driver.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVs\nbG8h").unwrap(), b"hello!");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("+/8=").unwrap(), [0xfb, 0xff]);
        assert!(base64_decode("a-b").is_err());
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("data-id"), "data-id");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
