//! The bit writer of the encoder.

use crate::flac::FlacError;

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
        Self {
            acc: 0,
            pending: 0,
            pos,
        }
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
    pub(crate) fn put_signed(
        &mut self,
        out: &mut [u8],
        n: u32,
        value: i32,
    ) -> Result<(), FlacError> {
        let mask = u32::MAX.checked_shr(32 - n).unwrap_or(0);
        self.put(out, n, value as u32 & mask)
    }

    /// Appends `q` zeros, a one, and the low `k` bits of `low` (a Rice code, `k <= 30`).
    #[inline]
    pub(crate) fn put_rice(
        &mut self,
        out: &mut [u8],
        q: u32,
        k: u32,
        low: u32,
    ) -> Result<(), FlacError> {
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
