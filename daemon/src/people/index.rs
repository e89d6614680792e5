//! Face search: the stored templates nearest to a query template, by
//! Euclidean distance, found by a brute-force scan of every template in
//! memory.
//!
//! Input: 128-D dlib descriptors ([`DIM`] `f32`s, not normalised: norm about
//! 1.45, components within about ±0.55), each under a caller's [`Slot`]; a
//! query template, from a new photo or from a stored face
//! ([`FaceIndex::get`], with [`FaceIndex::search_filtered`] to leave the face
//! itself out). Output: `(slot, distance)` pairs sorted by distance, ties by
//! the smaller slot. The distances are the exact `f32` distances of
//! [`distance`], so an answer is exactly that of a plain scan of every
//! template, whatever the order in which templates came and went. Failure
//! modes: a template or query of the wrong length is a programming error and
//! panics; a template with a NaN or infinite component is refused
//! ([`FaceIndex::try_insert`] says so, [`FaceIndex::insert`] panics); a query
//! with one matches nothing. Nothing here does I/O or fails otherwise.
//!
//! How: every template is kept twice. The scan reads only a compact copy:
//! each component rounded to a grid of step [`STEP`] (1/160), ±127 steps
//! (±0.79), stored as one byte, plus the row's squared norm: 132 bytes a
//! template. The query goes on a grid 16 times finer (`i16`). The scan
//! computes, in exact integer arithmetic, the distance d̃ between the two
//! rounded vectors (`i16 × u8` dot products, which the compiler turns into
//! byte unpacks and `pmaddwd`) and keeps the rows that may qualify; only
//! those are measured on the `f32` copy (512 bytes a template) and sorted.
//!
//! Why no true result is lost: by the triangle inequality
//! `|d − d̃| ≤ ε = e_q + e_row`, where `e_q` is the query's own rounding
//! error (computed exactly for each query, about 0.001) and `e_row` bounds a
//! stored row's: `√128 · STEP / 2 ≈ 0.035` for every row with no component
//! beyond ±0.79, the exact error for the rare row that had to be clipped (the
//! largest such error is tracked, so such a row only widens the margin while
//! it is stored). A row can be within `max_distance` only if
//! `d̃ ≤ max_distance + ε`; it can be among the k nearest only if
//! `d̃ ≤ d̃ₖ + 2ε`, d̃ₖ being the k-th smallest d̃ seen, since the k rows
//! that make d̃ₖ are all within `d̃ₖ + ε`. Both tests also get a 1e-4
//! relative guard for the rounding of the `f32` distances. Every row passing
//! them is measured exactly, so the result is that of the exact scan. With
//! dlib's gap between same-person (below about 0.55) and other-person
//! (above about 0.7) distances, the margin adds only a few rows to measure.
//!
//! Memory, per template: 512 B (`f32` copy) + 128 B (codes) + 4 B (norm) +
//! 4 B (slot) + 10 to 20 B (slot → row map) ≈ 660 B; 1 M templates take
//! 0.67 GB ([`FaceIndex::memory_bytes`]). The `f32` copy is 78 % of that.
//! The re-rank reads only a few rows per query and could fetch them from the
//! caller instead (the index would then be 150 B a template), but the index
//! keeps them so that a search does no I/O and [`FaceIndex::get`] serves
//! "faces like this one".
//!
//! SIMD: the workspace forbids `unsafe_code`, and calling a
//! `#[target_feature]` function chosen by run-time detection needs `unsafe`
//! (so does a prefetch instruction). So the kernel is written as 16
//! independent `i32` lanes that LLVM vectorises for whatever the crate is
//! compiled for ([`simd_path`]): SSE2 on the default x86-64 target, AVX2 or
//! AVX-512 when built with `-C target-cpu`. Indexes from
//! [`PARALLEL_MIN_ROWS`] templates on are scanned in chunks on the rayon
//! pool; smaller ones on the calling thread.
//!
//! Speed (`cargo bench -p consentry-daemon --bench search`: 2-core Xeon
//! under KVM, SSE2 build, 2 rayon threads, dlib-like synthetic templates;
//! `search(k = 20, 0.6)`, p50 / p95 of 200 queries, ranges over four runs
//! with the machine otherwise idle):
//!
//! | templates | search | one thread | no distance limit | `within(0.5)` | plain `f32` scan |
//! |---:|---:|---:|---:|---:|---:|
//! | 10 k | 0.05 / 0.06 ms | | 0.08 ms | 0.05 / 0.06 ms | |
//! | 100 k | 0.4 / 0.8 ms | 0.7–0.9 ms | 0.7 ms | 0.4 / 0.5 ms | 11–14 ms |
//! | 1 M | 7.2–8.1 / 7.9–9.2 ms | 14–16 ms | 10 ms | 7.3–8.0 / 7.6–8.3 ms | (≈ 130 ms) |
//!
//! With one of the two cores kept busy by another process, 1 M took
//! 16 ms p50, 19 ms p95, 24 ms at worst: p95 inside the budget, not by much.
//!
//! When an ANN index would be needed: the scan is linear in the number of
//! templates and bound by memory bandwidth: about 8 ms per million on
//! both cores, 15 ms on one. It crosses the 20 ms budget at about 2.5 M
//! templates (1.7 GB of index), or about 1.3 M when ingest or anything else
//! holds a core. A search holds both cores while it runs, so at 1 M the
//! machine answers at most about 125 searches a second, far fewer beside
//! ingest. Density clustering that asks [`FaceIndex::within`] for every
//! face costs N scans: 40 s for 100 k faces, about 2 hours for 1 M. So an
//! approximate index (HNSW, or IVF over k-means lists, on the byte codes)
//! becomes necessary beyond about 1.5 to 2.5 M faces, above about 50
//! sustained searches a second, or for clustering all faces once there are
//! more than a few hundred thousand; it gives up the guarantee that no
//! neighbour within the threshold is missed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use rayon::prelude::*;

/// Components of a face template (dlib's descriptor).
pub const DIM: usize = 128;

/// Caller's handle for a stored template (the caller maps it to a face).
pub type Slot = u32;

/// Grid step of the stored codes, which cover ±127 steps (±0.79).
pub const STEP: f64 = 1.0 / 160.0;

/// Indexes with at least this many templates are scanned in parallel.
pub const PARALLEL_MIN_ROWS: usize = 50_000;

/// The query's grid is this many times finer than [`STEP`].
const QUERY_SUBSTEPS: i64 = 16;
const QUERY_STEP: f64 = STEP / QUERY_SUBSTEPS as f64;
const CODE_MAX: f64 = 127.0;
/// Stored codes are `code + 128` as `u8` (1..=255): zero-extending them is
/// one instruction cheaper than sign-extending `i8`.
const CODE_OFFSET: i32 = 128;
const QUERY_CODE_MAX: f64 = i16::MAX as f64;
/// Rows per parallel scan task (1 MiB of codes).
const CHUNK_ROWS: usize = 8_192;
/// How many rows ahead the scan touches the codes (see [`scan`]).
const TOUCH_AHEAD: usize = 16;
/// Candidates measured exactly on the rayon pool from this many on.
const PARALLEL_RERANK: usize = 4_096;
/// Rounding error bound of a row with no clipped component: `√DIM · STEP / 2`.
const GRID_ERROR: f64 = 0.5 * STEP * 11.313_708_498_984_761; // √128

/// A template the index refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("a face template has {0} values, not {DIM}")]
    Length(usize),
    #[error("a face template has a NaN or infinite value (component {0})")]
    NotFinite(usize),
}

/// Exact Euclidean distance, the one every answer of [`FaceIndex`] reports.
///
/// Eight `f32` partial sums in a fixed order: the same bits on every machine
/// and build, so results are reproducible. Panics if the lengths differ.
pub fn distance(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(
        a.len(),
        b.len(),
        "distance between vectors of different lengths"
    );
    let mut acc = [0f32; 8];
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b.as_chunks::<8>();
    for (x, y) in a8.iter().zip(b8) {
        for ((s, &p), &q) in acc.iter_mut().zip(x).zip(y) {
            let d = p - q;
            *s += d * d;
        }
    }
    for (s, (&p, &q)) in acc.iter_mut().zip(a_rest.iter().zip(b_rest)) {
        let d = p - q;
        *s += d * d;
    }
    (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))).sqrt()
}

/// How the scan kernel was compiled, for logs and the benchmark.
pub fn simd_path() -> &'static str {
    if cfg!(target_feature = "avx512bw") {
        "avx512bw (compile-time, auto-vectorised)"
    } else if cfg!(target_feature = "avx2") {
        "avx2 (compile-time, auto-vectorised)"
    } else if cfg!(target_feature = "sse2") {
        "sse2 (x86-64 baseline, auto-vectorised)"
    } else if cfg!(target_feature = "neon") {
        "neon (compile-time, auto-vectorised)"
    } else {
        "portable lanes"
    }
}

/// Brute-force nearest-neighbour index over face templates (see the module
/// documentation).
#[derive(Clone, Default)]
pub struct FaceIndex {
    /// Per row: components rounded to [`STEP`], plus [`CODE_OFFSET`].
    codes: Vec<[u8; DIM]>,
    /// Per row: Σ code².
    norms: Vec<i32>,
    /// Per row: the exact template.
    rows: Vec<[f32; DIM]>,
    /// Per row: its slot.
    slots: Vec<Slot>,
    row_of: HashMap<Slot, u32>,
    /// Rounding errors above [`GRID_ERROR`] (rows with clipped components),
    /// as `f64` bits (positive, so ordered like the values) → how many rows.
    clipped: BTreeMap<u64, u32>,
}

impl fmt::Debug for FaceIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaceIndex")
            .field("len", &self.len())
            .field("clipped_rows", &self.clipped.values().sum::<u32>())
            .finish()
    }
}

impl FaceIndex {
    pub fn new() -> FaceIndex {
        FaceIndex::default()
    }

    pub fn with_capacity(n: usize) -> FaceIndex {
        FaceIndex {
            codes: Vec::with_capacity(n),
            norms: Vec::with_capacity(n),
            rows: Vec::with_capacity(n),
            slots: Vec::with_capacity(n),
            row_of: HashMap::with_capacity(n),
            clipped: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn contains(&self, slot: Slot) -> bool {
        self.row_of.contains_key(&slot)
    }

    /// Adds or replaces the template stored under `slot`.
    ///
    /// Panics if `v` is not [`DIM`] finite values; see [`Self::try_insert`].
    pub fn insert(&mut self, slot: Slot, v: &[f32]) {
        if let Err(e) = self.try_insert(slot, v) {
            panic!("{e}");
        }
    }

    /// Adds or replaces the template stored under `slot`, or says why not
    /// (nothing changes then).
    pub fn try_insert(&mut self, slot: Slot, v: &[f32]) -> Result<(), TemplateError> {
        let v: &[f32; DIM] = v.try_into().map_err(|_| TemplateError::Length(v.len()))?;
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(TemplateError::NotFinite(i));
        }
        let (code, norm, error) = encode(v);
        match self.row_of.get(&slot) {
            Some(&row) => {
                let row = row as usize;
                self.forget_error(row);
                self.codes[row] = code;
                self.norms[row] = norm;
                self.rows[row] = *v;
            }
            None => {
                let row = u32::try_from(self.slots.len()).expect("a face index holds < 2³² rows");
                self.codes.push(code);
                self.norms.push(norm);
                self.rows.push(*v);
                self.slots.push(slot);
                self.row_of.insert(slot, row);
            }
        }
        if error > GRID_ERROR {
            *self.clipped.entry(error.to_bits()).or_default() += 1;
        }
        Ok(())
    }

    /// Removes the template stored under `slot`; returns whether there was
    /// one. O(1): the last row moves into the hole.
    pub fn remove(&mut self, slot: Slot) -> bool {
        let Some(row) = self.row_of.remove(&slot) else {
            return false;
        };
        let row = row as usize;
        self.forget_error(row);
        self.codes.swap_remove(row);
        self.norms.swap_remove(row);
        self.rows.swap_remove(row);
        self.slots.swap_remove(row);
        if let Some(&moved) = self.slots.get(row) {
            self.row_of.insert(moved, row as u32);
        }
        true
    }

    /// The exact template stored under `slot`.
    pub fn get(&self, slot: Slot) -> Option<&[f32]> {
        self.row_of
            .get(&slot)
            .map(|&row| self.rows[row as usize].as_slice())
    }

    /// The `k` nearest templates with distance ≤ `max_distance`, nearest
    /// first (ties: smaller slot first), with exact distances. A query with a
    /// non-finite component, a negative or NaN `max_distance` or `k == 0`
    /// match nothing. Panics if `query` is not [`DIM`] long.
    pub fn search(&self, query: &[f32], k: usize, max_distance: f32) -> Vec<(Slot, f32)> {
        self.search_filtered(query, k, max_distance, |_| true)
    }

    /// [`Self::search`] among the slots for which `keep` holds. `keep` is
    /// called only for the few rows that pass the quantised test, at most
    /// once per row, possibly from several threads.
    pub fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        max_distance: f32,
        keep: impl Fn(Slot) -> bool + Sync,
    ) -> Vec<(Slot, f32)> {
        let Some(probe) = Probe::new(query) else {
            return Vec::new();
        };
        if k == 0 || max_distance.is_nan() || max_distance < 0.0 {
            return Vec::new();
        }
        let candidates = self.candidates(&probe, Some(k), max_distance, &keep);
        let mut found = self.measure(query, &candidates, max_distance);
        found.truncate(k);
        found
    }

    /// Every template within `radius` of `query` (for density clustering),
    /// with exact distances, sorted by (distance, slot). Same failure modes
    /// as [`Self::search`].
    pub fn within(&self, query: &[f32], radius: f32) -> Vec<(Slot, f32)> {
        let Some(probe) = Probe::new(query) else {
            return Vec::new();
        };
        if radius.is_nan() || radius < 0.0 {
            return Vec::new();
        }
        let candidates = self.candidates(&probe, None, radius, &|_| true);
        self.measure(query, &candidates, radius)
    }

    /// Heap bytes held, estimated from the capacities (the slot map counted
    /// as a hashbrown table at its maximum load).
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        self.codes.capacity() * size_of::<[u8; DIM]>()
            + self.norms.capacity() * size_of::<i32>()
            + self.rows.capacity() * size_of::<[f32; DIM]>()
            + self.slots.capacity() * size_of::<Slot>()
            + self.row_of.capacity() * (size_of::<(Slot, u32)>() + 1) * 8 / 7
            + self.clipped.len() * 2 * size_of::<u64>()
    }

    /// Bound on any stored row's rounding error.
    fn row_error(&self) -> f64 {
        self.clipped
            .last_key_value()
            .map_or(GRID_ERROR, |(&bits, _)| {
                f64::from_bits(bits).max(GRID_ERROR)
            })
    }

    /// Drops `row`'s entry from the clipped-error counts, if it has one.
    fn forget_error(&mut self, row: usize) {
        let (_, _, error) = encode(&self.rows[row]);
        if error > GRID_ERROR {
            let key = error.to_bits();
            if let Some(n) = self.clipped.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.clipped.remove(&key);
                }
            }
        }
    }

    /// Rows that may belong to the answer: every row with d̃ within
    /// `max_distance + ε` and, with `k`, within `d̃ₖ + 2ε` (module docs).
    fn candidates<F>(
        &self,
        probe: &Probe,
        k: Option<usize>,
        max_distance: f32,
        keep: &F,
    ) -> Vec<Candidate>
    where
        F: Fn(Slot) -> bool + Sync,
    {
        let eps = probe.error + self.row_error();
        let radius = f64::from(max_distance);
        let limits = Limits {
            radius: probe.key_limit(radius + eps + guard(radius)),
            eps,
            k,
        };
        let n = self.len();
        let mut found = if n >= PARALLEL_MIN_ROWS {
            self.codes
                .par_chunks(CHUNK_ROWS)
                .zip(self.norms.par_chunks(CHUNK_ROWS))
                .enumerate()
                .map(|(i, (codes, norms))| {
                    let start = i * CHUNK_ROWS;
                    let slots = &self.slots[start..start + codes.len()];
                    scan(probe, &limits, codes, norms, slots, start, keep)
                })
                .reduce(Vec::new, |mut a, mut b| {
                    a.append(&mut b);
                    a
                })
        } else {
            scan(
                probe,
                &limits,
                &self.codes,
                &self.norms,
                &self.slots,
                0,
                keep,
            )
        };
        if let Some(k) = k {
            prune(probe, &limits, k, &mut found);
        }
        found
    }

    /// Exact distances of `candidates` within `max_distance`, sorted by
    /// (distance, slot).
    fn measure(
        &self,
        query: &[f32],
        candidates: &[Candidate],
        max_distance: f32,
    ) -> Vec<(Slot, f32)> {
        let exact = |c: &Candidate| {
            let row = c.row as usize;
            let d = distance(query, &self.rows[row]);
            (d <= max_distance).then_some((self.slots[row], d))
        };
        let mut found: Vec<(Slot, f32)> = if candidates.len() >= PARALLEL_RERANK {
            candidates.par_iter().filter_map(exact).collect()
        } else {
            candidates.iter().filter_map(exact).collect()
        };
        found.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        found
    }
}

/// Rounds a template to the [`STEP`] grid: codes, Σ code², and the exact
/// rounding error ‖v − code·STEP‖.
fn encode(v: &[f32; DIM]) -> ([u8; DIM], i32, f64) {
    let mut code = [0u8; DIM];
    let mut norm = 0i32;
    let mut error2 = 0f64;
    for (c, &x) in code.iter_mut().zip(v) {
        let x = f64::from(x);
        let q = (x / STEP).round().clamp(-CODE_MAX, CODE_MAX);
        let q_int = q as i32;
        *c = (q_int + CODE_OFFSET) as u8;
        norm += q_int * q_int;
        error2 += (x - q * STEP) * (x - q * STEP);
    }
    (code, norm, error2.sqrt())
}

/// A query rounded to the finer grid.
struct Probe {
    code: [i16; DIM],
    /// Σ code².
    norm: i64,
    /// `2 · QUERY_SUBSTEPS · CODE_OFFSET · Σ code`: the stored codes'
    /// offset, taken back out of the dot product.
    offset: i64,
    /// ‖query − code·QUERY_STEP‖.
    error: f64,
}

impl Probe {
    /// `None` if a component is not finite. Panics if the length is wrong.
    fn new(query: &[f32]) -> Option<Probe> {
        assert_eq!(
            query.len(),
            DIM,
            "a face query has {} values, not {DIM}",
            query.len()
        );
        let mut code = [0i16; DIM];
        let mut norm = 0i64;
        let mut sum = 0i64;
        let mut error2 = 0f64;
        for (c, &x) in code.iter_mut().zip(query) {
            if !x.is_finite() {
                return None;
            }
            let x = f64::from(x);
            let q = (x / QUERY_STEP)
                .round()
                .clamp(-QUERY_CODE_MAX, QUERY_CODE_MAX);
            *c = q as i16;
            norm += i64::from(*c) * i64::from(*c);
            sum += i64::from(*c);
            error2 += (x - q * QUERY_STEP) * (x - q * QUERY_STEP);
        }
        Some(Probe {
            code,
            norm,
            offset: 2 * QUERY_SUBSTEPS * i64::from(CODE_OFFSET) * sum,
            error: error2.sqrt(),
        })
    }

    /// The scan key of a row: d̃² in `QUERY_STEP²` units, less the query's
    /// own Σ code² (the same for every row, so left out of the scan).
    #[inline(always)]
    fn key(&self, code: &[u8; DIM], norm: i32) -> i64 {
        let s = QUERY_SUBSTEPS;
        s * s * i64::from(norm) - 2 * s * i64::from(dot(&self.code, code)) + self.offset
    }

    /// The largest key of a row with d̃ ≤ `r` (`i64::MIN` for none).
    fn key_limit(&self, r: f64) -> i64 {
        if r.is_nan() || r < 0.0 {
            return i64::MIN;
        }
        let units = r / QUERY_STEP;
        // `as` saturates: r = ∞ gives i64::MAX.
        (units * units - self.norm as f64).floor() as i64
    }

    /// d̃ of a row with this key.
    fn approx(&self, key: i64) -> f64 {
        QUERY_STEP * ((key + self.norm).max(0) as f64).sqrt()
    }
}

/// Slack for the rounding of `f32` distances and of the bounds themselves.
fn guard(r: f64) -> f64 {
    1e-4 * (1.0 + r)
}

struct Limits {
    /// Largest key within `max_distance + ε`.
    radius: i64,
    eps: f64,
    k: Option<usize>,
}

impl Limits {
    /// Largest key a row may have and still be among the k nearest, when
    /// the k-th smallest key seen is `kth`.
    fn top_k(&self, probe: &Probe, kth: i64) -> i64 {
        let r = probe.approx(kth);
        probe
            .key_limit(r + 2.0 * self.eps + guard(r))
            .min(self.radius)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    key: i64,
    row: u32,
}

/// Scans one run of rows (`start` is the first one's row number).
fn scan<F>(
    probe: &Probe,
    limits: &Limits,
    codes: &[[u8; DIM]],
    norms: &[i32],
    slots: &[Slot],
    start: usize,
    keep: &F,
) -> Vec<Candidate>
where
    F: Fn(Slot) -> bool,
{
    let mut limit = limits.radius;
    let mut found = Vec::new();
    // With k, the list is cut back to the k-th best plus margin whenever it
    // reaches `cap`; the cap doubles if cutting frees little.
    let mut cap = limits
        .k
        .map_or(usize::MAX, |k| k.saturating_mul(4).max(256));
    // Reading a byte of each cache line `TOUCH_AHEAD` rows ahead starts its
    // fetch early: the scan is bound by memory latency, and safe code has no
    // prefetch instruction. This made the 1 M-row scan 30 % faster.
    let mut touched = 0u8;
    for (i, ((code, &norm), &slot)) in codes.iter().zip(norms).zip(slots).enumerate() {
        if let Some(ahead) = codes.get(i + TOUCH_AHEAD) {
            touched ^= ahead[0] ^ ahead[DIM / 2];
        }
        let key = probe.key(code, norm);
        if key > limit || !keep(slot) {
            continue;
        }
        found.push(Candidate {
            key,
            row: (start + i) as u32,
        });
        if let Some(k) = limits.k
            && found.len() >= cap
        {
            limit = prune(probe, limits, k, &mut found);
            cap = cap.max(found.len().saturating_mul(2));
        }
    }
    std::hint::black_box(touched);
    found
}

/// The k-th smallest key in `found` (which holds at least k entries).
fn kth_key(k: usize, found: &mut [Candidate]) -> i64 {
    found.select_nth_unstable(k - 1).1.key
}

/// Cuts `found` to the rows that may still be among the k nearest; returns
/// the key limit it cut at.
fn prune(probe: &Probe, limits: &Limits, k: usize, found: &mut Vec<Candidate>) -> i64 {
    if found.len() <= k {
        return limits.radius;
    }
    let limit = limits.top_k(probe, kth_key(k, found));
    found.retain(|c| c.key <= limit);
    limit
}

/// Σ q·x as 16 independent `i32` lanes, the shape LLVM turns into
/// zero-extending unpacks and `pmaddwd` (SSE2) or their AVX2/AVX-512
/// forms. Cannot overflow: |Σ| ≤ 128 · 32767 · 255 < 2³¹.
#[inline(always)]
fn dot(q: &[i16; DIM], x: &[u8; DIM]) -> i32 {
    let mut acc = [0i32; 16];
    let (q16, _) = q.as_chunks::<16>();
    let (x16, _) = x.as_chunks::<16>();
    for (qc, xc) in q16.iter().zip(x16) {
        for ((a, &p), &y) in acc.iter_mut().zip(qc).zip(xc) {
            *a += i32::from(p) * i32::from(y);
        }
    }
    acc.iter().sum()
}

/// [`dot`] as one running sum in index order: the reference the tests
/// hold the lane kernel to.
#[cfg(test)]
fn dot_reference(q: &[i16; DIM], x: &[u8; DIM]) -> i32 {
    q.iter()
        .zip(x)
        .fold(0, |sum, (&p, &y)| sum + i32::from(p) * i32::from(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64* with Box–Muller normals.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn uniform(&mut self) -> f64 {
            ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }

        fn vector(&mut self, sd: f64) -> [f32; DIM] {
            std::array::from_fn(|_| (sd * self.normal()) as f32)
        }
    }

    /// dlib-like templates: `per` photos around each of `identities` centres
    /// (same-identity distances about 0.4, different about 0.95).
    fn clustered(rng: &mut Rng, identities: usize, per: usize) -> Vec<[f32; DIM]> {
        let mean = rng.vector(0.117);
        let mut out = Vec::with_capacity(identities * per);
        for _ in 0..identities {
            let offset = rng.vector(0.054);
            let spread = 0.02 + 0.01 * rng.uniform();
            for _ in 0..per {
                out.push(std::array::from_fn(|i| {
                    mean[i] + offset[i] + (spread * rng.normal()) as f32
                }));
            }
        }
        out
    }

    fn build(templates: &[[f32; DIM]]) -> FaceIndex {
        let mut index = FaceIndex::new();
        for (slot, t) in templates.iter().enumerate() {
            index.insert(slot as Slot, t);
        }
        index
    }

    /// The exact answer by a plain scan of `(slot, template)` pairs.
    fn naive<'a>(
        stored: impl IntoIterator<Item = (Slot, &'a [f32; DIM])>,
        query: &[f32],
        k: usize,
        max_distance: f32,
        keep: impl Fn(Slot) -> bool,
    ) -> Vec<(Slot, f32)> {
        let mut found: Vec<(Slot, f32)> = stored
            .into_iter()
            .filter(|&(slot, _)| keep(slot))
            .map(|(slot, t)| (slot, distance(query, t)))
            .filter(|&(_, d)| d <= max_distance)
            .collect();
        found.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        found.truncate(k);
        found
    }

    fn numbered(templates: &[[f32; DIM]]) -> impl DoubleEndedIterator<Item = (Slot, &[f32; DIM])> {
        templates.iter().enumerate().map(|(i, t)| (i as Slot, t))
    }

    /// Queries of every kind: new photos of stored identities, stored
    /// templates themselves, strangers, points between two templates.
    fn queries(rng: &mut Rng, templates: &[[f32; DIM]], n: usize) -> Vec<[f32; DIM]> {
        (0..n)
            .map(|i| {
                let t = &templates[rng.below(templates.len())];
                match i % 4 {
                    0 => std::array::from_fn(|j| t[j] + (0.025 * rng.normal()) as f32),
                    1 => *t,
                    2 => {
                        let far = rng.vector(0.09);
                        std::array::from_fn(|j| t[j] + far[j])
                    }
                    _ => {
                        let u = &templates[rng.below(templates.len())];
                        std::array::from_fn(|j| 0.5 * (t[j] + u[j]))
                    }
                }
            })
            .collect()
    }

    #[test]
    fn search_and_within_equal_the_exact_scan() {
        let mut rng = Rng(0x1234_5678);
        let templates = clustered(&mut rng, 300, 10);
        let index = build(&templates);
        for q in queries(&mut rng, &templates, 120) {
            for (k, r) in [
                (1, 0.6),
                (5, 0.6),
                (20, 0.6),
                (20, 0.3),
                (50, 1.2),
                (7, f32::INFINITY),
            ] {
                let want = naive(numbered(&templates), &q, k, r, |_| true);
                assert_eq!(index.search(&q, k, r), want, "k {k}, max distance {r}");
            }
            for r in [0.0, 0.25, 0.5, 0.6, 0.9] {
                let want = naive(numbered(&templates), &q, usize::MAX, r, |_| true);
                assert_eq!(index.within(&q, r), want, "radius {r}");
            }
        }
    }

    #[test]
    fn radius_edges_are_exact() {
        let mut rng = Rng(7);
        let templates = clustered(&mut rng, 100, 10);
        let index = build(&templates);
        for q in queries(&mut rng, &templates, 40) {
            let all = naive(numbered(&templates), &q, usize::MAX, f32::INFINITY, |_| {
                true
            });
            // A threshold equal to a template's distance keeps it; the float
            // just below drops it.
            for &(slot, d) in all.iter().step_by(37).take(20) {
                let within = index.within(&q, d);
                assert!(within.contains(&(slot, d)), "distance {d} at radius {d}");
                assert_eq!(
                    within,
                    naive(numbered(&templates), &q, usize::MAX, d, |_| true)
                );
                let below = d.next_down();
                let within = index.within(&q, below);
                assert!(!within.iter().any(|&(s, _)| s == slot));
                assert_eq!(
                    within,
                    naive(numbered(&templates), &q, usize::MAX, below, |_| true)
                );
                assert_eq!(
                    index.search(&q, 10, d),
                    naive(numbered(&templates), &q, 10, d, |_| true)
                );
            }
        }
    }

    #[test]
    fn the_parallel_scan_equals_the_exact_scan() {
        let mut rng = Rng(99);
        let templates = clustered(&mut rng, (PARALLEL_MIN_ROWS + CHUNK_ROWS) / 8 + 100, 8);
        assert!(templates.len() > PARALLEL_MIN_ROWS + CHUNK_ROWS);
        let index = build(&templates);
        for q in queries(&mut rng, &templates, 16) {
            assert_eq!(
                index.search(&q, 20, 0.6),
                naive(numbered(&templates), &q, 20, 0.6, |_| true)
            );
            assert_eq!(
                index.search(&q, 3, f32::INFINITY),
                naive(numbered(&templates), &q, 3, f32::INFINITY, |_| true)
            );
            assert_eq!(
                index.within(&q, 0.5),
                naive(numbered(&templates), &q, usize::MAX, 0.5, |_| true)
            );
        }
    }

    #[test]
    fn filtered_search_ranks_only_kept_slots() {
        let mut rng = Rng(3);
        let templates = clustered(&mut rng, 200, 10);
        let index = build(&templates);
        for i in (0..templates.len()).step_by(97) {
            let own = i as Slot;
            // "More faces like this one": itself and its whole identity left out.
            let keep = |s: Slot| s / 10 != own / 10;
            let got = index.search_filtered(&templates[i], 5, f32::INFINITY, keep);
            assert_eq!(
                got,
                naive(numbered(&templates), &templates[i], 5, f32::INFINITY, keep)
            );
            assert_eq!(got.len(), 5);
            let mine = index.search_filtered(&templates[i], 20, 0.6, |s| s != own);
            assert_eq!(
                mine,
                naive(numbered(&templates), &templates[i], 20, 0.6, |s| s != own)
            );
            assert!(!mine.iter().any(|&(s, _)| s == own));
        }
    }

    #[test]
    fn ties_go_to_the_smaller_slot() {
        let mut rng = Rng(11);
        let t = rng.vector(0.1);
        let mut index = FaceIndex::new();
        for slot in [40, 7, 19, 3, 25] {
            index.insert(slot, &t);
        }
        let got = index.search(&t, 3, 0.6);
        assert_eq!(got, vec![(3, 0.0), (7, 0.0), (19, 0.0)]);
    }

    #[test]
    fn remove_and_replace() {
        let mut rng = Rng(5);
        let templates = clustered(&mut rng, 20, 5);
        let mut index = build(&templates);
        let mut stored: BTreeMap<Slot, [f32; DIM]> =
            numbered(&templates).map(|(s, t)| (s, *t)).collect();
        assert_eq!(index.len(), 100);

        // Replacing keeps the count and changes what is found.
        let fresh = rng.vector(0.3);
        index.insert(42, &fresh);
        stored.insert(42, fresh);
        assert_eq!(index.len(), 100);
        assert_eq!(index.get(42), Some(fresh.as_slice()));
        assert_eq!(index.search(&fresh, 1, 0.1), vec![(42, 0.0)]);
        assert!(index.search(&templates[42], 5, 0.0).is_empty());

        // Removing: present once, then gone; the row moved into its place
        // is still found under its own slot.
        for slot in [0, 99, 42, 50, 51, 98] {
            assert!(index.remove(slot));
            assert!(!index.remove(slot));
            stored.remove(&slot);
            assert_eq!(index.get(slot), None);
            assert!(!index.contains(slot));
        }
        assert_eq!(index.len(), stored.len());
        for (&slot, t) in &stored {
            assert_eq!(index.get(slot), Some(t.as_slice()));
            assert_eq!(index.search(t, 1, 0.0), vec![(slot, 0.0)]);
        }
        for q in queries(&mut rng, &templates, 20) {
            let want = naive(stored.iter().map(|(&s, t)| (s, t)), &q, 10, 0.8, |_| true);
            assert_eq!(index.search(&q, 10, 0.8), want);
        }
        assert!(!index.remove(1000));
        while let Some((slot, _)) = stored.pop_first() {
            assert!(index.remove(slot));
        }
        assert!(index.is_empty());
        assert!(index.search(&templates[1], 5, f32::INFINITY).is_empty());
    }

    #[test]
    fn results_do_not_depend_on_insertion_order() {
        let mut rng = Rng(17);
        let templates = clustered(&mut rng, 60, 10);
        let forward = build(&templates);
        // Reverse order, with detours: wrong templates put in and replaced,
        // extra slots added and removed again.
        let mut scrambled = FaceIndex::new();
        for (slot, t) in numbered(&templates).rev() {
            scrambled.insert(slot + 10_000, t);
            scrambled.insert(slot, &templates[0]);
            scrambled.insert(slot, t);
        }
        for (slot, _) in numbered(&templates) {
            assert!(scrambled.remove(slot + 10_000));
        }
        for q in queries(&mut rng, &templates, 40) {
            let a = forward.search(&q, 15, 0.7);
            let b = scrambled.search(&q, 15, 0.7);
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!((x.0, x.1.to_bits()), (y.0, y.1.to_bits()));
            }
            assert_eq!(forward.within(&q, 0.5), scrambled.within(&q, 0.5));
        }
    }

    #[test]
    fn lane_kernel_equals_the_reference() {
        let mut rng = Rng(23);
        let check = |q: [i16; DIM], x: [u8; DIM]| assert_eq!(dot(&q, &x), dot_reference(&q, &x));
        for _ in 0..2000 {
            let q = std::array::from_fn(|_| rng.next() as i16);
            let x = std::array::from_fn(|_| rng.next() as u8);
            check(q, x);
        }
        // The extremes: every product at its largest, of either sign.
        check([i16::MAX; DIM], [u8::MAX; DIM]);
        check([-i16::MAX; DIM], [u8::MAX; DIM]);
        check([i16::MIN; DIM], [u8::MAX; DIM]);
        check([i16::MIN; DIM], [0; DIM]);
        // And through the whole probe: codes of real templates.
        let templates = clustered(&mut rng, 10, 10);
        for q in &templates {
            let probe = Probe::new(q).unwrap();
            for t in &templates {
                let (code, _, _) = encode(t);
                assert_eq!(dot(&probe.code, &code), dot_reference(&probe.code, &code));
            }
        }
    }

    #[test]
    fn scan_key_is_the_squared_distance_between_the_grids() {
        let mut rng = Rng(29);
        let templates = clustered(&mut rng, 5, 4);
        for q in &templates {
            let probe = Probe::new(q).unwrap();
            for t in &templates {
                let (code, norm, _) = encode(t);
                let d2: i64 = probe
                    .code
                    .iter()
                    .zip(&code)
                    .map(|(&p, &c)| {
                        let d =
                            i64::from(p) - QUERY_SUBSTEPS * (i64::from(c) - i64::from(CODE_OFFSET));
                        d * d
                    })
                    .sum();
                assert_eq!(probe.key(&code, norm) + probe.norm, d2);
            }
        }
    }

    /// Rows built to sit where rounding hurts most: components on half
    /// steps, just inside the threshold; and rows with clipped components.
    #[test]
    fn quantisation_never_drops_a_true_neighbour() {
        let mut rng = Rng(31);
        let query: [f32; DIM] =
            std::array::from_fn(|_| ((rng.below(200) as f64 - 100.0) * STEP) as f32);
        let mut index = FaceIndex::new();
        let mut stored = Vec::new();
        for slot in 0..400u32 {
            // Every component on a half step of the grid, where rounding
            // is worst, the row about 0.3..0.9 from the query (which is on
            // the grid).
            let least = 2 + rng.below(9);
            let mut v: [f32; DIM] = std::array::from_fn(|i| {
                let steps = (least + rng.below(5)) as f64 + 0.5;
                let sign = if rng.next() & 1 == 0 { 1.0 } else { -1.0 };
                (f64::from(query[i]) + sign * steps * STEP) as f32
            });
            if slot % 10 == 0 {
                // Clipped: one component far beyond the code range.
                v[slot as usize % DIM] += 1.5;
            }
            if slot % 10 == 1 {
                v.iter_mut().for_each(|x| *x *= 1.8);
            }
            index.insert(slot, &v);
            stored.push(v);
        }
        assert!(!index.clipped.is_empty());
        assert!((GRID_ERROR - 0.5 * STEP * (DIM as f64).sqrt()).abs() < 1e-15);
        for r in [0.56, 0.58, 0.6, 0.62, 0.65] {
            let want = naive(numbered(&stored), &query, usize::MAX, r, |_| true);
            assert!(!want.is_empty());
            assert_eq!(index.within(&query, r), want);
            assert_eq!(index.search(&query, 1000, r), want);
            assert_eq!(index.search(&query, 5, r), want[..5.min(want.len())]);
        }
        // The exact neighbours of every stored row, whose codes are off by
        // up to half a step in every component.
        for q in stored.iter().step_by(13) {
            for r in [0.3, 0.6, 1.0] {
                assert_eq!(
                    index.within(q, r),
                    naive(numbered(&stored), q, usize::MAX, r, |_| true)
                );
            }
        }
        // Removing the clipped rows brings the margin back to the grid's.
        for slot in (0..400u32).filter(|s| s % 10 < 2) {
            index.remove(slot);
        }
        assert!(index.clipped.is_empty());
        assert_eq!(index.row_error(), GRID_ERROR);
    }

    #[test]
    fn bad_input() {
        let mut index = FaceIndex::new();
        assert_eq!(
            index.try_insert(1, &[0.0; 127]),
            Err(TemplateError::Length(127))
        );
        let mut v = [0.1f32; DIM];
        v[5] = f32::NAN;
        assert_eq!(index.try_insert(1, &v), Err(TemplateError::NotFinite(5)));
        assert!(index.is_empty());
        v[5] = 0.1;
        index.insert(1, &v);
        assert_eq!(index.search(&v, 0, 0.6), vec![]);
        assert_eq!(index.search(&v, 1, -0.1), vec![]);
        assert_eq!(index.search(&v, 1, f32::NAN), vec![]);
        assert_eq!(index.within(&v, f32::NAN), vec![]);
        let mut q = v;
        q[0] = f32::INFINITY;
        assert_eq!(index.search(&q, 1, f32::INFINITY), vec![]);
        // Far outside the code range still works, exactly.
        let big = [40.0f32; DIM];
        index.insert(2, &big);
        assert_eq!(index.search(&big, 1, 0.0), vec![(2, 0.0)]);
        assert_eq!(
            index.search(&[-40.0; DIM], 1, f32::INFINITY),
            vec![(1, distance(&[-40.0; DIM], &v))]
        );
    }

    #[test]
    #[should_panic(expected = "not 128")]
    fn a_short_query_panics() {
        FaceIndex::new().search(&[0.0; 100], 1, 0.6);
    }

    #[test]
    #[should_panic(expected = "not 128")]
    fn a_short_template_panics() {
        FaceIndex::new().insert(0, &[0.0; 129]);
    }

    #[test]
    fn distance_is_euclidean() {
        let mut rng = Rng(37);
        for _ in 0..200 {
            let a = rng.vector(0.3);
            let b = rng.vector(0.3);
            let exact = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!((f64::from(distance(&a, &b)) - exact).abs() < 1e-6 * (1.0 + exact));
        }
        assert_eq!(distance(&[3.0, 4.0], &[0.0, 0.0]), 5.0);
        assert_eq!(distance(&[1.0; 9], &[1.0; 9]), 0.0);
    }
}
