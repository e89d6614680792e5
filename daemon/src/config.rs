//! The daemon's one configuration file (`/etc/consentry/consentry.toml`).
//!
//! Input: TOML text. Output: a validated [`Config`]. Failure modes: a syntax
//! error, an unknown key (always an error: a typo must never silently fall back
//! to a default), or a value that parses but makes no sense; every error names
//! the key and says why. The daemon never writes its own config.
//!
//! `packaging/consentry.toml` is the annotated production file and the demo
//! config is built in code ([`Config::demo`]); tests keep both honest.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Where the production config lives.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/consentry/consentry.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path}: key `{key}`: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(Default)]
pub struct Config {
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub faces: FacesConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default)]
    pub people: PeopleConfig,
    #[serde(default)]
    pub consent: ConsentConfig,
    #[serde(default)]
    pub reminders: RemindersConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub web: WebConfig,
    /// The organisation's entries in the Art. 30 register (`consentry register`).
    #[serde(default)]
    pub register: crate::register::RegisterConfig,
    /// Watched drop shares; each feeds one collection.
    #[serde(default, rename = "share")]
    pub shares: Vec<ShareConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Catalogue (sled) and encrypted blobs live here.
    pub data_dir: PathBuf,
    /// 32-byte master key, mode 0600. Used when no systemd credential is passed.
    pub master_key_file: PathBuf,
    /// Name of the systemd credential (`LoadCredential=`) holding the master key.
    /// Takes precedence over `master_key_file` when `$CREDENTIALS_DIRECTORY` has it.
    pub master_key_credential: String,
    /// sled page cache. sled's own default (1 GiB) is wrong for a small appliance.
    #[serde(deserialize_with = "de_size")]
    pub cache_capacity: u64,
    /// How often sled flushes on its own, between our explicit durability points.
    #[serde(deserialize_with = "de_duration")]
    pub flush_every: Duration,
    /// Ids of erased photos (Art. 17), one per line. Kept outside `data_dir`
    /// so that restoring a backup of `data_dir` cannot roll it back; replayed at
    /// every start and restore.
    pub erasure_ledger: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("/var/lib/consentry"),
            master_key_file: PathBuf::from("/etc/consentry/master.key"),
            master_key_credential: "master.key".to_owned(),
            cache_capacity: 64 * MIB,
            flush_every: Duration::from_millis(500),
            erasure_ledger: PathBuf::from("/var/lib/consentry-ledger/erasures"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Images with more pixels than this are refused before decoding.
    pub max_pixels: u64,
    /// Files larger than this are refused before reading.
    #[serde(deserialize_with = "de_size")]
    pub max_file_size: u64,
    /// A file is taken only after its size and mtime stayed unchanged this long.
    #[serde(deserialize_with = "de_duration")]
    pub quiet_period: Duration,
    /// Full walk of every share; inotify events only make it come sooner.
    #[serde(deserialize_with = "de_duration")]
    pub rescan_interval: Duration,
    /// Parallel ingest workers; 0 means one per CPU.
    pub workers: usize,
    /// After this many failed attempts a file is quarantined.
    pub max_attempts: u32,
    /// First retry delay; doubles with each attempt.
    #[serde(deserialize_with = "de_duration")]
    pub retry_backoff: Duration,
    /// A claimed job whose worker stops heart-beating for this long is taken over.
    #[serde(deserialize_with = "de_duration")]
    pub lease: Duration,
    /// Longest edge of each stored thumbnail, in pixels.
    pub thumbnail_sizes: Vec<u32>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_pixels: 100_000_000,
            max_file_size: 512 * MIB,
            quiet_period: Duration::from_secs(5),
            rescan_interval: Duration::from_secs(60),
            workers: 0,
            max_attempts: 3,
            retry_backoff: Duration::from_secs(2),
            lease: Duration::from_secs(120),
            thumbnail_sizes: vec![320, 1280],
        }
    }
}

impl IngestConfig {
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        }
    }
}

/// Environment variable that overrides `faces.models_dir` (for a source
/// checkout, where `make models` writes `target/models`).
pub const MODELS_DIR_ENV: &str = "CONSENTRY_MODELS_DIR";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FacesConfig {
    /// Converted face models (`models.json` and safetensors files).
    pub models_dir: PathBuf,
    /// Minimum detector score for a face (0..1); boxes below 0.5 must also be
    /// face-shaped. Low on purpose: a missed face is worse than a false one.
    pub min_score: f32,
    /// Photos the face engine runs as one batch.
    pub batch_photos: usize,
    /// How long a photo waits for others to share its batch.
    #[serde(deserialize_with = "de_duration")]
    pub batch_wait: Duration,
}

impl Default for FacesConfig {
    fn default() -> Self {
        FacesConfig {
            models_dir: PathBuf::from("/usr/share/consentry/models"),
            min_score: 0.2,
            batch_photos: 4,
            batch_wait: Duration::from_millis(20),
        }
    }
}

/// Matching faces to persons, clustering, and the template policy (GDPR Art. 9).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeopleConfig {
    /// Collections whose faces are recognised (a template is kept); `"*"`
    /// means every collection. Elsewhere faces are detected and flagged, and
    /// no template is stored. Empty (the default): recognition is off.
    pub recognition: Vec<String>,
    /// A face is suggested as a person when its distance to one of the
    /// person's confirmed faces is below this (dlib scale; same person < 0.6).
    pub suggest_distance: f32,
    /// Below this distance a suggestion is confirmed without a person. 0 (the
    /// default) turns auto-confirmation off.
    pub auto_confirm_distance: f32,
    /// Clustering of unknown faces: neighbours lie within this distance…
    pub cluster_distance: f32,
    /// …and a core face has at least this many faces (itself included) there.
    pub cluster_min_faces: usize,
    /// Templates of faces that belong to nobody (or to a person without a
    /// recognition basis) are purged after this long.
    #[serde(deserialize_with = "de_duration")]
    pub template_retention: Duration,
    /// How often the purge and the full re-clustering run.
    #[serde(deserialize_with = "de_duration")]
    pub maintenance_interval: Duration,
    /// Collection that reference photos given to `consentry people add --photo` go to.
    pub enrolment_collection: String,
}

impl Default for PeopleConfig {
    fn default() -> Self {
        PeopleConfig {
            recognition: Vec::new(),
            suggest_distance: 0.55,
            auto_confirm_distance: 0.0,
            cluster_distance: crate::people::cluster::ClusterParams::default().max_distance,
            cluster_min_faces: crate::people::cluster::ClusterParams::default().min_faces,
            template_retention: Duration::from_secs(30 * 86_400),
            maintenance_interval: Duration::from_secs(3600),
            enrolment_collection: "enrolment".to_owned(),
        }
    }
}

impl PeopleConfig {
    /// Whether faces in `collection` are recognised (templates kept).
    pub fn recognises(&self, collection: &str) -> bool {
        collection == self.enrolment_collection
            || self.recognition.iter().any(|c| c == "*" || c == collection)
    }
}

/// Consent and licence rules: what the usage decision reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    /// The purpose vocabulary consents and licences name.
    pub purposes: Vec<String>,
    /// The organisation's time zone (IANA name, or `system`): a date such as
    /// "valid until 31 March" or "withdrawn on 10 May" is a day there.
    pub time_zone: String,
    /// Below this age a parent or guardian must sign (GDPR Art. 8; 16 in the
    /// Netherlands, UAVG art. 5).
    pub guardian_age: i16,
    /// Faces smaller than this (shorter box side, in pixels of the displayed
    /// photo) do not block a decision. 0 (the default): every face counts.
    pub min_face_px: u32,
    /// Block photos with no licence recorded (off: such photos are taken to
    /// be the organisation's own).
    pub require_licence: bool,
    /// "Expiring soon" horizon for decisions, reports and reminders, in days.
    pub expiring_days: i32,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig {
            purposes: [
                "internal",
                "intranet",
                "website",
                "social-media",
                "print",
                "press",
                "third-parties",
            ]
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
            time_zone: "system".to_owned(),
            guardian_age: 16,
            min_face_px: 0,
            require_licence: false,
            expiring_days: 30,
        }
    }
}

impl ConsentConfig {
    pub fn time_zone(&self) -> Result<jiff::tz::TimeZone, String> {
        if self.time_zone == "system" {
            // Falls back to UTC (with a logged warning) where the machine has
            // no time zone configured.
            Ok(jiff::tz::TimeZone::system())
        } else {
            jiff::tz::TimeZone::get(&self.time_zone)
                .map_err(|e| format!("unknown time zone `{}`: {e}", self.time_zone))
        }
    }

    /// The decision rules (the time zone resolved).
    pub fn rules(&self) -> Result<crate::consent::decide::Rules, String> {
        Ok(crate::consent::decide::Rules {
            time_zone: self.time_zone()?,
            guardian_age: self.guardian_age,
            min_face_px: self.min_face_px,
            require_licence: self.require_licence,
            expiring_days: self.expiring_days,
            purposes: self.purposes.clone(),
        })
    }
}

/// The audit trail (`audit/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Ed25519 key that signs checkpoints of the audit chain; created at first
    /// start when absent (mode 0600). Keep it apart from `store.data_dir`.
    pub signing_key_file: PathBuf,
    /// A signed checkpoint after this many events (and at every stop).
    pub checkpoint_every: u64,
    /// ... and at least this often while events arrive.
    #[serde(deserialize_with = "de_duration")]
    pub checkpoint_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            signing_key_file: PathBuf::from("/etc/consentry/audit-signing.key"),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(3600),
        }
    }
}

/// The web console and `/api/v1` (`console/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve the console (off: the CLI only).
    pub enabled: bool,
    /// Address and port of the HTTPS console.
    pub listen: String,
    /// Optional plain-HTTP address that only redirects to HTTPS (never data).
    pub http_listen: Option<String>,
    /// PEM certificate chain and private key. When neither file exists, a
    /// self-signed certificate is generated there at start and its
    /// fingerprint logged.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Host names (and addresses) the generated certificate is for, besides
    /// `localhost`.
    pub hostnames: Vec<String>,
    /// A session ends after this long without a request ...
    #[serde(deserialize_with = "de_duration")]
    pub session_idle: Duration,
    /// ... and this long after sign-in in any case.
    #[serde(deserialize_with = "de_duration")]
    pub session_absolute: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            listen: "[::]:8443".to_owned(),
            http_listen: None,
            cert_file: PathBuf::from("/etc/consentry/tls/console.crt"),
            key_file: PathBuf::from("/etc/consentry/tls/console.key"),
            hostnames: Vec::new(),
            session_idle: Duration::from_secs(30 * 60),
            session_absolute: Duration::from_secs(12 * 3600),
        }
    }
}

/// The daily reminder digest (consents and licences expiring, withdrawals).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemindersConfig {
    /// Local time of day (`HH:MM`, in `consent.time_zone`) the digest is sent.
    pub send_at: String,
    /// Mail over SMTP; no table: no mail.
    pub smtp: Option<crate::notify::SmtpConfig>,
    /// A JSON POST of the same digest; no table: none.
    pub webhook: Option<crate::notify::WebhookConfig>,
}

impl Default for RemindersConfig {
    fn default() -> Self {
        RemindersConfig {
            send_at: "07:00".to_owned(),
            smtp: None,
            webhook: None,
        }
    }
}

impl RemindersConfig {
    /// `send_at` as a time of day.
    pub fn send_time(&self) -> Result<jiff::civil::Time, String> {
        let text = &self.send_at;
        jiff::civil::Time::strptime("%H:%M", text)
            .map_err(|_| format!("`{text}` is not a time of day like 07:00"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalMode {
    /// The journal when started by systemd with the journal as output, else stderr.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// error, warn, info, debug or trace.
    pub level: String,
    pub journal: JournalMode,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            journal: JournalMode::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Unix socket the `consentry` CLI uses to talk to a running daemon.
    /// Empty means `<data_dir>/control.sock`.
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from("/run/consentry/control.sock"),
        }
    }
}

/// What happens to a dropped file once its encrypted copy and records are durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterIngest {
    Delete,
    Move,
    Keep,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareConfig {
    pub path: PathBuf,
    pub collection: String,
    #[serde(default = "default_after_ingest")]
    pub after_ingest: AfterIngest,
    /// Destination folder for `after_ingest = "move"`.
    #[serde(default)]
    pub move_to: Option<PathBuf>,
}

fn default_after_ingest() -> AfterIngest {
    AfterIngest::Delete
}

pub const MIB: u64 = 1024 * 1024;

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        config.apply_env();
        Ok(config)
    }

    /// Parses and validates config text; `path` is only used in messages and
    /// to resolve relative paths (relative to the file's folder).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|err| ConfigError::Syntax {
            path: path.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        config.resolve_relative_paths(base);
        config
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                path: path.to_owned(),
                key,
                reason,
            })?;
        Ok(config)
    }

    /// The embedded default for `consentryd --demo DIR`: one drop share, all
    /// state and the (demo-only, generated) master key below `dir`.
    pub fn demo(dir: &Path) -> Config {
        let mut config = Config::default();
        config.store.data_dir = dir.join("data");
        config.store.master_key_file = dir.join("master.key");
        config.store.erasure_ledger = dir.join("erasure-ledger");
        config.audit.signing_key_file = dir.join("audit-signing.key");
        config.web.listen = "127.0.0.1:8443".to_owned();
        config.web.cert_file = dir.join("tls/console.crt");
        config.web.key_file = dir.join("tls/console.key");
        config.control.socket = dir.join("control.sock");
        config.ingest.quiet_period = Duration::from_secs(2);
        config.ingest.rescan_interval = Duration::from_secs(10);
        config.people.recognition = vec!["*".to_owned()];
        config.shares.push(ShareConfig {
            path: dir.join("drop"),
            collection: "demo".to_owned(),
            after_ingest: AfterIngest::Delete,
            move_to: None,
        });
        config.apply_env();
        config
    }

    /// The built-in defaults with the environment applied (for commands that
    /// work without a config file).
    pub fn from_defaults() -> Config {
        let mut config = Config::default();
        config.apply_env();
        config
    }

    /// The few settings the environment may override (documented in the
    /// shipped config): only `CONSENTRY_MODELS_DIR` today.
    fn apply_env(&mut self) {
        if let Some(dir) = std::env::var_os(MODELS_DIR_ENV).filter(|d| !d.is_empty()) {
            self.faces.models_dir = PathBuf::from(dir);
        }
    }

    pub fn control_socket(&self) -> PathBuf {
        if self.control.socket.as_os_str().is_empty() {
            self.store.data_dir.join("control.sock")
        } else {
            self.control.socket.clone()
        }
    }

    fn resolve_relative_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.store.data_dir);
        fix(&mut self.store.master_key_file);
        fix(&mut self.store.erasure_ledger);
        fix(&mut self.audit.signing_key_file);
        fix(&mut self.web.cert_file);
        fix(&mut self.web.key_file);
        fix(&mut self.control.socket);
        fix(&mut self.faces.models_dir);
        if let Some(smtp) = &mut self.reminders.smtp {
            smtp.resolve_paths(base);
        }
        if let Some(webhook) = &mut self.reminders.webhook {
            webhook.resolve_paths(base);
        }
        for share in &mut self.shares {
            fix(&mut share.path);
            if let Some(move_to) = &mut share.move_to {
                fix(move_to);
            }
        }
    }

    /// Semantic checks; returns the offending key and why.
    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, reason: &str| Err((key.to_owned(), reason.to_owned()));
        if self.audit.checkpoint_every == 0 {
            return bad("audit.checkpoint_every", "must be at least 1");
        }
        if self.audit.checkpoint_interval < Duration::from_secs(1) {
            return bad("audit.checkpoint_interval", "must be at least 1s");
        }
        if self.store.erasure_ledger.starts_with(&self.store.data_dir) {
            return bad(
                "store.erasure_ledger",
                "must be outside store.data_dir, or restoring a backup would roll it back",
            );
        }
        if self.web.enabled {
            if self.web.listen.parse::<std::net::SocketAddr>().is_err() {
                return bad(
                    "web.listen",
                    "must be an address and port, e.g. \"[::]:8443\"",
                );
            }
            if let Some(http) = &self.web.http_listen
                && http.parse::<std::net::SocketAddr>().is_err()
            {
                return bad(
                    "web.http_listen",
                    "must be an address and port, e.g. \"[::]:80\"",
                );
            }
            if self.web.session_idle < Duration::from_secs(60)
                || self.web.session_idle > self.web.session_absolute
            {
                return bad(
                    "web.session_idle",
                    "must be at least 1m and at most web.session_absolute",
                );
            }
        }
        if self.ingest.max_pixels == 0 {
            return bad("ingest.max_pixels", "must be greater than 0");
        }
        if self.ingest.max_file_size == 0 {
            return bad("ingest.max_file_size", "must be greater than 0");
        }
        if !(0.05..=0.99).contains(&self.faces.min_score) {
            return bad("faces.min_score", "must be between 0.05 and 0.99");
        }
        let people = &self.people;
        if !(0.2..=0.6).contains(&people.suggest_distance) {
            return bad(
                "people.suggest_distance",
                "must be between 0.2 and 0.6 (dlib's same-person limit)",
            );
        }
        if people.auto_confirm_distance < 0.0
            || people.auto_confirm_distance > people.suggest_distance
        {
            return bad(
                "people.auto_confirm_distance",
                "must be 0 (off) or at most people.suggest_distance",
            );
        }
        if !(0.2..=0.6).contains(&people.cluster_distance) {
            return bad("people.cluster_distance", "must be between 0.2 and 0.6");
        }
        if people.cluster_min_faces < 2 {
            return bad("people.cluster_min_faces", "must be at least 2");
        }
        if people.template_retention.is_zero() {
            return bad("people.template_retention", "must be longer than 0s");
        }
        if people.maintenance_interval < Duration::from_secs(1) {
            return bad("people.maintenance_interval", "must be at least 1s");
        }
        if people.enrolment_collection.trim().is_empty() {
            return bad("people.enrolment_collection", "must not be empty");
        }
        let consent = &self.consent;
        if consent.purposes.is_empty() {
            return bad("consent.purposes", "must name at least one purpose");
        }
        if let Some(p) = consent.purposes.iter().find(|p| {
            p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }) {
            return Err((
                "consent.purposes".to_owned(),
                format!(
                    "`{p}`: a purpose is lower-case letters, digits and dashes, e.g. social-media"
                ),
            ));
        }
        if let Err(reason) = consent.time_zone() {
            return Err(("consent.time_zone".to_owned(), reason));
        }
        if !(1..=21).contains(&consent.guardian_age) {
            return bad("consent.guardian_age", "must be between 1 and 21");
        }
        if !(1..=366).contains(&consent.expiring_days) {
            return bad("consent.expiring_days", "must be between 1 and 366");
        }
        if let Err(reason) = self.reminders.send_time() {
            return Err(("reminders.send_at".to_owned(), reason));
        }
        if let Some(smtp) = &self.reminders.smtp
            && let Err(reason) = smtp.check()
        {
            return Err(("reminders.smtp".to_owned(), reason));
        }
        if let Some(webhook) = &self.reminders.webhook
            && let Err(reason) = webhook.check()
        {
            return Err(("reminders.webhook".to_owned(), reason));
        }
        if !(1..=64).contains(&self.faces.batch_photos) {
            return bad("faces.batch_photos", "must be between 1 and 64");
        }
        if self.ingest.max_attempts == 0 {
            return bad("ingest.max_attempts", "must be at least 1");
        }
        if self.ingest.rescan_interval < Duration::from_secs(1) {
            return bad("ingest.rescan_interval", "must be at least 1s");
        }
        if self.ingest.lease < Duration::from_secs(5) {
            return bad("ingest.lease", "must be at least 5s");
        }
        if self
            .ingest
            .thumbnail_sizes
            .iter()
            .any(|&s| !(16..=8192).contains(&s))
        {
            return bad(
                "ingest.thumbnail_sizes",
                "each size must be between 16 and 8192 pixels",
            );
        }
        if log::LevelFilter::from_str_opt(&self.log.level).is_none() {
            return bad(
                "log.level",
                "must be one of error, warn, info, debug, trace",
            );
        }
        if self.store.master_key_credential.contains('/') {
            return bad(
                "store.master_key_credential",
                "is a credential name, not a path",
            );
        }
        let mut collections_by_path: Vec<&Path> = Vec::new();
        for (idx, share) in self.shares.iter().enumerate() {
            let key = |field: &str| format!("share[{idx}].{field}");
            if share.collection.trim().is_empty()
                || !share
                    .collection
                    .chars()
                    .all(|c| c.is_alphanumeric() || "-_.".contains(c))
            {
                return Err((
                    key("collection"),
                    "must be a non-empty name of letters, digits, '-', '_' or '.'".into(),
                ));
            }
            if share.path.starts_with(&self.store.data_dir)
                || self.store.data_dir.starts_with(&share.path)
            {
                return Err((key("path"), "must not overlap store.data_dir".into()));
            }
            if collections_by_path
                .iter()
                .any(|p| p.starts_with(&share.path) || share.path.starts_with(p))
            {
                return Err((key("path"), "overlaps another share".into()));
            }
            collections_by_path.push(&share.path);
            match (share.after_ingest, &share.move_to) {
                (AfterIngest::Move, None) => {
                    return Err((
                        key("move_to"),
                        "is required when after_ingest = \"move\"".into(),
                    ));
                }
                (AfterIngest::Move, Some(dest)) if dest.starts_with(&share.path) => {
                    return Err((
                        key("move_to"),
                        "must be outside the share, or moved files would be ingested again".into(),
                    ));
                }
                (AfterIngest::Delete | AfterIngest::Keep, Some(_)) => {
                    return Err((
                        key("move_to"),
                        "is only used with after_ingest = \"move\"".into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

trait LevelFilterExt: Sized {
    fn from_str_opt(s: &str) -> Option<Self>;
}

impl LevelFilterExt for log::LevelFilter {
    fn from_str_opt(s: &str) -> Option<Self> {
        s.parse().ok().filter(|l| *l != log::LevelFilter::Off)
    }
}

/// A size like `"512MiB"`, `"2GB"`, `"4096"` (bytes) or a bare integer.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like \"512MiB\""))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A duration like `"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"7d"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like \"5s\""))?;
    let millis: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => return Err(format!("`{text}` needs a unit (ms, s, m, h, d)")),
        other => {
            return Err(format!(
                "unknown duration unit `{other}` (use ms, s, m, h, d)"
            ));
        }
    };
    number
        .checked_mul(millis)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long"))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeOrText {
    Number(u64),
    Text(String),
}

fn de_size<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    match SizeOrText::deserialize(de)? {
        SizeOrText::Number(n) => Ok(n),
        SizeOrText::Text(t) => parse_size(&t).map_err(serde::de::Error::custom),
    }
}

fn de_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(de)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

impl fmt::Display for AfterIngest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AfterIngest::Delete => "delete",
            AfterIngest::Move => "move",
            AfterIngest::Keep => "keep",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/consentry/consentry.toml"))
    }

    fn invalid_key(text: &str) -> String {
        match parse(text) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn shipped_config_parses_and_equals_defaults_plus_its_share() {
        let text = include_str!("../../packaging/consentry.toml");
        let config = parse(text).expect("packaging/consentry.toml must parse");
        let expected = Config {
            shares: config.shares.clone(),
            ..Config::default()
        };
        assert_eq!(
            config, expected,
            "the shipped file documents the defaults; keep them equal"
        );
        assert_eq!(config.shares.len(), 1);
        assert_eq!(config.shares[0].after_ingest, AfterIngest::Delete);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = parse("[ingest]\nquiet_perod = \"5s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("quiet_perod"), "{err}");
        let err = parse("[[share]]\npath = \"/srv/a\"\ncollection = \"a\"\nafter = \"keep\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("after"), "{err}");
        let err = parse("[stroe]\n").unwrap_err().to_string();
        assert!(err.contains("stroe"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key_and_why() {
        let err = parse("[ingest]\nmax_file_size = \"12 parsecs\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max_file_size") && err.contains("parsecs"),
            "{err}"
        );
        let err = parse("[ingest]\nquiet_period = \"5\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("quiet_period") && err.contains("needs a unit"),
            "{err}"
        );
        assert_eq!(
            invalid_key("[ingest]\nmax_pixels = 0\n"),
            "ingest.max_pixels"
        );
        assert_eq!(invalid_key("[log]\nlevel = \"loud\"\n"), "log.level");
        assert_eq!(
            invalid_key(
                "[[share]]\npath = \"/srv/a\"\ncollection = \"a\"\nafter_ingest = \"move\"\n"
            ),
            "share[0].move_to"
        );
        assert_eq!(
            invalid_key(
                "[[share]]\npath = \"/srv/a\"\ncollection = \"a\"\nafter_ingest = \"move\"\nmove_to = \"/srv/a/done\"\n"
            ),
            "share[0].move_to"
        );
        assert_eq!(
            invalid_key(
                "[[share]]\npath = \"/srv/a\"\ncollection = \"a\"\n[[share]]\npath = \"/srv/a/b\"\ncollection = \"b\"\n"
            ),
            "share[1].path"
        );
        assert_eq!(
            invalid_key("[[share]]\npath = \"/srv/a\"\ncollection = \"a b\"\n"),
            "share[0].collection"
        );
        assert_eq!(
            invalid_key(
                "[store]\ndata_dir = \"/srv/a/data\"\n[[share]]\npath = \"/srv/a\"\ncollection = \"a\"\n"
            ),
            "share[0].path"
        );
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512MiB"), Ok(512 * MIB));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1 XB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("2 fortnights").is_err());
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let config = Config::parse(
            "[store]\ndata_dir = \"data\"\n[[share]]\npath = \"drop\"\ncollection = \"x\"\n",
            Path::new("/opt/site/consentry.toml"),
        )
        .unwrap();
        assert_eq!(config.store.data_dir, Path::new("/opt/site/data"));
        assert_eq!(config.shares[0].path, Path::new("/opt/site/drop"));
    }

    #[test]
    fn demo_config_is_valid() {
        let config = Config::demo(Path::new("/tmp/demo"));
        config.validate().unwrap();
        assert_eq!(config.shares[0].path, Path::new("/tmp/demo/drop"));
    }
}
