//! Summary: the counts of one (group, pane, category) — exact until it is *cut*, then a
//! Misra–Gries summary that keeps, per item, how far its count may be from the true one.
//! Pure: no I/O.
//!
//! Every item added is held in a counter of its own: while nothing is cut, the counts are
//! exact. A *cut* (asked for by the pane's memory budget, see the module above, or by the
//! `window.max_items` cap) is a Misra–Gries purge: with `cut` the total taken so far, each
//! counter's Misra–Gries count is `count + since − cut`; the median m of those is added to
//! `cut`, and the counters whose Misra–Gries count falls to zero — at least half of them — are
//! dropped. Unlike a plain Misra–Gries summary, the counters kept are not lowered: each keeps
//! `count`, the exact number of occurrences since it was created, and `since`, the value of
//! `cut` at its creation. Then:
//!
//! - `count` is never above the item's true count, and at most `since` below it: an item not
//!   held had occurred at most `cut` times (the Misra–Gries bound), so a counter created when
//!   the cut was `since` missed at most `since` occurrences. Items held from before the first
//!   cut have `since` = 0: their counts stay exact, whatever is cut later;
//! - an item not held occurred at most [`Summary::error`] = `cut` times;
//! - `cut` ≤ 2n / s, n being the occurrences added and s the fewest counters the summary held
//!   when it was cut: a cut at median m takes m from at least half of the s Misra–Gries
//!   counts, whose sum never exceeds n;
//! - a cut drops at least half of the counters, so its O(s) work is paid for by the s / 2
//!   items added since the summary last had s counters;
//! - the contents depend only on the sequence of additions and cuts, never on the hasher's
//!   seed or on the map's iteration order (the median of a multiset of counts is one number),
//!   so replaying the same records after a crash rebuilds the same summary.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// The hasher of the window maps: foldhash, fast on short keys, with a seed drawn at random
/// once per process (and varied per map), so colliding keys cannot be prepared from public
/// text as they could for an unseeded hash.
pub type RandomState = foldhash::fast::RandomState;

/// What a counter is charged against the memory budget, besides its item's length in bytes:
/// a slot of the map is 24 bytes (the boxed item, `count`, `since`) and a control byte, and
/// the map holds at most 7 counters per 8 slots, at least 7 per 16 just after it grew, so at
/// most 25 × 16 / 7 < 58 bytes a counter; the item's own allocation is its length rounded up
/// to the allocator's 8-byte size class. 64 + length is an upper bound of both together.
pub const COUNTER_BYTES: usize = 64;

/// One item's counter.
#[derive(Debug, Clone, Copy)]
struct Counter {
    /// Occurrences since the counter was created: exact.
    count: u32,
    /// The summary's `cut` when the counter was created: the most occurrences it missed.
    since: u32,
}

/// Counts of the items of one (group, pane, category).
#[derive(Debug, Clone)]
pub struct Summary<S = RandomState> {
    counters: HashMap<Box<str>, Counter, S>,
    /// Counters held at most: a new item arriving at a summary this full cuts it first. (A
    /// `u32` keeps the summary as small as before it counted bytes: there is one per category
    /// per group and pane.)
    capacity: u32,
    /// Total taken by the cuts: 0 while the counts are exact.
    cut: u32,
    /// What the counters held are charged against the memory budget.
    bytes: usize,
}

impl Summary {
    /// An empty summary of at most `capacity` counters (at least one).
    pub fn new(capacity: usize) -> Self {
        Self::with_hasher(capacity, RandomState::default())
    }
}

/// The charge of an item's counter.
fn charge(item: &str) -> usize {
    COUNTER_BYTES + item.len()
}

impl<S: BuildHasher> Summary<S> {
    pub fn with_hasher(capacity: usize, hasher: S) -> Self {
        Summary {
            counters: HashMap::with_hasher(hasher),
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX).max(1),
            cut: 0,
            bytes: 0,
        }
    }

    /// Counts one occurrence of `item`.
    pub fn add(&mut self, item: &str) {
        if let Some(c) = self.counters.get_mut(item) {
            c.count += 1;
            return;
        }
        if self.counters.len() >= self.capacity as usize {
            self.cut();
        }
        self.counters.insert(
            item.into(),
            Counter {
                count: 1,
                since: self.cut,
            },
        );
        self.bytes += charge(item);
    }

    /// Takes the median Misra–Gries count and drops the counters it brings to zero: at least
    /// half of them. Returns the bytes freed.
    pub fn cut(&mut self) -> usize {
        if self.counters.is_empty() {
            return 0;
        }
        // Misra–Gries counts: `count + since − cut`, at least 1 for every counter held.
        let mut counts: Vec<u32> = self
            .counters
            .values()
            .map(|c| c.count + c.since - self.cut)
            .collect();
        let middle = counts.len() / 2;
        let median = *counts.select_nth_unstable(middle).1;
        let cut = self.cut + median;
        let mut freed = 0;
        self.counters.retain(|item, c| {
            let keep = c.count + c.since > cut;
            if !keep {
                freed += charge(item);
            }
            keep
        });
        self.cut = cut;
        self.bytes -= freed;
        freed
    }

    /// The most a count may be below its item's true count, and the most an item not held
    /// may have occurred: 0 while the counts are exact.
    pub fn error(&self) -> u32 {
        self.cut
    }

    /// Counters held.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// What the counters held are charged against the memory budget.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The count of `item` and the most it may be below the true one: `(0, error)` when the
    /// item is not held.
    pub fn estimate(&self, item: &str) -> (u32, u32) {
        self.counters
            .get(item)
            .map_or((0, self.cut), |c| (c.count, c.since))
    }

    /// The items held with their counts and the most each may be below the true one, in no
    /// particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32, u32)> + '_ {
        self.counters
            .iter()
            .map(|(item, c)| (&**item, c.count, c.since))
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

    fn sorted<S: BuildHasher>(summary: &Summary<S>) -> Vec<(String, u32, u32)> {
        let mut all: Vec<_> = summary
            .iter()
            .map(|(i, n, e)| (i.to_owned(), n, e))
            .collect();
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
    fn counts_are_exact_until_it_is_cut() {
        let items = zipf_stream(2, 10_000, 5_000);
        let mut summary = Summary::new(usize::MAX);
        items.iter().for_each(|i| summary.add(i));
        let want = exact(&items);
        assert_eq!(summary.error(), 0);
        assert_eq!(summary.len(), want.len());
        for (item, n, error) in summary.iter() {
            assert_eq!((n, error), (want[item], 0), "{item}");
        }
        let charged: usize = want.keys().map(|i| COUNTER_BYTES + i.len()).sum();
        assert_eq!(summary.bytes(), charged);
    }

    #[test]
    fn a_cut_drops_at_least_half_and_frees_what_it_charged() {
        let mut summary = Summary::new(usize::MAX);
        zipf_stream(5, 5_000, 2_000)
            .iter()
            .for_each(|i| summary.add(i));
        let (len, bytes) = (summary.len(), summary.bytes());
        let freed = summary.cut();
        assert!(summary.len() <= len / 2 + 1, "{} of {len}", summary.len());
        assert_eq!(summary.bytes(), bytes - freed);
        let charged: usize = summary.iter().map(|(i, ..)| COUNTER_BYTES + i.len()).sum();
        assert_eq!(summary.bytes(), charged);
    }

    #[test]
    fn over_capacity_each_count_is_within_its_own_error_and_the_first_items_stay_exact() {
        let capacity = 50;
        let mut items = zipf_stream(3, 50_000, 100_000);
        // The first item and one in every twenty: far more frequent than anything in the tail.
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
        // Held from the start, never cut: exact.
        assert_eq!(summary.estimate("hot"), (want["hot"], 0));
        for (item, &n) in &want {
            let (estimate, own) = summary.estimate(item);
            assert!(own <= error);
            assert!(
                estimate <= n && n - estimate <= own,
                "{item}: estimate {estimate}, true {n}, error {own}"
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
        let order = |s: &Summary<Seeded>| s.iter().map(|(i, ..)| i.to_owned()).collect::<Vec<_>>();
        assert_ne!(order(&a), order(&b));
        // ...and hold the same counts.
        assert!(a.error() > 0, "the stream overflows the summaries");
        assert_eq!(sorted(&a), sorted(&b));
        assert_eq!(sorted(&a), sorted(&c));
        assert_eq!((a.error(), a.error()), (b.error(), c.error()));
    }
}
