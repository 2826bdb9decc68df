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
        let mut w = BitWriter::new(0);
        let fields: [(u32, u32); 10] = [
            (32, u32::from_be_bytes(*b"fLaC")),
            // Last metadata block, type 0 (STREAMINFO), 34 bytes.
            (32, 0x8000_0022),
            (16, u32::from(self.min_block_size)),
            (16, u32::from(self.max_block_size)),
            (24, self.min_frame_size.min(0xFF_FFFF)),
            (24, self.max_frame_size.min(0xFF_FFFF)),
            (20, self.format.sample_rate),
            (3, u32::from(self.format.channels.wrapping_sub(1) & 7)),
            (5, u32::from(self.format.bits_per_sample.wrapping_sub(1) & 31)),
            // 36 bits of total samples; 0 (unknown) past that.
            (4, (self.total_samples_field() >> 32) as u32),
        ];
        for (n, v) in fields {
            w.put(out, n, v)?;
        }
        w.put(out, 32, self.total_samples_field() as u32)?;
        for b in self.md5 {
            w.put(out, 8, u32::from(b))?;
        }
        w.finish(out)
    }

    fn total_samples_field(&self) -> u64 {
        if self.total_samples >> 36 == 0 { self.total_samples } else { 0 }
    }

    /// Reads `fLaC` and the metadata blocks at the start of `bytes`; returns STREAMINFO and
    /// the offset of the first frame (other metadata blocks are skipped).
    pub fn read(bytes: &[u8]) -> Result<(Self, usize), FlacError> {
        if bytes.get(..4) != Some(b"fLaC".as_slice()) {
            return Err(if bytes.len() < 4 { FlacError::Truncated } else { FlacError::NotFlac });
        }
        let mut r = BitReader::new(bytes.get(4..).unwrap_or(&[]));
        let (last, kind, len) = (r.get(1)?, r.get(7)?, r.get(24)?);
        if kind != 0 || len != 34 {
            return Err(FlacError::NotFlac);
        }
        let (min_block_size, max_block_size) = (r.get(16)? as u16, r.get(16)? as u16);
        let (min_frame_size, max_frame_size) = (r.get(24)?, r.get(24)?);
        let sample_rate = r.get(20)?;
        let channels = r.get(3)? as u8 + 1;
        let bits_per_sample = r.get(5)? as u8 + 1;
        let total_samples = u64::from(r.get(4)?) << 32 | u64::from(r.get(32)?);
        let mut md5 = [0u8; 16];
        for b in &mut md5 {
            *b = r.get(8)? as u8;
        }
        let mut offset = HEADER_LEN;
        let mut last = last == 1;
        while !last {
            let header = bytes.get(offset..offset + 4).and_then(|h| h.try_into().ok());
            let word = u32::from_be_bytes(header.ok_or(FlacError::Truncated)?);
            last = word >> 31 == 1;
            offset = offset.saturating_add(4 + (word & 0xFF_FFFF) as usize);
        }
        let info = Self {
            format: Format { sample_rate, channels, bits_per_sample },
            min_block_size,
            max_block_size,
            min_frame_size,
            max_frame_size,
            total_samples,
            md5,
        };
        Ok((info, offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let info = StreamInfo {
            format: Format { sample_rate: 44_100, channels: 2, bits_per_sample: 24 },
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
            format: Format { sample_rate: 16_000, channels: 1, bits_per_sample: 16 },
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
