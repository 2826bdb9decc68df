//! The callback side: the only real-time code (see the [module docs](super)). Both backends
//! hand their audio to a [`Feed`]: the ALSA backend from cpal's data callback, the PulseAudio
//! backend from its stream thread.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;
use std::time::Instant;

use w4l_core::sample::{Sample, convert};

use super::{CaptureStats, SampleFormat, SampleSink};

/// Counters shared between the callbacks, the supervisor and whoever reads the stats.
#[derive(Debug)]
pub(super) struct Shared {
    /// Samples delivered by the device (and taken into the take: none after the cut).
    pub(super) samples: AtomicU64,
    /// Samples the sink accepted.
    pub(super) pushed: AtomicU64,
    /// Samples lost.
    pub(super) overruns: AtomicU64,
    /// Samples the backend reported lost (PulseAudio holes, a stop whose last audio never came).
    pub(super) lost_samples: AtomicU64,
    /// Frames the supervisor's stream clock found missing (supervisor only).
    pub(super) clock_lost_frames: AtomicU64,
    /// Errors reported.
    pub(super) errors: AtomicU64,
    /// Xruns reported.
    pub(super) xruns: AtomicU64,
    /// Streams rebuilt (supervisor only).
    pub(super) restarts: AtomicU64,
    /// Frames missed while streams were down (supervisor only).
    pub(super) gap_frames: AtomicU64,
    /// The stream generation whose callbacks may push (0: none).
    pub(super) generation: AtomicU64,
    /// The generation an error declared broken (0: none).
    pub(super) broken: AtomicU64,
    /// `samples` beyond which nothing is taken (the exact stop); `u64::MAX`: no cut.
    pub(super) cut: AtomicU64,
    /// The kind of the last cpal error that broke a stream (an index into the ALSA backend's
    /// breaking kinds, + 1).
    pub(super) last_kind: AtomicU8,
    /// Why the last stream broke, when the backend said so in words (PulseAudio).
    pub(super) reason: Mutex<Option<String>>,
    /// The supervisor's thread, unparked by an error that breaks a stream so that it rebuilds
    /// at once instead of at its next (slow, while all is well) poll.
    pub(super) waker: Mutex<Option<Thread>>,
    /// When [`first_delivery`](Self::first_delivery) counts from.
    epoch: Instant,
    /// The first delivery since the capture started: nanoseconds after `epoch`, plus one (0:
    /// none yet), and `samples` after it. Where the loss clock starts, however late the
    /// supervisor looks.
    first_ns: AtomicU64,
    first_samples: AtomicU64,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            samples: AtomicU64::new(0),
            pushed: AtomicU64::new(0),
            overruns: AtomicU64::new(0),
            lost_samples: AtomicU64::new(0),
            clock_lost_frames: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            xruns: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            gap_frames: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            broken: AtomicU64::new(0),
            cut: AtomicU64::new(u64::MAX),
            last_kind: AtomicU8::new(0),
            reason: Mutex::new(None),
            waker: Mutex::new(None),
            epoch: Instant::now(),
            first_ns: AtomicU64::new(0),
            first_samples: AtomicU64::new(0),
        }
    }
}

impl Shared {
    /// The counters, for a stream of `channels` channels.
    pub(super) fn stats(&self, channels: u16) -> CaptureStats {
        let channels = u64::from(channels.max(1));
        CaptureStats {
            frames: self.samples.load(Ordering::Relaxed) / channels,
            samples_pushed: self.pushed.load(Ordering::Relaxed),
            overruns: self.overruns.load(Ordering::Relaxed),
            lost_frames: self.lost_samples.load(Ordering::Relaxed) / channels
                + self.clock_lost_frames.load(Ordering::Relaxed),
            stream_errors: self.errors.load(Ordering::Relaxed),
            xruns: self.xruns.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            gap_frames: self.gap_frames.load(Ordering::Relaxed),
        }
    }

    /// When the first samples since the capture started came, and `samples` then (`None`
    /// before they came).
    pub(super) fn first_delivery(&self) -> Option<(Instant, u64)> {
        let ns = self.first_ns.load(Ordering::Acquire).checked_sub(1)?;
        let samples = self.first_samples.load(Ordering::Relaxed);
        Some((self.epoch + std::time::Duration::from_nanos(ns), samples))
    }

    /// Forgets the first delivery: the capture starts again.
    pub(super) fn forget_first_delivery(&self) {
        self.first_ns.store(0, Ordering::Release);
    }

    /// Notes the first delivery since the capture started, after which `samples` came in all:
    /// one read of the monotonic clock (the vDSO on Linux, no system call), once per start.
    fn note_first_delivery(&self, samples: u64) {
        let ns = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.first_samples.store(samples, Ordering::Relaxed);
        self.first_ns.store(ns + 1, Ordering::Release);
    }

    /// Marks the stream of `generation` broken and wakes the supervisor: a short lock and a
    /// futex wake, only when a stream is over.
    pub(super) fn break_stream(&self, generation: u64, reason: Option<String>) {
        if let Some(reason) = reason {
            *self.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        }
        self.broken.store(generation, Ordering::Release);
        if let Some(supervisor) = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            supervisor.unpark();
        }
    }
}

/// The sink, reachable by one party at a time: the current stream's callback, or the supervisor
/// (to install, hand over, or take it away). A flag, not a mutex: the callback never waits; if
/// the slot is busy (only while the supervisor swaps the sink) it counts its samples as lost.
pub(super) struct SinkSlot {
    busy: AtomicBool,
    sink: UnsafeCell<Option<Box<dyn SampleSink>>>,
}

// SAFETY: the `UnsafeCell` is only reached through `try_with` and `replace`, and both do so only
// between winning `busy` (a compare-exchange from false to true, Acquire) and releasing it (a
// Release store of false, by `SlotGuard::drop`): at most one thread touches the sink at a time,
// and each one sees the previous one's writes. The sink itself is `Send`.
unsafe impl Sync for SinkSlot {}

/// Releases the slot's flag when dropped (also if the sink panics).
struct SlotGuard<'a>(&'a AtomicBool);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl SinkSlot {
    pub(super) fn new() -> Self {
        Self {
            busy: AtomicBool::new(false),
            sink: UnsafeCell::new(None),
        }
    }

    fn acquire(&self) -> Option<SlotGuard<'_>> {
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SlotGuard(&self.busy))
    }

    /// Runs `f` on the sink. `None` if the slot is busy; `Some(None)` if it holds no sink.
    #[inline]
    fn try_with<R>(&self, f: impl FnOnce(&mut dyn SampleSink) -> R) -> Option<Option<R>> {
        let _guard = self.acquire()?;
        // SAFETY: `_guard` proves this thread won `busy`, so nobody else touches the cell until
        // it is dropped at the end of this function (see `unsafe impl Sync`).
        let sink = unsafe { &mut *self.sink.get() };
        Some(sink.as_mut().map(|s| f(s.as_mut())))
    }

    /// Puts `sink` in (or takes it out with `None`), waiting for a callback in progress to end.
    /// Returns what was there.
    pub(super) fn replace(&self, sink: Option<Box<dyn SampleSink>>) -> Option<Box<dyn SampleSink>> {
        let _guard = loop {
            if let Some(g) = self.acquire() {
                break g;
            }
            // A callback is pushing: a few microseconds.
            std::thread::yield_now();
        };
        // SAFETY: as in `try_with`.
        let slot = unsafe { &mut *self.sink.get() };
        std::mem::replace(slot, sink)
    }
}

/// Samples in the callback's conversion buffer (8 KiB of `i16`).
pub(super) const SCRATCH_SAMPLES: usize = 4096;

/// A sample type a backend delivers and the core converts.
pub(super) trait Incoming: Sample + Send + 'static {
    /// Converts `data` through `scratch`, `N` samples at a time, and offers every chunk to the
    /// sink (so that what the sink refuses is exactly what this does not count as accepted);
    /// returns how many samples the sink accepted.
    #[inline]
    fn deliver<const N: usize>(
        data: &[Self],
        scratch: &mut [i16; N],
        sink: &mut dyn SampleSink,
    ) -> usize {
        const { assert!(N > 0, "the scratch buffer must hold a sample") };
        let mut accepted = 0;
        for chunk in data.chunks(N) {
            // `convert` writes `min(chunk.len(), N)` samples: the whole chunk.
            let n = convert(chunk, scratch);
            let (converted, _) = scratch.split_at(n);
            accepted += sink.push(converted);
        }
        accepted
    }
}

impl Incoming for i16 {
    #[inline]
    fn deliver<const N: usize>(
        data: &[i16],
        _scratch: &mut [i16; N],
        sink: &mut dyn SampleSink,
    ) -> usize {
        sink.push(data)
    }
}
impl Incoming for f32 {}
impl Incoming for i32 {}
impl Incoming for u16 {}
impl Incoming for u8 {}
impl Incoming for i8 {}

/// Samples decoded from bytes per step of [`Feed::on_le_bytes`].
const DECODE_SAMPLES: usize = 1024;

/// What one stream's data callback owns. The scratch buffer's length is part of the type (and
/// checked non-zero when compiled), so the callback cannot slice it out of bounds.
pub(super) struct Feed<const N: usize = SCRATCH_SAMPLES> {
    shared: Arc<Shared>,
    slot: Arc<SinkSlot>,
    scratch: Box<[i16; N]>,
    generation: u64,
}

impl<const N: usize> Feed<N> {
    pub(super) fn new(shared: Arc<Shared>, slot: Arc<SinkSlot>, generation: u64) -> Self {
        Self {
            shared,
            slot,
            scratch: Box::new([0; N]),
            generation,
        }
    }

    /// The data callback. No allocation, lock, system call, logging or panic (the capture's
    /// very first delivery reads the clock once, see [`Shared::note_first_delivery`]).
    #[inline]
    pub(super) fn on_data<T: Incoming>(&mut self, data: &[T]) {
        if self.shared.generation.load(Ordering::Acquire) != self.generation {
            // A stream that was replaced or stopped: its samples are not part of the take.
            return;
        }
        // Past the exact stop's cut: not part of the take.
        let before = self.shared.samples.load(Ordering::Relaxed);
        let room = self
            .shared
            .cut
            .load(Ordering::Acquire)
            .saturating_sub(before);
        let data = data.get(..data.len().min(room as usize)).unwrap_or(data);
        if data.is_empty() {
            return;
        }
        let n = data.len() as u64;
        let scratch = &mut *self.scratch;
        let accepted = match self
            .slot
            .try_with(|sink| T::deliver(data, scratch, sink) as u64)
        {
            Some(Some(accepted)) => accepted.min(n),
            // No sink (stopping): not part of the take, neither delivered nor lost.
            Some(None) => return,
            // Busy: the supervisor is swapping the sink.
            None => 0,
        };
        self.shared.samples.fetch_add(n, Ordering::Relaxed);
        if self.shared.first_ns.load(Ordering::Relaxed) == 0 {
            self.shared.note_first_delivery(before + n);
        }
        self.shared.pushed.fetch_add(accepted, Ordering::Relaxed);
        if accepted < n {
            self.shared
                .overruns
                .fetch_add(n - accepted, Ordering::Relaxed);
        }
    }

    /// [`on_data`](Self::on_data) for little-endian samples of `format` in `bytes` (a whole
    /// number of samples), decoded in steps of [`DECODE_SAMPLES`] on the stack.
    pub(super) fn on_le_bytes(&mut self, format: SampleFormat, bytes: &[u8]) {
        match format {
            SampleFormat::F32 => {
                self.decode(bytes, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            SampleFormat::I16 => self.decode(bytes, |b| i16::from_le_bytes([b[0], b[1]])),
            SampleFormat::I32 => {
                self.decode(bytes, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            SampleFormat::U16 => self.decode(bytes, |b| u16::from_le_bytes([b[0], b[1]])),
            SampleFormat::U8 => self.decode(bytes, |b| b[0]),
            SampleFormat::I8 => self.decode(bytes, |b| b[0] as i8),
        }
    }

    #[inline]
    fn decode<T: Incoming + Default>(&mut self, bytes: &[u8], read: impl Fn(&[u8]) -> T) {
        let size = size_of::<T>();
        let mut buf = [T::default(); DECODE_SAMPLES];
        for chunk in bytes.chunks(DECODE_SAMPLES * size) {
            let n = chunk.len() / size;
            for (dst, src) in buf.iter_mut().zip(chunk.chunks_exact(size)) {
                *dst = read(src);
            }
            self.on_data(&buf[..n]);
        }
    }

    /// Samples the sink can take now (0 while it is busy being swapped; unbounded without a
    /// sink: nothing is pushed then anyway).
    pub(super) fn room(&self) -> usize {
        match self.slot.try_with(|sink| sink.room()) {
            Some(Some(room)) => room,
            Some(None) => usize::MAX,
            None => 0,
        }
    }

    /// A fragment was delivered: the sink may wake its consumer ([`SampleSink::flush`]). Not
    /// from a real-time callback.
    pub(super) fn flush(&self) {
        let _ = self.slot.try_with(|sink| sink.flush());
    }

    /// The backend lost `samples` (a hole in the stream): counted, never hidden.
    pub(super) fn lost(&mut self, samples: u64) {
        if self.shared.generation.load(Ordering::Acquire) == self.generation {
            self.shared
                .lost_samples
                .fetch_add(samples, Ordering::Relaxed);
        }
    }

    /// From now on at most `samples` more are taken (the exact stop).
    pub(super) fn cut_after(&mut self, samples: u64) {
        let now = self.shared.samples.load(Ordering::Relaxed);
        self.shared
            .cut
            .store(now.saturating_add(samples), Ordering::Release);
    }

    /// The stream broke (the backend's words): the supervisor rebuilds it.
    pub(super) fn break_stream(&self, reason: String) {
        self.shared.errors.fetch_add(1, Ordering::Relaxed);
        self.shared.break_stream(self.generation, Some(reason));
    }

    /// What the ALSA backend's error callback needs.
    pub(super) fn shared(&self) -> (&Arc<Shared>, u64) {
        (&self.shared, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that takes at most `room` samples in all.
    struct Limited {
        room: usize,
        got: Arc<std::sync::Mutex<Vec<i16>>>,
    }

    impl Limited {
        fn boxed(room: usize) -> (Box<dyn SampleSink>, Arc<std::sync::Mutex<Vec<i16>>>) {
            let got = Arc::new(std::sync::Mutex::new(Vec::new()));
            (
                Box::new(Limited {
                    room,
                    got: got.clone(),
                }),
                got,
            )
        }
    }

    impl SampleSink for Limited {
        fn push(&mut self, samples: &[i16]) -> usize {
            let n = samples.len().min(self.room);
            self.room -= n;
            self.got
                .lock()
                .expect("test sink")
                .extend_from_slice(&samples[..n]);
            n
        }
    }

    #[test]
    fn conversion_and_overrun_counting_for_every_format() {
        fn run<T: Incoming>(data: &[T], room: usize) -> (Vec<i16>, CaptureStats) {
            let shared = Arc::new(Shared::default());
            shared.generation.store(1, Ordering::Relaxed);
            let slot = Arc::new(SinkSlot::new());
            let (sink, got) = Limited::boxed(room);
            slot.replace(Some(sink));
            // A 3-sample scratch buffer: conversion in several chunks.
            let mut feed = Feed::<3>::new(shared.clone(), slot.clone(), 1);
            feed.on_data(data);
            assert!(slot.replace(None).is_some());
            let stats = shared.stats(1);
            let got = got.lock().expect("test sink").clone();
            (got, stats)
        }
        let (got, s) = run(&[0i16, 16384, -32768, 32767, -16384], 100);
        assert_eq!(got, [0, 16384, -32768, 32767, -16384]);
        assert_eq!((s.frames, s.samples_pushed, s.overruns), (5, 5, 0));
        let (got, s) = run(&[128u8, 0, 255, 192], 100);
        assert_eq!(got, [0, -32768, 127 << 8, 16384]);
        assert_eq!(s.overruns, 0);
        let (got, _) = run(&[32768u16, 0], 100);
        assert_eq!(got, [0, -32768]);
        // 32-bit: correctly rounded to 16 bits (0x1_8000 is a tie, to even).
        let (got, _) = run(&[i32::MIN, 0x4000_0000, 0x1_8000, i32::MAX], 100);
        assert_eq!(got, [-32768, 16384, 2, 32767]);
        let (got, _) = run(&[-128i8, 64], 100);
        assert_eq!(got, [-32768, 16384]);
        // Float: rounded and saturated.
        let (got, _) = run(&[0.25f32, 1.5, -2.0, 0.5 / 32768.0], 100);
        assert_eq!(got, [8192, 32767, -32768, 0]);
        // A full sink: what it accepted is pushed, the rest counted, never silent.
        let (got, s) = run(&[1i16, 2, 3, 4, 5, 6, 7], 4);
        assert_eq!(got.len(), 4);
        assert_eq!((s.samples_pushed, s.overruns), (4, 3));
        let (got, s) = run(&[0.0f32; 10], 0);
        assert!(got.is_empty());
        assert_eq!(s.overruns, 10);
    }

    #[test]
    fn stale_generation_and_busy_slot() {
        let shared = Arc::new(Shared::default());
        shared.generation.store(2, Ordering::Relaxed);
        let slot = Arc::new(SinkSlot::new());
        slot.replace(Some(Limited::boxed(100).0));
        let mut old = Feed::<8>::new(shared.clone(), slot.clone(), 1);
        old.on_data(&[0.5f32; 4]);
        assert_eq!(
            shared.samples.load(Ordering::Relaxed),
            0,
            "stale stream ignored"
        );
        let mut cur = Feed {
            generation: 2,
            ..old
        };
        let guard = slot.acquire().expect("free");
        cur.on_data(&[0.5f32; 4]);
        drop(guard);
        assert_eq!(
            shared.overruns.load(Ordering::Relaxed),
            4,
            "busy slot counts"
        );
        cur.on_data(&[0.5f32; 4]);
        assert_eq!(shared.pushed.load(Ordering::Relaxed), 4);
        // No sink (stopping): neither delivered nor lost.
        assert!(slot.replace(None).is_some());
        cur.on_data(&[0.5f32; 4]);
        assert_eq!(shared.samples.load(Ordering::Relaxed), 8);
        assert_eq!(shared.pushed.load(Ordering::Relaxed), 4);
        assert_eq!(shared.overruns.load(Ordering::Relaxed), 4);
    }

    /// A sink that refuses every other push, counting what it refused (like the ring's
    /// `dropped`).
    struct Alternating {
        refuse: bool,
        refused: Arc<AtomicU64>,
    }

    impl SampleSink for Alternating {
        fn push(&mut self, samples: &[i16]) -> usize {
            self.refuse = !self.refuse;
            if self.refuse {
                self.refused
                    .fetch_add(samples.len() as u64, Ordering::Relaxed);
                0
            } else {
                samples.len()
            }
        }
    }

    #[test]
    fn overruns_equal_what_the_sink_refused() {
        let shared = Arc::new(Shared::default());
        shared.generation.store(1, Ordering::Relaxed);
        let slot = Arc::new(SinkSlot::new());
        let refused = Arc::new(AtomicU64::new(0));
        slot.replace(Some(Box::new(Alternating {
            refuse: false,
            refused: refused.clone(),
        })));
        let mut feed = Feed::<4>::new(shared.clone(), slot.clone(), 1);
        // Converted in chunks of 4, 4, 2: refused, accepted, refused.
        feed.on_data(&[0.5f32; 10]);
        assert_eq!(shared.overruns.load(Ordering::Relaxed), 6);
        assert_eq!(refused.load(Ordering::Relaxed), 6);
        assert_eq!(shared.pushed.load(Ordering::Relaxed), 4);
    }
}
