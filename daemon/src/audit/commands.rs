//! `consentry audit …` on the control socket. Reading the log is itself an
//! audited action (recorded after the answer is computed, before it is sent).

use std::io::Write;

use serde::{Deserialize, Serialize};

use super::{Audit, CSV_HEADER, Checkpoint, Entry};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AuditRequest {
    /// Check the whole chain, plus checkpoints a third party kept.
    Verify {
        #[serde(default)]
        checkpoints: Vec<Checkpoint>,
    },
    /// Events from `since_ms` on.
    Export { since_ms: u64, format: ExportFormat },
    /// Sign the head now.
    Checkpoint,
    /// The stored checkpoints (for a third party to keep).
    Checkpoints,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

pub fn entry(request: &AuditRequest) -> Entry {
    match request {
        AuditRequest::Verify { checkpoints } => {
            Entry::new("audit.verify", "audit").with("external_checkpoints", checkpoints.len())
        }
        AuditRequest::Export { since_ms, format } => Entry::new("audit.export", "audit")
            .with("since", crate::clock::rfc3339(*since_ms))
            .with("format", format!("{format:?}").to_lowercase()),
        AuditRequest::Checkpoint => Entry::new("audit.checkpoint", "audit"),
        AuditRequest::Checkpoints => Entry::new("audit.checkpoints", "audit"),
    }
}

fn line(out: &mut dyn Write, value: &impl Serialize) -> Result<(), String> {
    let mut text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    text.push('\n');
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

pub fn answer(request: &AuditRequest, audit: &Audit, out: &mut dyn Write) -> Result<(), String> {
    let fail = |e: super::AuditError| e.to_string();
    match request {
        AuditRequest::Verify { checkpoints } => {
            line(out, &audit.verify(checkpoints).map_err(fail)?)
        }
        AuditRequest::Export { since_ms, format } => {
            let events = audit.events_since(*since_ms).map_err(fail)?;
            match format {
                ExportFormat::Jsonl => events.iter().try_for_each(|e| line(out, e)),
                ExportFormat::Csv => {
                    line(out, &serde_json::json!({ "csv": CSV_HEADER }))?;
                    events
                        .iter()
                        .try_for_each(|e| line(out, &serde_json::json!({ "csv": e.csv_row() })))
                }
            }
        }
        AuditRequest::Checkpoint => match audit.checkpoint().map_err(fail)? {
            Some(cp) => line(out, &cp),
            None => Err("the audit log is empty; nothing to sign".into()),
        },
        AuditRequest::Checkpoints => audit
            .store()
            .audit_checkpoints::<Checkpoint>()
            .map_err(|e| e.to_string())?
            .iter()
            .try_for_each(|cp| line(out, cp)),
    }
}
