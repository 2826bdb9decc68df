//! The formats of the files w4l writes (16-bit or float WAV, FLAC), how the output's name
//! chooses one, and where a take longer than one WAV file allows continues.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use w4l_core::sample::convert;

use crate::error::{Error, Result};

/// Most bytes of samples in one WAV file (whole frames are cut below it): the RIFF and `data`
/// sizes are 32-bit, and the header (at most 68 bytes) counts too.
pub const WAV_DATA_LIMIT: u64 = 0xFFFF_F000;

/// Format of the files w4l writes: the take's journal and its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleFormat {
    /// WAV, 16-bit integer PCM: the take's own resolution.
    #[default]
    I16,
    /// WAV, 32-bit IEEE float: each 16-bit sample as `x / 32768`, exactly (what Whisper
    /// consumes).
    F32,
    /// FLAC, 16-bit, lossless: on speech about 0.35 (48 kHz stereo) to 0.65 (16 kHz mono) of
    /// the 16-bit WAV's size; ffmpeg and libsndfile read it ([`crate::wav::flac`]).
    Flac,
}

impl SampleFormat {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SampleFormat::I16 => "i16",
            SampleFormat::F32 => "f32",
            SampleFormat::Flac => "flac",
        }
    }

    /// The file name extension of the format: `wav` or `flac`.
    pub fn extension(self) -> &'static str {
        match self {
            SampleFormat::I16 | SampleFormat::F32 => "wav",
            SampleFormat::Flac => "flac",
        }
    }

    /// The format for an output at `path`: `asked` if given, else by the extension (`.flac`:
    /// FLAC, anything else 16-bit WAV).
    ///
    /// ```
    /// use std::path::Path;
    /// use w4l::wav::SampleFormat;
    ///
    /// let f = |p: &str, asked| SampleFormat::for_output(Path::new(p), asked);
    /// assert_eq!(f("take.flac", None)?, SampleFormat::Flac);
    /// assert_eq!(f("take.wav", Some(SampleFormat::F32))?, SampleFormat::F32);
    /// assert_eq!(f("take", Some(SampleFormat::Flac))?, SampleFormat::Flac);
    /// assert!(f("take.wav", Some(SampleFormat::Flac)).is_err());
    /// # Ok::<(), w4l::error::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `asked` contradicts the extension (`.wav` as FLAC, `.flac` as WAV): a file whose name
    /// lies about its contents is refused rather than written.
    pub fn for_output(path: &Path, asked: Option<SampleFormat>) -> Result<SampleFormat> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let named = match ext.as_deref() {
            Some("flac") => Some(SampleFormat::Flac),
            Some("wav") => None,
            _ => return Ok(asked.unwrap_or_default()),
        };
        match (asked, named) {
            (None, named) => Ok(named.unwrap_or_default()),
            (Some(asked), named) if (asked == SampleFormat::Flac) == named.is_some() => Ok(asked),
            (Some(asked), _) => Err(Error::usage(
                format!(
                    "the output {} is named .{} but the format {asked} writes a .{} file",
                    path.display(),
                    ext.unwrap_or_default(),
                    asked.extension()
                ),
                format!(
                    "name the output .{} or choose another format",
                    asked.extension()
                ),
            )),
        }
    }

    /// Bytes per sample in a WAV file (FLAC: 2, its samples before compression).
    pub fn bytes_per_sample(self) -> u64 {
        match self {
            SampleFormat::I16 | SampleFormat::Flac => 2,
            SampleFormat::F32 => 4,
        }
    }

    /// The `hound` spec for `rate` Hz, `channels` channels (FLAC: 16-bit PCM's, the samples
    /// it compresses).
    pub fn spec(self, rate: u32, channels: u16) -> hound::WavSpec {
        match self {
            SampleFormat::I16 | SampleFormat::Flac => hound::WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            },
            SampleFormat::F32 => hound::WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: 32,
                sample_format: hound::SampleFormat::Float,
            },
        }
    }

    /// Bytes of the header `hound` writes for this format: `WAVE_FORMAT_EXTENSIBLE` (68) for
    /// more than 16 bits or more than two channels, else the plain 44-byte header; FLAC's
    /// `fLaC` and STREAMINFO, 42.
    pub fn header_bytes(self, channels: u16) -> u64 {
        if self == SampleFormat::Flac {
            w4l_core::flac::HEADER_LEN as u64
        } else if channels > 2 || self == SampleFormat::F32 {
            68
        } else {
            44
        }
    }
}

/// Appends `samples` to `writer` in `format` (`scratch` holds the `f32` conversion).
pub(crate) fn write_samples<W: std::io::Write + std::io::Seek>(
    writer: &mut hound::WavWriter<W>,
    format: SampleFormat,
    samples: &[i16],
    scratch: &mut Vec<f32>,
) -> std::result::Result<(), hound::Error> {
    match format {
        SampleFormat::I16 | SampleFormat::Flac => {
            // At most a few MiB per call: callers pass blocks and drained chunks.
            for part in samples.chunks(1 << 20) {
                let n = u32::try_from(part.len()).map_err(|_| hound::Error::TooWide)?;
                let mut w = writer.get_i16_writer(n);
                for &s in part {
                    // SAFETY: the writer was made for `n` samples and this loop writes exactly
                    // `n` (`part.len()`); the checked `write_sample` cost a bounds check per
                    // sample and kept the loop from vectorizing (10% of a spilling replay).
                    unsafe { w.write_sample_unchecked(s) };
                }
                w.flush()?;
            }
        }
        SampleFormat::F32 => {
            scratch.resize(samples.len().min(1 << 16), 0.0);
            for part in samples.chunks(1 << 16) {
                let out = &mut scratch[..part.len()];
                convert(part, out);
                for &s in out.iter() {
                    writer.write_sample(s)?;
                }
            }
        }
    }
    Ok(())
}

impl fmt::Display for SampleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not `i16`, `f32` or `flac`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown sample format '{}'; use i16, f32 or flac",
            self.0
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for SampleFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "i16" => Ok(SampleFormat::I16),
            "f32" => Ok(SampleFormat::F32),
            "flac" => Ok(SampleFormat::Flac),
            _ => Err(UnknownFormat(s.into())),
        }
    }
}

/// The `index`-th file of a take written to `output`: `output` itself for 0, else the stem,
/// a three-digit number and the extension: `out.wav`, `out.001.wav`, `out.002.wav`, …
pub fn numbered_path(output: &Path, index: usize) -> PathBuf {
    if index == 0 {
        return output.to_owned();
    }
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "recording".into());
    let name = match output.extension() {
        Some(ext) => format!("{stem}.{index:03}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{index:03}"),
    };
    output.with_file_name(name)
}
