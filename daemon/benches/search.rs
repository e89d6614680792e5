//! Face search speed: [`FaceIndex`] over synthetic dlib-like templates at
//! 10 k, 100 k and 1 M faces, against a plain scan of the `f32` templates.
//!
//! The generator (seeded, so every run sees the same data): real dlib
//! descriptors share a large common component (the mean of the test set's
//! descriptors has norm 1.32 of their 1.45) and spread about it by about
//! 0.053 per component. So a template is `μ + c + w`: `μ` one fixed vector
//! with components N(0, 0.117²); `c` the identity's centre offset,
//! N(0, 0.054²) per component; `w` the photo's own noise, N(0, σ²) with σ
//! drawn per identity from 0.020..0.030. Same-identity distances then come
//! out at about 0.32–0.48 and different-identity ones at about 0.85–1.05,
//! as dlib's do (0.25–0.55 and 0.69–1.09 on the test set). Every index
//! holds N / 20 identities of 20 faces. Queries: 150 new photos of stored
//! identities and 50 of unknown people (200 in all).
//!
//! Per size the table gives the build time (inserting N templates), the
//! index's memory estimate, and the latency of `search(k = 20, 0.6)`
//! (p50 / p95 / max over the queries, after a warm-up; then its p50 on a
//! one-thread pool, as when ingest holds the other core, and without the
//! distance limit, "rank all faces") and of `within(0.5)`. At
//! 10 k and 100 k every answer is also checked against a plain exact scan,
//! and at 100 k that scan (serial, scalar `f32`) is timed for comparison.
//!
//! Run: `cargo bench -p consentry-daemon --bench search`.
//! Environment: `CONSENTRY_BENCH_QUICK=1` stops after 100 k (CI smoke).

use std::hint::black_box;
use std::time::{Duration, Instant};

use consentry::people::index::{self, DIM, FaceIndex, Slot};

const FACES_PER_IDENTITY: usize = 20;
const QUERIES_KNOWN: usize = 150;
const QUERIES_UNKNOWN: usize = 50;
const K: usize = 20;
const MAX_DISTANCE: f32 = 0.6;
const RADIUS: f32 = 0.5;

/// xorshift64* with Box–Muller normals.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn vector(&mut self, sd: f64) -> [f64; DIM] {
        std::array::from_fn(|_| sd * self.normal())
    }
}

struct Identity {
    centre: [f64; DIM],
    spread: f64,
}

struct World {
    rng: Rng,
    mean: [f64; DIM],
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = Rng(seed);
        let mean = rng.vector(0.117);
        World { rng, mean }
    }

    fn identity(&mut self) -> Identity {
        let offset = self.rng.vector(0.054);
        Identity {
            centre: std::array::from_fn(|i| self.mean[i] + offset[i]),
            spread: 0.020 + 0.010 * self.rng.uniform(),
        }
    }

    fn photo(&mut self, who: &Identity) -> [f32; DIM] {
        std::array::from_fn(|i| (who.centre[i] + who.spread * self.rng.normal()) as f32)
    }
}

struct Data {
    templates: Vec<[f32; DIM]>,
    queries: Vec<[f32; DIM]>,
}

fn generate(n: usize) -> Data {
    let mut world = World::new(0x5eed_0000 + n as u64);
    let identities: Vec<Identity> = (0..n / FACES_PER_IDENTITY)
        .map(|_| world.identity())
        .collect();
    let mut templates = Vec::with_capacity(n);
    for who in &identities {
        for _ in 0..FACES_PER_IDENTITY {
            templates.push(world.photo(who));
        }
    }
    let mut queries = Vec::new();
    for _ in 0..QUERIES_KNOWN {
        let who = &identities[(world.rng.next() % identities.len() as u64) as usize];
        queries.push(world.photo(who));
    }
    for _ in 0..QUERIES_UNKNOWN {
        let who = world.identity();
        queries.push(world.photo(&who));
    }
    Data { templates, queries }
}

/// p50, p95, max in milliseconds.
fn percentiles(mut times: Vec<Duration>) -> (f64, f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |p: f64| ms(times[((times.len() - 1) as f64 * p).round() as usize]);
    (at(0.50), at(0.95), ms(times[times.len() - 1]))
}

fn timed<T>(queries: &[[f32; DIM]], mut f: impl FnMut(&[f32]) -> T) -> (Vec<T>, (f64, f64, f64)) {
    for q in queries.iter().take(10) {
        black_box(f(q));
    }
    let mut out = Vec::with_capacity(queries.len());
    let mut times = Vec::with_capacity(queries.len());
    for q in queries {
        let t = Instant::now();
        out.push(black_box(f(q)));
        times.push(t.elapsed());
    }
    (out, percentiles(times))
}

/// Every template's exact distance, kept if within `max_distance`, sorted
/// by (distance, slot), cut at `k`: what the index must answer.
fn plain_scan(
    templates: &[[f32; DIM]],
    query: &[f32],
    k: usize,
    max_distance: f32,
    measure: impl Fn(&[f32], &[f32]) -> f32,
) -> Vec<(Slot, f32)> {
    let mut found: Vec<(Slot, f32)> = templates
        .iter()
        .enumerate()
        .map(|(slot, t)| (slot as Slot, measure(query, t)))
        .filter(|&(_, d)| d <= max_distance)
        .collect();
    found.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    found.truncate(k);
    found
}

/// Quantiles of distances between two photos of one identity (`same`) or
/// of two neighbouring identities.
fn pair_distances(templates: &[[f32; DIM]], same: bool) -> String {
    let identities = templates.len() / FACES_PER_IDENTITY;
    let mut d: Vec<f32> = (0..2_000)
        .map(|i| {
            let who = (i * 7) % (identities - 1);
            let a = who * FACES_PER_IDENTITY + i % (FACES_PER_IDENTITY - 1);
            let b = if same { a + 1 } else { a + FACES_PER_IDENTITY };
            index::distance(&templates[a], &templates[b])
        })
        .collect();
    d.sort_by(f32::total_cmp);
    let at = |p: f64| d[((d.len() - 1) as f64 * p) as usize];
    format!("{:.2} / {:.2} / {:.2}", at(0.05), at(0.5), at(0.95))
}

/// The textbook distance: one sequential `f32` sum (not vectorisable).
fn scalar_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

fn cpu_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let present: Vec<&str> = [
            ("sse4.1", std::arch::is_x86_feature_detected!("sse4.1")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
            (
                "avx512vnni",
                std::arch::is_x86_feature_detected!("avx512vnni"),
            ),
        ]
        .into_iter()
        .filter_map(|(name, here)| here.then_some(name))
        .collect();
        present.join(" ")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        String::from("(not x86-64)")
    }
}

fn main() {
    let quick = std::env::var("CONSENTRY_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let sizes: &[usize] = if quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    println!(
        "face search benchmark (synthetic dlib-like templates, {FACES_PER_IDENTITY} faces per identity)"
    );
    println!("scan kernel: {}", index::simd_path());
    println!("CPU features at run time: {}", cpu_features());
    println!(
        "cores: {}, rayon threads: {}, parallel scan from {} templates",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        rayon::current_num_threads(),
        index::PARALLEL_MIN_ROWS
    );
    println!(
        "queries: {} ({QUERIES_KNOWN} known identities, {QUERIES_UNKNOWN} unknown); search k = {K}, max distance {MAX_DISTANCE}; within {RADIUS}",
        QUERIES_KNOWN + QUERIES_UNKNOWN
    );
    let sample = generate(10_000);
    println!(
        "generator check (p5 / p50 / p95): same identity {}, different identities {}",
        pair_distances(&sample.templates, true),
        pair_distances(&sample.templates, false)
    );
    println!();
    let columns = [
        "N",
        "build",
        "memory",
        "B/face",
        "search p50/p95/max ms",
        "hits",
        "1 thread p50",
        "unbounded p50",
        "within p50/p95/max ms",
        "hits",
        "plain scan p50 ms",
    ];
    println!("| {} |", columns.join(" | "));
    println!("|{}|", ["---:"; 11].join("|"));
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let spread = |(p50, p95, max): (f64, f64, f64)| format!("{p50:.2} / {p95:.2} / {max:.2}");
    for &n in sizes {
        let data = generate(n);
        let started = Instant::now();
        let mut idx = FaceIndex::with_capacity(n);
        for (slot, t) in data.templates.iter().enumerate() {
            idx.insert(slot as Slot, t);
        }
        let build = started.elapsed();

        let (searched, search_ms) = timed(&data.queries, |q| idx.search(q, K, MAX_DISTANCE));
        let (_, serial_ms) = timed(&data.queries, |q| {
            one_thread.install(|| idx.search(q, K, MAX_DISTANCE))
        });
        let (_, unbounded_ms) = timed(&data.queries, |q| idx.search(q, K, f32::INFINITY));
        let (within, within_ms) = timed(&data.queries, |q| idx.within(q, RADIUS));
        let hits =
            |r: &[Vec<(Slot, f32)>]| r.iter().map(Vec::len).sum::<usize>() as f64 / r.len() as f64;

        let mut plain = String::from("-");
        if n <= 100_000 {
            for (q, (s, w)) in data.queries.iter().zip(searched.iter().zip(&within)) {
                let want = plain_scan(&data.templates, q, K, MAX_DISTANCE, index::distance);
                assert_eq!(*s, want);
                let want = plain_scan(&data.templates, q, usize::MAX, RADIUS, index::distance);
                assert_eq!(*w, want);
            }
            if n == 100_000 {
                let (_, ms) = timed(&data.queries, |q| {
                    plain_scan(&data.templates, q, K, MAX_DISTANCE, scalar_distance)
                });
                plain = format!("{:.2} (scalar)", ms.0);
            }
        }
        let memory = idx.memory_bytes();
        println!(
            "| {n} | {:.0} ms | {:.0} MB | {} | {} | {:.1} | {:.2} | {:.2} | {} | {:.1} | {plain} |",
            build.as_secs_f64() * 1e3,
            memory as f64 / 1e6,
            memory / n,
            spread(search_ms),
            hits(&searched),
            serial_ms.0,
            unbounded_ms.0,
            spread(within_ms),
            hits(&within),
        );
    }
    println!();
    println!(
        "hits: mean results per query. Answers at 10 k and 100 k were checked equal to a plain exact scan."
    );
}
