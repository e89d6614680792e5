//! `consentry audit verify`: the chain and its checkpoints, first bad link.
//!
//! The chain is good when the events are numbered 1, 2, … without a gap, each
//! opens (is authentic under the catalogue key), carries its own key's
//! sequence number, names the previous event's hash, and hashes to its stored
//! hash; when the stored head is the last event; and when every checkpoint
//! (stored, or kept by a third party and passed in) is signed by the audit key
//! and matches the event at its sequence number. A checkpoint beyond the last
//! event means the tail was cut off.

use serde::{Deserialize, Serialize};

use super::{Checkpoint, Event, GENESIS};
use crate::pipeline::store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub events: u64,
    pub last_seq: u64,
    pub last_hash: String,
    pub checkpoints: usize,
    /// The latest checkpoint that holds.
    pub checkpointed_seq: u64,
    /// The first sequence number that is missing, altered or out of place.
    pub first_bad_seq: Option<u64>,
    pub problem: Option<String>,
}

pub fn verify(
    store: &Store,
    public_key: &str,
    external: &[Checkpoint],
) -> Result<VerifyReport, StoreError> {
    let mut bad: Option<(u64, String)> = None;
    let note = |seq: u64, problem: String, bad: &mut Option<(u64, String)>| {
        if bad.as_ref().is_none_or(|(s, _)| seq < *s) {
            *bad = Some((seq, problem));
        }
    };
    let mut expected = 1u64;
    let mut prev = GENESIS.to_owned();
    let mut hashes = std::collections::BTreeMap::new();
    let mut events = 0u64;
    for raw in store.audit_raw_events::<Event>(1) {
        let raw = raw?;
        events += 1;
        if bad.is_some() {
            // Keep counting; the first bad link is already known.
            continue;
        }
        if raw.seq != expected {
            note(
                expected,
                format!(
                    "event {expected} is missing (the next stored is {})",
                    raw.seq
                ),
                &mut bad,
            );
            continue;
        }
        let event = match raw.event {
            Ok(event) => event,
            Err(e) => {
                note(
                    raw.seq,
                    format!("event {} was altered: {e}", raw.seq),
                    &mut bad,
                );
                continue;
            }
        };
        if event.seq != raw.seq {
            note(
                raw.seq,
                format!(
                    "event {} is stored in the place of event {}",
                    event.seq, raw.seq
                ),
                &mut bad,
            );
            continue;
        }
        if event.prev != prev {
            note(
                raw.seq,
                format!("event {} does not follow event {}", raw.seq, raw.seq - 1),
                &mut bad,
            );
            continue;
        }
        if event.compute_hash() != event.hash {
            note(
                raw.seq,
                format!("event {} was altered (hash)", raw.seq),
                &mut bad,
            );
            continue;
        }
        prev = event.hash.clone();
        hashes.insert(event.seq, event.hash);
        expected += 1;
    }
    let last_seq = expected - 1;
    if bad.is_none()
        && let Some(head) = store.audit_head()?
        && (head.seq != last_seq || head.hash != prev)
    {
        note(
            last_seq + 1,
            format!(
                "the log ends at event {last_seq} but its head says {}: the tail was cut off",
                head.seq
            ),
            &mut bad,
        );
    }
    let mut checkpoints: Vec<Checkpoint> = store.audit_checkpoints()?;
    checkpoints.extend(external.iter().cloned());
    let mut checkpointed_seq = 0;
    for cp in &checkpoints {
        if !cp.signed_by(public_key) {
            note(
                cp.seq,
                format!(
                    "the checkpoint at event {} is not signed by the audit key",
                    cp.seq
                ),
                &mut bad,
            );
            continue;
        }
        match hashes.get(&cp.seq) {
            Some(hash) if *hash == cp.hash => checkpointed_seq = checkpointed_seq.max(cp.seq),
            Some(_) => note(
                cp.seq,
                format!(
                    "the log up to event {} differs from its signed checkpoint (rewritten)",
                    cp.seq
                ),
                &mut bad,
            ),
            None if cp.seq > last_seq && bad.is_none() => note(
                last_seq + 1,
                format!(
                    "a signed checkpoint covers event {} but the log ends at {last_seq}: the tail was cut off",
                    cp.seq
                ),
                &mut bad,
            ),
            // Within a part already reported bad.
            None => {}
        }
    }
    let (first_bad_seq, problem) = match bad {
        Some((seq, problem)) => (Some(seq), Some(problem)),
        None => (None, None),
    };
    Ok(VerifyReport {
        ok: first_bad_seq.is_none(),
        events,
        last_seq,
        last_hash: prev,
        checkpoints: checkpoints.len(),
        checkpointed_seq,
        first_bad_seq,
        problem,
    })
}
