//! The part of a take held in memory: fixed-size blocks of 16-bit samples, each reserved from
//! the accountant before it is allocated, oldest first.

use std::collections::VecDeque;
use std::sync::Arc;

use w4l_core::accountant::{Accountant, Category, Reservation, ReserveError};

/// One fixed-size block of the take: interleaved 16-bit samples, charged to the audio
/// category of the accountant for as long as it lives.
#[derive(Debug)]
pub struct Block {
    samples: Box<[i16]>,
    len: usize,
    first_sample: u64,
    _reservation: Reservation<Arc<Accountant>>,
}

impl Block {
    /// The samples written so far.
    pub fn samples(&self) -> &[i16] {
        &self.samples[..self.len]
    }

    /// Position of the first sample in the whole take (samples, all channels).
    pub fn first_sample(&self) -> u64 {
        self.first_sample
    }

    /// Position just past the last sample in the whole take.
    pub fn end(&self) -> u64 {
        self.first_sample + self.len as u64
    }
}

/// Recent samples of a take as a queue of fixed-size [`Block`]s, oldest first: one contiguous
/// stretch of the take that ends at [`end`](Self::end).
///
/// Every block is reserved from the accountant before it is allocated, so the store never holds
/// more than the budget allows; the caller decides what to give up when a reservation is
/// refused (the take evicts its oldest blocks). Blocks are only ever removed from the front.
#[derive(Debug)]
pub struct BlockStore {
    blocks: VecDeque<Block>,
    block_samples: usize,
    accountant: Arc<Accountant>,
    /// Take position of the next sample written.
    next: u64,
}

impl BlockStore {
    /// An empty store of blocks of `block_samples` samples each (at least 1).
    pub fn new(accountant: Arc<Accountant>, block_samples: usize) -> Self {
        Self {
            blocks: VecDeque::new(),
            block_samples: block_samples.max(1),
            accountant,
            next: 0,
        }
    }

    /// Bytes one block is charged.
    pub fn block_bytes(&self) -> usize {
        self.block_samples * size_of::<i16>()
    }

    /// Writes as much of `samples` as fits without a new block; returns how many were taken.
    /// When it returns less than `samples.len()`, call [`grow`](Self::grow) and write the rest.
    pub fn write(&mut self, samples: &[i16]) -> usize {
        let Some(tail) = self.blocks.back_mut() else {
            return 0;
        };
        let n = samples.len().min(tail.samples.len() - tail.len);
        tail.samples[tail.len..tail.len + n].copy_from_slice(&samples[..n]);
        tail.len += n;
        self.next += n as u64;
        n
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
            samples: vec![0; self.block_samples].into_boxed_slice(),
            len: 0,
            first_sample: self.next,
            _reservation: reservation,
        });
        Ok(())
    }

    /// Whether `samples` more fit without evicting: in the newest block and in blocks the
    /// budget can still grant.
    pub fn has_room(&self, samples: usize) -> bool {
        let tail = self.blocks.back().map_or(0, |b| b.samples.len() - b.len);
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

    /// Samples held.
    pub fn held_samples(&self) -> u64 {
        self.next - self.start()
    }

    /// Bytes charged for the blocks held.
    pub fn held_bytes(&self) -> u64 {
        (self.blocks.len() * self.block_bytes()) as u64
    }

    /// Take position of the oldest sample held ([`end`](Self::end) when empty).
    pub fn start(&self) -> u64 {
        self.blocks.front().map_or(self.next, Block::first_sample)
    }

    /// Take position just past the newest sample held.
    pub fn end(&self) -> u64 {
        self.next
    }

    /// The blocks held, oldest first.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.blocks.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_leave_only_from_the_front_and_give_their_bytes_back() {
        let acc = Arc::new(Accountant::new(100, 0));
        let mut s = BlockStore::new(acc.clone(), 10);
        assert_eq!(s.write(&[1; 5]), 0);
        let data: Vec<i16> = (0..50).collect();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = s.write(rest);
            rest = &rest[n..];
            if rest.is_empty() {
                break;
            }
            if s.grow().is_err() {
                s.pop_oldest();
                s.grow().expect("room after a pop");
            }
        }
        // 100 bytes = 5 blocks of 10 samples: all 50 fit exactly, and a sixth is refused.
        assert_eq!((s.len(), s.start(), s.end()), (5, 0, 50));
        s.grow().unwrap_err();
        assert_eq!(s.pop_oldest().map(|b| b.end()), Some(10));
        s.grow().expect("grow");
        assert_eq!(s.write(&[99; 3]), 3);
        let kept: Vec<i16> = s.blocks().flat_map(|b| b.samples().to_vec()).collect();
        let mut expected: Vec<i16> = (10..50).collect();
        expected.extend([99; 3]);
        assert_eq!(kept, expected);
        assert_eq!((s.start(), s.end(), s.held_samples()), (10, 53, 43));
        s.restart_at(100);
        assert_eq!((s.start(), s.end(), acc.memory_used()), (100, 100, 0));
    }
}
