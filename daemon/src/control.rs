//! The control socket: how the `consentry` CLI talks to a running daemon
//! (sled allows one process per catalogue, so while the daemon runs it is the
//! only reader).
//!
//! Protocol: the client sends one JSON [`Request`] line; the daemon answers
//! with zero or more JSON data lines and a final `{"end":"ok"}` or
//! `{"end":"error","message":…}` line. The socket is created mode 0660: only
//! the service user and its group may use it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::{AssetDetail, AssetSummary, StatusReport};
use crate::audit::commands::AuditRequest;
use crate::audit::{Actor, Audit, Outcome};
use crate::config::Config;
use crate::consent::Rights;
use crate::consent::commands::RightsRequest;
use crate::console::users::{UserRequest, Users};
use crate::domain::AssetId;
use crate::dsr::commands::DsrRequest;
use crate::people::People;
use crate::people::commands::PeopleRequest;
use crate::pipeline::ingest::Ingestor;
use crate::pipeline::store::Store;
use crate::workers::WorkerRegistry;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Ping,
    Status,
    AssetsList,
    AssetShow { id: String },
    Export,
    People { request: PeopleRequest },
    Rights { request: Box<RightsRequest> },
    Audit { request: AuditRequest },
    Dsr { request: Box<DsrRequest> },
    Users { request: UserRequest },
}

impl Request {
    /// Whether answering needs the face engine (the CLI's direct mode loads
    /// it only then).
    pub fn needs_engine(&self) -> bool {
        match self {
            Request::People { request } => request.needs_engine(),
            Request::Dsr { request } => request.needs_engine(),
            _ => false,
        }
    }
}

/// What the client sends: the request, and who ran `sudo` (believed only
/// from a root peer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub request: Request,
    #[serde(default)]
    pub sudo_user: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach the daemon at {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("lost the connection to the daemon: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Daemon(String),
    #[error("the daemon sent an invalid reply: {0}")]
    Protocol(String),
}

/// What the daemon shares with control connections.
pub struct ControlState {
    pub store: Arc<Store>,
    pub config: Config,
    pub registry: Arc<WorkerRegistry>,
    pub ingestor: Arc<Ingestor>,
    pub rights: Arc<Rights>,
    pub audit: Arc<Audit>,
    pub users: Arc<Users>,
}

/// What a request is answered from: the daemon's state, or what the CLI
/// opened itself (no workers; the face engine only when a request needs it).
pub struct Context<'a> {
    pub store: &'a Store,
    pub config: &'a Config,
    pub registry: Option<&'a WorkerRegistry>,
    pub people: &'a People,
    pub ingestor: Option<&'a Ingestor>,
    pub rights: &'a Rights,
    pub audit: &'a Audit,
    pub users: &'a Users,
    /// Who asked (from the socket peer's credentials, or this process).
    pub actor: &'a Actor,
}

/// Answers one request, writing data lines to `out`. Shared by the daemon's
/// socket and the CLI's direct mode, so both give the same output.
///
/// The answer is built in memory, the request's audit events are written,
/// and only then does the answer leave: no audit event, no data.
pub fn answer(request: &Request, ctx: &Context<'_>, out: &mut dyn Write) -> Result<(), String> {
    let mut buffer = Vec::new();
    let mut done = Vec::new();
    let result = dispatch(request, ctx, &mut buffer, &mut done);
    let planned = ids_for_names(crate::audit::classify::entries(request), ctx.people);
    let done = ids_for_names(done, ctx.people);
    let audited = ctx
        .audit
        .record_all(ctx.actor, Outcome::Ok, done)
        .and_then(|()| match &result {
            Ok(()) => ctx.audit.record_all(ctx.actor, Outcome::Ok, planned),
            Err(message) => {
                let reason: String = message.chars().take(300).collect();
                ctx.audit.record_all(
                    ctx.actor,
                    Outcome::Refused,
                    planned
                        .into_iter()
                        .map(|e| e.with("error", &reason))
                        .collect(),
                )
            }
        });
    if let Err(err) = audited {
        log::error!(target: "consentry::audit", "cannot write the audit log: {err}");
        return Err(format!(
            "the audit log cannot be written ({err}); nothing was handed out"
        ));
    }
    out.write_all(&buffer).map_err(|e| e.to_string())?;
    result
}

/// Names a person by id in the log, not by the name the operator typed, so
/// the log holds no more personal data than it must.
fn ids_for_names(entries: Vec<crate::audit::Entry>, people: &People) -> Vec<crate::audit::Entry> {
    let id_of = |text: &str| match crate::domain::PersonId::parse(text) {
        Some(id) => id.to_string(),
        None => people
            .resolve(text)
            .map(|p| p.id.to_string())
            .unwrap_or_else(|_| "(unknown person)".to_owned()),
    };
    entries
        .into_iter()
        .map(|mut e| {
            if let Some(name) = e.object.strip_prefix("person:") {
                e.object = format!("person:{}", id_of(name));
            }
            for key in ["person", "new_person", "from"] {
                if let Some(name) = e.details.get(key) {
                    let id = id_of(name);
                    e.details.insert(key.to_owned(), id);
                }
            }
            e
        })
        .collect()
}

fn dispatch(
    request: &Request,
    ctx: &Context<'_>,
    out: &mut dyn Write,
    done: &mut Vec<crate::audit::Entry>,
) -> Result<(), String> {
    let (store, config, registry) = (ctx.store, ctx.config, ctx.registry);
    match request {
        Request::Ping => line(out, &serde_json::json!({ "pong": true })),
        Request::Status => {
            let counts = store.counts().map_err(|e| e.to_string())?;
            let queue = store
                .queue_summary(crate::clock::now_ms())
                .map_err(|e| e.to_string())?;
            let workers = registry.map(WorkerRegistry::snapshot).unwrap_or_default();
            let mut report =
                StatusReport::build(config, counts, queue, workers, registry.is_some());
            report.people = Some(ctx.people.status());
            line(out, &report)
        }
        Request::AssetsList => {
            for asset in store.assets() {
                line(out, &AssetSummary::from(&asset.map_err(|e| e.to_string())?))?;
            }
            Ok(())
        }
        Request::AssetShow { id } => {
            let asset_id = AssetId::parse(id)
                .ok_or_else(|| format!("`{id}` is not an asset id (64 hex digits)"))?;
            let asset = store
                .asset(&asset_id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no asset {id}"))?;
            let mut detail = AssetDetail::from(&asset);
            for face in &mut detail.faces {
                face.attribution.person_name = face
                    .attribution
                    .person
                    .as_deref()
                    .and_then(|id| ctx.people.name_of(id));
            }
            line(out, &detail)
        }
        Request::Export => store.export(out).map(|_| ()).map_err(|e| e.to_string()),
        Request::People { request } => {
            crate::people::commands::answer(request, ctx.people, ctx.ingestor, out)
        }
        Request::Rights { request } => crate::consent::commands::answer(
            request,
            ctx.rights,
            ctx.people,
            &config.reminders,
            &ctx.actor.name,
            out,
        ),
        Request::Audit { request } => crate::audit::commands::answer(request, ctx.audit, out),
        Request::Dsr { request } => crate::dsr::commands::answer(request, ctx, out, done),
        Request::Users { request } => ctx.users.answer(request, out),
    }
}

/// Writes one JSON value as one line.
pub(crate) fn line(out: &mut dyn Write, value: &impl Serialize) -> Result<(), String> {
    let mut text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    text.push('\n');
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

/// Binds the socket (replacing a stale one) and serves until the process ends.
pub fn serve(
    socket: &Path,
    state: Arc<ControlState>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if socket.exists() {
        if UnixStream::connect(socket).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "another daemon is already listening on {}",
                    socket.display()
                ),
            ));
        }
        std::fs::remove_file(socket)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&state);
                let _ = std::thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || handle(stream, &state));
            }
        })
}

fn handle(stream: UnixStream, state: &ControlState) {
    let uid = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map(|c| c.uid());
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut out = std::io::BufWriter::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let end = match (serde_json::from_str::<Envelope>(&request_line), uid) {
        (Err(err), _) => {
            serde_json::json!({ "end": "error", "message": format!("invalid request: {err}") })
        }
        (Ok(_), Err(err)) => serde_json::json!({
            "end": "error",
            "message": format!("cannot tell who is asking (peer credentials: {err})")
        }),
        (Ok(Envelope { request, sudo_user }), Ok(uid)) => match answer(
            &request,
            &Context {
                store: &state.store,
                config: &state.config,
                registry: Some(&state.registry),
                people: state.ingestor.people(),
                ingestor: Some(&state.ingestor),
                rights: &state.rights,
                audit: &state.audit,
                users: &state.users,
                actor: &Actor::socket_peer(uid, sudo_user),
            },
            &mut out,
        ) {
            Ok(()) => serde_json::json!({ "end": "ok" }),
            Err(message) => serde_json::json!({ "end": "error", "message": message }),
        },
    };
    let _ = writeln!(out, "{end}");
    let _ = out.flush();
}

/// Sends `request` and hands every data line to `on_line`.
pub fn request(
    socket: &Path,
    request: &Request,
    on_line: &mut dyn FnMut(&str) -> std::io::Result<()>,
) -> Result<(), ControlError> {
    let mut stream = UnixStream::connect(socket).map_err(|source| ControlError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    let envelope = Envelope {
        request: request.clone(),
        sudo_user: std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty()),
    };
    let mut text =
        serde_json::to_string(&envelope).map_err(|e| ControlError::Protocol(e.to_string()))?;
    text.push('\n');
    stream.write_all(text.as_bytes())?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        if line.starts_with("{\"end\":") {
            let end: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| ControlError::Protocol(e.to_string()))?;
            return match end["end"].as_str() {
                Some("ok") => Ok(()),
                _ => Err(ControlError::Daemon(
                    end["message"]
                        .as_str()
                        .unwrap_or("unknown error")
                        .to_owned(),
                )),
            };
        }
        on_line(&line)?;
    }
    Err(ControlError::Protocol("the reply ended early".into()))
}

/// Whether a daemon answers on `socket`.
pub fn daemon_listening(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}
