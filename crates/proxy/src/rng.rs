//! A fast, non-cryptographic random number generator per thread, for weighted target-group
//! picks and generated request IDs.
//!
//! Neither use needs unpredictability: a weighted split only needs uniform draws, and Lattice's
//! request IDs are identifiers, not secrets. What matters on the request path is that a draw
//! costs a few nanoseconds, takes no lock and makes no system call, which rules out `getrandom`
//! per request and a shared generator behind a mutex. The generator is wyrand (64-bit state,
//! passes BigCrush and PractRand), seeded per thread from the standard library's randomly keyed
//! `RandomState`.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

/// A seed that differs between threads and processes: every `RandomState` is keyed randomly.
fn seed() -> u64 {
    RandomState::new().hash_one(std::thread::current().id())
}

/// The next 64 random bits of this thread's generator.
pub(crate) fn next_u64() -> u64 {
    STATE.with(|state| {
        let x = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(x);
        let t = u128::from(x).wrapping_mul(u128::from(x ^ 0xe703_7ed1_a0b4_28db));
        ((t >> 64) ^ t) as u64
    })
}

/// A uniformly distributed `u32` (the input of `WeightedGroups::pick`).
pub(crate) fn next_u32() -> u32 {
    (next_u64() >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_and_cover_the_range() {
        let draws: Vec<u32> = (0..1000).map(|_| next_u32()).collect();
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(distinct.len() > 990, "{} distinct draws", distinct.len());
        // Each quarter of the range gets a share: a broken generator stuck in a corner fails.
        for quarter in 0..4u32 {
            let n = draws.iter().filter(|d| *d >> 30 == quarter).count();
            assert!((150..350).contains(&n), "quarter {quarter}: {n}");
        }
    }

    #[test]
    fn threads_get_different_sequences() {
        let here: Vec<u64> = (0..4).map(|_| next_u64()).collect();
        let there = std::thread::spawn(|| (0..4).map(|_| next_u64()).collect::<Vec<u64>>())
            .join()
            .unwrap();
        assert_ne!(here, there);
    }
}
