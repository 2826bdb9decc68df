//! Repair of a WAV file whose header a crash left stale.
//!
//! A WAV writer (hound included) writes the RIFF header with the sizes set to 0, appends
//! samples, and fills the sizes in when it finishes or flushes. A process killed in between
//! leaves a file whose `RIFF` size and `data` chunk size do not match its length, and often a
//! last frame cut in the middle. [`recover_with`] fixes such a file in place: it cuts the file
//! to a whole number of frames and rewrites both sizes, so every sample that reached the disk
//! can be read again.
//!
//! Audio it should leave alone, it leaves alone: when every sample the `data` chunk declares
//! is in the file, those samples and whatever follows them (a `LIST` chunk, stray bytes) stay
//! as they are and only the `RIFF` size is fixed. A writer that has not finished says so with a
//! `RIFF` size of [`UNKNOWN_LENGTH`] (w4l's take files between header checkpoints do), and then
//! the bytes after its last checkpoint are samples. `w4l recover` keeps the original as
//! `FILE.wav.w4l-bak` ([`backup_path`]) unless told not to, and `--dry-run` only shows what
//! would change. For another writer killed after it rewrote its header, `--samples-to-end`
//! ([`plan_samples_to_end`]) takes the bytes after its declared samples as samples.
//!
//! The parsing is a pure function of the first bytes of the file and its length,
//! [`plan_repair`], which never panics on any input (it is fuzzed); [`recover_with`] reads the
//! header, asks for a plan and applies it.
//!
//! Supported formats: integer PCM (8, 16, 24 or 32 bits) and IEEE float (32 or 64 bits),
//! written either with a plain `fmt ` chunk (`WAVE_FORMAT_PCM`, `WAVE_FORMAT_IEEE_FLOAT`) or as
//! `WAVE_FORMAT_EXTENSIBLE`, as hound writes anything wider than 16 bits.
//!
//! ```
//! use w4l::wav::repair::plan_repair;
//!
//! // A 16-bit mono header as a killed writer leaves it: both sizes still 0.
//! let mut header = Vec::new();
//! header.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
//! header.extend_from_slice(&16u32.to_le_bytes());
//! header.extend_from_slice(&1u16.to_le_bytes()); // WAVE_FORMAT_PCM
//! header.extend_from_slice(&1u16.to_le_bytes()); // mono
//! header.extend_from_slice(&16_000u32.to_le_bytes());
//! header.extend_from_slice(&32_000u32.to_le_bytes());
//! header.extend_from_slice(&2u16.to_le_bytes()); // block align
//! header.extend_from_slice(&16u16.to_le_bytes());
//! header.extend_from_slice(b"data\0\0\0\0");
//!
//! // 1001 bytes of samples reached the disk: 500 frames and half of one.
//! let plan = plan_repair(&header, 44 + 1001).unwrap();
//! assert!(plan.needed());
//! assert_eq!(plan.frames(), 500);
//! assert_eq!(plan.new_file_len, 44 + 1000);
//! assert_eq!(plan.riff_size, 36 + 1000);
//! ```

use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

mod plan;

pub use plan::{
    HEADER_READ_LIMIT, Repair, SampleKind, UNKNOWN_LENGTH, WavFormat, plan_repair,
    plan_samples_to_end,
};

/// Why a file could not be recovered. Every message is one line: what was wrong and what to
/// do.
#[derive(Debug)]
pub enum RecoverError {
    /// The bytes do not start with `RIFF....WAVE`.
    NotWav,
    /// The file ends (or the given header bytes end) before `what` is complete.
    Truncated {
        /// The part of the header that is cut short.
        what: &'static str,
    },
    /// A `data` chunk came before any `fmt ` chunk.
    DataBeforeFmt,
    /// No `data` chunk in the first [`HEADER_READ_LIMIT`] bytes.
    NoData,
    /// The `fmt ` chunk is inconsistent.
    BadFormat {
        /// What is inconsistent.
        reason: &'static str,
    },
    /// A well-formed format w4l does not repair.
    Unsupported {
        /// The format tag (for `WAVE_FORMAT_EXTENSIBLE`, the sub-format's tag).
        format_tag: u16,
        /// The container bits per sample.
        bits_per_sample: u16,
    },
    /// The audio is longer than the 4 GiB a RIFF header can describe.
    TooLarge {
        /// Bytes of audio in the file.
        data_bytes: u64,
    },
    /// The backup [`recover_with`] would write exists already (an earlier repair's).
    BackupExists {
        /// The backup's path.
        path: PathBuf,
    },
    /// The path is not a regular file (a directory, a device, a symbolic link...).
    NotRegularFile {
        /// The path given.
        path: PathBuf,
    },
    /// A FLAC file whose header is damaged, or whose frames w4l does not decode (LPC).
    Flac(w4l_core::flac::FlacError),
    /// Reading or writing the file failed.
    Io {
        /// What was being done (e.g. "open", "truncate").
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl RecoverError {
    /// An I/O error while doing `op` ("read", "truncate") to the file at `path`, for `map_err`.
    pub(crate) fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> Self + 'p {
        move |source| Self::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for RecoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotWav => f.write_str(
                "not a WAV or FLAC file: it starts with neither a RIFF/WAVE header nor fLaC; pass the file a recording was written to",
            ),
            Self::Flac(w4l_core::flac::FlacError::Unsupported) => f.write_str(
                "the FLAC file uses features w4l does not decode (LPC subframes, as flac -5 writes), so its frames cannot be checked; test it with flac -t instead",
            ),
            Self::Flac(e) => write!(
                f,
                "the FLAC file's header is damaged ({}); it holds no audio w4l can recover",
                e.to_string().split(';').next().unwrap_or_default()
            ),
            Self::Truncated { what } => write!(
                f,
                "the WAV header is cut short in the {what}; the file holds no recoverable audio and can be deleted"
            ),
            Self::DataBeforeFmt => f.write_str(
                "malformed WAV file: its data chunk comes before its fmt chunk; the sample format is unknown, so it cannot be repaired",
            ),
            Self::NoData => write!(
                f,
                "malformed WAV file: no data chunk in its first {HEADER_READ_LIMIT} bytes; it holds no recoverable audio"
            ),
            Self::BadFormat { reason } => write!(
                f,
                "malformed WAV fmt chunk: {reason}; the sample format is unknown, so the file cannot be repaired"
            ),
            Self::Unsupported {
                format_tag,
                bits_per_sample,
            } => write!(
                f,
                "unsupported WAV sample format (tag {format_tag:#06x}, {bits_per_sample} bits); only integer PCM (8/16/24/32-bit) and IEEE float (32/64-bit) files can be repaired"
            ),
            Self::TooLarge { data_bytes } => write!(
                f,
                "the file holds {data_bytes} bytes of audio, more than a WAV header can describe (4 GiB); split it with a tool that reads raw PCM"
            ),
            Self::BackupExists { path } => write!(
                f,
                "the backup {} exists already (an earlier repair's); move it away, or pass --no-backup",
                path.display()
            ),
            Self::NotRegularFile { path } => write!(
                f,
                "{} is not a regular file (a directory, device or symbolic link); pass the .wav file itself",
                path.display()
            ),
            Self::Io { op, path, source } => write!(
                f,
                "could not {op} {}: {source}; check that the file exists and is writable",
                path.display()
            ),
        }
    }
}

impl std::error::Error for RecoverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<RecoverError> for crate::error::Error {
    fn from(e: RecoverError) -> Self {
        let message = e.to_string();
        let (what, fix) = crate::tempfiles::what_and_fix(&message);
        match e {
            // The machine failed, not the request.
            RecoverError::Io { .. } => crate::error::Error::runtime(what, fix),
            // The file given cannot be a recording w4l can repair.
            _ => crate::error::Error::usage(what, fix),
        }
    }
}

/// What [`recover_with`] did to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoverReport {
    /// The file.
    pub path: PathBuf,
    /// The plan that was applied (or found unnecessary, or only shown).
    pub repair: Repair,
    /// Whether the file was changed; false if it was already consistent or for a dry run.
    pub repaired: bool,
    /// Whether this was a dry run (nothing changed, [`Repair::needed`] tells what would).
    pub dry_run: bool,
    /// Where the original was copied before it was changed, if it was.
    pub backup: Option<PathBuf>,
}

impl fmt::Display for RecoverReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.repair;
        let seconds = r.frames() as f64 / f64::from(r.format.sample_rate);
        let path = self.path.display();
        if !r.needed() {
            return write!(
                f,
                "{path} is already a consistent WAV file: {} frames ({seconds:.1} s), nothing changed",
                r.frames()
            );
        }
        let verb = if self.repaired {
            "repaired"
        } else {
            "would repair"
        };
        write!(
            f,
            "{verb} {path}: {} frames ({seconds:.1} s) of audio",
            r.frames()
        )?;
        if r.data_size == r.old_data_size {
            write!(
                f,
                " as its header declares them; only the RIFF size changes ({} bytes after the audio kept)",
                r.kept_after()
            )?;
        } else {
            write!(
                f,
                ", {} trailing bytes of a partial frame dropped",
                r.dropped_bytes()
            )?;
        }
        match &self.backup {
            Some(b) => write!(f, "; the original is in {}", b.display()),
            None => Ok(()),
        }
    }
}

/// How [`recover_with`] goes about a repair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoverOptions {
    /// Copy the file to [`backup_path`] before changing it; an existing backup is never
    /// overwritten (the repair is refused then).
    pub backup: bool,
    /// Only work out the repair and report it; change nothing.
    pub dry_run: bool,
    /// Plan with [`plan_samples_to_end`] instead of [`plan_repair`].
    pub samples_to_end: bool,
}

/// Repairs the WAV file at `path` in place, without a backup: what w4l does to its own take
/// files after a write error. See [`recover_with`].
///
/// # Errors
///
/// As for [`recover_with`].
pub fn recover(path: &Path) -> Result<RecoverReport, RecoverError> {
    recover_with(path, RecoverOptions::default())
}

/// Repairs the WAV file at `path` in place as [`plan_repair`] plans it: cuts it to whole
/// frames (a crashed writer's) or only fixes its `RIFF` size (a file whose declared samples are
/// all there), then syncs it to disk. A file that is already consistent is left alone. With
/// `options.backup` the original is first copied to [`backup_path`] (and synced), so every
/// repair can be undone.
///
/// Does not follow a symbolic link at `path`. Running it again after an interruption is safe.
///
/// # Errors
///
/// The file is not a WAV file w4l can repair, it cannot be read or written, or the backup
/// exists already or cannot be written (the file is unchanged then).
pub fn recover_with(path: &Path, options: RecoverOptions) -> Result<RecoverReport, RecoverError> {
    let io_err = |op| RecoverError::io(op, path);
    let report = |repair: Repair, backup: Option<PathBuf>| RecoverReport {
        path: path.to_path_buf(),
        repaired: repair.needed() && !options.dry_run,
        repair,
        dry_run: options.dry_run,
        backup,
    };
    // Read-only first: a file that is not a WAV, or already consistent, is never opened for
    // writing.
    let (mut file, meta) = open_regular(path, false)?;
    let header = read_header(&mut file).map_err(io_err("read"))?;
    let planner = if options.samples_to_end {
        plan_samples_to_end
    } else {
        plan_repair
    };
    let repair = planner(&header, meta.len())?;
    if !repair.needed() || options.dry_run {
        return Ok(report(repair, None));
    }
    // The same file again for writing (the path could have been replaced meanwhile), planned
    // again from what it holds now.
    let (mut file, write_meta) = open_regular(path, true)?;
    if (write_meta.dev(), write_meta.ino()) != (meta.dev(), meta.ino()) {
        return Err(io_err("repair")(io::Error::other(
            "the file was replaced while it was being inspected",
        )));
    }
    let header = read_header(&mut file).map_err(io_err("read"))?;
    let repair = planner(&header, write_meta.len())?;
    if !repair.needed() {
        return Ok(report(repair, None));
    }
    let backup = if options.backup {
        Some(back_up(path, &mut file, write_meta.mode())?)
    } else {
        None
    };
    // Cut first, then write the sizes that describe the cut file: an interruption between the
    // two leaves a file the next run repairs the same way.
    file.set_len(repair.new_file_len)
        .map_err(io_err("truncate"))?;
    write_at(&mut file, 4, repair.riff_size).map_err(io_err("write the header of"))?;
    write_at(&mut file, repair.data_size_offset, repair.data_size)
        .map_err(io_err("write the header of"))?;
    file.sync_all().map_err(io_err("sync"))?;
    Ok(report(repair, backup))
}

/// Where [`recover_with`] keeps the original of `path`: `FILE.wav.w4l-bak` beside it.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(".w4l-bak");
    path.with_file_name(name)
}

/// Copies `file` (the one at `path`, opened) to [`backup_path`], a new file with the same
/// permission bits (`mode`), synced before the original is touched. A partial copy is removed.
pub(super) fn back_up(path: &Path, file: &mut File, mode: u32) -> Result<PathBuf, RecoverError> {
    let to = backup_path(path);
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&to)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => RecoverError::BackupExists { path: to.clone() },
            _ => RecoverError::Io {
                op: "create the backup",
                path: to.clone(),
                source,
            },
        })?;
    let copied = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| io::copy(file, &mut out))
        .and_then(|_| out.sync_all());
    if let Err(source) = copied {
        drop(out);
        let _ = std::fs::remove_file(&to);
        return Err(RecoverError::Io {
            op: "write the backup",
            path: to,
            source,
        });
    }
    Ok(to)
}

/// Opens `path` without following a symbolic link; it must be a regular file.
pub(super) fn open_regular(
    path: &Path,
    write: bool,
) -> Result<(File, std::fs::Metadata), RecoverError> {
    let not_regular = || RecoverError::NotRegularFile {
        path: path.to_path_buf(),
    };
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => not_regular(),
            Some(libc::EISDIR) => not_regular(),
            _ => RecoverError::Io {
                op: "open",
                path: path.to_path_buf(),
                source,
            },
        })?;
    let meta = file.metadata().map_err(|source| RecoverError::Io {
        op: "inspect",
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    Ok((file, meta))
}

/// Reads up to [`HEADER_READ_LIMIT`] bytes from the start of `file`.
fn read_header(file: &mut File) -> io::Result<Vec<u8>> {
    let mut header = Vec::with_capacity(4096);
    file.seek(SeekFrom::Start(0))?;
    file.take(HEADER_READ_LIMIT as u64)
        .read_to_end(&mut header)?;
    Ok(header)
}

/// Writes `value` little-endian at `offset`.
fn write_at(file: &mut File, offset: u64, value: u32) -> io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(&value.to_le_bytes())
}

#[cfg(test)]
mod tests;
