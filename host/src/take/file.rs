//! The take's journal on disk: a [`TakeFile`] receives every sample of a take as it is
//! captured (see [`crate::take`]), and becomes the output at the end.
//!
//! # The output's format from the start
//!
//! A [`TakeFile`] is a file in the [`ResourceManager`]'s temporary directory written in the
//! *output* format ([`SampleFormat`]): WAV by `hound`, 16-bit PCM by default or 32-bit float
//! with `--format f32`, or FLAC with `--format flac` ([`crate::wav::flac`]). Finishing a take
//! moves the file to the output ([`TempFile::persist`]: a rename on the same file system, else
//! copy + fsync): the samples are never written twice. They pass through the take's 16-bit
//! resolution in every mode; `f32` writes each 16-bit sample as `x / 32768`, exactly, and FLAC
//! is lossless. The writer of each format is in `take/writer.rs`. (Temporary files keep the
//! directory's one `.wav` suffix whatever their format: their names say whose they are, the
//! first bytes and the manifest say what they hold.)
//!
//! # Beside the output on another disk
//!
//! When the temporary directory is on another file system than the output (`-o`), the move
//! would be a copy of the whole take at the moment the user waits for it. So then the journal
//! is written beside the output from the start, in a private `<output dir>/.w4l/` (0700, its
//! files 0600), if that directory is on a disk (never a tmpfs or ramfs: `statfs`) and can be
//! created; a pointer in the temporary directory leads the next start there after a kill, and
//! the directory and the pointer go when the take is saved (`take/beside.rs`). Everywhere
//! else — the same file system, no output known, an output directory in RAM or not writable,
//! a temporary directory the user put in RAM on purpose — the journal stays in the temporary
//! directory.
//!
//! # Crash safety
//!
//! The file is checkpointed after every second of audio, so a file left by SIGKILL or a power
//! cut plays as it is up to its last checkpoint (it misses at most the last second):
//!
//! * WAV: the header is rewritten ([`hound::WavWriter::flush`]) and marked unfinished;
//! * FLAC: every whole frame is handed to the OS; the STREAMINFO says "total unknown" until the
//!   end, and frames are self-delimiting, so a torn file is cut after its last whole frame. The
//!   block being filled (under 1024 frames: 64 ms at 16 kHz) is encoded only when full, so a
//!   checkpoint covers the audio up to the last whole block before it.
//!
//! Each file has a manifest beside it
//! ([`Manifest`]: the intended output, the format, the start, the owner), written when the file
//! is created, so such a file is a take to finish, not scratch to reap: the next start finishes
//! it into a playable file with every sample that reached the disk ([`super::recover`]).
//! A take that cannot be saved at its output stays recoverable the same way
//! ([`TakeFile::persist`]).
//!
//! # Disk budget and write errors
//!
//! Every byte is charged to the recorder's accountant ([`Category::Disk`](w4l_core::accountant::Category::Disk))
//! *before* it is written (a FLAC frame at its worst case, then its real size): when the disk
//! budget refuses, nothing is written and the file stays whole. A write error (ENOSPC, EFBIG,
//! EIO) closes the file where it broke: it is cut to the last whole frame that reached the disk
//! ([`crate::wav::fix`]), kept (it is saved like any other), and the next write starts a new
//! file.
//!
//! # 4 GiB: numbered files
//!
//! A WAV file cannot hold more than 4 GiB of samples (its sizes are 32-bit; `hound`'s counters
//! would even wrap silently in release builds). Rather than refuse to record on, a take that
//! reaches [`WAV_DATA_LIMIT`] continues in a new file, and the output becomes numbered files:
//! `out.wav`, `out.001.wav`, `out.002.wav`, … ([`numbered_path`]), each a complete WAV file,
//! together the take in order, sample-exact. At 48 kHz stereo 16-bit a file holds 6.2 hours
//! (3.1 h as `f32`); at 16 kHz mono 16-bit, 37 hours. A FLAC file has no such limit (its
//! STREAMINFO counts up to 2^36 frames, then says "unknown"); only a write error starts its next
//! file.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::beside::{Beside, beside_output};
use super::reader;
use super::writer::Writer;
use crate::error::{Error, Result};
use crate::tempfiles::{
    DiskLedger, Manifest, ResourceManager, TakePart, TempError, TempFile, UnfinishedTake,
    manifest_path,
};
use crate::wav::{SampleFormat, WAV_DATA_LIMIT, numbered_path};

/// Sets the `RIFF` size of a take file just checkpointed to [`crate::wav::repair::UNKNOWN_LENGTH`]:
/// the file is still growing. Its `data` size stays the checkpoint's, so it plays as it lies
/// up to there; `w4l recover` after a kill sees the mark and takes every byte after the
/// checkpoint as samples too (without it, those bytes could not be told from a finished file's
/// trailing junk). Finalizing writes the real size. Best effort: without the mark only the
/// audio up to the checkpoint is recovered.
fn mark_unfinished(file: &File) {
    use std::os::unix::fs::FileExt;
    let _ = file.write_at(&crate::wav::repair::UNKNOWN_LENGTH.to_le_bytes(), 4);
}

/// Bytes written between two [`start_writeback`] calls.
const WRITEBACK_BYTES: u64 = 4 << 20;

/// Starts writing the bytes of `file` from `from` on to disk without waiting for them (Linux
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`; nothing elsewhere). Called at a header checkpoint
/// once [`WRITEBACK_BYTES`] more were written, it keeps a take at most that far ahead of the
/// disk, so the `fsync` that ends a save waits for the last few MiB only instead of the whole
/// take (`scripts/bench-offline`: that wait was a third of a 10-minute replay). A failure here is
/// harmless: the final `fsync` reports real errors. `from` is a count of sample bytes, so the
/// range starts a header's length early: also harmless (those pages are already on their way).
/// It may block while the disk's queue is full: a live take on slow media then leans on the
/// ring's margin for that long, as it would for the writes themselves.
fn start_writeback(file: &File, from: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let from = libc::off64_t::try_from(from).unwrap_or(0);
        // SAFETY: a plain syscall on a file descriptor `file` owns for the whole call; it reads
        // and writes no memory of ours.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), from, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from);
}

/// Warns when the numbered part after the `parts` files just saved at `output` exists: it is left
/// from an earlier, longer take at the same path and is not part of this one. It is not removed:
/// w4l deletes only files this process created.
pub(crate) fn warn_stale_part(output: &Path, parts: usize) {
    let next = numbered_path(output, parts.max(1));
    if next.symlink_metadata().is_ok() {
        tracing::warn!(
            "{} is left from an earlier, longer take at {}; it is not part of this take (remove it if it is unwanted)",
            next.display(),
            output.display()
        );
    }
}

/// How a [`TakeFile`] is written.
#[derive(Debug, Clone)]
pub struct TakeFileConfig {
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// The output format.
    pub format: SampleFormat,
    /// Most bytes of samples per WAV file before the next numbered file starts (at most, and
    /// by default, [`WAV_DATA_LIMIT`]; tests lower it). FLAC files have no limit.
    pub max_data_bytes: u64,
    /// The temporary files' purpose (`take`).
    pub purpose: &'static str,
    /// Where the take is to be saved, if known: written to the manifest, so a take whose
    /// process dies is recovered there.
    pub output: Option<PathBuf>,
}

/// A file being written.
struct OpenFile {
    temp: TempFile,
    writer: Writer,
    /// Samples written to this file (for FLAC, the block being filled included).
    samples: u64,
    /// Bytes of the file handed to [`start_writeback`] so far.
    written_back: u64,
}

/// A file that is complete (or was cut where a write failed).
struct ClosedFile {
    temp: TempFile,
}

/// The part of a take on disk: one or more temporary WAV files (see the module docs).
pub struct TakeFile {
    manager: Arc<ResourceManager>,
    ledger: Arc<dyn DiskLedger>,
    config: TakeFileConfig,
    /// Bytes of samples per file, whole frames.
    file_limit: u64,
    header: u64,
    closed: Vec<ClosedFile>,
    open: Option<OpenFile>,
    /// Samples in every file (all channels).
    samples: u64,
    /// Samples written since the last header checkpoint.
    unflushed: u64,
    /// Samples between two header checkpoints (one second of audio).
    checkpoint_samples: u64,
    write_errors: u64,
    /// Whether the disk budget applies to writes (not any more while saving: those bytes
    /// are the output, not temporary files).
    metered: bool,
    /// When the take started (Unix seconds), for the manifests.
    started: u64,
    /// Names the take in its files' manifests (the first file's random part).
    take_id: String,
    /// The journal's directory beside the output, when it is there ([`super::beside`]).
    /// Last, so it drops after `manager` and the files: it closes that directory.
    _beside: Option<Arc<Beside>>,
}

impl std::fmt::Debug for TakeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TakeFile")
            .field("config", &self.config)
            .field("files", &self.files())
            .field("samples", &self.samples)
            .finish_non_exhaustive()
    }
}

impl TakeFile {
    /// A take file charged to `ledger`; the first file is created by the first write. Its
    /// files go to `manager`'s directory, or beside the output when that is on another disk
    /// (see the module docs).
    pub fn new(
        manager: Arc<ResourceManager>,
        ledger: Arc<dyn DiskLedger>,
        config: TakeFileConfig,
    ) -> Self {
        let beside = config
            .output
            .as_deref()
            .and_then(|output| beside_output(&manager, output));
        let manager = match beside.as_ref().and_then(|b| b.manager()) {
            Some(there) => Arc::clone(there),
            None => manager,
        };
        let channels = config.channels.max(1);
        let frame = config.format.bytes_per_sample() * u64::from(channels);
        let limit = config.max_data_bytes.clamp(1, WAV_DATA_LIMIT);
        let file_limit = (limit / frame).max(1) * frame;
        Self {
            header: config.format.header_bytes(channels),
            checkpoint_samples: (u64::from(config.rate) * u64::from(channels)).max(1),
            manager,
            ledger,
            config,
            file_limit,
            closed: Vec::new(),
            open: None,
            samples: 0,
            unflushed: 0,
            write_errors: 0,
            metered: true,
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            take_id: String::new(),
            _beside: beside,
        }
    }

    /// From now on writes are charged to the disk budget but not refused by it: the take is
    /// being saved, and what is appended now is the output, not a temporary file.
    pub fn unmetered(&mut self) {
        self.metered = false;
    }

    /// Like [`new`](Self::new), and creates the first file at once (file mode: a temporary
    /// directory that cannot take files is an error before recording starts).
    ///
    /// # Errors
    ///
    /// The temporary file cannot be created or its header written.
    pub fn create(
        manager: Arc<ResourceManager>,
        ledger: Arc<dyn DiskLedger>,
        config: TakeFileConfig,
    ) -> Result<Self> {
        let mut file = Self::new(manager, ledger, config);
        file.open_file()?;
        Ok(file)
    }

    /// How the files are written.
    pub fn config(&self) -> &TakeFileConfig {
        &self.config
    }

    /// Samples (all channels) in the files.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Bytes charged for the files (headers included).
    pub fn bytes(&self) -> u64 {
        self.closed.iter().map(|c| c.temp.size()).sum::<u64>()
            + self.open.as_ref().map_or(0, |o| o.temp.size())
    }

    /// The temporary files, oldest first.
    pub fn files(&self) -> Vec<PathBuf> {
        self.closed
            .iter()
            .map(|c| c.temp.path().to_owned())
            .chain(self.open.as_ref().map(|o| o.temp.path().to_owned()))
            .collect()
    }

    /// Write errors so far (each cut a file short).
    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }

    fn open_file(&mut self) -> Result<()> {
        let temp = self
            .manager
            .create_charged(self.config.purpose, self.ledger.as_ref())
            .map_err(Error::from)?;
        temp.write_manifest(&self.manifest(&temp))
            .map_err(Error::from)?;
        let header = self.header;
        if let Err(e) = temp.account(header)
            && (self.metered || !matches!(e, TempError::Budget(_)))
        {
            return Err(self.refused(e));
        }
        let c = &self.config;
        let mut writer = temp
            .as_file()
            .try_clone()
            .and_then(|file| Writer::create(file, c.format, c.rate, c.channels, self.file_limit))
            .map_err(|e| self.write_error(temp.path(), &e))?;
        // Every file is a valid (empty) WAV or FLAC file on disk from its first moment.
        writer
            .checkpoint()
            .map_err(|e| self.write_error(temp.path(), &e))?;
        self.open = Some(OpenFile {
            temp,
            writer,
            samples: 0,
            written_back: 0,
        });
        Ok(())
    }

    /// The manifest of the next file, `temp`.
    fn manifest(&mut self, temp: &TempFile) -> Manifest {
        if self.take_id.is_empty() {
            self.take_id = temp
                .path()
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.rsplit('-').next())
                .unwrap_or_default()
                .to_owned();
        }
        Manifest {
            output: self.config.output.clone(),
            format: self.config.format.as_str().to_owned(),
            rate: self.config.rate,
            channels: self.config.channels,
            started: self.started,
            pid: std::process::id(),
            take: self.take_id.clone(),
            part: u32::try_from(self.closed.len()).unwrap_or(u32::MAX),
        }
    }

    fn refused(&self, e: TempError) -> Error {
        match e {
            TempError::Budget(refused) => Error::runtime(
                format!(
                    "the disk budget is exhausted (the take's temporary files may not grow to {} bytes: {})",
                    refused.requested, refused.reason
                ),
                "raise the disk budget or free disk space",
            ),
            other => Error::from(other),
        }
    }

    fn write_error(&self, path: &Path, e: &io::Error) -> Error {
        Error::runtime(
            format!(
                "cannot write the take to the temporary file {} ({})",
                path.display(),
                crate::wav::io_reason(e)
            ),
            "free space on that disk or point W4L_TEMP_DIR elsewhere; the take up to the failure is kept",
        )
    }

    /// Appends interleaved samples (whole frames), starting a new file at the size limit.
    ///
    /// # Errors
    ///
    /// The disk budget refused (nothing of the refused part was written; the file stays open),
    /// or a write failed: the file was cut to its last whole frame on disk and closed (kept);
    /// the next write starts a new file. [`samples`](Self::samples) tells how much was written
    /// either way.
    pub fn write(&mut self, mut samples: &[i16]) -> Result<()> {
        while !samples.is_empty() {
            if self.open.is_none() {
                self.open_file()?;
            }
            let Some(open) = self.open.as_mut() else {
                return Err(Error::runtime(
                    "the take's file could not be opened",
                    "please report this bug",
                ));
            };
            let n = open.writer.room(samples.len());
            if n == 0 {
                self.close_open()?;
                continue;
            }
            if let Err(e) = open.temp.account(open.writer.bytes_after(n))
                && (self.metered || !matches!(e, TempError::Budget(_)))
            {
                return Err(self.refused(e));
            }
            if let Err(e) = open.writer.write(&samples[..n]) {
                return Err(self.fail(&e));
            }
            // The charge was the most it could be (a FLAC frame's worst case): now the real
            // size. Shrinking is never refused.
            let _ = open.temp.account(open.writer.bytes());
            open.samples += n as u64;
            self.samples += n as u64;
            self.unflushed += n as u64;
            samples = &samples[n..];
            if self.unflushed >= self.checkpoint_samples {
                self.checkpoint()?;
            }
        }
        Ok(())
    }

    /// Hands everything written so far to the OS: from now on the file plays up to here even
    /// if the process is killed (a WAV header rewritten for every sample; FLAC's whole frames,
    /// the block being filled excepted).
    ///
    /// # Errors
    ///
    /// A write error (the file is cut and closed as for [`write`](Self::write)).
    pub fn checkpoint(&mut self) -> Result<()> {
        self.unflushed = 0;
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        match open.writer.checkpoint() {
            Ok(()) => {
                if self.config.format != SampleFormat::Flac {
                    mark_unfinished(open.temp.as_file());
                }
                let bytes = open.writer.bytes();
                if bytes >= open.written_back + WRITEBACK_BYTES {
                    start_writeback(open.temp.as_file(), open.written_back);
                    open.written_back = bytes;
                }
                Ok(())
            }
            Err(e) => Err(self.fail(&e)),
        }
    }

    /// Finalizes the open file and moves it to the closed ones.
    fn close_open(&mut self) -> Result<()> {
        let Some(OpenFile {
            temp,
            writer,
            samples,
            ..
        }) = self.open.take()
        else {
            return Ok(());
        };
        match writer.finish() {
            Ok(()) => {
                if let Ok(meta) = temp.as_file().metadata() {
                    let _ = temp.account(meta.len());
                }
                self.closed.push(ClosedFile { temp });
                self.unflushed = 0;
                Ok(())
            }
            Err(e) => {
                let error = self.write_error(temp.path(), &e);
                self.cut(temp, samples);
                Err(error)
            }
        }
    }

    /// A write to the open file failed: cut it where the disk stopped and close it.
    fn fail(&mut self, e: &io::Error) -> Error {
        let Some(OpenFile {
            temp,
            writer,
            samples,
            ..
        }) = self.open.take()
        else {
            return self.write_error(Path::new("?"), e);
        };
        let error = self.write_error(temp.path(), e);
        // Dropping the writer flushes what it can (a WAV header too; errors ignored); the
        // repair then makes the file match what really reached the disk.
        drop(writer);
        self.cut(temp, samples);
        error
    }

    /// Repairs `temp` (its writer is gone, `held` samples in it as far as this take knows) to
    /// its last whole frame on disk and keeps it.
    fn cut(&mut self, temp: TempFile, held: u64) {
        self.write_errors += 1;
        self.unflushed = 0;
        let kept = match crate::wav::fix::recover_file(temp.path(), Default::default()) {
            Ok(report) => report.summary().frames * u64::from(self.config.channels.max(1)),
            Err(e) => {
                tracing::warn!("cannot repair {}: {e}", temp.path().display());
                0
            }
        };
        let kept = kept.min(held);
        self.samples = self.samples - held + kept;
        if kept == 0 {
            // Nothing usable: dropping the handle removes the file.
            return;
        }
        if let Ok(meta) = temp.as_file().metadata() {
            let _ = temp.account(meta.len());
        }
        self.closed.push(ClosedFile { temp });
    }

    /// Hands every sample in the files to `f`, oldest first, in 16-bit chunks (an `f32` file's
    /// samples are exact 16-bit values). Checkpoints the open file first; the files stay.
    ///
    /// # Errors
    ///
    /// A file cannot be read, or `f`'s error.
    pub fn read_all(&mut self, f: &mut dyn FnMut(&[i16]) -> Result<()>) -> Result<()> {
        self.checkpoint()?;
        for path in self.files() {
            let read_error = |reason: String| {
                Error::runtime(
                    format!(
                        "cannot read the take's temporary file {} ({reason})",
                        path.display(),
                    ),
                    "check the temporary directory (see W4L_TEMP_DIR)",
                )
            };
            match self.config.format {
                SampleFormat::Flac => reader::read_flac(&path, f, &read_error)?,
                format => reader::read_wav(&path, format, f, &read_error)?,
            }
        }
        // A FLAC block being filled is not in the file yet.
        match self.open.as_ref().map(|o| o.writer.pending()) {
            Some(pending) if !pending.is_empty() => f(pending),
            _ => Ok(()),
        }
    }

    /// Finishes every file and moves them to `output`, `output.001`, … ([`numbered_path`]).
    /// Returns the paths written, in order.
    ///
    /// # Errors
    ///
    /// Finishing or moving failed. Files already moved stay at their destination; the others
    /// are *not* lost: they go to the recovered-takes directory at once if a rename can put them
    /// there, else they stay in the temporary directory with their manifests, for the next
    /// start to finish ([`super::recover`]). The error says where the take is.
    pub fn persist(mut self, output: &Path) -> Result<Vec<PathBuf>> {
        let closing = self.close_open();
        let mut written = Vec::new();
        let mut files = std::mem::take(&mut self.closed).into_iter().enumerate();
        while let Some((index, file)) = files.next() {
            let to = numbered_path(output, index);
            let Err(e) = file.temp.persist(&to) else {
                written.push(to);
                continue;
            };
            let error = Error::from(e.error).context(format!(
                "saving the take's part {} to {}",
                index + 1,
                to.display()
            ));
            let Some(failed) = e.file else {
                // It reached `to`; only syncing the directory failed.
                return Err(error);
            };
            let rest = std::iter::once(failed).chain(files.map(|(_, f)| f.temp));
            return Err(self.keep_for_recovery(rest.collect(), error));
        }
        closing.map(|()| written)
    }

    /// After a failed save: lets go of `files` without removing them and moves them to the
    /// recovered-takes directory if it can; returns `error` saying where the take is.
    fn keep_for_recovery(&self, files: Vec<TempFile>, error: Error) -> Error {
        let parts: Vec<TakePart> = files
            .into_iter()
            .map(|temp| {
                let bytes = temp.size();
                let journal = temp.leave_for_recovery();
                let manifest = Manifest::read(&manifest_path(&journal));
                TakePart {
                    journal,
                    manifest,
                    bytes,
                }
            })
            .collect();
        let Some(first) = parts.first().map(|p| p.journal.clone()) else {
            return error;
        };
        let take = UnfinishedTake {
            pid: std::process::id(),
            owner_alive: true,
            parts,
        };
        let config = super::recover::RecoveryConfig::from_env().unwrap_or_default();
        let kept = match super::recover::finish(&take, &config, &self.manager, true) {
            Ok(Some(recovered)) => recovered.files.first().cloned(),
            _ => None,
        };
        take.forget_moved();
        let (what, fix) = match kept {
            Some(at) => (
                format!("the take is safe in {}", at.display()),
                "free space at the output or choose another, and move the take there",
            ),
            None => (
                format!("the take is kept in {}", first.display()),
                "free space and run w4l recover (any w4l start finishes it)",
            ),
        };
        Error::runtime(format!("{} ({what})", error.what()), fix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_paths() {
        let out = Path::new("/rec/take.wav");
        assert_eq!(numbered_path(out, 0), out);
        assert_eq!(numbered_path(out, 1), Path::new("/rec/take.001.wav"));
        assert_eq!(numbered_path(out, 12), Path::new("/rec/take.012.wav"));
        assert_eq!(numbered_path(out, 1234), Path::new("/rec/take.1234.wav"));
        assert_eq!(numbered_path(Path::new("take"), 2), Path::new("take.002"));
        assert_eq!(
            numbered_path(Path::new("a.b.wav"), 3),
            Path::new("a.b.003.wav")
        );
    }

    #[test]
    fn formats() {
        assert_eq!(SampleFormat::default(), SampleFormat::I16);
        assert_eq!(SampleFormat::I16.header_bytes(2), 44);
        assert_eq!(SampleFormat::I16.header_bytes(3), 68);
        assert_eq!(SampleFormat::F32.header_bytes(1), 68);
        assert_eq!(SampleFormat::F32.bytes_per_sample(), 4);
        assert_eq!(SampleFormat::F32.as_str(), "f32");
        // The limit leaves room for the largest header in a 32-bit RIFF size.
        assert!(WAV_DATA_LIMIT + 68 <= u64::from(u32::MAX));
    }
}
