//! The arena plan: offsets for tensors and scratch from their lifetimes (host side, at export).
//!
//! Placing intervals with sizes so that the peak equals the liveness lower bound is the dynamic
//! storage allocation problem, NP-hard in general; no greedy order reaches the bound on every
//! graph. We try several greedy orders (first fit and best fit, each by size, by start, by
//! lifetime and by size*lifetime) and keep the smallest arena. `finish` records both the arena
//! and the lower bound in the file, so any gap is visible (`Model::liveness_lower_bound_bytes`).

#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)] // host-side code, not the inference path

/// One block to place: `words` live from step `start` to step `end`, both inclusive.
#[derive(Debug, Clone, Copy)]
pub struct Block {
    pub words: usize,
    pub start: usize,
    pub end: usize,
}

/// Offsets (in words) for each block, the arena size, and the liveness lower bound.
pub struct Plan {
    pub offsets: Vec<usize>,
    pub arena_words: usize,
    pub lower_bound_words: usize,
}

/// The largest sum of blocks live at the same step.
pub fn lower_bound(blocks: &[Block]) -> usize {
    let steps = blocks.iter().map(|b| b.end + 1).max().unwrap_or(0);
    (0..steps).map(|s| blocks.iter().filter(|b| b.start <= s && s <= b.end).map(|b| b.words).sum()).max().unwrap_or(0)
}

fn place(blocks: &[Block], order: &[usize], best_fit: bool) -> (Vec<usize>, usize) {
    let mut offsets = vec![usize::MAX; blocks.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut top = 0;
    for &i in order {
        let b = blocks[i];
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| blocks[j].start <= b.end && b.start <= blocks[j].end)
            .map(|&j| (offsets[j], offsets[j] + blocks[j].words))
            .collect();
        busy.sort_unstable();
        let (mut cursor, mut best): (usize, Option<(usize, usize)>) = (0, None);
        for &(lo, hi) in &busy {
            if lo >= cursor + b.words {
                let gap = lo - cursor;
                if best.is_none_or(|(_, g)| gap < g) {
                    best = Some((cursor, gap));
                }
                if !best_fit {
                    break;
                }
            }
            cursor = cursor.max(hi);
        }
        let at = match best {
            Some((at, _)) => at,
            None => cursor,
        };
        offsets[i] = at;
        top = top.max(at + b.words);
        placed.push(i);
    }
    (offsets, top)
}

/// Perturbed orders tried after the simple ones when the bound is not reached (each try is
/// O(blocks^2); a few hundred cost well under a second for a cell network).
const RANDOM_ORDERS: usize = 512;

/// A sort key for placement orders.
type OrderKey = &'static dyn Fn(&Block) -> (usize, usize);

/// Plans the arena: the best of several greedy placements.
pub fn plan(blocks: &[Block]) -> Plan {
    let lower_bound_words = lower_bound(blocks);
    let keys: [OrderKey; 4] = [
        &|b| (usize::MAX - b.words, b.start),
        &|b| (b.start, usize::MAX - b.words),
        &|b| (usize::MAX - (b.end - b.start), usize::MAX - b.words),
        &|b| (usize::MAX - b.words * (b.end - b.start + 1), b.start),
    ];
    let mut best: Option<(Vec<usize>, usize)> = None;
    let mut orders: Vec<Vec<usize>> = keys
        .iter()
        .map(|key| {
            let mut order: Vec<usize> = (0..blocks.len()).collect();
            order.sort_by_key(|&i| key(&blocks[i]));
            order
        })
        .collect();
    // Then perturbed copies of the size order (a deterministic xorshift), for graphs where no
    // simple order reaches the bound.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for r in 0..RANDOM_ORDERS {
        let mut order = orders[r % 2].clone();
        for i in 1..order.len() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if seed.is_multiple_of(2 + (r as u64 / 2) % 4) {
                let j = (seed >> 32) as usize % (i + 1);
                order.swap(j, i);
            }
        }
        orders.push(order);
    }
    for order in &orders {
        for best_fit in [false, true] {
            let (offsets, top) = place(blocks, order, best_fit);
            if best.as_ref().is_none_or(|(_, t)| top < *t) {
                best = Some((offsets, top));
            }
        }
        if best.as_ref().is_some_and(|(_, t)| *t == lower_bound_words) {
            break;
        }
    }
    let (offsets, arena_words) = best.unwrap_or_default();
    Plan { offsets, arena_words, lower_bound_words }
}
