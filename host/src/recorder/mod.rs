//! The recorder (the earlier design's `AudioBufferManager`): a source, the core ring, a worker
//! thread that drains it into a rolling window and the [take](crate::take), and the memory
//! policy the worker steps once per second of audio.
//!
//! ```text
//!  source ──push──▶ core ring (bounded, lock-free) ──pop──▶ worker ─┬─▶ window (latest N s)
//!  (device, WAV replay,                                             └─▶ take: journal on disk,
//!   synthetic)                                    policy ◀──step──       cache in memory
//!                                                 (core)  ──evict──▶
//! ```
//!
//! The recorder is `Sync`: a transcription thread calls [`latest`](Recorder::latest) and
//! [`info`](Recorder::info) while the app's thread switches modes or stops it.
//!
//! # Defects of the earlier design that cannot come back
//!
//! * **Lost tail at stop.** [`Recorder::stop`] stops the source first, exactly (a device waits
//!   for the audio captured up to the stop that is still on its way), then lets the worker drain
//!   *everything* in the ring, then joins it.
//! * **Unbounded queue.** The ring is bounded. A consumer too slow for a real-time source shows
//!   up as counted overruns ([`RecorderInfo::overruns`]), never as growing memory or silent
//!   loss. The other sources wait for room instead.
//! * **Empty recording without error.** [`Recorder::start`] returns only once the source runs
//!   (or with its error), and [`Recorder::stop`] fails if nothing at all was captured.
//! * **Wrap-around conversion.** A device's samples become the take's `i16` once, at the
//!   source, by the core's saturating, correctly rounded conversion.

mod config;
mod info;
mod row;
mod wait;
mod worker;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use w4l_core::accountant::{Accountant, Category, Reservation, ReserveError};
use w4l_core::policy::Level;
use w4l_core::ring::{Overflow, RingError};
use w4l_core::sample::convert;
use w4l_core::tracker::Priority;
use w4l_core::window::Window;

use crate::error::{Error, Result};
use crate::memory::buffers::{BufferHandle, Buffers};
use crate::memory::monitor::MemoryMonitor;
use crate::ring::AudioRing;
use crate::source::{Source, SourceStats, SourceStatus};
use crate::take::file::{TakeFile, TakeFileConfig};
use crate::take::{Mode, Saved, TakeSpec, TakeStore};
use crate::tempfiles::ResourceManager;
use crate::units::lock;
pub use config::{RecorderConfig, minimum_budget};
use config::{Sizes, out_of_memory};
pub use info::{RecorderInfo, RecorderState};
pub use row::EndedTake;
use row::Span;
pub use wait::WaitInterrupter;
use worker::{Worker, idle_wait};

/// State shared by the recorder and its worker.
struct Shared {
    /// The take; `None` once saved or discarded, and between takes in a row.
    take: Mutex<Option<TakeStore>>,
    /// The part of the stream that belongs to the take (changed under `take`'s lock).
    span: Span,
    window: Mutex<Window<i16, Box<[i16]>>>,
    /// Samples taken into the take.
    samples: AtomicU64,
    /// Latest peak, dBFS, as `f32` bits.
    peak_bits: AtomicU32,
    pressure_permille: AtomicU32,
    /// Set by `stop` after the source stopped: drain and exit.
    stop: AtomicBool,
    /// Set by the worker when the take is complete (limit reached or source finished).
    done: Mutex<bool>,
    done_cv: Condvar,
    /// Set (under `done`'s lock) by a [`WaitInterrupter`]: the next [`Recorder::wait`] returns
    /// at once, and clears it.
    interrupted: AtomicBool,
    /// Set if the worker thread panicked.
    worker_failed: AtomicBool,
    /// The recorder's buffers in the registry: the take's cache (its bytes follow the cache),
    /// the window, and the ring while it lives.
    cache_buffer: BufferHandle,
    _window_buffer: BufferHandle,
}

impl Shared {
    /// The take's cache holds `take`'s blocks now: its registry entry follows.
    fn note_cache(&self, take: &TakeStore) {
        let stats = take.stats();
        self.cache_buffer
            .set_bytes(usize::try_from(stats.cached_bytes).unwrap_or(usize::MAX));
    }

    fn signal_done(&self) {
        *lock(&self.done) = true;
        self.done_cv.notify_all();
    }
}

/// What changes when the recorder starts and stops.
struct Life {
    state: RecorderState,
    ring: Option<AudioRing>,
    worker: Option<JoinHandle<()>>,
    /// Ring and window reservations.
    fixed: Vec<Reservation<Arc<Accountant>>>,
    /// The ring's entry in the buffer registry, while it lives.
    ring_buffer: Option<BufferHandle>,
    overruns_at_stop: u64,
    /// The mode to start in (until started).
    mode: Mode,
}

/// Records from a [`Source`] within a memory budget (see the module docs).
pub struct Recorder {
    config: RecorderConfig,
    source: Mutex<Box<dyn Source>>,
    description: String,
    rate: u32,
    channels: u16,
    sizes: Sizes,
    accountant: Arc<Accountant>,
    monitor: Arc<MemoryMonitor>,
    buffers: Arc<Buffers>,
    shared: Arc<Shared>,
    status: Arc<SourceStatus>,
    life: Mutex<Life>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("source", &self.description)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder of `source` whose memory is charged to `monitor`'s accountant.
    ///
    /// # Errors
    ///
    /// A usage error for a budget too small for the ring, the window and one block; in the
    /// disk modes, the take's journal cannot be created.
    pub fn new(
        source: Box<dyn Source>,
        monitor: Arc<MemoryMonitor>,
        config: RecorderConfig,
    ) -> Result<Self> {
        let rate = source.rate();
        let channels = source.channels().max(1);
        let accountant = monitor.accountant().clone();
        let sizes = Sizes::of(&config, rate, channels);
        let available = accountant.available(Category::Audio) as u64;
        if sizes.bytes() > available {
            return Err(sizes.too_big(&config, available));
        }
        let storage = crate::ring::try_zeroed(sizes.window)
            .ok_or_else(|| out_of_memory("the rolling window", sizes.window.saturating_mul(2)))?;
        let window = Window::new(storage, usize::from(channels))
            .map_err(|e| Error::usage(format!("invalid window ({e})"), "use a longer window"))?;
        let buffers = config.buffers.clone().unwrap_or_default();
        let window_bytes = sizes.window * size_of::<i16>();
        let shared = Arc::new(Shared {
            cache_buffer: buffers.track("take cache", 0, Priority::Low)?,
            _window_buffer: buffers.track("window", window_bytes, Priority::High)?,
            take: Mutex::new(None),
            span: Span::default(),
            window: Mutex::new(window),
            samples: AtomicU64::new(0),
            peak_bits: AtomicU32::new(f32::NEG_INFINITY.to_bits()),
            pressure_permille: AtomicU32::new(0),
            stop: AtomicBool::new(false),
            done: Mutex::new(false),
            done_cv: Condvar::new(),
            interrupted: AtomicBool::new(false),
            worker_failed: AtomicBool::new(false),
        });
        let recorder = Self {
            description: source.describe(),
            source: Mutex::new(source),
            rate,
            channels,
            sizes,
            accountant,
            monitor,
            buffers,
            shared,
            status: SourceStatus::new(),
            life: Mutex::new(Life {
                state: RecorderState::Idle,
                ring: None,
                worker: None,
                fixed: Vec::new(),
                ring_buffer: None,
                overruns_at_stop: 0,
                mode: config.mode,
            }),
            config,
        };
        // Lost audio ends a wait: the waiter warns at once, without waking to look.
        let interrupter = recorder.interrupter();
        recorder.status.on_loss(move || interrupter.interrupt());
        if !recorder.config.takes_in_a_row {
            let take = recorder.first_take()?;
            *lock(&recorder.shared.take) = Some(take);
        }
        Ok(recorder)
    }

    /// The take of a recorder that records one: its journal exists before recording starts, so
    /// that in file mode a directory that cannot take it is an error now, not after the first
    /// second of audio; in stream mode the take is then kept in memory only, and the reason is
    /// the take's first event.
    fn first_take(&self) -> Result<TakeStore> {
        match self.new_take(self.config.mode) {
            Err(e) if self.config.mode == Mode::Stream => {
                tracing::warn!("{e}; the take is kept in memory only");
                let mut take = self.new_take(Mode::Memory)?;
                take.report(e.context("no journal on disk, the take is kept in memory only"));
                Ok(take)
            }
            other => other,
        }
    }

    /// A take in `mode`, with its journal for the disk modes.
    fn new_take(&self, mode: Mode) -> Result<TakeStore> {
        let journal = if mode.uses_disk() {
            let manager = match &self.config.temp_files {
                Some(m) => m.clone(),
                None => ResourceManager::shared().map_err(Error::from)?,
            };
            // A journal on tmpfs is memory: the monitor counts it so.
            self.monitor.count_disk_as_memory(manager.dir());
            let config = TakeFileConfig {
                rate: self.rate,
                channels: self.channels,
                format: self.config.format,
                max_data_bytes: self.config.max_file_bytes,
                purpose: "take",
                output: self.config.output.clone(),
            };
            let ledger = Arc::new(self.accountant.clone());
            Some(TakeFile::create(manager, ledger, config)?)
        } else {
            None
        };
        let spec = TakeSpec {
            mode,
            rate: self.rate,
            channels: self.channels,
            format: self.config.format,
            block_samples: self.sizes.block_bytes / size_of::<i16>(),
            compress: self.config.compress_cache,
        };
        TakeStore::new(spec, self.accountant.clone(), journal)
    }

    /// Starts recording. Synchronous: when it returns `Ok`, the source runs and the worker
    /// drains it.
    ///
    /// # Errors
    ///
    /// Already started; the policy refuses new recordings (`Critical`); the ring or the window
    /// does not fit the budget; the source cannot start.
    pub fn start(&self) -> Result<()> {
        let mut life = lock(&self.life);
        if life.state != RecorderState::Idle {
            return Err(Error::usage(
                "the recorder was already started",
                "create a new recorder for a new take",
            ));
        }
        if self.monitor.level() >= Level::Critical {
            return Err(Error::runtime(
                "memory pressure is critical: new recordings are refused",
                "free memory (close other programs) and retry",
            ));
        }
        let (ring, producer, consumer) = self.reserve_ring(&mut life)?;
        let worker = Worker {
            consumer,
            shared: self.shared.clone(),
            monitor: self.monitor.clone(),
            buffers: self.buffers.clone(),
            status: self.status.clone(),
            rate: self.rate,
            channels: self.channels,
            limit_samples: self
                .config
                .limit_frames
                .map(|f| f.saturating_mul(u64::from(self.channels))),
            step_frames: ((self.config.step.as_secs_f64() * f64::from(self.rate)).round() as u64)
                .max(1),
            idle_wait: idle_wait(self.config.ring, lock(&self.source).wakes_consumer()),
        };
        let handle = std::thread::Builder::new()
            .name("w4l-worker".into())
            .spawn(move || worker.run())
            .map_err(|e| {
                Error::runtime(
                    format!("cannot start the recorder's worker thread ({e})"),
                    "free some system resources and retry",
                )
            })?;
        life.worker = Some(handle);
        life.ring = Some(ring);
        life.state = RecorderState::Recording;
        let started = lock(&self.source).start(producer, self.status.clone());
        if let Err(e) = started {
            drop(life);
            self.finish_worker(false);
            let mut life = lock(&self.life);
            life.state = RecorderState::Stopped;
            life.fixed.clear();
            return Err(e);
        }
        tracing::debug!("recording from {}", self.description);
        Ok(())
    }

    /// Reserves and builds the ring (its bytes and the window's are charged to the budget).
    fn reserve_ring(
        &self,
        life: &mut Life,
    ) -> Result<(
        AudioRing,
        crate::ring::AudioProducer,
        crate::ring::AudioConsumer,
    )> {
        let budget_error = |e: ReserveError| {
            Error::usage(
                format!("the budget cannot hold the recorder's buffers ({e})"),
                "raise the budget",
            )
        };
        for bytes in [
            self.sizes.ring * size_of::<i16>(),
            self.sizes.window * size_of::<i16>(),
        ] {
            let r = Accountant::try_reserve_in(self.accountant.clone(), Category::Audio, bytes)
                .map_err(budget_error)?;
            life.fixed.push(r);
        }
        life.ring_buffer = Some(self.buffers.track(
            "ring",
            self.sizes.ring * size_of::<i16>(),
            Priority::High,
        )?);
        let (producer, consumer) = AudioRing::new(self.sizes.ring, Overflow::RejectNewest)
            .map_err(|e| match e {
                RingError::AllocFailed { .. } => {
                    out_of_memory("the ring", self.sizes.ring.saturating_mul(2))
                }
                other => Error::runtime(
                    format!("cannot build the ring ({other})"),
                    "use a lower rate or fewer channels",
                ),
            })?;
        let ring = consumer.handle();
        Ok((ring, producer, consumer))
    }

    /// Stops the source (exactly, unless the take is already complete), lets the worker drain
    /// the ring, and joins it.
    fn finish_worker(&self, exact: bool) {
        {
            let mut source = lock(&self.source);
            if exact {
                // Everything captured up to now, including what is still on its way.
                source.finish();
            } else {
                source.stop();
            }
        }
        self.shared.stop.store(true, Ordering::Release);
        let worker = lock(&self.life).worker.take();
        if let Some(worker) = worker {
            worker.thread().unpark();
            if worker.join().is_err() {
                self.shared.worker_failed.store(true, Ordering::Release);
            }
        }
        let mut life = lock(&self.life);
        if let Some(ring) = life.ring.take() {
            life.overruns_at_stop = ring.stats().dropped as u64;
        }
        life.ring_buffer = None;
        // The ring is gone: give its bytes back; the window stays for `latest`.
        if !life.fixed.is_empty() {
            life.fixed.remove(0);
        }
    }

    /// Stops recording: stops the source first (exactly: a device waits for the audio of the
    /// last moment still on its way), then drains everything it captured into the take, then
    /// joins the worker and frees the ring.
    ///
    /// # Errors
    ///
    /// The source's failure, if it failed; a runtime error if nothing at all was captured, or
    /// if the take lost durability on the way (the disk failed). The take (whatever was
    /// captured) stays readable and savable in every case.
    pub fn stop(&self) -> Result<()> {
        if lock(&self.life).state != RecorderState::Recording {
            return Ok(());
        }
        self.finish_worker(!self.is_complete());
        lock(&self.life).state = RecorderState::Stopped;
        let frames = self.frames_captured();
        self.monitor.note(
            self.now_ms(),
            format!(
                "stopped after {frames} frames ({:.1} s)",
                frames as f64 / f64::from(self.rate)
            ),
        );
        if self.shared.worker_failed.load(Ordering::Acquire) {
            return Err(Error::runtime(
                "the recorder's worker thread failed; the take is incomplete",
                "please report this bug",
            ));
        }
        if let Some(e) = self.status.take_error() {
            return Err(e);
        }
        if frames == 0 {
            return Err(Error::runtime(
                format!("nothing was captured from {}", self.description),
                "check that the device is not muted or used exclusively by another program, \
                 then retry",
            ));
        }
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        self.frames_captured() * 1000 / u64::from(self.rate.max(1))
    }

    /// Frames taken into the take so far.
    pub fn frames_captured(&self) -> u64 {
        self.shared.samples.load(Ordering::Acquire) / u64::from(self.channels)
    }

    /// The latest `seconds` of audio (or as much as there is), interleaved `f32` — what live
    /// transcription feeds to Whisper. It lags behind the device by what the worker has not
    /// taken yet: up to half the [ring](RecorderConfig::ring) (about 340 ms at 48 kHz stereo
    /// with the default ring) plus the fragment in flight.
    pub fn latest(&self, seconds: f32) -> Vec<f32> {
        let window = lock(&self.shared.window);
        let frames = if seconds.is_finite() && seconds > 0.0 {
            ((f64::from(seconds) * f64::from(self.rate)).round() as usize)
                .min(window.capacity_frames())
        } else {
            0
        };
        let mut i16s = vec![0i16; frames * usize::from(self.channels)];
        let got = window.latest(frames, &mut i16s);
        drop(window);
        let mut out = vec![0.0f32; got * usize::from(self.channels)];
        convert(&i16s[..out.len()], &mut out);
        out
    }

    /// The oldest event not yet handed out that cost the take durability or audio: the journal's
    /// disk failed or filled up, memory had to give up audio that was not on disk. Poll it (a
    /// GUI once a second): such failures do not stop the recording, and this is how an app that
    /// shows no log learns of them.
    pub fn poll_event(&self) -> Option<Error> {
        lock(&self.shared.take)
            .as_mut()
            .and_then(TakeStore::take_error)
    }

    /// The source's own counters (device errors, restarts, lost frames): cheap, unlike
    /// [`info`](Self::info).
    pub fn source_stats(&self) -> SourceStats {
        lock(&self.source).stats()
    }

    /// The registry of the recorder's buffers (and its app's, if it gave one): counts, bytes,
    /// ages ([`Buffers::info`]).
    pub fn buffers(&self) -> &Arc<Buffers> {
        &self.buffers
    }

    /// The monitor deciding for this recorder.
    pub fn monitor(&self) -> &Arc<MemoryMonitor> {
        &self.monitor
    }

    /// Frames per second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Interleaved channels.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Where the take is kept now.
    pub fn mode(&self) -> Mode {
        match lock(&self.shared.take).as_ref() {
            Some(take) => take.mode(),
            None => lock(&self.life).mode,
        }
    }

    /// Switches between stream and file mode, at once and between two of the worker's writes
    /// (one lock guards the take): to file mode the cached blocks are released (they are on
    /// disk), to stream mode the cache starts with the next sample.
    ///
    /// # Errors
    ///
    /// A switch to or from memory mode (fixed at creation), or after the recording stopped.
    pub fn set_mode(&self, mode: Mode) -> Result<()> {
        if lock(&self.life).state == RecorderState::Stopped {
            return Err(Error::usage(
                "the recording is stopped; its mode cannot change any more",
                "switch modes while recording",
            ));
        }
        let mut take = lock(&self.shared.take);
        let Some(take) = take.as_mut() else {
            if self.config.takes_in_a_row {
                return Err(Error::usage(
                    "no take is running; a mode is switched for the running take",
                    "switch modes after begin_take (each take starts in the session's mode)",
                ));
            }
            return Err(Error::usage(
                "the take was saved; its mode cannot change any more",
                "switch modes while recording",
            ));
        };
        take.switch_to(mode)?;
        lock(&self.life).mode = mode;
        Ok(())
    }

    /// Frames of the take kept so far (on disk or in memory).
    pub fn frames_kept(&self) -> u64 {
        let take = lock(&self.shared.take);
        take.as_ref().map_or(0, |t| {
            let s = t.stats();
            (s.samples - s.lost_samples) / u64::from(self.channels)
        })
    }

    /// The whole take as interleaved 16-bit samples: what is on disk and what is in memory.
    ///
    /// # Errors
    ///
    /// The journal cannot be read; the take was saved already.
    pub fn take_i16(&self) -> Result<Vec<i16>> {
        let mut take = lock(&self.shared.take);
        let Some(take) = take.as_mut() else {
            return Err(Error::usage(
                "the take was saved; it is in its file now",
                "read the saved file",
            ));
        };
        read_all(take)
    }

    /// Writes the whole take to `path` (and `out.001.wav`, … past 4 GiB) in the configured
    /// format and gives the memory and the disk space back: the journal is moved there when it
    /// holds everything (a rename on the same file system), else the output is written from
    /// the journal and the cache. Call it after [`stop`](Self::stop), also when `stop` failed:
    /// the output then holds what was captured up to the failure.
    ///
    /// # Errors
    ///
    /// Still recording; already saved; the output cannot be written.
    pub fn save(&self, path: &Path) -> Result<Saved> {
        self.save_with(path, &|| {})
    }

    /// [`save`](Self::save), calling `before_move` once the samples are written and before the
    /// output appears at `path` (tests interrupt there).
    ///
    /// # Errors
    ///
    /// As for [`save`](Self::save).
    pub fn save_with(&self, path: &Path, before_move: &dyn Fn()) -> Result<Saved> {
        if lock(&self.life).state == RecorderState::Recording {
            return Err(Error::usage(
                "the take is still being recorded",
                "stop the recorder before saving",
            ));
        }
        let Some(take) = lock(&self.shared.take).take() else {
            return Err(Error::usage(
                "the take was saved already",
                "record a new take",
            ));
        };
        let saved = take.save_with(path, before_move);
        // The take's blocks are freed: give the memory the allocator keeps back to the system.
        crate::memory::trim::release_freed();
        saved
    }

    /// Stops (if recording) and releases every buffer: the take (its journal is removed), the
    /// window, the ring. The figures of [`info`](Self::info) stay.
    pub fn discard(&self) {
        let _ = self.stop();
        let take = lock(&self.shared.take).take();
        lock(&self.shared.window).clear();
        lock(&self.life).fixed.clear();
        if take.is_some() {
            drop(take);
            // As after `save`: the freed blocks go back to the system.
            crate::memory::trim::release_freed();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.discard();
    }
}

/// The whole of `take` as interleaved 16-bit samples: what is on disk and what is in memory.
fn read_all(take: &mut TakeStore) -> Result<Vec<i16>> {
    let mut out = Vec::new();
    take.for_each(&mut |samples| {
        out.try_reserve(samples.len()).map_err(|_| {
            Error::runtime(
                "the take does not fit in memory",
                "read it from its saved file instead",
            )
        })?;
        out.extend_from_slice(samples);
        Ok(())
    })?;
    Ok(out)
}
