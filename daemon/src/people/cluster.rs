//! Clusters of unknown faces: density-based (DBSCAN), re-run over all of them.
//!
//! Input: the unknown faces, each a caller key (`K`, e.g. a face reference)
//! and its dlib descriptor, and [`ClusterParams`]. Output: [`cluster`] gives
//! the clusters, each its sorted members and which of them are core faces;
//! faces in no cluster are noise (they wait for more faces like them).
//! [`assign`] is the incremental step between two full runs: a new face joins
//! the cluster of its nearest core face, or waits for the next full run.
//! Failure modes: none; this module is pure (no I/O, no store). Descriptors of
//! different lengths are never neighbours, and a descriptor with a NaN is
//! nobody's neighbour: such a face is noise unless `min_faces` is 1.
//! Naming, merging, splitting and dismissing clusters are the caller's: it
//! keeps those decisions on the faces and leaves decided faces out of the
//! input.
//!
//! # Semantics
//!
//! Two faces are *neighbours* when the Euclidean distance of their
//! descriptors is below `max_distance` (strictly, as dlib's "same person
//! below 0.6"). A *core* face has at least `min_faces` neighbours **counting
//! itself**, which is Immich's `minFaces` (its search for a face's matches
//! finds the face itself, and `isCore = matches.length >= minFaces`): with
//! `min_faces = 3` a face is core when two other faces lie within
//! `max_distance`. Clusters are the connected components of core faces under
//! the neighbour relation; a non-core face with a core neighbour is a
//! *border* face and joins the cluster of its nearest core neighbour (on a
//! tie, the core face with the smallest key); every other face is noise.
//! Border faces never connect clusters, so two groups joined by a thin chain
//! of faces stay apart (single linkage would merge them).
//!
//! The result does not depend on the order of the input: points are sorted
//! by key first (then by descriptor, for duplicate keys), clusters come
//! sorted by their smallest member key, members and core faces sorted, and a
//! cluster's id ([`Cluster::id`]) is its smallest member key. Incremental
//! [`assign`]s do depend on arrival order (a face that arrives before its
//! cluster's core faces waits); the periodic full run removes that: its
//! result depends only on the set of faces.
//!
//! # Defaults and how they were chosen
//!
//! `max_distance = 0.5`, `min_faces = 3` (Immich's default `minFaces` too).
//! Measured with this engine (`consentry faces detect --json`: face-api SSD
//! detector, dlib ResNet descriptors) on
//! `faces/groups/dlib_bald_guys_collage.jpg` (24 faces, 6 each of four men)
//! and `faces/identities` (111 photos of 15 people, the largest face of each
//! photo). Distances: collage same-man max 0.594, different-men min 0.591
//! (Bruce Willis / Jason Statham), p1 0.615; identities same-person p95
//! 0.508, p99 0.568, max 0.676, different-people min 0.597 (John Simm /
//! Stuart), p1 0.697. The grid (the ignored test `measure_defaults` prints
//! it; mixed = clusters holding two people, coverage = share of faces in a
//! cluster, split = people spread over several clusters):
//!
//! ```text
//!                  |     collage (24 faces)    |  identities (111 faces)
//! max_dist min_fac | clusters mixed cover split | clusters mixed cover split
//! 0.400    2       |    6       0    0.79    2  |   17       0   0.883   2
//! 0.400    3       |    3       0    0.54    0  |   12       0   0.793   0
//! 0.400    4       |    2       0    0.42    0  |    9       0   0.703   0
//! 0.425    2       |    4       0    0.79    0  |   16       0   0.901   1
//! 0.425    3       |    4       0    0.79    0  |   13       0   0.847   0
//! 0.425    4       |    3       0    0.62    0  |   11       0   0.793   0
//! 0.450    2       |    4       0    0.83    0  |   15       0   0.937   0
//! 0.450    3       |    4       0    0.83    0  |   15       0   0.937   0
//! 0.450    4       |    4       0    0.83    0  |   11       0   0.811   0
//! 0.475    2       |    4       0    0.96    0  |   15       0   0.982   0
//! 0.475    3       |    4       0    0.96    0  |   15       0   0.982   0
//! 0.475    4       |    4       0    0.96    0  |   14       0   0.955   0
//! 0.500    2       |    4       0    1.00    0  |   15       0   0.991   0
//! 0.500    3       |    4       0    1.00    0  |   15       0   0.991   0  <- default
//! 0.500    4       |    4       0    1.00    0  |   15       0   0.991   0
//! 0.525    2..4    |    4       0    1.00    0  |   15       0   1.000   0
//! 0.550    2..4    |    4       0    1.00    0  |   15       0   1.000   0
//! 0.575    2..4    |    4       0    1.00    0  |   15       0   1.000   0
//! 0.600    2..3    |    3       1    1.00    0  |   14       1   1.000   0
//! 0.625    2..4    |    2       2    1.00    0  |   13       2   1.000   0
//! ```
//!
//! No cluster mixes two people anywhere from 0.40 to 0.575; from 0.6 the
//! collage's Bruce Willis and Jason Statham merge, and so do identities.
//! With `min_faces = 3`, every setting from 0.45 to 0.575 gives every person
//! of both sets exactly one cluster; 0.5 lies in the middle of that range.
//! The collage is fully covered; of the identities one photo
//! (`stuart/stuart5.png`) stays noise: its nearest face of Stuart is 0.523
//! away, its next nearest a John Simm face at 0.597. 0.525 would take it but
//! halve the margin to the nearest different-people pair (0.59), and that
//! margin matters more: a real bank holds far more people than these sets,
//! the lower tail of different-people distances reaches further down as
//! people are added, and a single core-to-core pair below `max_distance`
//! merges two people. A face left out is only delayed (the next full run, or
//! a person's suggestions); two people merged need a person to split them.
//! `min_faces = 3` rather than 2 keeps a lone pair of look-alikes from
//! founding a cluster and makes a chain need two close faces per link;
//! 4 drops coverage at lower distances and gains nothing here.
//!
//! # Cost
//!
//! O(n²) distances on rayon's global pool (the caller may `install` its own
//! pool around the call). Pass 1 measures each pair once, in tiles of rows
//! that stay in cache, counts neighbours and keeps each face's first 64 later
//! neighbours; pass 2 connects core faces from those, measuring again only
//! the rows of faces with more neighbours than that (and never a pair already
//! connected); pass 3 places the non-core faces that have a neighbour.
//! Memory: O(n), at most 512 bytes per face of kept neighbours. Measured on
//! one core of the 2-core development machine (release build, synthetic
//! 128-D faces): 10,000 faces in 0.7 s, 30,000 faces in 2,992 small clusters
//! in 6.0 s, 30,000 faces with one person holding 10,000 of them in 7.7 s;
//! two cores halve that. Unknown faces are purged after the retention
//! period, so n stays in the tens of thousands.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The default `max_distance` (see the module documentation for why).
pub const DEFAULT_MAX_DISTANCE: f32 = 0.5;
/// The default `min_faces` (see the module documentation for why).
pub const DEFAULT_MIN_FACES: usize = 3;

/// Rows measured against every later row by one task: they stay in cache
/// while the later rows stream past.
const TILE: usize = 32;
/// Later neighbours kept per row by the counting pass, so that connecting
/// core faces need not measure again (memory: at most 8 bytes each).
const KEPT: usize = 64;
/// Rows with more neighbours than kept, connected per step (tiles in
/// parallel): small enough that the pairs they connect are skipped by the
/// next step, large enough to keep the threads busy.
const BLOCK: usize = 8 * TILE;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusterParams {
    /// Two faces are neighbours when their descriptors are closer than this
    /// (Euclidean, strictly below). Not positive (or NaN): nobody is anybody's
    /// neighbour.
    pub max_distance: f32,
    /// A face is a core face when at least this many faces, itself included,
    /// are within `max_distance` (Immich's `minFaces`). 0 counts as 1: every
    /// face is core and founds a cluster.
    pub min_faces: usize,
}

impl Default for ClusterParams {
    fn default() -> Self {
        ClusterParams {
            max_distance: DEFAULT_MAX_DISTANCE,
            min_faces: DEFAULT_MIN_FACES,
        }
    }
}

/// One cluster of one full run. Never empty; always holds a core face.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster<K> {
    /// Every face of the cluster (core and border), sorted.
    pub members: Vec<K>,
    /// The core faces among `members`, sorted; [`assign`] joins new faces to
    /// these.
    pub core: Vec<K>,
}

impl<K: Ord> Cluster<K> {
    /// The cluster's id: its smallest member key. It changes when a face with
    /// a smaller key joins; a caller that keeps clusters across runs matches
    /// them by their members.
    pub fn id(&self) -> &K {
        &self.members[0]
    }

    pub fn is_core(&self, key: &K) -> bool {
        self.core.binary_search(key).is_ok()
    }

    /// The members that are not core faces, in key order.
    pub fn border(&self) -> impl Iterator<Item = &K> {
        self.members.iter().filter(|k| !self.is_core(k))
    }
}

/// Euclidean distance of two descriptors; infinite when their lengths differ.
pub fn distance(a: &[f32], b: &[f32]) -> f32 {
    squared_distance(a, b).sqrt()
}

/// Squared Euclidean distance, summed in a fixed order so that
/// `squared_distance(a, b)` and `squared_distance(b, a)` are the same bits.
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    // dlib's length, known to the compiler: unrolled and 2.5 times as fast
    // on plain x86-64 (SSE2); the same sums in the same order.
    if a.len() == 128 {
        return sum_of_squares(&a[..128], &b[..128]);
    }
    sum_of_squares(a, b)
}

/// Sixteen independent sums, so that the additions' latency does not limit;
/// `a` and `b` have the same length.
#[inline(always)]
fn sum_of_squares(a: &[f32], b: &[f32]) -> f32 {
    let (chunks_a, rest_a) = a.as_chunks::<16>();
    let (chunks_b, rest_b) = b.as_chunks::<16>();
    let mut acc = [0.0f32; 16];
    for (ca, cb) in chunks_a.iter().zip(chunks_b) {
        for lane in 0..16 {
            let d = ca[lane] - cb[lane];
            acc[lane] += d * d;
        }
    }
    let mut half = [0.0f32; 8];
    for lane in 0..8 {
        half[lane] = acc[lane] + acc[lane + 8];
    }
    let mut sum =
        ((half[0] + half[4]) + (half[1] + half[5])) + ((half[2] + half[6]) + (half[3] + half[7]));
    for (x, y) in rest_a.iter().zip(rest_b) {
        let d = x - y;
        sum += d * d;
    }
    sum
}

/// The squared-distance bound of `max_distance`: neighbours are strictly below it.
fn squared_limit(params: &ClusterParams) -> f32 {
    if params.max_distance > 0.0 {
        params.max_distance * params.max_distance
    } else {
        0.0
    }
}

/// A total order on descriptors (for duplicate keys only).
fn cmp_descriptors(a: &[f32], b: &[f32]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    })
}

/// Union-find over core positions, union by smaller root (so a component's
/// root is its smallest position, whatever the order of unions).
struct Components {
    parent: Vec<u32>,
}

impl Components {
    fn new(n: usize) -> Self {
        Components {
            parent: (0..n as u32).collect(),
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        let mut root = x;
        while self.parent[root as usize] != root {
            root = self.parent[root as usize];
        }
        while self.parent[x as usize] != root {
            let next = self.parent[x as usize];
            self.parent[x as usize] = root;
            x = next;
        }
        root
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        match ra.cmp(&rb) {
            Ordering::Less => self.parent[rb as usize] = ra,
            Ordering::Greater => self.parent[ra as usize] = rb,
            Ordering::Equal => {}
        }
    }
}

/// One density-based pass (DBSCAN) over all `points`; see the module
/// documentation for the semantics. Keys should be unique; a duplicate key is
/// a separate face. The result does not depend on the order of `points`.
pub fn cluster<K: Ord + Clone + Sync>(
    points: &[(K, &[f32])],
    params: &ClusterParams,
) -> Vec<Cluster<K>> {
    cluster_keeping(points, params, KEPT)
}

/// [`cluster`], keeping `kept` later neighbours per row (tests vary it).
fn cluster_keeping<K: Ord + Clone + Sync>(
    points: &[(K, &[f32])],
    params: &ClusterParams,
    kept: usize,
) -> Vec<Cluster<K>> {
    let n = points.len();
    if n == 0 {
        return Vec::new();
    }
    assert!(n < u32::MAX as usize, "too many faces to cluster: {n}");
    let limit = squared_limit(params);
    let min_faces = params.min_faces.max(1);

    let mut order: Vec<usize> = (0..n).collect();
    order.par_sort_unstable_by(|&a, &b| {
        points[a]
            .0
            .cmp(&points[b].0)
            .then_with(|| cmp_descriptors(points[a].1, points[b].1))
    });

    // Descriptors of one length at a time (in practice all are 128-D), each
    // group contiguous in key order; `label` is a cluster's smallest core
    // position in `order`.
    let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (position, &i) in order.iter().enumerate() {
        by_length
            .entry(points[i].1.len())
            .or_default()
            .push(position);
    }
    let mut label: Vec<Option<u32>> = vec![None; n];
    let mut is_core = vec![false; n];
    for (dim, positions) in by_length {
        let data: Vec<f32> = positions
            .iter()
            .flat_map(|&p| points[order[p]].1.iter().copied())
            .collect();
        let group = Group {
            data: &data,
            dim,
            len: positions.len(),
        };
        let (core, local) = group.dbscan(limit, min_faces, kept);
        for (k, &position) in positions.iter().enumerate() {
            is_core[position] = core[k];
            label[position] = local[k].map(|root| positions[root as usize] as u32);
        }
    }

    // Walk the faces in key order: clusters appear sorted by their smallest
    // member, and members come sorted.
    let mut slot_of_label: Vec<Option<usize>> = vec![None; n];
    let mut clusters: Vec<Cluster<K>> = Vec::new();
    for (position, l) in label.iter().enumerate() {
        let Some(l) = *l else { continue };
        let slot = *slot_of_label[l as usize].get_or_insert_with(|| {
            clusters.push(Cluster {
                members: Vec::new(),
                core: Vec::new(),
            });
            clusters.len() - 1
        });
        let key = &points[order[position]].0;
        clusters[slot].members.push(key.clone());
        if is_core[position] {
            clusters[slot].core.push(key.clone());
        }
    }
    clusters
}

/// What the counting pass keeps of one tile of rows.
struct Kept {
    /// (row, later row) neighbours, the first `kept` of each row.
    edges: Vec<(u32, u32)>,
    /// Rows with more later neighbours than kept, and their last kept one.
    overflow: Vec<(usize, usize)>,
}

/// Descriptors of one length, row after row, in key order.
struct Group<'a> {
    data: &'a [f32],
    dim: usize,
    len: usize,
}

impl Group<'_> {
    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Which rows are core, and each row's cluster as the smallest core row
    /// of its component (`None`: noise).
    fn dbscan(&self, limit: f32, min_faces: usize, kept: usize) -> (Vec<bool>, Vec<Option<u32>>) {
        let n = self.len;
        let near = |i: usize, j: usize| squared_distance(self.row(i), self.row(j)) < limit;

        // Pass 1: neighbour counts, itself included, each pair measured once;
        // a tile of rows stays in cache while every later row streams past
        // it. The first `kept` later neighbours of each row are kept as edges;
        // only a row with more is measured again in pass 2.
        let counts: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(1)).collect();
        let tiles: Vec<Kept> = (0..n.div_ceil(TILE))
            .into_par_iter()
            .map(|t| {
                let rows = t * TILE..(t * TILE + TILE).min(n);
                let mut later = [0u32; TILE];
                let mut last_kept: [usize; TILE] = std::array::from_fn(|r| rows.start + r);
                let mut edges = Vec::new();
                for (j, count) in counts.iter().enumerate().skip(rows.start + 1) {
                    let mut found = 0;
                    for i in rows.start..rows.end.min(j) {
                        if near(i, j) {
                            let r = i - rows.start;
                            if (later[r] as usize) < kept {
                                edges.push((i as u32, j as u32));
                                last_kept[r] = j;
                            }
                            later[r] += 1;
                            found += 1;
                        }
                    }
                    if found > 0 {
                        count.fetch_add(found, AtomicOrdering::Relaxed);
                    }
                }
                for i in rows.clone() {
                    counts[i].fetch_add(later[i - rows.start], AtomicOrdering::Relaxed);
                }
                let overflow = rows
                    .filter(|&i| later[i - t * TILE] as usize > kept)
                    .map(|i| (i, last_kept[i - t * TILE]))
                    .collect();
                Kept { edges, overflow }
            })
            .collect();
        let counts: Vec<u32> = counts.into_iter().map(AtomicU32::into_inner).collect();
        let is_core: Vec<bool> = counts.iter().map(|&c| c as usize >= min_faces).collect();
        let cores: Vec<usize> = (0..n).filter(|&i| is_core[i]).collect();
        let m = cores.len();
        let mut core_index = vec![u32::MAX; n];
        for (c, &i) in cores.iter().enumerate() {
            core_index[i] = c as u32;
        }

        // Pass 2: connect core rows. The kept edges first; then the core rows
        // with more neighbours than were kept, a block at a time, measured
        // against every core row after their last kept neighbour except those
        // already connected to them (before the block, or through a pair
        // measured earlier in the row).
        let mut components = Components::new(m);
        let mut rescan: Vec<(usize, usize)> = Vec::new();
        for Kept { edges, overflow } in tiles {
            for (i, j) in edges {
                let (a, b) = (core_index[i as usize], core_index[j as usize]);
                if a != u32::MAX && b != u32::MAX {
                    components.union(a, b);
                }
            }
            rescan.extend(
                overflow
                    .into_iter()
                    .filter(|&(i, _)| is_core[i])
                    .map(|(i, last)| {
                        let from = cores.partition_point(|&row| row <= last);
                        (core_index[i] as usize, from)
                    }),
            );
        }
        for block in rescan.chunks(BLOCK) {
            let roots: Vec<u32> = (0..m as u32).map(|c| components.find(c)).collect();
            let edges: Vec<(u32, u32)> = block
                .par_chunks(TILE)
                .flat_map_iter(|rows| {
                    let mut seen: Vec<Vec<u32>> =
                        rows.iter().map(|&(a, _)| vec![roots[a]]).collect();
                    let mut edges = Vec::new();
                    let first = rows.iter().map(|&(_, from)| from).min().unwrap_or(m);
                    for b in first..m {
                        let root = roots[b];
                        for (r, &(a, from)) in rows.iter().enumerate() {
                            if b >= from && !seen[r].contains(&root) && near(cores[a], cores[b]) {
                                seen[r].push(root);
                                edges.push((a as u32, b as u32));
                            }
                        }
                    }
                    edges
                })
                .collect();
            for (a, b) in edges {
                components.union(a, b);
            }
        }

        // Core rows label themselves; a non-core row with a core neighbour
        // takes its nearest (strictly nearer only: on a tie the smaller key).
        let mut label: Vec<Option<u32>> = vec![None; n];
        for (c, &i) in cores.iter().enumerate() {
            label[i] = Some(cores[components.find(c as u32) as usize] as u32);
        }
        let borders: Vec<(usize, u32)> = (0..n)
            .into_par_iter()
            .filter(|&i| !is_core[i] && counts[i] > 1)
            .filter_map(|i| {
                let mut best: Option<(f32, usize)> = None;
                for &j in &cores {
                    let d = squared_distance(self.row(i), self.row(j));
                    if d < limit && best.is_none_or(|(bd, _)| d < bd) {
                        best = Some((d, j));
                    }
                }
                best.map(|(_, j)| (i, j as u32))
            })
            .collect();
        for (i, j) in borders {
            label[i] = label[j as usize];
        }
        (is_core, label)
    }
}

/// The incremental step between two full runs: the index in `clusters` of the
/// cluster whose core face is nearest to `point` and within `max_distance`
/// (on a tie, the core face with the smallest key), or `None` (the face waits
/// for the next full run). `points_of` gives a core face's descriptor; `None`
/// (e.g. its template was purged since the run) leaves that face out.
pub fn assign<'p, K: Ord + Clone>(
    clusters: &[Cluster<K>],
    point: &[f32],
    points_of: impl Fn(&K) -> Option<&'p [f32]>,
    params: &ClusterParams,
) -> Option<usize> {
    let limit = squared_limit(params);
    let mut best: Option<(f32, &K, usize)> = None;
    for (index, cluster) in clusters.iter().enumerate() {
        for key in &cluster.core {
            let Some(vector) = points_of(key) else {
                continue;
            };
            let d = squared_distance(point, vector);
            if d >= limit || d.is_nan() {
                continue;
            }
            let better = match best {
                None => true,
                Some((bd, bk, _)) => d < bd || (d == bd && key < bk),
            };
            if better {
                best = Some((d, key, index));
            }
        }
    }
    best.map(|(_, _, index)| index)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const DIM: usize = 128;

    /// A 128-D descriptor with the given leading coordinates, the rest 0.
    fn v(coords: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; DIM];
        out[..coords.len()].copy_from_slice(coords);
        out
    }

    fn params(max_distance: f32, min_faces: usize) -> ClusterParams {
        ClusterParams {
            max_distance,
            min_faces,
        }
    }

    fn run<K: Ord + Clone + Sync>(
        points: &[(K, Vec<f32>)],
        params: &ClusterParams,
    ) -> Vec<Cluster<K>> {
        let refs: Vec<(K, &[f32])> = points
            .iter()
            .map(|(k, p)| (k.clone(), p.as_slice()))
            .collect();
        cluster(&refs, params)
    }

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// Uniform in [-1, 1).
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }

        fn shuffle<T>(&mut self, items: &mut [T]) {
            for i in (1..items.len()).rev() {
                items.swap(i, self.below(i + 1));
            }
        }
    }

    /// Blobs of points around random centres plus scattered outliers, on a
    /// coarse grid so that exact distance ties are common.
    fn blobs(rng: &mut Rng, n: usize) -> Vec<(u32, Vec<f32>)> {
        let centres: Vec<Vec<f32>> = (0..6)
            .map(|_| (0..4).map(|_| (rng.unit() * 8.0).round() * 0.5).collect())
            .collect();
        let mut keys: Vec<u32> = (0..n as u32).map(|k| k * 7 + 3).collect();
        rng.shuffle(&mut keys);
        keys.into_iter()
            .map(|key| {
                let coords: Vec<f32> = if rng.below(8) == 0 {
                    (0..4).map(|_| (rng.unit() * 16.0).round() * 0.25).collect()
                } else {
                    let centre = &centres[rng.below(centres.len())];
                    centre
                        .iter()
                        .map(|c| c + (rng.unit() * 3.0).round() * 0.25)
                        .collect()
                };
                (key, v(&coords))
            })
            .collect()
    }

    /// Textbook DBSCAN (neighbour lists, breadth-first expansion) with the
    /// same conventions, to check the blocked union-find against.
    fn reference(points: &[(u32, Vec<f32>)], params: &ClusterParams) -> Vec<Cluster<u32>> {
        let mut sorted = points.to_vec();
        sorted.sort_by_key(|a| a.0);
        let n = sorted.len();
        let limit = params.max_distance * params.max_distance;
        let d = |i: usize, j: usize| squared_distance(&sorted[i].1, &sorted[j].1);
        let within = |i: usize, j: usize| d(i, j) < limit;
        let neighbours: Vec<Vec<usize>> = (0..n)
            .map(|i| (0..n).filter(|&j| j != i && within(i, j)).collect())
            .collect();
        let core: Vec<bool> = (0..n)
            .map(|i| neighbours[i].len() + 1 >= params.min_faces)
            .collect();
        let mut label: Vec<Option<usize>> = vec![None; n];
        let mut next = 0;
        for i in 0..n {
            if !core[i] || label[i].is_some() {
                continue;
            }
            let mut queue = vec![i];
            label[i] = Some(next);
            while let Some(p) = queue.pop() {
                for &q in &neighbours[p] {
                    if core[q] && label[q].is_none() {
                        label[q] = Some(next);
                        queue.push(q);
                    }
                }
            }
            next += 1;
        }
        for i in 0..n {
            if core[i] {
                continue;
            }
            let nearest = neighbours[i]
                .iter()
                .filter(|&&j| core[j])
                .min_by(|&&a, &&b| d(i, a).total_cmp(&d(i, b)).then(a.cmp(&b)));
            label[i] = nearest.and_then(|&j| label[j]);
        }
        let mut by_label: BTreeMap<usize, Cluster<u32>> = BTreeMap::new();
        for i in 0..n {
            if let Some(l) = label[i] {
                let c = by_label.entry(l).or_insert_with(|| Cluster {
                    members: Vec::new(),
                    core: Vec::new(),
                });
                c.members.push(sorted[i].0);
                if core[i] {
                    c.core.push(sorted[i].0);
                }
            }
        }
        let mut out: Vec<Cluster<u32>> = by_label.into_values().collect();
        out.sort_by_key(|c| c.members[0]);
        out
    }

    #[test]
    fn empty_input_gives_no_clusters() {
        let points: Vec<(u32, &[f32])> = Vec::new();
        assert!(cluster(&points, &ClusterParams::default()).is_empty());
        assert_eq!(
            assign::<u32>(&[], &v(&[0.0]), |_| None, &ClusterParams::default()),
            None
        );
    }

    #[test]
    fn defaults_are_the_measured_ones() {
        let p = ClusterParams::default();
        assert_eq!((p.max_distance, p.min_faces), (0.5, 3));
    }

    #[test]
    fn core_border_and_noise() {
        let points = vec![
            ("a0", v(&[0.0, 0.0])),
            ("a1", v(&[0.5, 0.0])),
            ("a2", v(&[0.0, 0.5])),
            // 0.8 from a1 only: two neighbours counting itself, border.
            ("b", v(&[1.3, 0.0])),
            // Two faces near each other and nobody else: not enough for a core.
            ("n0", v(&[5.0, 5.0])),
            ("n1", v(&[5.2, 5.0])),
            ("n2", v(&[-9.0, 0.0])),
        ];
        let clusters = run(&points, &params(1.0, 3));
        assert_eq!(
            clusters,
            vec![Cluster {
                members: vec!["a0", "a1", "a2", "b"],
                core: vec!["a0", "a1", "a2"],
            }]
        );
        assert_eq!(clusters[0].id(), &"a0");
        assert!(clusters[0].is_core(&"a1"));
        assert_eq!(clusters[0].border().collect::<Vec<_>>(), vec![&"b"]);

        // Itself included: with min_faces 2 the pair n0/n1 is a cluster.
        let clusters = run(&points, &params(1.0, 2));
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[1].members, vec!["n0", "n1"]);
        assert_eq!(clusters[1].core, vec!["n0", "n1"]);
        // b now has two neighbours counting itself: core.
        assert!(clusters[0].is_core(&"b"));

        // min_faces 0 or 1: every face is core, a lone face its own cluster.
        for min_faces in [0, 1] {
            let clusters = run(&points, &params(1.0, min_faces));
            assert_eq!(clusters.len(), 3);
            assert_eq!(clusters[2].members, vec!["n2"]);
        }
    }

    #[test]
    fn distance_is_strictly_below_max_distance() {
        // Exactly 1.0 apart: not neighbours at max_distance 1.0.
        let points = vec![(1, v(&[0.0])), (2, v(&[1.0])), (3, v(&[2.0]))];
        assert!(run(&points, &params(1.0, 2)).is_empty());
        assert_eq!(run(&points, &params(1.001, 2)).len(), 1);
    }

    #[test]
    fn degenerate_parameters_and_descriptors() {
        let points = vec![(1, v(&[0.0])), (2, v(&[0.1])), (3, v(&[0.2]))];
        for max_distance in [0.0, -1.0, f32::NAN] {
            assert!(run(&points, &params(max_distance, 2)).is_empty());
        }
        // A NaN descriptor and one of another length are nobody's neighbours.
        let mut odd = points.clone();
        odd.push((4, v(&[f32::NAN])));
        odd.push((5, vec![0.0; 64]));
        let clusters = run(&odd, &params(1.0, 2));
        assert_eq!(clusters.len(), 1);
        assert_eq!(clusters[0].members, vec![1, 2, 3]);
        assert_eq!(distance(&[0.0; 3], &[0.0; 4]), f32::INFINITY);
    }

    #[test]
    fn distance_is_symmetric_and_the_same_for_every_length_path() {
        let mut rng = Rng(99);
        for len in [128, 127, 129, 16, 3, 0] {
            for _ in 0..50 {
                let a: Vec<f32> = (0..len).map(|_| rng.unit() * 0.2).collect();
                let b: Vec<f32> = (0..len).map(|_| rng.unit() * 0.2).collect();
                let d = squared_distance(&a, &b);
                assert_eq!(d.to_bits(), squared_distance(&b, &a).to_bits());
                // The general path, length unknown to the compiler.
                let general = sum_of_squares(std::hint::black_box(&a), std::hint::black_box(&b));
                assert_eq!(d.to_bits(), general.to_bits());
                let plain: f64 = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| f64::from(x - y).powi(2))
                    .sum();
                assert!(
                    (f64::from(d) - plain).abs() <= 1e-6 * plain.max(1e-3),
                    "{d} {plain}"
                );
            }
        }
    }

    /// Four faces around `x` (its own group), the first at `x` itself.
    fn group(keys: [u32; 4], x: f32, outward: f32) -> Vec<(u32, Vec<f32>)> {
        vec![
            (keys[0], v(&[x, 0.0])),
            (keys[1], v(&[x + outward * 0.5, 0.0])),
            (keys[2], v(&[x + outward * 0.3, 0.3])),
            (keys[3], v(&[x + outward * 0.3, -0.3])),
        ]
    }

    #[test]
    fn border_tie_goes_to_the_smallest_core_key() {
        // Left core at -0.9, right core at 0.9, the border face at 0: exactly
        // as far from both (and three neighbours counting itself: not core).
        let layout = |left: [u32; 4], right: [u32; 4]| {
            let mut points = group(left, -0.9, -1.0);
            points.extend(group(right, 0.9, 1.0));
            points.push((50, v(&[0.0, 0.0])));
            points
        };
        let p = params(1.0, 4);

        let clusters = run(&layout([10, 11, 12, 13], [20, 21, 22, 23]), &p);
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[0].members, vec![10, 11, 12, 13, 50]);
        assert_eq!(clusters[1].members, vec![20, 21, 22, 23]);

        let clusters = run(&layout([20, 21, 22, 23], [10, 11, 12, 13]), &p);
        assert_eq!(clusters[0].members, vec![10, 11, 12, 13, 50]);
        assert_eq!(clusters[1].members, vec![20, 21, 22, 23]);

        // Not a tie: the nearer core wins over the smaller key.
        let mut points = layout([10, 11, 12, 13], [20, 21, 22, 23]);
        points.last_mut().expect("border").1 = v(&[0.05, 0.0]);
        let clusters = run(&points, &p);
        assert_eq!(clusters[0].members, vec![10, 11, 12, 13]);
        assert_eq!(clusters[1].members, vec![20, 21, 22, 23, 50]);
        // The cluster's id is its smallest member, a border face here.
        let mut points = layout([10, 11, 12, 13], [20, 21, 22, 23]);
        points.last_mut().expect("border").0 = 1;
        let clusters = run(&points, &p);
        assert_eq!(clusters[0].id(), &1);
        assert_eq!(clusters[0].core, vec![10, 11, 12, 13]);
    }

    #[test]
    fn a_chain_of_non_core_faces_does_not_merge_two_groups() {
        // Group A ends at 0, group B starts at 4.0; chain faces every 0.8 in
        // between, each with two neighbours (three counting itself).
        let mut points = group([1, 2, 3, 4], 0.0, -1.0);
        points.extend(group([11, 12, 13, 14], 4.0, 1.0));
        for (step, key) in (1..5).zip(21..) {
            points.push((key, v(&[0.8 * step as f32, 0.0])));
        }
        let clusters = run(&points, &params(1.0, 4));
        assert_eq!(clusters.len(), 2);
        // The chain's ends are border faces of their groups, the middle noise.
        assert_eq!(clusters[0].members, vec![1, 2, 3, 4, 21]);
        assert_eq!(clusters[0].core, vec![1, 2, 3, 4]);
        assert_eq!(clusters[1].members, vec![11, 12, 13, 14, 24]);
        assert_eq!(clusters[1].core, vec![11, 12, 13, 14]);

        // When the chain faces are core (min_faces 3) it is one cluster: the
        // density, not the distance alone, keeps the groups apart.
        let clusters = run(&points, &params(1.0, 3));
        assert_eq!(clusters.len(), 1);
        assert_eq!(clusters[0].members.len(), 12);
    }

    #[test]
    fn the_result_does_not_depend_on_the_input_order() {
        let mut rng = Rng(0x5eed_cafe);
        let mut points = blobs(&mut rng, 300);
        for p in [params(0.6, 3), params(0.9, 4), params(0.5, 2)] {
            let first = run(&points, &p);
            assert!(first.len() > 1, "{p:?}: {} clusters", first.len());
            for _ in 0..40 {
                rng.shuffle(&mut points);
                assert_eq!(run(&points, &p), first, "{p:?}");
            }
        }
    }

    #[test]
    fn duplicate_keys_do_not_make_the_result_order_dependent() {
        let mut points = vec![
            (1, v(&[0.0])),
            (1, v(&[0.3])),
            (2, v(&[0.1])),
            (3, v(&[0.6])),
            (3, v(&[9.0])),
        ];
        let first = run(&points, &params(0.5, 2));
        let mut rng = Rng(7);
        for _ in 0..20 {
            rng.shuffle(&mut points);
            assert_eq!(run(&points, &params(0.5, 2)), first);
        }
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].members, vec![1, 1, 2, 3]);
    }

    #[test]
    fn agrees_with_textbook_dbscan() {
        // More faces than one tile and (with few neighbours kept) more rows to
        // measure again than one block.
        let mut totals = (0, 0, 0);
        for seed in 1..=6u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let points = blobs(&mut rng, 150 + 40 * seed as usize);
            for p in [
                params(0.6, 3),
                params(0.8, 5),
                params(0.4, 2),
                params(1.2, 6),
            ] {
                let clusters = run(&points, &p);
                assert_eq!(clusters, reference(&points, &p), "seed {seed}, {p:?}");
                // Rows with more neighbours than kept are measured again.
                let refs: Vec<(u32, &[f32])> =
                    points.iter().map(|(k, x)| (*k, x.as_slice())).collect();
                for kept in [0, 1, 5] {
                    assert_eq!(cluster_keeping(&refs, &p, kept), clusters, "kept {kept}");
                }
                let members: usize = clusters.iter().map(|c| c.members.len()).sum();
                let core: usize = clusters.iter().map(|c| c.core.len()).sum();
                totals.0 += usize::from(clusters.len() > 1);
                totals.1 += members - core;
                totals.2 += points.len() - members;
            }
        }
        // The cases exercised several clusters, border faces and noise.
        assert!(totals.0 > 10 && totals.1 > 0 && totals.2 > 0, "{totals:?}");
    }

    #[test]
    fn assign_joins_the_nearest_core_face_within_max_distance() {
        let mut points = group([10, 11, 12, 13], -0.9, -1.0);
        points.extend(group([20, 21, 22, 23], 0.9, 1.0));
        // A border face of the right group.
        points.push((30, v(&[2.2, 0.0])));
        let p = params(1.0, 4);
        let clusters = run(&points, &p);
        assert_eq!(clusters.len(), 2);
        assert!(!clusters[1].is_core(&30));
        assert!(clusters[1].members.contains(&30));
        let map: BTreeMap<u32, Vec<f32>> = points.iter().cloned().collect();
        let of = |k: &u32| map.get(k).map(Vec::as_slice);

        assert_eq!(assign(&clusters, &v(&[-1.0, 0.1]), of, &p), Some(0));
        assert_eq!(assign(&clusters, &v(&[0.2, 0.0]), of, &p), Some(1));
        // Equally far from both groups' nearest cores: the smaller core key.
        assert_eq!(assign(&clusters, &v(&[0.0, 0.0]), of, &p), Some(0));
        // Near a border face only (0.8 from 30, 1.6 from core 21): waits.
        assert_eq!(assign(&clusters, &v(&[3.0, 0.0]), of, &p), None);
        // Far from everyone: waits.
        assert_eq!(assign(&clusters, &v(&[9.0, 9.0]), of, &p), None);
        // A core face whose template is gone is left out.
        let without_10 = |k: &u32| if *k == 10 { None } else { of(k) };
        assert_eq!(assign(&clusters, &v(&[0.0, 0.0]), without_10, &p), Some(1));
        // Strictly below max_distance, as in a full run.
        assert_eq!(assign(&clusters, &v(&[-1.4, 0.0, 1.0]), of, &p), None);
        assert_eq!(
            assign(&clusters, &v(&[-1.4, 0.0, 1.0]), of, &params(1.001, 4)),
            Some(0)
        );
        assert_eq!(assign(&clusters, &v(&[f32::NAN]), of, &p), None);
    }

    #[test]
    fn assign_breaks_ties_by_core_key_not_cluster_order() {
        // The left cluster comes first (its border face 1 is the smallest
        // member), but the right one holds the smaller core key.
        let mut points = group([30, 31, 32, 33], -0.9, -1.0);
        points.push((1, v(&[-2.2, 0.0])));
        points.extend(group([20, 21, 22, 23], 0.9, 1.0));
        let p = params(1.0, 4);
        let clusters = run(&points, &p);
        assert_eq!(clusters[0].id(), &1);
        assert_eq!(clusters[0].core, vec![30, 31, 32, 33]);
        assert_eq!(clusters[1].core, vec![20, 21, 22, 23]);
        let map: BTreeMap<u32, Vec<f32>> = points.iter().cloned().collect();
        let of = |k: &u32| map.get(k).map(Vec::as_slice);
        assert_eq!(assign(&clusters, &v(&[0.0, 0.0]), of, &p), Some(1));
        assert_eq!(assign(&clusters, &v(&[-0.05, 0.0]), of, &p), Some(0));
    }

    // ---- Measurement on real descriptors (see the module documentation) ----

    /// Where each man's faces are in `faces/groups/dlib_bald_guys_collage.jpg`
    /// (box centres, image pixels).
    const COLLAGE: &[(&str, [(f32, f32); 6])] = &[
        (
            "vin_diesel",
            [
                (145.0, 140.0),
                (639.0, 164.0),
                (381.0, 289.0),
                (138.0, 449.0),
                (647.0, 494.0),
                (150.0, 1359.0),
            ],
        ),
        (
            "jason_statham",
            [
                (392.0, 100.0),
                (953.0, 170.0),
                (396.0, 505.0),
                (957.0, 470.0),
                (143.0, 760.0),
                (507.0, 912.0),
            ],
        ),
        (
            "the_rock",
            [
                (1593.0, 235.0),
                (1875.0, 484.0),
                (1691.0, 753.0),
                (1169.0, 1381.0),
                (1510.0, 1392.0),
                (1867.0, 1381.0),
            ],
        ),
        (
            "bruce_willis",
            [
                (1149.0, 825.0),
                (860.0, 886.0),
                (131.0, 1042.0),
                (1187.0, 1131.0),
                (461.0, 1321.0),
                (854.0, 1311.0),
            ],
        ),
    ];

    struct Labelled {
        key: String,
        label: String,
        embedding: Vec<f32>,
    }

    /// One face of a `faces detect --json` line: box centre, box area, descriptor.
    struct Detected {
        centre: (f32, f32),
        area: f32,
        embedding: Vec<f32>,
    }

    fn faces_of(line: &str) -> (String, Vec<Detected>) {
        let record: serde_json::Value =
            serde_json::from_str(line).expect("faces detect --json line");
        let file = record["file"].as_str().expect("file").to_string();
        let faces = record["faces"]
            .as_array()
            .expect("faces")
            .iter()
            .map(|face| {
                let b = &face["box"];
                let get = |k: &str| b[k].as_f64().expect("box") as f32;
                let embedding = face["embedding"]
                    .as_array()
                    .expect("embedding")
                    .iter()
                    .map(|x| x.as_f64().expect("number") as f32)
                    .collect();
                Detected {
                    centre: (
                        get("x") + get("width") / 2.0,
                        get("y") + get("height") / 2.0,
                    ),
                    area: get("width") * get("height"),
                    embedding,
                }
            })
            .collect();
        (file, faces)
    }

    fn load_collage(path: &str) -> Vec<Labelled> {
        let text = std::fs::read_to_string(path).expect("collage JSON lines");
        let (file, faces) = faces_of(text.lines().next().expect("one line"));
        faces
            .into_iter()
            .enumerate()
            .map(|(no, face)| {
                let (cx, cy) = face.centre;
                let (label, d) = COLLAGE
                    .iter()
                    .flat_map(|(man, centres)| centres.iter().map(move |c| (man, c)))
                    .map(|(man, (x, y))| (man, ((cx - x).powi(2) + (cy - y).powi(2)).sqrt()))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .expect("labels");
                assert!(
                    d < 40.0,
                    "face {no} of {file} at ({cx}, {cy}) is not one of the 24"
                );
                Labelled {
                    key: format!("{no:02}"),
                    label: label.to_string(),
                    embedding: face.embedding,
                }
            })
            .collect()
    }

    fn load_identities(path: &str) -> Vec<Labelled> {
        std::fs::read_to_string(path)
            .expect("identities JSON lines")
            .lines()
            .filter_map(|line| {
                let (file, faces) = faces_of(line);
                let label = file
                    .rsplit('/')
                    .nth(1)
                    .expect("identity folder")
                    .to_string();
                let largest = faces.into_iter().max_by(|a, b| a.area.total_cmp(&b.area))?;
                Some(Labelled {
                    key: file,
                    label,
                    embedding: largest.embedding,
                })
            })
            .collect()
    }

    /// (clusters, clusters mixing two labels, coverage, labels split over clusters)
    fn score(faces: &[Labelled], params: &ClusterParams) -> (usize, usize, f32, usize) {
        let refs: Vec<(&str, &[f32])> = faces
            .iter()
            .map(|f| (f.key.as_str(), f.embedding.as_slice()))
            .collect();
        let clusters = cluster(&refs, params);
        let label: BTreeMap<&str, &str> = faces
            .iter()
            .map(|f| (f.key.as_str(), f.label.as_str()))
            .collect();
        let mut mixed = 0;
        let mut clusters_of: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &clusters {
            let mut labels: Vec<&str> = c.members.iter().map(|k| label[k]).collect();
            labels.dedup();
            labels.sort();
            labels.dedup();
            mixed += usize::from(labels.len() > 1);
            for l in labels {
                *clusters_of.entry(l).or_default() += 1;
            }
        }
        let covered: usize = clusters.iter().map(|c| c.members.len()).sum();
        let split = clusters_of.values().filter(|&&n| n > 1).count();
        (
            clusters.len(),
            mixed,
            covered as f32 / faces.len() as f32,
            split,
        )
    }

    fn distances(faces: &[Labelled]) -> String {
        let (mut same, mut other) = (Vec::new(), Vec::new());
        for (i, a) in faces.iter().enumerate() {
            for b in &faces[i + 1..] {
                let d = distance(&a.embedding, &b.embedding);
                if a.label == b.label {
                    same.push(d)
                } else {
                    other.push(d)
                }
            }
        }
        let q = |xs: &mut Vec<f32>, p: f32| {
            xs.sort_by(f32::total_cmp);
            xs[((xs.len() - 1) as f32 * p).round() as usize]
        };
        format!(
            "same: max {:.3} p99 {:.3} p95 {:.3}; different: min {:.3} p1 {:.3}",
            q(&mut same, 1.0),
            q(&mut same, 0.99),
            q(&mut same, 0.95),
            q(&mut other, 0.0),
            q(&mut other, 0.01)
        )
    }

    /// `consentry faces detect --json` output of the collage and of every
    /// identity photo, in `CONSENTRY_CLUSTER_COLLAGE` and
    /// `CONSENTRY_CLUSTER_IDENTITIES`; prints the grid of the module
    /// documentation and checks the defaults against the acceptance criteria:
    ///
    /// ```text
    /// T=../shared/testdata/faces
    /// consentry faces detect --json $T/groups/dlib_bald_guys_collage.jpg > /tmp/collage.jsonl
    /// consentry faces detect --json $(find $T/identities -type f | sort) > /tmp/identities.jsonl
    /// CONSENTRY_CLUSTER_COLLAGE=/tmp/collage.jsonl CONSENTRY_CLUSTER_IDENTITIES=/tmp/identities.jsonl \
    ///     cargo test -p consentry-daemon --lib measure_defaults -- --ignored --nocapture
    /// ```
    #[test]
    #[ignore = "needs descriptors from `consentry faces detect --json`"]
    fn measure_defaults() {
        let collage = load_collage(
            &std::env::var("CONSENTRY_CLUSTER_COLLAGE").expect("CONSENTRY_CLUSTER_COLLAGE"),
        );
        let identities = load_identities(
            &std::env::var("CONSENTRY_CLUSTER_IDENTITIES").expect("CONSENTRY_CLUSTER_IDENTITIES"),
        );
        assert_eq!(collage.len(), 24);
        println!("collage ({} faces): {}", collage.len(), distances(&collage));
        println!(
            "identities ({} faces): {}",
            identities.len(),
            distances(&identities)
        );
        println!(
            "max_distance min_faces | collage: clusters mixed coverage split | identities: clusters mixed coverage split"
        );
        for step in 0..=10 {
            let max_distance = 0.4 + 0.025 * step as f32;
            for min_faces in 2..=5 {
                let p = params(max_distance, min_faces);
                let (cn, cm, cc, cs) = score(&collage, &p);
                let (inn, im, ic, is) = score(&identities, &p);
                println!(
                    "{max_distance:.3}        {min_faces}         | {cn:2} {cm} {cc:.2} {cs} | {inn:2} {im} {ic:.3} {is}"
                );
            }
        }

        let p = ClusterParams::default();
        assert_eq!(score(&collage, &p), (4, 0, 1.0, 0));
        let (clusters, mixed, coverage, split) = score(&identities, &p);
        assert_eq!((clusters, mixed, split), (15, 0, 0));
        assert!(coverage > 0.98, "coverage {coverage}");
        let refs: Vec<(&str, &[f32])> = identities
            .iter()
            .map(|f| (f.key.as_str(), f.embedding.as_slice()))
            .collect();
        let noise: Vec<&str> = {
            let clusters = cluster(&refs, &p);
            refs.iter()
                .map(|r| r.0)
                .filter(|k| !clusters.iter().any(|c| c.members.contains(k)))
                .collect()
        };
        println!("identities left as noise at the defaults: {noise:?}");

        // Two ingest orders: faces arrive one by one, join a cluster through
        // `assign` or wait, with a full run every 20 faces and at the end.
        let ingest = |seed: u64| {
            let mut order = refs.clone();
            Rng(seed).shuffle(&mut order);
            let of = |k: &&str| refs.iter().find(|r| r.0 == *k).map(|r| r.1);
            let mut arrived: Vec<(&str, &[f32])> = Vec::new();
            let mut clusters = Vec::new();
            let mut assigned = 0;
            for (n, face) in order.iter().enumerate() {
                if assign(&clusters, face.1, of, &p).is_some() {
                    assigned += 1;
                }
                arrived.push(*face);
                if n % 20 == 19 {
                    clusters = cluster(&arrived, &p);
                }
            }
            println!("seed {seed}: {assigned} faces joined a cluster between full runs");
            cluster(&arrived, &p)
        };
        assert_eq!(ingest(1), ingest(2));
    }
}
