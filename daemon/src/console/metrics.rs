//! `/metrics`: the daemon's state in the Prometheus text exposition format
//! (0.0.4): queue depth, catalogue, workers, faces, usage decisions and the
//! console's own responses. [`Metrics`] keeps what only the console knows
//! (responses by class, the face-rate samples), in atomics; everything else
//! is read from the services at scrape time.
//!
//! Cost: a scrape reads every asset record once (statuses, quarantine stages
//! and faces) and the queue's job states; fine for a catalogue of some
//! hundred thousand photos scraped every 15–60 s. Counters kept on commit
//! would replace the walk should that become too slow.

use std::collections::BTreeMap;
use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use consentry_web::warp::http::StatusCode;

use super::Call;
use super::http::Resp;
use super::screens::Fail;
use crate::domain::AssetStatus;

/// The exposition format's media type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];
/// Face-count samples kept for the rate.
const SLOTS: usize = 16;
/// A new sample is kept only this long after the newest one, so frequent
/// scrapes do not push the window below [`RATE_WINDOW_MS`].
const SAMPLE_SPACING_MS: u64 = 2_000;
/// The rate is taken over at least this long when samples that old exist.
const RATE_WINDOW_MS: u64 = 10_000;

/// What the console counts itself.
pub struct Metrics {
    responses: [AtomicU64; 4],
    started: Instant,
    /// Face-count samples: when (milliseconds since `started`, plus one; 0:
    /// an empty slot, or one being written) and the count then.
    sample_at: [AtomicU64; SLOTS],
    sample_faces: [AtomicU64; SLOTS],
    next: AtomicUsize,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            responses: Default::default(),
            started: Instant::now(),
            sample_at: Default::default(),
            sample_faces: Default::default(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Metrics {
    /// Counts one response by its class (1xx is not counted).
    pub fn response(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100);
        if let Some(counter) = class.checked_sub(2).and_then(|i| self.responses.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn responses(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.responses[i].load(Ordering::Relaxed))
    }

    fn now_ms(&self) -> u64 {
        crate::clock::duration_ms(self.started.elapsed())
    }

    /// Faces per second from the samples to `faces` at `now_ms` (since
    /// `started`), then keeps this sample. Over the newest sample at least
    /// [`RATE_WINDOW_MS`] old, else the oldest there is; 0 with none.
    fn faces_rate(&self, now_ms: u64, faces: u64) -> f64 {
        let mut newest = 0;
        let mut over_window: Option<(u64, u64)> = None;
        let mut oldest: Option<(u64, u64)> = None;
        for i in 0..SLOTS {
            let at = self.sample_at[i].load(Ordering::Acquire);
            let count = self.sample_faces[i].load(Ordering::Acquire);
            if at == 0 || self.sample_at[i].load(Ordering::Acquire) != at {
                continue;
            }
            let at = at - 1;
            newest = newest.max(at + 1);
            if at >= now_ms {
                continue;
            }
            if now_ms - at >= RATE_WINDOW_MS && over_window.is_none_or(|(t, _)| at > t) {
                over_window = Some((at, count));
            }
            if oldest.is_none_or(|(t, _)| at < t) {
                oldest = Some((at, count));
            }
        }
        if newest == 0 || now_ms + 1 >= newest + SAMPLE_SPACING_MS {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % SLOTS;
            self.sample_at[slot].store(0, Ordering::Release);
            self.sample_faces[slot].store(faces, Ordering::Release);
            self.sample_at[slot].store(now_ms + 1, Ordering::Release);
        }
        match over_window.or(oldest) {
            Some((at, count)) => faces.saturating_sub(count) as f64 * 1000.0 / (now_ms - at) as f64,
            None => 0.0,
        }
    }
}

/// What one scrape reports.
#[derive(Debug, Default)]
struct Snapshot {
    waiting: u64,
    running: u64,
    retrying: u64,
    by_status: BTreeMap<String, u64>,
    ingested: u64,
    /// Worker name → (done, failed).
    workers: BTreeMap<String, (u64, u64)>,
    by_stage: BTreeMap<String, u64>,
    faces: u64,
    faces_per_second: f64,
    decisions: [u64; 2],
    responses: [u64; 4],
}

/// GET /metrics.
pub fn page(call: &Call) -> Result<Resp, Fail> {
    let console = call.console;
    let store = &console.store;
    let queue = store
        .queue_summary(crate::clock::now_ms())
        .map_err(Fail::internal)?;
    let mut snap = Snapshot {
        waiting: queue.waiting,
        running: queue.running,
        retrying: queue.retrying,
        by_status: AssetStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .collect(),
        ..Snapshot::default()
    };
    // One walk over the catalogue: `Store::counts` by status, and the stages
    // and faces beside it (see the module's note on the cost).
    for asset in store.assets() {
        let asset = asset.map_err(Fail::internal)?;
        *snap
            .by_status
            .entry(asset.status.as_str().to_owned())
            .or_default() += 1;
        if let Some(q) = &asset.quarantine {
            *snap.by_stage.entry(q.stage.clone()).or_default() += 1;
        }
        snap.faces += asset.faces.len() as u64;
    }
    // Erased records are gone; their tombstones count them.
    let erased = store.tombstones().map_err(Fail::internal)?.len() as u64;
    *snap
        .by_status
        .entry(AssetStatus::Erased.as_str().to_owned())
        .or_default() += erased;
    snap.ingested = [
        AssetStatus::Pending,
        AssetStatus::Ready,
        AssetStatus::Erased,
    ]
    .iter()
    .map(|s| snap.by_status.get(s.as_str()).copied().unwrap_or(0))
    .sum();
    for worker in console.registry.snapshot() {
        let entry = snap.workers.entry(worker.name).or_default();
        entry.0 += worker.done;
        entry.1 += worker.failed;
    }
    snap.faces_per_second = console
        .metrics
        .faces_rate(console.metrics.now_ms(), snap.faces);
    snap.decisions = [
        console.rights.decisions[0].load(Ordering::Relaxed),
        console.rights.decisions[1].load(Ordering::Relaxed),
    ];
    snap.responses = console.metrics.responses();
    Ok(Resp::text(StatusCode::OK, CONTENT_TYPE, render(&snap)))
}

/// Label values: backslash, double quote and line feed escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

fn render(snap: &Snapshot) -> String {
    let mut out = Exposition(String::new());

    out.family(
        "consentry_queue_depth",
        "gauge",
        "Ingest jobs not yet committed; without a label all of them, with `state` by state.",
    );
    out.sample(
        "consentry_queue_depth",
        &[],
        snap.waiting + snap.running + snap.retrying,
    );
    for (state, n) in [
        ("waiting", snap.waiting),
        ("running", snap.running),
        ("retrying", snap.retrying),
    ] {
        out.sample("consentry_queue_depth", &[("state", state)], n);
    }

    out.family(
        "consentry_assets",
        "gauge",
        "Assets in the catalogue by status (erased: the tombstones erasures left).",
    );
    for (status, n) in &snap.by_status {
        out.sample("consentry_assets", &[("status", status)], n);
    }

    out.family(
        "consentry_photos_ingested_total",
        "counter",
        "Photos committed to the catalogue (quarantined files not counted, erased ones still counted).",
    );
    out.sample("consentry_photos_ingested_total", &[], snap.ingested);

    out.family(
        "consentry_worker_done_total",
        "counter",
        "Jobs each worker finished since the daemon started.",
    );
    for (worker, (done, _)) in &snap.workers {
        out.sample("consentry_worker_done_total", &[("worker", worker)], done);
    }
    out.family(
        "consentry_worker_failed_total",
        "counter",
        "Jobs each worker failed since the daemon started.",
    );
    for (worker, (_, failed)) in &snap.workers {
        out.sample(
            "consentry_worker_failed_total",
            &[("worker", worker)],
            failed,
        );
    }

    out.family(
        "consentry_failures_by_stage",
        "gauge",
        "Quarantined assets by the pipeline stage that refused them.",
    );
    for (stage, n) in &snap.by_stage {
        out.sample("consentry_failures_by_stage", &[("stage", stage)], n);
    }

    out.family(
        "consentry_faces_total",
        "gauge",
        "Faces stored in the catalogue.",
    );
    out.sample("consentry_faces_total", &[], snap.faces);

    out.family(
        "consentry_faces_per_second",
        "gauge",
        "Faces committed per second over the last 10 s or more between scrapes (0 on the first scrape).",
    );
    let rate = if snap.faces_per_second.is_finite() {
        snap.faces_per_second
    } else {
        0.0
    };
    out.sample("consentry_faces_per_second", &[], rate);

    out.family(
        "consentry_decisions_total",
        "counter",
        "Usage decisions made since the daemon started, by outcome.",
    );
    out.sample(
        "consentry_decisions_total",
        &[("outcome", "allowed")],
        snap.decisions[0],
    );
    out.sample(
        "consentry_decisions_total",
        &[("outcome", "blocked")],
        snap.decisions[1],
    );

    out.family(
        "consentry_http_responses_total",
        "counter",
        "Console and API responses since the daemon started, by status class.",
    );
    for (class, n) in CLASSES.iter().zip(snap.responses) {
        out.sample("consentry_http_responses_total", &[("class", class)], n);
    }
    out.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    type Sample = (String, Vec<(String, String)>, f64);

    /// `name{k="v",…} value` → (name, labels, value).
    fn parse_sample(line: &str) -> Result<Sample, String> {
        let name_end = line.find(['{', ' ']).ok_or("no value")?;
        let name = &line[..name_end];
        let valid_name = name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
        if name.is_empty() || !valid_name {
            return Err(format!("bad metric name `{name}`"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            loop {
                let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
                if body[start..].starts_with('}') {
                    rest = &body[start + 1..];
                    break;
                }
                let eq = body[start..].find("=\"").ok_or("label without =\"")? + start;
                let key = body[start..eq].to_owned();
                while chars.peek().is_some_and(|(i, _)| *i < eq + 2) {
                    chars.next();
                }
                let mut value = String::new();
                loop {
                    match chars.next().ok_or("unterminated label value")?.1 {
                        '\\' => match chars.next().ok_or("dangling escape")?.1 {
                            'n' => value.push('\n'),
                            c @ ('\\' | '"') => value.push(c),
                            c => return Err(format!("bad escape \\{c}")),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.push((key, value));
                if chars.peek().is_some_and(|(_, c)| *c == ',') {
                    chars.next();
                }
            }
        }
        let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("`{value}` is not a float"))?;
        Ok((name.to_owned(), labels, value))
    }

    /// Checks the exposition format: every sample line parses, every family
    /// has HELP and TYPE before its samples, no series twice.
    fn check(text: &str) -> HashMap<String, f64> {
        assert!(text.ends_with('\n'));
        let mut help = BTreeSet::new();
        let mut kind = HashMap::new();
        let mut series = HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').expect("HELP name text");
                assert!(!text.is_empty(), "{line}");
                assert!(help.insert(name.to_owned()), "HELP twice: {line}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, t) = rest.split_once(' ').expect("TYPE name type");
                assert!(["counter", "gauge"].contains(&t), "{line}");
                assert!(
                    kind.insert(name.to_owned(), t.to_owned()).is_none(),
                    "TYPE twice: {line}"
                );
            } else {
                assert!(
                    !line.starts_with('#') && !line.is_empty(),
                    "stray line `{line}`"
                );
                let (name, labels, value) =
                    parse_sample(line).unwrap_or_else(|e| panic!("{line}: {e}"));
                assert!(help.contains(&name), "no HELP before {line}");
                assert!(kind.contains_key(&name), "no TYPE before {line}");
                if kind[&name] == "counter" {
                    assert!(value >= 0.0, "{line}");
                }
                let key = format!("{name}{labels:?}");
                assert!(series.insert(key, value).is_none(), "series twice: {line}");
            }
        }
        assert_eq!(help, kind.keys().cloned().collect::<BTreeSet<_>>());
        series
    }

    #[test]
    fn the_text_is_exposition_format() {
        let metrics = Metrics::default();
        metrics.response(StatusCode::OK);
        metrics.response(StatusCode::SEE_OTHER);
        metrics.response(StatusCode::NOT_FOUND);
        metrics.response(StatusCode::CONTINUE);
        let snap = Snapshot {
            waiting: 3,
            running: 1,
            retrying: 2,
            by_status: [
                ("pending", 1),
                ("ready", 5),
                ("quarantined", 2),
                ("erased", 1),
            ]
            .map(|(k, v)| (k.to_owned(), v))
            .into(),
            ingested: 7,
            workers: [("ingest-0", (4, 1)), ("odd \"name\"\\\n", (0, 0))]
                .map(|(k, v)| (k.to_owned(), v))
                .into(),
            by_stage: [("decode".to_owned(), 2)].into(),
            faces: 12,
            faces_per_second: 0.25,
            decisions: [9, 4],
            responses: metrics.responses(),
        };
        let text = render(&snap);
        let series = check(&text);
        assert_eq!(series["consentry_queue_depth[]"], 6.0);
        assert_eq!(
            series["consentry_queue_depth[(\"state\", \"retrying\")]"],
            2.0
        );
        assert_eq!(
            series["consentry_worker_done_total[(\"worker\", \"odd \\\"name\\\"\\\\\\n\")]"],
            0.0
        );
        assert_eq!(series["consentry_faces_per_second[]"], 0.25);
        assert_eq!(
            series["consentry_decisions_total[(\"outcome\", \"blocked\")]"],
            4.0
        );
        assert_eq!(
            series["consentry_http_responses_total[(\"class\", \"2xx\")]"],
            1.0
        );
        assert_eq!(
            series["consentry_http_responses_total[(\"class\", \"4xx\")]"],
            1.0
        );
        assert_eq!(
            series["consentry_http_responses_total[(\"class\", \"5xx\")]"],
            0.0
        );

        // An empty daemon still gives every family with HELP and TYPE.
        let empty = render(&Snapshot::default());
        check(&empty);
        for family in ["consentry_failures_by_stage", "consentry_worker_done_total"] {
            assert!(empty.contains(&format!("# TYPE {family} ")), "{family}");
        }
    }

    #[test]
    fn the_face_rate_is_taken_over_ten_seconds_or_more() {
        let m = Metrics::default();
        assert_eq!(m.faces_rate(1_000, 100), 0.0, "first scrape");
        // Too soon after the last sample: used, but not kept.
        assert_eq!(m.faces_rate(2_000, 110), 10.0);
        assert_eq!(m.faces_rate(6_000, 150), 10.0);
        assert_eq!(m.faces_rate(11_000, 200), 10.0);
        // At 21 s the newest sample at least 10 s old is the one at 11 s.
        assert_eq!(m.faces_rate(21_000, 300), 10.0);
        // Fewer faces (an erasure) is no negative rate.
        assert_eq!(m.faces_rate(40_000, 0), 0.0);
        // Many fast scrapes keep a window of at least 10 s.
        for s in 0..100u64 {
            m.faces_rate(50_000 + s * 100, 1_000 + s);
        }
        let rate = m.faces_rate(60_000, 2_000);
        assert!(rate > 0.0 && rate < 200.0, "{rate}");
    }
}
