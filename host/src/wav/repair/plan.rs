//! The pure part of the repair: the header's bytes and the file's length in, the plan out.
//! Never panics on any input (fuzzed).

use super::RecoverError;

/// How many bytes of the file [`recover`](super::recover) reads to find the `data` chunk.
pub const HEADER_READ_LIMIT: usize = 64 * 1024;

/// The `RIFF` size of a file whose writer has not finished it: w4l's take files carry it between
/// header checkpoints (their `data` size is the last checkpoint's, so the file plays as it lies),
/// and [`plan_repair`] then takes every byte after the declared samples as samples too.
pub const UNKNOWN_LENGTH: u32 = u32::MAX;

/// `WAVE_FORMAT_PCM`.
pub(super) const FORMAT_PCM: u16 = 0x0001;
/// `WAVE_FORMAT_IEEE_FLOAT`.
pub(super) const FORMAT_IEEE_FLOAT: u16 = 0x0003;
/// `WAVE_FORMAT_EXTENSIBLE`.
pub(super) const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// Bytes 2..16 of every `KSDATAFORMAT_SUBTYPE_*` GUID (the first two hold the format tag).
pub(super) const KSDATAFORMAT_SUFFIX: [u8; 14] = [
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
