//! The `fLaC` marker and the STREAMINFO block: what a decoder needs before the first frame.

use super::bits::{BitReader, BitWriter};
use super::{FlacError, Format};

/// Bytes of the stream header the encoder writes: `fLaC`, a metadata block header and the
/// 34 bytes of STREAMINFO (the only, so last, metadata block).
pub const HEADER_LEN: usize = 42;

/// The STREAMINFO block: the format and the figures known only at the end of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StreamInfo {
    /// Sample rate, channels, bits per sample.
    pub format: Format,
    /// Smallest block in frames, the last block excepted.
    pub min_block_size: u16,
    /// Largest block in frames.
    pub max_block_size: u16,
    /// Smallest frame in bytes, 0 if unknown.
    pub min_frame_size: u32,
    /// Largest frame in bytes, 0 if unknown.
    pub max_frame_size: u32,
    /// Frames (samples per channel) in the stream, 0 if unknown.
    pub total_samples: u64,
    /// MD5 of the audio (see [`Md5`](super::Md5)); all zero if unknown.
    pub md5: [u8; 16],
}

impl StreamInfo {
    /// Writes the stream header ([`HEADER_LEN`] bytes) at the start of `out` and returns its
    /// length: call it again over the first bytes of a finished stream to record the final
    /// figures.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, FlacError> {
        // Through the encoder's bit writer: less code than placing the fields by hand.
        let mut w = BitWriter::new(out.get_mut(..HEADER_LEN).ok_or(FlacError::OutputFull)?);
        let f = self.format;
        // 36 bits of total samples: 0 (unknown) past 2^36.
        let total = if self.total_samples >> 36 == 0 {
            self.total_samples
        } else {
            0
        };
        let fields = [
            (32, u32::from_be_bytes(*b"fLaC")),
            // The last metadata block, type 0 (STREAMINFO), 34 bytes.
            (32, 0x8000_0022),
            (16, u32::from(self.min_block_size)),
            (16, u32::from(self.max_block_size)),
            (24, self.min_frame_size.min(0xFF_FFFF)),
            (24, self.max_frame_size.min(0xFF_FFFF)),
            (20, f.sample_rate & 0xF_FFFF),
            (3, u32::from(f.channels.wrapping_sub(1) & 7)),
            (5, u32::from(f.bits_per_sample.wrapping_sub(1) & 31)),
            (4, (total >> 32) as u32),
            (32, total as u32),
        ];
        for (n, v) in fields {
            w.put(n, v);
        }
        for &b in &self.md5 {
            w.put(8, u32::from(b));
        }
        Ok(w.flush())
    }

    /// Reads `fLaC` and the metadata blocks at the start of `bytes`; returns STREAMINFO and
    /// the offset of the first frame (other metadata blocks are skipped).
    pub fn read(bytes: &[u8]) -> Result<(Self, usize), FlacError> {
        let marker = bytes.get(..4).is_none_or(|m| m == b"fLaC");
        if bytes.len() < HEADER_LEN {
            return Err(if marker {
                FlacError::Truncated
            } else {
                FlacError::NotFlac
            });
        }
        // Through the decoder's bit reader: less code than picking the fields by hand.
        let mut r = BitReader::new(bytes);
        let (_, block_header) = (r.get(32), r.get(32));
        if !marker || block_header & 0x7FFF_FFFF != 34 {
            return Err(FlacError::NotFlac);
        }
        let (min_block_size, max_block_size) = (r.get(16) as u16, r.get(16) as u16);
        let (min_frame_size, max_frame_size) = (r.get(24), r.get(24));
        let format = Format {
            sample_rate: r.get(20),
            channels: r.get(3) as u8 + 1,
            bits_per_sample: r.get(5) as u8 + 1,
        };
        let total_samples = u64::from(r.get(4)) << 32 | u64::from(r.get(32));
        let mut md5 = [0u8; 16];
        for b in &mut md5 {
            *b = r.get(8) as u8;
        }
        let info = Self {
            format,
            min_block_size,
            max_block_size,
            min_frame_size,
            max_frame_size,
            total_samples,
            md5,
        };
        let mut offset = HEADER_LEN;
        let mut last = block_header >> 31 == 1;
        while !last {
            let header = bytes
                .get(offset..offset + 4)
                .and_then(|h| h.try_into().ok());
            let word = u32::from_be_bytes(header.ok_or(FlacError::Truncated)?);
            last = word >> 31 == 1;
            offset = offset.saturating_add(4 + (word & 0xFF_FFFF) as usize);
        }
        Ok((info, offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let info = StreamInfo {
            format: Format {
                sample_rate: 44_100,
                channels: 2,
                bits_per_sample: 24,
            },
            min_block_size: 4096,
            max_block_size: 4096,
            min_frame_size: 14,
            max_frame_size: 12_345,
            total_samples: (1 << 33) + 5,
            md5: [7; 16],
        };
        let mut out = [0u8; HEADER_LEN + 4];
        assert_eq!(info.write(&mut out), Ok(HEADER_LEN));
        assert_eq!(StreamInfo::read(&out[..HEADER_LEN]), Ok((info, HEADER_LEN)));
        assert_eq!(StreamInfo::read(b"RIFF...."), Err(FlacError::NotFlac));
        assert_eq!(StreamInfo::read(&out[..20]), Err(FlacError::Truncated));
    }

    #[test]
    fn other_metadata_blocks_are_skipped() {
        let info = StreamInfo {
            format: Format {
                sample_rate: 16_000,
                channels: 1,
                bits_per_sample: 16,
            },
            min_block_size: 16,
            max_block_size: 16,
            min_frame_size: 0,
            max_frame_size: 0,
            total_samples: 0,
            md5: [0; 16],
        };
        let mut out = [0u8; HEADER_LEN + 4 + 3];
        info.write(&mut out).unwrap();
        out[4] &= 0x7F; // STREAMINFO is no longer the last block
        out[HEADER_LEN..].copy_from_slice(&[0x81, 0, 0, 3, 0, 0, 0]); // a 3-byte PADDING
        assert_eq!(StreamInfo::read(&out), Ok((info, HEADER_LEN + 7)));
    }
}
