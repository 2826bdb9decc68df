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

/// How many bytes of the file [`recover`] reads to find the `data` chunk.
pub const HEADER_READ_LIMIT: usize = 64 * 1024;

/// The `RIFF` size of a file whose writer has not finished it: w4l's take files carry it between
/// header checkpoints (their `data` size is the last checkpoint's, so the file plays as it lies),
/// and [`plan_repair`] then takes every byte after the declared samples as samples too.
pub const UNKNOWN_LENGTH: u32 = u32::MAX;

/// `WAVE_FORMAT_PCM`.
const FORMAT_PCM: u16 = 0x0001;
/// `WAVE_FORMAT_IEEE_FLOAT`.
const FORMAT_IEEE_FLOAT: u16 = 0x0003;
/// `WAVE_FORMAT_EXTENSIBLE`.
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// Bytes 2..16 of every `KSDATAFORMAT_SUBTYPE_*` GUID (the first two hold the format tag).
const KSDATAFORMAT_SUFFIX: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// Integer or floating-point samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// Integer PCM.
    Int,
    /// IEEE float.
    Float,
}

/// What the `fmt ` chunk says about the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Integer or float.
    pub kind: SampleKind,
    /// Whether the chunk was `WAVE_FORMAT_EXTENSIBLE`.
    pub extensible: bool,
    /// Interleaved channels per frame (at least 1).
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
    /// Bits each sample occupies in the file (its container: 8, 16, 24, 32 or 64).
    pub bits_per_sample: u16,
    /// Bytes per frame: `channels * bits_per_sample / 8` (never 0).
    pub block_align: u16,
}

/// The repair [`plan_repair`] worked out: what the file must become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repair {
    /// The sample format.
    pub format: WavFormat,
    /// Offset of the first sample byte (just after the `data` chunk header).
    pub data_offset: u64,
    /// Offset of the 4-byte `data` chunk size field.
    pub data_size_offset: u64,
    /// The `RIFF` size the file has now.
    pub old_riff_size: u32,
    /// The `data` size the file has now.
    pub old_data_size: u32,
    /// The file length before the repair.
    pub old_file_len: u64,
    /// The `RIFF` size to write at offset 4: `new_file_len - 8`.
    pub riff_size: u32,
    /// The `data` size to write at [`Repair::data_size_offset`]: a whole number of frames.
    pub data_size: u32,
    /// The length to cut the file to: `data_offset + data_size`.
    pub new_file_len: u64,
}

impl Repair {
    /// Whether the file differs from the plan at all (a consistent file needs nothing).
    pub fn needed(&self) -> bool {
        self.old_riff_size != self.riff_size
            || self.old_data_size != self.data_size
            || self.old_file_len != self.new_file_len
    }

    /// Whole frames of audio the repaired file holds.
    pub fn frames(&self) -> u64 {
        u64::from(self.data_size) / u64::from(self.format.block_align)
    }

    /// Bytes cut off the end of the file (a last, partial frame).
    pub fn dropped_bytes(&self) -> u64 {
        self.old_file_len.saturating_sub(self.new_file_len)
    }

    /// Bytes kept after the samples (chunks or stray bytes the header's sizes leave out, or a
    /// chunk it counts).
    pub fn kept_after(&self) -> u64 {
        self.new_file_len
            .saturating_sub(self.data_offset + u64::from(self.data_size))
    }
}

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

/// Reads a little-endian `u16` at `at`, if the bytes are there.
fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// Reads a little-endian `u32` at `at`, if the bytes are there.
fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses the body of a `fmt ` chunk.
fn parse_fmt(body: &[u8]) -> Result<WavFormat, RecoverError> {
    let bad = |reason| RecoverError::BadFormat { reason };
    if body.len() < 16 {
        return Err(bad("it is shorter than 16 bytes"));
    }
    let tag = le_u16(body, 0).ok_or(bad("it is shorter than 16 bytes"))?;
    let channels = le_u16(body, 2).ok_or(bad("it is shorter than 16 bytes"))?;
    let sample_rate = le_u32(body, 4).ok_or(bad("it is shorter than 16 bytes"))?;
    let block_align = le_u16(body, 12).ok_or(bad("it is shorter than 16 bytes"))?;
    let bits_per_sample = le_u16(body, 14).ok_or(bad("it is shorter than 16 bytes"))?;

    let (kind_tag, extensible) = if tag == FORMAT_EXTENSIBLE {
        if body.len() < 40 {
            return Err(bad(
                "a WAVE_FORMAT_EXTENSIBLE chunk is shorter than 40 bytes",
            ));
        }
        let cb_size = le_u16(body, 16).ok_or(bad("it is cut short"))?;
        if cb_size < 22 {
            return Err(bad("a WAVE_FORMAT_EXTENSIBLE chunk has cbSize below 22"));
        }
        let valid_bits = le_u16(body, 18).ok_or(bad("it is cut short"))?;
        if valid_bits > bits_per_sample {
            return Err(bad("valid bits per sample exceed the container size"));
        }
        let guid = body.get(24..40).ok_or(bad("it is cut short"))?;
        if guid[2..] != KSDATAFORMAT_SUFFIX {
            return Err(RecoverError::Unsupported {
                format_tag: tag,
                bits_per_sample,
            });
        }
        (u16::from_le_bytes([guid[0], guid[1]]), true)
    } else {
        (tag, false)
    };

    let kind = match (kind_tag, bits_per_sample) {
        (FORMAT_PCM, 8 | 16 | 24 | 32) => SampleKind::Int,
        (FORMAT_IEEE_FLOAT, 32 | 64) => SampleKind::Float,
        _ => {
            return Err(RecoverError::Unsupported {
                format_tag: kind_tag,
                bits_per_sample,
            });
        }
    };
    if channels == 0 {
        return Err(bad("it declares 0 channels"));
    }
    if sample_rate == 0 {
        return Err(bad("it declares a sample rate of 0"));
    }
    let expected_align = u32::from(channels) * u32::from(bits_per_sample / 8);
    if u32::from(block_align) != expected_align {
        return Err(bad(
            "its block align is not channels times bytes per sample",
        ));
    }
    Ok(WavFormat {
        kind,
        extensible,
        channels,
        sample_rate,
        bits_per_sample,
        block_align,
    })
}

/// Works out how to repair a WAV file from its first bytes and its length.
///
/// `header_bytes` are the first bytes of the file (at least up to the start of the samples;
/// more is fine); `file_len` is the file's full length. In order:
///
/// 1. A header whose `RIFF` size is the file's and whose `data` chunk (whole frames) is all in
///    the file is consistent: [`Repair::needed`] is false.
/// 2. A `data` chunk of whole frames, not empty, all in the file, under a `RIFF` size other
///    than [`UNKNOWN_LENGTH`]: its samples are trusted and kept as they are, and so is whatever
///    follows them (a `LIST` chunk the `RIFF` size leaves out, stray bytes); only the `RIFF`
///    size changes, to cover the whole file.
/// 3. Otherwise (a `data` size of 0, one larger than the file, or [`UNKNOWN_LENGTH`]: a writer
///    that was killed) the samples run to the end of the file, cut to whole frames, and both
///    sizes are rewritten.
///
/// [`plan_samples_to_end`] always does the last.
///
/// Never panics, whatever the input.
pub fn plan_repair(header_bytes: &[u8], file_len: u64) -> Result<Repair, RecoverError> {
    plan(header_bytes, file_len, false)
}

/// Like [`plan_repair`], but the samples always run to the end of the file, whatever the header
/// declares: for a file whose writer rewrote its header (a checkpoint) and was then killed
/// without marking it unfinished, whose bytes after the checkpoint are samples that a header
/// describing a finished file would hide. Bytes after the samples (a `LIST` chunk) become
/// samples too, so only for such a file (`w4l recover --samples-to-end`).
///
/// Never panics, whatever the input.
///
/// # Errors
///
/// As for [`plan_repair`].
pub fn plan_samples_to_end(header_bytes: &[u8], file_len: u64) -> Result<Repair, RecoverError> {
    plan(header_bytes, file_len, true)
}

/// [`plan_repair`], or with `to_end` [`plan_samples_to_end`].
fn plan(header_bytes: &[u8], file_len: u64, to_end: bool) -> Result<Repair, RecoverError> {
    if header_bytes.len() < 12 || file_len < 12 {
        return Err(RecoverError::Truncated {
            what: "RIFF header",
        });
    }
    if &header_bytes[0..4] != b"RIFF" || &header_bytes[8..12] != b"WAVE" {
        return Err(RecoverError::NotWav);
    }
    let old_riff_size = le_u32(header_bytes, 4).ok_or(RecoverError::NotWav)?;

    // Only what is really in the file counts as header.
    let available = usize::try_from(file_len)
        .unwrap_or(usize::MAX)
        .min(header_bytes.len());
    let bytes = &header_bytes[..available];

    let mut format: Option<WavFormat> = None;
    let mut pos: usize = 12;
    loop {
        let Some(size) = le_u32(bytes, pos.saturating_add(4)) else {
            // No room for another chunk header before the bytes end.
            return Err(if bytes.len() as u64 >= file_len {
                match format {
                    Some(_) => RecoverError::Truncated {
                        what: "data chunk header",
                    },
                    None => RecoverError::Truncated { what: "fmt chunk" },
                }
            } else {
                RecoverError::NoData
            });
        };
        let id = &bytes[pos..pos + 4];
        let body_start = pos + 8;
        if id == b"data" {
            let Some(format) = format else {
                return Err(RecoverError::DataBeforeFmt);
            };
            let found = DataChunk {
                header_at: pos,
                old_riff_size,
                old_data_size: size,
            };
            return plan_data(format, found, file_len, to_end);
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if id == b"fmt " {
            let Some(body) = bytes.get(body_start..body_start.saturating_add(size)) else {
                return Err(RecoverError::Truncated { what: "fmt chunk" });
            };
            format = Some(parse_fmt(body)?);
        }
        // Chunks are padded to an even length.
        pos = body_start.saturating_add(size).saturating_add(size & 1);
    }
}

/// Where the `data` chunk header is, and the sizes the header holds now.
struct DataChunk {
    header_at: usize,
    old_riff_size: u32,
    old_data_size: u32,
}

/// The plan once the `data` chunk header has been found (see [`plan_repair`]; `to_end`: the
/// samples run to the end of the file, whatever the header says).
fn plan_data(
    format: WavFormat,
    found: DataChunk,
    file_len: u64,
    to_end: bool,
) -> Result<Repair, RecoverError> {
    let DataChunk {
        header_at,
        old_riff_size,
        old_data_size,
    } = found;
    let data_offset = header_at as u64 + 8;
    let align = u64::from(format.block_align);
    let unchanged = Repair {
        format,
        data_offset,
        data_size_offset: header_at as u64 + 4,
        old_riff_size,
        old_data_size,
        old_file_len: file_len,
        riff_size: old_riff_size,
        data_size: old_data_size,
        new_file_len: file_len,
    };
    let old_data = u64::from(old_data_size);
    let declared_present = !to_end && data_offset + old_data <= file_len && old_data % align == 0;
    // A header that describes the file exactly is trusted as it is, even if chunks follow
    // the samples.
    if u64::from(old_riff_size) + 8 == file_len && declared_present {
        return Ok(unchanged);
    }
    // Every sample the data chunk declares is there: trusted too. What follows (a chunk the
    // RIFF size leaves out, stray bytes) is kept as it is, and the RIFF size made to cover it.
    // Not for a RIFF size of UNKNOWN_LENGTH: a writer that is still growing the file says so
    // (w4l's header checkpoints), and what follows its last checkpoint is samples.
    if old_riff_size != UNKNOWN_LENGTH
        && old_data > 0
        && declared_present
        && let Ok(riff_size) = u32::try_from(file_len - 8)
    {
        return Ok(Repair {
            riff_size,
            ..unchanged
        });
    }
    // Otherwise the samples run to the end of the file, as a killed writer leaves them.
    let present = file_len.saturating_sub(data_offset);
    let whole = present - present % align;
    let new_file_len = data_offset + whole;
    let too_large = RecoverError::TooLarge {
        data_bytes: present,
    };
    let riff_size = u32::try_from(new_file_len - 8).map_err(|_| too_large)?;
    let data_size = u32::try_from(whole).map_err(|_| RecoverError::TooLarge {
        data_bytes: present,
    })?;
    Ok(Repair {
        riff_size,
        data_size,
        new_file_len,
        ..unchanged
    })
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
    let io_err = |op: &'static str| {
        move |source: io::Error| RecoverError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
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
mod tests {
    use super::*;

    fn pcm16_header(channels: u16) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&FORMAT_PCM.to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&16_000u32.to_le_bytes());
        h.extend_from_slice(&(32_000u32 * u32::from(channels)).to_le_bytes());
        h.extend_from_slice(&(2 * channels).to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data\0\0\0\0");
        h
    }

    #[test]
    fn stale_sizes_are_planned_to_whole_frames() {
        let h = pcm16_header(2);
        let plan = plan_repair(&h, 44 + 4 * 10 + 3).unwrap();
        assert_eq!(plan.data_offset, 44);
        assert_eq!(plan.data_size_offset, 40);
        assert_eq!(plan.data_size, 40);
        assert_eq!(plan.riff_size, 36 + 40);
        assert_eq!(plan.new_file_len, 84);
        assert_eq!(plan.dropped_bytes(), 3);
        assert!(plan.needed());
    }

    #[test]
    fn consistent_file_needs_nothing() {
        let mut h = pcm16_header(1);
        h[4..8].copy_from_slice(&(36u32 + 8).to_le_bytes());
        h[40..44].copy_from_slice(&8u32.to_le_bytes());
        let plan = plan_repair(&h, 52).unwrap();
        assert!(!plan.needed());
        assert_eq!(plan.frames(), 4);
    }

    #[test]
    fn consistent_file_with_a_chunk_after_the_data_is_left_alone() {
        let mut h = pcm16_header(1);
        h[40..44].copy_from_slice(&8u32.to_le_bytes());
        let file_len = 44 + 8 + 8 + 4; // samples, then a LIST chunk of 4 bytes
        h[4..8].copy_from_slice(&(file_len as u32 - 8).to_le_bytes());
        let plan = plan_repair(&h, file_len).unwrap();
        assert!(!plan.needed());
        assert_eq!(plan.data_size, 8);
    }

    #[test]
    fn declared_samples_all_there_are_kept_and_what_follows_too() {
        // 4 frames declared and present, then bytes the RIFF size leaves out: a LIST chunk
        // (12 bytes), or 9 stray bytes.
        for trailing in [12u64, 9, 1, 2, 3] {
            let mut h = pcm16_header(1);
            h[4..8].copy_from_slice(&(36u32 + 8).to_le_bytes());
            h[40..44].copy_from_slice(&8u32.to_le_bytes());
            let file_len = 52 + trailing;
            let plan = plan_repair(&h, file_len).unwrap();
            assert!(plan.needed(), "{trailing}");
            assert_eq!(plan.data_size, 8, "{trailing}");
            assert_eq!(plan.new_file_len, file_len, "{trailing}");
            assert_eq!(u64::from(plan.riff_size), file_len - 8);
            assert_eq!((plan.dropped_bytes(), plan.kept_after()), (0, trailing));
            // Asked to, the trailing bytes become samples (whole frames of them).
            let to_end = plan_samples_to_end(&h, file_len).unwrap();
            assert_eq!(u64::from(to_end.data_size), 8 + trailing / 2 * 2);
        }
    }

    #[test]
    fn an_unfinished_writers_samples_run_to_the_end() {
        // A checkpoint at 4 frames, then 3 more frames and half of one.
        let mut h = pcm16_header(1);
        h[4..8].copy_from_slice(&UNKNOWN_LENGTH.to_le_bytes());
        h[40..44].copy_from_slice(&8u32.to_le_bytes());
        let plan = plan_repair(&h, 52 + 7).unwrap();
        assert_eq!(plan.data_size, 14);
        assert_eq!(plan.new_file_len, 58);
        assert_eq!(plan.riff_size, 50);
        // Declared beyond the end: the same.
        let mut h = pcm16_header(1);
        h[40..44].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(plan_repair(&h, 52).unwrap().data_size, 8);
    }

    #[test]
    fn empty_data_is_fine() {
        let plan = plan_repair(&pcm16_header(1), 44).unwrap();
        assert_eq!(plan.data_size, 0);
        assert_eq!(plan.riff_size, 36);
    }

    #[test]
    fn header_cut_short_is_an_error() {
        let h = pcm16_header(1);
        for len in 0..44 {
            let err = plan_repair(&h[..len], len as u64).unwrap_err();
            assert!(
                matches!(err, RecoverError::Truncated { .. } | RecoverError::NotWav),
                "{len}: {err}"
            );
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(matches!(
            plan_repair(b"RIFX\0\0\0\0WAVEfmt ", 100),
            Err(RecoverError::NotWav)
        ));
        let mut h = pcm16_header(1);
        h[22..24].copy_from_slice(&0u16.to_le_bytes());
        assert!(matches!(
            plan_repair(&h, 100),
            Err(RecoverError::BadFormat { .. })
        ));
        let mut h = pcm16_header(1);
        h[20..22].copy_from_slice(&2u16.to_le_bytes()); // ADPCM
        assert!(matches!(
            plan_repair(&h, 100),
            Err(RecoverError::Unsupported { .. })
        ));
    }

    #[test]
    fn huge_chunk_sizes_do_not_panic() {
        let mut h = pcm16_header(1);
        h[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(plan_repair(&h, u64::MAX).is_err());
        let mut h = b"RIFF\0\0\0\0WAVEjunk".to_vec();
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(plan_repair(&h, u64::MAX).is_err());
        assert!(plan_repair(&h, 20).is_err());
    }

    #[test]
    fn too_large_data_is_an_error() {
        let h = pcm16_header(1);
        assert!(matches!(
            plan_repair(&h, 1 << 33),
            Err(RecoverError::TooLarge { .. })
        ));
        // The largest representable file is fine.
        let max = u64::from(u32::MAX) + 8;
        let plan = plan_repair(&h, max - 1).unwrap();
        assert!(u64::from(plan.riff_size) + 8 <= max);
    }

    #[test]
    fn junk_chunks_before_data_are_skipped() {
        let mut h = b"RIFF\0\0\0\0WAVE".to_vec();
        h.extend_from_slice(b"LIST");
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(b"abc\0"); // odd size + pad byte
        h.extend_from_slice(&pcm16_header(1)[12..]);
        let plan = plan_repair(&h, h.len() as u64 + 10).unwrap();
        assert_eq!(plan.data_offset, h.len() as u64);
        assert_eq!(plan.data_size, 10);
    }

    /// A small deterministic fuzz: every prefix and many byte flips of valid headers.
    #[test]
    fn mutated_headers_never_panic() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let base = pcm16_header(2);
        for _ in 0..20_000 {
            let mut h = base.clone();
            let flips = next() % 4 + 1;
            for _ in 0..flips {
                let i = (next() as usize) % h.len();
                h[i] = next() as u8;
            }
            let cut = (next() as usize) % (h.len() + 1);
            let len = next() % 200;
            let _ = plan_repair(&h[..cut], len);
            let _ = plan_repair(&h, len);
        }
    }
}
