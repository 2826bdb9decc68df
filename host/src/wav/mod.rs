//! Audio files: the output writer (WAV, 16-bit or float, or FLAC, written to a temporary file
//! beside the target and renamed into place only when complete), the checked reader behind
//! `--input`, FLAC streams ([`flac`]) and the repair of files a crash left ([`fix`]).
//!
//! Nothing here leaves a partial file behind: the output is a [`tempfile::TempPath`] until
//! [`AudioOutput::finish`] renames it, and a dropped, unfinished output deletes its temporary
//! file.

pub mod fix;
pub mod flac;
pub mod flac_repair;
mod format;
pub mod repair;

pub(crate) use format::write_samples;
pub use format::{SampleFormat, UnknownFormat, WAV_DATA_LIMIT, numbered_path};

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Seek};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The directory a file path lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Checks, before anything is recorded, that `path` can be written: it is a new name or a
/// regular file (which the take replaces), its directory exists, is a directory and accepts new
/// files. Leaves nothing behind.
///
/// Anything else at `path` is refused, never replaced: a directory, a FIFO, a device, a socket
/// (the finished take is renamed over `path`, which would replace the node itself, even
/// `/dev/null` when run as root), and any symbolic link, dangling or not (the rename would
/// replace the link, not write through it; pass the link's target instead). `-` is refused
/// too: w4l does not stream a WAV file to standard output or a pipe.
pub fn check_output_path(path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(Error::usage(
            "the output path is empty",
            "pass a file name with -o, e.g. -o take.wav",
        ));
    }
    if path.as_os_str() == "-" {
        return Err(Error::usage(
            "-o - would write to standard output, but w4l writes WAV or FLAC files only",
            "pass a file name with -o, e.g. -o take.wav",
        ));
    }
    check_replaceable(path)?;
    let dir = parent_dir(path);
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::usage(
                format!("output directory {} is not a directory", dir.display()),
                "pass -o with a path inside an existing directory",
            ));
        }
        Err(e) => {
            return Err(Error::usage(
                format!(
                    "output directory {} does not exist ({})",
                    dir.display(),
                    e.kind()
                ),
                "create it first or pass -o with a path inside an existing directory",
            ));
        }
    }
    // The only reliable test of writability (ACLs, read-only mounts, root) is to try.
    tempfile::Builder::new()
        .prefix(".w4l-check-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| {
            Error::usage(
                format!(
                    "cannot create files in {} ({})",
                    dir.display(),
                    io_reason(&e)
                ),
                "pass -o with a path in a writable directory",
            )
        })
}

/// What kind of node `meta` describes, for messages: `None` for a regular file.
fn special_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_symlink() {
        Some("a symbolic link")
    } else if t.is_fifo() {
        Some("a pipe or FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Refuses an output path that names anything but a regular file or nothing (see
/// [`check_output_path`]). Checked once, before recording: a node put at the path while
/// recording would still be replaced by the rename.
fn check_replaceable(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(meta) => match special_kind(&meta) {
            None => Ok(()),
            Some(kind) => Err(Error::usage(
                format!(
                    "output {} is {kind}; w4l only creates or replaces regular files",
                    path.display()
                ),
                if meta.file_type().is_symlink() {
                    "pass -o with the file the link points to, or a new file name"
                } else {
                    "pass -o with a new file name or an existing .wav file"
                },
            )),
        },
    }
}

/// Refuses an output that is the `--input` file itself, under any name (another path, a hard
/// link, a symbolic link to it): the same device and inode. Replaying a file into itself would
/// destroy it.
pub fn check_not_input(output: &Path, input: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (Ok(out), Ok(inp)) = (std::fs::metadata(output), std::fs::metadata(input)) else {
        return Ok(());
    };
    if (out.dev(), out.ino()) == (inp.dev(), inp.ino()) {
        return Err(Error::usage(
            format!(
                "output {} is the --input file {} itself",
                output.display(),
                input.display()
            ),
            "pass -o with another file name",
        ));
    }
    Ok(())
}

/// A short reason for an I/O error, without the OS error number noise.
pub(crate) fn io_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// The writer behind an [`AudioOutput`].
enum OutputWriter {
    Wav(hound::WavWriter<BufWriter<File>>),
    Flac(flac::FlacWriter<BufWriter<File>>),
}

/// A WAV (16-bit PCM, or 32-bit float) or FLAC file being written. It appears at its path only
/// after [`finish`](Self::finish) (or, after a write error,
/// [`finish_partial`](Self::finish_partial)).
pub struct AudioOutput {
    writer: OutputWriter,
    temp: tempfile::TempPath,
    /// `temp` on the list a signal's or panic's cleanup removes, until the output is finished.
    _outside: crate::tempfiles::OutsideFile,
    path: PathBuf,
    format: SampleFormat,
    scratch: Vec<f32>,
    /// Samples written (all channels).
    samples: u64,
}

impl std::fmt::Debug for AudioOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioOutput")
            .field("path", &self.path)
            .field("temp", &self.temp)
            .finish_non_exhaustive()
    }
}

impl AudioOutput {
    /// Starts a file for `path` (`rate` Hz, `channels` channels, `format`), as a hidden
    /// temporary file in the same directory.
    ///
    /// # Errors
    ///
    /// The file cannot be created or its header written; FLAC cannot hold the format (more
    /// than 8 channels).
    pub fn create_as(path: &Path, rate: u32, channels: u16, format: SampleFormat) -> Result<Self> {
        let dir = parent_dir(path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        let cannot_create = |e: std::io::Error| {
            Error::runtime(
                format!("cannot create {} ({})", path.display(), io_reason(&e)),
                "pass -o with a path in a writable directory",
            )
        };
        // Recorded before it exists: a kill leaves nothing the next start does not remove.
        let hidden = (format!(".{name}."), ".w4l-tmp");
        let (file, temp, _outside) =
            crate::tempfiles::OutsideFile::create(dir, (&hidden.0, hidden.1), 0o600)
                .map_err(cannot_create)?;
        let temp = tempfile::TempPath::try_from_path(temp).map_err(cannot_create)?;
        let writer = if format == SampleFormat::Flac {
            let flac_format = flac::take_format(rate, channels).map_err(|e| {
                Error::usage(
                    format!("cannot write {} as FLAC ({e})", path.display()),
                    "record at most 8 channels, or choose a WAV format",
                )
            })?;
            let writer = flac::FlacWriter::new(BufWriter::new(file), flac_format);
            OutputWriter::Flac(writer.map_err(|e| write_error(path, &hound::Error::IoError(e)))?)
        } else {
            let spec = format.spec(rate, channels);
            let writer = hound::WavWriter::new(BufWriter::new(file), spec);
            OutputWriter::Wav(writer.map_err(|e| write_error(path, &e))?)
        };
        Ok(Self {
            writer,
            temp,
            _outside,
            path: path.to_owned(),
            format,
            scratch: Vec::new(),
            samples: 0,
        })
    }

    /// Appends interleaved samples (converted to the output format).
    ///
    /// # Errors
    ///
    /// Writing failed.
    pub fn write(&mut self, samples: &[i16]) -> Result<()> {
        match &mut self.writer {
            OutputWriter::Wav(w) => write_samples(w, self.format, samples, &mut self.scratch),
            OutputWriter::Flac(w) => w.write(samples).map_err(hound::Error::IoError),
        }
        .map_err(|e| write_error(&self.path, &e))?;
        self.samples += samples.len() as u64;
        Ok(())
    }

    /// After a failed [`write`](Self::write): cuts the file to the last whole frame that
    /// reached the disk, makes its header say so, and moves it into place, so the output holds
    /// the take up to the failure. Returns the path.
    ///
    /// # Errors
    ///
    /// The file could not be repaired or moved (it is removed then).
    pub fn finish_partial(self) -> Result<PathBuf> {
        let Self {
            writer, temp, path, ..
        } = self;
        // Dropping the writer flushes what it can (a WAV header too; errors ignored); the
        // repair then makes the header match what is on disk.
        drop(writer);
        fix::recover_file(&temp, repair::RecoverOptions::default()).map_err(|e| {
            Error::runtime(
                format!(
                    "cannot finalize {} after a write error ({e})",
                    path.display()
                ),
                "free disk space and record again",
            )
        })?;
        // An output, not a temporary file: the permissions any new file of the user gets.
        let _ = std::fs::set_permissions(&temp, crate::tempfiles::ordinary_permissions());
        temp.persist(&path).map_err(|e| {
            Error::runtime(
                format!(
                    "cannot move the take to {} ({})",
                    path.display(),
                    io_reason(&e.error)
                ),
                "check that the path is writable and not a directory",
            )
        })?;
        Ok(path)
    }

    /// Samples written so far (all channels).
    pub fn len(&self) -> u64 {
        self.samples
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Completes the header, flushes to disk and renames the file into place.
    pub fn finish(self) -> Result<PathBuf> {
        let Self {
            writer, temp, path, ..
        } = self;
        match writer {
            OutputWriter::Wav(w) => w.finalize(),
            OutputWriter::Flac(w) => w.finish().map(drop).map_err(hound::Error::IoError),
        }
        .map_err(|e| write_error(&path, &e))?;
        // finalize() flushed the BufWriter; make the data durable before the rename.
        File::open(&temp)
            .and_then(|f| {
                // An output, not a temporary file: the permissions any new file gets.
                f.set_permissions(crate::tempfiles::ordinary_permissions())?;
                f.sync_all()
            })
            .map_err(|e| {
                Error::runtime(
                    format!("cannot write {} ({})", path.display(), io_reason(&e)),
                    "check the disk",
                )
            })?;
        temp.persist(&path).map_err(|e| {
            Error::runtime(
                format!(
                    "cannot move the finished take to {} ({})",
                    path.display(),
                    io_reason(&e.error)
                ),
                "check that the path is writable and not a directory",
            )
        })?;
        Ok(path)
    }
}

fn too_long(path: &Path) -> Error {
    Error::runtime(
        format!("the take is too long for a WAV file ({})", path.display()),
        "record shorter takes (a WAV file holds at most 4 GiB)",
    )
}

fn write_error(path: &Path, e: &hound::Error) -> Error {
    match e {
        hound::Error::IoError(io) => Error::runtime(
            format!("cannot write {} ({})", path.display(), io_reason(io)),
            "check free disk space and permissions",
        ),
        hound::Error::TooWide => too_long(path),
        other => Error::runtime(
            format!("cannot write {} ({other})", path.display()),
            "check free disk space and permissions",
        ),
    }
}

/// The format of an input WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Frames in the file.
    pub frames: u64,
    /// Bits per sample.
    pub bits: u16,
    /// Whether the samples are IEEE floats (else integers).
    pub float: bool,
    /// Bytes each sample occupies in the file (its container: a 24-bit sample may sit in 3 or 4
    /// bytes); 0 when the header could not be walked to tell.
    pub sample_bytes: u16,
}

/// Opens and checks `path` as a PCM WAV file: readable, a RIFF/WAVE header hound understands, a
/// supported sample format, and a data chunk that the file really holds (not truncated).
pub fn probe_input(path: &Path) -> Result<WavInfo> {
    let (_, info) = open_input(path)?;
    Ok(info)
}

/// Opens `path` like [`probe_input`] and returns the reader positioned at the first sample.
pub fn open_input(path: &Path) -> Result<(hound::WavReader<BufReader<File>>, WavInfo)> {
    let shown = path.display();
    let file = open_regular_input(path)?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    let malformed = |why: String| {
        Error::usage(
            format!("--input {shown} is not a usable WAV file ({why})"),
            "pass a PCM WAV file, e.g. one made with `arecord -f S16_LE` or `sox in -b 16 out.wav`",
        )
    };
    // The file opened, so a failure while parsing its header means the header is bad.
    let reader = hound::WavReader::new(BufReader::new(file)).map_err(|e| match e {
        hound::Error::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            malformed("it ends inside its header".into())
        }
        hound::Error::IoError(io) => malformed(io_reason(&io)),
        other => malformed(other.to_string()),
    })?;
    let spec = reader.spec();
    let float = spec.sample_format == hound::SampleFormat::Float;
    let supported = if float {
        spec.bits_per_sample == 32
    } else {
        matches!(spec.bits_per_sample, 8 | 16 | 24 | 32)
    };
    if !supported {
        return Err(malformed(format!(
            "{}-bit {} samples are not supported",
            spec.bits_per_sample,
            if float { "float" } else { "integer" }
        )));
    }
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(malformed("zero channels or zero sample rate".into()));
    }
    let samples = u64::from(reader.len());
    if samples % u64::from(spec.channels) != 0 {
        return Err(malformed(format!(
            "{samples} samples is not a whole number of {}-channel frames",
            spec.channels
        )));
    }
    let layout = data_layout(path);
    let sample_bytes = layout.map_or(0, |l| l.block_align / spec.channels);
    // What hound decodes: each size in its own container, and 24-bit in 4 bytes. Anything else
    // (e.g. 16-bit padded to 4 bytes) would fail at the first sample: refuse it here.
    let width = if sample_bytes == 0 {
        spec.bits_per_sample.div_ceil(8)
    } else {
        sample_bytes
    };
    if !matches!(
        (width, spec.bits_per_sample),
        (1, 8) | (2, 16) | (3, 24) | (4, 24 | 32)
    ) {
        return Err(malformed(format!(
            "{}-bit samples in {width}-byte containers are not supported",
            spec.bits_per_sample
        )));
    }
    // hound trusts the data chunk's declared length; a truncated file would fail mid-replay.
    if let Some(DataLayout { start, .. }) = layout {
        let bytes = samples * u64::from(width);
        if start.saturating_add(bytes) > file_len {
            return Err(malformed(format!(
                "truncated: its header promises {bytes} bytes of samples but only {} follow",
                file_len.saturating_sub(start)
            )));
        }
    }
    let info = WavInfo {
        rate: spec.sample_rate,
        channels: spec.channels,
        frames: samples / u64::from(spec.channels),
        bits: spec.bits_per_sample,
        float,
        sample_bytes,
    };
    Ok((reader, info))
}

/// Opens `--input` for reading; it must be a regular file (through symbolic links). A FIFO, a
/// pipe (`/dev/stdin` fed by `|`), a terminal or another device is refused at once, before it
/// could block: the replay reads the header twice and checks the data against the file's
/// length, which a stream cannot give. The open itself does not block either (`O_NONBLOCK`,
/// which regular files ignore), so a FIFO swapped in after the check is caught by the second
/// look at what was opened.
fn open_regular_input(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    let cannot_read = |e: io::Error| {
        Error::usage(
            format!("cannot read --input {shown} ({})", io_reason(&e)),
            "check the path and its permissions",
        )
    };
    let refuse = |kind: &str| {
        Error::usage(
            format!(
                "--input {shown} is {kind}, not a regular file; w4l replays WAV files only, not streams"
            ),
            "save the audio to a file first and pass that file",
        )
    };
    let meta = std::fs::metadata(path).map_err(cannot_read)?;
    if let Some(kind) = special_kind(&meta) {
        return Err(refuse(kind));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(cannot_read)?;
    let meta = file.metadata().map_err(cannot_read)?;
    match special_kind(&meta) {
        Some(kind) => Err(refuse(kind)),
        None => Ok(file),
    }
}

/// Where a WAV file's samples start, and the bytes of one frame (the `fmt ` chunk's block
/// alignment; 0 if the data chunk came first).
#[derive(Debug, Clone, Copy)]
struct DataLayout {
    start: u64,
    block_align: u16,
}

/// Walks the RIFF chunks of the WAV file at `path` to its `data` chunk, as hound does (`None`
/// if the layout cannot be told).
fn data_layout(path: &Path) -> Option<DataLayout> {
    use std::io::{Read, SeekFrom};
    let mut f = open_regular_input(path).ok()?;
    let mut riff = [0u8; 12];
    f.read_exact(&mut riff).ok()?;
    if &riff[..4] != b"RIFF" || &riff[8..] != b"WAVE" {
        return None;
    }
    let mut offset = 12u64;
    let mut block_align = 0;
    // Real files have a handful of chunks; the bound only stops a pathological one.
    for _ in 0..10_000 {
        let mut header = [0u8; 8];
        f.read_exact(&mut header).ok()?;
        let size = u64::from(u32::from_le_bytes([
            header[4], header[5], header[6], header[7],
        ]));
        match &header[..4] {
            b"data" => {
                return Some(DataLayout {
                    start: offset + 8,
                    block_align,
                });
            }
            b"fmt " => {
                // Format tag, channels, rate, byte rate, then the block alignment.
                let mut fmt = [0u8; 14];
                f.read_exact(&mut fmt).ok()?;
                block_align = u16::from_le_bytes([fmt[12], fmt[13]]);
            }
            _ => {}
        }
        offset = offset.checked_add(8 + size + (size & 1))?;
        f.seek(SeekFrom::Start(offset)).ok()?;
    }
    None
}
