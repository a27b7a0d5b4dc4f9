//! Window: event-time sliding windows per group key, for the records of one partition (of
//! one stream). Pure: values in, closed windows out.
//!
//! Windows are `[window_start, window_start + width)` with `window_start` a multiple of
//! `slide` (aligned to the epoch). Counts are kept per *pane* — one slide of event time — and a
//! window is the sum of its `width / slide` panes, so a record updates one pane however many
//! windows it belongs to.
//!
//! The watermark is the highest event time seen on the partition minus the out-of-orderness.
//! Every window whose `window_end` is at or below the watermark is closed, at the record that
//! moves the watermark past it, so the results do not depend on how records are batched. A
//! record is *late* for a window that had closed before it arrived: it still counts in the
//! windows of its that are open, and is dropped when all of them have closed. A pane is freed
//! when the last window that holds it closes; a group is freed with its last pane.
//!
//! # Bounded memory
//!
//! Each (group, pane) keeps, per category, a [`Summary`]: one counter per distinct item, so
//! the counts are exact. What the counters take is charged to their pane (the pane of all the
//! partition's groups), against a *pane budget*: the partition's memory budget shared by the
//! most panes a partition can hold at once ([`Budget::pane_bytes`]). When a record brings its
//! pane over the budget, the pane's largest summaries are cut (a Misra–Gries purge that keeps
//! per-item errors, see [`Summary`]) until the pane is back under seven eighths of it; the
//! budget never cuts a summary of `top_k` counters or fewer. A pane's contents depend only on
//! the records added to it, in offset order: replaying a partition rebuilds them exactly.
//!
//! A window's count of an item is the sum over its panes; [`ClosedWindow::error`] says, per
//! category, the most a listed count may be below the true one: 0 when no pane of the window
//! was cut (or the listed items were held from the start of every pane that was).

mod budget;
mod summary;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use hashbrown::hash_map::EntryRef;

use crate::extract::Category;

pub use budget::Budget;
pub use summary::{Summary, COUNTER_BYTES};

/// The maps of this module hash with [`summary::RandomState`]: keys are attacker-controlled.
type Map<K, V> = HashMap<K, V, summary::RandomState>;

/// Index of a stream in the configured list of enabled streams.
pub type StreamId = u16;

/// Width, slide and out-of-orderness, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub width: i64,
    pub slide: i64,
    pub out_of_orderness: i64,
}

impl WindowSpec {
    /// The most panes a partition holds at once: those of the open windows (`width / slide`)
    /// and those the out-of-orderness keeps ahead of them, plus one.
    pub fn live_panes(&self) -> i64 {
        self.width / self.slide + (self.out_of_orderness + self.slide - 1) / self.slide + 1
    }

    fn pane_start(&self, event_time: i64) -> i64 {
        event_time.div_euclid(self.slide) * self.slide
    }

    /// The latest window end at or below `watermark`.
    fn closable_end(&self, watermark: i64) -> i64 {
        watermark.div_euclid(self.slide) * self.slide
    }
}

/// Counts of one (group, pane).
#[derive(Debug, Clone)]
pub struct Counts {
    /// Messages in the pane.
    pub messages: u64,
    /// Bit `i` set once an item of the [`Category`] of index `i` was counted: a window's merge
    /// looks only at the categories that hold something.
    present: u8,
    /// Per [`Category`].
    items: [Summary; Category::COUNT],
}

impl Counts {
    /// Empty counts of at most `max_items` items per category.
    pub fn new(max_items: usize) -> Self {
        Counts {
            messages: 0,
            present: 0,
            items: std::array::from_fn(|_| Summary::new(max_items)),
        }
    }

    /// Counts `item` once more under `category`.
    pub fn add(&mut self, category: Category, item: &str) {
        self.present |= 1 << category.index();
        self.items[category.index()].add(item);
    }

    /// What the counters take, as charged against the budget.
    pub fn bytes(&self) -> usize {
        self.items.iter().map(Summary::bytes).sum()
    }
}

/// The counts of a group's panes, by pane start, ascending: at most
/// [`WindowSpec::live_panes`], mostly added at the back and freed at the front. Boxed: most
/// groups hold data in one or two panes.
#[derive(Debug, Default)]
struct Panes(VecDeque<(i64, Box<Counts>)>);

impl Panes {
    /// Where the pane starting at `start` is, or would be.
    fn find(&self, start: i64) -> Result<usize, usize> {
        self.0.binary_search_by_key(&start, |&(s, _)| s)
    }

    fn get(&self, start: i64) -> Option<&Counts> {
        self.find(start).ok().map(|at| &*self.0[at].1)
    }

    fn get_mut(&mut self, start: i64) -> Option<&mut Counts> {
        self.find(start).ok().map(|at| &mut *self.0[at].1)
    }

    /// The panes starting in `[start, end)`, by start.
    fn range(&self, start: i64, end: i64) -> impl Iterator<Item = (i64, &Counts)> {
        let from = self.0.partition_point(|&(s, _)| s < start);
        self.0
            .range(from..)
            .take_while(move |&&(s, _)| s < end)
            .map(|(s, c)| (*s, &**c))
    }

    fn starts(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().map(|&(s, _)| s)
    }

    fn remove(&mut self, start: i64) {
        if let Ok(at) = self.find(start) {
            self.0.remove(at);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How a record was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Every window of the record was still open.
    OnTime,
    /// Some windows of the record had closed: it counts in the open ones only.
    PartlyLate,
    /// All windows of the record had closed: it is not counted.
    Dropped,
    /// Its pane holds `max_groups` other groups already ([`Budget::max_groups`]): it is not
    /// counted, and does not move the watermark.
    Overflow { max_groups: usize },
}

/// A closed window of one group: its top items per category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedWindow {
    pub stream: StreamId,
    pub group: Arc<str>,
    pub window_start: i64,
    pub window_end: i64,
    pub messages: u64,
    /// Top-K `(item, count)` per [`Category`]: see [`ClosedWindow::top`].
    lists: Lists,
    /// Per [`Category`], the most a listed count may be below the true one (counts are never
    /// above it): 0 when they are exact.
    pub error: [u64; Category::COUNT],
}

impl ClosedWindow {
    /// The top-K `(item, count)` of `category`, by count descending then item ascending.
    pub fn top(&self, category: Category) -> List<'_> {
        let Lists { text, items, ends } = &self.lists;
        let c = category.index();
        let first = if c == 0 { 0 } else { ends[c - 1] };
        List {
            text,
            from: first.checked_sub(1).map_or(0, |last| items[last].0),
            items: &items[first..ends[c]],
        }
    }
}

#[cfg(test)]
impl ClosedWindow {
    /// Every category's list, by [`Category::index`].
    pub fn lists(&self) -> Vec<Vec<(&str, u64)>> {
        Category::ALL.map(|c| self.top(c).collect()).into()
    }
}

/// The top-K lists of every category of a window in two allocations (a window has many
/// short items): their text one after another, and per item where its text ends and its
/// count, category after category.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Lists {
    text: String,
    items: Vec<(usize, u64)>,
    /// Where each category's items end in `items`.
    ends: [usize; Category::COUNT],
}

impl Lists {
    fn push(&mut self, item: &str, count: u64) {
        self.text.push_str(item);
        self.items.push((self.text.len(), count));
    }

    /// Ends the list of `category`: every earlier category's list is ended already.
    fn end(&mut self, category: usize) {
        self.ends[category] = self.items.len();
    }
}

/// One category's top-K `(item, count)` of a [`ClosedWindow`].
#[derive(Debug, Clone, Copy)]
pub struct List<'a> {
    text: &'a str,
    /// Where the next item's text starts.
    from: usize,
    items: &'a [(usize, u64)],
}

impl<'a> Iterator for List<'a> {
    type Item = (&'a str, u64);

    fn next(&mut self) -> Option<Self::Item> {
        let (&(end, count), rest) = self.items.split_first()?;
        let item = &self.text[self.from..end];
        (self.from, self.items) = (end, rest);
        Some((item, count))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.items.len(), Some(self.items.len()))
    }
}

impl ExactSizeIterator for List<'_> {}

/// Window state of one partition.
#[derive(Debug)]
pub struct PartitionWindows {
    /// The stream of the partition: its closed windows carry it.
    stream: StreamId,
    spec: WindowSpec,
    top_k: usize,
    budget: Budget,
    /// What the counters of each pane may take.
    pane_bytes: usize,
    /// Highest event time seen.
    max_event_time: Option<i64>,
    /// Every window ending at or before this has closed.
    closed_end: Option<i64>,
    /// Open panes of each group, by group key, then pane start.
    groups: hashbrown::HashMap<Arc<str>, Panes, summary::RandomState>,
    /// The groups holding data in each pane, by pane start.
    panes: BTreeMap<i64, Pane>,
}

/// Which groups hold data in a pane, the first offset that put data there, and what the
/// pane's counters take.
#[derive(Debug, Default)]
struct Pane {
    /// Each once, in the order they first put data in the pane (offset order).
    groups: Vec<Arc<str>>,
    first_offset: Option<i64>,
    /// Bytes charged for the counters of every group in the pane.
    bytes: usize,
    /// Bytes above which the pane is cut next: the pane budget, or more when the last cuts
    /// could not get under it (every summary left at `top_k` counters or fewer).
    cut_above: usize,
}

/// What must be kept to rebuild a partition's windows by replaying its records: the watermark
/// state. The records themselves are replayed from [`PartitionWindows::resume_offset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatermarkState {
    pub max_event_time: Option<i64>,
    pub closed_end: Option<i64>,
}

impl PartitionWindows {
    /// Empty windows for a partition of `stream`.
    pub fn new(stream: StreamId, spec: WindowSpec, top_k: usize, budget: Budget) -> Self {
        Self::resume(stream, spec, top_k, budget, WatermarkState::default())
    }

    /// Windows that continue from a saved watermark state: replaying the partition's records
    /// from the saved [`resume_offset`](Self::resume_offset) rebuilds exactly the windows that
    /// were open, and closes nothing twice.
    pub fn resume(
        stream: StreamId,
        spec: WindowSpec,
        top_k: usize,
        budget: Budget,
        state: WatermarkState,
    ) -> Self {
        PartitionWindows {
            stream,
            spec,
            top_k,
            budget,
            pane_bytes: budget.pane_bytes(&spec),
            max_event_time: state.max_event_time,
            closed_end: state.closed_end,
            groups: hashbrown::HashMap::default(),
            panes: BTreeMap::new(),
        }
    }

    /// The watermark: highest event time seen minus the out-of-orderness.
    pub fn watermark(&self) -> Option<i64> {
        self.max_event_time.map(|t| t - self.spec.out_of_orderness)
    }

    pub fn watermark_state(&self) -> WatermarkState {
        WatermarkState {
            max_event_time: self.max_event_time,
            closed_end: self.closed_end,
        }
    }

    /// The first offset a replay must start from to rebuild every open window: the smallest
    /// offset that put data in a pane still held (`None` when nothing is held).
    pub fn resume_offset(&self) -> Option<i64> {
        self.panes.values().filter_map(|p| p.first_offset).min()
    }

    /// Bytes charged for the counters held, over all panes.
    pub fn bytes(&self) -> usize {
        self.panes.values().map(|p| p.bytes).sum()
    }

    /// Bytes charged for the counters of the fullest pane held.
    pub fn fullest_pane_bytes(&self) -> usize {
        self.panes.values().map(|p| p.bytes).max().unwrap_or(0)
    }

    /// Number of groups with open panes.
    pub fn open_groups(&self) -> usize {
        self.groups.len()
    }

    /// Number of (group, window) pairs holding data and not closed yet: a pane starting at
    /// `s` is in the windows ending `s + slide ..= s + width`.
    pub fn open_windows(&self) -> usize {
        let WindowSpec { width, slide, .. } = self.spec;
        let first_open = self.closed_end.map_or(i64::MIN, |end| end + slide);
        let mut open = 0;
        for panes in self.groups.values() {
            // Window ends below this are counted already (pane starts ascend).
            let mut counted_to = first_open;
            for start in panes.starts() {
                let first = (start + slide).max(counted_to);
                let last = start + width;
                if last >= first {
                    open += ((last - first) / slide + 1) as usize;
                    counted_to = last + slide;
                }
            }
        }
        open
    }

    /// Places the record at `offset` of `group` at `event_time`: `count` is given the pane's
    /// counts to add the record's items to, unless the record is dropped as late. Windows the
    /// record's event time closes are appended to `closed`.
    pub fn record(
        &mut self,
        group: &str,
        event_time: i64,
        offset: i64,
        count: impl FnOnce(&mut Counts),
        closed: &mut Vec<ClosedWindow>,
    ) -> Placement {
        let pane = self.spec.pane_start(event_time);
        let placement = match self.closed_end {
            Some(c) if pane + self.spec.width <= c => Placement::Dropped,
            Some(c) if pane + self.spec.slide <= c => Placement::PartlyLate,
            _ => Placement::OnTime,
        };
        if placement != Placement::Dropped {
            let Some(counts) = self.pane_counts(group, pane, offset) else {
                return Placement::Overflow {
                    max_groups: self.budget.max_groups,
                };
            };
            counts.messages += 1;
            let before = counts.bytes();
            count(counts);
            let after = counts.bytes();
            self.charge(pane, before, after);
        }
        if self.max_event_time.is_none_or(|m| event_time > m) {
            self.max_event_time = Some(event_time);
            self.close_windows(closed);
        }
        placement
    }

    /// The counts of `group` in `pane`, made when new; `None` when the pane holds
    /// `max_groups` other groups already (nothing is changed then).
    fn pane_counts(&mut self, group: &str, pane: i64, offset: i64) -> Option<&mut Counts> {
        let pane_bytes = self.pane_bytes;
        let index = self.panes.entry(pane).or_insert_with(|| Pane {
            cut_above: pane_bytes,
            ..Pane::default()
        });
        let full = index.groups.len() >= self.budget.max_groups;
        let entry = match self.groups.entry_ref(group) {
            EntryRef::Occupied(entry) => entry,
            EntryRef::Vacant(_) if full => return None, // See `Budget::max_groups`.
            EntryRef::Vacant(entry) => entry.insert_entry(Panes::default()),
        };
        let key = entry.key().clone();
        let panes = entry.into_mut();
        let at = match panes.find(pane) {
            Ok(at) => at,
            Err(_) if full => return None,
            Err(at) => {
                // A group is in a pane's list exactly when it holds counts there.
                index.groups.push(key);
                panes
                    .0
                    .insert(at, (pane, Box::new(Counts::new(self.budget.max_items))));
                at
            }
        };
        index.first_offset = Some(index.first_offset.map_or(offset, |o| o.min(offset)));
        Some(&mut *panes.0[at].1)
    }

    /// Closes every window that ends at or before the watermark and holds data.
    fn close_windows(&mut self, closed: &mut Vec<ClosedWindow>) {
        let Some(watermark) = self.watermark() else {
            return;
        };
        let last_end = self.spec.closable_end(watermark);
        let WindowSpec { width, slide, .. } = self.spec;
        // The next window end that holds data: the end after `closed_end`, or the first end of
        // the earliest pane, whichever is later.
        while let Some((&first_pane, _)) = self.panes.first_key_value() {
            let mut end = first_pane + slide;
            if let Some(c) = self.closed_end {
                end = end.max(c + slide);
            }
            if end > last_end {
                break;
            }
            let start = end - width;
            // The groups holding data in the window, each once, at the first of its panes
            // that holds it: in the order they first put data in the window.
            let mut scratch = Merge::default();
            for (&pane, index) in self.panes.range(start..end) {
                for key in &index.groups {
                    let panes = &self.groups[key];
                    if panes.range(start, end).next().map(|(first, _)| first) == Some(pane) {
                        closed.push(self.merge(key, panes, start, end, &mut scratch));
                    }
                }
            }
            self.closed_end = Some(end);
            self.free_panes_before(end - width + slide);
        }
        // Nothing else can close before `last_end`: remember it so late records are judged
        // against the watermark, not only against windows that held data.
        if self.closed_end.is_none_or(|c| c < last_end) {
            self.closed_end = Some(last_end);
            self.free_panes_before(last_end - width + slide);
        }
    }

    /// Frees panes that start before `first_kept`: no open window holds them.
    fn free_panes_before(&mut self, first_kept: i64) {
        while let Some(entry) = self.panes.first_entry() {
            if *entry.key() >= first_kept {
                break;
            }
            let (pane, index) = entry.remove_entry();
            for key in index.groups {
                if let EntryRef::Occupied(mut entry) = self.groups.entry_ref(&*key) {
                    entry.get_mut().remove(pane);
                    if entry.get().is_empty() {
                        entry.remove();
                    }
                }
            }
        }
    }

    /// The window `[start, end)` of the group `key`, whose panes are `panes`.
    fn merge<'s>(
        &self,
        key: &Arc<str>,
        panes: &'s Panes,
        start: i64,
        end: i64,
        scratch: &mut Merge<'s>,
    ) -> ClosedWindow {
        scratch.panes.clear();
        scratch
            .panes
            .extend(panes.range(start, end).map(|(_, c)| c));
        let Merge { panes, sum, tops } = scratch;
        let present = panes.iter().fold(0, |bits, counts| bits | counts.present);
        let mut error = [0; Category::COUNT];
        for (category, error) in error.iter_mut().enumerate() {
            if present & (1 << category) != 0 {
                // Else no pane of the window counted an item of this category.
                *error = merge_category(panes, category, self.top_k, sum, &mut tops[category]);
            }
        }
        // Each of the two allocations made once, at its size.
        let listed = || tops.iter().flatten();
        let mut lists = Lists {
            text: String::with_capacity(listed().map(|(item, _)| item.len()).sum()),
            items: Vec::with_capacity(listed().count()),
            ends: [0; Category::COUNT],
        };
        for (category, top) in tops.iter_mut().enumerate() {
            top.drain(..).for_each(|(item, n)| lists.push(item, n));
            lists.end(category);
        }
        ClosedWindow {
            stream: self.stream,
            group: key.clone(),
            window_start: start,
            window_end: end,
            messages: panes.iter().map(|counts| counts.messages).sum(),
            lists,
            error,
        }
    }
}

/// Leaves the top `k` items of `category` over `panes` in `top`; returns the most a listed
/// count may be below the true one.
fn merge_category<'s>(
    panes: &[&'s Counts],
    category: usize,
    k: usize,
    sum: &mut Map<&'s str, u64>,
    top: &mut Vec<(&'s str, u64)>,
) -> u64 {
    let summaries = || panes.iter().map(|counts| &counts.items[category]);
    let cut: u64 = summaries().map(|s| u64::from(s.error())).sum();
    top.clear();
    let mut holding = summaries().filter(|s| !s.is_empty());
    if let (Some(only), None, 0) = (holding.next(), holding.next(), cut) {
        // One pane holds the category, exactly: its counts are the window's.
        top.extend(only.iter().map(|(item, n, _)| (item, u64::from(n))));
    } else {
        // Drained into the top list each time: empty here.
        for summary in summaries() {
            for (item, n, _) in summary.iter() {
                *sum.entry(item).or_default() += u64::from(n);
            }
        }
        top.extend(sum.drain());
    }
    keep_top(top, k);
    if cut == 0 {
        return 0;
    }
    // A listed item's error is the sum, over the window's panes, of its own error where it
    // is held and of the pane's cut where it is not.
    top.iter()
        .map(|(item, _)| summaries().map(|s| u64::from(s.estimate(item).1)).sum())
        .max()
        .unwrap_or(0)
}

/// What merging a window's panes reuses from one window to the next: its panes' counts, the
/// sums of one category and the top list of each.
#[derive(Default)]
struct Merge<'s> {
    panes: Vec<&'s Counts>,
    sum: Map<&'s str, u64>,
    tops: [Vec<(&'s str, u64)>; Category::COUNT],
}

/// The `k` largest of `counts` (each item once), by count descending then item ascending.
pub fn top_k<'a>(
    counts: impl IntoIterator<Item = (&'a str, u64)>,
    k: usize,
) -> Vec<(&'a str, u64)> {
    let mut all: Vec<(&str, u64)> = counts.into_iter().collect();
    keep_top(&mut all, k);
    all
}

/// Keeps the `k` largest of `all` (each item once), by count descending then item ascending.
fn keep_top(all: &mut Vec<(&str, u64)>, k: usize) {
    let order = |a: &(&str, u64), b: &(&str, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
    if all.len() > k {
        all.select_nth_unstable_by(k, order);
        all.truncate(k);
    }
    all.sort_unstable_by(order);
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const SPEC: WindowSpec = WindowSpec {
        width: 60,
        slide: 10,
        out_of_orderness: 5,
    };

    pub(super) fn feed(
        w: &mut PartitionWindows,
        group: &str,
        t: i64,
        words: &[&str],
    ) -> (Placement, Vec<ClosedWindow>) {
        let mut closed = Vec::new();
        let placement = w.record(
            group,
            t,
            t,
            |c| words.iter().for_each(|word| c.add(Category::Term, word)),
            &mut closed,
        );
        (placement, closed)
    }

    #[test]
    fn a_million_distinct_groups_hold_no_more_than_the_cap_per_pane() {
        let budget = Budget {
            max_groups: 1_000,
            ..Budget::UNBOUNDED
        };
        let mut w = PartitionWindows::new(0, SPEC, 10, budget);
        let mut closed = Vec::new();
        let mut overflow = 0;
        for i in 0..1_000_000_i64 {
            // Ten panes of event time, a new key every record.
            let placement = w.record(
                &format!("k{i}"),
                i / 100_000 * 10,
                i,
                |c| c.add(Category::Term, "词"),
                &mut closed,
            );
            if let Placement::Overflow { max_groups } = placement {
                assert_eq!(max_groups, 1_000);
                overflow += 1;
            }
            assert!(w.open_groups() <= 1_000 * SPEC.live_panes() as usize);
        }
        assert_eq!(overflow, 1_000_000 - 10 * 1_000);
        // A group already in a full pane still counts there.
        assert_eq!(feed(&mut w, "k900000", 95, &["x"]).0, Placement::OnTime);
        assert!(closed.iter().all(|c| c.messages == 1));
    }

    fn summary(closed: &[ClosedWindow]) -> Vec<(String, i64, i64, u64)> {
        closed
            .iter()
            .map(|c| {
                (
                    c.group.to_string(),
                    c.window_start,
                    c.window_end,
                    c.messages,
                )
            })
            .collect()
    }

    #[test]
    fn window_closes_when_watermark_reaches_its_end() {
        let mut w = PartitionWindows::new(0, SPEC, 10, Budget::UNBOUNDED);
        assert!(feed(&mut w, "a", 3, &["x"]).1.is_empty());
        // Watermark 9: the window [-50, 10) is still open.
        assert!(feed(&mut w, "a", 14, &["x"]).1.is_empty());
        // Watermark 10: it closes, holding only the first record.
        let (_, closed) = feed(&mut w, "a", 15, &["y"]);
        assert_eq!(summary(&closed), vec![("a".into(), -50, 10, 1)]);
        assert_eq!(closed[0].lists()[0], vec![("x", 1)]);
    }

    #[test]
    fn open_windows_are_the_unclosed_windows_of_each_groups_panes() {
        let mut w = PartitionWindows::new(0, SPEC, 10, Budget::UNBOUNDED);
        assert_eq!(w.open_windows(), 0);
        // Pane 0 is in the windows ending 10 ..= 60.
        feed(&mut w, "a", 3, &["x"]);
        assert_eq!(w.open_windows(), 6);
        // Pane 10 adds the window ending 70 to a's; b has six of its own.
        feed(&mut w, "a", 14, &["x"]);
        feed(&mut w, "b", 14, &["x"]);
        assert_eq!(w.open_windows(), 13);
        // Watermark 10 closes the window ending 10, which only a held.
        feed(&mut w, "b", 15, &[]);
        assert_eq!(w.open_windows(), 12);
    }

    #[test]
    fn a_record_counts_in_every_window_that_holds_it() {
        let mut w = PartitionWindows::new(0, SPEC, 10, Budget::UNBOUNDED);
        feed(&mut w, "a", 25, &["x"]);
        let (_, closed) = feed(&mut w, "a", 1_000, &[]);
        let ends: Vec<i64> = closed
            .iter()
            .filter(|c| c.messages == 1)
            .map(|c| c.window_end)
            .collect();
        assert_eq!(ends, vec![30, 40, 50, 60, 70, 80]);
        // Nothing more is held for the old record: only the newest record's group and pane.
        assert_eq!(w.open_groups(), 1);
    }

    #[test]
    fn late_records_count_only_in_open_windows() {
        let mut w = PartitionWindows::new(0, SPEC, 10, Budget::UNBOUNDED);
        feed(&mut w, "a", 100, &[]);
        // Watermark 95: windows ending at or before 90 are closed.
        assert_eq!(feed(&mut w, "a", 85, &["late"]).0, Placement::PartlyLate);
        assert_eq!(feed(&mut w, "a", 29, &["gone"]).0, Placement::Dropped);
        assert_eq!(feed(&mut w, "a", 90, &["ok"]).0, Placement::OnTime);
        let (_, closed) = feed(&mut w, "a", 1_000, &[]);
        let late: Vec<i64> = closed
            .iter()
            .filter(|c| c.lists()[0].iter().any(|(i, _)| *i == "late"))
            .map(|c| c.window_end)
            .collect();
        assert_eq!(late, vec![100, 110, 120, 130, 140]);
        assert!(closed
            .iter()
            .all(|c| c.lists()[0].iter().all(|(i, _)| *i != "gone")));
    }

    #[test]
    fn groups_are_separate_and_closed_in_the_order_they_first_held_data() {
        let mut w = PartitionWindows::new(0, SPEC, 10, Budget::UNBOUNDED);
        feed(&mut w, "b", 1, &["x"]);
        feed(&mut w, "a", 2, &["x"]);
        let (_, closed) = feed(&mut w, "c", 15, &[]);
        assert_eq!(
            summary(&closed),
            vec![("b".into(), -50, 10, 1), ("a".into(), -50, 10, 1)]
        );
        // In the next window, c first held data in a later pane than b and a; a held data in
        // both panes and is closed once.
        feed(&mut w, "a", 16, &["x"]);
        let (_, closed) = feed(&mut w, "d", 25, &[]);
        assert_eq!(
            summary(&closed),
            vec![
                ("b".into(), -40, 20, 1),
                ("a".into(), -40, 20, 2),
                ("c".into(), -40, 20, 1)
            ]
        );
    }

    #[test]
    fn top_k_orders_by_count_then_item() {
        let counts = HashMap::from([("b", 2), ("a", 2), ("c", 5), ("d", 1)]);
        assert_eq!(top_k(counts, 3), vec![("c", 5), ("a", 2), ("b", 2)]);
    }

    fn capped(max_items: usize) -> Budget {
        Budget {
            max_items,
            ..Budget::UNBOUNDED
        }
    }

    /// Every window closed by feeding `records` (time, words) to group "g", then a far record.
    fn run(mut w: PartitionWindows, records: &[(i64, Vec<String>)]) -> Vec<ClosedWindow> {
        let mut all = Vec::new();
        for (t, words) in records {
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            all.extend(feed(&mut w, "g", *t, &words).1);
        }
        all.extend(feed(&mut w, "g", 10_000, &[]).1);
        all
    }

    #[test]
    fn windows_stay_exact_while_each_pane_holds_fewer_items_than_the_cap() {
        // Three items a pane, a new set every pane: a window holds up to eighteen.
        let records: Vec<(i64, Vec<String>)> = (0..200)
            .map(|i| {
                let pane = i / 20;
                let word = format!("w{pane}-{}", i % 3);
                (i64::from(i) / 2, vec![word; (i % 3 + 1) as usize])
            })
            .collect();
        let capped = run(PartitionWindows::new(0, SPEC, 20, capped(3)), &records);
        let uncapped = run(
            PartitionWindows::new(0, SPEC, 20, Budget::UNBOUNDED),
            &records,
        );
        assert_eq!(capped, uncapped);
        assert!(capped.iter().any(|c| c.lists()[0].len() == 18));
        assert!(capped.iter().all(|c| c.error == [0; Category::COUNT]));
    }

    #[test]
    fn a_window_over_the_cap_keeps_its_heavy_hitter_exact_and_states_the_error() {
        // One pane: a heavy item every fourth record, the rest all different.
        let records: Vec<(i64, Vec<String>)> = (0..2_000)
            .map(|i| {
                let word = if i % 4 == 0 {
                    "hot".to_owned()
                } else {
                    format!("tail{i}")
                };
                (1, vec![word])
            })
            .collect();
        let closed = run(PartitionWindows::new(0, SPEC, 5, capped(50)), &records);
        let window = &closed[0];
        let error = window.error[0];
        assert!(error > 0 && error <= 2 * 2_000 / 50, "error {error}");
        // Held from the start, the heavy hitter keeps its exact count.
        assert_eq!(window.lists()[0][0], ("hot", 500));
        // The six windows that hold the pane agree.
        assert_eq!(closed.len(), 6);
        assert!(closed
            .iter()
            .all(|c| c.lists() == window.lists() && c.error == window.error));
    }

    /// When the caller takes the windows that `record` closed, and what it asks the windows
    /// about in between.
    #[derive(Debug, Clone, Copy)]
    enum Asking {
        /// One list for the whole run, read once at the end.
        OnceAtTheEnd,
        /// A fresh list for every record, read at once.
        AfterEveryRecord,
        /// The list taken at random points, the state looked at at others (seeded).
        AtRandomPoints(u64),
    }

    /// Every window closed by feeding `records` (group, time, word) and then a far record,
    /// taken as `asking` says.
    fn closed_when(asking: Asking, records: &[(&str, i64, &str)]) -> Vec<ClosedWindow> {
        use rand::{Rng, SeedableRng};
        let seed = match asking {
            Asking::AtRandomPoints(seed) => seed,
            _ => 0,
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut w = PartitionWindows::new(0, SPEC, 10, Budget::UNBOUNDED);
        let (mut all, mut pending) = (Vec::new(), Vec::new());
        let far = [("g", 10_000, "")];
        for (offset, &(group, t, word)) in records.iter().chain(&far).enumerate() {
            let count = |c: &mut Counts| {
                if !word.is_empty() {
                    c.add(Category::Term, word);
                }
            };
            match asking {
                Asking::OnceAtTheEnd => {
                    w.record(group, t, offset as i64, count, &mut all);
                }
                Asking::AfterEveryRecord => {
                    let mut closed = Vec::new();
                    w.record(group, t, offset as i64, count, &mut closed);
                    all.extend(closed);
                }
                Asking::AtRandomPoints(_) => {
                    w.record(group, t, offset as i64, count, &mut pending);
                    if rng.random_bool(0.3) {
                        all.append(&mut pending);
                    }
                    if rng.random_bool(0.3) {
                        // Looking changes nothing.
                        let _ = (w.watermark(), w.watermark_state(), w.resume_offset());
                        let _ = (w.bytes(), w.fullest_pane_bytes(), w.open_groups());
                    }
                }
            }
        }
        all.append(&mut pending);
        all
    }

    #[test]
    fn results_do_not_depend_on_when_windows_are_asked_for() {
        // Closing happens inside `record`, so one stream of records gives one result however
        // the caller collects the closed windows.
        let records = [
            ("g", 1, "x"),
            ("g", 7, "y"),
            ("g", 12, "x"),
            ("g", 33, "z"),
            ("g", 31, "x"),
            ("g", 70, "y"),
            ("g", 64, "x"),
        ];
        let all = closed_when(Asking::OnceAtTheEnd, &records);
        for asking in [
            Asking::AfterEveryRecord,
            Asking::AtRandomPoints(1),
            Asking::AtRandomPoints(2),
        ] {
            assert_eq!(closed_when(asking, &records), all, "{asking:?}");
        }
        let messages: Vec<(i64, u64)> = all.iter().map(|c| (c.window_end, c.messages)).collect();
        assert_eq!(
            messages,
            vec![
                (10, 2),
                (20, 3),
                (30, 3),
                (40, 5),
                (50, 5),
                (60, 5),
                (70, 4),
                (80, 4),
                (90, 4),
                (100, 2),
                (110, 2),
                (120, 2),
                (130, 1)
            ]
        );

        // Many groups, disorder and late records.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
        let (groups, words) = (["a", "b", "c", "d"], ["x", "y", "z", "w", "v"]);
        let records: Vec<(&str, i64, &str)> = (0..2_000)
            .map(|i| {
                let t = i / 4 - rng.random_range(0..20);
                let group = groups[rng.random_range(0..groups.len())];
                (group, t, words[rng.random_range(0..words.len())])
            })
            .collect();
        let all = closed_when(Asking::OnceAtTheEnd, &records);
        assert!(all.len() > 100, "{} windows", all.len());
        for asking in [Asking::AfterEveryRecord, Asking::AtRandomPoints(3)] {
            assert_eq!(closed_when(asking, &records), all, "{asking:?}");
        }
    }
}
