//! Takes in a row: one recorder, its source open from [`start`](Recorder::start) to
//! [`stop`](Recorder::stop), and any number of takes between, each begun with
//! [`begin_take`](Recorder::begin_take) and ended with [`end_take`](Recorder::end_take)
//! (opt-in: [`RecorderConfig::takes_in_a_row`](super::RecorderConfig::takes_in_a_row)).
//!
//! Between takes the worker feeds only the rolling window: no take, no journal, memory bounded
//! by the ring and the window. A take is cut out of the stream of samples the worker takes from
//! the ring by its [`Span`]: it starts with up to a window of audio from before
//! `begin_take` (the pre-roll, copied from the window) and continues exactly with the next
//! sample, and it ends exactly at the samples the source had pushed when `end_take` was
//! called. A device's fragment still on its way then (up to one device buffer) is not waited
//! for, unlike at `stop`: it goes to the window, where the next take's pre-roll finds it.
//!
//! Each take is a take like any other: its own journal and manifest (a killed process's take
//! is recovered by the next start), its cache charged to the budget, its mode, its `save`.
//! Ended, it is an [`EndedTake`], saved or dropped (its journal removed) on its own while the
//! next one records.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Recorder, RecorderInfo, RecorderState, read_all};
use crate::error::{Error, Result};
use crate::take::{Saved, TakeStore};
use crate::units::lock;

/// The samples of the stream (counted from the start) that belong to the running take:
/// `from..until`. Changed and read under the lock of the recorder's take, so the worker sees a
/// take and its span together; relaxed atomics only make the recorder `Sync`.
#[derive(Debug)]
pub(super) struct Span {
    /// Where the take's pre-roll begins (for [`EndedTake::first_frame`]).
    first: AtomicU64,
    from: AtomicU64,
    until: AtomicU64,
}

impl Default for Span {
    /// The whole stream: a recorder that records one take.
    fn default() -> Self {
        Self {
            first: AtomicU64::new(0),
            from: AtomicU64::new(0),
            until: AtomicU64::new(u64::MAX),
        }
    }
}

impl Span {
    /// The part of `samples`, the stream's samples from `at` on, inside the span.
    pub(super) fn part<'a>(&self, samples: &'a [i16], at: u64) -> &'a [i16] {
        let from = self.from.load(Ordering::Relaxed);
        let until = self.until.load(Ordering::Relaxed);
        let skip = usize::try_from(from.saturating_sub(at)).unwrap_or(usize::MAX);
        let keep = usize::try_from(until.saturating_sub(at)).unwrap_or(usize::MAX);
        samples
            .get(skip.min(keep)..keep.min(samples.len()))
            .unwrap_or_default()
    }

    /// A take of the stream from `from` on, whose pre-roll began at `first`.
    fn open_at(&self, first: u64, from: u64) {
        self.first.store(first, Ordering::Relaxed);
        self.from.store(from, Ordering::Relaxed);
        self.until.store(u64::MAX, Ordering::Relaxed);
    }

    fn close_at(&self, until: u64) {
        self.until.store(until, Ordering::Relaxed);
    }
}

/// A take ended by [`Recorder::end_take`] while its recorder goes on: its samples (journal
/// and cache), its figures at the end, and [`save`](Self::save). Dropped unsaved, its journal
/// is removed.
#[derive(Debug)]
pub struct EndedTake {
    store: Mutex<TakeStore>,
    info: RecorderInfo,
    first_frame: u64,
}

impl EndedTake {
    /// The whole take as interleaved 16-bit samples, pre-roll included.
    ///
    /// # Errors
    ///
    /// The journal cannot be read.
    pub fn samples_i16(&self) -> Result<Vec<i16>> {
        read_all(&mut lock(&self.store))
    }

    /// The recorder's figures when the take ended, with the take's own: `frames_captured` is
    /// the take's length (pre-roll included), the cache and disk figures are the take's.
    pub fn info(&self) -> &RecorderInfo {
        &self.info
    }

    /// The frame of the recorder's stream (counted from its start) the take begins with: where
    /// its pre-roll begins.
    pub fn first_frame(&self) -> u64 {
        self.first_frame
    }

    /// The oldest event not yet handed out that cost the take durability or audio.
    pub fn poll_event(&self) -> Option<Error> {
        lock(&self.store).take_error()
    }

    /// Writes the take to `path`, as [`Recorder::save`] does.
    ///
    /// # Errors
    ///
    /// The output cannot be written.
    pub fn save(self, path: &Path) -> Result<Saved> {
        let store = self
            .store
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let saved = store.save(path);
        crate::memory::trim::release_freed();
        saved
    }
}

impl Recorder {
    /// Whether this recorder records takes in a row.
    pub fn takes_in_a_row(&self) -> bool {
        self.config.takes_in_a_row
    }

    /// Begins a take whose first samples are the last `pre_roll` of audio in the window — as
    /// much as it holds, so less just after the start — followed without a gap or a repeat by
    /// what the source captures next. Its journal is created now. The pre-roll is copied into
    /// the take while the worker waits (the ring holds what arrives meanwhile).
    ///
    /// # Errors
    ///
    /// Not a recorder of takes in a row; not recording; a take is running; `pre_roll` longer
    /// than the window; the journal cannot be created.
    pub fn begin_take(&self, pre_roll: Duration) -> Result<()> {
        self.check_row(&[RecorderState::Recording])?;
        if pre_roll > self.config.window {
            return Err(Error::usage(
                format!(
                    "a pre-roll of {:.3} s is longer than the window ({:.3} s)",
                    pre_roll.as_secs_f64(),
                    self.config.window.as_secs_f64()
                ),
                "ask for at most the window, or build the session with a longer window",
            ));
        }
        let running = || {
            Error::usage(
                "a take is already running",
                "end it with end_take before beginning the next",
            )
        };
        if lock(&self.shared.take).is_some() {
            return Err(running());
        }
        let mut store = self.new_take(self.config.mode)?;
        let mut take = lock(&self.shared.take);
        if take.is_some() {
            return Err(running());
        }
        let from = self.seed(&mut store, pre_roll);
        let first = from.saturating_sub(store.samples());
        self.shared.span.open_at(first, from);
        self.shared.note_cache(&store);
        *take = Some(store);
        Ok(())
    }

    /// Writes the window's last `pre_roll` into `store`; returns the stream's sample that
    /// follows it. Called under the take's lock, so the worker writes nothing in between.
    fn seed(&self, store: &mut TakeStore, pre_roll: Duration) -> u64 {
        let channels = usize::from(self.channels);
        let window = lock(&self.shared.window);
        let frames = ((pre_roll.as_secs_f64() * f64::from(self.rate)).round() as usize)
            .min(window.frames_available());
        let mut samples = vec![0i16; frames * channels];
        let got = window.latest(frames, &mut samples);
        // The worker writes whole frames while the source runs: the window holds no half
        // frame the take would miss.
        let next = window.samples_written();
        drop(window);
        samples.truncate(got * channels);
        store.write(&samples);
        next
    }

    /// Ends the running take exactly at what the source pushed up to this call (after
    /// [`stop`](Recorder::stop): at its end) and hands it over; the recorder goes on feeding
    /// the window.
    ///
    /// # Errors
    ///
    /// Not a recorder of takes in a row; not started; no take is running.
    pub fn end_take(&self) -> Result<EndedTake> {
        self.check_row(&[RecorderState::Recording, RecorderState::Stopped])?;
        let none = || Error::usage("no take is running", "begin one with begin_take first");
        // Whole frames pushed so far; everything, once the ring is gone (stopped).
        let cut = lock(&self.life).ring.as_ref().map_or(u64::MAX, |r| {
            let pushed = r.stats().pushed as u64;
            pushed - pushed % u64::from(self.channels)
        });
        {
            let take = lock(&self.shared.take);
            if take.is_none() {
                return Err(none());
            }
            let from = self.shared.span.from.load(Ordering::Relaxed);
            self.shared.span.close_at(cut.max(from));
        }
        self.wait_taken(cut);
        let mut info = self.info();
        let first = self.shared.span.first.load(Ordering::Relaxed);
        let mut store = lock(&self.shared.take).take().ok_or_else(none)?;
        self.shared.cache_buffer.set_bytes(0);
        store.checkpoint();
        let channels = u64::from(self.channels);
        info.state = RecorderState::Stopped;
        info.samples_captured = store.samples();
        info.frames_captured = store.samples() / channels;
        info.seconds_captured = info.frames_captured as f64 / f64::from(self.rate);
        Ok(EndedTake {
            store: Mutex::new(store),
            info,
            first_frame: first / channels,
        })
    }

    /// Waits until the worker took the stream's samples up to `cut` (or it cannot any more).
    fn wait_taken(&self, cut: u64) {
        while self.shared.samples.load(Ordering::Acquire) < cut && !self.is_complete() {
            let life = lock(&self.life);
            let Some(worker) = life.worker.as_ref() else {
                return;
            };
            worker.thread().unpark();
            drop(life);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A usage error unless this recorder records takes in a row and is in one of `states`.
    fn check_row(&self, states: &[RecorderState]) -> Result<()> {
        if !self.config.takes_in_a_row {
            return Err(Error::usage(
                "this session records a single take",
                "build it with takes_in_a_row(true) to begin and end takes",
            ));
        }
        let state = lock(&self.life).state;
        match state {
            _ if states.contains(&state) => Ok(()),
            RecorderState::Idle => Err(Error::usage(
                "the session was not started",
                "start it before taking takes",
            )),
            _ => Err(Error::usage(
                "the session was stopped; it takes no new take",
                "start a new session",
            )),
        }
    }
}
