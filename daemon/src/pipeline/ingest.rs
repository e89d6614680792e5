//! Ingest: one dropped file → one committed [`Asset`] (ready or quarantined),
//! then the share's post-action on the source file.
//!
//! Input: a claimed [`IngestJob`] (or, for `consentry ingest`, a path). Output:
//! an asset record and its encrypted blobs, committed in one transaction with
//! the job's state, and only then the source deleted, moved or kept. Failure
//! modes: a file that cannot be ingested is *data*: it becomes a quarantined
//! asset with the stage, a stable code and a reason a person can act on, and
//! its bytes are kept encrypted for review. Store and I/O errors are transient
//! and retried with backoff; after `ingest.max_attempts` the file is
//! quarantined too.
//!
//! Stages inside one file: read → hash (dedupe) → store original (encrypted) →
//! inspect (sniff, limits) → metadata (+ sidecar) → decode (orientation) →
//! thumbnails (encrypted) → faces (seam) → commit → post-action.
//! Each stage logs one structured record with `asset_id`, `path` and `stage`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::decode::{self, DecodeLimits};
use super::faces::{FaceError, FaceStage};
use super::metadata;
use super::queue::{IngestJob, MAX_INTERRUPTIONS, backoff};
use super::store::crypto::SecretKey;
use super::store::jobs::{ClaimedJob, JobId};
use super::store::{CommitOutcome, Store, StoreError};
use super::thumbs::{self, THUMBNAIL_MIME};
use crate::clock;
use crate::config::{AfterIngest, IngestConfig};
use crate::domain::{Asset, AssetId, AssetStatus, BlobRef, Quarantine, SourceRef, Thumbnail};
use crate::people::{People, PeopleError};

/// Time spent per stage, for logs and the benchmark.
#[derive(Debug, Clone, Default)]
pub struct StageTimings {
    pub read: Duration,
    pub hash: Duration,
    pub encrypt_original: Duration,
    pub inspect: Duration,
    pub metadata: Duration,
    pub decode: Duration,
    pub thumbnails: Duration,
    pub faces: Duration,
    pub commit: Duration,
}

#[derive(Debug, Clone)]
pub struct IngestReport {
    pub asset_id: AssetId,
    pub status: AssetStatus,
    pub outcome: CommitOutcome,
    pub reason: Option<String>,
    pub timings: StageTimings,
}

/// One file's bytes and where they came from.
pub struct SourceFile {
    pub source: SourceRef,
    /// For logs: the file's path on this machine.
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub sidecar: Option<Vec<u8>>,
}

/// A transient failure: the job is retried.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot {action} {path} after ingest: {source}")]
    PostAction {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The face engine failed (not the file's fault as far as we know):
    /// retried, and quarantined only when the attempts run out.
    #[error("face stage: {0}")]
    Faces(#[from] FaceError),
    #[error("this photo was erased (GDPR Art. 17) at {at}; it is not stored again")]
    Erased { at: String },
}

/// Why [`Ingestor::process`] stopped before the end.
enum Stop {
    /// The file is refused, with the reason recorded.
    Quarantine(Quarantine),
    /// A transient failure: give the job back.
    Retry(IngestError),
}

impl From<Quarantine> for Stop {
    fn from(q: Quarantine) -> Stop {
        Stop::Quarantine(q)
    }
}

/// What happened to a claimed job.
#[derive(Debug)]
pub enum JobOutcome {
    Ingested(IngestReport),
    /// The job's result was already durable; only the post-action ran.
    CleanedUp,
    /// The file is gone or changed since it was queued; the watcher will find
    /// it again if it still exists.
    Dropped(&'static str),
    RetryLater {
        attempt: u32,
        delay: Duration,
        error: String,
    },
    /// The bytes are a photo erased under GDPR Art. 17: not stored again; the
    /// share's post-action ran (a `keep` share remembers the drop as settled).
    Erased(AssetId),
}

pub struct Ingestor {
    store: Arc<Store>,
    people: Arc<People>,
    config: IngestConfig,
    limits: DecodeLimits,
    faces: Arc<dyn FaceStage>,
}

impl Ingestor {
    pub fn new(people: Arc<People>, config: IngestConfig, faces: Arc<dyn FaceStage>) -> Ingestor {
        let working_edge = config
            .thumbnail_sizes
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(2048);
        let limits = DecodeLimits {
            max_pixels: config.max_pixels,
            working_edge,
        };
        Ingestor {
            store: Arc::clone(people.store()),
            people,
            config,
            limits,
            faces,
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn people(&self) -> &Arc<People> {
        &self.people
    }

    /// The face engine (shared with searches and re-detection).
    pub fn faces(&self) -> &Arc<dyn FaceStage> {
        &self.faces
    }

    /// Decoding limits for photos handed in outside a share (searches, enrolment).
    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// Runs a claimed job to its end: ingest and commit, then the post-action,
    /// then removal from the queue. Transient errors give the job back.
    pub fn run_job(
        &self,
        claimed: &ClaimedJob<super::queue::Job>,
    ) -> Result<JobOutcome, StoreError> {
        let super::queue::Job::Ingest(job) = &claimed.job;
        let path = job.source_path();
        let outcome = if claimed.state.committed {
            self.post_action(job).map(|()| JobOutcome::CleanedUp)
        } else if claimed.state.interrupted >= MAX_INTERRUPTIONS {
            self.quarantine_interrupted(claimed.id, job, claimed.state.interrupted)
        } else {
            self.ingest_job(claimed.id, job)
        };
        match outcome {
            Ok(JobOutcome::RetryLater { .. }) => {
                unreachable!("ingest_job reports retries as errors")
            }
            Ok(done) => {
                self.store.finish_job(claimed.id)?;
                Ok(done)
            }
            Err(err) => {
                let attempt = claimed.state.attempts + 1;
                let message = err.to_string();
                if attempt >= self.config.max_attempts
                    && !matches!(err, IngestError::PostAction { .. })
                {
                    log::warn!(target: "consentry::ingest", path = path.to_string_lossy().as_ref(), stage = "retry"; "giving up after {attempt} attempts: {message}");
                    let report =
                        self.quarantine_after_retries(claimed.id, job, attempt, &message)?;
                    self.store.finish_job(claimed.id)?;
                    return Ok(report);
                }
                let delay = backoff(self.config.retry_backoff, attempt);
                self.store.retry_job::<super::queue::Job>(
                    claimed.id,
                    clock::now_ms() + clock::duration_ms(delay),
                    true,
                    Some(&message),
                )?;
                Ok(JobOutcome::RetryLater {
                    attempt,
                    delay,
                    error: message,
                })
            }
        }
    }

    fn ingest_job(&self, job_id: JobId, job: &IngestJob) -> Result<JobOutcome, IngestError> {
        let path = job.source_path();
        let source = job.source_ref(clock::now_ms());
        let Some((size, mtime_ms)) = stat(&path).map_err(|source| IngestError::Read {
            path: path.clone(),
            source,
        })?
        else {
            // Deleted or renamed on the share. If we committed it in an earlier
            // run, this is the redo of a finished job.
            if self.store.asset_for_source(&source)?.is_some() {
                return Ok(JobOutcome::CleanedUp);
            }
            log::info!(target: "consentry::ingest", path = path.to_string_lossy().as_ref(), stage = "read"; "source vanished before ingest (deleted or renamed on the share)");
            return Ok(JobOutcome::Dropped("source vanished"));
        };
        if (size, mtime_ms) != (job.size, job.mtime_ms) {
            log::info!(target: "consentry::ingest", path = path.to_string_lossy().as_ref(), stage = "read"; "file changed since it was queued; waiting for it to settle again");
            return Ok(JobOutcome::Dropped("changed since queued"));
        }
        if size > self.config.max_file_size {
            let report = self.quarantine_unread(job_id, job, source, size)?;
            return Ok(JobOutcome::Ingested(report));
        }
        let started = Instant::now();
        let bytes = fs::read(&path).map_err(|source| IngestError::Read {
            path: path.clone(),
            source,
        })?;
        let sidecar_path = find_sidecar(&path);
        let sidecar = match &sidecar_path {
            Some(p) => Some(fs::read(p).map_err(|source| IngestError::Read {
                path: p.clone(),
                source,
            })?),
            None => None,
        };
        let read_time = started.elapsed();
        // A writer that reopened the file while we read it: let it settle.
        if stat(&path).ok().flatten() != Some((job.size, job.mtime_ms))
            || bytes.len() as u64 != job.size
        {
            return Ok(JobOutcome::Dropped("changed while being read"));
        }
        let id = AssetId::of_bytes(&bytes);
        if let Some(erased) = self.store.tombstone(&id)? {
            log::warn!(target: "consentry::ingest", asset_id = id.as_str(), path = path.to_string_lossy().as_ref(), stage = "erased";
                "this photo was erased (GDPR Art. 17) at {}; it is not stored again", clock::rfc3339(erased.erased_at_ms));
            self.store.remember_erased_source(&source, &id)?;
            self.post_action(job)?;
            return Ok(JobOutcome::Erased(id));
        }
        let mut report = self.ingest(
            SourceFile {
                source,
                path: path.clone(),
                bytes,
                sidecar,
            },
            Some(job_id),
        )?;
        report.timings.read = read_time;
        self.post_action(job)?;
        Ok(JobOutcome::Ingested(report))
    }

    /// Ingests one file's bytes: everything up to and including the commit.
    pub fn ingest(
        &self,
        file: SourceFile,
        job: Option<JobId>,
    ) -> Result<IngestReport, IngestError> {
        let mut timings = StageTimings::default();
        let path_text = file.path.to_string_lossy().into_owned();
        let started = Instant::now();
        let id = AssetId::of_bytes(&file.bytes);
        timings.hash = started.elapsed();
        log_stage(
            &id,
            &path_text,
            "hash",
            timings.hash,
            &format!("{} bytes", file.bytes.len()),
        );

        if let Some(erased) = self.store.tombstone(&id)? {
            return Err(IngestError::Erased {
                at: clock::rfc3339(erased.erased_at_ms),
            });
        }
        if let Some(outcome) = self.store.add_source_if_known(&id, &file.source, job)? {
            let existing = self
                .store
                .asset(&id)?
                .ok_or_else(|| StoreError::Corrupt(format!("asset {id} vanished")))?;
            log_stage(
                &id,
                &path_text,
                "dedupe",
                Duration::ZERO,
                "byte-identical to a known asset; added as another source",
            );
            return Ok(IngestReport {
                asset_id: id,
                status: existing.status,
                outcome,
                reason: existing.quarantine.map(|q| q.reason),
                timings,
            });
        }

        // Durable before any blob uses it; a concurrent ingest of the same
        // bytes gets the same key.
        let data_key = self.store.asset_key_or_create(&id)?;
        let mut written: Vec<BlobRef> = Vec::new();
        let result = (|| -> Result<IngestReport, IngestError> {
            let started = Instant::now();
            let original = self.store.blobs().put(&data_key, &file.bytes)?;
            written.push(original.clone());
            let sidecar = match &file.sidecar {
                Some(xmp) => {
                    let blob = self.store.blobs().put(&data_key, xmp)?;
                    written.push(blob.clone());
                    Some(blob)
                }
                None => None,
            };
            timings.encrypt_original = started.elapsed();
            log_stage(
                &id,
                &path_text,
                "store",
                timings.encrypt_original,
                "original stored encrypted",
            );

            let mut asset = new_asset(
                id.clone(),
                file.source.clone(),
                file.bytes.len() as u64,
                Some(original),
            );
            asset.sidecar = sidecar;
            match self.process(&file, &mut asset, &data_key, &mut timings, &mut written) {
                Ok(()) => asset.status = AssetStatus::Ready,
                Err(Stop::Retry(err)) => return Err(err),
                Err(Stop::Quarantine(quarantine)) => {
                    log::warn!(target: "consentry::ingest", asset_id = id.as_str(), path = path_text.as_str(), stage = quarantine.stage.as_str(), code = quarantine.code.as_str(); "quarantined: {}", quarantine.reason);
                    asset.status = AssetStatus::Quarantined;
                    asset.quarantine = Some(quarantine);
                }
            }
            let started = Instant::now();
            let outcome = self
                .people
                .commit_asset(&mut asset, job)
                .map_err(|e| match e {
                    PeopleError::Store(e) => IngestError::Store(e),
                    other => IngestError::Store(StoreError::Corrupt(other.to_string())),
                })?;
            timings.commit = started.elapsed();
            log_stage(
                &id,
                &path_text,
                "commit",
                timings.commit,
                asset.status.as_str(),
            );
            if outcome != CommitOutcome::Created {
                // Another worker committed the same bytes first; ours are spare.
                for blob in &written {
                    self.store.blobs().delete(blob)?;
                }
            }
            Ok(IngestReport {
                asset_id: id.clone(),
                status: asset.status,
                outcome,
                reason: asset.quarantine.map(|q| q.reason),
                timings: timings.clone(),
            })
        })();
        if result.is_err() {
            // Nothing refers to these blobs; remove them now rather than at the next start.
            for blob in &written {
                let _ = self.store.blobs().delete(blob);
            }
        }
        result
    }

    /// The stages after the original is safe. A refusal becomes a quarantine record.
    fn process(
        &self,
        file: &SourceFile,
        asset: &mut Asset,
        data_key: &SecretKey,
        timings: &mut StageTimings,
        written: &mut Vec<BlobRef>,
    ) -> Result<(), Stop> {
        let id = asset.id.clone();
        let path_text = file.path.to_string_lossy().into_owned();
        let refuse = |stage: &str, code: &str, reason: String| Quarantine {
            stage: stage.to_owned(),
            code: code.to_owned(),
            reason,
            at_ms: clock::now_ms(),
        };

        let started = Instant::now();
        let info = decode::container::inspect(&file.bytes).map_err(|err| {
            let err = decode::DecodeError::from(err);
            refuse(err.stage(), err.code(), err.to_string())
        })?;
        timings.inspect = started.elapsed();
        asset.format = Some(info.format.name().to_owned());
        asset.mime = Some(info.format.mime().to_owned());
        if let Err(err) = decode::check_limits(&info, &self.limits) {
            // The header is readable (a bomb): keep what metadata it carries.
            asset.metadata = metadata::read(&info.metadata);
            return Err(refuse(err.stage(), err.code(), err.to_string()).into());
        }
        log_stage(
            &id,
            &path_text,
            "inspect",
            timings.inspect,
            &format!("{} {}×{}", info.format.name(), info.width, info.height),
        );

        let started = Instant::now();
        let stored_size = Some((info.width, info.height));
        let mut meta = metadata::read_with_image_size(&info.metadata, stored_size);
        if let Some(xmp) = &file.sidecar
            && let Err(err) = metadata::apply_sidecar_with_image_size(&mut meta, xmp, stored_size)
        {
            meta.warnings.push(format!("sidecar ignored: {err}"));
        }
        let file_name = file.source.path.rsplit('/').next().unwrap_or("");
        if decode::extension_fits(info.format, file_name) == Some(false) {
            meta.warnings.push(format!(
                "the file name {file_name} does not match its content ({}); it was read as {}",
                info.format.name(),
                info.format.name()
            ));
        }
        timings.metadata = started.elapsed();
        log_stage(
            &id,
            &path_text,
            "metadata",
            timings.metadata,
            &format!("{} warning(s)", meta.warnings.len()),
        );
        let orientation = meta.orientation;
        asset.metadata = meta;
        let (width, height) = decode::oriented_size(&info, orientation);
        asset.width = Some(width);
        asset.height = Some(height);

        let started = Instant::now();
        let decoded = decode::decode(&file.bytes, &info, orientation, &self.limits)
            .map_err(|err| refuse(err.stage(), err.code(), err.to_string()))?;
        timings.decode = started.elapsed();
        log_stage(
            &id,
            &path_text,
            "decode",
            timings.decode,
            &format!("{width}×{height}, reduced 1/{}", decoded.reduction),
        );

        let started = Instant::now();
        let thumbnails =
            thumbs::make_thumbnails(&decoded, &self.config.thumbnail_sizes).map_err(|err| {
                refuse(
                    "thumbnails",
                    "thumbnail-error",
                    format!("thumbnail could not be made: {}", err.message),
                )
            })?;
        for thumbnail in thumbnails {
            let blob = self
                .store
                .blobs()
                .put(data_key, &thumbnail.jpeg)
                .map_err(|err| refuse("thumbnails", "store-error", err.to_string()))?;
            written.push(blob.clone());
            asset.thumbnails.push(Thumbnail {
                size: thumbnail.size,
                width: thumbnail.width,
                height: thumbnail.height,
                mime: THUMBNAIL_MIME.to_owned(),
                blob,
            });
        }
        timings.thumbnails = started.elapsed();
        log_stage(
            &id,
            &path_text,
            "thumbnails",
            timings.thumbnails,
            &format!("{} stored encrypted", asset.thumbnails.len()),
        );

        let started = Instant::now();
        let faces = self
            .faces
            .process(&decoded)
            .map_err(|err| Stop::Retry(err.into()))?;
        timings.faces = started.elapsed();
        log_stage(
            &id,
            &path_text,
            "faces",
            timings.faces,
            &format!("{} face(s)", faces.len()),
        );
        asset.faces = faces;
        Ok(())
    }

    /// A file over `ingest.max_file_size` is recorded but not read, and left on
    /// the share: nothing is lost, and the admin sees why.
    fn quarantine_unread(
        &self,
        job_id: JobId,
        job: &IngestJob,
        source: SourceRef,
        size: u64,
    ) -> Result<IngestReport, IngestError> {
        let path = job.source_path();
        let id = hash_file(&path).map_err(|source| IngestError::Read {
            path: path.clone(),
            source,
        })?;
        let reason = format!(
            "file is {} MiB, over the {} MiB limit (ingest.max_file_size); it was left on the share",
            size.div_ceil(1 << 20),
            self.config.max_file_size >> 20
        );
        self.commit_quarantine_record(job_id, id, source, "read", "file-too-large", reason, None)
    }

    /// The daemon died repeatedly while holding this file: store it for
    /// review without decoding it again.
    fn quarantine_interrupted(
        &self,
        job_id: JobId,
        job: &IngestJob,
        times: u32,
    ) -> Result<JobOutcome, IngestError> {
        let reason = format!(
            "the daemon stopped {times} times while ingesting this file; it may crash a decoder, so it was not decoded again"
        );
        self.quarantine_with_bytes(job_id, job, "decode", "interrupted", reason)
            .map(JobOutcome::Ingested)
    }

    fn quarantine_after_retries(
        &self,
        job_id: JobId,
        job: &IngestJob,
        attempts: u32,
        error: &str,
    ) -> Result<JobOutcome, StoreError> {
        let reason = format!("gave up after {attempts} attempts: {error}");
        match self.quarantine_with_bytes(job_id, job, "read", "retries-exhausted", reason.clone()) {
            Ok(report) => Ok(JobOutcome::Ingested(report)),
            // Unreadable: record what we know and leave the file where it is.
            Err(_) => {
                let path = job.source_path();
                log::error!(target: "consentry::ingest", path = path.to_string_lossy().as_ref(), stage = "read"; "{reason}; the file was left on the share");
                Ok(JobOutcome::Dropped("unreadable; left on the share"))
            }
        }
    }

    fn quarantine_with_bytes(
        &self,
        job_id: JobId,
        job: &IngestJob,
        stage: &str,
        code: &str,
        reason: String,
    ) -> Result<IngestReport, IngestError> {
        let path = job.source_path();
        let bytes = fs::read(&path).map_err(|source| IngestError::Read {
            path: path.clone(),
            source,
        })?;
        let id = AssetId::of_bytes(&bytes);
        let source = job.source_ref(clock::now_ms());
        let report =
            self.commit_quarantine_record(job_id, id, source, stage, code, reason, Some(&bytes))?;
        self.post_action(job)?;
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_quarantine_record(
        &self,
        job_id: JobId,
        id: AssetId,
        source: SourceRef,
        stage: &str,
        code: &str,
        reason: String,
        bytes: Option<&[u8]>,
    ) -> Result<IngestReport, IngestError> {
        if let Some(outcome) = self.store.add_source_if_known(&id, &source, Some(job_id))? {
            let existing = self
                .store
                .asset(&id)?
                .ok_or_else(|| StoreError::Corrupt(format!("asset {id} vanished")))?;
            return Ok(IngestReport {
                asset_id: id,
                status: existing.status,
                outcome,
                reason: Some(reason),
                timings: StageTimings::default(),
            });
        }
        let data_key = self.store.asset_key_or_create(&id)?;
        let original = bytes
            .map(|b| self.store.blobs().put(&data_key, b))
            .transpose()?;
        let size = source.size;
        let mut asset = new_asset(id.clone(), source, size, original.clone());
        asset.status = AssetStatus::Quarantined;
        asset.quarantine = Some(Quarantine {
            stage: stage.to_owned(),
            code: code.to_owned(),
            reason: reason.clone(),
            at_ms: asset.created_at_ms,
        });
        let outcome = self.store.commit_asset(&asset, Some(job_id))?;
        if outcome != CommitOutcome::Created
            && let Some(blob) = &original
        {
            self.store.blobs().delete(blob)?;
        }
        log::warn!(target: "consentry::ingest", asset_id = id.as_str(), stage = stage, code = code; "quarantined: {reason}");
        Ok(IngestReport {
            asset_id: id,
            status: AssetStatus::Quarantined,
            outcome,
            reason: Some(reason),
            timings: StageTimings::default(),
        })
    }

    /// Runs the share's `after_ingest` on a source whose asset is durable.
    /// Idempotent: a source that is already gone is fine.
    fn post_action(&self, job: &IngestJob) -> Result<(), IngestError> {
        let path = job.source_path();
        let sidecar = find_sidecar(&path);
        // An asset recorded without its bytes (over the size limit) stays on the share.
        if job.after == AfterIngest::Keep || !path.exists() && sidecar.is_none() {
            return Ok(());
        }
        if let Some(asset_id) = self.store.asset_for_source(&job.source_ref(0))?
            && self
                .store
                .asset(&asset_id)?
                .is_some_and(|a| a.original.is_none())
        {
            return Ok(());
        }
        for file in std::iter::once(path.clone()).chain(sidecar) {
            match job.after {
                AfterIngest::Keep => {}
                AfterIngest::Delete => {
                    remove_if_exists(&file).map_err(|source| IngestError::PostAction {
                        action: "delete",
                        path: file.clone(),
                        source,
                    })?
                }
                AfterIngest::Move => {
                    let Some(dest_root) = &job.move_to else {
                        continue;
                    };
                    let rel = file.strip_prefix(&job.root).unwrap_or(&file);
                    move_file(&file, dest_root, rel).map_err(|source| IngestError::PostAction {
                        action: "move",
                        path: file.clone(),
                        source,
                    })?;
                }
            }
        }
        if let Some(dir) = path.parent() {
            let _ = super::store::blobs::sync_dir(dir);
        }
        Ok(())
    }
}

/// A pending asset record for freshly read bytes; later stages fill it in.
fn new_asset(id: AssetId, source: SourceRef, bytes: u64, original: Option<BlobRef>) -> Asset {
    let now = clock::now_ms();
    Asset {
        id,
        status: AssetStatus::Pending,
        collection: source.collection.clone(),
        sources: vec![source],
        bytes,
        format: None,
        mime: None,
        width: None,
        height: None,
        metadata: metadata::Metadata::default(),
        original,
        sidecar: None,
        thumbnails: Vec::new(),
        key: None,
        quarantine: None,
        faces: Vec::new(),
        created_at_ms: now,
        updated_at_ms: now,
    }
}

fn log_stage(id: &AssetId, path: &str, stage: &str, took: Duration, message: &str) {
    log::info!(target: "consentry::ingest", asset_id = id.as_str(), path = path, stage = stage, ms = (took.as_secs_f64() * 1e6).round() / 1e3; "{stage}: {message}");
}

/// Size and mtime (ms) of a file, or None if it does not exist.
pub fn stat(path: &Path) -> std::io::Result<Option<(u64, u64)>> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some((
            meta.len(),
            meta.modified().map(clock::system_time_ms).unwrap_or(0),
        ))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// `IMG_1.xmp`, `IMG_1.XMP` or `IMG_1.JPG.xmp` beside `IMG_1.JPG`.
pub fn find_sidecar(image: &Path) -> Option<PathBuf> {
    let name = image.file_name()?.to_str()?;
    let stem = image.file_stem()?.to_str()?;
    ["xmp", "XMP", "Xmp"]
        .iter()
        .flat_map(|ext| {
            [
                image.with_file_name(format!("{stem}.{ext}")),
                image.with_file_name(format!("{name}.{ext}")),
            ]
        })
        .find(|candidate| candidate.is_file())
}

fn hash_file(path: &Path) -> std::io::Result<AssetId> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(fs::File::open(path)?)?;
    Ok(AssetId(hasher.finalize().to_hex().to_string()))
}

fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Moves `file` to `dest_root/rel`, never overwriting: a name that is taken
/// gets a ` (2)`, ` (3)`… suffix. Falls back to copy + fsync + delete across
/// file systems.
fn move_file(file: &Path, dest_root: &Path, rel: &Path) -> std::io::Result<()> {
    if !file.exists() {
        return Ok(());
    }
    let wanted = dest_root.join(rel);
    if let Some(parent) = wanted.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut dest = wanted.clone();
    let mut n = 2;
    while dest.exists() {
        let stem = wanted
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("file");
        let name = match wanted.extension().and_then(|e| e.to_str()) {
            Some(ext) => format!("{stem} ({n}).{ext}"),
            None => format!("{stem} ({n})"),
        };
        dest = wanted.with_file_name(name);
        n += 1;
    }
    match fs::rename(file, &dest) {
        Ok(()) => Ok(()),
        Err(err) if err.raw_os_error() == Some(nix::libc::EXDEV) => {
            fs::copy(file, &dest)?;
            fs::File::open(&dest)?.sync_all()?;
            fs::remove_file(file)
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_are_found_by_stem_or_full_name() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("IMG_1.JPG");
        fs::write(&image, b"x").unwrap();
        assert_eq!(find_sidecar(&image), None);
        fs::write(dir.path().join("IMG_1.JPG.xmp"), b"<x/>").unwrap();
        assert_eq!(find_sidecar(&image), Some(dir.path().join("IMG_1.JPG.xmp")));
        fs::write(dir.path().join("IMG_1.xmp"), b"<x/>").unwrap();
        assert_eq!(find_sidecar(&image), Some(dir.path().join("IMG_1.xmp")));
    }

    #[test]
    fn moves_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        let done = dir.path().join("done");
        fs::create_dir_all(share.join("sub")).unwrap();
        for round in 0..2 {
            let file = share.join("sub/a.jpg");
            fs::write(&file, format!("round {round}")).unwrap();
            move_file(&file, &done, Path::new("sub/a.jpg")).unwrap();
            assert!(!file.exists());
        }
        assert_eq!(
            fs::read_to_string(done.join("sub/a.jpg")).unwrap(),
            "round 0"
        );
        assert_eq!(
            fs::read_to_string(done.join("sub/a (2).jpg")).unwrap(),
            "round 1"
        );
    }
}
