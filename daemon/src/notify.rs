//! Reminders leaving the daemon: SMTP mail and JSON webhooks.
//!
//! Input: a validated [`SmtpConfig`] or [`WebhookConfig`] and one [`Mail`] or
//! JSON value. Output: one delivery, or a [`NotifyError`] that names the
//! server, the step that failed and the config key to check. This module only
//! transports; what a reminder says is decided by its caller.
//!
//! Both calls block (each runs on a plain worker thread, never inside tokio)
//! and are bounded by `timeout_secs` per network step. Nothing is retried
//! here: [`NotifyError::is_transient`] tells the caller whether a later retry
//! may succeed.
//!
//! TLS is rustls (ring). The server's certificate is checked against the
//! system store (`/etc/ssl/certs`) plus the PEM certificates in `ca_file`, for
//! an internal CA. Passwords live in `password_file`, read at send time, and
//! are never written into a message or an error.
//!
//! Failure modes: a config that makes no sense ([`SmtpConfig::check`],
//! [`WebhookConfig::check`], repeated before each send); an unreadable
//! password or CA file; no connection; a TLS failure (wrong `security` for the
//! port, an untrusted certificate); authentication refused; the sender or a
//! recipient refused (then nothing is sent to anyone); a timeout; a webhook
//! answering anything but 2xx.

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail as MailCommand, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde::{Deserialize, Serialize};

/// Where [`SmtpConfig`] sits in the config file; error messages name its keys.
pub const SMTP_KEY: &str = "reminders.smtp";
/// Where [`WebhookConfig`] sits in the config file.
pub const WEBHOOK_KEY: &str = "reminders.webhook";

const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connect, then `STARTTLS` before anything else (submission, port 587).
    /// A server that does not offer STARTTLS is an error, never a plaintext fallback.
    #[default]
    StartTls,
    /// TLS from the first byte ("SMTPS", port 465).
    Tls,
    /// No encryption (port 25): only to a relay on this machine (`localhost`
    /// or a loopback address), and never with a username.
    None,
}

impl SmtpSecurity {
    /// The usual port for this kind of connection: 587, 465 or 25.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        }
    }
}

/// `[reminders.smtp]`: where reminder mail goes and how.
///
/// `port` defaults by `security` (587, 465, 25) and `timeout_secs` to 30.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, from = "SmtpConfigToml")]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    /// File holding the password (never the password itself in the config);
    /// read at send time, trailing newline trimmed.
    pub password_file: Option<PathBuf>,
    /// The sender, `addr@example.org` or `Name <addr@example.org>`.
    pub from: String,
    /// The recipients, in the same forms as `from`.
    pub to: Vec<String>,
    /// Extra PEM CA certificate(s) to trust (an internal CA), in addition to
    /// the system's store.
    pub ca_file: Option<PathBuf>,
    /// Bound on connecting and on each exchange with the server.
    pub timeout_secs: u64,
}

/// The config file's form of [`SmtpConfig`]: `port` may be left out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpConfigToml {
    host: String,
    port: Option<u16>,
    #[serde(default)]
    security: SmtpSecurity,
    username: Option<String>,
    password_file: Option<PathBuf>,
    from: String,
    to: Vec<String>,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout_secs")]
    timeout_secs: u64,
}

fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

impl From<SmtpConfigToml> for SmtpConfig {
    fn from(raw: SmtpConfigToml) -> SmtpConfig {
        SmtpConfig {
            port: raw.port.unwrap_or_else(|| raw.security.default_port()),
            host: raw.host,
            security: raw.security,
            username: raw.username,
            password_file: raw.password_file,
            from: raw.from,
            to: raw.to,
            ca_file: raw.ca_file,
            timeout_secs: raw.timeout_secs,
        }
    }
}

impl SmtpConfig {
    /// Semantic checks; each error starts with the key, e.g.
    /// `reminders.smtp.to: ...`.
    pub fn check(&self) -> Result<(), String> {
        let key = |name: &str| format!("{SMTP_KEY}.{name}");
        check_host(&self.host).map_err(|reason| format!("{}: {reason}", key("host")))?;
        if self.port == 0 {
            return Err(format!("{}: must be 1 to 65535", key("port")));
        }
        self.from.parse::<Mailbox>().map_err(|e| {
            format!(
                "{}: {:?} is not a mail address: {e}",
                key("from"),
                self.from
            )
        })?;
        if self.to.is_empty() {
            return Err(format!("{}: name at least one recipient", key("to")));
        }
        for to in &self.to {
            to.parse::<Mailbox>()
                .map_err(|e| format!("{}: {to:?} is not a mail address: {e}", key("to")))?;
        }
        match (&self.username, &self.password_file) {
            (Some(user), _) if user.is_empty() => {
                return Err(format!(
                    "{}: is empty; leave it out for no login",
                    key("username")
                ));
            }
            (Some(_), None) => {
                return Err(format!(
                    "{}: required with username (a file holding the password)",
                    key("password_file")
                ));
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{}: set without username; set both or neither",
                    key("password_file")
                ));
            }
            _ => {}
        }
        if self.security == SmtpSecurity::None {
            if !is_loopback_host(&self.host) {
                return Err(format!(
                    "{}: \"none\" sends mail unencrypted, allowed only to a relay on this machine \
                     (host localhost or 127.0.0.1), not {:?}; use \"starttls\" or \"tls\"",
                    key("security"),
                    self.host
                ));
            }
            if self.username.is_some() {
                return Err(format!(
                    "{}: \"none\" would send the password unencrypted; use \"starttls\" or \"tls\", \
                     or leave out username",
                    key("security")
                ));
            }
        }
        if self.timeout_secs == 0 {
            return Err(format!("{}: must be at least 1", key("timeout_secs")));
        }
        Ok(())
    }

    /// Makes relative `password_file` and `ca_file` relative to `base` (the
    /// config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        for path in [&mut self.password_file, &mut self.ca_file]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// `host:port`, as error messages name the server.
    pub fn server(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

/// One reminder mail: a subject and a plain-text body (any Unicode; encoded
/// for the wire as needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
}

/// `[reminders.webhook]`: a URL that receives each reminder as a JSON POST.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://...`; `http://` only to this machine (localhost, loopback).
    pub url: String,
    /// Extra PEM CA certificate(s) to trust, in addition to the system's store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl WebhookConfig {
    /// Semantic checks; each error starts with the key.
    pub fn check(&self) -> Result<(), String> {
        let key = |name: &str| format!("{WEBHOOK_KEY}.{name}");
        let uri = self
            .url
            .parse::<ureq::http::Uri>()
            .map_err(|e| format!("{}: {e}", key("url")))?;
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{}: names no host", key("url")))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if is_loopback_host(host) => {}
            Some("http") => {
                return Err(format!(
                    "{}: http:// sends reminders unencrypted, allowed only to this machine \
                     (localhost, 127.0.0.1); use https://",
                    key("url")
                ));
            }
            _ => return Err(format!("{}: must start with https://", key("url"))),
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(format!(
                "{}: user information in the URL is not supported",
                key("url")
            ));
        }
        if self.timeout_secs == 0 {
            return Err(format!("{}: must be at least 1", key("timeout_secs")));
        }
        Ok(())
    }

    /// Makes a relative `ca_file` relative to `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(path) = &mut self.ca_file
            && path.is_relative()
        {
            *path = base.join(&*path);
        }
    }

    /// `scheme://host:port` of the URL, as error messages name it: the path
    /// and query are left out, as they often carry a token.
    pub fn endpoint(&self) -> String {
        match self.url.parse::<ureq::http::Uri>() {
            Ok(uri) => {
                let scheme = uri.scheme_str().unwrap_or("https");
                let host = uri.host().unwrap_or("?");
                let port = uri
                    .port_u16()
                    .unwrap_or(if scheme == "http" { 80 } else { 443 });
                format!("{scheme}://{host}:{port}")
            }
            Err(_) => "(unparsable URL)".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The config fails its checks; the message starts with the key.
    #[error("{0}")]
    Config(String),
    #[error("{key}: cannot read {path}: {source}")]
    ReadFile {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: {path}: {reason}")]
    BadFile {
        key: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "SMTP server {server}: cannot connect: {reason} (check {SMTP_KEY}.host and {SMTP_KEY}.port)"
    )]
    SmtpConnect { server: String, reason: String },
    #[error("SMTP server {server}: TLS failed: {reason}; {hint}")]
    SmtpTls {
        server: String,
        reason: String,
        hint: String,
    },
    #[error("SMTP server {server}: no answer within {secs} s during {step}{hint}")]
    SmtpTimeout {
        server: String,
        step: &'static str,
        secs: u64,
        hint: String,
    },
    #[error(
        "SMTP server {server}: authentication refused for user {user:?}: {reply} \
         (check {SMTP_KEY}.username and the password in {SMTP_KEY}.password_file)"
    )]
    SmtpAuth {
        server: String,
        user: String,
        reply: String,
        transient: bool,
    },
    #[error(
        "SMTP server {server}: sender {sender} refused: {reply} (check {SMTP_KEY}.from); nothing was sent"
    )]
    SmtpSender {
        server: String,
        sender: String,
        reply: String,
        transient: bool,
    },
    #[error(
        "SMTP server {server}: recipient {recipient} refused: {reply} (check {SMTP_KEY}.to); nothing was sent"
    )]
    SmtpRecipient {
        server: String,
        recipient: String,
        reply: String,
        transient: bool,
    },
    #[error("SMTP server {server}: {step} failed: {reason}")]
    Smtp {
        server: String,
        step: &'static str,
        reason: String,
        transient: bool,
    },
    #[error("webhook {endpoint}: cannot connect: {reason} (check {WEBHOOK_KEY}.url)")]
    WebhookConnect { endpoint: String, reason: String },
    #[error(
        "webhook {endpoint}: TLS failed: {reason} (if its certificate comes from an internal CA, \
         set {WEBHOOK_KEY}.ca_file)"
    )]
    WebhookTls { endpoint: String, reason: String },
    #[error("webhook {endpoint}: no answer within {secs} s ({WEBHOOK_KEY}.timeout_secs)")]
    WebhookTimeout { endpoint: String, secs: u64 },
    #[error("webhook {endpoint}: answered HTTP {status}{detail} (check {WEBHOOK_KEY}.url)")]
    WebhookStatus {
        endpoint: String,
        status: u16,
        /// `: ` and the start of the response body, or empty.
        detail: String,
    },
    #[error("webhook {endpoint}: {reason}")]
    Webhook { endpoint: String, reason: String },
}

impl NotifyError {
    /// Whether the same send may succeed later without a config change
    /// (network trouble, a timeout, a 4xx SMTP reply, HTTP 5xx/408/429).
    pub fn is_transient(&self) -> bool {
        match self {
            NotifyError::Config(_)
            | NotifyError::ReadFile { .. }
            | NotifyError::BadFile { .. }
            | NotifyError::SmtpTls { .. }
            | NotifyError::WebhookTls { .. } => false,
            NotifyError::SmtpConnect { .. }
            | NotifyError::SmtpTimeout { .. }
            | NotifyError::WebhookConnect { .. }
            | NotifyError::WebhookTimeout { .. }
            | NotifyError::Webhook { .. } => true,
            NotifyError::SmtpAuth { transient, .. }
            | NotifyError::SmtpSender { transient, .. }
            | NotifyError::SmtpRecipient { transient, .. }
            | NotifyError::Smtp { transient, .. } => *transient,
            NotifyError::WebhookStatus { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
        }
    }
}

// ---------------------------------------------------------------------------
// SMTP

/// Sends `mail` to every address in `cfg.to`, or to none: a refused
/// recipient stops the send before the message is transferred.
pub fn send_mail(cfg: &SmtpConfig, mail: &Mail) -> Result<(), NotifyError> {
    cfg.check().map_err(NotifyError::Config)?;
    let message = build_message(cfg, mail)?;
    let credentials = match (&cfg.username, &cfg.password_file) {
        (Some(user), Some(file)) => Some(Credentials::new(user.clone(), read_password(file)?)),
        _ => None,
    };
    let tls = match cfg.security {
        SmtpSecurity::None => None,
        SmtpSecurity::StartTls | SmtpSecurity::Tls => Some(tls_parameters(cfg)?),
    };
    let session = Session {
        cfg,
        server: cfg.server(),
    };
    let hello = ClientId::default();
    let timeout = Some(Duration::from_secs(cfg.timeout_secs));
    let implicit_tls = tls.as_ref().filter(|_| cfg.security == SmtpSecurity::Tls);
    let mut conn = SmtpConnection::connect(
        (cfg.host.as_str(), cfg.port),
        timeout,
        &hello,
        implicit_tls,
        None,
    )
    .map_err(|e| session.error(Step::Connect, &e))?;
    match session.deliver(
        &mut conn,
        &hello,
        tls.as_ref(),
        credentials.as_ref(),
        &message,
    ) {
        Ok(()) => {
            // Delivered at the end of DATA; a failed QUIT changes nothing.
            let _ = conn.quit();
            Ok(())
        }
        Err(err) => {
            conn.abort();
            Err(err)
        }
    }
}

fn build_message(cfg: &SmtpConfig, mail: &Mail) -> Result<Message, NotifyError> {
    let bad = |key: &str, e: &dyn std::fmt::Display| {
        NotifyError::Config(format!("{SMTP_KEY}.{key}: {e}"))
    };
    let from: Mailbox = cfg.from.parse().map_err(|e| bad("from", &e))?;
    // A line break in a header would end it early.
    let subject: String = mail
        .subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut builder = Message::builder()
        .from(from)
        .subject(subject)
        .message_id(None)
        // RFC 3834: no auto-replies (out-of-office) to reminders.
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ))
        .header(ContentType::TEXT_PLAIN);
    for to in &cfg.to {
        builder = builder.to(to.parse().map_err(|e| bad("to", &e))?);
    }
    builder
        .body(mail.text.clone())
        .map_err(|e| NotifyError::Config(format!("{SMTP_KEY}: cannot build the message: {e}")))
}

fn read_password(path: &Path) -> Result<String, NotifyError> {
    let key = format!("{SMTP_KEY}.password_file");
    let text = std::fs::read_to_string(path).map_err(|source| NotifyError::ReadFile {
        key: key.clone(),
        path: path.to_owned(),
        source,
    })?;
    let password = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(NotifyError::BadFile {
            key,
            path: path.to_owned(),
            reason: "is empty".to_owned(),
        });
    }
    Ok(password.to_owned())
}

fn tls_parameters(cfg: &SmtpConfig) -> Result<TlsParameters, NotifyError> {
    let mut builder = TlsParameters::builder(cfg.host.clone());
    if let Some(path) = &cfg.ca_file {
        for der in read_ca_file(path, &format!("{SMTP_KEY}.ca_file"))? {
            let cert = lettre::transport::smtp::client::Certificate::from_der(der.to_vec())
                .map_err(|e| NotifyError::BadFile {
                    key: format!("{SMTP_KEY}.ca_file"),
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build_rustls().map_err(|e| NotifyError::SmtpTls {
        server: cfg.server(),
        reason: e.to_string(),
        hint: format!("check {SMTP_KEY}.ca_file"),
    })
}

/// The PEM certificates in `path`; none is an error.
fn read_ca_file(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, NotifyError> {
    let bytes = std::fs::read(path).map_err(|source| NotifyError::ReadFile {
        key: key.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NotifyError::BadFile {
            key: key.to_owned(),
            path: path.to_owned(),
            reason: format!("not PEM certificates: {e}"),
        })?;
    if certs.is_empty() {
        return Err(NotifyError::BadFile {
            key: key.to_owned(),
            path: path.to_owned(),
            reason: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
        });
    }
    Ok(certs)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Connect,
    StartTls,
    Auth,
    Sender,
    Recipient,
    Data,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Connect => "connect and greeting",
            Step::StartTls => "STARTTLS",
            Step::Auth => "AUTH",
            Step::Sender => "MAIL FROM",
            Step::Recipient => "RCPT TO",
            Step::Data => "message transfer (DATA)",
        }
    }
}

/// What a lettre error was, as far as the operator is concerned.
enum Cause {
    /// The server answered 4xx/5xx.
    Reply {
        text: String,
        transient: bool,
    },
    Tls(String, TlsTrouble),
    Timeout,
    Other(String),
}

fn cause(err: &lettre::transport::smtp::Error) -> Cause {
    if err.status().is_some() {
        return Cause::Reply {
            text: err
                .source_text()
                .map_or_else(|| err.to_string(), |t| format!("{} {t}", status_code(err))),
            transient: err.is_transient(),
        };
    }
    if let Some(tls) = rustls_error(err) {
        return Cause::Tls(tls.to_string(), TlsTrouble::of(tls));
    }
    if err.is_tls() {
        return Cause::Tls(err.to_string(), TlsTrouble::Other);
    }
    if err.is_timeout() {
        return Cause::Timeout;
    }
    Cause::Other(err.source_text().unwrap_or_else(|| err.to_string()))
}

fn status_code(err: &lettre::transport::smtp::Error) -> String {
    err.status().map(|c| c.to_string()).unwrap_or_default()
}

trait SourceText {
    fn source_text(&self) -> Option<String>;
}

impl SourceText for lettre::transport::smtp::Error {
    /// The underlying message without lettre's "permanent error (535): " prefix.
    fn source_text(&self) -> Option<String> {
        std::error::Error::source(self).map(|s| s.to_string().trim().to_owned())
    }
}

/// A rustls error anywhere in the chain (also inside an `io::Error`, where
/// `source()` would skip it).
fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

struct Session<'a> {
    cfg: &'a SmtpConfig,
    server: String,
}

impl Session<'_> {
    fn deliver(
        &self,
        conn: &mut SmtpConnection,
        hello: &ClientId,
        tls: Option<&TlsParameters>,
        credentials: Option<&Credentials>,
        message: &Message,
    ) -> Result<(), NotifyError> {
        if self.cfg.security == SmtpSecurity::StartTls {
            let tls = tls.expect("TLS parameters are built for starttls");
            if !conn.can_starttls() {
                return Err(NotifyError::SmtpTls {
                    server: self.server.clone(),
                    reason: "the server does not offer STARTTLS".to_owned(),
                    hint: format!(
                        "check {SMTP_KEY}.port (587 usually offers STARTTLS) and {SMTP_KEY}.security"
                    ),
                });
            }
            conn.starttls(tls, hello)
                .map_err(|e| self.error(Step::StartTls, &e))?;
        }
        if let Some(credentials) = credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .map_err(|e| self.error(Step::Auth, &e))?;
        }

        let envelope = message.envelope();
        let email = message.formatted();
        let mut params = Vec::new();
        let info = conn.server_info();
        let non_ascii = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii {
            if !info.supports_feature(Extension::SmtpUtfEight) {
                return Err(NotifyError::Smtp {
                    server: self.server.clone(),
                    step: Step::Sender.name(),
                    reason: format!(
                        "an address is not ASCII and the server does not support SMTPUTF8 \
                         (check {SMTP_KEY}.from and {SMTP_KEY}.to)"
                    ),
                    transient: false,
                });
            }
            params.push(MailParameter::SmtpUtfEight);
        }
        if !email.is_ascii() && info.supports_feature(Extension::EightBitMime) {
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        conn.command(MailCommand::new(envelope.from().cloned(), params))
            .map_err(|e| self.error(Step::Sender, &e))?;
        for to in envelope.to() {
            conn.command(Rcpt::new(to.clone(), vec![])).map_err(|e| {
                match self.error(Step::Recipient, &e) {
                    NotifyError::Smtp {
                        server,
                        reason,
                        transient,
                        ..
                    } if e.status().is_some() => NotifyError::SmtpRecipient {
                        server,
                        recipient: to.to_string(),
                        reply: reason,
                        transient,
                    },
                    other => other,
                }
            })?;
        }
        conn.command(Data).map_err(|e| self.error(Step::Data, &e))?;
        conn.message(&email)
            .map_err(|e| self.error(Step::Data, &e))?;
        Ok(())
    }

    fn error(&self, step: Step, err: &lettre::transport::smtp::Error) -> NotifyError {
        let server = self.server.clone();
        let security = self.cfg.security;
        match cause(err) {
            Cause::Reply { text, transient } => match step {
                Step::Auth => NotifyError::SmtpAuth {
                    server,
                    user: self.cfg.username.clone().unwrap_or_default(),
                    reply: text,
                    transient,
                },
                Step::Sender => NotifyError::SmtpSender {
                    server,
                    sender: self.cfg.from.clone(),
                    reply: text,
                    transient,
                },
                _ => NotifyError::Smtp {
                    server,
                    step: step.name(),
                    reason: format!("the server answered {text}"),
                    transient,
                },
            },
            Cause::Tls(reason, trouble) => NotifyError::SmtpTls {
                server,
                reason,
                hint: tls_hint(self.cfg, trouble),
            },
            Cause::Timeout => {
                let mut hint = String::new();
                if step == Step::Connect && security != SmtpSecurity::Tls {
                    let _ = write!(
                        hint,
                        "; if this port expects TLS from the start (465), set {SMTP_KEY}.security = \"tls\""
                    );
                }
                let _ = write!(hint, " ({SMTP_KEY}.timeout_secs)");
                NotifyError::SmtpTimeout {
                    server,
                    step: step.name(),
                    secs: self.cfg.timeout_secs,
                    hint,
                }
            }
            Cause::Other(reason) if step == Step::Connect => {
                NotifyError::SmtpConnect { server, reason }
            }
            Cause::Other(reason) if step == Step::Auth => NotifyError::Smtp {
                server,
                step: step.name(),
                reason: format!(
                    "{reason} (the server must offer AUTH PLAIN or LOGIN; check {SMTP_KEY}.username)"
                ),
                transient: false,
            },
            Cause::Other(reason) => NotifyError::Smtp {
                server,
                step: step.name(),
                reason,
                transient: true,
            },
        }
    }
}

/// What kind of TLS failure, for the hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsTrouble {
    /// The certificate does not name the host.
    WrongName,
    /// The certificate is not trusted (unknown CA, expired, ...).
    Certificate,
    /// The peer did not speak TLS where TLS was expected: the wrong mode.
    NotTls,
    Other,
}

impl TlsTrouble {
    fn of(err: &rustls::Error) -> TlsTrouble {
        use rustls::CertificateError;
        match err {
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => TlsTrouble::WrongName,
            rustls::Error::InvalidCertificate(_) => TlsTrouble::Certificate,
            rustls::Error::InvalidMessage(_) => TlsTrouble::NotTls,
            _ => TlsTrouble::Other,
        }
    }
}

fn tls_hint(cfg: &SmtpConfig, trouble: TlsTrouble) -> String {
    let wrong_mode = match cfg.security {
        SmtpSecurity::Tls => format!(
            "the server did not answer in TLS: if it expects STARTTLS (port 587 or 25), \
             set {SMTP_KEY}.security = \"starttls\""
        ),
        _ => format!(
            "if the server expects TLS from the start (port 465), set {SMTP_KEY}.security = \"tls\""
        ),
    };
    let ca = format!(
        "if the server's certificate comes from an internal CA, set {SMTP_KEY}.ca_file to that \
         CA's PEM"
    );
    match trouble {
        TlsTrouble::WrongName => format!(
            "set {SMTP_KEY}.host to a name the server's certificate holds (not {:?})",
            cfg.host
        ),
        TlsTrouble::Certificate => ca,
        TlsTrouble::NotTls => wrong_mode,
        TlsTrouble::Other => format!("{wrong_mode}; {ca}"),
    }
}

// ---------------------------------------------------------------------------
// Webhook

/// POSTs `body` as `application/json` to `cfg.url`. Anything but a 2xx
/// answer (redirects included: they are not followed) is an error naming the
/// status.
pub fn post_webhook(cfg: &WebhookConfig, body: &serde_json::Value) -> Result<(), NotifyError> {
    cfg.check().map_err(NotifyError::Config)?;
    let endpoint = cfg.endpoint();
    let mut roots = system_roots().clone();
    if let Some(path) = &cfg.ca_file {
        roots.extend(
            read_ca_file(path, &format!("{WEBHOOK_KEY}.ca_file"))?
                .iter()
                .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned()),
        );
    }
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
        .build();
    let agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(Duration::from_secs(cfg.timeout_secs)))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(format!("consentry/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    let bytes = serde_json::to_vec(body).map_err(|e| NotifyError::Webhook {
        endpoint: endpoint.clone(),
        reason: format!("cannot encode the body: {e}"),
    })?;
    let response = agent
        .post(&cfg.url)
        .content_type("application/json")
        .send(&bytes[..])
        .map_err(|e| webhook_error(cfg, &endpoint, e))?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        return Ok(());
    }
    let mut start = Vec::new();
    let _ = response
        .into_body()
        .into_reader()
        .take(300)
        .read_to_end(&mut start);
    let text = String::from_utf8_lossy(&start);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    Err(NotifyError::WebhookStatus {
        endpoint,
        status,
        detail: if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        },
    })
}

fn webhook_error(cfg: &WebhookConfig, endpoint: &str, err: ureq::Error) -> NotifyError {
    let endpoint = endpoint.to_owned();
    // ureq's `Io` does not give its io::Error as `source()`.
    let tls = match &err {
        ureq::Error::Io(io) => rustls_error(io),
        other => rustls_error(other),
    };
    if let Some(tls) = tls {
        return NotifyError::WebhookTls {
            endpoint,
            reason: tls.to_string(),
        };
    }
    match err {
        ureq::Error::Timeout(_) => NotifyError::WebhookTimeout {
            endpoint,
            secs: cfg.timeout_secs,
        },
        ureq::Error::Rustls(e) => NotifyError::WebhookTls {
            endpoint,
            reason: e.to_string(),
        },
        ureq::Error::Tls(e) => NotifyError::WebhookTls {
            endpoint,
            reason: e.to_owned(),
        },
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            NotifyError::WebhookTimeout {
                endpoint,
                secs: cfg.timeout_secs,
            }
        }
        ureq::Error::Io(e) => NotifyError::WebhookConnect {
            endpoint,
            reason: e.to_string(),
        },
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => NotifyError::WebhookConnect {
            endpoint,
            reason: err.to_string(),
        },
        other => NotifyError::Webhook {
            endpoint,
            reason: other.to_string(),
        },
    }
}

/// The system's trusted roots, loaded once.
fn system_roots() -> &'static Vec<ureq::tls::Certificate<'static>> {
    static ROOTS: OnceLock<Vec<ureq::tls::Certificate<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        rustls_native_certs::load_native_certs()
            .certs
            .iter()
            .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
            .collect()
    })
}

// ---------------------------------------------------------------------------

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("is empty".to_owned());
    }
    if host.contains("://") {
        return Err(format!("{host:?}: a host name only, without a scheme"));
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.contains(':') {
        return Err(format!("{host:?}: a host name only; the port goes in port"));
    }
    if host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!("{host:?} is not a host name"));
    }
    Ok(())
}

/// `localhost` or a loopback address (also in URL brackets, `[::1]`).
fn is_loopback_host(host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp() -> SmtpConfig {
        toml::from_str(
            "host = \"mail.example.org\"\nusername = \"bot\"\npassword_file = \"pw\"\n\
             from = \"consentry <bot@example.org>\"\nto = [\"dpo@example.org\"]\n",
        )
        .unwrap()
    }

    #[test]
    fn smtp_defaults_follow_security() {
        let cfg = smtp();
        assert_eq!(cfg.security, SmtpSecurity::StartTls);
        assert_eq!(cfg.port, 587);
        assert_eq!(cfg.timeout_secs, 30);
        cfg.check().unwrap();
        let tls: SmtpConfig = toml::from_str(
            "host = \"h\"\nsecurity = \"tls\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n",
        )
        .unwrap();
        assert_eq!(tls.port, 465);
        let explicit: SmtpConfig =
            toml::from_str("host = \"h\"\nport = 2525\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n")
                .unwrap();
        assert_eq!(explicit.port, 2525);
        // The serialised form reads back the same.
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(toml::from_str::<SmtpConfig>(&text).unwrap(), cfg);
    }

    #[test]
    fn unknown_smtp_key_is_rejected() {
        let err = toml::from_str::<SmtpConfig>(
            "host = \"h\"\npassword = \"x\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("password"), "{err}");
    }

    #[test]
    fn smtp_checks_name_the_key() {
        let mut cfg = smtp();
        cfg.to.clear();
        assert!(cfg.check().unwrap_err().starts_with("reminders.smtp.to:"));
        cfg.to = vec!["not an address".into()];
        assert!(cfg.check().unwrap_err().starts_with("reminders.smtp.to:"));
        let mut cfg = smtp();
        cfg.from = "nobody".into();
        assert!(cfg.check().unwrap_err().starts_with("reminders.smtp.from:"));
        let mut cfg = smtp();
        cfg.password_file = None;
        assert!(
            cfg.check()
                .unwrap_err()
                .starts_with("reminders.smtp.password_file:")
        );
        let mut cfg = smtp();
        cfg.security = SmtpSecurity::None;
        assert!(
            cfg.check()
                .unwrap_err()
                .starts_with("reminders.smtp.security:")
        );
        cfg.host = "127.0.0.1".into();
        // Still refused: a password would travel in clear.
        assert!(cfg.check().unwrap_err().contains("password"));
        cfg.username = None;
        cfg.password_file = None;
        cfg.check().unwrap();
        cfg.host = "localhost".into();
        cfg.check().unwrap();
        let mut cfg = smtp();
        cfg.host = "mail.example.org:587".into();
        assert!(cfg.check().unwrap_err().starts_with("reminders.smtp.host:"));
        cfg.host = "::1".into();
        cfg.check().unwrap();
        assert_eq!(cfg.server(), "[::1]:587");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_dir() {
        let mut cfg = smtp();
        cfg.ca_file = Some("/etc/ssl/ca.pem".into());
        cfg.resolve_paths(Path::new("/etc/consentry"));
        assert_eq!(
            cfg.password_file.as_deref(),
            Some(Path::new("/etc/consentry/pw"))
        );
        assert_eq!(cfg.ca_file.as_deref(), Some(Path::new("/etc/ssl/ca.pem")));
    }

    #[test]
    fn password_file_trailing_newline_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret \r\n").unwrap();
        assert_eq!(read_password(&path).unwrap(), "s3cret ");
        std::fs::write(&path, "\n").unwrap();
        assert!(
            read_password(&path)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }

    #[test]
    fn webhook_checks() {
        let hook = |url: &str| WebhookConfig {
            url: url.into(),
            ca_file: None,
            timeout_secs: 30,
        };
        hook("https://hooks.example.org/x?token=1").check().unwrap();
        hook("http://127.0.0.1:8080/hook").check().unwrap();
        hook("http://[::1]:8080/hook").check().unwrap();
        hook("http://localhost/hook").check().unwrap();
        let err = hook("http://hooks.example.org/x").check().unwrap_err();
        assert!(err.starts_with("reminders.webhook.url:"), "{err}");
        assert!(hook("ftp://x/").check().is_err());
        assert!(hook("https://user:pw@x/").check().is_err());
        assert_eq!(
            hook("https://hooks.example.org/secret?token=1").endpoint(),
            "https://hooks.example.org:443"
        );
        let parsed: WebhookConfig = toml::from_str("url = \"https://h/x\"\n").unwrap();
        assert_eq!(parsed.timeout_secs, 30);
    }

    #[test]
    fn message_has_headers_and_encoded_body() {
        let mut cfg = smtp();
        cfg.to.push("Zoë <zoe@example.org>".into());
        let message = build_message(
            &cfg,
            &Mail {
                subject: "Zoë\r\nBcc: x@y.z".into(),
                text: "Zoë — verloopt 31 maart\n".into(),
            },
        )
        .unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(text.is_ascii(), "{text}");
        assert!(text.contains("Auto-Submitted: auto-generated"), "{text}");
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert_eq!(message.envelope().to().len(), 2);
    }
}
