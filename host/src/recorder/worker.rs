//! The worker thread: drains the ring into the rolling window and the take, and steps the
//! memory policy at every second of captured audio, acting on the take itself.
//!
//! A kernel pressure event (see [`crate::memory::monitor`]) wakes the worker, which steps the
//! policy at once, forced, at the audio time it has reached: one clock, one thread acting on
//! the take. In stream mode it then evicts every cached block but the newest: they are on disk
//! already, so memory is given back at no cost to the take.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use w4l_core::level::to_dbfs;
use w4l_core::policy::Action;

use super::Shared;
use crate::memory::buffers::Buffers;
use crate::memory::monitor::{CallbackId, CleanupRequest, MemoryMonitor};
use crate::memory::timeline::{Mark, MarkKind};
use crate::ring::AudioConsumer;
use crate::source::SourceStatus;
use crate::take::Mode;
use crate::units::{format_bytes, lock};

/// Samples the worker takes from the ring at once.
const DRAIN_CHUNK: usize = 8192;

/// How long the worker sleeps when the ring is empty, unless woken: a fifth of the ring's
/// duration (100 ms for the default 500 ms ring), at least 1 ms. A source that does not run on
/// a real-time thread wakes it when there is audio to take; a device callback must not (waking is a
/// syscall), so for that source the worker polls at this period, and the ring (500 ms) holds a
/// device's 200 ms fragment plus a poll's lateness. Each wake-up is a context switch: at 2 ms
/// they were 57% of `w4l record`'s CPU.
pub(super) fn idle_wait(ring: Duration, source_wakes: bool) -> Duration {
    if source_wakes {
        // Only a bound, in case a wake-up is missed.
        Duration::from_secs(1)
    } else {
        (ring / 5).max(Duration::from_millis(1))
    }
}

/// What the worker owns.
pub(super) struct Worker {
    pub(super) consumer: AudioConsumer,
    pub(super) shared: Arc<Shared>,
    pub(super) monitor: Arc<MemoryMonitor>,
    pub(super) buffers: Arc<Buffers>,
    pub(super) status: Arc<SourceStatus>,
    pub(super) rate: u32,
    pub(super) channels: u16,
    pub(super) limit_samples: Option<u64>,
    pub(super) step_frames: u64,
    pub(super) idle_wait: Duration,
}

/// Marks the take complete when the worker ends, even by a panic (so nobody waits forever).
struct DoneGuard(Arc<Shared>);

/// Wakes the worker at every pressure event while it runs.
struct PressureWake {
    monitor: Arc<MemoryMonitor>,
    id: CallbackId,
}

impl PressureWake {
    fn register(monitor: &Arc<MemoryMonitor>) -> Self {
        let worker = std::thread::current();
        Self {
            monitor: monitor.clone(),
            id: monitor.add_pressure_listener(move || worker.unpark()),
        }
    }
}

impl Drop for PressureWake {
    fn drop(&mut self) {
        self.monitor.remove_pressure_listener(self.id);
    }
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.worker_failed.store(true, Ordering::Release);
        }
        self.0.signal_done();
    }
}

/// The live meter: the peak of the samples taken, published every twentieth of a second.
struct Meter {
    peak: u16,
    metered: u64,
    every: u64,
}

impl Meter {
    /// Updates the peak with `samples`; returns the peak in dBFS once per period.
    fn feed(&mut self, samples: &[i16]) -> Option<f32> {
        // An integer maximum: it vectorizes, where a float meter's running sum would cost as
        // much as the rest of the worker's loop.
        self.peak = samples
            .iter()
            .fold(self.peak, |m, s| m.max(s.unsigned_abs()));
        self.metered += samples.len() as u64;
        if self.metered < self.every {
            return None;
        }
        self.metered = 0;
        Some(to_dbfs(f32::from(std::mem::take(&mut self.peak)) / 32768.0))
    }
}

impl Worker {
    pub(super) fn run(mut self) {
        let _done = DoneGuard(self.shared.clone());
        let _wake = PressureWake::register(&self.monitor);
        let mut pressure_seen = self.monitor.pressure_events();
        // At least a frame: `pop` takes whole frames only.
        let chunk = DRAIN_CHUNK.max(usize::from(self.channels));
        let mut buf = vec![0i16; chunk];
        let channels = u64::from(self.channels);
        let mut meter = Meter {
            peak: 0,
            metered: 0,
            every: (u64::from(self.rate) / 20).max(1) * channels,
        };
        let mut taken = 0u64;
        let mut next_step = self.step_frames * channels;
        let capacity = self.consumer.capacity();
        self.status.set_consumer();
        loop {
            // Read the stop flag *before* popping: if it was set, everything the source pushed
            // is already visible, so an empty pop after it means the ring is drained.
            let stopping = self.shared.stop.load(Ordering::Acquire);
            self.step_on_pressure(self.ms_at(taken), &mut pressure_seen);
            let n = self.pop(&mut buf, stopping);
            if n == 0 {
                if stopping {
                    break;
                }
                if self.status.is_finished() && self.consumer.ring().is_empty() {
                    self.shared.signal_done();
                }
                if !self.status.is_finished() || self.consumer.ring().is_empty() {
                    std::thread::park_timeout(self.idle_wait);
                }
                continue;
            }
            // A source that waits for room is woken by a pop that leaves at least a quarter of
            // the ring free, so it refills in large pieces.
            if self.consumer.ring().free() >= capacity / 4 {
                self.status.wake_producer();
            }
            let left = self
                .limit_samples
                .map_or(u64::MAX, |l| l.saturating_sub(taken));
            // Past the limit, what arrives until `stop` is not part of the take.
            let n = n.min(usize::try_from(left).unwrap_or(usize::MAX));
            let out = &buf[..n];
            if let Some(dbfs) = meter.feed(out) {
                self.shared
                    .peak_bits
                    .store(dbfs.to_bits(), Ordering::Relaxed);
            }
            lock(&self.shared.window).write(out);
            self.keep(out, &mut taken, &mut next_step);
            if self.limit_samples.is_some_and(|l| taken >= l) {
                self.shared.signal_done();
            }
        }
        let mut take = lock(&self.shared.take);
        if let Some(take) = take.as_mut() {
            take.checkpoint();
        }
    }

    /// Pops from the ring into `buf`: whole frames only while the source runs, so that the
    /// window never holds half a frame that a take in a row, begun then, would miss (see
    /// [`super::row`]); everything once it stopped or finished.
    fn pop(&mut self, buf: &mut [i16], stopping: bool) -> usize {
        let mut want = buf.len();
        if !stopping && !self.status.is_finished() {
            let channels = usize::from(self.channels);
            want = self.consumer.len().min(want);
            want -= want % channels;
        }
        self.consumer.pop_slice(&mut buf[..want])
    }

    /// Writes `samples` to the take, stepping the policy exactly on step boundaries of the
    /// sample stream, however the ring happened to chunk it: every decision is a function of
    /// the audio alone (and of the memory readings).
    fn keep(&self, mut samples: &[i16], taken: &mut u64, next_step: &mut u64) {
        let step = self.step_frames * u64::from(self.channels);
        while !samples.is_empty() {
            let to_step = next_step.saturating_sub(*taken);
            let n = samples
                .len()
                .min(usize::try_from(to_step).unwrap_or(usize::MAX));
            self.write(&samples[..n], *taken);
            *taken += n as u64;
            samples = &samples[n..];
            self.shared.samples.store(*taken, Ordering::Release);
            if *taken == *next_step {
                self.step(self.ms_at(*taken), false);
                *next_step += step;
            }
        }
    }

    /// One write to the take of `samples`, which start at sample `taken` of the stream: only
    /// their part inside the take's span (all of it, unless takes in a row cut it). In memory
    /// mode a full budget would cost audio, so the policy runs first (forced): an outside party
    /// (the app's model) may give memory back.
    fn write(&self, samples: &[i16], taken: u64) {
        let needs_room = {
            let take = lock(&self.shared.take);
            take.as_ref().is_some_and(|t| {
                let part = self.shared.span.part(samples, taken);
                t.mode() == Mode::Memory && !t.has_room(part.len())
            })
        };
        if needs_room {
            self.step(self.ms_at(taken), true);
        }
        if let Some(take) = lock(&self.shared.take).as_mut() {
            let part = self.shared.span.part(samples, taken);
            if !part.is_empty() {
                take.write(part);
                self.shared.note_cache(take);
            }
        }
    }

    fn ms_at(&self, samples: u64) -> u64 {
        samples / u64::from(self.channels) * 1000 / u64::from(self.rate.max(1))
    }

    /// A policy step at `now_ms` (the captured audio's time: the one clock of the recorder's
    /// policy), with the take's part of the actions done here.
    fn step(&self, now_ms: u64, force: bool) {
        let report = self
            .monitor
            .step_with(now_ms, force, &mut |request| self.act(request, false));
        self.shared
            .pressure_permille
            .store(u32::from(report.pressure.permille), Ordering::Relaxed);
    }

    /// The forced step of a pressure event the worker has not acted on yet, if any.
    fn step_on_pressure(&self, now_ms: u64, seen: &mut u64) {
        let report = self
            .monitor
            .step_on_pressure(now_ms, seen, &mut |request| self.act(request, true));
        if let Some(report) = report {
            self.shared
                .pressure_permille
                .store(u32::from(report.pressure.permille), Ordering::Relaxed);
        }
    }

    /// The recorder's part of a cleanup. The buffer registry chooses what to act on (lowest
    /// priority, then oldest, among what the recorder can free): the take's cache, whose
    /// oldest blocks are evicted (free: they are on disk; in memory mode a counted loss),
    /// always keeping the newest one. Under kernel pressure a stream take evicts its whole
    /// cache that way, whatever the level. Returns the bytes freed.
    fn act(&self, request: &CleanupRequest, kernel: bool) -> u64 {
        let asked =
            request.wants(Action::SpillOldestAudio) || request.wants(Action::DropOldestAudio);
        let mut guard = lock(&self.shared.take);
        let freed = match guard.as_mut() {
            Some(take) if kernel && take.mode() == Mode::Stream => take.free(u64::MAX, 1),
            Some(take) if asked && self.cache_is_victim(request.wanted) => {
                take.free(request.wanted, 1)
            }
            _ => return 0,
        };
        if let Some(take) = guard.as_ref() {
            self.shared.note_cache(take);
        }
        drop(guard);
        if freed.bytes == 0 {
            return 0;
        }
        let seconds = |n: u64| n as f64 / (f64::from(self.rate) * f64::from(self.channels));
        let mut text = format!(
            "evicted {} of cached audio ({:.1} s, on disk)",
            format_bytes(freed.bytes),
            seconds(freed.evicted_samples)
        );
        if freed.lost_samples > 0 {
            text.push_str(&format!(
                "; {:.1} s of it was not on disk and is lost",
                seconds(freed.lost_samples)
            ));
            tracing::warn!("memory pressure {}: {text}", request.level);
        }
        // On the chart: audio that now lives on disk only is a spill; audio given up, a drop.
        let mark = Mark {
            t_ms: request.at_ms,
            kind: if freed.lost_samples > 0 {
                MarkKind::Drop
            } else {
                MarkKind::Spill
            },
            bytes: freed.bytes,
        };
        self.monitor.note_mark(mark, text);
        freed.bytes
    }

    /// Whether the buffer registry picks the take's cache to free `wanted` bytes.
    fn cache_is_victim(&self, wanted: u64) -> bool {
        let cache = self.shared.cache_buffer.id();
        let wanted = usize::try_from(wanted).unwrap_or(usize::MAX);
        self.buffers
            .victims(wanted, |id| id == cache)
            .iter()
            .any(|(id, _)| *id == cache)
    }
}
