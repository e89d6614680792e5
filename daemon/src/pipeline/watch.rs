//! Watch: drop shares → complete files → ingest jobs in the queue.
//!
//! Input: the configured shares. Output: one [`IngestJob`] per complete file,
//! pushed to the durable queue. Failure modes: a share that is missing or
//! unmounted (logged, re-checked on every walk, picked up again when it
//! returns), inotify running out of watches (logged; the walk still finds
//! everything), unreadable folders (logged, skipped until the next walk).
//!
//! Architecture Invariant: inotify events are hints, the periodic full walk is
//! the truth. A file is taken only when it is complete: no write is in progress
//! (inotify saw no creation or modification without a close-after-write) and
//! its size and mtime stayed unchanged for `ingest.quiet_period` (ten times as
//! long for an empty file). Office and OS litter,
//! hidden files, XMP sidecars (ingested with their image) and symbolic links
//! are never queued.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::queue::{IngestJob, Job};
use super::store::{Store, StoreError};
use crate::config::{AfterIngest, IngestConfig, ShareConfig};
use crate::workers::{Wakeup, WorkerHandle, WorkerState};

/// A write still open after this long without any event is presumed abandoned.
const STALE_WRITE: Duration = Duration::from_secs(30 * 60);
const MAX_DEPTH: usize = 32;

/// Whether a file name is litter that must never be ingested.
pub fn is_litter(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    const NAMES: [&str; 5] = [
        "thumbs.db",
        "ehthumbs.db",
        "desktop.ini",
        ".ds_store",
        "icon\r",
    ];
    const PREFIXES: [&str; 3] = ["~$", "._", "."];
    const SUFFIXES: [&str; 11] = [
        ".tmp",
        ".temp",
        ".part",
        ".partial",
        ".crdownload",
        ".download",
        ".!ut",
        ".filepart",
        ".swp",
        "~",
        ".lnk",
    ];
    NAMES.contains(&lower.as_str())
        || PREFIXES.iter().any(|p| lower.starts_with(p))
        || SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// XMP sidecars are read together with their image, never on their own.
pub fn is_sidecar(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(OsStr::to_str)
        .is_some_and(|e| e.eq_ignore_ascii_case("xmp"))
}

#[derive(Debug)]
enum Hint {
    /// A file was closed after writing, or moved into a share.
    Closed(PathBuf),
    Modified(PathBuf),
    NewDir(PathBuf),
    /// The kernel dropped events: walk everything.
    Overflow,
}

/// The folders inotify watches, both ways (a walk asks "is this folder
/// watched?" for every folder, so that must not be a scan).
#[derive(Default)]
struct Watches {
    by_wd: HashMap<WatchDescriptor, PathBuf>,
    dirs: HashSet<PathBuf>,
}

impl Watches {
    fn remove(&mut self, wd: WatchDescriptor) {
        if let Some(dir) = self.by_wd.remove(&wd) {
            self.dirs.remove(&dir);
        }
    }
}

struct Candidate {
    size: u64,
    mtime_ms: u64,
    stable_since: Instant,
}

pub struct Watcher {
    shares: Vec<ShareConfig>,
    store: Arc<Store>,
    config: IngestConfig,
    wakeup: Arc<Wakeup>,
    status: WorkerHandle,
    inotify: Option<Arc<Inotify>>,
    watched: Arc<Mutex<Watches>>,
    watch_limit_logged: bool,
    available: Vec<Option<bool>>,
    candidates: HashMap<PathBuf, Candidate>,
    /// Files inotify saw being written and not yet closed.
    writing: HashMap<PathBuf, Instant>,
    /// Files already ingested that stay on a `keep` share (or were too large to take).
    settled: HashMap<PathBuf, (u64, u64)>,
}

impl Watcher {
    pub fn new(
        shares: Vec<ShareConfig>,
        store: Arc<Store>,
        config: IngestConfig,
        wakeup: Arc<Wakeup>,
        status: WorkerHandle,
    ) -> Watcher {
        let available = vec![None; shares.len()];
        Watcher {
            shares,
            store,
            config,
            wakeup,
            status,
            inotify: None,
            watched: Arc::default(),
            watch_limit_logged: false,
            available,
            candidates: HashMap::new(),
            writing: HashMap::new(),
            settled: HashMap::new(),
        }
    }

    /// Runs until `must_exit` is set. Blocking; run it on its own thread.
    pub fn run(mut self, must_exit: Arc<AtomicBool>) {
        let (hint_tx, hint_rx) = mpsc::channel();
        self.start_inotify(hint_tx);
        let mut next_walk = Instant::now();
        while !must_exit.load(Ordering::Relaxed) {
            if Instant::now() >= next_walk {
                self.status
                    .set(WorkerState::Busy, Some("walking shares".into()));
                self.walk_all();
                next_walk = Instant::now() + self.config.rescan_interval;
            }
            if let Err(err) = self.check_candidates() {
                log::error!(target: "consentry::watch", "cannot queue files: {err}");
            }
            self.status.set(
                WorkerState::Idle,
                Some(format!("{} file(s) settling", self.candidates.len())),
            );
            let tick = if self.candidates.is_empty() {
                Duration::from_secs(1)
            } else {
                (self.config.quiet_period / 4)
                    .clamp(Duration::from_millis(50), Duration::from_secs(1))
            };
            let wait = tick.min(next_walk.saturating_duration_since(Instant::now()));
            self.take_hints(&hint_rx, wait, &mut next_walk);
        }
        self.status.set(WorkerState::Done, None);
    }

    fn start_inotify(&mut self, hint_tx: Sender<Hint>) {
        let inotify = match Inotify::init(InitFlags::IN_CLOEXEC) {
            Ok(inotify) => Arc::new(inotify),
            Err(err) => {
                log::warn!(target: "consentry::watch", "inotify unavailable ({err}); relying on the periodic walk only");
                return;
            }
        };
        let reader = Arc::clone(&inotify);
        let watched = Arc::clone(&self.watched);
        let spawned = std::thread::Builder::new().name("inotify".into()).spawn(move || {
            loop {
                let events = match reader.read_events() {
                    Ok(events) => events,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(err) => {
                        log::warn!(target: "consentry::watch", "inotify stopped ({err}); relying on the periodic walk only");
                        return;
                    }
                };
                for event in events {
                    let hint = if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                        Some(Hint::Overflow)
                    } else {
                        let dir = {
                            let mut watches = watched.lock().expect("watch map");
                            let dir = watches.by_wd.get(&event.wd).cloned();
                            if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                                watches.remove(event.wd);
                            }
                            dir
                        };
                        match (dir, event.name) {
                            (Some(dir), Some(name)) => {
                                let path = dir.join(name);
                                let is_dir = event.mask.contains(AddWatchFlags::IN_ISDIR);
                                if is_dir && event.mask.intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO) {
                                    Some(Hint::NewDir(path))
                                } else if is_dir {
                                    None
                                } else if event.mask.intersects(AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO) {
                                    Some(Hint::Closed(path))
                                } else if event.mask.intersects(AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CREATE) {
                                    // A new file is being written until it is closed (SMB
                                    // clients create it first and may write seconds later).
                                    Some(Hint::Modified(path))
                                } else {
                                    None
                                }
                            }
                            _ => None,
                        }
                    };
                    if let Some(hint) = hint
                        && hint_tx.send(hint).is_err() {
                            return;
                        }
                }
            }
        });
        match spawned {
            Ok(_) => self.inotify = Some(inotify),
            Err(err) => {
                log::warn!(target: "consentry::watch", "cannot start the inotify thread ({err})")
            }
        }
    }

    fn take_hints(&mut self, hints: &Receiver<Hint>, wait: Duration, next_walk: &mut Instant) {
        let mut first = match hints.recv_timeout(wait) {
            Ok(hint) => Some(hint),
            Err(RecvTimeoutError::Timeout) => None,
            // No inotify thread: the channel is closed, so wait here instead.
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(wait);
                None
            }
        };
        while let Some(hint) = first.take().or_else(|| hints.try_recv().ok()) {
            match hint {
                Hint::Overflow => *next_walk = Instant::now(),
                Hint::Modified(path) => {
                    self.writing.insert(path, Instant::now());
                }
                Hint::Closed(path) => {
                    self.writing.remove(&path);
                    if self.share_of(&path).is_some() {
                        self.consider(&path);
                    }
                }
                Hint::NewDir(path) => {
                    if self.share_of(&path).is_some() {
                        self.walk_dir(&path, 0);
                    }
                }
            }
        }
    }

    fn share_of(&self, path: &Path) -> Option<usize> {
        self.shares
            .iter()
            .position(|share| path.starts_with(&share.path))
    }

    fn walk_all(&mut self) {
        for share_idx in 0..self.shares.len() {
            let share = self.shares[share_idx].clone();
            let available = share.path.is_dir();
            match (self.available[share_idx], available) {
                (Some(true) | None, false) => log::warn!(
                    target: "consentry::watch",
                    share = share.path.to_string_lossy().as_ref(), collection = share.collection.as_str();
                    "share {} is not available (missing or not mounted); the daemon keeps running and checks again every {}s",
                    share.path.display(), self.config.rescan_interval.as_secs()
                ),
                (Some(false), true) => log::info!(
                    target: "consentry::watch",
                    share = share.path.to_string_lossy().as_ref(), collection = share.collection.as_str();
                    "share {} is available again; resuming", share.path.display()
                ),
                (None, true) => log::info!(
                    target: "consentry::watch",
                    share = share.path.to_string_lossy().as_ref(), collection = share.collection.as_str(), after_ingest = share.after_ingest.to_string().as_str();
                    "watching share {} for collection {}", share.path.display(), share.collection
                ),
                _ => {}
            }
            self.available[share_idx] = Some(available);
            if available {
                self.walk_dir(&share.path, 0);
            }
        }
        // Forget what no longer exists.
        self.candidates.retain(|path, _| path.exists());
        self.settled.retain(|path, _| path.exists());
        self.writing
            .retain(|_, since| since.elapsed() < STALE_WRITE);
    }

    fn walk_dir(&mut self, dir: &Path, depth: usize) {
        if depth > MAX_DEPTH {
            log::warn!(target: "consentry::watch", "not descending into {}: more than {MAX_DEPTH} levels deep", dir.display());
            return;
        }
        self.add_watch(dir);
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => {
                log::warn!(target: "consentry::watch", "cannot list {}: {err}", dir.display());
                return;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                log::warn!(target: "consentry::watch", "skipping {}: its name is not valid UTF-8; rename it on the share", entry.path().display());
                continue;
            };
            if is_litter(name) {
                continue;
            }
            // file_type() does not follow symbolic links: links are never taken.
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                self.walk_dir(&entry.path(), depth + 1);
            } else if file_type.is_file() && !is_sidecar(name) {
                self.consider(&entry.path());
            }
        }
    }

    fn add_watch(&mut self, dir: &Path) {
        let Some(inotify) = &self.inotify else { return };
        if self.watched.lock().expect("watch map").dirs.contains(dir) {
            return;
        }
        let flags = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_ONLYDIR;
        match inotify.add_watch(dir, flags) {
            Ok(wd) => {
                let mut watches = self.watched.lock().expect("watch map");
                watches.by_wd.insert(wd, dir.to_owned());
                watches.dirs.insert(dir.to_owned());
            }
            Err(nix::errno::Errno::ENOSPC) if !self.watch_limit_logged => {
                self.watch_limit_logged = true;
                log::warn!(target: "consentry::watch", "inotify watch limit reached (fs.inotify.max_user_watches); new files are still found by the walk every {}s", self.config.rescan_interval.as_secs());
            }
            Err(_) => {}
        }
    }

    /// Records a file as a candidate, or refreshes its size and mtime.
    fn consider(&mut self, path: &Path) {
        let Some(name) = path.file_name().and_then(OsStr::to_str) else {
            return;
        };
        if is_litter(name) || is_sidecar(name) {
            return;
        }
        let Ok(Some((size, mtime_ms))) = super::ingest::stat(path) else {
            return;
        };
        if self.settled.get(path) == Some(&(size, mtime_ms)) {
            return;
        }
        match self.candidates.get_mut(path) {
            Some(candidate) if (candidate.size, candidate.mtime_ms) == (size, mtime_ms) => {}
            Some(candidate) => {
                *candidate = Candidate {
                    size,
                    mtime_ms,
                    stable_since: Instant::now(),
                };
            }
            None => {
                self.candidates.insert(
                    path.to_owned(),
                    Candidate {
                        size,
                        mtime_ms,
                        stable_since: Instant::now(),
                    },
                );
            }
        }
    }

    /// Queues every candidate that has been quiet long enough.
    fn check_candidates(&mut self) -> Result<(), StoreError> {
        let mut ready = Vec::new();
        let paths: Vec<PathBuf> = self.candidates.keys().cloned().collect();
        for path in paths {
            match super::ingest::stat(&path) {
                Ok(Some(now)) => {
                    let candidate = self.candidates.get_mut(&path).expect("candidate exists");
                    if (candidate.size, candidate.mtime_ms) != now {
                        (candidate.size, candidate.mtime_ms) = now;
                        candidate.stable_since = Instant::now();
                    } else if candidate.stable_since.elapsed()
                        >= quiet_period_for(candidate.size, self.config.quiet_period)
                        && !self.writing.contains_key(&path)
                    {
                        ready.push(path);
                    }
                }
                _ => {
                    self.candidates.remove(&path);
                }
            }
        }
        let mut pushed = 0;
        for path in ready {
            let candidate = self.candidates.remove(&path).expect("candidate exists");
            let Some(share_idx) = self.share_of(&path) else {
                continue;
            };
            let share = &self.shares[share_idx];
            let Some(rel_path) = path.strip_prefix(&share.path).ok().and_then(Path::to_str) else {
                continue;
            };
            let job = IngestJob {
                collection: share.collection.clone(),
                root: share.path.clone(),
                rel_path: rel_path.to_owned(),
                size: candidate.size,
                mtime_ms: candidate.mtime_ms,
                after: share.after_ingest,
                move_to: share.move_to.clone(),
            };
            // A drop that is already an asset and stays on the share is settled.
            if let Some(asset_id) = self.store.asset_for_source(&job.source_ref(0))? {
                let kept_unread = self
                    .store
                    .asset(&asset_id)?
                    .is_some_and(|a| a.original.is_none());
                if share.after_ingest == AfterIngest::Keep || kept_unread {
                    self.settled.insert(path, (job.size, job.mtime_ms));
                    continue;
                }
            }
            if let Some(job_id) = self
                .store
                .push_job(&job.dedupe_parts(), &Job::Ingest(job.clone()))?
            {
                pushed += 1;
                log::info!(target: "consentry::watch", path = path.to_string_lossy().as_ref(), collection = job.collection.as_str(), stage = "queue", job = job_id.0; "queued {} ({} bytes)", job.rel_path, job.size);
            }
        }
        if pushed > 0 {
            self.wakeup.notify();
        }
        Ok(())
    }
}

/// An empty file is most often one whose writer has not started yet: give it
/// far longer before it is taken (and then quarantined as empty).
fn quiet_period_for(size: u64, quiet_period: Duration) -> Duration {
    if size == 0 {
        quiet_period * 10
    } else {
        quiet_period
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn litter_and_sidecars_are_recognised() {
        for name in [
            "~$report.docx",
            "x.tmp",
            "._IMG_1.JPG",
            ".DS_Store",
            "Thumbs.db",
            "desktop.ini",
            "a.jpg.part",
            "b.crdownload",
            ".hidden.jpg",
            "big.JPG.filepart",
        ] {
            assert!(is_litter(name), "{name} is litter");
        }
        for name in ["IMG_1.JPG", "photo.heic", "scan~1.png", "Thumbs.db.jpg"] {
            assert!(!is_litter(name), "{name} is a photo");
        }
        assert!(is_sidecar("IMG_1.xmp") && is_sidecar("IMG_1.JPG.XMP"));
        assert!(!is_sidecar("IMG_1.jpg"));
    }
}
