//! The daemon's life, as a checklist: open the store (key check first), clear
//! crash leftovers, start the watcher, the ingest workers and the heartbeat,
//! serve the control socket, tell systemd we are ready, then supervise (health
//! checks and watchdog pings) until SIGTERM/SIGINT, stop with a deadline, flush.
//!
//! Architecture Invariant: a file that makes a stage panic fails only its own
//! job (each job runs inside a panic boundary); the daemon carries on.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::control::{self, ControlState};
use crate::people::People;
use crate::pipeline::faces::{self, Batching, EngineStage, FaceStage};
use crate::pipeline::ingest::{Ingestor, JobOutcome};
use crate::pipeline::queue::Job;
use crate::pipeline::store::Store;
use crate::pipeline::store::jobs::JobId;
use crate::pipeline::watch::Watcher;
use crate::systemd::{Health, Notifier};
use crate::workers::{Wakeup, WorkerHandle, WorkerRegistry, WorkerState};
use crate::{clock, pipeline::store::crypto};

/// How often the main loop checks health when systemd asks for no watchdog.
const HEALTH_EVERY: Duration = Duration::from_secs(10);

/// How long shutdown waits for workers to finish their current file.
const EXIT_DEADLINE: Duration = Duration::from_secs(20);

/// Jobs currently held by workers, for the heartbeat thread.
type HeldJobs = Arc<Mutex<HashMap<String, JobId>>>;

pub fn run(config: Config) -> anyhow::Result<()> {
    let (store, key_source) = Store::open(&config.store)?;
    let store = Arc::new(store);
    log::info!(target: "consentry::daemon", "catalogue {} opened with the master key from {} (fingerprint {})",
        config.store.data_dir.display(), key_source, store.keys().fingerprint());
    let removed = store.remove_orphan_blobs()?;
    if removed > 0 {
        log::info!(target: "consentry::daemon", "removed {removed} blob file(s) left unreferenced by an interrupted run");
    }

    let boot = boot_id()?;
    let must_exit = Arc::new(AtomicBool::new(false));
    let wakeup = Arc::new(Wakeup::default());
    let registry = Arc::new(WorkerRegistry::default());
    let held: HeldJobs = Arc::default();
    let faces: Arc<dyn FaceStage> = Arc::new(start_faces(&config)?);
    let people = Arc::new(People::open(Arc::clone(&store), config.people.clone())?);
    log_recognition(&config);
    let audit = Arc::new(crate::audit::Audit::open(
        Arc::clone(&store),
        &config.audit,
    )?);
    log::info!(target: "consentry::audit", public_key = audit.public_key().as_str(); "audit checkpoints are signed with this key");
    crate::audit::record_start(&audit, &config)?;
    // A restored backup may hold photos erased after it was taken.
    for redone in crate::dsr::erase::replay(
        &store,
        &people,
        &crate::dsr::ledger::Ledger::new(&config.store.erasure_ledger),
        &config.ingest.thumbnail_sizes,
    )
    .map_err(anyhow::Error::msg)?
    {
        audit.record(
            &crate::audit::Actor::daemon(),
            crate::audit::Outcome::Ok,
            redone.replayed_entry(),
        )?;
    }
    let ingestor = Arc::new(Ingestor::new(
        Arc::clone(&people),
        config.ingest.clone(),
        faces,
    ));
    let mut threads = Vec::new();

    let watcher = Watcher::new(
        config.shares.clone(),
        Arc::clone(&store),
        config.ingest.clone(),
        Arc::clone(&wakeup),
        registry.register("watch"),
    );
    let exit = Arc::clone(&must_exit);
    threads.push(
        std::thread::Builder::new()
            .name("watch".into())
            .spawn(move || watcher.run(exit))?,
    );

    let n_workers = config.ingest.worker_count();
    for worker_idx in 1..=n_workers {
        let name = format!("ingest-{worker_idx}");
        let handle = registry.register(&name);
        let (ingestor, wakeup, exit, held, w_audit) = (
            Arc::clone(&ingestor),
            Arc::clone(&wakeup),
            Arc::clone(&must_exit),
            Arc::clone(&held),
            Arc::clone(&audit),
        );
        let lease_ms = clock::duration_ms(config.ingest.lease);
        threads.push(std::thread::Builder::new().name(name).spawn(move || {
            ingest_worker(
                &ingestor, &w_audit, boot, lease_ms, &wakeup, &handle, &exit, &held,
            )
        })?);
    }

    let heartbeat_every = config.ingest.lease / 4;
    let (hb_store, hb_exit, hb_held) = (
        Arc::clone(&store),
        Arc::clone(&must_exit),
        Arc::clone(&held),
    );
    threads.push(std::thread::Builder::new().name("heartbeat".into()).spawn(move || {
        while !hb_exit.load(Ordering::Relaxed) {
            let jobs: Vec<JobId> = hb_held.lock().expect("held jobs").values().copied().collect();
            for job in jobs {
                if let Err(err) = hb_store.heartbeat(job, boot, clock::now_ms()) {
                    log::warn!(target: "consentry::daemon", "heartbeat for {job} failed: {err}");
                }
            }
            sleep_unless(&hb_exit, heartbeat_every);
        }
    })?);

    let maintenance = registry.register("people");
    let (m_people, m_audit, m_exit, m_every) = (
        Arc::clone(&people),
        Arc::clone(&audit),
        Arc::clone(&must_exit),
        config.people.maintenance_interval,
    );
    threads.push(
        std::thread::Builder::new()
            .name("people".into())
            .spawn(move || {
                people_maintenance(&m_people, &m_audit, &maintenance, &m_exit, m_every)
            })?,
    );

    let signer = registry.register("audit");
    let (a_audit, a_exit, a_every) = (
        Arc::clone(&audit),
        Arc::clone(&must_exit),
        config.audit.checkpoint_interval,
    );
    threads.push(
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || audit_checkpoints(&a_audit, &signer, &a_exit, a_every))?,
    );

    let rights = Arc::new(crate::consent::Rights::open(
        Arc::clone(&store),
        config.consent.clone(),
    )?);
    if let Err(err) = rights.follow_all_recognition(&people) {
        log::error!(target: "consentry::consent", "cannot derive recognition from consents: {err}");
    }
    let reminders = registry.register("reminders");
    let (r_rights, r_people, r_exit, r_config) = (
        Arc::clone(&rights),
        Arc::clone(&people),
        Arc::clone(&must_exit),
        config.reminders.clone(),
    );
    threads.push(
        std::thread::Builder::new()
            .name("reminders".into())
            .spawn(move || reminder_worker(&r_rights, &r_people, &reminders, &r_exit, &r_config))?,
    );

    let socket = config.control_socket();
    let users = Arc::new(crate::console::users::Users::new(
        Arc::clone(&store),
        crate::console::sessions(&config.web),
    ));
    let control_state = Arc::new(ControlState {
        store: Arc::clone(&store),
        config: config.clone(),
        registry: Arc::clone(&registry),
        ingestor: Arc::clone(&ingestor),
        rights: Arc::clone(&rights),
        audit: Arc::clone(&audit),
        users: Arc::clone(&users),
    });
    control::serve(&socket, Arc::clone(&control_state)).map_err(|err| {
        anyhow::anyhow!(
            "cannot listen on control socket {}: {err}",
            socket.display()
        )
    })?;
    let console = if config.web.enabled {
        let running = crate::console::start(Arc::new(crate::console::Console {
            state: control_state,
            metrics: Default::default(),
        }))?;
        log::info!(target: "consentry::console", url = running.url.as_str(), fingerprint = running.fingerprint.as_str();
            "web console at {} (certificate SHA-256 {})", running.url, running.fingerprint);
        if users.all().map(|u| u.is_empty()).unwrap_or(false) {
            log::warn!(target: "consentry::console", "no console users yet: create the first admin with `consentry user add NAME --role admin`");
        }
        Some(running)
    } else {
        None
    };
    log::info!(target: "consentry::daemon", "ready: {n_workers} ingest worker(s), {} share(s), control socket {}", config.shares.len(), socket.display());
    for share in &config.shares {
        log::info!(target: "consentry::daemon", "drop photos into {} (collection {}, then {})", share.path.display(), share.collection, share.after_ingest);
    }

    let notifier = Notifier::from_env();
    let serving = format!(
        "serving {} share(s) with {n_workers} ingest worker(s){}",
        config.shares.len(),
        console
            .as_ref()
            .map(|c| format!("; console at {}", c.url))
            .unwrap_or_default()
    );
    supervise(&notifier, &serving, &store, &threads)?;
    notifier.stopping("stopping: finishing the files in progress");
    log::info!(target: "consentry::daemon", "stopping: finishing the files in progress (at most {}s)", EXIT_DEADLINE.as_secs());
    if let Some(console) = console {
        console.stop();
    }
    must_exit.store(true, Ordering::Relaxed);
    wakeup.notify();
    let deadline = Instant::now() + EXIT_DEADLINE;
    for thread in threads {
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
    audit.record(
        &crate::audit::Actor::daemon(),
        crate::audit::Outcome::Ok,
        crate::audit::Entry::new("daemon.stop", "daemon"),
    )?;
    if let Some(cp) = audit.checkpoint()? {
        log::info!(target: "consentry::audit", seq = cp.seq; "audit checkpoint signed at event {}", cp.seq);
    }
    store.flush()?;
    let _ = std::fs::remove_file(&socket);
    log::info!(target: "consentry::daemon", "stopped");
    Ok(())
}

/// Checks and loads the face models (a missing or damaged file stops
/// start-up here, with the fix in the message) and starts the engine thread.
fn log_recognition(config: &Config) {
    let on = &config.people.recognition;
    if on.is_empty() {
        log::info!(target: "consentry::daemon", "face recognition is off (people.recognition is empty): faces are detected and flagged, no templates are kept");
    } else {
        log::info!(target: "consentry::daemon", "face recognition is on for collection(s) {}; unknown-face templates are kept {} days",
            on.join(", "), config.people.template_retention.as_secs() / 86_400);
    }
}

/// The reminders worker: once a minute, checks whether today's digest is
/// due (past `reminders.send_at`, not yet sent) and sends it; also keeps
/// each person's recognition basis in step with consents that expire by date.
fn reminder_worker(
    rights: &crate::consent::Rights,
    people: &People,
    handle: &WorkerHandle,
    must_exit: &AtomicBool,
    config: &crate::config::RemindersConfig,
) {
    let configured = config.smtp.is_some() || config.webhook.is_some();
    if !configured {
        handle.set(
            WorkerState::Idle,
            Some("no [reminders.smtp] or [reminders.webhook]: reminders off".into()),
        );
    }
    let mut last_basis_day = None;
    while !must_exit.load(Ordering::Relaxed) {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
            let today = rights.today();
            if last_basis_day != Some(today) {
                rights
                    .follow_all_recognition(people)
                    .map_err(|e| e.to_string())?;
                last_basis_day = Some(today);
            }
            if !configured {
                return Ok(());
            }
            if let Some(day) =
                crate::consent::reminders::due(rights, config, jiff::Timestamp::now())
                    .map_err(|e| e.to_string())?
            {
                handle.set(
                    WorkerState::Busy,
                    Some(format!("sending the digest for {day}")),
                );
                let run = crate::consent::reminders::run(rights, people, config, day)
                    .map_err(|e| e.to_string())?;
                handle.count(true);
                log::info!(target: "consentry::consent", mailed = run.mailed, posted = run.posted, items = run.items; "reminders for {day} sent");
                handle.set(
                    WorkerState::Idle,
                    Some(format!(
                        "digest for {day}: {} item(s), {} mailed, {} posted",
                        run.items, run.mailed, run.posted
                    )),
                );
            }
            Ok(())
        }));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                handle.count(false);
                log::error!(target: "consentry::consent", "reminders: {err}");
                handle.set(
                    WorkerState::Idle,
                    Some(format!("last attempt failed: {err}")),
                );
            }
            Err(_) => {
                log::error!(target: "consentry::consent", "the reminders worker panicked; it tries again in a minute")
            }
        }
        for _ in 0..(if cfg!(test) { 1 } else { REMINDER_CHECK_SECS }) {
            if must_exit.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    handle.set(WorkerState::Done, None);
}

/// How often the reminders worker checks (seconds).
const REMINDER_CHECK_SECS: u32 = 60;

/// The people worker: purges templates past their retention period and
/// re-clusters unknown faces, at start and then every `maintenance_interval`.
/// Signs an audit checkpoint every `audit.checkpoint_interval` while events
/// arrive (checked each minute).
fn audit_checkpoints(
    audit: &crate::audit::Audit,
    handle: &WorkerHandle,
    must_exit: &AtomicBool,
    interval: Duration,
) {
    handle.set(WorkerState::Idle, None);
    while !must_exit.load(Ordering::Relaxed) {
        match audit.checkpoint_if_due(clock::now_ms(), interval) {
            Ok(Some(cp)) => {
                handle.count(true);
                handle.set(
                    WorkerState::Idle,
                    Some(format!("signed up to event {}", cp.seq)),
                );
            }
            Ok(None) => {}
            Err(err) => {
                handle.count(false);
                handle.set(WorkerState::Throttled, Some(err.to_string()));
                log::error!(target: "consentry::audit", "cannot sign an audit checkpoint: {err}");
            }
        }
        sleep_unless(must_exit, Duration::from_secs(60).min(interval));
    }
}

fn people_maintenance(
    people: &People,
    audit: &crate::audit::Audit,
    handle: &WorkerHandle,
    must_exit: &AtomicBool,
    every: Duration,
) {
    while !must_exit.load(Ordering::Relaxed) {
        handle.set(WorkerState::Busy, Some("purge and re-cluster".into()));
        match std::panic::catch_unwind(AssertUnwindSafe(|| people.maintain(clock::now_ms()))) {
            Ok(Ok(report)) => {
                handle.count(true);
                if report.purged_templates > 0
                    && let Err(err) = audit.record(
                        &crate::audit::Actor::daemon(),
                        crate::audit::Outcome::Ok,
                        crate::audit::Entry::new("templates.retention_purge", "templates")
                            .with("templates", report.purged_templates),
                    )
                {
                    log::error!(target: "consentry::audit", "cannot record a retention purge: {err}");
                }
                handle.set(
                    WorkerState::Idle,
                    Some(format!(
                        "{} template(s) purged, {} cluster(s) of {} face(s)",
                        report.purged_templates, report.clusters, report.clustered_faces
                    )),
                );
            }
            Ok(Err(err)) => {
                handle.count(false);
                handle.set(WorkerState::Throttled, Some(err.to_string()));
                log::error!(target: "consentry::people", "maintenance failed: {err}");
            }
            Err(_) => {
                handle.count(false);
                log::error!(target: "consentry::people", "maintenance panicked; it runs again at the next interval");
            }
        }
        sleep_unless(must_exit, every);
    }
}

pub fn start_faces(config: &Config) -> anyhow::Result<EngineStage> {
    let started = Instant::now();
    let device = faces::models::select_device();
    let engine_config = consentry_models::face_engine::EngineConfig {
        min_score: config.faces.min_score,
        ..Default::default()
    };
    let loaded = faces::models::load(&config.faces.models_dir, &device, engine_config)?;
    log::info!(target: "consentry::daemon", "face engine {} loaded from {} on {} in {} ms",
        loaded.manifest.engine, config.faces.models_dir.display(), faces::models::describe_device(&device),
        started.elapsed().as_millis());
    let batching = Batching {
        max_photos: config.faces.batch_photos,
        linger: config.faces.batch_wait,
    };
    Ok(EngineStage::start(
        loaded.engine,
        loaded.manifest.engine,
        batching,
    )?)
}

#[allow(clippy::too_many_arguments)]
fn ingest_worker(
    ingestor: &Ingestor,
    audit: &crate::audit::Audit,
    boot: u64,
    lease_ms: u64,
    wakeup: &Wakeup,
    handle: &WorkerHandle,
    must_exit: &AtomicBool,
    held: &HeldJobs,
) {
    let name = handle.name();
    while !must_exit.load(Ordering::Relaxed) {
        let seen = wakeup.generation();
        let claimed = match ingestor.store().claim_job::<Job>(
            boot,
            &name,
            lease_ms,
            clock::now_ms(),
        ) {
            Ok(Some(claimed)) => claimed,
            Ok(None) => {
                handle.set(WorkerState::Idle, None);
                wakeup.wait(seen, Duration::from_secs(1));
                continue;
            }
            Err(err) => {
                handle.set(WorkerState::Throttled, Some(err.to_string()));
                log::error!(target: "consentry::daemon", "{name}: cannot read the queue: {err}");
                sleep_unless(must_exit, Duration::from_secs(5));
                continue;
            }
        };
        let Job::Ingest(job) = &claimed.job;
        handle.set(WorkerState::Busy, Some(job.rel_path.clone()));
        held.lock()
            .expect("held jobs")
            .insert(name.clone(), claimed.id);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| ingestor.run_job(&claimed)));
        held.lock().expect("held jobs").remove(&name);
        match result {
            Ok(Ok(JobOutcome::RetryLater {
                attempt,
                delay,
                error,
            })) => {
                handle.count(false);
                log::warn!(target: "consentry::ingest", path = job.rel_path.as_str(), stage = "retry";
                    "attempt {attempt} failed, retrying in {}s: {error}", delay.as_secs());
            }
            Ok(Ok(JobOutcome::Ingested(report))) => {
                handle.count(true);
                if let Err(err) = crate::audit::record_ingest(audit, &report, &job.collection) {
                    log::error!(target: "consentry::audit", "cannot record the ingest of {}: {err}", report.asset_id);
                }
            }
            Ok(Ok(JobOutcome::Erased(asset))) => {
                handle.count(true);
                let entry = crate::audit::Entry::new("asset.ingest", format!("asset:{asset}"))
                    .with("collection", &job.collection)
                    .with(
                        "error",
                        "this photo was erased (GDPR Art. 17); not stored again",
                    );
                if let Err(err) = audit.record(
                    &crate::audit::Actor::daemon(),
                    crate::audit::Outcome::Refused,
                    entry,
                ) {
                    log::error!(target: "consentry::audit", "cannot record a refused ingest: {err}");
                }
            }
            Ok(Ok(_)) => handle.count(true),
            Ok(Err(err)) => {
                handle.count(false);
                log::error!(target: "consentry::daemon", "{name}: {} failed and stays queued: {err}", claimed.id);
                sleep_unless(must_exit, Duration::from_secs(1));
            }
            Err(panic) => {
                handle.count(false);
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "unknown panic".to_owned());
                log::error!(target: "consentry::daemon", "{name}: internal error on {}: {message}", job.rel_path);
                let retry = ingestor.store().retry_job::<Job>(
                    claimed.id,
                    clock::now_ms() + 5_000,
                    true,
                    Some(&format!("internal error: {message}")),
                );
                if let Err(err) = retry {
                    log::error!(target: "consentry::daemon", "{name}: cannot requeue {}: {err}", claimed.id);
                }
            }
        }
    }
    handle.set(WorkerState::Done, None);
}

fn sleep_unless(must_exit: &AtomicBool, duration: Duration) {
    let until = Instant::now() + duration;
    while !must_exit.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(
            Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())),
        );
    }
}

fn boot_id() -> anyhow::Result<u64> {
    let mut bytes = [0u8; 8];
    crypto::fill_random(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// The main loop: reports ready once SIGTERM/SIGINT are caught, then waits
/// for one and, meanwhile, checks the daemon's health and pings the systemd
/// watchdog while it holds.
fn supervise(
    notifier: &Notifier,
    serving: &str,
    store: &Store,
    threads: &[std::thread::JoinHandle<()>],
) -> anyhow::Result<()> {
    let tick = notifier.ping_every().unwrap_or(HEALTH_EVERY);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        notifier.ready(serving);
        let mut ticks = tokio::time::interval(tick);
        let mut last = Health::Ok;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = ticks.tick() => {
                    let health = Health::check(store.healthy(), threads);
                    match &health {
                        Health::Ok => notifier.watchdog(),
                        Health::Failing(why) if health != last => {
                            log::error!(target: "consentry::daemon", "not healthy: {why}; watchdog pings withheld (systemd restarts the service)");
                            notifier.status(&format!("not healthy: {why}"));
                        }
                        Health::Failing(_) => {}
                    }
                    if health == Health::Ok && last != Health::Ok {
                        log::info!(target: "consentry::daemon", "healthy again");
                        notifier.status(serving);
                    }
                    last = health;
                }
            }
        }
        Ok::<(), std::io::Error>(())
    })?;
    Ok(())
}
