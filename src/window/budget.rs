//! Budget: what a partition's windows may keep, and the cuts that hold each pane to its share.
//! Pure, like the rest of the window: a pane is charged and cut only from its own records, in
//! offset order, so a replay rebuilds it exactly.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{PartitionWindows, WindowSpec};

/// How much window state a partition may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bytes of counters per partition, each charged [`super::COUNTER_BYTES`] + the length
    /// of its item.
    pub memory: usize,
    /// Counters per (group, pane, category) at most, whatever the memory.
    pub max_items: usize,
    /// Groups with data in one pane at most: a record of another group in a full pane is not
    /// counted ([`super::Placement::Overflow`]). A partition holds at most this many groups
    /// per pane it holds, so its memory is bounded whatever the keys.
    pub max_groups: usize,
}

impl Budget {
    /// No bound at this scale: every count exact.
    pub const UNBOUNDED: Budget = Budget {
        memory: usize::MAX,
        max_items: usize::MAX,
        max_groups: usize::MAX,
    };

    /// The budget `config` sets.
    pub fn of(config: &crate::config::Config) -> Budget {
        Budget {
            memory: config.memory_budget_bytes(),
            max_items: config.window().max_items,
            max_groups: config.window().max_groups,
        }
    }

    /// The bytes of counters each pane may hold: the memory over the most panes held at once.
    pub fn pane_bytes(&self, spec: &WindowSpec) -> usize {
        self.memory / spec.live_panes().max(1) as usize
    }
}

impl PartitionWindows {
    /// Charges a pane with what a record changed of its counters (`before` → `after` bytes),
    /// and cuts it when that brings it over its budget.
    pub(super) fn charge(&mut self, pane: i64, before: usize, after: usize) {
        let index = self
            .panes
            .get_mut(&pane)
            .expect("the record's pane is held");
        // The group's counters are among the pane's: `before` ≤ `index.bytes`. (The
        // `max_items` cap may have freed more than the record added.)
        index.bytes = index.bytes - before + after;
        if index.bytes > index.cut_above {
            self.cut_pane(pane);
        }
    }

    /// Cuts the largest summaries of a pane, the largest first (ties: by group key, category), until its counters take at most seven eighths of the pane budget. Summaries
    /// of `top_k` counters or fewer are left alone: when only those remain, the pane stays over
    /// its budget and is cut again only after growing by another eighth of it.
    fn cut_pane(&mut self, pane: i64) {
        let index = self.panes.get_mut(&pane).expect("the pane is held");
        let target = self.pane_bytes - self.pane_bytes / 8;
        let floor = self.top_k;
        let mut largest = BinaryHeap::new();
        for key in &index.groups {
            let counts = self.groups[key]
                .get(pane)
                .expect("a group of the pane holds it");
            for (category, summary) in counts.items.iter().enumerate() {
                if summary.len() > floor {
                    largest.push((summary.len(), Reverse((key.clone(), category))));
                }
            }
        }
        while index.bytes > target {
            let Some((_, Reverse((key, category)))) = largest.pop() else {
                break;
            };
            let counts = self
                .groups
                .get_mut(&key)
                .and_then(|panes| panes.get_mut(pane))
                .expect("a group of the pane holds it");
            let summary = &mut counts.items[category];
            index.bytes -= summary.cut();
            if summary.len() > floor {
                largest.push((summary.len(), Reverse((key, category))));
            }
        }
        index.cut_above = if index.bytes <= self.pane_bytes {
            self.pane_bytes
        } else {
            index.bytes + self.pane_bytes / 8
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{feed, SPEC};
    use super::*;
    use crate::extract::Category;

    #[test]
    fn a_pane_over_its_budget_cuts_its_largest_summary_and_says_by_how_much() {
        // Eight panes held at most: 8 KiB a pane, about 115 counters.
        let budget = Budget {
            memory: 64 << 10,
            max_items: usize::MAX,
            max_groups: usize::MAX,
        };
        assert_eq!(budget.pane_bytes(&SPEC), 8 << 10);
        let mut w = PartitionWindows::new(0, SPEC, 5, budget);
        let mut closed = Vec::new();
        for i in 0..2_000 {
            // A quiet group of ten items, and a busy one: a heavy item every fourth record,
            // the rest all different.
            let quiet = format!("q{}", i % 10);
            closed.extend(feed(&mut w, "quiet", 1, &[&quiet]).1);
            let busy = if i % 4 == 0 {
                "hot".to_owned()
            } else {
                format!("tail{i}")
            };
            closed.extend(feed(&mut w, "busy", 1, &[&busy]).1);
            assert!(w.fullest_pane_bytes() <= 8 << 10, "record {i}");
        }
        closed.extend(feed(&mut w, "quiet", 10_000, &[]).1);
        let first = |group: &str| closed.iter().find(|c| &*c.group == group).unwrap();
        let quiet = first("quiet");
        assert_eq!(
            quiet.error,
            [0; Category::COUNT],
            "the small summary is not cut"
        );
        assert!(quiet.lists()[0].iter().all(|(_, n)| *n == 200));
        let busy = first("busy");
        assert!(busy.error[0] > 0 && busy.error[0] <= 2 * 2_000 / 5);
        // Held from the start, the heavy item keeps its exact count.
        assert_eq!(busy.lists()[0][0], ("hot", 500));
        assert!(busy.lists()[0][1..].iter().all(|(_, n)| *n == 1));
    }

    #[test]
    fn a_partition_never_holds_more_panes_than_the_budget_is_shared_by() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        for spec in [
            SPEC,
            WindowSpec {
                out_of_orderness: 0,
                ..SPEC
            },
            WindowSpec {
                out_of_orderness: 37,
                ..SPEC
            },
        ] {
            let mut w = PartitionWindows::new(0, spec, 5, Budget::UNBOUNDED);
            let mut most = 0;
            for i in 0..5_000 {
                // Mostly advancing, out of order by up to twice the out-of-orderness, some
                // far behind.
                let t = i * 3
                    - rng.random_range(0..=2 * spec.out_of_orderness + 1)
                    - if rng.random_bool(0.05) { 70 } else { 0 };
                let mut closed = Vec::new();
                w.record("g", t, i, |c| c.add(Category::Term, "x"), &mut closed);
                most = most.max(w.panes.len() as i64);
                assert!(most <= spec.live_panes(), "{spec:?}: {most} panes");
            }
            assert!(
                most >= spec.live_panes() - 1,
                "{spec:?}: at most {most} panes"
            );
        }
    }
}
