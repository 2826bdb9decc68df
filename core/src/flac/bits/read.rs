//! The bit reader of the decoder.

/// Reads bits MSB first from a byte slice.
///
/// Reading never fails on its own: past the end of the slice it reads zeros and sets
/// [`short`](Self::short), so the decoder checks once per frame instead of after every field
/// (the zeros can only make it read less, never loop: every read is bounded by the frame).
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    /// Next byte to load into `acc`.
    pos: usize,
    /// Unread bits, left-aligned; the top `avail` are counted. The bits below them are
    /// either zero or the stream's next bits, so loading them again is harmless.
    acc: u64,
    avail: u32,
    /// A read went past the end of `bytes`.
    short: bool,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            acc: 0,
            avail: 0,
            short: false,
        }
    }

    fn refill(&mut self) {
        // Eight bytes at once where a u64 is native; a byte at a time on microcontrollers
        // (less code) and at the end of the data.
        let word = self.bytes.get(self.pos..self.pos + 8);
        if let Some(word) = word.filter(|_| cfg!(target_pointer_width = "64")) {
            let mut be = [0u8; 8];
            be.copy_from_slice(word);
            self.acc |= u64::from_be_bytes(be) >> self.avail;
            let take = (63 - self.avail) / 8;
            self.pos += take as usize;
            self.avail += take * 8;
        } else {
            while self.avail <= 56 {
                let Some(&b) = self.bytes.get(self.pos) else {
                    break;
                };
                self.acc |= u64::from(b) << (56 - self.avail);
                self.pos += 1;
                self.avail += 8;
            }
        }
    }

    /// The next `n <= 32` bits as an unsigned value.
    pub(crate) fn get(&mut self, n: u32) -> u32 {
        if self.avail < n {
            self.refill();
            if self.avail < n {
                self.short = true;
                (self.acc, self.avail) = (0, 0);
                return 0;
            }
        }
        let v = self.acc.checked_shr(64 - n).unwrap_or(0) as u32;
        self.acc = self.acc.checked_shl(n).unwrap_or(0);
        self.avail -= n;
        v
    }

    /// The next `n <= 32` bits as a two's complement value.
    pub(crate) fn get_signed(&mut self, n: u32) -> i32 {
        let v = self.get(n);
        (v.checked_shl(32 - n).unwrap_or(0) as i32)
            .checked_shr(32 - n)
            .unwrap_or(0)
    }

    /// Counts zeros up to the next one bit, and consumes them and the one.
    ///
    /// A bit at a time: only wasted-bits counts, Rice codes longer than the accumulator
    /// (over 56 bits, see [`rice`](Self::rice)) and the end of the data come here, so this
    /// is the least code rather than the fastest.
    pub(crate) fn unary(&mut self) -> u32 {
        let mut zeros = 0u32;
        while self.get(1) == 0 && !self.short {
            zeros = zeros.saturating_add(1);
        }
        zeros
    }

    /// A Rice code with parameter `k <= 30`: `(zeros << k) | the k bits after the one`.
    #[inline]
    pub(crate) fn rice(&mut self, k: u32) -> u32 {
        if self.avail < 32 {
            self.refill();
        }
        let zeros = self.acc.leading_zeros();
        let len = zeros + 1 + k;
        if len > self.avail {
            // A long unary part, or the end of the data: bit by bit.
            let q = self.unary();
            return q.wrapping_shl(k) | self.get(k);
        }
        // len <= avail <= 63, so neither shift overflows.
        let rest = self.acc << (zeros + 1);
        let low = rest.checked_shr(64 - k).unwrap_or(0) as u32;
        self.acc = rest << k;
        self.avail -= len;
        zeros.wrapping_shl(k) | low
    }

    /// Whether a read went past the end (and read zeros).
    pub(crate) fn short(&self) -> bool {
        self.short
    }

    /// Skips to the next byte boundary and returns the byte position there.
    #[inline(never)]
    pub(crate) fn align(&mut self) -> usize {
        let skip = self.avail % 8;
        self.acc <<= skip;
        self.avail -= skip;
        self.pos - (self.avail / 8) as usize
    }
}
