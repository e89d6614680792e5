//! A real SMTP server for end-to-end tests: Debian's `aiosmtpd`, driven by
//! `tests/support/smtp_server.py`, on 127.0.0.1 with STARTTLS required
//! (a throw-away CA and server certificate made with the `openssl` CLI) and,
//! when asked, AUTH PLAIN/LOGIN required.
//!
//! Tests call [`require_smtp_server!`](crate::require_smtp_server) first: a
//! visible skip where `python3-aiosmtpd` or `openssl` is missing, an error
//! under CI (`CONSENTRY_REQUIRE_TESTDATA=1`), as with the other tools.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// One message as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// Envelope sender (MAIL FROM).
    pub from: String,
    /// Envelope recipients (RCPT TO), in order.
    pub to: Vec<String>,
    /// The Subject header, RFC 2047 decoded.
    pub subject: String,
    /// The text/plain body, transfer-decoded, line ends as `\n`.
    pub body: String,
}

/// A running SMTP server; its process is killed when this is dropped.
pub struct SmtpServer {
    child: Child,
    // Held open: the server stops when it closes, should this process die
    // without running Drop.
    _stdin: ChildStdin,
    port: u16,
    ca_pem: PathBuf,
    spool: PathBuf,
    dir: tempfile::TempDir,
}

const INSTALL_HINT: &str =
    "install the Debian packages python3-aiosmtpd and openssl (make deps installs them)";

fn python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| crate::python_with("aiosmtpd.smtp"))
        .as_deref()
}

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether [`SmtpServer::start`] can run here. Says `SKIPPED` on stderr when
/// not; panics instead under CI (`CONSENTRY_REQUIRE_TESTDATA=1`).
pub fn smtp_server_available() -> bool {
    let missing = match (python().is_some(), have_openssl()) {
        (true, true) => return true,
        (false, true) => "python3 with aiosmtpd",
        (true, false) => "openssl",
        (false, false) => "python3 with aiosmtpd and openssl",
    };
    assert!(
        std::env::var("CONSENTRY_REQUIRE_TESTDATA").as_deref() != Ok("1"),
        "{missing} is required under CI but not found; {INSTALL_HINT}"
    );
    eprintln!("SKIPPED: {missing} not found; {INSTALL_HINT}");
    false
}

/// Returns early from a test, with a visible reason, if the SMTP test server
/// cannot run here (see [`smtp_server_available`]).
#[macro_export]
macro_rules! require_smtp_server {
    () => {
        if !$crate::smtp::smtp_server_available() {
            return;
        }
    };
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let output = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}; {INSTALL_HINT}"))?;
    if !output.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A CA certificate and a `localhost`/127.0.0.1 server certificate it signed.
/// Returns (CA PEM, server chain PEM, server key PEM).
fn make_certificates(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    let ca_key = dir.join("ca.key");
    let ca_pem = dir.join("ca.pem");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let cert = dir.join("server.pem");
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = DNS:localhost, IP:127.0.0.1\n",
    )?;
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    run(Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2"])
        .args(ec)
        .args(["-subj", "/CN=consentry test CA", "-keyout"])
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca_pem))?;
    run(Command::new("openssl")
        .args(["req", "-new", "-nodes"])
        .args(ec)
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-set_serial", "2", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca_pem)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&cert))?;
    Ok((ca_pem, cert, key))
}

impl SmtpServer {
    /// Starts a real SMTP server on 127.0.0.1 (a free port) with STARTTLS
    /// required (trust [`ca_pem`](Self::ca_pem) to verify it) and, when
    /// `auth` is `Some((user, password))`, AUTH PLAIN/LOGIN required.
    pub fn start(auth: Option<(&str, &str)>) -> anyhow::Result<SmtpServer> {
        let Some(python) = python() else {
            bail!("no python3 on PATH can import aiosmtpd; {INSTALL_HINT}");
        };
        let dir = tempfile::Builder::new()
            .prefix("consentry-smtp")
            .tempdir()?;
        let (ca_pem, cert, key) = make_certificates(dir.path())?;
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool)?;
        let log_path = dir.path().join("server.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/smtp_server.py");
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--spool")
            .arg(&spool);
        if let Some((user, password)) = auth {
            cmd.args(["--user", user, "--password", password]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log_path)?)
            .spawn()
            .with_context(|| format!("cannot start {}", script.display()))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the SMTP test server did not start within 30 s:\n{}", log());
            }
        };
        let port = match line.trim().strip_prefix("PORT ").map(str::parse::<u16>) {
            Some(Ok(port)) => port,
            _ => {
                let _ = child.kill();
                let status = child.wait()?;
                bail!(
                    "the SMTP test server failed to start ({status}), said {line:?}:\n{}",
                    log()
                );
            }
        };
        Ok(SmtpServer {
            child,
            _stdin: stdin,
            port,
            ca_pem,
            spool,
            dir,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM of the CA that signed the server's certificate (for `ca_file`).
    pub fn ca_pem(&self) -> &Path {
        &self.ca_pem
    }

    /// The server's own log (aiosmtpd's warnings), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Messages received so far, in arrival order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.spool)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension().is_some_and(|e| e == "json")
                            && !p
                                .file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path)
                    .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                let value: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
                let field = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
                ReceivedMail {
                    from: field("from"),
                    to: value["to"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    subject: field("subject"),
                    body: field("body"),
                }
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived or `timeout` passes; returns
    /// what arrived either way.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let started = Instant::now();
        loop {
            let messages = self.messages();
            if messages.len() >= n || started.elapsed() >= timeout {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
