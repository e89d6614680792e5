//! Queue: the job payloads and the retry policy of the durable queue.
//!
//! Input: a [`Job`] from the watcher (or the one-shot CLI). Output: the job,
//! claimed by exactly one worker at a time. Failure modes: none here; the sled
//! side lives in `store::jobs` (only the store touches sled).
//!
//! A job is keyed by a big-endian id so the oldest runs first; it is claimed
//! with a lease, heart-beaten while it runs, retried with exponential backoff,
//! and after `ingest.max_attempts` failures its file is quarantined with the
//! reason. A worker that dies mid-job (crash, SIGKILL) leaves a dead lease and
//! the job is redone by the next run; ingest is idempotent (content-hash ids,
//! source references compared as drops), so redoing never doubles an asset.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::AfterIngest;

/// A job is quarantined after its worker died this many times holding it
/// (a file that crashes a decoder must not crash-loop the daemon).
pub const MAX_INTERRUPTIONS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    Ingest(IngestJob),
}

/// Take in one dropped file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestJob {
    pub collection: String,
    /// Share root; the file is `root/rel_path`. For one-shot ingest of
    /// arbitrary paths, `root` is empty and `rel_path` absolute.
    pub root: PathBuf,
    pub rel_path: String,
    /// Size and mtime when the watcher found the file complete.
    pub size: u64,
    pub mtime_ms: u64,
    pub after: AfterIngest,
    pub move_to: Option<PathBuf>,
}

impl IngestJob {
    pub fn source_path(&self) -> PathBuf {
        if self.root.as_os_str().is_empty() {
            PathBuf::from(&self.rel_path)
        } else {
            self.root.join(&self.rel_path)
        }
    }

    /// The drop this job takes in, as recorded on the asset.
    pub fn source_ref(&self, ingested_at_ms: u64) -> crate::domain::SourceRef {
        crate::domain::SourceRef {
            collection: self.collection.clone(),
            path: self.rel_path.clone(),
            size: self.size,
            mtime_ms: self.mtime_ms,
            ingested_at_ms,
        }
    }

    /// The queue's de-duplication key: one queued job per file.
    pub fn dedupe_parts(&self) -> [&[u8]; 2] {
        [self.collection.as_bytes(), self.rel_path.as_bytes()]
    }
}

/// Delay before retry number `attempt` (1-based): `base`, 2×`base`, 4×…, capped at one hour.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(2));
        assert_eq!(backoff(base, 2), Duration::from_secs(4));
        assert_eq!(backoff(base, 3), Duration::from_secs(8));
        assert_eq!(backoff(base, 40), Duration::from_secs(3600));
    }

    #[test]
    fn job_payload_round_trips_as_tagged_json() {
        let job = Job::Ingest(IngestJob {
            collection: "press".into(),
            root: PathBuf::from("/srv/drop"),
            rel_path: "a/b.jpg".into(),
            size: 10,
            mtime_ms: 20,
            after: AfterIngest::Move,
            move_to: Some(PathBuf::from("/srv/done")),
        });
        let json = serde_json::to_string(&job).unwrap();
        assert!(json.starts_with("{\"kind\":\"ingest\""), "{json}");
        assert_eq!(serde_json::from_str::<Job>(&json).unwrap(), job);
        let Job::Ingest(ingest) = job;
        assert_eq!(ingest.source_path(), Path::new("/srv/drop/a/b.jpg"));
    }
}
