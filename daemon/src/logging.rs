//! Logging: the systemd journal when the daemon runs under journald (or when
//! configured), stderr otherwise.
//!
//! Records carry structured key-value fields (`asset_id`, `path`, `stage`,
//! `ms`, …). In the journal they become fields (`ASSET_ID=`, `STAGE=`), so
//! `journalctl -u consentryd ASSET_ID=<id>` shows one photo's whole path
//! through the pipeline. On stderr they are appended as `key=value`.

use std::io::Write;

use log::kv::{Key, Value, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::config::{JournalMode, LogConfig};

/// Where log records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    Journal,
    Stderr,
}

/// Installs the global logger. Dependencies are quietened to `warn`.
pub fn init(config: &LogConfig, identifier: &str) -> Result<LogSink, String> {
    let level: LevelFilter = config
        .level
        .parse()
        .map_err(|_| format!("invalid log level `{}`", config.level))?;
    let use_journal = match config.journal {
        JournalMode::Always => true,
        JournalMode::Never => false,
        JournalMode::Auto => systemd_journal_logger::connected_to_journal(),
    };
    let sink = if use_journal {
        systemd_journal_logger::JournalLog::new()
            .map_err(|e| format!("cannot connect to the systemd journal: {e}"))?
            .with_syslog_identifier(identifier.to_owned())
            .install()
            .map_err(|e| e.to_string())?;
        LogSink::Journal
    } else {
        log::set_boxed_logger(Box::new(StderrLog { level })).map_err(|e| e.to_string())?;
        LogSink::Stderr
    };
    log::set_max_level(level);
    Ok(sink)
}

struct StderrLog {
    level: LevelFilter,
}

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let ours = metadata.target().starts_with("consentry");
        metadata.level() <= self.level && (ours || metadata.level() <= Level::Warn)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = format!(
            "{} {:5} {}: {}",
            crate::clock::rfc3339(crate::clock::now_ms()),
            record.level(),
            record.target().trim_start_matches("consentry::"),
            record.args()
        );
        let _ = record.key_values().visit(&mut AppendFields(&mut line));
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

struct AppendFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for AppendFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let text = value.to_string();
        if text.contains(char::is_whitespace) || text.is_empty() {
            self.0.push_str(&format!(" {key}={text:?}"));
        } else {
            self.0.push_str(&format!(" {key}={text}"));
        }
        Ok(())
    }
}
