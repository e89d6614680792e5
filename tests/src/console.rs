//! An HTTPS client for the web console in tests: trusts only the daemon's
//! generated certificate, keeps the session cookie and CSRF token, never
//! follows redirects (tests look at them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Daemon, Env};

/// One answer: status, headers (lower-case names) and body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

impl Daemon {
    /// The console's URL, from the daemon's log (`web console at …`).
    pub fn console_url(&self) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if let Some(url) = log.lines().find_map(|l| {
                l.split("web console at ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
            }) {
                return url.trim_end_matches('/').to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the daemon never said where the console is:\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Env {
    /// Creates a console user through the CLI (password on standard input).
    pub fn add_user(&self, name: &str, password: &str, roles: &[&str]) {
        use std::io::Write;
        let mut args = vec![
            "user".to_owned(),
            "add".to_owned(),
            name.to_owned(),
            "--password-stdin".to_owned(),
        ];
        for r in roles {
            args.push("--role".into());
            args.push((*r).to_owned());
        }
        let mut child = std::process::Command::new(crate::bin("consentry"))
            .arg("--config")
            .arg(&self.config)
            .env_remove("CONSENTRY_MODELS_DIR")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run consentry user add");
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "user add {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The console's certificate (PEM), generated at the daemon's first start.
    pub fn console_cert(&self) -> Vec<u8> {
        std::fs::read(self.root().join("tls/console.crt"))
            .expect("the generated console certificate")
    }
}

/// A signed-in (or not) console client.
pub struct Console {
    pub base: String,
    agent: ureq::Agent,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

impl Console {
    /// A client that trusts exactly `cert_pem`.
    pub fn new(base: &str, cert_pem: &[u8]) -> Console {
        let cert = ureq::tls::Certificate::from_pem(cert_pem)
            .expect("PEM certificate")
            .to_owned();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .new_agent();
        Console {
            base: base.trim_end_matches('/').to_owned(),
            agent,
            cookie: None,
            csrf: None,
        }
    }

    pub fn connect(env: &Env, daemon: &Daemon) -> Console {
        Console::new(&daemon.console_url(), &env.console_cert())
    }

    /// Signs in through the API; keeps the cookie and CSRF token.
    pub fn signin(&mut self, user: &str, password: &str) -> Reply {
        let body = serde_json::json!({ "user": user, "password": password }).to_string();
        let reply = self.request(
            "POST",
            "/api/v1/session",
            Some(("application/json", body.into_bytes())),
            &[],
        );
        if reply.status == 200 {
            let set = reply
                .header("set-cookie")
                .expect("a session cookie")
                .to_owned();
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
            self.csrf = reply.json()["csrf"].as_str().map(str::to_owned);
        }
        reply
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, &[])
    }

    /// A form post with this session's CSRF token.
    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        if let Some(csrf) = &self.csrf {
            all.push(("csrf", csrf));
        }
        self.post_form(path, &all)
    }

    /// A form post exactly as given (no CSRF token added).
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.request(
            "POST",
            path,
            Some(("application/x-www-form-urlencoded", body.into_bytes())),
            &[],
        )
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(cookie) = &self.cookie {
            builder = builder.header("cookie", cookie);
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let result = match body {
            Some((kind, bytes)) => {
                let request = builder.header("content-type", kind).body(bytes).unwrap();
                self.agent.run(request)
            }
            None => self.agent.run(builder.body(()).unwrap()),
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    }
}

fn enc(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
