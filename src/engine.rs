//! Engine: the per-record work of a batch — decode, extract, window — for every partition this
//! instance holds. Pure: records in, closed windows, dead letters and checkpoints out; the
//! caller does the I/O.
//!
//! # Checkpoints
//!
//! A partition's [`Checkpoint`] says where its windows can be rebuilt from: replaying its
//! records from `resume` (the first offset any open window still holds) with the saved
//! watermark state gives back exactly the open windows, because windowing is deterministic.
//! Nothing closes during the replay (the watermark is already past every replayed record), and
//! the dead letters of replayed records below `next` were sent before. So a partition continues
//! on any instance, after any crash, with nothing lost and nothing counted twice. Checkpoints
//! are small (four numbers) whatever the number of open windows; the price is the replay —
//! at most one window width plus the out-of-orderness of records — when a partition moves.
//! The type, and how a checkpoint is stored, loaded and saved, are in [`crate::store::checkpoint`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rayon::iter::{IntoParallelIterator, ParallelIterator};

use crate::config::Config;
use crate::decode::{check_ahead, decode, DecodeError};
use crate::extract::{Category, Extractor, Scratch};
pub use crate::metrics::BatchCounts;
use crate::store::checkpoint::Checkpoint;
use crate::window::{
    Budget, ClosedWindow, PartitionWindows, Placement, StreamId, WatermarkState, WindowSpec,
};

/// One input record, as the consumer delivered it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub payload: Option<&'a [u8]>,
    /// Kafka timestamp in epoch ms, if any.
    pub timestamp: Option<i64>,
}

/// A stream as the engine sees it.
#[derive(Debug, Clone)]
pub struct Stream {
    pub name: String,
    pub topic: String,
    pub group_by: String,
}

/// What one batch produced.
#[derive(Debug, Default)]
pub struct BatchOutput {
    /// Windows closed by the batch's records, in the order they closed.
    pub closed: Vec<ClosedWindow>,
    /// Records that could not be decoded: their index in the batch and why.
    pub dead: Vec<(usize, DecodeError)>,
    /// Partitions whose first record after a seek lay beyond the offset sought: the consumer
    /// must be sent further back ([`Engine::rewind`]).
    pub gaps: Vec<Gap>,
    pub counts: BatchCounts,
    /// The counts of each partition in the batch, by stream and partition.
    pub partitions: Vec<(StreamId, i32, BatchCounts)>,
}

/// A partition that was positioned to read `target` on, and whose first record delivered was
/// `first_offset`, beyond it: the broker skipped the records in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub topic: String,
    pub partition: i32,
    pub target: i64,
    pub first_offset: i64,
}

/// Whether a partition's records arrive without gaps.
///
/// A consumer sent to an offset expects the broker to deliver that record and every one after
/// it. Apache Kafka does; tansu 0.6 serves a fetch that starts inside a stored record batch
/// from the *next* batch, silently skipping the rest of the batch (and a fetch inside the last
/// batch gets nothing). So a partition is positioned one record early, at `target - 1`, and is
/// trusted only once a record in `from..=target` arrives: from that record on the log is read
/// in order. A first record beyond `target` means a gap, and the partition is sent further back
/// ([`Engine::rewind`]) until the delivered records cover `target`; records below the partition's
/// next offset are then skipped as usual.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Records arrive in order, without gaps.
    Settled,
    /// The consumer was sent to `from` so that `target` is read: nothing is processed until a
    /// record in `from..=target` shows the broker delivers from there.
    Seeking {
        from: i64,
        target: i64,
        /// Rewinds so far; each goes [`REWIND_FACTOR`] times further back.
        rewinds: u32,
        /// `from` is the start of the log: the broker cannot skip into it, so whatever arrives
        /// first is accepted (records below it are gone from the log).
        at_log_start: bool,
    },
}

/// Each rewind of a partition goes this many times further back than the one before: a
/// producer's batch holds at most a few thousand records, so three rewinds reach past any.
const REWIND_FACTOR: i64 = 32;

struct PartitionState {
    windows: PartitionWindows,
    /// Offset of the next record; records below it were processed already.
    next: i64,
    /// Records below this were processed before the checkpoint: their dead letters are out.
    replayed_until: i64,
    position: Position,
    /// The records of the batch in hand were delivered before the consumer was sent back:
    /// none of them is processed (cleared once that batch is through).
    skip_batch: bool,
}

impl PartitionState {
    /// `windows`, empty, starting at `offset`.
    fn fresh(windows: PartitionWindows, offset: i64) -> Self {
        PartitionState {
            windows,
            next: offset,
            replayed_until: offset,
            position: Position::Settled,
            skip_batch: false,
        }
    }

    /// Sends the partition to read from `next` on: one record early, to see that the broker
    /// delivers from there. Returns the offset to seek to.
    fn seek_to_next(&mut self) -> i64 {
        let from = (self.next - 1).max(0);
        self.position = Position::Seeking {
            from,
            target: self.next,
            rewinds: 0,
            at_log_start: from == 0,
        };
        from
    }

    /// Whether the record at `offset` is to be processed, as far as the position goes.
    /// Reports a gap the first time a record lies beyond the target.
    fn accept(&mut self, offset: i64, gap: &mut Option<(i64, i64)>, lost: &mut u64) -> bool {
        let Position::Seeking {
            from,
            target,
            at_log_start,
            ..
        } = self.position
        else {
            return true;
        };
        if offset < from {
            return false; // Delivered before the seek took effect.
        }
        if offset <= target {
            self.position = Position::Settled;
            return true;
        }
        if at_log_start {
            // Nothing before `from` to rewind to: the records up to `offset` left the log.
            *lost += (offset - target) as u64;
            self.position = Position::Settled;
            return true;
        }
        gap.get_or_insert((target, offset));
        false
    }
}

/// What processing a partition's records needs besides its state: shared by the workers.
struct Records<'b, 'a> {
    batch: &'b [Input<'a>],
    streams: &'b [Stream],
    extractor: &'b Extractor,
    max_message_bytes: usize,
    max_ahead_ms: i64,
}

/// A partition's records are decoded and extracted in chunks of this many, ahead of the window
/// update: in parallel on the workers when there are several, one chunk after another when not.
const CHUNK: usize = 128;

/// The chunks of one partition's records while they are extracted in parallel: each is
/// claimed by one worker, in order, and left here for the window update, which takes them in
/// order as they are ready.
struct Chunks<'c, 'a> {
    todo: Vec<&'c [(usize, bool)]>,
    /// The next chunk no worker has claimed yet.
    next: AtomicUsize,
    ready: Mutex<Vec<Option<Prepared<'a>>>>,
    /// Told each time a chunk is ready.
    readied: Condvar,
}

impl<'c, 'a> Chunks<'c, 'a> {
    fn new(todo: &'c [(usize, bool)]) -> Self {
        let todo: Vec<_> = todo.chunks(CHUNK).collect();
        Chunks {
            ready: Mutex::new(todo.iter().map(|_| None).collect()),
            todo,
            next: AtomicUsize::new(0),
            readied: Condvar::new(),
        }
    }

    /// Claims the next chunk, extracts it and leaves it ready; false when none is left.
    fn extract_next(
        &self,
        records: &Records<'_, 'a>,
        group_by: &str,
        scratch: &mut Scratch,
    ) -> bool {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(chunk) = self.todo.get(i) else {
            return false;
        };
        let mut prepared = Prepared::default();
        records.prepare(group_by, chunk, scratch, &mut prepared);
        self.ready.lock().expect("no worker panics holding it")[i] = Some(prepared);
        self.readied.notify_all();
        true
    }

    /// Chunk `i` once it is ready, extracting the next unclaimed chunks meanwhile.
    fn take(
        &self,
        i: usize,
        records: &Records<'_, 'a>,
        group_by: &str,
        scratch: &mut Scratch,
    ) -> Prepared<'a> {
        loop {
            let mut ready = self.ready.lock().expect("no worker panics holding it");
            if let Some(prepared) = ready[i].take() {
                return prepared;
            }
            if self.next.load(Ordering::Relaxed) < self.todo.len() {
                drop(ready);
                self.extract_next(records, group_by, scratch);
                continue;
            }
            // Every chunk is claimed, and another worker is still on this one.
            while ready[i].is_none() {
                ready = self
                    .readied
                    .wait(ready)
                    .expect("no worker panics holding it");
            }
        }
    }
}

/// A chunk of one partition's records, decoded and extracted: all the window update needs.
#[derive(Default)]
struct Prepared<'a> {
    records: Vec<PreparedRecord<'a>>,
    /// Every record's items, one after another: a category and where the item is in `text`.
    items: Vec<(Category, Range<usize>)>,
    text: String,
}

struct PreparedRecord<'a> {
    /// The record's index in the batch.
    index: usize,
    /// Processed before the checkpoint: its dead letter went out then.
    replay: bool,
    outcome: Result<Extracted<'a>, DecodeError>,
}

struct Extracted<'a> {
    group: Cow<'a, str>,
    event_time: i64,
    /// The record's items in [`Prepared::items`].
    items: Range<usize>,
}

impl<'a> Records<'_, 'a> {
    /// Decodes, extracts and windows the records at `indices` (one partition's, in order).
    /// Decoding and extraction are pure per record, so with `parallel` they run in chunks on
    /// the current rayon pool while the window update takes the chunks in offset order as they
    /// are ready, so the outcome is the same with any number of workers.
    fn process(
        &self,
        stream: StreamId,
        state: &mut PartitionState,
        indices: &[usize],
        scratch: &mut Scratch,
        parallel: bool,
    ) -> BatchOutput {
        let mut out = BatchOutput::default();
        let group_by = self.streams[usize::from(stream)].group_by.as_str();
        if std::mem::take(&mut state.skip_batch) {
            return out;
        }
        let mut gap = None;
        let mut todo: Vec<(usize, bool)> = Vec::with_capacity(indices.len());
        for &index in indices {
            let input = &self.batch[index];
            if !state.accept(input.offset, &mut gap, &mut out.counts.lost)
                || input.offset < state.next
            {
                continue;
            }
            state.next = input.offset + 1;
            out.counts.records += 1;
            out.counts.bytes += input.payload.map_or(0, |p| p.len() as u64);
            let replay = input.offset < state.replayed_until;
            if replay {
                out.counts.replayed += 1;
            }
            todo.push((index, replay));
        }

        if parallel && todo.len() > CHUNK {
            // The other workers extract chunks while this one windows them in order, and
            // extracts too whenever the next chunk is not ready: the window update, serial,
            // overlaps the extraction of the chunks after it.
            let chunks = Chunks::new(&todo);
            let helpers = (rayon::current_num_threads() - 1).min(chunks.todo.len() - 1);
            rayon::scope(|s| {
                for _ in 0..helpers {
                    s.spawn(|_| {
                        let mut scratch = Scratch::default();
                        while chunks.extract_next(self, group_by, &mut scratch) {}
                    });
                }
                for i in 0..chunks.todo.len() {
                    let mut prepared = chunks.take(i, self, group_by, scratch);
                    self.window(state, &mut prepared, &mut out);
                }
            });
        } else {
            let mut prepared = Prepared::default();
            for chunk in todo.chunks(CHUNK) {
                self.prepare(group_by, chunk, scratch, &mut prepared);
                self.window(state, &mut prepared, &mut out);
            }
        }

        if let Some((target, first_offset)) = gap {
            let first = &self.batch[indices[0]];
            out.gaps.push(Gap {
                topic: first.topic.to_owned(),
                partition: first.partition,
                target,
                first_offset,
            });
        }
        out
    }

    /// Decodes and extracts the records of `chunk` (batch index, replayed) into `prepared`.
    fn prepare(
        &self,
        group_by: &str,
        chunk: &[(usize, bool)],
        scratch: &mut Scratch,
        prepared: &mut Prepared<'a>,
    ) {
        let Prepared {
            records,
            items,
            text,
        } = prepared;
        for &(index, replay) in chunk {
            let input = &self.batch[index];
            let outcome = decode(
                input.payload,
                group_by,
                input.timestamp,
                self.max_message_bytes,
            )
            .and_then(|r| check_ahead(r.event_time, input.timestamp, self.max_ahead_ms).map(|()| r))
            .map(|record| {
                let first = items.len();
                self.extractor
                    .extract(&record.text, scratch, |category, item| {
                        let start = text.len();
                        text.push_str(item);
                        items.push((category, start..text.len()));
                    });
                Extracted {
                    group: record.group,
                    event_time: record.event_time,
                    items: first..items.len(),
                }
            });
            records.push(PreparedRecord {
                index,
                replay,
                outcome,
            });
        }
    }

    /// Adds the records of `prepared` to the partition's windows, in order, and empties it.
    fn window(
        &self,
        state: &mut PartitionState,
        prepared: &mut Prepared<'a>,
        out: &mut BatchOutput,
    ) {
        for record in prepared.records.drain(..) {
            let extracted = match record.outcome {
                Ok(extracted) => extracted,
                Err(err) => {
                    if !record.replay {
                        out.counts.dead_letters += 1;
                        out.dead.push((record.index, err));
                    }
                    continue;
                }
            };
            let placement = state.windows.record(
                &extracted.group,
                extracted.event_time,
                self.batch[record.index].offset,
                |counts| {
                    for (category, at) in &prepared.items[extracted.items] {
                        counts.add(*category, &prepared.text[at.clone()]);
                    }
                },
                &mut out.closed,
            );
            match placement {
                Placement::OnTime => {}
                Placement::PartlyLate => out.counts.late_partly += 1,
                Placement::Dropped => out.counts.late_dropped += 1,
                Placement::Overflow { max_groups } => {
                    if !record.replay {
                        out.counts.dead_letters += 1;
                        out.dead
                            .push((record.index, DecodeError::TooManyGroups { max_groups }));
                    }
                }
            }
        }
        prepared.items.clear();
        prepared.text.clear();
    }
}

pub struct Engine {
    streams: Vec<Stream>,
    extractor: Arc<Extractor>,
    /// Scratch buffers when a batch is processed on the calling thread.
    scratch: Scratch,
    /// The threads that process partitions in parallel; `None` for one worker.
    workers: Option<rayon::ThreadPool>,
    spec: WindowSpec,
    top_k: usize,
    budget: Budget,
    max_message_bytes: usize,
    max_ahead_ms: i64,
    settings: u64,
    partitions: HashMap<(StreamId, i32), PartitionState>,
}

impl Engine {
    pub fn new(config: &Config, extractor: Arc<Extractor>) -> Engine {
        let streams = config
            .enabled_streams()
            .map(|(name, s)| Stream {
                name: name.clone(),
                topic: s.topic.clone(),
                group_by: s.group_by.clone(),
            })
            .collect();
        let settings = settings_fingerprint(config, &extractor);
        Engine {
            streams,
            extractor,
            scratch: Scratch::default(),
            workers: worker_pool(config.batch().workers),
            spec: WindowSpec {
                width: config.width_ms(),
                slide: config.slide_ms(),
                out_of_orderness: config.out_of_orderness_ms(),
            },
            top_k: config.output().top_k,
            budget: Budget::of(config),
            max_message_bytes: config.input().max_message_bytes,
            max_ahead_ms: i64::try_from(config.input().max_event_time_ahead.as_millis())
                .unwrap_or(i64::MAX),
            settings,
            partitions: HashMap::new(),
        }
    }

    /// Windows for a partition of `stream`, from the watermark state `state`.
    fn windows(&self, stream: StreamId, state: WatermarkState) -> PartitionWindows {
        PartitionWindows::resume(stream, self.spec, self.top_k, self.budget, state)
    }

    pub fn streams(&self) -> &[Stream] {
        &self.streams
    }

    fn stream_of(&self, topic: &str) -> Option<StreamId> {
        self.streams
            .iter()
            .position(|s| s.topic == topic)
            .map(|i| i as StreamId)
    }

    /// Whether the partition's windows are here (else [`Engine::restore`] it first).
    pub fn holds(&self, topic: &str, partition: i32) -> bool {
        self.stream_of(topic)
            .is_some_and(|s| self.partitions.contains_key(&(s, partition)))
    }

    /// Whether [`Engine::restore`] continues a partition from `checkpoint` (it was made under
    /// these settings); if not, the partition starts afresh.
    pub fn resumes_from(&self, checkpoint: &Checkpoint) -> bool {
        checkpoint.settings == self.settings
    }

    /// Takes up a partition from its checkpoint, or afresh from `fresh_start` (the group's
    /// committed offset, or where the log starts) when it has none. `first_offset` is the first
    /// record the consumer delivered, if any yet. Returns the offset the consumer must seek to,
    /// unless the records in hand already cover where processing starts.
    pub fn restore(
        &mut self,
        topic: &str,
        partition: i32,
        checkpoint: Option<Checkpoint>,
        fresh_start: i64,
        first_offset: Option<i64>,
    ) -> Option<i64> {
        let stream = self.stream_of(topic)?;
        let mut state = match checkpoint.filter(|c| self.resumes_from(c)) {
            Some(c) => PartitionState {
                windows: self.windows(stream, c.watermark),
                next: c.resume,
                replayed_until: c.next,
                position: Position::Settled,
                skip_batch: false,
            },
            None => {
                PartitionState::fresh(self.windows(stream, WatermarkState::default()), fresh_start)
            }
        };
        // Records delivered from at or before where processing starts cover it; otherwise the
        // broker may have started past it (see `Position`), and the records in hand, from
        // before the seek, are left for the consumer to deliver again.
        let seek = match first_offset {
            Some(first) if first <= state.next => None,
            _ => Some(state.seek_to_next()),
        };
        state.skip_batch = seek.is_some() && first_offset.is_some();
        self.partitions.insert((stream, partition), state);
        seek
    }

    /// Sends a partition whose records did not cover its target (a [`Gap`], or nothing
    /// delivered for a while) further back: returns the offset to seek to, or `None` when it is
    /// not seeking, or was sent to the start of its log already (nothing is there yet: it is
    /// settled, and whatever comes next is in order). `log_start` is the partition's first
    /// offset in the log.
    pub fn rewind(&mut self, topic: &str, partition: i32, log_start: i64) -> Option<i64> {
        let state = self
            .partitions
            .get_mut(&(self.stream_of(topic)?, partition))?;
        let Position::Seeking {
            from,
            target,
            rewinds,
            at_log_start,
        } = state.position
        else {
            return None;
        };
        if at_log_start {
            state.position = Position::Settled;
            return None;
        }
        let back = REWIND_FACTOR.saturating_pow(rewinds + 1);
        let to = target.saturating_sub(back).min(from).max(log_start);
        state.position = Position::Seeking {
            from: to,
            target,
            rewinds: rewinds + 1,
            at_log_start: to <= log_start,
        };
        Some(to)
    }

    /// Partitions sent to an offset whose records have not yet been seen to cover it.
    pub fn seeking(&self) -> impl Iterator<Item = (&str, i32)> + '_ {
        self.partitions
            .iter()
            .filter(|(_, s)| s.position != Position::Settled)
            .map(|((stream, partition), _)| {
                (
                    self.streams[usize::from(*stream)].topic.as_str(),
                    *partition,
                )
            })
    }

    /// Processes a batch: each partition's records in batch order, partitions in parallel on
    /// the engine's workers, and each partition's records decoded and extracted in parallel
    /// too (only the window update runs one record after another). Closed windows come out
    /// partition by partition (in partition order), each partition's in the order they closed;
    /// dead letters in batch order.
    pub fn process(&mut self, batch: &[Input<'_>]) -> BatchOutput {
        // Route each record to its partition's list.
        let mut routes: HashMap<(StreamId, i32), Vec<usize>> = HashMap::new();
        for (index, input) in batch.iter().enumerate() {
            let Some(stream) = self.stream_of(input.topic) else {
                continue;
            };
            let key = (stream, input.partition);
            if !self.partitions.contains_key(&key) {
                // A partition the caller did not take up starts afresh at its first record.
                let windows = self.windows(stream, WatermarkState::default());
                let fresh = PartitionState::fresh(windows, input.offset);
                self.partitions.insert(key, fresh);
            }
            routes.entry(key).or_default().push(index);
        }
        let mut work: Vec<((StreamId, i32), &mut PartitionState, Vec<usize>)> = self
            .partitions
            .iter_mut()
            .filter_map(|(key, state)| routes.remove(key).map(|r| (*key, state, r)))
            .collect();
        work.sort_unstable_by_key(|(key, ..)| *key);
        let keys: Vec<(StreamId, i32)> = work.iter().map(|(key, ..)| *key).collect();

        let records = Records {
            batch,
            streams: &self.streams,
            extractor: &self.extractor,
            max_message_bytes: self.max_message_bytes,
            max_ahead_ms: self.max_ahead_ms,
        };
        let outputs: Vec<BatchOutput> = match &self.workers {
            Some(pool) => pool.install(|| {
                work.into_par_iter()
                    .map_init(
                        Scratch::default,
                        |scratch, ((stream, _), state, indices)| {
                            records.process(stream, state, &indices, scratch, true)
                        },
                    )
                    .collect()
            }),
            None => work
                .into_iter()
                .map(|((stream, _), state, indices)| {
                    records.process(stream, state, &indices, &mut self.scratch, false)
                })
                .collect(),
        };
        let mut out = BatchOutput::default();
        for ((stream, partition), part) in keys.into_iter().zip(outputs) {
            out.partitions.push((stream, partition, part.counts));
            out.closed.extend(part.closed);
            out.dead.extend(part.dead);
            out.gaps.extend(part.gaps);
            out.counts.add(&part.counts);
        }
        out.dead.sort_unstable_by_key(|(index, _)| *index);
        out.counts.windows_closed = out.closed.len() as u64;
        out
    }

    /// Where the partition can be continued from now; `None` while it is still replaying
    /// (the stored checkpoint is then still the right one).
    pub fn checkpoint(&self, topic: &str, partition: i32) -> Option<Checkpoint> {
        let state = self.partitions.get(&(self.stream_of(topic)?, partition))?;
        if state.next < state.replayed_until || state.position != Position::Settled {
            return None;
        }
        let resume = state.windows.resume_offset().unwrap_or(state.next);
        Some(Checkpoint {
            resume: resume.min(state.next),
            next: state.next,
            watermark: state.windows.watermark_state(),
            settings: self.settings,
        })
    }

    /// The partition is no longer ours: free its windows (its checkpoint lives on elsewhere).
    pub fn forget(&mut self, topic: &str, partition: i32) {
        if let Some(stream) = self.stream_of(topic) {
            self.partitions.remove(&(stream, partition));
        }
    }

    /// Partitions whose windows are here.
    pub fn partitions_held(&self) -> usize {
        self.partitions.len()
    }

    /// Whether some partition is still being replayed to rebuild its windows.
    pub fn replaying(&self) -> bool {
        self.partitions
            .values()
            .any(|p| p.position != Position::Settled || p.next < p.replayed_until)
    }

    /// Groups with open windows, over all partitions.
    pub fn open_groups(&self) -> usize {
        self.partitions
            .values()
            .map(|p| p.windows.open_groups())
            .sum()
    }

    /// Windows of some group holding data and not closed yet, over all partitions.
    pub fn open_windows(&self) -> usize {
        self.partitions
            .values()
            .map(|p| p.windows.open_windows())
            .sum()
    }

    /// Each partition held, with its watermark (event time, ms) once it has one.
    pub fn watermarks(&self) -> impl Iterator<Item = (&str, i32, Option<i64>)> + '_ {
        self.partitions.iter().map(|((stream, partition), state)| {
            let topic = self.streams[usize::from(*stream)].topic.as_str();
            (topic, *partition, state.windows.watermark())
        })
    }
}

/// A pool of `workers` threads (0: one per core), or `None` when that is one.
fn worker_pool(workers: usize) -> Option<rayon::ThreadPool> {
    let threads = match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    (threads > 1).then(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("trendstream-worker-{i}"))
            .build()
            .expect("worker threads start")
    })
}

/// The fingerprint of everything that changes what windows hold: a checkpoint is replayed
/// only under settings with the same fingerprint.
///
/// It covers `window.width`, `window.slide` and `window.out_of_orderness` (in ms),
/// `output.top_k`, `window.memory_budget` (in bytes), `window.max_items`,
/// `window.max_groups`, `extract.min_term_chars`, `extract.max_term_chars`, the stop words
/// in effect (the built-in ones and the *contents* of `extract.stop_words_file`, as the
/// extractor holds them: normalised, in byte order — not the file's path),
/// `extract.watch_keywords` (in order), each enabled stream's name, topic and `group_by` (by
/// name) and `input.max_event_time_ahead` (in ms). Nothing else (brokers, Redis, retries,
/// output topics) changes what windows hold.
///
/// The settings are written as [`Canonical`] bytes, which depend on nothing but their values,
/// and hashed with [`fnv1a`]: the same settings give the same fingerprint in every build and
/// on every platform.
fn settings_fingerprint(config: &Config, extractor: &Extractor) -> u64 {
    let e = config.extract();
    let mut out = Canonical::default();
    out.number("window.width_ms", i128::from(config.width_ms()));
    out.number("window.slide_ms", i128::from(config.slide_ms()));
    out.number(
        "window.out_of_orderness_ms",
        i128::from(config.out_of_orderness_ms()),
    );
    out.number("output.top_k", config.output().top_k as i128);
    out.number("window.memory_budget", config.memory_budget_bytes() as i128);
    out.number("window.max_items", config.window().max_items as i128);
    out.number("window.max_groups", config.window().max_groups as i128);
    out.number("extract.min_term_chars", e.min_term_chars as i128);
    out.number("extract.max_term_chars", e.max_term_chars as i128);
    let stop_words = extractor.stop_words();
    out.number("stop_words", stop_words.len() as i128);
    for word in stop_words {
        out.text("stop_word", word);
    }
    out.number("extract.watch_keywords", e.watch_keywords.len() as i128);
    for keyword in &e.watch_keywords {
        out.text("keyword", keyword);
    }
    for (name, stream) in config.enabled_streams() {
        out.text("stream", name);
        out.text("topic", &stream.topic);
        out.text("group_by", &stream.group_by);
    }
    let ahead_ms = config.input().max_event_time_ahead.as_millis();
    out.number(
        "input.max_event_time_ahead_ms",
        i128::try_from(ahead_ms).unwrap_or(i128::MAX),
    );
    fnv1a(&out.0)
}

/// Settings as bytes, one `key=value` line each: a number in decimal, a text as its length
/// in bytes, `:` and its bytes (so no text can pass for another setting).
#[derive(Default)]
struct Canonical(Vec<u8>);

impl Canonical {
    fn number(&mut self, key: &str, value: i128) {
        self.0
            .extend_from_slice(format!("{key}={value}\n").as_bytes());
    }

    fn text(&mut self, key: &str, value: &str) {
        let head = format!("{key}={}:", value.len());
        self.0.extend_from_slice(head.as_bytes());
        self.0.extend_from_slice(value.as_bytes());
        self.0.push(b'\n');
    }
}

/// The 64-bit FNV-1a hash: small, stable across builds and platforms.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(FNV1A_OFFSET, bytes)
}

/// FNV-1a's starting value.
pub const FNV1A_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a of the bytes hashed into `hash` so far followed by `bytes`.
pub fn fnv1a_from(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{Category, ExtractOptions};

    fn engine() -> Engine {
        engine_with("")
    }

    /// An engine of 20 s windows every 10 s, no out-of-orderness, with `more` read inside
    /// the `[window]` table (and after it).
    fn engine_with(more: &str) -> Engine {
        let config = Config::from_toml(&format!(
            "[window]\nwidth = \"20s\"\nslide = \"10s\"\nout_of_orderness = \"0s\"\n{more}"
        ))
        .unwrap();
        Engine::new(
            &config,
            Arc::new(Extractor::new(&ExtractOptions::default())),
        )
    }

    fn danmu(offset: i64, ts: i64, text: &str) -> (i64, String) {
        (
            offset,
            format!(r#"{{"room_id":"r1","ts":{ts},"text":"{text}"}}"#),
        )
    }

    fn run(engine: &mut Engine, records: &[(i64, String)]) -> BatchOutput {
        engine.process(&inputs("danmu", records))
    }

    /// `(offset, JSON value)` records as partition 0 of `topic` delivers them.
    fn inputs<'a>(topic: &'a str, records: &'a [(i64, String)]) -> Vec<Input<'a>> {
        records
            .iter()
            .map(|(offset, json)| Input {
                topic,
                partition: 0,
                offset: *offset,
                payload: Some(json.as_bytes()),
                timestamp: None,
            })
            .collect()
    }

    #[test]
    fn bad_records_become_dead_letters_and_the_rest_goes_on() {
        let mut e = engine();
        let out = run(
            &mut e,
            &[
                (0, "{".into()),
                danmu(1, 1_000, "主播"),
                danmu(2, 30_000, ""),
            ],
        );
        assert_eq!(out.dead.len(), 1);
        assert_eq!(out.dead[0].0, 0);
        assert_eq!(out.dead[0].1.kind(), "not_json");
        assert_eq!(out.closed.len(), 2);
        assert_eq!(out.closed[0].lists()[0], vec![("主播", 1)]);
    }

    /// Records of one partition: realistic texts, event times that mostly advance with some
    /// disorder and some very late, a few bad records.
    fn partition_log(n: usize, seed: u64) -> Vec<(i64, String)> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut traffic = crate::generate::TrafficGen::new(seed, 8);
        (0..n as i64)
            .map(|offset| {
                let ts = 1_000_000 + offset * 97
                    - rng.random_range(0..3_000)
                    - if rng.random_bool(0.02) { 40_000 } else { 0 };
                let value = if rng.random_bool(0.01) {
                    "{broken".to_owned()
                } else {
                    traffic.danmu(ts).1
                };
                (offset, value)
            })
            .collect()
    }

    fn feed(engine: &mut Engine, log: &[(i64, String)]) -> BatchOutput {
        run(engine, log)
    }

    type WindowId = (StreamId, String, i64);

    fn by_window(closed: &[ClosedWindow]) -> std::collections::BTreeMap<WindowId, ClosedWindow> {
        let mut out = std::collections::BTreeMap::new();
        for w in closed {
            let id = (w.stream, w.group.to_string(), w.window_start);
            if let Some(before) = out.insert(id, w.clone()) {
                assert_eq!(before, *w, "a window emitted twice must be identical");
            }
        }
        out
    }

    #[test]
    fn a_partition_continued_from_its_checkpoint_gives_the_results_of_one_run() {
        let closed = continue_from_checkpoints(engine);
        assert!(
            closed.iter().all(|w| w.error == [0; Category::COUNT]),
            "exact by default"
        );
    }

    #[test]
    fn over_its_memory_budget_a_partition_continued_from_its_checkpoint_still_gives_one_run() {
        // 12 KiB over 3 panes: 4 KiB (about 55 counters) a pane, for 8 rooms.
        let small = || engine_with("memory_budget = \"12KiB\"\n[output]\ntop_k = 5");
        let closed = continue_from_checkpoints(small);
        let approximate = closed.iter().filter(|w| w.error[0] > 0).count();
        assert!(
            approximate > closed.len() / 4,
            "{approximate} of {} windows cut",
            closed.len()
        );
    }

    #[test]
    fn over_its_group_cap_a_partition_continued_from_its_checkpoint_still_gives_one_run() {
        // 8 rooms, at most 5 of them a pane: the others' records are dead letters.
        let capped = || engine_with("max_groups = 5");
        let closed = continue_from_checkpoints(capped);
        let mut e = capped();
        let out = feed(&mut e, &partition_log(3_000, 7));
        let overflow = out
            .dead
            .iter()
            .filter(|(_, err)| err.kind() == "too_many_groups")
            .count();
        assert!(overflow > 100, "{overflow} records over the cap");
        assert!(!closed.is_empty());
    }

    /// Feeds a partition's log to one engine, and again to engines that crash and continue
    /// from a checkpoint at various points: every window must come out as in the one run.
    /// Returns the windows of the one run.
    fn continue_from_checkpoints(engine: impl Fn() -> Engine) -> Vec<ClosedWindow> {
        let log = partition_log(3_000, 7);
        let mut whole = engine();
        let expected = feed(&mut whole, &log);
        let expected_dead: Vec<usize> = expected.dead.iter().map(|(i, _)| *i).collect();
        assert!(expected.closed.len() > 100, "the log closes many windows");

        for (checkpoint_at, crash_at) in [
            (0, 0),
            (500, 500),
            (500, 1_700),
            (1_234, 1_300),
            (2_999, 3_000),
        ] {
            // The first owner processes up to the crash, checkpointing at one batch boundary.
            let mut first = engine();
            let head = feed(&mut first, &log[..checkpoint_at]);
            let checkpoint = first.checkpoint("danmu", 0);
            let mut emitted = head.closed;
            let mut dead: Vec<usize> = head.dead.iter().map(|(i, _)| *i).collect();
            let after = feed(&mut first, &log[checkpoint_at..crash_at]);
            emitted.extend(after.closed);
            dead.extend(after.dead.iter().map(|(i, _)| i + checkpoint_at));

            // The next owner starts where the consumer group committed, the checkpoint's `next`.
            let mut next = engine();
            let committed = checkpoint.map_or(0, |c| c.next);
            let first = (committed < log.len() as i64).then_some(committed);
            let seek = next.restore("danmu", 0, checkpoint, committed, first);
            let from = seek.unwrap_or(committed) as usize;
            assert!(from <= committed as usize);
            if seek.is_some() && first.is_some() {
                // The batch in hand is ignored until the consumer has sought back.
                let in_hand = feed(&mut next, &log[committed as usize..]);
                assert!(in_hand.closed.is_empty() && in_hand.dead.is_empty());
            }
            // In batches, as the consumer delivers them: a checkpoint never goes back.
            for (n, batch) in log[from..].chunks(100).enumerate() {
                let rest = feed(&mut next, batch);
                emitted.extend(rest.closed);
                dead.extend(rest.dead.iter().map(|(i, _)| i + from + n * 100));
                if let Some(now) = next.checkpoint("danmu", 0) {
                    assert!(now.next >= committed && now.resume >= from as i64);
                }
            }
            dead.sort_unstable();
            dead.dedup();

            let (got, want) = (by_window(&emitted), by_window(&expected.closed));
            let differing: Vec<&WindowId> = want
                .iter()
                .filter(|(id, w)| got.get(*id) != Some(*w))
                .map(|(id, _)| id)
                .chain(got.keys().filter(|id| !want.contains_key(*id)))
                .collect();
            assert!(
                differing.is_empty(),
                "checkpoint at {checkpoint_at}, crash at {crash_at}: {} windows differ, first {:?}",
                differing.len(),
                differing.first()
            );
            assert_eq!(
                dead, expected_dead,
                "dead letters, checkpoint at {checkpoint_at}"
            );
        }
        expected.closed
    }

    /// `n` posts of the text stream, `gap` ms apart, from the sample sources (half of them
    /// from `weibo`), each ending with three words of a long tail: word r of a million with
    /// probability ≈ 1 / ((r + 1) ln 10⁶), as names and neologisms come in real posts.
    fn posts_log(n: usize, gap: i64) -> Vec<(i64, String)> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        let mut traffic = crate::generate::TrafficGen::new(11, 1);
        (0..n as i64)
            .map(|offset| {
                let (_, json) = traffic.post(1_000_000 + offset * gap);
                let mut post: serde_json::Value = serde_json::from_str(&json).unwrap();
                let mut text = post["text"].as_str().unwrap().to_owned();
                for _ in 0..3 {
                    let rank = 1e6_f64.powf(rng.random::<f64>()) as u32;
                    text.push_str(&format!(" v{rank}"));
                }
                post["text"] = text.into();
                (offset, post.to_string())
            })
            .collect()
    }

    /// Counts per (source, window start): messages, and per category each item's count.
    type Naive =
        std::collections::BTreeMap<(String, i64), (u64, [HashMap<String, u64>; Category::COUNT])>;

    /// The windows of `width` every `slide` ms of a log of posts, counted the straightforward
    /// way: every record in each of its windows (event times only advance: none is late).
    fn naive_windows(
        log: &[(i64, String)],
        (width, slide): (i64, i64),
        extractor: &Extractor,
    ) -> Naive {
        let mut windows = Naive::new();
        let mut scratch = Scratch::default();
        for (_, json) in log {
            let record = decode(Some(json.as_bytes()), "source", None, usize::MAX).unwrap();
            let mut items: Vec<(usize, String)> = Vec::new();
            extractor.extract(&record.text, &mut scratch, |c, item| {
                items.push((c.index(), item.to_owned()))
            });
            let last_start = record.event_time.div_euclid(slide) * slide;
            for start in (last_start - width + slide..=last_start).step_by(slide as usize) {
                let key = (record.group.to_string(), start);
                let (messages, counts) = windows.entry(key).or_default();
                *messages += 1;
                for (c, item) in &items {
                    *counts[*c].entry(item.clone()).or_default() += 1;
                }
            }
        }
        windows
    }

    /// Feeds a log of posts to an engine of `config`, in batches of 1,000, then a post far
    /// ahead that closes every window; returns the windows of the log.
    fn window_posts(
        config: &Config,
        extractor: &Arc<Extractor>,
        log: &[(i64, String)],
    ) -> Vec<ClosedWindow> {
        let mut engine = Engine::new(config, extractor.clone());
        let far = r#"{"id":"far","source":"far","ts":9000000000,"text":""}"#;
        let end = (log.len() as i64, far.to_owned());
        let mut closed = Vec::new();
        for batch in log.chunks(1_000).chain([std::slice::from_ref(&end)]) {
            closed.extend(engine.process(&inputs("text", batch)).closed);
        }
        closed
    }

    /// Busy sources' posts, windowed under a configuration and counted naively.
    struct BusySources {
        log: Vec<(i64, String)>,
        extractor: Arc<Extractor>,
        naive: Naive,
        closed: Vec<ClosedWindow>,
    }

    fn busy_sources(config: &Config) -> BusySources {
        let extractor = Arc::new(Extractor::new(&ExtractOptions::default()));
        let log = posts_log(12_000, 2);
        let naive = naive_windows(&log, (config.width_ms(), config.slide_ms()), &extractor);
        let closed = window_posts(config, &extractor, &log);
        assert_eq!(closed.len(), naive.len());
        BusySources {
            log,
            extractor,
            naive,
            closed,
        }
    }

    #[test]
    fn a_busy_source_window_is_exact_under_the_default_settings() {
        let config = Config::from_toml("").unwrap();
        // 5,000 posts a pane (one slide, 10 s), 2,500 of them from weibo.
        let BusySources {
            log,
            extractor,
            naive,
            closed,
        } = busy_sources(&config);
        let slide = config.slide_ms();
        let busiest = |windows: &Naive| {
            windows
                .iter()
                .map(|((source, _), (_, counts))| (counts[0].len(), source.clone()))
                .max()
                .unwrap()
        };
        let pane = busiest(&naive_windows(&log, (slide, slide), &extractor));
        assert!(pane.0 > 3_000, "the busiest pane holds {pane:?} terms");
        let window = busiest(&naive);
        assert!(
            window.0 > 8_000,
            "the busiest window holds {window:?} terms"
        );
        for w in &closed {
            let (messages, counts) = &naive[&(w.group.to_string(), w.window_start)];
            assert_eq!(w.messages, *messages);
            for (c, counts) in counts.iter().enumerate() {
                let counts: HashMap<&str, u64> =
                    counts.iter().map(|(i, n)| (i.as_str(), *n)).collect();
                let want = crate::window::top_k(counts, config.output().top_k);
                assert_eq!(
                    w.lists()[c],
                    want,
                    "{} {} category {c}",
                    w.group,
                    w.window_start
                );
            }
            assert_eq!(w.error, [0; Category::COUNT]);
        }
    }

    #[test]
    fn over_the_budget_every_listed_count_is_within_its_stated_error() {
        // 64 KiB a pane, about 900 counters for all sources.
        let config = Config::from_toml("[window]\nmemory_budget = \"512KiB\"").unwrap();
        let BusySources { naive, closed, .. } = busy_sources(&config);
        let mut cut = 0;
        for w in &closed {
            let (messages, counts) = &naive[&(w.group.to_string(), w.window_start)];
            assert_eq!(w.messages, *messages);
            for (c, (listed, error)) in w.lists().iter().zip(w.error).enumerate() {
                for (item, count) in listed {
                    let truth = counts[c][*item];
                    assert!(
                        *count <= truth && truth - count <= error,
                        "{} {}: {item} counted {count}, truly {truth}, error {error}",
                        w.group,
                        w.window_start
                    );
                }
            }
            cut += usize::from(w.error[0] > 0);
        }
        assert!(cut > 0, "the budget cuts some windows");
        // The words common to every post are held from the start of every pane: exact.
        let weibo = closed
            .iter()
            .find(|w| &*w.group == "weibo" && w.error[0] > 0);
        let (item, count) = &weibo.expect("a weibo window is cut").lists()[0][0];
        assert_eq!(
            *count,
            naive[&("weibo".to_owned(), weibo.unwrap().window_start)].1[0][*item]
        );
    }

    /// The counters the fullest pane of a partition needs, and those of all its panes at most,
    /// in bytes: `n` records of the sample traffic, `step` ms of event time apart, danmu
    /// keyed by room over four partitions, or posts of every source on one.
    fn pane_demand(
        n: usize,
        rooms: u32,
        vocabulary: u32,
        posts: bool,
        step: f64,
    ) -> (usize, usize) {
        let extractor = Extractor::new(&ExtractOptions::default());
        let mut traffic = crate::generate::TrafficGen::new(1, rooms).with_vocabulary(vocabulary);
        let spec = WindowSpec {
            width: 60_000,
            slide: 10_000,
            out_of_orderness: 5_000,
        };
        let mut windows = PartitionWindows::new(0, spec, 20, Budget::UNBOUNDED);
        let (mut scratch, mut closed) = (Scratch::default(), Vec::new());
        let (mut fullest, mut all) = (0, 0);
        for i in 0..n {
            let ts = 1_763_780_000_000 + (i as f64 * step) as i64;
            let (key, json) = if posts {
                traffic.post(ts)
            } else {
                traffic.danmu(ts)
            };
            // Rooms spread over four partitions; the five sources all on this one.
            if !posts && !fnv1a(key.as_bytes()).is_multiple_of(4) {
                continue;
            }
            let group_by = if posts { "source" } else { "room_id" };
            let record = decode(Some(json.as_bytes()), group_by, None, usize::MAX).unwrap();
            let count = |counts: &mut crate::window::Counts| {
                extractor.extract(&record.text, &mut scratch, |c, item| counts.add(c, item))
            };
            windows.record(
                &record.group,
                record.event_time,
                i as i64,
                count,
                &mut closed,
            );
            closed.clear();
            if i % 1_000 == 0 {
                fullest = fullest.max(windows.fullest_pane_bytes());
                all = all.max(windows.bytes());
            }
        }
        (fullest, all)
    }

    /// The data of BENCHMARKS.md stays exact under the default budget: the fullest pane of a
    /// partition fits the pane budget. Slow unoptimised (about 30 s); prints what it measures:
    /// `cargo test --lib benchmark_data -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn the_benchmark_data_stays_within_the_default_budget() {
        let config = Config::from_toml("").unwrap();
        let spec = WindowSpec {
            width: config.width_ms(),
            slide: config.slide_ms(),
            out_of_orderness: config.out_of_orderness_ms(),
        };
        let budget = Budget::of(&config);
        let mib = |bytes: usize| bytes as f64 / f64::from(1 << 20);
        for (name, n, rooms, vocabulary, posts, step) in [
            (
                "e2e danmu: 1M, 10,000 rooms, 1 ms a record",
                1_000_000,
                10_000,
                0,
                false,
                1.0,
            ),
            (
                "e2e posts: 200k, 1 ms a record, one partition",
                200_000,
                1,
                0,
                true,
                1.0,
            ),
            (
                "memory: 1M danmu, 100,000 rooms, vocabulary 1M",
                1_000_000,
                100_000,
                1_000_000,
                false,
                1.0,
            ),
            (
                "latency: 65,000 danmu/s for 25 s",
                1_625_000,
                10_000,
                0,
                false,
                1000.0 / 65_000.0,
            ),
        ] {
            let (fullest, all) = pane_demand(n, rooms, vocabulary, posts, step);
            println!(
                "{name}: fullest pane {:.2} MiB of {:.2}, all panes {:.2} MiB",
                mib(fullest),
                mib(budget.pane_bytes(&spec)),
                mib(all)
            );
            assert!(fullest <= budget.pane_bytes(&spec), "{name}");
        }
    }

    /// An engine of the default settings with `workers` threads.
    fn with_workers(workers: usize) -> Engine {
        let config = Config::from_toml(&format!("[batch]\nworkers = {workers}")).unwrap();
        Engine::new(
            &config,
            Arc::new(Extractor::new(&ExtractOptions::default())),
        )
    }

    fn assert_same_output(a: &BatchOutput, b: &BatchOutput) {
        assert_eq!(a.closed, b.closed);
        assert_eq!(a.dead, b.dead);
        assert_eq!(a.counts, b.counts);
    }

    #[test]
    fn partitions_processed_in_parallel_give_what_one_worker_gives() {
        // Six partitions' logs interleaved into batches, as a consumer delivers them.
        let logs: Vec<Vec<(i64, String)>> = (0..6).map(|p| partition_log(2_000, p)).collect();
        let batches: Vec<Vec<Input<'_>>> = (0..20)
            .map(|b| {
                (b * 100..(b + 1) * 100)
                    .flat_map(|i| {
                        logs.iter().enumerate().map(move |(p, log)| Input {
                            topic: "danmu",
                            partition: p as i32,
                            offset: log[i].0,
                            payload: Some(log[i].1.as_bytes()),
                            timestamp: None,
                        })
                    })
                    .collect()
            })
            .collect();
        let (mut one, mut four) = (with_workers(1), with_workers(4));
        for batch in &batches {
            assert_same_output(&one.process(batch), &four.process(batch));
        }
        assert!(one.open_groups() > 0 && one.open_groups() == four.open_groups());
        for p in 0..6 {
            assert_eq!(one.checkpoint("danmu", p), four.checkpoint("danmu", p));
        }
    }

    #[test]
    fn one_partitions_records_extracted_in_parallel_give_what_one_worker_gives() {
        // One partition, in batches of many chunks each (and a last, short one).
        let log = partition_log(5_000, 7);
        let (mut one, mut three) = (with_workers(1), with_workers(3));
        let mut closed = 0;
        for batch in log.chunks(CHUNK * 7 + 5) {
            let inputs = inputs("danmu", batch);
            let (a, b) = (one.process(&inputs), three.process(&inputs));
            assert_same_output(&a, &b);
            closed += a.closed.len();
        }
        assert!(closed > 0, "windows closed");
        assert!(one.open_groups() > 0 && one.open_groups() == three.open_groups());
        assert_eq!(one.checkpoint("danmu", 0), three.checkpoint("danmu", 0));
    }

    /// A broker that, like tansu 0.6, serves a fetch starting inside a stored batch from the
    /// next batch: the records `from` sends are those from the first batch that starts at or
    /// after `from` (batches of `batch` records).
    fn skipping_fetch(log: &[(i64, String)], batch: usize, from: i64) -> &[(i64, String)] {
        let start = (from as usize).div_ceil(batch) * batch;
        &log[start.min(log.len())..]
    }

    /// Takes a partition up from `checkpoint` with the first record delivered at `first` and
    /// follows the engine's seeks and rewinds against `skipping_fetch`, delivering in batches
    /// of 100; returns what was emitted and how many rewinds it took.
    fn take_up_on_a_skipping_broker(
        log: &[(i64, String)],
        checkpoint: Option<Checkpoint>,
        committed: i64,
        first: Option<i64>,
    ) -> (Vec<ClosedWindow>, u32) {
        let mut next = engine();
        let mut emitted = Vec::new();
        let mut rewinds = 0;
        let mut position = next.restore("danmu", 0, checkpoint, committed, first);
        if let Some(first) = first {
            // The records in hand came before the seek: left alone.
            let in_hand = feed(&mut next, &log[first as usize..][..100]);
            assert!(in_hand.closed.is_empty() && in_hand.gaps.is_empty());
        }
        'fetching: while let Some(from) = position.take() {
            for chunk in skipping_fetch(log, 1_000, from).chunks(100) {
                let out = feed(&mut next, chunk);
                emitted.extend(out.closed);
                if let Some(gap) = out.gaps.first() {
                    assert!(gap.first_offset > gap.target);
                    rewinds += 1;
                    position = next.rewind("danmu", 0, 0);
                    continue 'fetching;
                }
            }
            if next.seeking().next().is_some() {
                // Nothing delivered from inside the last batch: the watchdog rewinds.
                rewinds += 1;
                position = next.rewind("danmu", 0, 0);
            }
        }
        assert!(next.seeking().next().is_none(), "the partition settles");
        (emitted, rewinds)
    }

    #[test]
    fn a_take_up_mid_batch_on_a_broker_that_skips_to_the_next_batch_loses_nothing() {
        let log = partition_log(5_000, 11);
        let expected = by_window(&feed(&mut engine(), &log).closed);
        // The first owner checkpoints at 3_456: inside a stored batch of 1_000 records.
        let mut first = engine();
        let head = feed(&mut first, &log[..3_456]);
        let checkpoint = first.checkpoint("danmu", 0).unwrap();
        assert!(
            checkpoint.resume % 1_000 != 0,
            "the replay starts mid-batch"
        );

        for (case, first_offset) in [
            ("records in hand from the next batch", Some(4_000)),
            ("nothing delivered yet", None),
        ] {
            let (emitted, rewinds) =
                take_up_on_a_skipping_broker(&log, Some(checkpoint), 3_456, first_offset);
            assert!(rewinds >= 1, "{case}: the gap is seen and repaired");
            let mut all = head.closed.clone();
            all.extend(emitted);
            assert_eq!(by_window(&all), expected, "{case}");
        }

        // Committed inside the last batch, no checkpoint: nothing would ever be delivered.
        let (emitted, rewinds) = take_up_on_a_skipping_broker(&log, None, 4_321, None);
        assert!(
            rewinds >= 2,
            "a rewind within the last batch delivers nothing either"
        );
        let fresh = {
            let mut e = engine();
            e.restore("danmu", 0, None, 4_321, Some(4_321));
            by_window(&feed(&mut e, &log[4_321..]).closed)
        };
        assert_eq!(by_window(&emitted), fresh);
    }

    #[test]
    fn a_gap_at_the_log_start_is_counted_as_lost_and_not_rewound() {
        let log = partition_log(300, 5);
        let mut e = engine();
        // Committed at 50, but the log now starts at 200 (older records deleted).
        assert_eq!(e.restore("danmu", 0, None, 50, Some(200)), Some(49));
        let in_hand = feed(&mut e, &log[200..]);
        assert!(in_hand.gaps.is_empty() && in_hand.counts.records == 0);
        // Sent to 49, the consumer gets the log's first record, 200: a gap.
        let out = feed(&mut e, &log[200..]);
        assert_eq!(out.gaps.len(), 1);
        assert_eq!(e.rewind("danmu", 0, 200), Some(200));
        let out = feed(&mut e, &log[200..]);
        assert!(out.gaps.is_empty());
        assert_eq!(out.counts.lost, 150);
        assert_eq!(out.counts.records, 100);
        assert!(e.seeking().next().is_none());
    }

    #[test]
    fn a_checkpoint_made_under_other_settings_is_not_used() {
        let mut e = engine();
        run(&mut e, &[danmu(0, 1_000, "主播")]);
        let mut checkpoint = e.checkpoint("danmu", 0).unwrap();
        checkpoint.settings ^= 1;
        let mut other = engine();
        assert_eq!(
            other.restore("danmu", 0, Some(checkpoint), 1, Some(1)),
            None
        );
        let out = run(&mut other, &[danmu(1, 30_000, "")]);
        assert!(out.closed.is_empty(), "fresh windows: nothing to close");
    }

    /// The settings fingerprint of `toml` with the stop words its configuration reads.
    fn fingerprint_of(toml: &str) -> u64 {
        let config = Config::from_toml(toml).unwrap();
        let extractor = Extractor::new(&ExtractOptions {
            extra_stop_words: config.extra_stop_words().unwrap(),
            ..ExtractOptions::default()
        });
        settings_fingerprint(&config, &extractor)
    }

    #[test]
    fn the_settings_fingerprint_covers_the_stop_words_file_contents_not_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let [a, b] = ["a.txt", "b.txt"].map(|f| dir.path().join(f));
        let with = |path: &std::path::Path| {
            fingerprint_of(&format!(
                "[extract]\nstop_words_file = {:?}",
                path.display().to_string()
            ))
        };
        std::fs::write(&a, "主播\n").unwrap();
        let before = with(&a);
        assert_ne!(before, fingerprint_of(""), "the file's words count");
        std::fs::write(&a, "主播\n弹幕\n").unwrap();
        assert_ne!(with(&a), before, "same path, other words");
        // The same words under another path, or with a comment and blank lines: the same.
        std::fs::write(&b, "# extra\n弹幕\n\n主播\n").unwrap();
        assert_eq!(with(&b), with(&a));
    }

    #[test]
    fn the_settings_fingerprint_is_the_same_in_every_run() {
        // A change here means checkpoints made before it are not replayed: fine when the
        // settings did change (the built-in stop words, say), else a bug.
        assert_eq!(fingerprint_of(""), 0x2eda_d045_01e5_5c5d);
        assert_ne!(
            fingerprint_of("[window]\nmax_groups = 7"),
            fingerprint_of("")
        );
    }

    /// Property tests (fuzzing on stable Rust); `PROPTEST_CASES=N` for more.
    mod props {
        use super::*;
        use proptest::prelude::*;

        /// One run over `log`, in batches of the given sizes (cycled).
        fn in_batches(
            engine: &mut Engine,
            log: &[(i64, String)],
            sizes: &[usize],
        ) -> Vec<ClosedWindow> {
            let mut closed = Vec::new();
            let mut at = 0;
            for size in sizes.iter().cycle() {
                if at >= log.len() {
                    break;
                }
                let end = (at + size).min(log.len());
                closed.extend(feed(engine, &log[at..end]).closed);
                at = end;
            }
            closed
        }

        static LOGS: std::sync::LazyLock<Vec<Vec<(i64, String)>>> =
            std::sync::LazyLock::new(|| (0..4).map(|seed| partition_log(1_500, seed)).collect());

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(32),
                ..ProptestConfig::default()
            })]

            /// A replay from a checkpoint at any batch boundary, with a crash at any later
            /// point and any batching, gives what one run gives; no count is above its
            /// window's messages.
            #[test]
            fn a_replay_from_any_checkpoint_equals_one_run(
                log in 0usize..4,
                sizes in proptest::collection::vec(1usize..400, 1..6),
                checkpoint_at in 0usize..1_500,
                crash_after in 0usize..1_500,
                rest_sizes in proptest::collection::vec(1usize..400, 1..6),
            ) {
                let log = &LOGS[log];
                let expected = by_window(&feed(&mut engine(), log).closed);
                for w in expected.values() {
                    for list in &w.lists() {
                        prop_assert!(list.iter().all(|(_, n)| *n <= w.messages));
                    }
                }
                let checkpoint_at = checkpoint_at.min(log.len());
                let crash_at = (checkpoint_at + crash_after).min(log.len());
                let mut first = engine();
                let mut emitted = in_batches(&mut first, &log[..checkpoint_at], &sizes);
                let checkpoint = first.checkpoint("danmu", 0);
                emitted.extend(in_batches(&mut first, &log[checkpoint_at..crash_at], &sizes));

                let mut next = engine();
                let committed = checkpoint.map_or(0, |c| c.next);
                let first_offset = (committed < log.len() as i64).then_some(committed);
                let seek = next.restore("danmu", 0, checkpoint, committed, first_offset);
                if let (Some(_), Some(first_offset)) = (seek, first_offset) {
                    let in_hand = feed(&mut next, &log[first_offset as usize..]);
                    prop_assert!(in_hand.closed.is_empty());
                }
                let from = seek.unwrap_or(committed) as usize;
                emitted.extend(in_batches(&mut next, &log[from..], &rest_sizes));
                prop_assert_eq!(by_window(&emitted), expected);
            }
        }
    }
}
