//! The `fLaC` marker and the STREAMINFO block: what a decoder needs before the first frame.

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
        let dst = out.get_mut(..HEADER_LEN).ok_or(FlacError::OutputFull)?;
        let f = self.format;
        // 20 bits of sample rate, 3 of channels - 1, 5 of bits - 1, 36 of total samples
        // (0, unknown, past 2^36).
        let total = if self.total_samples >> 36 == 0 {
            self.total_samples
        } else {
            0
        };
        let packed = u64::from(f.sample_rate & 0xF_FFFF) << 44
            | u64::from(f.channels.wrapping_sub(1) & 7) << 41
            | u64::from(f.bits_per_sample.wrapping_sub(1) & 31) << 36
            | total;
        let min_frame = self.min_frame_size.min(0xFF_FFFF).to_be_bytes();
        let max_frame = self.max_frame_size.min(0xFF_FFFF).to_be_bytes();
        let fields: [&[u8]; 7] = [
            // The marker; the last metadata block, type 0 (STREAMINFO), 34 bytes.
            b"fLaC\x80\0\0\x22",
            &self.min_block_size.to_be_bytes(),
            &self.max_block_size.to_be_bytes(),
            min_frame.get(1..).unwrap_or(&[]),
            max_frame.get(1..).unwrap_or(&[]),
            &packed.to_be_bytes(),
            &self.md5,
        ];
        for (d, s) in dst.iter_mut().zip(fields.iter().flat_map(|f| f.iter())) {
            *d = *s;
        }
        Ok(HEADER_LEN)
    }

    /// Reads `fLaC` and the metadata blocks at the start of `bytes`; returns STREAMINFO and
    /// the offset of the first frame (other metadata blocks are skipped).
    pub fn read(bytes: &[u8]) -> Result<(Self, usize), FlacError> {
        let Some(h) = bytes
            .get(..HEADER_LEN)
            .and_then(|h| <&[u8; HEADER_LEN]>::try_from(h).ok())
        else {
            let marker = bytes.get(..4).is_none_or(|m| m == b"fLaC");
            return Err(if marker {
                FlacError::Truncated
            } else {
                FlacError::NotFlac
            });
        };
        let [
            b'f',
            b'L',
            b'a',
            b'C',
            block,
            0,
            0,
            34,
            mb0,
            mb1,
            xb0,
            xb1,
            mf0,
            mf1,
            mf2,
            xf0,
            xf1,
            xf2,
            p @ ..,
            _,
        ] = *h
        else {
            return Err(FlacError::NotFlac);
        };
        if block & 0x7F != 0 {
            return Err(FlacError::NotFlac);
        }
        let mut packed = [0u8; 8];
        packed.copy_from_slice(p.get(..8).unwrap_or(&[0; 8]));
        let packed = u64::from_be_bytes(packed);
        let mut md5 = [0u8; 16];
        md5.copy_from_slice(h.get(26..).unwrap_or(&[0; 16]));
        let info = Self {
            format: Format {
                sample_rate: (packed >> 44) as u32,
                channels: (packed >> 41 & 7) as u8 + 1,
                bits_per_sample: (packed >> 36 & 31) as u8 + 1,
            },
            min_block_size: u16::from_be_bytes([mb0, mb1]),
            max_block_size: u16::from_be_bytes([xb0, xb1]),
            min_frame_size: u32::from_be_bytes([0, mf0, mf1, mf2]),
            max_frame_size: u32::from_be_bytes([0, xf0, xf1, xf2]),
            total_samples: packed & 0xF_FFFF_FFFF,
            md5,
        };
        let mut offset = HEADER_LEN;
        let mut last = block >> 7 == 1;
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
