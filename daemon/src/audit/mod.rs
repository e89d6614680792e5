//! The audit trail: who saw, downloaded, exported, changed or erased what.
//!
//! Input: one [`Entry`] per action (actor, action, object, outcome, details;
//! never a photo's content). Output: an append-only hash chain in the store:
//! each [`Event`] carries the SHA-256 of the previous one, and every
//! `audit.checkpoint_every` events (and at every stop) a [`Checkpoint`] of
//! (sequence number, hash) is signed with an Ed25519 key kept apart from the
//! data. [`verify`] walks the chain and the checkpoints and names the first bad
//! sequence number. Failure modes: the store (an action whose event cannot be
//! written is refused by the caller), an unreadable signing key file.
//!
//! Architecture Invariant: an event is written before the data it records
//! leaves the daemon; if it cannot be written, the data is not handed out.

pub mod classify;
pub mod commands;
pub mod sign;
pub mod verify;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::config::AuditConfig;
use crate::pipeline::store::{Store, StoreError};
pub use sign::{Checkpoint, SigningKey};
pub use verify::{VerifyReport, verify};

/// The hash before the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("audit signing key {path}: {reason}")]
    Key { path: String, reason: String },
}

/// Who acted, and through which door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// A login name (the Unix user behind the CLI, a console user), or
    /// `consentryd` for the daemon's own work.
    pub name: String,
    /// `cli` (the CLI on the store), `socket` (the CLI through the daemon),
    /// `web`, `daemon`.
    pub via: String,
}

impl Actor {
    pub fn daemon() -> Actor {
        Actor {
            name: "consentryd".into(),
            via: "daemon".into(),
        }
    }

    /// The user running this process (and who ran `sudo`, if anyone).
    pub fn this_process(via: &str) -> Actor {
        let name = user_name(nix::unistd::getuid().as_raw());
        Actor {
            name: with_sudo(name, std::env::var("SUDO_USER").ok()),
            via: via.into(),
        }
    }

    /// The peer of the control socket, from the kernel's credentials; a
    /// root peer may name who ran `sudo`.
    pub fn socket_peer(uid: u32, sudo_user: Option<String>) -> Actor {
        let name = user_name(uid);
        let sudo = if uid == 0 { sudo_user } else { None };
        Actor {
            name: with_sudo(name, sudo),
            via: "socket".into(),
        }
    }
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"))
}

fn with_sudo(name: String, sudo: Option<String>) -> String {
    match sudo.filter(|s| !s.is_empty() && *s != name) {
        Some(sudo) => format!("{name} (sudo by {sudo})"),
        None => name,
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    /// Refused (not allowed, not found, invalid).
    Refused,
}

/// What a caller records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Dotted, stable: `asset.view`, `asset.download`, `consent.add`, … (README).
    pub action: String,
    /// `kind:id`: `asset:…`, `face:ASSET:NO`, `person:…`, `consent:…`,
    /// `case:…`, `catalogue`, `audit`, `config`.
    pub object: String,
    pub details: BTreeMap<String, String>,
}

impl Entry {
    pub fn new(action: &str, object: impl Into<String>) -> Entry {
        Entry {
            action: action.to_owned(),
            object: object.into(),
            details: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl ToString) -> Entry {
        self.details.insert(key.to_owned(), value.to_string());
        self
    }
}

/// One stored event. The hash covers every other field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at_ms: u64,
    pub actor: String,
    pub via: String,
    pub action: String,
    pub object: String,
    pub outcome: Outcome,
    pub details: BTreeMap<String, String>,
    pub prev: String,
    pub hash: String,
}

impl Event {
    /// SHA-256 over a length-prefixed encoding of every field but `hash`.
    pub fn compute_hash(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut part = |bytes: &[u8]| {
            ctx.update(&(bytes.len() as u64).to_be_bytes());
            ctx.update(bytes);
        };
        part(b"consentry audit event v1");
        part(&self.seq.to_be_bytes());
        part(&self.at_ms.to_be_bytes());
        part(self.actor.as_bytes());
        part(self.via.as_bytes());
        part(self.action.as_bytes());
        part(self.object.as_bytes());
        part(match self.outcome {
            Outcome::Ok => b"ok",
            Outcome::Refused => b"refused",
        });
        part(&(self.details.len() as u64).to_be_bytes());
        for (k, v) in &self.details {
            part(k.as_bytes());
            part(v.as_bytes());
        }
        part(self.prev.as_bytes());
        crate::pipeline::store::crypto::hex_encode(ctx.finish().as_ref())
    }

    pub fn at(&self) -> String {
        crate::clock::rfc3339(self.at_ms)
    }
}

struct Head {
    seq: u64,
    hash: String,
    checkpointed: u64,
    checkpointed_at_ms: u64,
}

/// The audit service: one writer, serialised by a lock.
pub struct Audit {
    store: Arc<Store>,
    key: SigningKey,
    every: u64,
    head: Mutex<Head>,
}

impl Audit {
    /// Opens the chain at its stored head; loads (or, when absent, creates)
    /// the signing key.
    pub fn open(store: Arc<Store>, config: &AuditConfig) -> Result<Audit, AuditError> {
        let key = SigningKey::load_or_create(&config.signing_key_file)?;
        let (seq, hash) = match store.audit_head()? {
            Some(head) => (head.seq, head.hash),
            None => (0, GENESIS.to_owned()),
        };
        let last = store.audit_checkpoints::<Checkpoint>()?.pop();
        let (checkpointed, checkpointed_at_ms) = last.map_or((0, 0), |c| (c.seq, c.at_ms));
        Ok(Audit {
            store,
            key,
            every: config.checkpoint_every.max(1),
            head: Mutex::new(Head {
                seq,
                hash,
                checkpointed,
                checkpointed_at_ms,
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn public_key(&self) -> String {
        self.key.public_hex()
    }

    /// Appends one event. Callers that hand data out do so only after this
    /// returned `Ok`.
    pub fn record(
        &self,
        actor: &Actor,
        outcome: Outcome,
        entry: Entry,
    ) -> Result<Event, AuditError> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let mut event = Event {
            seq: head.seq + 1,
            at_ms: crate::clock::now_ms(),
            actor: actor.name.clone(),
            via: actor.via.clone(),
            action: entry.action,
            object: entry.object,
            outcome,
            details: entry.details,
            prev: head.hash.clone(),
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        self.store.audit_append(event.seq, &event.hash, &event)?;
        head.seq = event.seq;
        head.hash = event.hash.clone();
        if head.seq - head.checkpointed >= self.every {
            self.checkpoint_locked(&mut head)?;
        }
        Ok(event)
    }

    /// Records `entries` (all or none are attempted in order) and flushes.
    pub fn record_all(
        &self,
        actor: &Actor,
        outcome: Outcome,
        entries: Vec<Entry>,
    ) -> Result<(), AuditError> {
        for entry in entries {
            self.record(actor, outcome, entry)?;
        }
        Ok(())
    }

    /// Signs the current head, unless it is already signed. Returns the
    /// checkpoint (None on an empty log).
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        if head.seq == 0 {
            return Ok(None);
        }
        if head.checkpointed == head.seq {
            return Ok(self.store.audit_checkpoints::<Checkpoint>()?.pop());
        }
        self.checkpoint_locked(&mut head).map(Some)
    }

    fn checkpoint_locked(&self, head: &mut Head) -> Result<Checkpoint, AuditError> {
        let checkpoint = self.key.sign(head.seq, &head.hash, crate::clock::now_ms());
        self.store
            .audit_put_checkpoint(checkpoint.seq, &checkpoint)?;
        self.store.flush()?;
        head.checkpointed = head.seq;
        head.checkpointed_at_ms = checkpoint.at_ms;
        Ok(checkpoint)
    }

    /// Signs the head when events arrived since the last checkpoint and that
    /// was at least `interval` ago (the daemon calls this every minute).
    pub fn checkpoint_if_due(
        &self,
        now_ms: u64,
        interval: std::time::Duration,
    ) -> Result<Option<Checkpoint>, AuditError> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let due = head.seq > head.checkpointed
            && now_ms.saturating_sub(head.checkpointed_at_ms)
                >= crate::clock::duration_ms(interval);
        if !due {
            return Ok(None);
        }
        self.checkpoint_locked(&mut head).map(Some)
    }

    /// Events with `at_ms >= since_ms`, in order; unreadable ones are skipped
    /// (`verify` reports them).
    pub fn events_since(&self, since_ms: u64) -> Result<Vec<Event>, AuditError> {
        let mut events = Vec::new();
        for raw in self.store.audit_raw_events::<Event>(1) {
            if let Ok(event) = raw?.event
                && event.at_ms >= since_ms
            {
                events.push(event);
            }
        }
        Ok(events)
    }

    pub fn verify(&self, external: &[Checkpoint]) -> Result<VerifyReport, AuditError> {
        Ok(verify(&self.store, &self.key.public_hex(), external)?)
    }
}

/// The daemon's start, and a configuration change since the last start
/// (compared by digest; the event names the digests, not the settings).
pub fn record_start(audit: &Audit, config: &crate::config::Config) -> Result<(), AuditError> {
    let digest = {
        let text = format!("{config:?}");
        let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        crate::pipeline::store::crypto::hex_encode(&d.as_ref()[..16])
    };
    let actor = Actor::daemon();
    let previous = audit.store.audit_note("config_digest")?;
    audit.record(
        &actor,
        Outcome::Ok,
        Entry::new("daemon.start", "daemon")
            .with("version", env!("CARGO_PKG_VERSION"))
            .with("config_digest", &digest),
    )?;
    if previous.as_deref() != Some(digest.as_str()) {
        let mut entry = Entry::new("config.change", "config").with("digest", &digest);
        if let Some(previous) = previous {
            entry = entry.with("previous_digest", previous);
        }
        audit.record(&actor, Outcome::Ok, entry)?;
        audit.store.set_audit_note("config_digest", &digest)?;
    }
    audit.store.flush()?;
    Ok(())
}

/// A file ingested from a share (or quarantined).
pub fn record_ingest(
    audit: &Audit,
    report: &crate::pipeline::ingest::IngestReport,
    collection: &str,
) -> Result<(), AuditError> {
    use crate::pipeline::store::CommitOutcome;
    let action = match report.outcome {
        CommitOutcome::Created => "asset.ingest",
        CommitOutcome::AddedSource => "asset.ingest_duplicate",
        CommitOutcome::AlreadyCommitted => return Ok(()),
    };
    audit.record(
        &Actor::daemon(),
        Outcome::Ok,
        Entry::new(action, format!("asset:{}", report.asset_id))
            .with("collection", collection)
            .with("status", report.status.as_str()),
    )?;
    Ok(())
}

/// One CSV field, quoted when it needs to be.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

pub const CSV_HEADER: &str = "seq,at,actor,via,action,object,outcome,details,prev,hash";

impl Event {
    pub fn csv_row(&self) -> String {
        let details = self
            .details
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let outcome = match self.outcome {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
        };
        [
            self.seq.to_string(),
            self.at(),
            self.actor.clone(),
            self.via.clone(),
            self.action.clone(),
            self.object.clone(),
            outcome.to_owned(),
            details,
            self.prev.clone(),
            self.hash.clone(),
        ]
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",")
    }
}

#[cfg(test)]
mod tests;
