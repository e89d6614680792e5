//! Workers: long-running threads with a name and a visible state
//! (Garage-style `Busy / Idle / Throttled / Done`), and the wake-up signal
//! that lets the watcher hand new jobs to idle ingest workers at once.
//!
//! `consentry status` lists every worker with its state, what it is doing and
//! how many jobs it finished or failed.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Busy,
    Idle,
    Throttled,
    Done,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    pub name: String,
    pub state: WorkerState,
    pub detail: Option<String>,
    pub done: u64,
    pub failed: u64,
}

/// A worker's own view of its status entry.
#[derive(Clone)]
pub struct WorkerHandle(Arc<Mutex<WorkerStatus>>);

impl WorkerHandle {
    pub fn set(&self, state: WorkerState, detail: Option<String>) {
        let mut status = self.0.lock().expect("worker status");
        status.state = state;
        status.detail = detail;
    }

    pub fn count(&self, ok: bool) {
        let mut status = self.0.lock().expect("worker status");
        if ok {
            status.done += 1;
        } else {
            status.failed += 1;
        }
    }

    pub fn name(&self) -> String {
        self.0.lock().expect("worker status").name.clone()
    }
}

#[derive(Default)]
pub struct WorkerRegistry {
    workers: Mutex<Vec<WorkerHandle>>,
}

impl WorkerRegistry {
    pub fn register(&self, name: &str) -> WorkerHandle {
        let handle = WorkerHandle(Arc::new(Mutex::new(WorkerStatus {
            name: name.to_owned(),
            state: WorkerState::Idle,
            detail: None,
            done: 0,
            failed: 0,
        })));
        self.workers.lock().expect("registry").push(handle.clone());
        handle
    }

    pub fn snapshot(&self) -> Vec<WorkerStatus> {
        self.workers
            .lock()
            .expect("registry")
            .iter()
            .map(|h| h.0.lock().expect("worker status").clone())
            .collect()
    }
}

/// A level-triggered wake-up: `notify` makes every current and next `wait` return.
#[derive(Default)]
pub struct Wakeup {
    generation: Mutex<u64>,
    condvar: Condvar,
}

impl Wakeup {
    pub fn notify(&self) {
        *self.generation.lock().expect("wakeup") += 1;
        self.condvar.notify_all();
    }

    /// Waits until notified (after `seen`) or `timeout`; returns the generation seen.
    pub fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let guard = self.generation.lock().expect("wakeup");
        let (guard, _) = self
            .condvar
            .wait_timeout_while(guard, timeout, |g| *g == seen)
            .expect("wakeup");
        *guard
    }

    pub fn generation(&self) -> u64 {
        *self.generation.lock().expect("wakeup")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakeup_releases_waiters_and_times_out() {
        let wakeup = Arc::new(Wakeup::default());
        let seen = wakeup.generation();
        let waiter = {
            let wakeup = Arc::clone(&wakeup);
            std::thread::spawn(move || wakeup.wait(seen, Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(50));
        wakeup.notify();
        assert_eq!(waiter.join().unwrap(), seen + 1);
        let started = std::time::Instant::now();
        assert_eq!(wakeup.wait(seen + 1, Duration::from_millis(50)), seen + 1);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn registry_reports_states_and_counts() {
        let registry = WorkerRegistry::default();
        let handle = registry.register("ingest-1");
        handle.set(WorkerState::Busy, Some("a.jpg".into()));
        handle.count(true);
        handle.count(false);
        let snapshot = registry.snapshot();
        assert_eq!(snapshot[0].state, WorkerState::Busy);
        assert_eq!((snapshot[0].done, snapshot[0].failed), (1, 1));
    }
}
