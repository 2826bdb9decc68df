//! The part of a take held in memory: fixed-size blocks of 16-bit samples, each reserved from
//! the accountant before it is allocated, oldest first; full ones packed into FLAC frames
//! ([`super::packed`]) with their reservation shrunk to the packed size.

use std::collections::VecDeque;
use std::sync::Arc;

use w4l_core::accountant::{Accountant, Category, Reservation, ReserveError};

use super::packed::Packer;
use crate::error::Result;

/// What a block holds.
#[derive(Debug)]
enum Payload {
    /// The `len` samples written so far, in room for `block_samples` allocated up front but
    /// neither zeroed nor touched before they are written (a memset per block was a tenth of
    /// the worker's time).
    Raw(Vec<i16>),
    /// A full block as FLAC frames.
    Packed(Box<[u8]>),
}

/// One block of the take, charged to the audio category of the accountant for as long as it
/// lives: its raw size while it fills, its packed size once packed.
#[derive(Debug)]
pub struct Block {
    payload: Payload,
    len: usize,
    first_sample: u64,
    reservation: Reservation<Arc<Accountant>>,
}

impl Block {
    /// Position of the first sample in the whole take (samples, all channels).
    pub fn first_sample(&self) -> u64 {
        self.first_sample
    }

    /// Position just past the last sample in the whole take.
    pub fn end(&self) -> u64 {
        self.first_sample + self.len as u64
    }

    /// Bytes the block is charged.
    pub fn bytes(&self) -> usize {
        self.reservation.bytes()
    }

    /// Whether the block is packed into FLAC frames.
    pub fn is_packed(&self) -> bool {
        matches!(self.payload, Payload::Packed(_))
    }
}

/// Recent samples of a take as a queue of fixed-size [`Block`]s, oldest first: one contiguous
/// stretch of the take that ends at [`end`](Self::end).
///
/// Every block is reserved from the accountant before it is allocated, so the store never holds
/// more than the budget allows; the caller decides what to give up when a reservation is
/// refused (the take evicts its oldest blocks). Blocks are only ever removed from the front.
///
/// With a [`Packer`] and packing on ([`set_packing`](Self::set_packing)), a block is packed
/// the moment it is full, before the next one is reserved: the budget then holds about
/// 1 / ratio as many seconds (`README.md`, "Measured").
#[derive(Debug)]
pub struct BlockStore {
    blocks: VecDeque<Block>,
    block_samples: usize,
    accountant: Arc<Accountant>,
    packer: Option<Packer>,
    packing: bool,
    /// Take position of the next sample written.
    next: u64,
}

impl BlockStore {
    /// An empty store of blocks of `block_samples` samples each (at least 1; with a `packer`,
    /// rounded down to whole frames), packing full blocks with `packer` when packing is on.
    pub fn new(accountant: Arc<Accountant>, block_samples: usize, packer: Option<Packer>) -> Self {
        let frame = packer.as_ref().map_or(1, Packer::channels);
        Self {
            blocks: VecDeque::new(),
            block_samples: (block_samples / frame).max(1) * frame,
            accountant,
            packer,
            packing: true,
            next: 0,
        }
    }

    /// Turns packing of blocks that fill from now on on or off (off where evicting them is
    /// free: the journal holds them).
    pub fn set_packing(&mut self, on: bool) {
        self.packing = on;
    }

    /// Bytes a new block is charged.
    pub fn block_bytes(&self) -> usize {
        self.block_samples * size_of::<i16>()
    }

    /// Writes as much of `samples` as fits without a new block; returns how many were taken.
    /// When it returns less than `samples.len()`, call [`grow`](Self::grow) and write the rest.
    pub fn write(&mut self, samples: &[i16]) -> usize {
        let Some(Block {
            payload: Payload::Raw(room),
            len,
            ..
        }) = self.blocks.back_mut()
        else {
            return 0;
        };
        let n = samples.len().min(self.block_samples - *len);
        room.extend_from_slice(&samples[..n]);
        *len += n;
        debug_assert_eq!(room.len(), *len);
        let full = *len == self.block_samples;
        self.next += n as u64;
        if full && self.packing {
            self.pack_newest();
        }
        n
    }

    /// Packs the newest block (full) if it gets smaller; its reservation shrinks to match.
    fn pack_newest(&mut self) {
        let (Some(packer), Some(block)) = (&self.packer, self.blocks.back_mut()) else {
            return;
        };
        let Payload::Raw(samples) = &block.payload else {
            return;
        };
        let Some(packed) = packer.pack(samples) else {
            return;
        };
        // Shrinking is never refused.
        if block.reservation.resize(packed.len()).is_ok() {
            block.payload = Payload::Packed(packed);
        }
    }

    /// Reserves and appends a new empty block.
    ///
    /// # Errors
    ///
    /// The accountant's refusal; nothing changes then.
    pub fn grow(&mut self) -> Result<(), ReserveError> {
        let reservation = Accountant::try_reserve_in(
            self.accountant.clone(),
            Category::Audio,
            self.block_bytes(),
        )?;
        self.blocks.push_back(Block {
            payload: Payload::Raw(Vec::with_capacity(self.block_samples)),
            len: 0,
            first_sample: self.next,
            reservation,
        });
        Ok(())
    }

    /// Whether `samples` more fit without evicting: in the newest block and in blocks the
    /// budget can still grant.
    pub fn has_room(&self, samples: usize) -> bool {
        let tail = match self.blocks.back() {
            Some(Block {
                payload: Payload::Raw(_),
                len,
                ..
            }) => self.block_samples - len,
            _ => 0,
        };
        let Some(more) = samples.checked_sub(tail).filter(|&m| m > 0) else {
            return true;
        };
        let blocks = more.div_ceil(self.block_samples);
        self.accountant.available(Category::Audio) >= blocks.saturating_mul(self.block_bytes())
    }

    /// Removes the oldest block and returns it (its reservation goes with it: dropping the block
    /// gives its bytes back). `None` when the store is empty.
    pub fn pop_oldest(&mut self) -> Option<Block> {
        self.blocks.pop_front()
    }

    /// Releases every block; the next sample written is at take position `next`.
    pub fn restart_at(&mut self, next: u64) {
        self.blocks.clear();
        self.next = next;
    }

    /// Blocks held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether no block is held.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Blocks held packed.
    pub fn packed(&self) -> usize {
        self.blocks.iter().filter(|b| b.is_packed()).count()
    }

    /// Samples held.
    pub fn held_samples(&self) -> u64 {
        self.next - self.start()
    }

    /// Bytes charged for the blocks held.
    pub fn held_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| b.bytes() as u64).sum()
    }

    /// Take position of the oldest sample held ([`end`](Self::end) when empty).
    pub fn start(&self) -> u64 {
        self.blocks.front().map_or(self.next, Block::first_sample)
    }

    /// Take position just past the newest sample held.
    pub fn end(&self) -> u64 {
        self.next
    }

    /// Hands the samples held from take position `from` on to `f`, oldest first, unpacking
    /// packed blocks. Returns the samples missing between `from` and the first one held, and
    /// the position reached.
    ///
    /// # Errors
    ///
    /// A packed block does not decode (a bug), or `f`'s error.
    pub fn read_from(
        &self,
        from: u64,
        f: &mut dyn FnMut(&[i16]) -> Result<()>,
    ) -> Result<(u64, u64)> {
        let mut at = from;
        let mut gap = 0;
        for block in self.blocks.iter().filter(|b| b.end() > from) {
            gap += block.first_sample.saturating_sub(at);
            let skip = usize::try_from(at.saturating_sub(block.first_sample)).unwrap_or(0);
            match (&block.payload, &self.packer) {
                (Payload::Raw(samples), _) => f(&samples[skip.min(block.len)..block.len])?,
                (Payload::Packed(bytes), Some(packer)) => packer.unpack(bytes, skip, f)?,
                // Only a store with a packer packs.
                (Payload::Packed(_), None) => {}
            }
            at = block.end();
        }
        Ok((gap, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(s: &BlockStore, from: u64) -> Vec<i16> {
        let mut out = Vec::new();
        s.read_from(from, &mut |x| {
            out.extend_from_slice(x);
            Ok(())
        })
        .unwrap();
        out
    }

    /// Writes `data`, evicting the oldest block whenever the budget refuses a new one.
    fn fill(s: &mut BlockStore, data: &[i16]) {
        let mut rest = data;
        while !rest.is_empty() {
            let n = s.write(rest);
            rest = &rest[n..];
            if rest.is_empty() {
                break;
            }
            while s.grow().is_err() {
                s.pop_oldest().expect("room after a pop");
            }
        }
    }

    #[test]
    fn blocks_leave_only_from_the_front_and_give_their_bytes_back() {
        let acc = Arc::new(Accountant::new(100, 0));
        let mut s = BlockStore::new(acc.clone(), 10, None);
        assert_eq!(s.write(&[1; 5]), 0);
        let data: Vec<i16> = (0..50).collect();
        fill(&mut s, &data);
        // 100 bytes = 5 blocks of 10 samples: all 50 fit exactly, and a sixth is refused.
        assert_eq!((s.len(), s.start(), s.end()), (5, 0, 50));
        s.grow().unwrap_err();
        assert_eq!(s.pop_oldest().map(|b| b.end()), Some(10));
        s.grow().expect("grow");
        assert_eq!(s.write(&[99; 3]), 3);
        let mut expected: Vec<i16> = (10..50).collect();
        expected.extend([99; 3]);
        assert_eq!(held(&s, 0), expected);
        assert_eq!(held(&s, 25), expected[15..]);
        assert_eq!((s.start(), s.end(), s.held_samples()), (10, 53, 43));
        s.restart_at(100);
        assert_eq!((s.start(), s.end(), acc.memory_used()), (100, 100, 0));
    }

    #[test]
    fn full_blocks_are_packed_charged_their_size_and_read_back_exactly() {
        let acc = Arc::new(Accountant::new(1 << 20, 0));
        // 3 channels: 4096 samples round down to 4095, whole frames.
        let mut s = BlockStore::new(acc.clone(), 4096, Packer::new(16_000, 3));
        assert_eq!(s.block_bytes(), 4095 * 2);
        let data: Vec<i16> = (0..3 * 4095 + 300)
            .map(|i| {
                ((i / 3) as f64 * 0.02)
                    .sin()
                    .mul_add(8000.0, (i % 3) as f64) as i16
            })
            .collect();
        fill(&mut s, &data);
        assert_eq!((s.len(), s.packed()), (4, 3));
        assert_eq!(held(&s, 0), data);
        assert_eq!(held(&s, 5000), data[5000..]);
        let bytes = s.held_bytes();
        assert!(bytes < 2 * s.block_bytes() as u64, "{bytes}");
        assert_eq!(acc.memory_used() as u64, bytes);

        // Off: blocks stay raw.
        s.set_packing(false);
        fill(&mut s, &data[..4095]);
        assert_eq!((s.len(), s.packed()), (5, 3));
        assert_eq!(held(&s, 0)[data.len()..], data[..4095]);
    }
}
