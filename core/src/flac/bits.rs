//! Big-endian bit I/O over caller-supplied byte slices, and FLAC's two CRCs.

use super::FlacError;

/// Writes bits MSB first into a byte slice; whole 32-bit words go out as they fill.
///
/// `Copy`, so a caller can keep a snapshot and rewind to it (the encoder does, to replace
/// a subframe that came out larger than verbatim).
#[derive(Clone, Copy)]
pub(crate) struct BitWriter {
    /// Bits not yet stored; only the low `pending` bits are meaningful.
    acc: u64,
    /// `< 32` between calls.
    pending: u32,
    /// Next byte to store.
    pos: usize,
}

impl BitWriter {
    pub(crate) fn new(pos: usize) -> Self {
        Self { acc: 0, pending: 0, pos }
    }

    /// Appends the low `n <= 32` bits of `value` (the bits above `n` must be zero).
    #[inline]
    pub(crate) fn put(&mut self, out: &mut [u8], n: u32, value: u32) -> Result<(), FlacError> {
        // pending < 32 and n <= 32: nothing meaningful is shifted out.
        self.acc = (self.acc << n) | u64::from(value);
        self.pending += n;
        if self.pending >= 32 {
            self.pending -= 32;
            let word = (self.acc >> self.pending) as u32;
            let end = self.pos + 4;
            let dst = out.get_mut(self.pos..end).ok_or(FlacError::OutputFull)?;
            dst.copy_from_slice(&word.to_be_bytes());
            self.pos = end;
        }
        Ok(())
    }

    /// Appends `n <= 32` bits of a signed value in two's complement.
    pub(crate) fn put_signed(&mut self, out: &mut [u8], n: u32, value: i32) -> Result<(), FlacError> {
        let mask = u32::MAX.checked_shr(32 - n).unwrap_or(0);
        self.put(out, n, value as u32 & mask)
    }

    /// Appends `q` zeros, a one, and the low `k` bits of `low` (a Rice code, `k <= 30`).
    #[inline]
    pub(crate) fn put_rice(&mut self, out: &mut [u8], q: u32, k: u32, low: u32) -> Result<(), FlacError> {
        let mut q = q;
        while q + k >= 32 {
            let zeros = q.min(32);
            self.put(out, zeros, 0)?;
            q -= zeros;
        }
        self.put(out, q + k + 1, (1 << k) | low)
    }

    /// Pads with zeros to a byte boundary, stores what is pending, and returns the length.
    pub(crate) fn finish(mut self, out: &mut [u8]) -> Result<usize, FlacError> {
        let pad = (8 - self.pending % 8) % 8;
        self.put(out, pad, 0)?;
        let bytes = self.pending / 8;
        let end = self.pos + bytes as usize;
        let dst = out.get_mut(self.pos..end).ok_or(FlacError::OutputFull)?;
        for (i, b) in dst.iter_mut().enumerate() {
            *b = (self.acc >> (8 * (bytes as usize - 1 - i))) as u8;
        }
        Ok(end)
    }

    /// Bits written since position 0.
    pub(crate) fn bits(&self) -> usize {
        self.pos * 8 + self.pending as usize
    }
}

/// Reads bits MSB first from a byte slice.
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    /// Next byte to load into `acc`.
    pos: usize,
    /// Unread bits, left-aligned; the top `avail` are counted. The bits below them are
    /// either zero or the stream's next bits, so loading them again is harmless.
    acc: u64,
    avail: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0, acc: 0, avail: 0 }
    }

    fn refill(&mut self) {
        if let Some(word) = self.bytes.get(self.pos..self.pos + 8) {
            let mut be = [0u8; 8];
            be.copy_from_slice(word);
            self.acc |= u64::from_be_bytes(be) >> self.avail;
            let take = (63 - self.avail) / 8;
            self.pos += take as usize;
            self.avail += take * 8;
        } else {
            while self.avail <= 56 {
                let Some(&b) = self.bytes.get(self.pos) else { break };
                self.acc |= u64::from(b) << (56 - self.avail);
                self.pos += 1;
                self.avail += 8;
            }
        }
    }

    /// The next `n <= 32` bits as an unsigned value.
    #[inline]
    pub(crate) fn get(&mut self, n: u32) -> Result<u32, FlacError> {
        if self.avail < n {
            self.refill();
            if self.avail < n {
                return Err(FlacError::Truncated);
            }
        }
        let v = self.acc.checked_shr(64 - n).unwrap_or(0) as u32;
        self.acc = self.acc.checked_shl(n).unwrap_or(0);
        self.avail -= n;
        Ok(v)
    }

    /// The next `n <= 32` bits as a two's complement value.
    pub(crate) fn get_signed(&mut self, n: u32) -> Result<i32, FlacError> {
        let v = self.get(n)?;
        Ok((v.checked_shl(32 - n).unwrap_or(0) as i32).checked_shr(32 - n).unwrap_or(0))
    }

    /// Counts zeros up to the next one bit, and consumes them and the one.
    pub(crate) fn unary(&mut self) -> Result<u32, FlacError> {
        let mut zeros = 0u32;
        loop {
            let lz = self.acc.leading_zeros();
            if lz < self.avail {
                self.acc <<= lz;
                self.acc <<= 1;
                self.avail -= lz + 1;
                return Ok(zeros + lz);
            }
            zeros = zeros.saturating_add(self.avail);
            self.acc = 0;
            self.avail = 0;
            self.refill();
            if self.avail == 0 {
                return Err(FlacError::Truncated);
            }
        }
    }

    /// A Rice code with parameter `k <= 30`: `(zeros << k) | the k bits after the one`.
    #[inline]
    pub(crate) fn rice(&mut self, k: u32) -> Result<u32, FlacError> {
        if self.avail < 32 {
            self.refill();
        }
        let zeros = self.acc.leading_zeros();
        let len = zeros + 1 + k;
        if len > self.avail {
            // A long unary part, or the end of the data: bit by bit.
            let q = self.unary()?;
            return Ok(q.wrapping_shl(k) | self.get(k)?);
        }
        // len <= avail <= 63, so neither shift overflows.
        let rest = self.acc << (zeros + 1);
        let low = rest.checked_shr(64 - k).unwrap_or(0) as u32;
        self.acc = rest << k;
        self.avail -= len;
        Ok(zeros.wrapping_shl(k) | low)
    }

    /// Skips to the next byte boundary and returns the byte position there.
    pub(crate) fn align(&mut self) -> usize {
        let skip = self.avail % 8;
        self.acc <<= skip;
        self.avail -= skip;
        self.pos - (self.avail / 8) as usize
    }
}

/// CRC-8 of a frame header: polynomial x^8 + x^2 + x + 1, initial value 0.
pub(crate) fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = (crc << 1) ^ if crc & 0x80 != 0 { 0x07 } else { 0 };
        }
    }
    crc
}

/// CRC-16 of a frame: polynomial x^16 + x^15 + x^2 + 1, initial value 0. A table: it runs
/// over every compressed byte twice (encode and decode), where the bitwise form would cost
/// more than the Rice coding.
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        let i = usize::from((crc >> 8) as u8 ^ b);
        (crc << 8) ^ CRC16_TABLE.get(i).copied().unwrap_or(0)
    })
}

static CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = (crc << 1) ^ if crc & 0x8000 != 0 { 0x8005 } else { 0 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_and_reader_agree() {
        let mut out = [0u8; 16];
        let mut w = BitWriter::new(0);
        w.put(&mut out, 3, 0b101).unwrap();
        w.put_signed(&mut out, 7, -5).unwrap();
        w.put_rice(&mut out, 40, 3, 0b110).unwrap();
        w.put(&mut out, 32, 0xDEAD_BEEF).unwrap();
        let len = w.finish(&mut out).unwrap();
        assert_eq!(len, (3 + 7 + 44 + 32 + 7) / 8);
        let mut r = BitReader::new(&out[..len]);
        assert_eq!(r.get(3).unwrap(), 0b101);
        assert_eq!(r.get_signed(7).unwrap(), -5);
        assert_eq!(r.unary().unwrap(), 40);
        assert_eq!(r.get(3).unwrap(), 0b110);
        assert_eq!(r.get(32).unwrap(), 0xDEAD_BEEF);
        assert_eq!(r.align(), len);
        assert_eq!(r.get(1), Err(FlacError::Truncated));
    }

    #[test]
    fn rice_codes_read_back_fast_and_slow() {
        let mut out = [0u8; 64];
        let mut w = BitWriter::new(0);
        let codes = [(0, 0, 0), (3, 5, 17), (70, 2, 3), (0, 30, (1 << 30) - 1), (12, 0, 0)];
        for (q, k, low) in codes {
            w.put_rice(&mut out, q, k, low).unwrap();
        }
        let len = w.finish(&mut out).unwrap();
        let mut r = BitReader::new(&out[..len]);
        for (q, k, low) in codes {
            assert_eq!(r.rice(k).unwrap(), q << k | low);
        }
        assert_eq!(r.rice(3), Err(FlacError::Truncated));
    }

    #[test]
    fn writer_reports_a_full_buffer() {
        let mut out = [0u8; 3];
        let mut w = BitWriter::new(0);
        assert_eq!(w.put(&mut out, 32, 1), Err(FlacError::OutputFull));
    }

    #[test]
    fn crcs_match_known_values() {
        // CRC-8/SMBUS and CRC-16/UMTS (the FLAC polynomials) of "123456789".
        assert_eq!(crc8(b"123456789"), 0xF4);
        assert_eq!(crc16(b"123456789"), 0xFEE8);
    }
}
