//! The take: every sample of a recording, kept durable on disk first and cached in memory.
//!
//! ```text
//!  worker ──write──▶ TakeStore ─┬─▶ journal (a WAV or FLAC file in the output format, every
//!                               │            sample, in order; checkpointed every second)
//!                               └─▶ cache   (the newest blocks, charged to the budget; packed
//!                                            into FLAC frames where eviction would be a loss)
//! ```
//!
//! **Journal first.** In every [`Mode`] that allows disk, each sample goes to the take's
//! journal as it is taken ([`file::TakeFile`]: write-behind through a buffer, checkpointed at
//! least once per second of audio), so a crash or `kill -9` loses at most the last second. Memory holds the recent part: a budgeted cache of blocks. Under pressure the cache is
//! evicted, and because what it holds is already on disk, eviction is free and instant: no I/O
//! at the moment of pressure. Stream and file mode differ only in how much of the take the
//! cache keeps: as much as the budget allows, or the newest two blocks (the recorder's rolling
//! window serves `latest()` either way); a switch is a change of cache size.
//!
//! **Memory only.** [`Mode::Memory`] writes nothing to disk: there the cache is the take, and
//! evicting a block is a loss, counted ([`TakeStats::lost_samples`]) and reported.
//!
//! **When the disk fails.** A journal that cannot take more (a write error, the disk budget)
//! stops where it broke and stays as it is: from there on new samples are kept in the cache,
//! and evicting them is a counted loss. Saving writes the journal's part, then the cache's.
//!
//! **The compressed tier.** Where evicting a block would lose audio (memory mode, or once the
//! journal broke), each block is packed into FLAC frames the moment it is full
//! ([`packed::Packer`], on the worker thread, under the take's lock) and its reservation shrinks
//! to the packed size, so the same budget holds more before the first eviction: 1.5× the
//! seconds of 16 kHz mono speech over a −64 dB noise floor, 1.8× at 48 kHz mono, 2.9× at
//! 48 kHz stereo (`host/tests/cache_ratio.rs`). Reading ([`TakeStore::for_each`], a save
//! written anew, `Recorder::take_i16`) unpacks sample-exact; `latest()` reads the recorder's
//! window, which is never packed. Stream and file mode do not pack while the journal holds
//! everything: there eviction is free, and packing would cost CPU for nothing (on a 10-minute
//! 48 kHz stereo replay, 1.5 s: the replay went from 0.8× to 7× `sox`'s time,
//! `scripts/bench-offline`). [`TakeSpec::compress`] turns it off.
//!
//! One [`TakeStore`] lives behind one lock in the recorder: the journal, the cache, the mode and the
//! counters change together, so a mode switch or an eviction happens between two writes by
//! construction.

mod beside;
pub mod blocks;
pub mod file;
pub mod packed;
mod reader;
pub mod recover;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use w4l_core::accountant::Accountant;

use crate::error::{Error, Result};
use crate::wav::{AudioOutput, SampleFormat};
use blocks::BlockStore;
use file::TakeFile;
use packed::Packer;

/// Where a take is kept while it is being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every sample on disk (the journal), and as much of the take in memory as the budget
    /// allows: evicted under pressure, for free.
    #[default]
    Stream,
    /// Every sample on disk, nothing of the take in memory beyond the rolling window.
    File,
    /// Nothing on disk: the take lives in memory, and what memory pressure evicts is lost
    /// (counted and reported).
    Memory,
}

impl Mode {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Stream => "stream",
            Mode::File => "file",
            Mode::Memory => "memory",
        }
    }

    /// Whether the mode writes the take to disk.
    pub fn uses_disk(self) -> bool {
        self != Mode::Memory
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not `stream`, `file` or `memory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMode(pub String);

impl fmt::Display for UnknownMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown mode '{}'; use stream, file or memory", self.0)
    }
}

impl std::error::Error for UnknownMode {}

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "stream" => Ok(Mode::Stream),
            "file" => Ok(Mode::File),
            "memory" => Ok(Mode::Memory),
            _ => Err(UnknownMode(s.into())),
        }
    }
}

/// Blocks file mode keeps in memory: two blocks (128 KiB by default) hold more than the
/// journal's 32 KiB write buffer, so a write error loses nothing that was still buffered.
pub const FILE_MODE_BLOCKS: usize = 2;

/// What [`TakeStore::free`] gave back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freed {
    /// Bytes of memory released.
    pub bytes: u64,
    /// Samples evicted that are on disk (nothing lost).
    pub evicted_samples: u64,
    /// Samples evicted that were not on disk: lost.
    pub lost_samples: u64,
}

/// The take's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TakeStats {
    /// Samples (all channels) written to the take.
    pub samples: u64,
    /// Samples on disk, in the journal.
    pub journaled_samples: u64,
    /// Samples held in memory.
    pub cached_samples: u64,
    /// Blocks held in memory.
    pub cached_blocks: u64,
    /// Of those, blocks held packed into FLAC frames.
    pub packed_blocks: u64,
    /// Bytes of memory the cached blocks are charged.
    pub cached_bytes: u64,
    /// Samples evicted from memory that are on disk (free).
    pub evicted_samples: u64,
    /// Samples lost: evicted while not on disk, or not stored at all.
    pub lost_samples: u64,
    /// Bytes of the journal's files (headers included).
    pub disk_bytes: u64,
    /// Files of the journal (more than one past 4 GiB, or after a write error).
    pub disk_files: u64,
}

/// Where a saved take went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// Frames written.
    pub frames: u64,
    /// Frames of the take missing from the output (lost on the way, counted).
    pub frames_lost: u64,
    /// The files written, in order: the output, then `out.001.wav`, … past 4 GiB.
    pub files: Vec<PathBuf>,
}

/// What a take is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakeSpec {
    /// Where it is kept.
    pub mode: Mode,
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// The format on disk and of the output.
    pub format: SampleFormat,
    /// Samples per cached block.
    pub block_samples: usize,
    /// Whether full cached blocks are packed into FLAC frames in memory where evicting them
    /// would lose audio: in memory mode, and in any mode once the journal broke (see the
    /// [module docs](self)).
    pub compress: bool,
}

/// A take being recorded (see the [module docs](self)).
pub struct TakeStore {
    mode: Mode,
    rate: u32,
    channels: u16,
    format: SampleFormat,
    journal: Option<TakeFile>,
    /// Why the journal takes no more samples (it stays as it is, up to where it broke).
    journal_error: Option<Error>,
    cache: BlockStore,
    /// Whether the cache packs full blocks where evicting them would lose audio.
    compress: bool,
    /// Samples written to the take.
    samples: u64,
    evicted_samples: u64,
    lost_samples: u64,
    /// Errors that cost durability or audio, not yet handed out by [`take_error`](Self::take_error).
    unreported: Vec<Error>,
}

impl fmt::Debug for TakeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TakeStore")
            .field("mode", &self.mode)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TakeStore {
    /// A take as `spec` says whose cache is charged to `accountant`, with `journal` for the
    /// disk modes (`None` only for [`Mode::Memory`]).
    ///
    /// # Errors
    ///
    /// A disk mode without a journal.
    pub fn new(
        spec: TakeSpec,
        accountant: Arc<Accountant>,
        journal: Option<TakeFile>,
    ) -> Result<Self> {
        let mode = spec.mode;
        if mode.uses_disk() && journal.is_none() {
            return Err(Error::usage(
                format!("a take in {mode} mode needs a file on disk"),
                "give it one, or record in memory mode",
            ));
        }
        Ok(Self {
            mode,
            rate: spec.rate,
            channels: spec.channels.max(1),
            format: spec.format,
            journal: if mode.uses_disk() { journal } else { None },
            journal_error: None,
            cache: BlockStore::new(
                accountant,
                spec.block_samples,
                Packer::new(spec.rate, spec.channels),
            ),
            compress: spec.compress,
            samples: 0,
            evicted_samples: 0,
            lost_samples: 0,
            unreported: Vec::new(),
        })
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Samples written so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// TakeStore position up to which every sample is in the journal.
    fn journal_end(&self) -> u64 {
        self.journal.as_ref().map_or(0, TakeFile::samples)
    }

    /// Whether the cache keeps everything the budget allows: stream and memory mode, and any
    /// mode once the journal broke. File mode keeps only the newest [`FILE_MODE_BLOCKS`].
    fn caches(&self) -> bool {
        self.mode != Mode::File || self.journal_error.is_some() || self.journal.is_none()
    }

    /// Whether evicting a block from now on would lose audio: no journal (memory mode), or one
    /// that broke. Only then is packing worth its CPU (elsewhere eviction is free).
    fn eviction_loses(&self) -> bool {
        self.journal.is_none() || self.journal_error.is_some()
    }

    /// Appends interleaved samples (whole frames): to the journal, then to the cache. Never
    /// fails: what goes wrong is counted ([`stats`](Self::stats)) and kept for
    /// [`take_error`](Self::take_error).
    pub fn write(&mut self, samples: &[i16]) {
        let start = self.samples;
        self.journal_write(samples);
        self.samples += samples.len() as u64;
        if self.cache.end() != start {
            // Caching starts here (after a switch to stream mode): a new stretch.
            self.cache.restart_at(start);
        }
        self.cache
            .set_packing(self.compress && self.eviction_loses());
        self.cache_write(samples);
        if !self.caches() {
            // File mode: only the newest blocks stay, which covers what the journal's write
            // buffer has not handed to the disk yet (a write error loses nothing of it).
            let keep = FILE_MODE_BLOCKS;
            while self.cache.len() > keep && self.evict_oldest().is_some() {}
        }
    }

    fn journal_write(&mut self, samples: &[i16]) {
        if self.journal_error.is_some() {
            return;
        }
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        if let Err(e) = journal.write(samples) {
            tracing::warn!("{e}; the take goes on in memory");
            self.unreported.push(e.clone());
            self.journal_error = Some(e);
        }
    }

    /// Appends to the cache, evicting its oldest blocks when the budget refuses a new one.
    fn cache_write(&mut self, mut samples: &[i16]) {
        while !samples.is_empty() {
            let n = self.cache.write(samples);
            samples = &samples[n..];
            if samples.is_empty() {
                break;
            }
            // The oldest blocks go until the budget grants a new one (packed blocks are
            // smaller than a new one: it may take several).
            while self.cache.grow().is_err() {
                if self.evict_oldest().is_none() {
                    // No room at all: the rest is not kept in memory (lost unless on disk).
                    let end = self.samples;
                    let begin = end - samples.len() as u64;
                    self.lost_samples += end - begin.max(self.journal_end()).min(end);
                    self.cache.restart_at(end);
                    return;
                }
            }
        }
    }

    /// Whether `samples` more fit in memory without evicting anything.
    pub fn has_room(&self, samples: usize) -> bool {
        self.cache.has_room(samples)
    }

    /// Drops the oldest cached block; returns (bytes, samples on disk, samples lost).
    fn evict_oldest(&mut self) -> Option<(u64, u64, u64)> {
        let block = self.cache.pop_oldest()?;
        let on_disk = self.journal_end().clamp(block.first_sample(), block.end());
        let durable = on_disk - block.first_sample();
        let lost = block.end() - on_disk;
        self.evicted_samples += durable;
        if lost > 0 && self.lost_samples == 0 {
            let e = Error::runtime(
                "memory is full and the disk does not hold this part of the take: the oldest \
                 audio in memory is being given up (counted)",
                "raise the budget, or free disk space for the take's journal",
            );
            tracing::warn!("{e}");
            self.unreported.push(e);
        }
        self.lost_samples += lost;
        Some((block.bytes() as u64, durable, lost))
    }

    /// Evicts the oldest cached blocks until `want` bytes are freed, keeping at least `keep`
    /// blocks. Free of I/O: what is on disk costs nothing; the rest is lost and counted.
    pub fn free(&mut self, want: u64, keep: usize) -> Freed {
        let mut freed = Freed::default();
        while freed.bytes < want.max(1) && self.cache.len() > keep {
            let Some((bytes, durable, lost)) = self.evict_oldest() else {
                break;
            };
            freed.bytes += bytes;
            freed.evicted_samples += durable;
            freed.lost_samples += lost;
        }
        freed
    }

    /// Switches between [`Mode::Stream`] and [`Mode::File`] between two writes: to file mode
    /// the cache is released (all of it is on disk); to stream mode the cache starts with the
    /// next sample.
    ///
    /// # Errors
    ///
    /// A switch to or from [`Mode::Memory`] (fixed when the take starts).
    pub fn switch_to(&mut self, mode: Mode) -> Result<()> {
        if mode == self.mode {
            return Ok(());
        }
        if !mode.uses_disk() || !self.mode.uses_disk() {
            return Err(Error::usage(
                format!("cannot switch a take from {} to {mode} mode", self.mode),
                "choose memory mode (no disk) before recording starts",
            ));
        }
        self.mode = mode;
        if mode == Mode::File && self.journal_error.is_none() {
            self.free(u64::MAX, FILE_MODE_BLOCKS);
        }
        Ok(())
    }

    /// Makes everything written so far durable on disk (a header checkpoint).
    pub fn checkpoint(&mut self) {
        if self.journal_error.is_some() {
            return;
        }
        if let Some(journal) = self.journal.as_mut()
            && let Err(e) = journal.checkpoint()
        {
            self.unreported.push(e.clone());
            self.journal_error = Some(e);
        }
    }

    /// Keeps `error` for [`take_error`](Self::take_error) (a reason the take lost durability).
    pub fn report(&mut self, error: Error) {
        self.unreported.push(error);
    }

    /// The oldest error that cost durability or audio and was not handed out yet.
    pub fn take_error(&mut self) -> Option<Error> {
        (!self.unreported.is_empty()).then(|| self.unreported.remove(0))
    }

    /// The take's figures.
    pub fn stats(&self) -> TakeStats {
        TakeStats {
            samples: self.samples,
            journaled_samples: self.journal_end(),
            cached_samples: self.cache.held_samples(),
            cached_blocks: self.cache.len() as u64,
            packed_blocks: self.cache.packed() as u64,
            cached_bytes: self.cache.held_bytes(),
            evicted_samples: self.evicted_samples,
            lost_samples: self.lost_samples,
            disk_bytes: self.journal.as_ref().map_or(0, TakeFile::bytes),
            disk_files: self.journal.as_ref().map_or(0, |j| j.files().len() as u64),
        }
    }

    /// The cache's stretch (take positions), for [`for_each`](Self::for_each) and tests.
    pub fn cached(&self) -> (u64, u64) {
        (self.cache.start(), self.cache.end())
    }

    /// Hands the whole take to `f` in order, in 16-bit chunks: the journal's samples, then the
    /// cache's beyond them. Returns the samples missing in between (lost).
    ///
    /// # Errors
    ///
    /// The journal cannot be read, or `f`'s error.
    pub fn for_each(&mut self, f: &mut dyn FnMut(&[i16]) -> Result<()>) -> Result<u64> {
        let journal_end = self.journal_end();
        if let Some(journal) = self.journal.as_mut()
            && journal_end > 0
        {
            journal.read_all(f)?;
        }
        let (gap, at) = self.cache.read_from(journal_end, f)?;
        Ok(gap + self.samples.saturating_sub(at))
    }

    /// Writes the whole take to `path` (and `out.001.wav`, … past 4 GiB), the take's journal
    /// moved there when it holds everything (a rename on the same file system), else written
    /// anew from the journal and the cache. Consumes the take: its memory and its temporary
    /// files go.
    ///
    /// # Errors
    ///
    /// The output cannot be written. When the journal could not be moved, the error says where
    /// it is.
    pub fn save(self, path: &Path) -> Result<Saved> {
        self.save_with(path, &|| {})
    }

    /// [`save`](Self::save), calling `before_move` once the samples are written and before
    /// the output appears at `path` (tests interrupt there).
    ///
    /// # Errors
    ///
    /// As for [`save`](Self::save).
    pub fn save_with(mut self, path: &Path, before_move: &dyn Fn()) -> Result<Saved> {
        let frames = |samples: u64| samples / u64::from(self.channels);
        let whole = self.journal_error.is_none() && self.journal_end() == self.samples;
        let saved = if whole && let Some(mut journal) = self.journal.take() {
            journal.checkpoint()?;
            before_move();
            let total = journal.samples();
            Saved {
                frames: frames(total),
                frames_lost: frames(self.lost_samples),
                files: journal.persist(path)?,
            }
        } else {
            self.write_anew(path, before_move)?
        };
        file::warn_stale_part(path, saved.files.len());
        Ok(saved)
    }

    fn write_anew(&mut self, path: &Path, before_move: &dyn Fn()) -> Result<Saved> {
        let mut out = AudioOutput::create_as(path, self.rate, self.channels, self.format)?;
        let mut failed = None;
        let gap = self
            .for_each(&mut |samples| out.write(samples).inspect_err(|e| failed = Some(e.clone())));
        if let Some(e) = failed {
            // What reached the disk becomes the output; the error says why it ends there.
            out.finish_partial()?;
            return Err(e);
        }
        let gap = gap?;
        let written = out.len();
        before_move();
        let file = out.finish()?;
        Ok(Saved {
            frames: written / u64::from(self.channels),
            frames_lost: self.lost_samples.max(gap) / u64::from(self.channels),
            files: vec![file],
        })
    }
}
