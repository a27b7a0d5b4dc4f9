//! Summary: the frequent items of one (group, pane, category) in bounded memory — a
//! Misra–Gries summary with a batched purge. Pure: no I/O.
//!
//! A summary holds at most `capacity` counters. An item already held is counted exactly; a new
//! item arriving at a full summary first triggers a *purge*: the median count m of the
//! counters is subtracted from every counter, the counters that reach zero are removed, and m
//! is added to [`Summary::error`]. Then:
//!
//! - an estimate is never above its item's true count, and at most `error` below it (an item
//!   not held occurred at most `error` times);
//! - `error` ≤ 2n / capacity, n being the occurrences added: a purge takes m from at least
//!   half of the counters, so it removes at least m · capacity / 2 occurrences;
//! - a purge removes at least half of the counters, so its O(capacity) work is paid for by the
//!   capacity / 2 new items it makes room for: O(1) per occurrence, amortised;
//! - the contents depend only on the sequence of additions, never on the hasher's seed or on
//!   the map's iteration order (the median of a multiset of counts is one number), so replaying
//!   the same records after a crash rebuilds the same summary.
//!
//! With fewer than `capacity` distinct items nothing is ever purged: the counts are exact.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// The hasher of the window maps: foldhash, fast on short keys, with a seed drawn at random
/// once per process (and varied per map), so colliding keys cannot be prepared from public
/// text as they could for an unseeded hash.
pub type RandomState = foldhash::fast::RandomState;

/// Counts of the frequent items of one (group, pane, category).
#[derive(Debug, Clone)]
pub struct Summary<S = RandomState> {
    counts: HashMap<Box<str>, u32, S>,
    capacity: usize,
    error: u32,
}

impl Summary {
    /// An empty summary of at most `capacity` counters (at least one).
    pub fn new(capacity: usize) -> Self {
        Self::with_hasher(capacity, RandomState::default())
    }
}

impl<S: BuildHasher> Summary<S> {
    pub fn with_hasher(capacity: usize, hasher: S) -> Self {
        Summary {
            counts: HashMap::with_hasher(hasher),
            capacity: capacity.max(1),
            error: 0,
        }
    }

    /// Counts one occurrence of `item`.
    pub fn add(&mut self, item: &str) {
        if let Some(n) = self.counts.get_mut(item) {
            *n += 1;
            return;
        }
        if self.counts.len() >= self.capacity {
            self.purge();
        }
        self.counts.insert(item.into(), 1);
    }

    /// Subtracts the median count from every counter and drops those that reach zero: at
    /// least half of them.
    fn purge(&mut self) {
        let mut counts: Vec<u32> = self.counts.values().copied().collect();
        let middle = counts.len() / 2;
        let median = *counts.select_nth_unstable(middle).1;
        self.counts.retain(|_, n| {
            *n = n.saturating_sub(median);
            *n > 0
        });
        self.error += median;
    }

    /// The most an estimate may be below its item's true count: 0 while the counts are exact.
    pub fn error(&self) -> u32 {
        self.error
    }

    /// Counters held, at most the capacity.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The estimated count of `item`: 0 when it is not held.
    pub fn estimate(&self, item: &str) -> u32 {
        self.counts.get(item).copied().unwrap_or(0)
    }

    /// The items held with their estimated counts, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> + '_ {
        self.counts.iter().map(|(item, &n)| (&**item, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// `n` occurrences from a long tail: item `i` with probability ∝ 1 / (i + 1), over
    /// `distinct` items.
    fn zipf_stream(seed: u64, n: usize, distinct: u32) -> Vec<String> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut total = 0.0;
        let cumulative: Vec<f64> = (0..distinct)
            .map(|i| {
                total += 1.0 / f64::from(i + 1);
                total
            })
            .collect();
        (0..n)
            .map(|_| {
                let u = rng.random::<f64>() * total;
                format!("w{}", cumulative.partition_point(|&c| c <= u))
            })
            .collect()
    }

    fn exact(items: &[String]) -> HashMap<&str, u32> {
        let mut counts = HashMap::new();
        for item in items {
            *counts.entry(item.as_str()).or_default() += 1;
        }
        counts
    }

    fn sorted<S: BuildHasher>(summary: &Summary<S>) -> Vec<(String, u32)> {
        let mut all: Vec<(String, u32)> = summary.iter().map(|(i, n)| (i.to_owned(), n)).collect();
        all.sort();
        all
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let mut summary = Summary::new(64);
        for (i, item) in zipf_stream(1, 20_000, 5_000).iter().enumerate() {
            summary.add(item);
            assert!(
                summary.len() <= 64,
                "{} counters after {i} items",
                summary.len()
            );
        }
        assert!(summary.error() > 0, "the stream overflows the summary");
    }

    #[test]
    fn counts_are_exact_with_fewer_distinct_items_than_its_capacity() {
        let items = zipf_stream(2, 10_000, 99);
        let mut summary = Summary::new(100);
        items.iter().for_each(|i| summary.add(i));
        let want = exact(&items);
        assert_eq!(summary.error(), 0);
        assert_eq!(summary.len(), want.len());
        for (item, n) in summary.iter() {
            assert_eq!(n, want[item], "{item}");
        }
    }

    #[test]
    fn a_heavy_hitter_in_a_long_tail_is_kept_within_the_error_bound() {
        let capacity = 50;
        let mut items = zipf_stream(3, 50_000, 100_000);
        // One item in every twenty: far more frequent than anything in the tail.
        for i in (0..items.len()).step_by(20) {
            items[i] = "hot".to_owned();
        }
        let mut summary = Summary::new(capacity);
        items.iter().for_each(|i| summary.add(i));
        let want = exact(&items);
        let error = summary.error();
        assert!(error > 0, "the tail overflows the summary");
        assert!(
            error as usize <= 2 * items.len() / capacity,
            "error {error} above 2n/C"
        );
        assert!(summary.estimate("hot") > 0, "the heavy hitter is held");
        for (item, &n) in &want {
            let estimate = summary.estimate(item);
            assert!(
                estimate <= n && n - estimate <= error,
                "{item}: estimate {estimate}, true {n}, error {error}"
            );
        }
    }

    /// SipHash with a chosen seed.
    #[derive(Clone, Copy)]
    struct Seeded(u64);

    impl BuildHasher for Seeded {
        type Hasher = std::collections::hash_map::DefaultHasher;

        fn build_hasher(&self) -> Self::Hasher {
            use std::hash::Hasher;
            let mut hasher = Self::Hasher::new();
            hasher.write_u64(self.0);
            hasher
        }
    }

    #[test]
    fn the_state_does_not_depend_on_the_hasher_seed() {
        let items = zipf_stream(4, 30_000, 20_000);
        let mut a = Summary::with_hasher(100, Seeded(1));
        let mut b = Summary::with_hasher(100, Seeded(2));
        let mut c = Summary::new(100);
        for item in &items {
            a.add(item);
            b.add(item);
            c.add(item);
        }
        // The maps really are laid out differently...
        let order = |s: &Summary<Seeded>| s.iter().map(|(i, _)| i.to_owned()).collect::<Vec<_>>();
        assert_ne!(order(&a), order(&b));
        // ...and hold the same counts.
        assert!(a.error() > 0, "the stream overflows the summaries");
        assert_eq!(sorted(&a), sorted(&b));
        assert_eq!(sorted(&a), sorted(&c));
        assert_eq!((a.error(), a.error()), (b.error(), c.error()));
    }
}
