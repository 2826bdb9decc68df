//! FLAC files: the stream writer behind `--format flac` (the take's journal and the output) and
//! a reader that takes a file's frames one at a time, stopping cleanly at a torn or damaged one.
//!
//! Both are thin: the frames are the core's ([`w4l_core::flac`]: fixed predictors, Rice
//! coding, STREAMINFO with the MD5 of the audio), in blocks of
//! [`DEFAULT_BLOCK_SIZE`] frames.
//!
//! **A file still being written says so.** Its STREAMINFO carries a total of 0 samples and an
//! all-zero MD5 ("unknown", which every decoder accepts) until [`FlacWriter::finish`] writes the
//! real figures. Frames are self-delimiting (a sync code, a CRC-8 over the header, a CRC-16 over
//! the frame), so a file cut anywhere holds whole frames up to its last one:
//! [`crate::wav::flac_repair`] cuts it there and writes the STREAMINFO it should have had.
//!
//! **What a checkpoint covers.** Samples are encoded a whole block at a time, so the block
//! being filled (under [`DEFAULT_BLOCK_SIZE`] frames: 64 ms at 16 kHz, 21 ms at 48 kHz) stays in
//! memory until it is full or the file is finished; [`FlacWriter::flush`] hands every whole
//! frame to the OS.

use std::io::{self, Read, Seek, SeekFrom, Write};

use w4l_core::flac::{
    DEFAULT_BLOCK_SIZE, Decoder, Encoder, FlacError, Format, Frame, HEADER_LEN, StreamInfo,
};

/// The FLAC format of a take: 16-bit samples at `rate` Hz in `channels` channels.
///
/// # Errors
///
/// FLAC cannot hold it (more than 8 channels, a rate over 655 350 Hz).
pub fn take_format(rate: u32, channels: u16) -> Result<Format, FlacError> {
    let format = Format {
        sample_rate: rate,
        channels: u8::try_from(channels).map_err(|_| FlacError::Format)?,
        bits_per_sample: 16,
    };
    // The encoder checks the format.
    Encoder::new(format, DEFAULT_BLOCK_SIZE).map(|_| format)
}

/// An I/O error for a codec refusal (the writer's callers speak `io::Error`).
fn codec_error(e: FlacError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// Writes interleaved 16-bit samples as a FLAC stream: the header first (figures unknown),
/// frames as blocks fill, the real STREAMINFO at [`finish`](Self::finish).
pub struct FlacWriter<W: Write + Seek> {
    out: W,
    encoder: Encoder,
    /// Samples of the block being filled: fewer than `block`.
    pending: Vec<i16>,
    /// Samples (all channels) per block.
    block: usize,
    /// One frame's room.
    frame: Box<[u8]>,
    /// Bytes written to `out`: the header and every whole frame.
    bytes: u64,
}

impl<W: Write + Seek> std::fmt::Debug for FlacWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlacWriter")
            .field("bytes", &self.bytes)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write + Seek> FlacWriter<W> {
    /// Starts a stream in `format` at the current position of `out` (a new, empty file) and
    /// writes its header.
    ///
    /// # Errors
    ///
    /// The format is not one FLAC holds, or the header cannot be written.
    pub fn new(mut out: W, format: Format) -> io::Result<Self> {
        let encoder = Encoder::new(format, DEFAULT_BLOCK_SIZE).map_err(codec_error)?;
        let mut header = [0u8; HEADER_LEN];
        // Total 0 and MD5 zero: unknown, the mark of a stream still being written.
        let growing = StreamInfo {
            total_samples: 0,
            md5: [0; 16],
            ..encoder.stream_info()
        };
        growing.write(&mut header).map_err(codec_error)?;
        out.write_all(&header)?;
        let block = DEFAULT_BLOCK_SIZE * usize::from(format.channels);
        Ok(Self {
            out,
            frame: vec![0; encoder.max_frame_bytes()].into_boxed_slice(),
            encoder,
            pending: Vec::with_capacity(block),
            block,
            bytes: HEADER_LEN as u64,
        })
    }

    /// Bytes in the stream so far: the header and every whole frame (the block being filled
    /// is not encoded yet).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The samples of the block being filled, not in the stream yet.
    pub fn pending(&self) -> &[i16] {
        &self.pending
    }

    /// How many of `wanted` samples fill the block being filled at most: a journal writes
    /// that many, so that it can charge each frame before it is written.
    pub fn room(&self, wanted: usize) -> usize {
        (self.block - self.pending.len()).min(wanted)
    }

    /// The most [`bytes`](Self::bytes) can be after writing `n` (at most [`room`](Self::room))
    /// samples: a frame's worst case if they complete the block.
    pub fn bytes_after(&self, n: usize) -> u64 {
        let frame = if self.pending.len() + n >= self.block {
            self.frame.len() as u64
        } else {
            0
        };
        self.bytes + frame
    }

    /// Appends interleaved samples; every block they complete is encoded and written.
    ///
    /// # Errors
    ///
    /// Writing failed (the frame may be partly written: the file is cut there by repair).
    pub fn write(&mut self, mut samples: &[i16]) -> io::Result<()> {
        while !samples.is_empty() {
            let n = self.room(samples.len());
            self.pending.extend_from_slice(&samples[..n]);
            samples = &samples[n..];
            if self.pending.len() == self.block {
                self.encode_pending()?;
            }
        }
        Ok(())
    }

    /// Encodes and writes the pending samples as one frame.
    fn encode_pending(&mut self) -> io::Result<()> {
        let len = self
            .encoder
            .encode(&self.pending, &mut self.frame)
            .map_err(codec_error)?;
        self.pending.clear();
        self.out.write_all(&self.frame[..len])?;
        self.bytes += len as u64;
        Ok(())
    }

    /// Hands every whole frame to the underlying writer and flushes it.
    ///
    /// # Errors
    ///
    /// Writing failed.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Writes the pending samples as the last (short) frame and the stream's real STREAMINFO
    /// over its header; returns the writer, flushed.
    ///
    /// # Errors
    ///
    /// Writing failed, or the pending samples are not whole frames.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.pending.is_empty() {
            self.encode_pending()?;
        }
        let mut header = [0u8; HEADER_LEN];
        self.encoder
            .stream_info()
            .write(&mut header)
            .map_err(codec_error)?;
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header)?;
        self.out.seek(SeekFrom::Start(self.bytes))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Largest read-ahead of a [`FrameReader`]: a frame that does not end within it is damaged (the
/// largest real one, 65 536 frames of 8 channels of 24 bits, is 1.5 MiB).
const MAX_BUFFER: usize = 4 << 20;

/// Reads a FLAC stream's frames one at a time, stopping at the end of the stream or at the first
/// frame that is torn or damaged ([`stopped`](Self::stopped) tells which).
pub struct FrameReader<R: Read> {
    input: R,
    decoder: Decoder,
    buf: Vec<u8>,
    /// Where the next frame starts in `buf`.
    at: usize,
    eof: bool,
    /// Stream offset just past the last whole frame read.
    offset: u64,
    samples: Vec<i32>,
    stopped: Option<FlacError>,
}

impl<R: Read> FrameReader<R> {
    /// Reads the stream header of `input` (`fLaC` and the metadata blocks).
    ///
    /// # Errors
    ///
    /// Reading failed ([`FrameError::Io`]) or `input` is not a FLAC stream this decoder reads
    /// ([`FrameError::Flac`]).
    pub fn new(mut input: R) -> Result<Self, FrameError> {
        let mut buf = Vec::new();
        let mut eof = false;
        let (decoder, start) = loop {
            match Decoder::new(&buf) {
                Err(FlacError::Truncated) if !eof && buf.len() < MAX_BUFFER => {
                    eof = fill(&mut input, &mut buf, 64 << 10)? == 0;
                }
                other => break other.map_err(FrameError::Flac)?,
            }
        };
        let info = decoder.info();
        let most = usize::from(info.max_block_size.max(16)) * usize::from(info.format.channels);
        Ok(Self {
            input,
            decoder,
            buf,
            at: start,
            eof,
            offset: start as u64,
            samples: vec![0; most],
            stopped: None,
        })
    }

    /// The stream's STREAMINFO as its header says (figures may be unknown: 0).
    pub fn info(&self) -> &StreamInfo {
        self.decoder.info()
    }

    /// Stream offset just past the last whole frame read (the header's end before the first).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Why reading stopped before the end of the stream: [`FlacError::Truncated`] for a torn
    /// last frame, [`FlacError::Corrupt`] or [`FlacError::Unsupported`] for a frame this
    /// decoder cannot read. `None` while reading, and after a clean end.
    pub fn stopped(&self) -> Option<FlacError> {
        self.stopped
    }

    /// The next whole frame and its interleaved samples; `None` at the end of the stream or at
    /// a frame that cannot be read ([`stopped`](Self::stopped)).
    ///
    /// # Errors
    ///
    /// Reading the input failed.
    pub fn next_frame(&mut self) -> io::Result<Option<(Frame, &[i32])>> {
        if self.stopped.is_some() {
            return Ok(None);
        }
        loop {
            let bytes = &self.buf[self.at..];
            if bytes.is_empty() && self.eof {
                return Ok(None);
            }
            match self.decoder.decode(bytes, &mut self.samples) {
                Ok(frame) => {
                    self.at += frame.bytes;
                    self.offset += frame.bytes as u64;
                    let n = frame.block_size * usize::from(self.info().format.channels);
                    return Ok(Some((frame, &self.samples[..n])));
                }
                Err(FlacError::Truncated) if !self.eof && bytes.len() < MAX_BUFFER => {
                    self.buf.drain(..self.at);
                    self.at = 0;
                    self.eof = fill(&mut self.input, &mut self.buf, 256 << 10)? == 0;
                }
                Err(FlacError::OutputFull) => {
                    // A block larger than STREAMINFO's largest: not a stream we wrote.
                    self.stopped = Some(FlacError::Corrupt);
                    return Ok(None);
                }
                Err(e) => {
                    self.stopped = Some(e);
                    return Ok(None);
                }
            }
        }
    }
}

/// Appends up to `want` bytes of `input` to `buf`; returns how many (0 at its end).
fn fill(input: &mut impl Read, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
    let len = buf.len();
    buf.resize(len + want, 0);
    let mut got = 0;
    let result = loop {
        match input.read(&mut buf[len + got..]) {
            Ok(0) => break Ok(got),
            Ok(n) => {
                got += n;
                if got == want {
                    break Ok(got);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    buf.truncate(len + got);
    result
}

/// Why a [`FrameReader`] could not start.
#[derive(Debug)]
pub enum FrameError {
    /// Reading failed.
    Io(io::Error),
    /// Not a FLAC stream this decoder reads.
    Flac(FlacError),
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{}", crate::wav::io_reason(e)),
            Self::Flac(e) => write!(f, "{e}"),
        }
    }
}

/// Converts decoded samples (16-bit values in `i32`) to `i16`, saturating anything wider.
pub(crate) fn to_i16(src: &[i32], dst: &mut Vec<i16>) {
    dst.clear();
    dst.extend(
        src.iter()
            .map(|&s| s.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn samples(n: usize) -> Vec<i16> {
        (0..n).map(|i| ((i * 37) % 2000) as i16 - 1000).collect()
    }

    fn read_all(bytes: &[u8]) -> (Vec<i16>, FrameReader<&[u8]>) {
        let mut reader = FrameReader::new(bytes).unwrap();
        let mut all = Vec::new();
        let mut chunk = Vec::new();
        while let Some((_, s)) = reader.next_frame().unwrap() {
            to_i16(s, &mut chunk);
            all.extend_from_slice(&chunk);
        }
        (all, reader)
    }

    #[test]
    fn a_finished_stream_reads_back_and_a_growing_one_says_unknown() {
        let format = take_format(16_000, 2).unwrap();
        let input = samples(2 * 3000);
        let mut w = FlacWriter::new(Cursor::new(Vec::new()), format).unwrap();
        w.write(&input[..1000]).unwrap();
        w.write(&input[1000..]).unwrap();
        // Two whole blocks of 1024 frames are out; 952 frames wait.
        assert_eq!(w.pending().len(), 2 * (3000 - 2048));
        let growing = w.get_ref().get_ref().clone();
        let (back, reader) = read_all(&growing);
        assert_eq!(reader.info().total_samples, 0);
        assert_eq!(back, input[..2 * 2048]);
        assert_eq!(reader.stopped(), None);

        let bytes = w.finish().unwrap().into_inner();
        let (back, reader) = read_all(&bytes);
        assert_eq!(back, input);
        assert_eq!(reader.info().total_samples, 3000);
        assert_eq!(reader.offset(), bytes.len() as u64);
    }

    #[test]
    fn a_torn_stream_stops_at_its_last_whole_frame() {
        let format = take_format(48_000, 1).unwrap();
        let mut w = FlacWriter::new(Cursor::new(Vec::new()), format).unwrap();
        w.write(&samples(5000)).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let (_, whole) = read_all(&bytes);
        for cut in [HEADER_LEN + 1, bytes.len() / 2, bytes.len() - 1] {
            let (back, reader) = read_all(&bytes[..cut]);
            assert_eq!(reader.stopped(), Some(FlacError::Truncated), "{cut}");
            assert!(reader.offset() <= cut as u64);
            assert_eq!(back[..], samples(5000)[..back.len()]);
        }
        assert_eq!(whole.stopped(), None);
        assert!(matches!(
            FrameReader::new(&b"RIFF"[..]),
            Err(FrameError::Flac(FlacError::NotFlac))
        ));
    }

    #[test]
    fn formats_flac_cannot_hold_are_refused() {
        assert!(take_format(48_000, 9).is_err());
        assert!(take_format(700_000, 1).is_err());
        assert!(take_format(8_000, 8).is_ok());
    }
}
