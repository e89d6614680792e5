//! The durable job queue's sled side: push, claim with a lease, heartbeat,
//! retry, commit, finish.
//!
//! Input: serialisable job payloads. Output: jobs handed to one worker at a
//! time. Failure modes: sled errors; corrupt records are reported, not skipped.
//!
//! Layout (after pict-rs): `consentry-jobs` holds the sealed payloads keyed by
//! a big-endian [`JobId`] (so iteration is FIFO); `consentry-job-state` holds a
//! small plaintext [`JobState`] per job (attempts, lease), which is what a
//! claim scans and swaps with compare-and-swap; `consentry-job-by-source`
//! makes a push for a source that is already queued a no-op.
//!
//! Architecture Invariant: a job leaves the queue only through
//! [`Store::finish_job`], after its result is durable. A job whose lease belongs
//! to an earlier run of the daemon (or whose heartbeat stopped) is claimable
//! again, so a crash at any point means the job is redone, never lost.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sled::Transactional;
use sled::transaction::TransactionalTree;

use super::{Store, StoreError, TREE_JOBS, TxResult, tx_get_json, unwrap_tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub u64);

impl JobId {
    fn key(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    fn from_key(key: &[u8]) -> Result<JobId, StoreError> {
        let bytes: [u8; 8] = key
            .try_into()
            .map_err(|_| StoreError::Corrupt("job key".into()))?;
        Ok(JobId(u64::from_be_bytes(bytes)))
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job-{}", self.0)
    }
}

/// Who holds a job, and since when it last said it is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Random per daemon start: a lease from an earlier run is dead.
    pub boot: u64,
    pub worker: String,
    pub heartbeat_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    /// Failed attempts so far.
    pub attempts: u32,
    /// Times a worker died while holding this job (crash, kill).
    pub interrupted: u32,
    pub not_before_ms: u64,
    /// The job's result is durable; only its clean-up (post-action) remains.
    pub committed: bool,
    pub lease: Option<Lease>,
    pub enqueued_at_ms: u64,
}

pub struct ClaimedJob<T> {
    pub id: JobId,
    pub job: T,
    pub state: JobState,
    /// The last error message of an earlier attempt, if any.
    pub last_error: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredJob<T> {
    job: T,
    dedupe_key: Vec<u8>,
    last_error: Option<String>,
}

/// Queue depth for `consentry status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueSummary {
    pub total: u64,
    pub waiting: u64,
    pub running: u64,
    pub retrying: u64,
    pub committed: u64,
}

impl Store {
    /// Queues `job` unless a job with the same `dedupe` parts is already queued.
    pub fn push_job<T: Serialize>(
        &self,
        dedupe: &[&[u8]],
        job: &T,
    ) -> Result<Option<JobId>, StoreError> {
        let dedupe_key = self.keys.index_key(dedupe).to_vec();
        if self.job_by_source.contains_key(&dedupe_key)? {
            return Ok(None);
        }
        let id = JobId(self.db.generate_id()?);
        let now = crate::clock::now_ms();
        let state = JobState {
            attempts: 0,
            interrupted: 0,
            not_before_ms: 0,
            committed: false,
            lease: None,
            enqueued_at_ms: now,
        };
        let stored = StoredJob {
            job,
            dedupe_key: dedupe_key.clone(),
            last_error: None,
        };
        let sealed = self.seal(TREE_JOBS, &id.key(), &stored)?;
        let state_raw = to_json(&state)?;
        let pushed = (&self.jobs, &self.job_state, &self.job_by_source).transaction(
            |(jobs, job_state, by_source)| {
                if by_source.get(&dedupe_key)?.is_some() {
                    return Ok(false);
                }
                jobs.insert(&id.key(), sealed.as_slice())?;
                job_state.insert(&id.key(), state_raw.as_slice())?;
                by_source.insert(dedupe_key.as_slice(), &id.key())?;
                Ok(true)
            },
        );
        Ok(unwrap_tx(pushed)?.then_some(id))
    }

    /// Claims the oldest job that is due, or whose lease is dead. `lease_ms` is
    /// how long a heartbeat stays valid.
    pub fn claim_job<T: DeserializeOwned>(
        &self,
        boot: u64,
        worker: &str,
        lease_ms: u64,
        now: u64,
    ) -> Result<Option<ClaimedJob<T>>, StoreError> {
        for entry in &self.job_state {
            let (key, raw) = entry?;
            let state: JobState = from_json(&raw)?;
            let mut next = state.clone();
            match &state.lease {
                None if state.not_before_ms <= now => {}
                None => continue,
                Some(lease) if lease.boot != boot => next.interrupted += 1,
                Some(lease) if now.saturating_sub(lease.heartbeat_ms) > lease_ms => {
                    next.interrupted += 1
                }
                Some(_) => continue,
            }
            next.lease = Some(Lease {
                boot,
                worker: worker.to_owned(),
                heartbeat_ms: now,
            });
            if self
                .job_state
                .compare_and_swap(&key, Some(raw), Some(to_json(&next)?))?
                .is_err()
            {
                continue; // another worker was faster
            }
            let id = JobId::from_key(&key)?;
            let Some(sealed) = self.jobs.get(key)? else {
                return Err(StoreError::Corrupt(format!(
                    "{id} has a state but no payload"
                )));
            };
            let stored: StoredJob<T> = self.unseal(TREE_JOBS, &id.key(), &sealed)?;
            return Ok(Some(ClaimedJob {
                id,
                job: stored.job,
                state: next,
                last_error: stored.last_error,
            }));
        }
        Ok(None)
    }

    /// Renews a lease. Returns false if the job is no longer ours.
    pub fn heartbeat(&self, id: JobId, boot: u64, now: u64) -> Result<bool, StoreError> {
        let Some(raw) = self.job_state.get(id.key())? else {
            return Ok(false);
        };
        let mut state: JobState = from_json(&raw)?;
        match &mut state.lease {
            Some(lease) if lease.boot == boot => lease.heartbeat_ms = now,
            _ => return Ok(false),
        }
        Ok(self
            .job_state
            .compare_and_swap(id.key(), Some(raw), Some(to_json(&state)?))?
            .is_ok())
    }

    /// Gives a job back after a failed attempt; it becomes due at `not_before_ms`.
    /// `count_attempt` is false when the attempt did not really fail (the file
    /// was still changing).
    pub fn retry_job<T: Serialize + DeserializeOwned>(
        &self,
        id: JobId,
        not_before_ms: u64,
        count_attempt: bool,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let key = id.key();
        let sealed = self
            .jobs
            .get(key)?
            .ok_or_else(|| StoreError::Corrupt(format!("{id} vanished")))?;
        let mut stored: StoredJob<T> = self.unseal(TREE_JOBS, &key, &sealed)?;
        if error.is_some() {
            stored.last_error = error.map(str::to_owned);
        }
        let resealed = self.seal(TREE_JOBS, &key, &stored)?;
        let result = (&self.jobs, &self.job_state).transaction(|(jobs, job_state)| {
            let Some(mut state) = tx_get_json::<JobState>(job_state, &key)? else {
                return Ok(());
            };
            state.attempts += u32::from(count_attempt);
            state.not_before_ms = not_before_ms;
            state.lease = None;
            job_state.insert(
                &key,
                to_json(&state).map_err(sled::transaction::ConflictableTransactionError::Abort)?,
            )?;
            jobs.insert(&key, resealed.as_slice())?;
            Ok(())
        });
        unwrap_tx(result)
    }

    /// Removes a finished job from every queue tree.
    pub fn finish_job(&self, id: JobId) -> Result<(), StoreError> {
        let key = id.key();
        let dedupe_key = match self.jobs.get(key)? {
            Some(sealed) => {
                self.unseal::<StoredJob<serde::de::IgnoredAny>>(TREE_JOBS, &key, &sealed)?
                    .dedupe_key
            }
            None => Vec::new(),
        };
        let result = (&self.jobs, &self.job_state, &self.job_by_source).transaction(
            |(jobs, job_state, by_source)| {
                jobs.remove(&key)?;
                job_state.remove(&key)?;
                if by_source.get(&dedupe_key)?.as_deref() == Some(&key[..]) {
                    by_source.remove(dedupe_key.as_slice())?;
                }
                Ok(())
            },
        );
        unwrap_tx(result)
    }

    /// Marks a job committed outside an asset commit (e.g. after a quarantine
    /// record that reused an existing asset).
    pub fn mark_committed(&self, id: JobId) -> Result<(), StoreError> {
        unwrap_tx(
            self.job_state
                .transaction(|job_state| mark_committed_tx(job_state, id)),
        )?;
        self.flush()
    }

    pub fn queue_summary(&self, now: u64) -> Result<QueueSummary, StoreError> {
        let mut summary = QueueSummary::default();
        for entry in &self.job_state {
            let (_, raw) = entry?;
            let state: JobState = from_json(&raw)?;
            summary.total += 1;
            if state.committed {
                summary.committed += 1;
            } else if state.lease.is_some() {
                summary.running += 1;
            } else if state.attempts > 0 && state.not_before_ms > now {
                summary.retrying += 1;
            } else {
                summary.waiting += 1;
            }
        }
        Ok(summary)
    }

    pub fn job_exists(&self, id: JobId) -> Result<bool, StoreError> {
        Ok(self.job_state.contains_key(id.key())?)
    }
}

pub(crate) fn mark_committed_tx(job_state: &TransactionalTree, id: JobId) -> TxResult<()> {
    let key = id.key();
    if let Some(mut state) = tx_get_json::<JobState>(job_state, &key)? {
        state.committed = true;
        job_state.insert(
            &key,
            to_json(&state).map_err(sled::transaction::ConflictableTransactionError::Abort)?,
        )?;
    }
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt(format!("job state: {e}")))
}
