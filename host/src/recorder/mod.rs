//! The recorder (the earlier design's `AudioBufferManager`): a source, the core ring, a worker
//! thread that drains it into a rolling window and a block store charged to the budget, and the
//! memory monitor whose policy decides what to give up when memory runs short.
//!
//! ```text
//!  source ──push──▶ core ring (bounded, lock-free) ──pop──▶ worker ─┬─▶ window (latest N s)
//!  (cpal callback,                                                  └─▶ block store (whole take,
//!   WAV replay,                                                         fixed-size blocks,
//!   synthetic)                                   MemoryMonitor ◀─step─    each reserved from
//!                                                (core policy)  ─spill─▶  the accountant)
//!                                                                   │            │ oldest blocks
//!                                           file mode: every chunk ─┴──▶ take file (temporary WAV,
//!                                                                        disk budget; see
//!                                                                        crate::take::file)
//! ```
//!
//! The take is always `take file ++ blocks in memory`: [`Recorder::save`] appends the blocks to
//! the file and moves it to the output. [`Recorder::set_mode`] switches stream ↔ file between
//! two chunks of the worker, so no sample is lost or written twice.
//!
//! # Defects of the earlier design that cannot come back
//!
//! * **Lost tail at stop.** [`Recorder::stop`] stops the source first (after that nothing more
//!   is pushed), then lets the worker drain *everything* in the ring, then joins it. Nothing
//!   captured before `stop` is discarded.
//! * **Unbounded queue.** The ring is bounded. A consumer too slow for a real-time source shows
//!   up as counted overruns ([`RecorderInfo::overruns`]), never as growing memory or silent
//!   loss. The non-real-time sources (replay, synthetic) wait for room instead.
//! * **Empty recording without error.** [`Recorder::start`] returns only once the source runs
//!   (or with its error), and [`Recorder::stop`] fails if nothing at all was captured.
//! * **Wrap-around conversion.** `f32` → `i16` is the core's saturating conversion.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use w4l_core::accountant::{Accountant, Category, Reservation, ReserveError};
use w4l_core::level::to_dbfs;
use w4l_core::policy::{Action, Level};
use w4l_core::ring::Overflow;
use w4l_core::sample::convert;
use w4l_core::window::Window;

use crate::error::{Error, Result};
use crate::memory::monitor::{CallbackId, MemoryMonitor};
use crate::ring::{AudioConsumer, AudioRing, HeapStorage};
use crate::source::{Source, SourceStats, SourceStatus};
use crate::take::Mode;
use crate::take::blocks::BlockStore;
use crate::take::file::{Spilled, TakeFileConfig, TakeSlot, spill_oldest, warn_stale_part};
use crate::tempfiles::ResourceManager;
use crate::units::format_bytes;
use crate::units::lock;
use crate::wav::WavOutput;
use crate::wav::{SampleFormat, WAV_DATA_LIMIT};

/// How a [`Recorder`] keeps the take.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Stream (in memory, spilling the oldest blocks to disk under pressure) or file (straight
    /// to a temporary WAV file). [`Recorder::set_mode`] switches while recording.
    pub mode: Mode,
    /// Sample format of the files written (the take itself is 16-bit in every mode).
    pub format: SampleFormat,
    /// The temporary-file manager for the take's files (file mode, spill). `None`: the
    /// process's shared manager of the default directory ([`crate::take::file::shared_manager`]),
    /// opened on first use.
    pub temp_files: Option<Arc<ResourceManager>>,
    /// Most bytes of samples per output file before the next numbered file starts. Default
    /// and maximum [`WAV_DATA_LIMIT`] (a WAV file's 4 GiB); tests lower it.
    pub max_file_bytes: u64,
    /// Length of the rolling window behind [`Recorder::latest`].
    pub window: Duration,
    /// Bytes per block of the take (16-bit samples). Default 64 KiB: 2 s of 16 kHz mono.
    pub block_bytes: usize,
    /// Capacity of the ring between the source and the worker, as audio time. Default 500 ms:
    /// with capture's 200 ms periods and the worker's poll of a fifth of this, the worker can
    /// stall about 200 ms beyond its poll before a real-time source overruns.
    pub ring: Duration,
    /// Stop consuming after exactly this many frames (`--seconds`).
    pub limit_frames: Option<u64>,
    /// Captured audio between two policy steps. Default 1 s (see [`crate::memory::monitor`]).
    pub step: Duration,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Stream,
            format: SampleFormat::I16,
            temp_files: None,
            max_file_bytes: WAV_DATA_LIMIT,
            window: Duration::from_secs(30),
            block_bytes: 64 << 10,
            ring: Duration::from_millis(500),
            limit_frames: None,
            step: Duration::from_secs(1),
        }
    }
}

/// Where a recorder is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecorderState {
    /// Created, not started.
    Idle,
    /// Started, not stopped.
    Recording,
    /// Stopped; the take can be read and written.
    Stopped,
}

/// Every figure of a recorder, as `w4l record --json` prints it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecorderInfo {
    /// `stream` or `file`.
    pub mode: &'static str,
    /// Idle, recording or stopped.
    pub state: RecorderState,
    /// What the samples come from.
    pub source: String,
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Frames taken from the ring into the take.
    pub frames_captured: u64,
    /// Samples (all channels) taken from the ring into the take.
    pub samples_captured: u64,
    /// `frames_captured` as seconds.
    pub seconds_captured: f64,
    /// Frames of the take still held (captured minus dropped).
    pub frames_held: u64,
    /// Blocks of the take held in memory.
    pub blocks_held: u64,
    /// Bytes per block.
    pub block_bytes: u64,
    /// Samples waiting in the ring now.
    pub ring_samples: u64,
    /// Capacity of the ring, samples.
    pub ring_capacity: u64,
    /// Ring fill level, 0.0 to 1.0.
    pub ring_fill: f64,
    /// Frames in the rolling window / its capacity.
    pub window_frames: u64,
    /// Capacity of the rolling window, frames.
    pub window_capacity_frames: u64,
    /// Audio bytes reserved from the accountant now (blocks, ring, window).
    pub memory_used: u64,
    /// Highest `memory_used` seen.
    pub memory_peak: u64,
    /// The accountant's memory budget.
    pub memory_budget: u64,
    /// The policy's level: `Normal`, `Elevated`, `High` or `Critical`.
    pub policy_level: &'static str,
    /// Pressure, per mille of the most pressed limit, at the last step.
    pub pressure_permille: u16,
    /// Samples a real-time source could not push because the ring was full.
    pub overruns: u64,
    /// Blocks dropped to stay in budget.
    pub dropped_blocks: u64,
    /// Samples in those blocks.
    pub dropped_samples: u64,
    /// Samples that could not be stored at all (not even by dropping older blocks), or that
    /// arrived after a disk error ended a file-mode take.
    pub lost_samples: u64,
    /// Output sample format: `i16` or `f32`.
    pub format: &'static str,
    /// Blocks moved from memory to disk (spills and switches to file mode).
    pub spilled_blocks: u64,
    /// Frames moved from memory to disk.
    pub spilled_frames: u64,
    /// Frames of the take on disk (file mode and spill).
    pub frames_on_disk: u64,
    /// Bytes of the take's temporary files, charged to the disk budget.
    pub disk_bytes: u64,
    /// Temporary files of the take (more than one past 4 GiB, or after a write error).
    pub disk_files: u64,
    /// Level changes of the policy so far.
    pub transitions: u64,
    /// Peak level of the latest audio, dBFS.
    pub peak_dbfs: f32,
    /// The source's own counters (device errors, restarts, gaps).
    pub source_stats: SourceStats,
}

/// What [`Recorder::write_wav`] or [`Recorder::save`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavSummary {
    /// Frames written.
    pub frames: u64,
    /// Frames of the take missing from the output (dropped blocks, lost samples).
    pub frames_dropped: u64,
    /// The files written, in order: the output, then `out.001.wav`, … past 4 GiB.
    pub files: Vec<PathBuf>,
}

/// `Mode` as stored in [`Shared::mode`].
const MODE_STREAM: u8 = 0;
const MODE_FILE: u8 = 1;

fn mode_code(mode: Mode) -> u8 {
    match mode {
        Mode::Stream => MODE_STREAM,
        Mode::File => MODE_FILE,
    }
}

fn mode_of(code: u8) -> Mode {
    if code == MODE_FILE {
        Mode::File
    } else {
        Mode::Stream
    }
}

/// A mode switch asked for by [`Recorder::set_mode`], applied by the worker between chunks.
#[derive(Default)]
struct ModeSwitch {
    wanted: Option<Mode>,
    requested: u64,
    applied: u64,
    result: Option<Result<()>>,
}

/// State shared by the recorder, its worker and its cleanup callback.
struct Shared {
    store: Mutex<BlockStore>,
    window: Mutex<Window<i16, Box<[i16]>>>,
    /// Samples taken into the take.
    samples: AtomicU64,
    lost_samples: AtomicU64,
    /// Latest peak, dBFS, as `f32` bits.
    peak_bits: AtomicU32,
    pressure_permille: AtomicU32,
    /// Set by `stop` after the source stopped: drain and exit.
    stop: AtomicBool,
    /// Set by the worker when the take is complete (limit reached or source finished).
    done: Mutex<bool>,
    done_cv: Condvar,
    /// Set if the worker thread panicked.
    worker_failed: AtomicBool,
    /// The part of the take on disk (file mode, spill). Lock order: `store`, then `take`.
    take: Mutex<TakeSlot>,
    /// Where the worker puts new samples ([`MODE_STREAM`] or [`MODE_FILE`]).
    mode: AtomicU8,
    switch: Mutex<ModeSwitch>,
    switch_cv: Condvar,
    /// `ModeSwitch::requested`, for the worker's cheap check.
    switch_gen: AtomicU64,
    spilled_blocks: AtomicU64,
    spilled_samples: AtomicU64,
    /// Set with `disk_error`: the take ended at a disk error, later samples are not taken.
    ended: AtomicBool,
    /// The write error that ended a file-mode take.
    disk_error: Mutex<Option<Error>>,
    /// Whether a failed spill was already reported as a warning.
    spill_warned: AtomicBool,
}

/// Marks the take complete when the worker ends, even by a panic (so nobody waits forever).
struct DoneGuard(Arc<Shared>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.worker_failed.store(true, Ordering::Release);
        }
        self.0.signal_done();
    }
}

impl Shared {
    fn count_spill(&self, spilled: &Spilled) {
        self.spilled_blocks
            .fetch_add(spilled.blocks, Ordering::Relaxed);
        self.spilled_samples
            .fetch_add(spilled.samples, Ordering::Relaxed);
    }

    fn signal_done(&self) {
        *lock(&self.done) = true;
        self.done_cv.notify_all();
    }
}

/// Records from a [`Source`] into memory within a budget (see the module docs).
pub struct Recorder {
    config: RecorderConfig,
    source: Box<dyn Source>,
    rate: u32,
    channels: u16,
    accountant: Arc<Accountant>,
    monitor: Arc<MemoryMonitor>,
    shared: Arc<Shared>,
    state: RecorderState,
    status: Arc<SourceStatus>,
    ring: Option<AudioRing>,
    worker: Option<JoinHandle<()>>,
    callback: Option<CallbackId>,
    /// Ring and window reservations.
    fixed: Vec<Reservation<Arc<Accountant>>>,
    ring_samples: usize,
    overruns_at_stop: u64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("source", &self.source.describe())
            .field("state", &self.state)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The smallest budget a recorder with these settings can run in: its ring, its window and one
/// block.
pub fn minimum_budget(config: &RecorderConfig, rate: u32, channels: u16) -> u64 {
    let (ring, window, block) = fixed_sizes(config, rate, channels);
    // Saturating: a year-long window of many channels must be refused, not wrap around.
    (ring as u64)
        .saturating_mul(size_of::<f32>() as u64)
        .saturating_add((window as u64).saturating_mul(size_of::<i16>() as u64))
        .saturating_add(block as u64)
}

/// The allocator refused `bytes` for `what` (sized by the window, the rate and the channels):
/// a usage error, never an abort.
fn out_of_memory(what: &str, bytes: usize) -> Error {
    Error::usage(
        format!(
            "cannot allocate {} for {what}: the system refused the memory",
            format_bytes(bytes as u64)
        ),
        "shorten --window or lower --budget",
    )
}

/// Ring samples, window samples, block bytes.
fn fixed_sizes(config: &RecorderConfig, rate: u32, channels: u16) -> (usize, usize, usize) {
    let per_second = f64::from(rate) * f64::from(channels);
    let ring = ((config.ring.as_secs_f64() * per_second).ceil() as usize)
        .max(1024)
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX);
    let frames = (config.window.as_secs_f64() * f64::from(rate))
        .ceil()
        .max(1.0) as usize;
    let window = frames.saturating_mul(usize::from(channels));
    // Whole frames per block, at least one.
    let frame_bytes = usize::from(channels.max(1)) * size_of::<i16>();
    let block = (config.block_bytes / frame_bytes).max(1) * frame_bytes;
    (ring, window, block)
}

impl Recorder {
    /// A recorder of `source` whose memory is charged to `monitor`'s accountant.
    ///
    /// # Errors
    ///
    /// A usage error for a budget too small for the ring, the window and one block; in file
    /// mode, the take's temporary file cannot be created.
    pub fn new(
        source: Box<dyn Source>,
        monitor: Arc<MemoryMonitor>,
        config: RecorderConfig,
    ) -> Result<Self> {
        let rate = source.rate();
        let channels = source.channels().max(1);
        let accountant = monitor.accountant().clone();
        let need = minimum_budget(&config, rate, channels);
        let available = accountant.available(Category::Audio) as u64;
        if need > available {
            let (ring, window, block) = fixed_sizes(&config, rate, channels);
            return Err(Error::usage(
                format!(
                    "the budget ({} available for audio) is smaller than one block of the take \
                     ({}) plus the ring ({}) and the {:.0} s window ({})",
                    format_bytes(available),
                    format_bytes(block as u64),
                    format_bytes((ring as u64).saturating_mul(4)),
                    config.window.as_secs_f64(),
                    format_bytes((window as u64).saturating_mul(2)),
                ),
                format!(
                    "raise --budget to at least {} or shorten --window",
                    format_bytes(need)
                ),
            ));
        }
        let (_, window_samples, block_bytes) = fixed_sizes(&config, rate, channels);
        let storage = crate::ring::try_zeroed(window_samples)
            .ok_or_else(|| out_of_memory("the rolling window", window_samples.saturating_mul(2)))?;
        let window = Window::new(storage, usize::from(channels))
            .map_err(|e| Error::usage(format!("invalid window ({e})"), "pass a longer --window"))?;
        let shared = Arc::new(Shared {
            store: Mutex::new(BlockStore::new(
                accountant.clone(),
                block_bytes / size_of::<i16>(),
            )),
            window: Mutex::new(window),
            samples: AtomicU64::new(0),
            lost_samples: AtomicU64::new(0),
            peak_bits: AtomicU32::new(f32::NEG_INFINITY.to_bits()),
            pressure_permille: AtomicU32::new(0),
            stop: AtomicBool::new(false),
            done: Mutex::new(false),
            done_cv: Condvar::new(),
            worker_failed: AtomicBool::new(false),
            take: Mutex::new(TakeSlot::new(
                config.temp_files.clone(),
                Arc::new(accountant.clone()),
                TakeFileConfig {
                    rate,
                    channels,
                    format: config.format,
                    max_data_bytes: config.max_file_bytes,
                    purpose: "spill",
                },
            )),
            mode: AtomicU8::new(mode_code(config.mode)),
            switch: Mutex::new(ModeSwitch::default()),
            switch_cv: Condvar::new(),
            switch_gen: AtomicU64::new(0),
            spilled_blocks: AtomicU64::new(0),
            spilled_samples: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            disk_error: Mutex::new(None),
            spill_warned: AtomicBool::new(false),
        });
        if config.mode == Mode::File {
            // The take's file exists before recording starts: a temporary directory that
            // cannot take it is an error now, not after the first second of audio.
            lock(&shared.take).create_now("take")?;
        }
        let mut recorder = Self {
            config,
            source,
            rate,
            channels,
            accountant,
            monitor,
            shared,
            state: RecorderState::Idle,
            status: SourceStatus::new(),
            ring: None,
            worker: None,
            callback: None,
            fixed: Vec::new(),
            ring_samples: 0,
            overruns_at_stop: 0,
        };
        recorder.callback = Some(recorder.register_cleanup());
        Ok(recorder)
    }

    /// Registers the recorder's part of the cleanup, always keeping the newest block:
    /// `SpillOldestAudio` appends the oldest blocks to the take's file on disk and releases
    /// them until the wanted bytes are freed; what spilling could not free (the disk budget is
    /// exhausted, a write failed) is dropped instead, counted and warned about. Under
    /// `DropOldestAudio` (which comes with `SpillOldestAudio`) the oldest blocks are still
    /// spilled first, and dropped only where that fails: no audio is given up while the disk
    /// takes it.
    fn register_cleanup(&self) -> CallbackId {
        let shared: Weak<Shared> = Arc::downgrade(&self.shared);
        let monitor: Weak<MemoryMonitor> = Arc::downgrade(&self.monitor);
        let rate = self.rate;
        let channels = self.channels;
        self.monitor.add_cleanup_callback(move |req| {
            let spill = req.wants(Action::SpillOldestAudio);
            if !(spill || req.wants(Action::DropOldestAudio)) {
                return 0;
            }
            let Some(shared) = shared.upgrade() else {
                return 0;
            };
            let want = req.wanted.max(1);
            let (spilled, blocks, samples, freed) = {
                let mut store = lock(&shared.store);
                let spilled = if spill || req.wants(Action::DropOldestAudio) {
                    let mut take = lock(&shared.take);
                    match take.get() {
                        Ok(file) => spill_oldest(&mut store, file, want, 1),
                        Err(e) => Spilled {
                            error: Some(e),
                            ..Spilled::default()
                        },
                    }
                } else {
                    Spilled::default()
                };
                let (mut blocks, mut samples, mut freed) = (0u64, 0u64, spilled.freed);
                while freed < want && store.len() > 1 {
                    let bytes = store.block_bytes() as u64;
                    match store.drop_oldest() {
                        Some(n) => {
                            blocks += 1;
                            samples += n as u64;
                            freed += bytes;
                        }
                        None => break,
                    }
                }
                (spilled, blocks, samples, freed)
            };
            shared.count_spill(&spilled);
            let seconds = |samples: u64| samples as f64 / (f64::from(rate) * f64::from(channels));
            if spilled.blocks > 0 {
                let text = format!(
                    "spilled {} oldest block{} to disk ({:.1} s of audio, {})",
                    spilled.blocks,
                    if spilled.blocks == 1 { "" } else { "s" },
                    seconds(spilled.samples),
                    format_bytes(spilled.freed),
                );
                tracing::info!("memory pressure {}: {text}", req.level);
                if let Some(m) = monitor.upgrade() {
                    m.note(req.at_ms, text);
                }
            }
            if blocks > 0 {
                let text = format!(
                    "dropped {blocks} oldest block{} ({:.1} s of audio, {}){}",
                    if blocks == 1 { "" } else { "s" },
                    seconds(samples),
                    format_bytes(freed - spilled.freed),
                    match &spilled.error {
                        Some(e) => format!(": spilling to disk failed ({})", e.what()),
                        None => String::new(),
                    }
                );
                if !shared.spill_warned.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        "memory pressure {}: {text}; raise --budget or --disk-budget to keep all audio",
                        req.level
                    );
                }
                if let Some(m) = monitor.upgrade() {
                    m.note(req.at_ms, text);
                }
            }
            freed
        })
    }

    /// Starts recording. Synchronous: when it returns `Ok`, the source runs and the worker
    /// drains it.
    ///
    /// # Errors
    ///
    /// Already started; the policy refuses new recordings (`Critical`); the ring or the window
    /// does not fit the budget; the source cannot start.
    pub fn start(&mut self) -> Result<()> {
        if self.state != RecorderState::Idle {
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
        let (ring_samples, window_samples, _) = fixed_sizes(&self.config, self.rate, self.channels);
        let budget_error = |e: ReserveError| {
            Error::usage(
                format!("the budget cannot hold the recorder's buffers ({e})"),
                "raise --budget",
            )
        };
        self.fixed.push(
            Accountant::try_reserve_in(
                self.accountant.clone(),
                Category::Audio,
                ring_samples * size_of::<f32>(),
            )
            .map_err(budget_error)?,
        );
        self.fixed.push(
            Accountant::try_reserve_in(
                self.accountant.clone(),
                Category::Audio,
                window_samples * size_of::<i16>(),
            )
            .map_err(budget_error)?,
        );
        let storage = HeapStorage::try_new(ring_samples)
            .ok_or_else(|| out_of_memory("the ring", ring_samples.saturating_mul(4)))?;
        let ring = AudioRing::from_storage(storage, Overflow::RejectNewest).map_err(|e| {
            Error::runtime(
                format!("cannot build the ring ({e})"),
                "lower --rate or --channels",
            )
        })?;
        let (producer, consumer) = ring.split().map_err(|e| {
            Error::runtime(format!("cannot split the ring ({e})"), "report this bug")
        })?;
        self.ring_samples = ring_samples;
        self.ring = Some(ring);

        let worker = Worker {
            consumer,
            shared: self.shared.clone(),
            monitor: self.monitor.clone(),
            status: self.status.clone(),
            rate: self.rate,
            channels: self.channels,
            limit_samples: self
                .config
                .limit_frames
                .map(|f| f.saturating_mul(u64::from(self.channels))),
            step_frames: ((self.config.step.as_secs_f64() * f64::from(self.rate)).round() as u64)
                .max(1),
            idle_wait: if self.source.wakes_consumer() {
                WOKEN_IDLE_WAIT
            } else {
                idle_wait(self.config.ring)
            },
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
        self.worker = Some(handle);
        self.state = RecorderState::Recording;
        if let Err(e) = self.source.start(producer, self.status.clone()) {
            self.finish_worker();
            self.state = RecorderState::Stopped;
            self.fixed.clear();
            return Err(e);
        }
        tracing::debug!("recording from {}", self.source.describe());
        Ok(())
    }

    /// Waits until the take is complete — the `limit_frames` were captured, or the source ran
    /// out (end of file) or failed — or `timeout` passed. Returns whether it is complete.
    pub fn wait(&self, timeout: Duration) -> bool {
        let done = lock(&self.shared.done);
        if *done {
            return true;
        }
        let (done, _) = self
            .shared
            .done_cv
            .wait_timeout_while(done, timeout, |d| !*d)
            .unwrap_or_else(PoisonError::into_inner);
        *done
    }

    /// Whether the take is complete (see [`wait`](Self::wait)).
    pub fn is_complete(&self) -> bool {
        *lock(&self.shared.done)
    }

    fn finish_worker(&mut self) {
        if self.is_complete() {
            // Nothing more is wanted (the limit was reached, or the source is done).
            self.source.stop();
        } else {
            // Everything captured up to now, including what is still on its way.
            self.source.finish();
        }
        self.shared.stop.store(true, Ordering::Release);
        if let Some(worker) = self.worker.take() {
            worker.thread().unpark();
            if worker.join().is_err() {
                self.shared.worker_failed.store(true, Ordering::Release);
            }
        }
        if let Some(ring) = &self.ring {
            self.overruns_at_stop = ring.stats().dropped as u64;
        }
    }

    /// Stops recording: stops the source first, then drains everything it captured up to that
    /// moment into the take, then joins the worker and frees the ring.
    ///
    /// # Errors
    ///
    /// The source's failure, if it failed; a runtime error if nothing at all was captured.
    /// The take (whatever was captured) stays readable in both cases.
    pub fn stop(&mut self) -> Result<()> {
        if self.state != RecorderState::Recording {
            return Ok(());
        }
        self.finish_worker();
        self.state = RecorderState::Stopped;
        self.ring = None;
        // The ring is gone: give its bytes back; the window stays for `latest`.
        if !self.fixed.is_empty() {
            self.fixed.remove(0);
        }
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
        if let Some(e) = lock(&self.shared.disk_error).clone() {
            return Err(e);
        }
        if let Some(e) = self.status.take_error() {
            return Err(e);
        }
        if frames == 0 {
            return Err(Error::runtime(
                format!("nothing was captured from {}", self.source.describe()),
                "check that the device is not muted or used exclusively by another program \
                 (see `w4l devices`), then retry",
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
    /// transcription feeds to Whisper.
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

    /// The source's own counters (device errors, restarts, lost frames): cheap, unlike
    /// [`info`](Self::info).
    pub fn source_stats(&self) -> SourceStats {
        self.source.stats()
    }

    /// Every figure of the recorder.
    pub fn info(&self) -> RecorderInfo {
        let (blocks_held, held_samples, dropped_blocks, dropped_samples, block_bytes) = {
            let store = lock(&self.shared.store);
            (
                store.len() as u64,
                store.held_samples(),
                store.dropped_blocks(),
                store.dropped_samples(),
                store.block_bytes() as u64,
            )
        };
        let (window_frames, window_capacity) = {
            let w = lock(&self.shared.window);
            (w.frames_available() as u64, w.capacity_frames() as u64)
        };
        let (ring_samples, overruns) = match &self.ring {
            Some(r) => (r.len() as u64, r.stats().dropped as u64),
            None => (0, self.overruns_at_stop),
        };
        let samples = self.shared.samples.load(Ordering::Acquire);
        let figures = self.accountant.figures();
        let audio = figures.category(Category::Audio);
        let (timeline, _) = self.monitor.timeline();
        let transitions = timeline
            .iter()
            .filter(|e| matches!(e, crate::memory::monitor::Event::Transition(t) if t.is_level_change()))
            .count() as u64;
        let channels = u64::from(self.channels);
        let (frames_on_disk, disk_bytes, disk_files) = {
            let take = lock(&self.shared.take);
            let files = take.file.as_ref().map_or(0, |f| f.files().len() as u64);
            (take.samples() / channels, take.bytes(), files)
        };
        RecorderInfo {
            mode: self.mode().as_str(),
            state: self.state,
            source: self.source.describe(),
            rate: self.rate,
            channels: self.channels,
            frames_captured: samples / channels,
            samples_captured: samples,
            seconds_captured: (samples / channels) as f64 / f64::from(self.rate),
            frames_held: held_samples / channels,
            blocks_held,
            block_bytes,
            ring_samples,
            ring_capacity: self.ring_samples as u64,
            ring_fill: if self.ring_samples == 0 {
                0.0
            } else {
                ring_samples as f64 / self.ring_samples as f64
            },
            window_frames,
            window_capacity_frames: window_capacity,
            memory_used: audio.used as u64,
            memory_peak: audio.peak as u64,
            memory_budget: figures.memory_budget as u64,
            policy_level: self.monitor.level().name(),
            pressure_permille: u16::try_from(self.shared.pressure_permille.load(Ordering::Relaxed))
                .unwrap_or(u16::MAX),
            overruns,
            dropped_blocks,
            dropped_samples,
            lost_samples: self.shared.lost_samples.load(Ordering::Relaxed),
            format: self.config.format.as_str(),
            spilled_blocks: self.shared.spilled_blocks.load(Ordering::Relaxed),
            spilled_frames: self.shared.spilled_samples.load(Ordering::Relaxed) / channels,
            frames_on_disk,
            disk_bytes,
            disk_files,
            transitions,
            peak_dbfs: f32::from_bits(self.shared.peak_bits.load(Ordering::Relaxed)),
            source_stats: self.source.stats(),
        }
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

    /// A copy of the take held in memory (interleaved 16-bit samples, oldest first).
    pub fn take_i16(&self) -> Vec<i16> {
        let store = lock(&self.shared.store);
        let mut out = Vec::with_capacity(usize::try_from(store.held_samples()).unwrap_or(0));
        for b in store.blocks() {
            out.extend_from_slice(b.samples());
        }
        out
    }

    /// Writes the take to `path` as a 16-bit WAV file (through a temporary file renamed into
    /// place, so a failure leaves nothing behind), like [`write_take`](Self::write_take).
    ///
    /// # Errors
    ///
    /// Runtime errors of the file system.
    pub fn write_wav(&self, path: &Path) -> Result<WavSummary> {
        let mut out = WavOutput::create(path, self.rate, self.channels)?;
        let summary = self.write_take(&mut out)?;
        out.finish()?;
        Ok(summary)
    }

    /// Appends the take to `out` (which must have this recorder's rate and channels): what
    /// was spilled to disk (read back from the take's file, which stays), then the blocks in
    /// memory; the caller finishes it. [`save`](Self::save) does the same without the copy.
    ///
    /// # Errors
    ///
    /// Runtime errors of the file system.
    pub fn write_take(&self, out: &mut WavOutput) -> Result<WavSummary> {
        let before = out.len();
        let store = lock(&self.shared.store);
        if let Some(file) = lock(&self.shared.take).file.as_mut()
            && file.samples() > 0
        {
            file.read_all(&mut |samples| out.write(samples))?;
        }
        for b in store.blocks() {
            out.write(b.samples())?;
        }
        let frames = (out.len() - before) / u64::from(self.channels);
        let frames_dropped = store.dropped_samples() / u64::from(self.channels);
        Ok(WavSummary {
            frames,
            frames_dropped,
            files: Vec::new(),
        })
    }

    /// Where new samples go now: memory (stream) or the take's file (file).
    pub fn mode(&self) -> Mode {
        if self.state == RecorderState::Idle {
            return self.config.mode;
        }
        mode_of(self.shared.mode.load(Ordering::Acquire))
    }

    /// Switches between stream and file mode. Before recording it sets the mode to start in;
    /// while recording the worker switches between two chunks, so no sample is lost or
    /// duplicated: stream → file first moves every block held in memory to the take's file
    /// (the take is always `file ++ memory`), file → stream keeps the file and puts the
    /// samples that follow in memory. Returns once the switch is done.
    ///
    /// # Errors
    ///
    /// After `stop`; the take's file cannot be created or written (the mode stays, whatever
    /// could not be moved stays in memory).
    pub fn set_mode(&mut self, mode: Mode) -> Result<()> {
        match self.state {
            RecorderState::Idle => {
                if mode == Mode::File {
                    lock(&self.shared.take).create_now("take")?;
                }
                self.config.mode = mode;
                self.shared.mode.store(mode_code(mode), Ordering::Release);
                return Ok(());
            }
            RecorderState::Stopped => {
                return Err(Error::usage(
                    "the recording is stopped; its mode cannot change any more",
                    "switch modes while recording",
                ));
            }
            RecorderState::Recording => {}
        }
        if mode == Mode::File {
            lock(&self.shared.take).create_now("take")?;
        }
        let generation = {
            let mut switch = lock(&self.shared.switch);
            switch.requested += 1;
            switch.wanted = Some(mode);
            switch.result = None;
            self.shared
                .switch_gen
                .store(switch.requested, Ordering::Release);
            switch.requested
        };
        if let Some(worker) = &self.worker {
            worker.thread().unpark();
        }
        let switch = lock(&self.shared.switch);
        let (mut switch, _) = self
            .shared
            .switch_cv
            .wait_timeout_while(switch, Duration::from_secs(30), |s| {
                s.applied < generation && !self.shared.worker_failed.load(Ordering::Acquire)
            })
            .unwrap_or_else(PoisonError::into_inner);
        if switch.applied < generation {
            return Err(Error::runtime(
                "the recorder's worker did not switch modes",
                "please report this bug",
            ));
        }
        switch.result.take().unwrap_or(Ok(()))
    }

    /// Frames of the take kept so far: in memory and on disk.
    pub fn frames_kept(&self) -> u64 {
        let store = lock(&self.shared.store);
        let take = lock(&self.shared.take);
        (store.held_samples() + take.samples()) / u64::from(self.channels)
    }

    /// Writes the whole take — its file on disk, then the blocks in memory — to `path` (and
    /// `out.001.wav`, … past 4 GiB, see [`crate::take::file`]) in the configured format, and
    /// gives the memory and the disk space back: a take with a file on disk is moved there
    /// (a rename on the same file system), a take held only in memory is written through a
    /// hidden temporary file beside `path`. Call it after [`stop`](Self::stop), also when
    /// `stop` failed: the output then holds what was captured up to the failure.
    ///
    /// # Errors
    ///
    /// Still recording; the disk failed. After a write error the output holds the take up to
    /// the last sample that reached the disk.
    pub fn save(&mut self, path: &Path) -> Result<WavSummary> {
        self.save_with(path, &|| {})
    }

    /// [`save`](Self::save), calling `before_move` once the samples are written and before
    /// the output appears at `path` (tests use it to interrupt there).
    ///
    /// # Errors
    ///
    /// As for [`save`](Self::save).
    pub fn save_with(&mut self, path: &Path, before_move: &dyn Fn()) -> Result<WavSummary> {
        if self.state == RecorderState::Recording {
            return Err(Error::usage(
                "the take is still being recorded",
                "stop the recorder before saving",
            ));
        }
        let channels = u64::from(self.channels);
        let captured = self.shared.samples.load(Ordering::Acquire);
        let summary = |written: u64, files: Vec<PathBuf>| WavSummary {
            frames: written / channels,
            frames_dropped: captured.saturating_sub(written) / channels,
            files,
        };
        let mut store = lock(&self.shared.store);
        let mut take = lock(&self.shared.take);
        let in_memory = store.held_samples() * self.config.format.bytes_per_sample();
        if take.samples() == 0 {
            // Nothing reached the disk (a refused spill leaves an empty file): memory only.
            take.file = None;
        }
        if take.file.is_none() && in_memory <= WAV_DATA_LIMIT {
            let mut out = WavOutput::create_as(path, self.rate, self.channels, self.config.format)?;
            for b in store.blocks() {
                if let Err(e) = out.write(b.samples()) {
                    // What reached the disk becomes the output; the error says why it ends.
                    out.finish_partial()?;
                    return Err(e);
                }
            }
            let written = out.len();
            store.clear();
            drop((store, take));
            before_move();
            out.finish()?;
            warn_stale_part(path, 1);
            return Ok(summary(written, vec![path.to_owned()]));
        }
        let file = take.get()?;
        file.unmetered();
        let moved = spill_oldest(&mut store, file, u64::MAX, 0);
        let written = file.samples();
        let Some(file) = take.file.take() else {
            return Err(Error::runtime(
                "the take file vanished",
                "please report this bug",
            ));
        };
        drop((store, take));
        before_move();
        let files = file.persist(path)?;
        warn_stale_part(path, files.len());
        match moved.error {
            Some(e) => Err(e),
            None => Ok(summary(written, files)),
        }
    }

    /// Stops (if recording) and releases every buffer: blocks, window, ring, and the take's
    /// temporary files. The figures of [`info`](Self::info) stay; the take is gone.
    pub fn cleanup(&mut self) {
        if self.state == RecorderState::Recording {
            let _ = self.stop();
        }
        lock(&self.shared.take).file = None;
        lock(&self.shared.store).clear();
        lock(&self.shared.window).clear();
        self.fixed.clear();
        self.ring = None;
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.cleanup();
        if let Some(id) = self.callback.take() {
            self.monitor.remove_cleanup_callback(id);
        }
    }
}

/// The worker thread: drains the ring into the window and the block store.
struct Worker {
    consumer: AudioConsumer,
    shared: Arc<Shared>,
    monitor: Arc<MemoryMonitor>,
    status: Arc<SourceStatus>,
    rate: u32,
    channels: u16,
    limit_samples: Option<u64>,
    step_frames: u64,
    idle_wait: Duration,
}

/// Samples the worker takes from the ring at once.
const DRAIN_CHUNK: usize = 8192;
/// How long the worker sleeps when the ring is empty, unless woken: a fifth of the ring's
/// duration (100 ms for the default 500 ms ring), at least 1 ms. A non-real-time source
/// (replay, synthetic) wakes it after every push ([`SourceStatus::wake_consumer`]); a device
/// callback must not (waking is a syscall), so for capture the worker polls at this period.
/// Capture delivers in 200 ms periods, so when the worker looks, the ring holds at most one
/// period plus a fifth of its own length: nothing is lost. `stop` unparks the worker at once.
/// Each wake-up is a context switch: at 2 ms they were 57% of `w4l record`'s CPU, and going
/// from 50 to 100 ms took a 10 s file-mode take from 28 to 24 ms of CPU
/// (scripts/bench-file-mode).
/// How long the worker sleeps when the source wakes it whenever it pushed (the PulseAudio
/// backend, a non-real-time source): only a bound, in case a wake-up is missed.
const WOKEN_IDLE_WAIT: Duration = Duration::from_secs(1);

fn idle_wait(ring: Duration) -> Duration {
    (ring / 5).max(Duration::from_millis(1))
}

impl Worker {
    fn run(mut self) {
        let _done = DoneGuard(self.shared.clone());
        let mut buf = vec![0.0f32; DRAIN_CHUNK];
        let mut i16s = vec![0i16; DRAIN_CHUNK];
        let mut peak = 0u16;
        let channels = u64::from(self.channels);
        let meter_samples = (u64::from(self.rate) / 20).max(1) * channels;
        let mut metered = 0u64;
        let mut taken = 0u64;
        let mut next_step = self.step_frames;
        let mut refusal_warned = false;
        let mut applied_switch = 0u64;
        let capacity = self.consumer.capacity();
        self.status.set_consumer();
        loop {
            if self.shared.switch_gen.load(Ordering::Acquire) != applied_switch {
                applied_switch = self.apply_switch();
            }
            // Read the stop flag *before* popping: if it was set, everything the source pushed
            // is already visible, so an empty pop after it means the ring is drained.
            let stopping = self.shared.stop.load(Ordering::Acquire);
            let n = self.consumer.pop_slice(&mut buf);
            if n == 0 {
                if stopping {
                    break;
                }
                if self.status.is_finished() && !self.consumer.ring().is_empty() {
                    continue;
                }
                if self.status.is_finished() {
                    self.shared.signal_done();
                }
                std::thread::park_timeout(self.idle_wait);
                continue;
            }
            // A non-real-time source that waits for room is woken by a pop that leaves at least a
            // quarter of the ring free, so it refills in large pieces: a wake-up of a parked
            // thread is a syscall and a context switch (of a thread not parked, an atomic swap).
            if self.consumer.ring().free() >= capacity / 4 {
                self.status.wake_producer();
            }
            if self.shared.ended.load(Ordering::Acquire) {
                // A disk error ended the take; what arrives until `stop` is not part of it.
                continue;
            }
            let mut chunk = &buf[..n];
            if let Some(limit) = self.limit_samples {
                let left = limit.saturating_sub(taken);
                if left == 0 {
                    // The take is complete; what arrives until `stop` is not part of it.
                    continue;
                }
                chunk = &chunk[..chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX))];
            }
            let out = &mut i16s[..chunk.len()];
            convert(chunk, out);
            // The live meter's peak, of the samples as kept (an integer maximum: it vectorizes,
            // where a float meter's running sum would cost as much as the rest of this loop).
            peak = out.iter().fold(peak, |m, s| m.max(s.unsigned_abs()));
            metered += out.len() as u64;
            if metered >= meter_samples {
                metered = 0;
                let dbfs = to_dbfs(f32::from(std::mem::take(&mut peak)) / 32768.0);
                self.shared
                    .peak_bits
                    .store(dbfs.to_bits(), Ordering::Relaxed);
            }
            lock(&self.shared.window).write(out);
            // Policy steps fall exactly on step boundaries of the sample stream, however the
            // ring happened to chunk it: every decision is a function of the audio alone.
            let mut rest: &[i16] = out;
            while !rest.is_empty() {
                let to_step = (next_step * channels).saturating_sub(taken);
                let n = rest
                    .len()
                    .min(usize::try_from(to_step).unwrap_or(usize::MAX));
                self.keep(&rest[..n], taken, &mut refusal_warned);
                taken += n as u64;
                rest = &rest[n..];
                self.shared.samples.store(taken, Ordering::Release);
                if taken == next_step * channels {
                    let report = self
                        .monitor
                        .step_at(next_step * 1000 / u64::from(self.rate));
                    self.shared
                        .pressure_permille
                        .store(u32::from(report.pressure.permille), Ordering::Relaxed);
                    next_step += self.step_frames;
                }
            }
            if self.limit_samples.is_some_and(|l| taken >= l) {
                self.shared.signal_done();
            }
        }
    }

    /// Applies the latest mode switch asked for; returns its generation.
    fn apply_switch(&self) -> u64 {
        let mut switch = lock(&self.shared.switch);
        let generation = switch.requested;
        if let Some(wanted) = switch.wanted.take() {
            switch.result = Some(self.switch_to(wanted));
        }
        switch.applied = generation;
        drop(switch);
        self.shared.switch_cv.notify_all();
        generation
    }

    /// Stream → file moves every block in memory to the take's file first (the take stays
    /// `file ++ memory`); file → stream only sends the following samples to memory.
    fn switch_to(&self, wanted: Mode) -> Result<()> {
        let current = mode_of(self.shared.mode.load(Ordering::Acquire));
        if wanted == current {
            return Ok(());
        }
        if wanted == Mode::File {
            let mut store = lock(&self.shared.store);
            let mut take = lock(&self.shared.take);
            let file = take.get()?;
            let moved = spill_oldest(&mut store, file, u64::MAX, 0);
            self.shared.count_spill(&moved);
            if let Some(e) = moved.error {
                return Err(e.context("switching to file mode"));
            }
        }
        self.shared.mode.store(mode_code(wanted), Ordering::Release);
        Ok(())
    }

    /// Puts `samples` where the take goes now: the take's file (file mode) or memory.
    fn keep(&self, samples: &[i16], taken: u64, warned: &mut bool) {
        if self.shared.mode.load(Ordering::Acquire) == MODE_FILE {
            self.write_file(samples, taken);
        } else {
            self.store(samples, taken, warned);
        }
    }

    /// File mode: appends `samples` to the take's file. A disk error ends the take there (the
    /// file keeps everything up to the last sample that reached the disk).
    fn write_file(&self, samples: &[i16], taken: u64) {
        if self.shared.ended.load(Ordering::Acquire) {
            return;
        }
        let (result, written) = {
            let mut take = lock(&self.shared.take);
            match take.get() {
                Ok(file) => {
                    let before = file.samples();
                    let result = file.write(samples);
                    // A failed write can take samples of earlier writes with it (they were
                    // still buffered): `written` is then negative.
                    (result, file.samples() as i64 - before as i64)
                }
                Err(e) => (Err(e), 0),
            }
        };
        let Err(e) = result else {
            return;
        };
        let lost = (samples.len() as i64 - written).max(0) as u64;
        let written = written.max(0) as u64;
        self.shared.lost_samples.fetch_add(lost, Ordering::Relaxed);
        let channels = u64::from(self.channels);
        let at = (taken + written) / channels;
        let seconds = at as f64 / f64::from(self.rate);
        self.monitor.note(
            at * 1000 / u64::from(self.rate),
            format!(
                "the disk refused the take after {seconds:.1} s: {}",
                e.what()
            ),
        );
        *lock(&self.shared.disk_error) =
            Some(e.context(format!("the take ended after {seconds:.1} s")));
        self.shared.ended.store(true, Ordering::Release);
        self.shared.signal_done();
    }

    /// Appends `samples` to the block store, asking the policy (and, failing that, spilling the
    /// oldest block to disk, or dropping it if that fails too) when the budget refuses a new
    /// block.
    fn store(&self, mut samples: &[i16], taken: u64, warned: &mut bool) {
        let total = samples.len() as u64;
        while !samples.is_empty() {
            // Position of the first sample not yet stored: the time of any decision below.
            let position = taken + total - samples.len() as u64;
            let refusal = {
                let mut store = lock(&self.shared.store);
                let n = store.write(samples);
                samples = &samples[n..];
                if samples.is_empty() {
                    return;
                }
                match store.grow() {
                    Ok(()) => continue,
                    Err(e) => e,
                }
            };
            // Budget exhausted: the policy's actions first (without the store locked: the
            // recorder's own callback takes it).
            let now_ms = position / u64::from(self.channels) * 1000 / u64::from(self.rate);
            tracing::debug!("budget refused a block: {refusal}");
            self.monitor.step_forced(now_ms, true);
            let mut store = lock(&self.shared.store);
            if store.grow().is_ok() {
                continue;
            }
            if !store.is_empty() {
                let bytes = store.block_bytes();
                let seconds = |n: u64| n as f64 / (f64::from(self.rate) * f64::from(self.channels));
                let spilled = {
                    let mut take = lock(&self.shared.take);
                    match take.get() {
                        Ok(file) => spill_oldest(&mut store, file, 1, 0),
                        Err(e) => Spilled {
                            error: Some(e),
                            ..Spilled::default()
                        },
                    }
                };
                self.shared.count_spill(&spilled);
                if spilled.blocks > 0 {
                    drop(store);
                    self.monitor.note(
                        now_ms,
                        format!(
                            "budget exhausted: spilled the oldest block to disk ({:.1} s of audio, {})",
                            seconds(spilled.samples),
                            format_bytes(bytes as u64)
                        ),
                    );
                    continue;
                }
                if let Some(n) = store.drop_oldest() {
                    drop(store);
                    let why = spilled
                        .error
                        .map(|e| format!("spilling to disk failed ({})", e.what()))
                        .unwrap_or_else(|| "nothing could be spilled".into());
                    let text = format!(
                        "budget exhausted: dropped the oldest block ({:.1} s of audio, {}); {why}",
                        seconds(n as u64),
                        format_bytes(bytes as u64)
                    );
                    if !self.shared.spill_warned.swap(true, Ordering::AcqRel) {
                        tracing::warn!("{text}; raise --budget or --disk-budget to keep all audio");
                    }
                    self.monitor.note(now_ms, text);
                }
                continue;
            }
            // Not even one block fits (other categories hold the budget): the samples are lost.
            self.shared
                .lost_samples
                .fetch_add(samples.len() as u64, Ordering::Relaxed);
            if !*warned {
                *warned = true;
                tracing::warn!(
                    "budget exhausted and no block to give up: losing audio ({refusal})"
                );
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::monitor::MonitorConfig;
    use crate::ring::AudioProducer;
    use crate::source::Synthetic;
    use std::time::Instant;

    /// A real-time-style source: pushes with `push_slice` (what does not fit is dropped and
    /// counted), either everything inside `start` or from a thread at real-time pace.
    struct Script {
        samples: Arc<Vec<f32>>,
        paced: bool,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
        /// How often `stop` was called.
        stops: Arc<AtomicU64>,
    }

    impl Script {
        fn new(samples: Vec<f32>, paced: bool) -> Self {
            Self {
                samples: Arc::new(samples),
                paced,
                stop: Arc::new(AtomicBool::new(false)),
                thread: None,
                stops: Arc::new(AtomicU64::new(0)),
            }
        }
    }

    impl Source for Script {
        fn describe(&self) -> String {
            "script".into()
        }
        fn rate(&self) -> u32 {
            16_000
        }
        fn channels(&self) -> u16 {
            1
        }
        fn start(&mut self, mut producer: AudioProducer, status: Arc<SourceStatus>) -> Result<()> {
            if !self.paced {
                producer.push_slice(&self.samples);
                status.finish();
                return Ok(());
            }
            let samples = self.samples.clone();
            let stop = self.stop.clone();
            self.thread = Some(std::thread::spawn(move || {
                let started = Instant::now();
                for (i, chunk) in samples.chunks(160).enumerate() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    producer.push_slice(chunk);
                    let due = started + Duration::from_millis(10 * (i as u64 + 1));
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                status.finish();
            }));
            Ok(())
        }
        fn stop(&mut self) {
            self.stops.fetch_add(1, Ordering::AcqRel);
            self.stop.store(true, Ordering::Release);
            if let Some(t) = self.thread.take() {
                t.join().expect("script thread");
            }
        }
    }

    /// Runs `f` on a thread; fails the test if it does not finish within `limit` (a deadlock).
    fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(limit)
            .expect("deadlock: did not finish in time")
    }

    #[test]
    fn stopping_at_the_limit_neither_deadlocks_nor_leaks_the_source() {
        // The earlier design's silence auto-stop stopped from the wrong thread, deadlocked and
        // leaked the stream. Here the take completes on the worker's side (the limit, like any
        // auto-stop) and the owner stops: promptly, the source stopped once, every byte back.
        let script = Script::new(ramp(10 * 16_000), true);
        let stops = script.stops.clone();
        let m = monitor(8 << 20);
        let acc = m.accountant().clone();
        let mut rec = Recorder::new(
            Box::new(script),
            m,
            RecorderConfig {
                limit_frames: Some(8_000),
                ..config()
            },
        )
        .expect("recorder");
        rec.start().expect("start");
        let rec = within(Duration::from_secs(10), move || {
            assert!(
                rec.wait(Duration::from_secs(8)),
                "the limit was never reached"
            );
            rec.stop().expect("stop");
            rec
        });
        assert_eq!(stops.load(Ordering::Acquire), 1);
        assert_eq!(rec.frames_captured(), 8_000);
        drop(rec);
        assert_eq!(stops.load(Ordering::Acquire), 1, "stopped twice");
        assert_eq!(acc.memory_used(), 0);
    }

    #[test]
    fn dropping_a_recording_recorder_stops_everything() {
        let script = Script::new(ramp(10 * 16_000), true);
        let stops = script.stops.clone();
        let m = monitor(8 << 20);
        let acc = m.accountant().clone();
        let mut rec = Recorder::new(Box::new(script), m.clone(), config()).expect("recorder");
        rec.start().expect("start");
        std::thread::sleep(Duration::from_millis(200));
        within(Duration::from_secs(10), move || drop(rec));
        assert_eq!(stops.load(Ordering::Acquire), 1);
        assert_eq!(acc.memory_used(), 0, "drop must give every byte back");
        // The recorder's cleanup callback is gone with it.
        assert!(m.cleanup(true).freed == 0);
    }

    fn monitor(budget: usize) -> Arc<MemoryMonitor> {
        Arc::new(
            MemoryMonitor::new(
                Arc::new(Accountant::new(budget, 0)),
                MonitorConfig {
                    observe_system: false,
                    ..MonitorConfig::default()
                },
            )
            .expect("monitor"),
        )
    }

    fn ramp(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i % 2000) as f32 - 1000.0) / 1024.0)
            .collect()
    }

    fn config() -> RecorderConfig {
        RecorderConfig {
            window: Duration::from_secs(1),
            ..RecorderConfig::default()
        }
    }

    #[test]
    fn stop_drains_everything_pushed_before_stop() {
        for round in 0..20 {
            let n = 6_000 + round * 97;
            let samples = ramp(n);
            let mut rec = Recorder::new(
                Box::new(Script::new(samples.clone(), false)),
                monitor(8 << 20),
                config(),
            )
            .expect("recorder");
            rec.start().expect("start");
            // Stop at once: the earlier design lost its queue here.
            rec.stop().expect("stop");
            let take = rec.take_i16();
            assert_eq!(take.len(), n, "round {round}");
            let expected: Vec<i16> = samples.iter().map(|&x| i16::from_f32(x)).collect();
            assert_eq!(take, expected);
            assert_eq!(rec.info().overruns, 0);
        }
    }

    use w4l_core::sample::Sample;

    #[test]
    fn nothing_captured_is_an_error_not_an_empty_take() {
        let mut rec = Recorder::new(
            Box::new(Script::new(Vec::new(), false)),
            monitor(8 << 20),
            config(),
        )
        .expect("recorder");
        rec.start().expect("start");
        let e = rec.stop().unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string().contains("nothing was captured from script"),
            "{e}"
        );
    }

    #[test]
    fn a_burst_larger_than_the_ring_is_counted_not_buffered() {
        let m = monitor(8 << 20);
        let acc = m.accountant().clone();
        let n = 200_000;
        let mut rec =
            Recorder::new(Box::new(Script::new(ramp(n), false)), m, config()).expect("recorder");
        rec.start().expect("start");
        rec.stop().expect("stop");
        let info = rec.info();
        assert_eq!(info.ring_capacity, 8192);
        // One push of 200 000 samples: the ring takes at most its capacity, the rest is counted.
        assert!(info.overruns >= (n - 8192) as u64, "{info:?}");
        assert_eq!(info.samples_captured + info.overruns, n as u64, "{info:?}");
        assert!(acc.figures().memory_peak <= 8 << 20);
    }

    #[test]
    fn a_slow_consumer_shows_up_as_counted_overruns() {
        // Budget: ring 32 KiB + window 31.25 KiB + one block 64 KiB is already > 60 %, so the
        // first policy step (after 1 s of audio) asks for cleanup, and this callback stalls the
        // worker for longer than the ring can hold (500 ms).
        let m = monitor(200 << 10);
        let stalled = Arc::new(AtomicBool::new(false));
        let s = stalled.clone();
        m.add_cleanup_callback(move |_| {
            if !s.swap(true, Ordering::AcqRel) {
                std::thread::sleep(Duration::from_millis(900));
            }
            0
        });
        let n = 3 * 16_000;
        let mut rec = Recorder::new(Box::new(Script::new(ramp(n), true)), m.clone(), config())
            .expect("recorder");
        rec.start().expect("start");
        assert!(rec.wait(Duration::from_secs(20)), "source never finished");
        rec.stop().expect("stop");
        let info = rec.info();
        assert!(stalled.load(Ordering::Acquire));
        assert!(info.overruns > 0, "{info:?}");
        assert_eq!(info.samples_captured + info.overruns, n as u64, "{info:?}");
        assert!(info.memory_peak <= 200 << 10, "{info:?}");
    }

    #[test]
    fn latest_info_cleanup_and_drop() {
        let m = monitor(8 << 20);
        let acc = m.accountant().clone();
        let frames = 3 * 16_000;
        let mut rec = Recorder::new(
            Box::new(Synthetic::new(16_000, 1, 7, frames, false)),
            m.clone(),
            config(),
        )
        .expect("recorder");
        assert_eq!(rec.info().state, RecorderState::Idle);
        rec.start().expect("start");
        assert!(rec.start().is_err(), "second start must fail");
        assert!(rec.wait(Duration::from_secs(20)));
        rec.stop().expect("stop");
        let info = rec.info();
        assert_eq!(info.state, RecorderState::Stopped);
        assert_eq!(info.frames_captured, frames);
        assert_eq!(info.window_frames, 16_000);
        assert!(info.memory_used > 0);
        let take = rec.take_i16();
        let latest = rec.latest(0.5);
        assert_eq!(latest.len(), 8_000);
        let tail: Vec<f32> = take[take.len() - 8_000..]
            .iter()
            .map(|s| s.to_f32())
            .collect();
        assert_eq!(latest, tail);
        assert!(rec.latest(-1.0).is_empty());
        assert!(rec.latest(f32::NAN).is_empty());
        assert_eq!(rec.latest(100.0).len(), 16_000);
        rec.cleanup();
        assert_eq!(acc.memory_used(), 0, "cleanup must give every byte back");
        assert!(rec.take_i16().is_empty());
        drop(rec);
        assert_eq!(acc.memory_used(), 0);
    }

    #[test]
    fn refusals_before_recording() {
        let e = Recorder::new(
            Box::new(Script::new(vec![0.0], false)),
            monitor(64 << 10),
            config(),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("smaller than one block"), "{e}");
    }
}
