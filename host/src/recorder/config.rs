//! How a recorder keeps its take: [`RecorderConfig`], and the sizes of its fixed buffers.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::memory::buffers::Buffers;
use crate::take::Mode;
use crate::tempfiles::ResourceManager;
use crate::units::format_bytes;
use crate::wav::{SampleFormat, WAV_DATA_LIMIT};

/// How a [`Recorder`](super::Recorder) keeps the take. Every field has a sensible default.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Where the take is kept (see [`Mode`]): on disk and cached in memory (stream, the
    /// default), on disk only (file), or in memory only (memory).
    /// [`Recorder::set_mode`](super::Recorder::set_mode) switches between stream and file.
    pub mode: Mode,
    /// Sample format of the journal and the output (the take itself is 16-bit in every mode).
    pub format: SampleFormat,
    /// The temporary-file manager for the take's journal. `None`: the process's shared
    /// manager of the default directory ([`ResourceManager::shared`]).
    pub temp_files: Option<Arc<ResourceManager>>,
    /// Most bytes of samples per output file before the next numbered file starts. Default
    /// and maximum [`WAV_DATA_LIMIT`] (a WAV file's 4 GiB); tests lower it.
    pub max_file_bytes: u64,
    /// Length of the rolling window behind [`Recorder::latest`](super::Recorder::latest).
    /// [`Duration::ZERO`]: an app that never reads it keeps one frame, and copies no audio
    /// into it.
    pub window: Duration,
    /// Bytes per cached block of the take (16-bit samples). Default 64 KiB: 2 s of 16 kHz mono.
    pub block_bytes: usize,
    /// Whether full cached blocks are compressed in memory (FLAC frames; the budget is charged
    /// their compressed size) where evicting them would lose audio: in memory mode, and once
    /// the journal broke. Default on. Stream and file mode do not compress while the journal
    /// holds everything (evicting is free there). See [`crate::take`].
    pub compress_cache: bool,
    /// Capacity of the ring between the source and the worker, as audio time. Default 500 ms:
    /// a device delivers in 200 ms fragments. A PulseAudio source wakes the worker when the
    /// ring is half full, so this also bounds how far [`Recorder::latest`] lags behind the
    /// device (by half of it, rounded up to a power of two of samples).
    ///
    /// [`Recorder::latest`]: super::Recorder::latest
    pub ring: Duration,
    /// Stop taking audio after exactly this many frames (`--seconds`).
    pub limit_frames: Option<u64>,
    /// Captured audio between two policy steps. Default 1 s (see [`crate::memory::monitor`]).
    pub step: Duration,
    /// Where the take is meant to be saved: written into the journal's manifest, so that a take
    /// killed before it was saved is recovered there by the next start.
    pub output: Option<std::path::PathBuf>,
    /// Where the recorder registers its buffers (ring, window, the take's cache): an app's
    /// registry, to see them beside its own, or `None` for one of the recorder's own.
    pub buffers: Option<Arc<Buffers>>,
    /// Takes in a row (default off): the recorder starts with no take and keeps its source
    /// open between takes, feeding only the window, until
    /// [`Recorder::begin_take`](super::Recorder::begin_take).
    pub takes_in_a_row: bool,
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
            compress_cache: true,
            ring: Duration::from_millis(500),
            limit_frames: None,
            step: Duration::from_secs(1),
            buffers: None,
            output: None,
            takes_in_a_row: false,
        }
    }
}

/// The fixed buffers of a recorder: ring samples and window samples (both `i16`), bytes per
/// block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizes {
    pub(crate) ring: usize,
    pub(crate) window: usize,
    pub(crate) block_bytes: usize,
}

impl Sizes {
    pub(crate) fn of(config: &RecorderConfig, rate: u32, channels: u16) -> Self {
        let per_second = f64::from(rate) * f64::from(channels);
        // At least two whole frames: the worker pops whole frames while the source runs, so a
        // ring shorter than a frame (a 1 Hz file of 32 767 channels) would never be popped.
        let ring = ((config.ring.as_secs_f64() * per_second).ceil() as usize)
            .max(1024)
            .max(2 * usize::from(channels.max(1)))
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX);
        let frames = (config.window.as_secs_f64() * f64::from(rate))
            .ceil()
            .max(1.0) as usize;
        // Whole frames per block, at least one.
        let frame_bytes = usize::from(channels.max(1)) * size_of::<i16>();
        Self {
            ring,
            window: frames.saturating_mul(usize::from(channels)),
            block_bytes: (config.block_bytes / frame_bytes).max(1) * frame_bytes,
        }
    }

    /// Bytes of the ring, the window and one block (saturating: a year-long window of many
    /// channels must be refused, not wrap around).
    pub(crate) fn bytes(&self) -> u64 {
        (self.ring as u64)
            .saturating_add(self.window as u64)
            .saturating_mul(size_of::<i16>() as u64)
            .saturating_add(self.block_bytes as u64)
    }

    /// The error for a budget of `available` bytes that cannot hold them.
    pub(crate) fn too_big(&self, config: &RecorderConfig, available: u64) -> Error {
        Error::usage(
            format!(
                "the budget ({} available for audio) is smaller than one block of the take \
                 ({}) plus the ring ({}) and the {:.0} s window ({})",
                format_bytes(available),
                format_bytes(self.block_bytes as u64),
                format_bytes((self.ring as u64).saturating_mul(4)),
                config.window.as_secs_f64(),
                format_bytes((self.window as u64).saturating_mul(2)),
            ),
            format!(
                "raise the budget to at least {} or shorten the window",
                format_bytes(self.bytes())
            ),
        )
    }
}

/// The smallest budget a recorder with these settings can run in: its ring, its window and one
/// block.
pub fn minimum_budget(config: &RecorderConfig, rate: u32, channels: u16) -> u64 {
    Sizes::of(config, rate, channels).bytes()
}

/// The allocator refused `bytes` for `what` (sized by the window, the rate and the channels):
/// a usage error, never an abort.
pub(crate) fn out_of_memory(what: &str, bytes: usize) -> Error {
    Error::usage(
        format!(
            "cannot allocate {} for {what}: the system refused the memory",
            format_bytes(bytes as u64)
        ),
        "shorten the window or lower the budget",
    )
}
