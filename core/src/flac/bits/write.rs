//! The bit writer of the encoder.

/// Writes bits MSB first into a byte slice; whole 32-bit words go out as they fill.
///
/// Writing never fails on its own: past the end of the slice the bits are dropped and
/// [`full`](Self::full) is set, so the encoder checks once per subframe and frame instead of
/// after every field.
pub(crate) struct BitWriter<'a> {
    out: &'a mut [u8],
    at: Mark,
}

/// A writer's position, to rewind to (the encoder does, to replace a subframe that came out
/// larger than verbatim).
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    /// Bits not yet stored; only the low `pending` bits are meaningful.
    acc: u64,
    /// `< 32` between calls.
    pending: u32,
    /// Next byte to store.
    pos: usize,
    /// Bytes were dropped for want of room.
    full: bool,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        let at = Mark {
            acc: 0,
            pending: 0,
            pos: 0,
            full: false,
        };
        Self { out, at }
    }

    /// Appends the low `n <= 32` bits of `value` (the bits above `n` must be zero).
    // One copy on microcontrollers (LTO inlined it into every field: 78 B more on Thumb);
    // inlined into the Rice coding loop where a u64 is native.
    #[cfg_attr(target_pointer_width = "64", inline)]
    #[cfg_attr(not(target_pointer_width = "64"), inline(never))]
    pub(crate) fn put(&mut self, n: u32, value: u32) {
        let at = &mut self.at;
        // pending < 32 and n <= 32: nothing meaningful is shifted out.
        at.acc = (at.acc << n) | u64::from(value);
        at.pending += n;
        if at.pending >= 32 {
            at.pending -= 32;
            let word = (at.acc >> at.pending) as u32;
            match self.out.get_mut(at.pos..at.pos + 4) {
                Some(dst) => dst.copy_from_slice(&word.to_be_bytes()),
                None => at.full = true,
            }
            at.pos += 4;
        }
    }

    /// Appends `n <= 32` bits of a signed value in two's complement.
    pub(crate) fn put_signed(&mut self, n: u32, value: i32) {
        let mask = u32::MAX.checked_shr(32 - n).unwrap_or(0);
        self.put(n, value as u32 & mask);
    }

    /// Appends `q` zeros, a one, and the low `k` bits of `low` (a Rice code, `k <= 30`).
    #[inline]
    pub(crate) fn put_rice(&mut self, q: u32, k: u32, low: u32) {
        let mut q = q;
        while q + k >= 32 {
            let zeros = q.min(32);
            self.put(zeros, 0);
            q -= zeros;
        }
        self.put(q + k + 1, (1 << k) | low);
    }

    /// Pads with zeros to a byte boundary, stores what is pending, and returns the number
    /// of bytes written.
    pub(crate) fn flush(&mut self) -> usize {
        self.put((8 - self.at.pending % 8) % 8, 0);
        let at = &mut self.at;
        let bytes = at.pending / 8;
        for i in 0..bytes {
            match self.out.get_mut(at.pos) {
                Some(b) => *b = (at.acc >> (8 * (bytes - 1 - i))) as u8,
                None => at.full = true,
            }
            at.pos += 1;
        }
        at.pending = 0;
        at.pos
    }

    /// What was stored so far (everything up to the last [`flush`](Self::flush)).
    pub(crate) fn written(&self) -> &[u8] {
        self.out.get(..self.at.pos).unwrap_or(&[])
    }

    /// Bits written so far.
    pub(crate) fn bits(&self) -> usize {
        self.at.pos * 8 + self.at.pending as usize
    }

    /// Whether bits were dropped for want of room.
    pub(crate) fn full(&self) -> bool {
        self.at.full
    }

    pub(crate) fn mark(&self) -> Mark {
        self.at
    }

    pub(crate) fn rewind(&mut self, mark: Mark) {
        self.at = mark;
    }
}
