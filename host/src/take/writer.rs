//! The writer of one journal file, WAV (`hound`) or FLAC ([`crate::wav::flac`]), behind the
//! few steps [`super::file::TakeFile`] takes: how many samples go in next, the file's size
//! after them (charged to the disk budget *before* they are written), write, checkpoint,
//! finish.

use std::fs::File;
use std::io::{self, BufWriter};

use crate::wav::flac::{FlacWriter, take_format};
use crate::wav::{SampleFormat, write_samples};

/// Bytes of the output buffer in front of each file: it gathers the small writes of a live
/// capture (a worker wake-up brings ~100 ms, 19 KiB of 16-bit samples at 48 kHz stereo), while
/// a spilled block (larger) goes to the file in one `write` without being copied through it.
const WRITE_BUFFER: usize = 32 << 10;

/// A journal file's writer.
pub(crate) enum Writer {
    /// A WAV file of at most `limit` bytes of samples.
    Wav {
        writer: hound::WavWriter<BufWriter<File>>,
        format: SampleFormat,
        header: u64,
        data_bytes: u64,
        limit: u64,
        scratch: Vec<f32>,
    },
    /// A FLAC stream (no size limit).
    Flac(FlacWriter<BufWriter<File>>),
}

/// `hound`'s error as an I/O error.
fn io_error(e: hound::Error) -> io::Error {
    match e {
        hound::Error::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

impl Writer {
    /// Starts a file in `format` on `file` (new and empty), `limit` bytes of samples at most
    /// for WAV, and writes its header.
    pub(crate) fn create(
        file: File,
        format: SampleFormat,
        rate: u32,
        channels: u16,
        limit: u64,
    ) -> io::Result<Self> {
        let out = BufWriter::with_capacity(WRITE_BUFFER, file);
        if format == SampleFormat::Flac {
            let flac = take_format(rate, channels)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            return Ok(Self::Flac(FlacWriter::new(out, flac)?));
        }
        let writer = hound::WavWriter::new(out, format.spec(rate, channels)).map_err(io_error)?;
        Ok(Self::Wav {
            writer,
            format,
            header: format.header_bytes(channels),
            data_bytes: 0,
            limit,
            scratch: Vec::new(),
        })
    }

    /// How many of `wanted` samples go in next: 0 when the file is full (the next file
    /// starts); for FLAC, at most the rest of the block being filled, so that each frame is
    /// charged before it is written.
    pub(crate) fn room(&self, wanted: usize) -> usize {
        match self {
            Self::Wav {
                format,
                data_bytes,
                limit,
                ..
            } => {
                let room = (limit - data_bytes) / format.bytes_per_sample();
                usize::try_from(room).unwrap_or(usize::MAX).min(wanted)
            }
            Self::Flac(w) => w.room(wanted),
        }
    }

    /// The most bytes the file can hold after writing `n` samples (at most
    /// [`room`](Self::room)): what to charge before.
    pub(crate) fn bytes_after(&self, n: usize) -> u64 {
        match self {
            Self::Wav {
                format,
                header,
                data_bytes,
                ..
            } => header + data_bytes + n as u64 * format.bytes_per_sample(),
            Self::Flac(w) => w.bytes_after(n),
        }
    }

    /// Bytes in the file: the header and the samples (FLAC: the whole frames).
    pub(crate) fn bytes(&self) -> u64 {
        match self {
            Self::Wav {
                header, data_bytes, ..
            } => header + data_bytes,
            Self::Flac(w) => w.bytes(),
        }
    }

    /// Samples accepted but not in the file yet: a FLAC block being filled.
    pub(crate) fn pending(&self) -> &[i16] {
        match self {
            Self::Wav { .. } => &[],
            Self::Flac(w) => w.pending(),
        }
    }

    /// Appends `samples` (at most [`room`](Self::room)).
    pub(crate) fn write(&mut self, samples: &[i16]) -> io::Result<()> {
        match self {
            Self::Wav {
                writer,
                format,
                data_bytes,
                scratch,
                ..
            } => {
                write_samples(writer, *format, samples, scratch).map_err(io_error)?;
                *data_bytes += samples.len() as u64 * format.bytes_per_sample();
                Ok(())
            }
            Self::Flac(w) => w.write(samples),
        }
    }

    /// Hands what was written to the OS so that the file holds it as it lies: a WAV header
    /// rewritten for every sample so far, FLAC's whole frames (its header keeps saying
    /// "unknown" until the end).
    pub(crate) fn checkpoint(&mut self) -> io::Result<()> {
        match self {
            Self::Wav { writer, .. } => writer.flush().map_err(io_error),
            Self::Flac(w) => w.flush(),
        }
    }

    /// Completes the file: the final header (FLAC: the last block, and STREAMINFO with the
    /// total and the MD5), flushed.
    pub(crate) fn finish(self) -> io::Result<()> {
        match self {
            Self::Wav { writer, .. } => writer.finalize().map_err(io_error),
            Self::Flac(w) => w.finish().map(drop),
        }
    }
}
