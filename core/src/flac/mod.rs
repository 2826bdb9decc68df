//! A FLAC encoder and decoder for what w4l writes: `no_std`, no heap, caller-supplied buffers.
//!
//! Speech compresses well losslessly, so the same memory budget holds more seconds of it, and
//! any standard decoder (libFLAC, ffmpeg, libsndfile, `claxon`) reads what [`Encoder`] writes.
//!
//! * **Encoder**: fixed predictors of order 0–4 chosen per block and channel, partitioned Rice
//!   coding with a parameter per partition (partition order 0–6 chosen by cost), wasted-bits
//!   detection (a 12-bit converter in 16-bit samples costs 12 bits), constant and verbatim
//!   subframes, and for stereo the cheapest of left/right, left/side, side/right and mid/side.
//!   Standard frame headers with CRC-8 and a CRC-16 per frame; `fLaC` and a STREAMINFO block
//!   carrying the MD5 of the audio, which the caller rewrites at the end of a stream
//!   ([`Encoder::stream_info`]).
//! * **Decoder**: reads one frame at a time from a byte slice and says how many bytes it used,
//!   so a torn stream can be cut after its last whole frame. It decodes the same subset
//!   (constant, verbatim and fixed subframes, any block size and channel assignment) and
//!   refuses LPC subframes and escaped Rice partitions with [`FlacError::Unsupported`]; it
//!   never panics on garbage: malformed frames are [`FlacError::Corrupt`] (sync, CRC,
//!   reserved values) and cut ones [`FlacError::Truncated`].
//!
//! Formats: 1–8 channels, 8, 12, 16, 20 or 24 bits per sample (8, 16 and 24 tested against
//! libFLAC),
//! sample rates 1–655 350 Hz, block sizes 16–[`MAX_BLOCK_SIZE`] (default
//! [`DEFAULT_BLOCK_SIZE`]). Samples come in interleaved as `i16` or `i32`.
//!
//! Why no LPC: on espeak-ng speech at 16 kHz, `flac -5` (LPC up to order 8) is only about 1%
//! smaller than `flac -0` (fixed predictors only), and this encoder is already smaller than
//! both there (partition order up to 6 and wasted bits; `scripts/bench-flac`). LPC would add
//! a coefficient search, quantisation and a second predictor loop, more code than the
//! encoder has now, for about 1%. Stereo decorrelation does pay: 37% smaller on the
//! benchmark's 48 kHz stereo speech.
//!
//! ```
//! use w4l_core::flac::{Decoder, Encoder, Format, HEADER_LEN};
//!
//! // A stereo 16-bit stream of 48 kHz, 256 frames per block.
//! let format = Format { sample_rate: 48_000, channels: 2, bits_per_sample: 16 };
//! let mut encoder = Encoder::new(format, 256)?;
//! let block: Vec<i16> = (0..256).flat_map(|i| [i * 7, -i * 3]).collect();
//!
//! let mut stream = vec![0u8; HEADER_LEN + encoder.max_frame_bytes()];
//! let frame_len = encoder.encode(&block, &mut stream[HEADER_LEN..])?;
//! stream.truncate(HEADER_LEN + frame_len);
//! // Total samples, frame sizes and the MD5 are known at the end: write the header last.
//! encoder.stream_info().write(&mut stream)?;
//! assert!(stream.len() < block.len() * 2 / 4);
//!
//! let (decoder, start) = Decoder::new(&stream)?;
//! let mut samples = [0i32; 512];
//! let frame = decoder.decode(&stream[start..], &mut samples)?;
//! assert_eq!((frame.bytes, frame.block_size), (frame_len, 256));
//! assert!(samples.iter().zip(&block).all(|(&d, &s)| d == i32::from(s)));
//! # Ok::<(), w4l_core::flac::FlacError>(())
//! ```

mod bits;
mod crc;
mod decoder;
mod encoder;
mod md5;
mod stream_info;

use core::fmt;

pub use decoder::{Decoder, Frame};
pub use encoder::Encoder;
pub use md5::Md5;
pub use stream_info::{HEADER_LEN, StreamInfo};

/// The largest block the encoder takes, in frames (FLAC's streamable subset allows 16 384
/// above 48 kHz, 4 608 at or below; the decoder reads any size up to 65 536).
pub const MAX_BLOCK_SIZE: usize = 16_384;
/// The block size w4l uses: 64 ms at 16 kHz, 21 ms at 48 kHz. Speech changes quickly, and
/// a predictor chosen per block follows it better in short blocks: on the espeak-ng corpus
/// of `scripts/bench-flac`, 1024 gives 0.595 / 0.634 of the raw size (16 kHz clean / -64 dB
/// noise) where 4096 gives 0.604 / 0.643, despite four times the frame headers.
pub const DEFAULT_BLOCK_SIZE: usize = 1_024;

/// What a stream holds: sample rate, channels and bits per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Format {
    /// Frames per second, 1..=655 350.
    pub sample_rate: u32,
    /// Channels per frame, 1..=8.
    pub channels: u8,
    /// Significant bits of each sample: 8, 12, 16, 20 or 24 (the depths a frame header
    /// names, so that every frame decodes on its own: `claxon` needs that).
    pub bits_per_sample: u8,
}

impl Format {
    fn check(self) -> Result<Self, FlacError> {
        let ok = (1..=655_350).contains(&self.sample_rate)
            && (1..=8).contains(&self.channels)
            && matches!(self.bits_per_sample, 8 | 12 | 16 | 20 | 24);
        if ok { Ok(self) } else { Err(FlacError::Format) }
    }
}

/// An interleaved sample type the codec takes: `i16` or `i32`.
pub trait Sample: Copy + private::Sealed {
    /// The value as an `i32`.
    fn to_i32(self) -> i32;
    /// Bits of the type: samples of at most this many bits need no range check.
    const BITS: u32;
}

impl Sample for i16 {
    fn to_i32(self) -> i32 {
        i32::from(self)
    }
    const BITS: u32 = 16;
}

impl Sample for i32 {
    fn to_i32(self) -> i32 {
        self
    }
    const BITS: u32 = 32;
}

mod private {
    pub trait Sealed {}
    impl Sealed for i16 {}
    impl Sealed for i32 {}
}

/// Why the codec refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FlacError {
    /// Channels, bits per sample, sample rate or block size out of range.
    Format,
    /// A block that is empty, not whole frames, or longer than the encoder's block size.
    BlockLength,
    /// A block after a short (last) block, or after 2^31 blocks.
    StreamEnded,
    /// A sample outside the range of the stream's bits per sample.
    SampleRange,
    /// The output buffer is too small.
    OutputFull,
    /// The bytes do not start with `fLaC` and a STREAMINFO block.
    NotFlac,
    /// The bytes end inside a frame or header.
    Truncated,
    /// A malformed frame: bad sync code, CRC, reserved value or impossible field.
    Corrupt,
    /// A valid FLAC feature this decoder leaves out (LPC subframes, escaped partitions,
    /// 25 bits per sample and more).
    Unsupported,
}

impl fmt::Display for FlacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Format => {
                "unsupported FLAC format; use 1-8 channels, 8/12/16/20/24 bits per sample, \
                 1-655350 Hz and a block size of 16-16384"
            }
            Self::BlockLength => {
                "block is empty, not whole frames, or longer than the block size; pass 1 to \
                 block-size frames of interleaved samples"
            }
            Self::StreamEnded => {
                "FLAC stream already ended (a short last block or 2^31 blocks); start a new \
                 encoder for more audio"
            }
            Self::SampleRange => {
                "sample does not fit the stream's bits per sample; clamp the samples or raise \
                 bits_per_sample"
            }
            Self::OutputFull => {
                "output buffer too small for the frame; give at least max_frame_bytes()"
            }
            Self::NotFlac => "not a FLAC stream (no fLaC and STREAMINFO); pass the file's start",
            Self::Truncated => {
                "FLAC data ends inside a frame; pass more bytes, or cut the stream at the last \
                 whole frame"
            }
            Self::Corrupt => "corrupt FLAC frame (sync, CRC or field); cut the stream before it",
            Self::Unsupported => {
                "FLAC feature not supported here (LPC, escaped residuals, over 24 bits); decode \
                 with libFLAC"
            }
        })
    }
}

impl core::error::Error for FlacError {}
