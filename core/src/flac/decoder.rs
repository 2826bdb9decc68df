//! The frame-by-frame decoder: constant, verbatim and fixed subframes.

use super::bits::BitReader;
use super::crc::{crc8, crc16};
use super::encoder::FIXED;
use super::{FlacError, StreamInfo};

/// Decodes FLAC frames one at a time from byte slices.
///
/// ```
/// use w4l_core::flac::{Decoder, FlacError};
///
/// assert_eq!(Decoder::new(b"RIFF\0\0\0\0WAVE").unwrap_err(), FlacError::NotFlac);
/// ```
///
/// The [module documentation](super) has a round trip.
#[derive(Debug, Clone)]
pub struct Decoder {
    info: StreamInfo,
}

/// What [`Decoder::decode`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Frame {
    /// Bytes of the frame, CRC-16 included: where the next frame starts.
    pub bytes: usize,
    /// Frames (samples per channel) in the block.
    pub block_size: usize,
    /// The frame's number (fixed block size) or first sample's number (variable).
    pub number: u64,
}

impl Decoder {
    /// Reads the stream header at the start of `stream` (`fLaC`, STREAMINFO, other
    /// metadata skipped); returns the decoder and the offset of the first frame.
    pub fn new(stream: &[u8]) -> Result<(Self, usize), FlacError> {
        let (info, offset) = StreamInfo::read(stream)?;
        if !(4..=24).contains(&info.format.bits_per_sample) {
            return Err(FlacError::Unsupported);
        }
        Ok((Self { info }, offset))
    }

    /// The stream's STREAMINFO.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// Decodes the frame at the start of `bytes` into `out` (interleaved; it needs room for
    /// `block_size * channels` samples, at most `max_block_size * channels` for this
    /// stream). Only the returned [`Frame::block_size`] frames of `out` are written.
    ///
    /// A stream cut short gives [`FlacError::Truncated`]; the bytes before that frame are
    /// whole frames.
    pub fn decode(&self, bytes: &[u8], out: &mut [i32]) -> Result<Frame, FlacError> {
        let mut r = BitReader::new(bytes);
        let frame = self.frame(&mut r, bytes, out);
        // Whatever was made of the zeros read past the end, the frame is cut short.
        if r.short() {
            Err(FlacError::Truncated)
        } else {
            frame
        }
    }

    fn frame(
        &self,
        r: &mut BitReader<'_>,
        bytes: &[u8],
        out: &mut [i32],
    ) -> Result<Frame, FlacError> {
        // Sync code, a reserved zero and the blocking strategy (either); block size, sample
        // rate, channel assignment and depth codes; a reserved zero.
        let head = r.get(32);
        let field = |shift: u32| head >> shift & 15;
        let (size_code, rate_code, assignment, depth) =
            (field(12), field(8), field(4), field(1) & 7);
        if head >> 17 != 0x7FFC || head & 1 != 0 {
            return Err(FlacError::Corrupt);
        }
        let number = utf8(r)?;
        let n = match size_code {
            0 => return Err(FlacError::Corrupt),
            1 => 192,
            2..=5 => 576 << (size_code - 2),
            6 | 7 => r.get(8 << (size_code - 6)) as usize + 1,
            _ => 256 << (size_code - 8),
        };
        // The sample rate is STREAMINFO's to tell; skip any in the header.
        let rate_bits = match rate_code {
            12 => 8,
            13 | 14 => 16,
            15 => return Err(FlacError::Corrupt),
            _ => 0,
        };
        r.get(rate_bits);
        let bits = match depth {
            0 => u32::from(self.info.format.bits_per_sample),
            1 => 8,
            2 => 12,
            4 => 16,
            5 => 20,
            6 => 24,
            3 => return Err(FlacError::Corrupt),
            _ => return Err(FlacError::Unsupported),
        };
        let header_end = r.align();
        if r.get(8) != u32::from(crc8(bytes.get(..header_end).unwrap_or(&[]))) {
            return Err(FlacError::Corrupt);
        }
        let ch = match assignment {
            0..=7 => assignment as usize + 1,
            8..=10 => 2,
            _ => return Err(FlacError::Corrupt),
        };
        if ch != usize::from(self.info.format.channels) {
            return Err(FlacError::Corrupt);
        }
        let out = out.get_mut(..n * ch).ok_or(FlacError::OutputFull)?;
        for c in 0..ch {
            // The side channel has one more bit: the second of left/side and mid/side, the
            // first of side/right.
            let side = matches!((assignment, c), (8 | 10, 1) | (9, 0));
            subframe(r, out, c, ch, n, bits + u32::from(side))?;
        }
        decorrelate(out, assignment);
        let end = r.align();
        let crc = u32::from(crc16(bytes.get(..end).unwrap_or(&[])));
        if r.get(16) != crc {
            return Err(FlacError::Corrupt);
        }
        Ok(Frame {
            bytes: end + 2,
            block_size: n,
            number,
        })
    }
}

/// FLAC's extended UTF-8 coding of a frame or sample number (up to 36 bits).
fn utf8(r: &mut BitReader<'_>) -> Result<u64, FlacError> {
    let first = r.get(8);
    let m = (first << 24).leading_ones();
    if m == 0 {
        return Ok(u64::from(first));
    }
    if m == 1 || m == 8 {
        return Err(FlacError::Corrupt);
    }
    let mut v = u64::from(first & (0x7F >> m));
    for _ in 1..m {
        let b = r.get(8);
        if b & 0xC0 != 0x80 {
            return Err(FlacError::Corrupt);
        }
        v = v << 6 | u64::from(b & 0x3F);
    }
    Ok(v)
}

/// Decodes channel `c`'s subframe into every `ch`-th sample of `out`.
///
/// Every subframe type is a fixed predictor over warm-up samples read verbatim and
/// residuals: constant is order 1 after one warm-up sample with every residual zero,
/// verbatim is all warm-up. So the same two loops decode them all (less code than loops
/// per type).
// Out of line: inlined into the frame's code (LTO did), its loop's state spilled to the
// stack and the firmware had 90 B more of decoder; a call per subframe costs nothing.
#[inline(never)]
fn subframe(
    r: &mut BitReader<'_>,
    out: &mut [i32],
    c: usize,
    ch: usize,
    n: usize,
    bits: u32,
) -> Result<(), FlacError> {
    let head = r.get(8);
    let shift = if head & 1 == 1 {
        r.unary().saturating_add(1)
    } else {
        0
    };
    if head & 0x80 != 0 || shift >= bits {
        return Err(FlacError::Corrupt);
    }
    let width = bits - shift;
    // Warm-up samples, predictor order, whether Rice-coded residuals follow.
    let (warm, order, coded) = match head >> 1 {
        0 => (1, 1, false),
        1 => (n, 0, false),
        t @ 8..=12 => (t as usize - 8, t as usize - 8, true),
        32.. => return Err(FlacError::Unsupported),
        _ => return Err(FlacError::Corrupt),
    };
    let mut dst = out.iter_mut().skip(c).step_by(ch);
    // The history, newest first.
    let mut h = [0i32; 4];
    for d in dst.by_ref().take(warm) {
        let x = r.get_signed(width);
        h = [x, h[0], h[1], h[2]];
        *d = x.wrapping_shl(shift);
    }
    // Residuals: uncoded ones are one partition of zeros.
    let (mut len, mut parts, mut param_bits) = (n, 1, 4);
    if coded {
        let (method, partition_order) = (r.get(2), r.get(4));
        len = n >> partition_order;
        if method > 1 || len << partition_order != n || len < order {
            return Err(FlacError::Corrupt);
        }
        (parts, param_bits) = (1 << partition_order, 4 + method);
    }
    let coef = FIXED.get(order).copied().unwrap_or_default();
    for j in 0..parts {
        let k = if coded { r.get(param_bits) } else { 0 };
        if k == (1 << param_bits) - 1 {
            return Err(FlacError::Unsupported);
        }
        for d in dst.by_ref().take(if j == 0 { len - warm } else { len }) {
            let u = if coded { r.rice(k) } else { 0 };
            let residual = (u >> 1) as i32 ^ -((u & 1) as i32);
            let prediction = coef[0]
                .wrapping_mul(h[0])
                .wrapping_add(coef[1].wrapping_mul(h[1]))
                .wrapping_add(coef[2].wrapping_mul(h[2]))
                .wrapping_add(coef[3].wrapping_mul(h[3]));
            let x = residual.wrapping_add(prediction);
            h = [x, h[0], h[1], h[2]];
            *d = x.wrapping_shl(shift);
        }
    }
    Ok(())
}

/// Undoes stereo decorrelation: left/side, side/right, mid/side.
fn decorrelate(out: &mut [i32], assignment: u32) {
    if !(8..=10).contains(&assignment) {
        return;
    }
    for frame in out.chunks_exact_mut(2) {
        let [a, b] = frame else { continue };
        (*a, *b) = match assignment {
            // left, side
            8 => (*a, a.wrapping_sub(*b)),
            // side, right
            9 => (a.wrapping_add(*b), *b),
            // mid, side
            _ => {
                let mid = a.wrapping_shl(1) | (*b & 1);
                (mid.wrapping_add(*b) >> 1, mid.wrapping_sub(*b) >> 1)
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flac::{Encoder, Format, HEADER_LEN};

    /// Encodes `samples` in blocks of 48 frames (the last one short), decodes them back
    /// frame by frame, and checks that a frame cut by one byte reads as truncated.
    fn round_trip(channels: u8, bits_per_sample: u8, samples: &[i32]) {
        let format = Format {
            sample_rate: 16_000,
            channels,
            bits_per_sample,
        };
        let ch = usize::from(channels);
        let mut enc = Encoder::new(format, 48).unwrap();
        let mut stream = [0u8; 4096];
        let mut len = HEADER_LEN;
        for block in samples.chunks(48 * ch) {
            len += enc.encode(block, &mut stream[len..]).unwrap();
        }
        enc.stream_info().write(&mut stream).unwrap();
        let (dec, mut at) = Decoder::new(&stream[..len]).unwrap();
        let mut out = [0i32; 48 * 8];
        let mut done = 0;
        while at < len {
            let frame = dec.decode(&stream[at..len], &mut out).unwrap();
            let n = frame.block_size * ch;
            assert_eq!(out[..n], samples[done..done + n]);
            let torn = dec.decode(&stream[at..at + frame.bytes - 1], &mut out);
            assert_eq!(torn, Err(FlacError::Truncated));
            done += n;
            at += frame.bytes;
        }
        assert_eq!(done, samples.len());
    }

    #[test]
    fn frame_numbers_of_every_length_read_back() {
        use crate::flac::bits::BitWriter;
        let values = [
            0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x1_0000, 0x1F_FFFF, 0x20_0000,
        ];
        let values = values
            .into_iter()
            .chain([0x3FF_FFFF, 0x400_0000, 0x7FFF_FFFF]);
        let mut out = [0u8; 8];
        for v in values {
            let mut w = BitWriter::new(&mut out);
            crate::flac::encoder::put_utf8(&mut w, v);
            let len = w.flush();
            let mut r = BitReader::new(&out[..len]);
            assert_eq!(utf8(&mut r), Ok(u64::from(v)), "{v:#x}");
            assert_eq!(r.align(), len);
        }
    }

    /// A deterministic wobble with some noise, at about `amplitude`.
    fn signal(i: usize, amplitude: i32) -> i32 {
        let tri = (i % 40) as i32 - 20;
        tri * amplitude / 20 + ((i * 7_919) % 13) as i32 - 6
    }

    #[test]
    fn every_stereo_assignment_and_subframe_type_round_trips() {
        let frames = 100; // two full blocks and a short one
        // Correlated channels (mid/side or left/side), identical ones (a constant side),
        // independent ones, silence (constant subframes) and full-scale extremes.
        let shapes: [fn(usize) -> [i32; 2]; 5] = [
            |i| [signal(i, 9_000), signal(i, 9_000) / 2 + 5],
            |i| [signal(i, 20_000); 2],
            |i| [signal(i, 300), signal(i * 3, 30_000)],
            |_| [0, 0],
            |i| {
                if i % 2 == 0 {
                    [32_767, -32_768]
                } else {
                    [-32_768, 32_767]
                }
            },
        ];
        for shape in shapes {
            let samples: std::vec::Vec<i32> = (0..frames).flat_map(shape).collect();
            round_trip(2, 16, &samples);
        }
    }

    #[test]
    fn mono_24_bit_with_wasted_bits_and_8_bit_round_trip() {
        let coarse: std::vec::Vec<i32> = (0..70).map(|i| signal(i, 1 << 19) << 3).collect();
        round_trip(1, 24, &coarse);
        let small: std::vec::Vec<i32> = (0..70).map(|i| signal(i, 100).clamp(-128, 127)).collect();
        round_trip(1, 8, &small);
    }

    /// A mono 16-bit frame of `n` frames (block number 0) around the subframe `put` writes.
    fn frame_of(n: u32, put: impl Fn(&mut crate::flac::bits::BitWriter<'_>)) -> std::vec::Vec<u8> {
        let mut out = [0u8; 64];
        let mut w = crate::flac::bits::BitWriter::new(&mut out);
        // Sync, 8-bit block size - 1 after the number, rate from STREAMINFO, mono, 16 bits.
        w.put(32, 0xFFF8_6008);
        w.put(8, 0);
        w.put(8, n - 1);
        w.flush();
        w.put(8, u32::from(crc8(w.written())));
        put(&mut w);
        w.flush();
        w.put(16, u32::from(crc16(w.written())));
        let len = w.flush();
        out[..len].to_vec()
    }

    #[test]
    fn fixed_subframes_with_empty_partitions_decode() {
        let format = Format {
            sample_rate: 16_000,
            channels: 1,
            bits_per_sample: 16,
        };
        let mut header = [0u8; HEADER_LEN];
        Encoder::new(format, 16)
            .unwrap()
            .stream_info()
            .write(&mut header)
            .unwrap();
        let (dec, _) = Decoder::new(&header).unwrap();
        let mut out = [0i32; 8];
        // Order 2 in a block of 2: all warm-up, then a partition header and no residuals.
        let all_warm_up = frame_of(2, |w| {
            w.put(8, (8 + 2) << 1);
            w.put_signed(16, 5);
            w.put_signed(16, -7);
            w.put(6, 0); // Rice, partition order 0
            w.put(4, 0);
        });
        let frame = dec.decode(&all_warm_up, &mut out).unwrap();
        assert_eq!((frame.bytes, frame.block_size), (all_warm_up.len(), 2));
        assert_eq!(out[..2], [5, -7]);
        // Order 4 in 2 partitions of 4: the first holds no residual, the second four zeros.
        let empty_first = frame_of(8, |w| {
            w.put(8, (8 + 4) << 1);
            for x in 1..=4 {
                w.put_signed(16, x);
            }
            w.put(6, 1); // Rice, partition order 1
            w.put(4, 3);
            w.put(4, 0);
            w.put(4, 0b1111);
        });
        let frame = dec.decode(&empty_first, &mut out).unwrap();
        assert_eq!((frame.bytes, frame.block_size), (empty_first.len(), 8));
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
