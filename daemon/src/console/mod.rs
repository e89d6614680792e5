//! The web console and `/api/v1`: what editors, privacy officers, auditors and
//! admins work in. `consentry-web` gives the HTTP mechanics (TLS, sessions,
//! passwords, throttling, headers); this module gives the screens.
//!
//! A request's way: TLS (`web::tls::serve`) → [`routes::handle`] (static
//! files and sign-in; otherwise the session cookie, CSRF on every change, the
//! route table, the object's collection and restriction, then
//! [`authz::check`]) → a handler. Handlers ask the daemon's services through
//! [`Console::ask`], the same `control::answer` the CLI uses, so every read
//! and change is audited once, in one place, before the answer leaves.
//!
//! Architecture Invariant: no handler runs before `authz::check` allowed it.

pub mod authz;
pub mod http;
pub mod metrics;
pub mod render;
pub mod routes;
mod screens;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use consentry_web::session::{SessionLimits, Sessions};

use crate::audit::{Actor, Entry, Outcome};
use crate::config::WebConfig;
use crate::control::{self, ControlState, Request};
use crate::people::People;
use http::Req;
use users::User;

/// Everything the console reads and changes: the daemon's services (shared
/// with the control socket, reached through `Deref`) and its own metrics.
pub struct Console {
    pub state: Arc<ControlState>,
    pub metrics: metrics::Metrics,
}

impl std::ops::Deref for Console {
    type Target = ControlState;

    fn deref(&self) -> &ControlState {
        &self.state
    }
}

/// One signed-in request, as handlers see it.
pub struct Call<'a> {
    pub console: &'a Console,
    pub req: &'a Req,
    pub user: User,
    pub csrf: String,
    pub actor: Actor,
    /// Values of the route's `{…}` segments, in order.
    pub params: Vec<String>,
    /// The privacy officer is looking past a restriction.
    pub overrides: bool,
}

impl Call<'_> {
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map(String::as_str).unwrap_or("")
    }

    pub fn people(&self) -> &People {
        self.console.ingestor.people()
    }

    /// Answers `request` as the CLI would, as this user (audited).
    pub fn ask(&self, request: Request) -> Result<Vec<serde_json::Value>, String> {
        self.console.ask(&self.actor, &request)
    }

    /// Records what a console-only read (a thumbnail, a crop, a download)
    /// touched, before the bytes leave.
    pub fn audit(&self, entry: Entry) -> Result<(), String> {
        let entry = if self.overrides {
            entry.with("override", "restriction")
        } else {
            entry
        };
        self.console
            .audit
            .record(&self.actor, Outcome::Ok, entry)
            .map(|_| ())
            .map_err(|e| format!("the audit log cannot be written ({e}); nothing was handed out"))
    }
}

impl Console {
    /// Answers `request` through `control::answer` (audited) and returns the
    /// data lines.
    pub fn ask(&self, actor: &Actor, request: &Request) -> Result<Vec<serde_json::Value>, String> {
        let mut out = Vec::new();
        let ctx = control::Context {
            store: &self.store,
            config: &self.config,
            registry: Some(&self.registry),
            people: self.ingestor.people(),
            ingestor: Some(&self.ingestor),
            rights: &self.rights,
            audit: &self.audit,
            users: &self.users,
            actor,
        };
        control::answer(request, &ctx, &mut out)?;
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).map_err(|e| e.to_string()))
            .collect()
    }
}

pub fn actor_for(user: &str) -> Actor {
    Actor {
        name: user.to_owned(),
        via: "web".into(),
    }
}

pub fn sessions(config: &WebConfig) -> Arc<Sessions> {
    Arc::new(Sessions::new(SessionLimits {
        idle: config.session_idle,
        absolute: config.session_absolute,
    }))
}

/// The running console: where it listens and the certificate it shows.
pub struct Running {
    pub url: String,
    pub fingerprint: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Binds the console's listeners (TLS, and the plain-HTTP redirect if
/// configured), loads or generates the certificate, and serves on its own
/// runtime thread until [`Running::stop`].
pub fn start(console: Arc<Console>) -> anyhow::Result<Running> {
    let web = console.config.web.clone();
    let tls = consentry_web::tls::load_or_generate(&web.cert_file, &web.key_file, &web.hostnames)
        .map_err(|e| anyhow::anyhow!("web console certificate: {e}"))?;
    if tls.generated {
        log::warn!(target: "consentry::console", fingerprint = tls.fingerprint.as_str();
            "generated a self-signed certificate for the console at {} (SHA-256 {}); replace it with one your browsers trust (web.cert_file, web.key_file)",
            web.cert_file.display(), tls.fingerprint);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("console")
        .enable_all()
        .build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&web.listen))
        .map_err(|e| anyhow::anyhow!("cannot listen on web.listen = {}: {e}", web.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let redirect = match &web.http_listen {
        Some(http) => Some(
            runtime
                .block_on(tokio::net::TcpListener::bind(http))
                .map_err(|e| anyhow::anyhow!("cannot listen on web.http_listen = {http}: {e}"))?,
        ),
        None => None,
    };
    if let Some(plain) = &redirect {
        log::info!(target: "consentry::console", "plain HTTP on http://{} only redirects to HTTPS", plain.local_addr()?);
    }
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let url = format!("https://{host}:{}/", addr.port());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = Arc::clone(&tls.config);
    let https_port = addr.port();
    let thread = std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            runtime.block_on(async move {
                let (stopped_tx, stopped_rx) = tokio::sync::watch::channel(false);
                if let Some(plain) = redirect {
                    let mut rx = stopped_rx.clone();
                    tokio::spawn(consentry_web::tls::serve_redirect(
                        plain,
                        https_port,
                        async move {
                            let _ = rx.changed().await;
                        },
                    ));
                }
                let mut rx = stopped_rx;
                let serving = tokio::spawn(consentry_web::tls::serve(
                    routes::filter(console),
                    listener,
                    config,
                    async move {
                        let _ = rx.changed().await;
                    },
                ));
                let _ = stop_rx.await;
                let _ = stopped_tx.send(true);
                let _ = serving.await;
            });
        })?;
    Ok(Running {
        url,
        fingerprint: tls.fingerprint,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}
