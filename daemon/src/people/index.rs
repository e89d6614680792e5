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
//! How: every template is kept twice. The scan reads only a compact copy,
//! each component rounded to a grid of step [`STEP`] (1/160) and stored as an
//! `i8` (±127 steps, ±0.79), with its squared norm: 132 bytes a template. The
//! query goes on a grid 16 times finer (`i16`). The scan computes, in exact
//! integer arithmetic, the distance d̃ between the two rounded vectors
//! (`i16 × i8` dot products, which the compiler turns into `pmaddwd` and its
//! wider kin) and keeps the rows that may qualify; those are then measured
//! exactly on the `f32` copy (512 bytes a template) and sorted.
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
//! them is measured exactly, so the result is that of the exact scan.
//!
//! Memory, per template: 512 B (`f32` copy) + 128 B (codes) + 4 B (norm) +
//! 4 B (slot) + about 10 B (slot → row map) ≈ 660 B, so 1 M templates take
//! about 0.66 GB ([`FaceIndex::memory_bytes`]). The `f32` copy is 78 % of
//! that; the re-rank reads only a few rows per query and could read them from
//! the caller instead, but the index keeps them so that a search needs no
//! I/O and [`FaceIndex::get`] serves "search from an existing face".
//!
//! SIMD: the workspace forbids `unsafe_code`, and calling a
//! `#[target_feature]` function after run-time detection needs `unsafe`, so
//! the kernel is written as 16 independent `i32` lanes that LLVM vectorises
//! for whatever the crate is compiled for ([`simd_path`]): SSE2 `pmaddwd`
//! on the default x86-64 target, AVX2 or AVX-512 with `-C target-cpu`. Small
//! indexes are scanned on the calling thread; from [`PARALLEL_MIN_ROWS`] on,
//! the scan is split into chunks on the rayon pool.
//!
//! Speed (`cargo bench -p consentry-daemon --bench search`, 2-core Xeon,
//! SSE2 build, 2 rayon threads, k = 20 within 0.6, p50 / p95 of 200 queries):
//! 10 k: 0.13 / 0.17 ms; 100 k: 1.0 / 1.5 ms; 1 M: 8.9 / 12 ms
//! (`within(0.5)` the same). A plain serial scan of the `f32` copies takes
//! 7.8 ms at 100 k, 78 ms at 1 M.
//!
//! When an ANN index would be needed: the scan is memory-bound and linear,
//! about 9 ms per million templates on these two cores. It crosses the
//! 20 ms budget near 2.2 M templates (the `f32` copies alone are then
//! 1.1 GB of RAM and the whole index 1.5 GB), and one query occupies both
//! cores, so it serves at most about 100 queries a second at 1 M. Beyond
//! about 2 M faces, or when searches must run at more than ~50 a second
//! beside ingest (batch clustering of every face against every other at 1 M
//! is 1 M scans, about 2.5 hours), an approximate index (HNSW over the
//! `i8` codes, or IVF with a few hundred lists) is needed; it gives up the
//! guarantee that no neighbour within the threshold is missed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use rayon::prelude::*;

/// Components of a face template (dlib's descriptor).
pub const DIM: usize = 128;

/// Caller's handle for a stored template (the caller maps it to a face).
pub type Slot = u32;

/// Grid step of the stored codes: `i8` codes cover ±127 steps (±0.79).
pub const STEP: f64 = 1.0 / 160.0;

/// Indexes with at least this many templates are scanned in parallel.
pub const PARALLEL_MIN_ROWS: usize = 50_000;

/// The query's grid is this many times finer than [`STEP`].
const QUERY_SUBSTEPS: i64 = 16;
const QUERY_STEP: f64 = STEP / QUERY_SUBSTEPS as f64;
const CODE_MAX: f64 = 127.0;
const QUERY_CODE_MAX: f64 = i16::MAX as f64;
/// Rows per parallel scan task (1 MiB of codes).
const CHUNK_ROWS: usize = 8_192;
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
    assert_eq!(a.len(), b.len(), "distance between vectors of different lengths");
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
    /// Per row: components rounded to [`STEP`].
    codes: Vec<[i8; DIM]>,
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
        self.row_of.get(&slot).map(|&row| self.rows[row as usize].as_slice())
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
        self.codes.capacity() * size_of::<[i8; DIM]>()
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
            .map_or(GRID_ERROR, |(&bits, _)| f64::from_bits(bits).max(GRID_ERROR))
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
    fn candidates<F>(&self, probe: &Probe, k: Option<usize>, max_distance: f32, keep: &F) -> Vec<Candidate>
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
            scan(probe, &limits, &self.codes, &self.norms, &self.slots, 0, keep)
        };
        if let Some(k) = k {
            prune(probe, &limits, k, &mut found);
        }
        found
    }

    /// Exact distances of `candidates` within `max_distance`, sorted by
    /// (distance, slot).
    fn measure(&self, query: &[f32], candidates: &[Candidate], max_distance: f32) -> Vec<(Slot, f32)> {
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
fn encode(v: &[f32; DIM]) -> ([i8; DIM], i32, f64) {
    let mut code = [0i8; DIM];
    let mut norm = 0i32;
    let mut error2 = 0f64;
    for (c, &x) in code.iter_mut().zip(v) {
        let x = f64::from(x);
        let q = (x / STEP).round().clamp(-CODE_MAX, CODE_MAX);
        *c = q as i8;
        norm += i32::from(*c) * i32::from(*c);
        error2 += (x - q * STEP) * (x - q * STEP);
    }
    (code, norm, error2.sqrt())
}

/// A query rounded to the finer grid.
struct Probe {
    code: [i16; DIM],
    /// Σ code².
    norm: i64,
    /// ‖query − code·QUERY_STEP‖.
    error: f64,
}

impl Probe {
    /// `None` if a component is not finite. Panics if the length is wrong.
    fn new(query: &[f32]) -> Option<Probe> {
        assert_eq!(query.len(), DIM, "a face query has {} values, not {DIM}", query.len());
        let mut code = [0i16; DIM];
        let mut norm = 0i64;
        let mut error2 = 0f64;
        for (c, &x) in code.iter_mut().zip(query) {
            if !x.is_finite() {
                return None;
            }
            let x = f64::from(x);
            let q = (x / QUERY_STEP).round().clamp(-QUERY_CODE_MAX, QUERY_CODE_MAX);
            *c = q as i16;
            norm += i64::from(*c) * i64::from(*c);
            error2 += (x - q * QUERY_STEP) * (x - q * QUERY_STEP);
        }
        Some(Probe { code, norm, error: error2.sqrt() })
    }

    /// The scan key of a row: d̃² in `QUERY_STEP²` units, less the query's
    /// own Σ code² (the same for every row, so left out of the scan).
    #[inline]
    fn key(&self, code: &[i8; DIM], norm: i32) -> i64 {
        let s = QUERY_SUBSTEPS;
        s * s * i64::from(norm) - 2 * s * i64::from(dot(&self.code, code))
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
        probe.key_limit(r + 2.0 * self.eps + guard(r)).min(self.radius)
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
    codes: &[[i8; DIM]],
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
    let mut cap = limits.k.map_or(usize::MAX, |k| k.saturating_mul(4).max(256));
    for (i, ((code, &norm), &slot)) in codes.iter().zip(norms).zip(slots).enumerate() {
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
/// `pmaddwd` (SSE2) or its AVX2/AVX-512 forms. Cannot overflow:
/// |Σ| ≤ 128 · 32767 · 127 < 2³¹.
#[inline]
fn dot(q: &[i16; DIM], x: &[i8; DIM]) -> i32 {
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
fn dot_reference(q: &[i16; DIM], x: &[i8; DIM]) -> i32 {
    q.iter().zip(x).fold(0, |sum, (&p, &y)| sum + i32::from(p) * i32::from(y))
}
