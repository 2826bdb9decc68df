//! The compressed tier of the take's cache: a full block of 16-bit samples packed into FLAC
//! frames in memory, and read back sample-exact.
//!
//! A packed block is a run of the core's FLAC frames ([`w4l_core::flac`]), one per
//! [`DEFAULT_BLOCK_SIZE`] frames of audio, without a stream header: the [`Packer`] holds the one
//! header every block shares. A frame is decoded on its own, so reading from the middle of a
//! block decodes only the frames from there on.
//!
//! A block that would not get smaller (white noise at full scale) stays as it is.

use w4l_core::flac::{DEFAULT_BLOCK_SIZE, Decoder, Encoder, Format, HEADER_LEN, StreamInfo};

use crate::error::{Error, Result};
use crate::wav::flac::{take_format, to_i16};

/// Packs full blocks of a take and unpacks them (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Packer {
    format: Format,
    decoder: Decoder,
}

impl Packer {
    /// A packer for 16-bit audio at `rate` Hz in `channels` channels; `None` when FLAC cannot
    /// hold the format (more than 8 channels, a rate over 655 350 Hz): the cache then keeps
    /// its blocks as they are.
    pub fn new(rate: u32, channels: u16) -> Option<Self> {
        let format = take_format(rate, channels).ok()?;
        let block = DEFAULT_BLOCK_SIZE as u16;
        let info = StreamInfo {
            format,
            min_block_size: block,
            max_block_size: block,
            min_frame_size: 0,
            max_frame_size: 0,
            total_samples: 0,
            md5: [0; 16],
        };
        let mut header = [0u8; HEADER_LEN];
        info.write(&mut header).ok()?;
        let (decoder, _) = Decoder::new(&header).ok()?;
        Some(Self { format, decoder })
    }

    /// Interleaved channels.
    pub fn channels(&self) -> usize {
        usize::from(self.format.channels)
    }

    /// `samples` (whole frames) as FLAC frames, or `None` when they would not be smaller.
    pub fn pack(&self, samples: &[i16]) -> Option<Box<[u8]>> {
        let mut encoder = Encoder::new(self.format, DEFAULT_BLOCK_SIZE).ok()?;
        let raw = std::mem::size_of_val(samples);
        // Frames go into a buffer the size of the raw block: one that does not fit is no gain.
        let mut out = vec![0u8; raw];
        let mut len = 0;
        for block in samples.chunks(DEFAULT_BLOCK_SIZE * self.channels()) {
            len += encoder.encode(block, &mut out[len..]).ok()?;
        }
        if len >= raw {
            return None;
        }
        out.truncate(len);
        Some(out.into_boxed_slice())
    }

    /// Hands the samples of `packed` to `f` in order, from sample `skip` on.
    ///
    /// # Errors
    ///
    /// `packed` does not decode (a bug: the cache wrote it), or `f`'s error.
    pub fn unpack(
        &self,
        packed: &[u8],
        mut skip: usize,
        f: &mut dyn FnMut(&[i16]) -> Result<()>,
    ) -> Result<()> {
        let mut decoded = vec![0i32; DEFAULT_BLOCK_SIZE * self.channels()];
        let mut chunk = Vec::with_capacity(decoded.len());
        let mut at = 0;
        while at < packed.len() {
            let frame = self
                .decoder
                .decode(&packed[at..], &mut decoded)
                .map_err(|e| {
                    Error::runtime(
                        format!("the take's compressed cache does not decode ({e})"),
                        "please report this bug; the take's journal on disk is intact",
                    )
                })?;
            at += frame.bytes;
            let n = frame.block_size * self.channels();
            if skip >= n {
                skip -= n;
                continue;
            }
            to_i16(&decoded[skip..n], &mut chunk);
            skip = 0;
            f(&chunk)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpacked(p: &Packer, packed: &[u8], skip: usize) -> Vec<i16> {
        let mut out = Vec::new();
        p.unpack(packed, skip, &mut |s| {
            out.extend_from_slice(s);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn blocks_pack_smaller_and_read_back_from_any_sample() {
        let p = Packer::new(48_000, 2).unwrap();
        // 3000 stereo frames: two whole FLAC blocks and a short one.
        let block: Vec<i16> = (0..6000)
            .map(|i| {
                ((i / 2) as f64 * 0.05)
                    .sin()
                    .mul_add(3000.0, (i % 7) as f64) as i16
            })
            .collect();
        let packed = p.pack(&block).unwrap();
        assert!(packed.len() < block.len());
        for skip in [0, 1, 2047, 2048, 4096, 5999, 6000] {
            assert_eq!(unpacked(&p, &packed, skip), block[skip..], "{skip}");
        }
    }

    #[test]
    fn incompressible_blocks_and_formats_flac_cannot_hold_stay_raw() {
        let p = Packer::new(16_000, 1).unwrap();
        let mut x = 0x2545_f491_u32;
        let noise: Vec<i16> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as i16
            })
            .collect();
        assert!(p.pack(&noise).is_none());
        assert!(Packer::new(16_000, 9).is_none());
    }
}
