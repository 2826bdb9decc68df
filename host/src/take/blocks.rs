//! The part of a take held in memory: fixed-size blocks of 16-bit samples, each reserved from
//! the accountant before it is allocated.

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

    /// Whether the block is full.
    pub fn is_full(&self) -> bool {
        self.len == self.samples.len()
    }
}

/// The take held in memory as a queue of fixed-size [`Block`]s, oldest first.
///
/// Every block is reserved from the accountant before it is allocated, so the store never holds
/// more than the budget allows. When a reservation is refused the caller decides (through the
/// core policy) what to give up: the oldest blocks go to the take's file on disk
/// ([`super::file`]: spilled, nothing lost), or, when that fails, are dropped and counted —
/// and the caller retries.
/// Blocks are only ever removed from the front, so what remains is always one contiguous stretch
/// of the take, ending at the newest sample.
#[derive(Debug)]
pub struct BlockStore {
    blocks: VecDeque<Block>,
    block_samples: usize,
    accountant: Arc<Accountant>,
    /// Samples ever written.
    written: u64,
    dropped_blocks: u64,
    dropped_samples: u64,
}

impl BlockStore {
    /// An empty store of blocks of `block_samples` samples each (at least 1).
    pub fn new(accountant: Arc<Accountant>, block_samples: usize) -> Self {
        Self {
            blocks: VecDeque::new(),
            block_samples: block_samples.max(1),
            accountant,
            written: 0,
            dropped_blocks: 0,
            dropped_samples: 0,
        }
    }

    /// Bytes one block is charged.
    pub fn block_bytes(&self) -> usize {
        self.block_samples * size_of::<i16>()
    }

    /// Samples per block.
    pub fn block_samples(&self) -> usize {
        self.block_samples
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
        self.written += n as u64;
        n
    }

    /// Whether the newest block is full (or there is none): the next write needs [`grow`](Self::grow).
    pub fn needs_block(&self) -> bool {
        self.blocks.back().is_none_or(Block::is_full)
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
            first_sample: self.written,
            _reservation: reservation,
        });
        Ok(())
    }

    /// Removes the oldest block and returns it (its reservation goes with it: dropping the block
    /// gives its bytes back). `None` when the store is empty.
    pub fn pop_oldest(&mut self) -> Option<Block> {
        self.blocks.pop_front()
    }

    /// Removes the first `n` samples of the oldest block (they were moved elsewhere, e.g. to
    /// a spill file, by a write that stopped part-way); the rest of the block stays.
    pub fn advance_oldest(&mut self, n: usize) {
        if let Some(block) = self.blocks.front_mut() {
            let n = n.min(block.len);
            block.samples.copy_within(n..block.len, 0);
            block.len -= n;
            block.first_sample += n as u64;
        }
    }

    /// Drops the oldest block, counting it and its samples as lost. Returns the samples dropped.
    pub fn drop_oldest(&mut self) -> Option<usize> {
        let block = self.pop_oldest()?;
        self.dropped_blocks += 1;
        self.dropped_samples += block.len as u64;
        Some(block.len)
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
        self.blocks.iter().map(|b| b.len as u64).sum()
    }

    /// Bytes charged for the blocks held.
    pub fn held_bytes(&self) -> u64 {
        (self.blocks.len() * self.block_bytes()) as u64
    }

    /// Samples ever written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Blocks dropped so far.
    pub fn dropped_blocks(&self) -> u64 {
        self.dropped_blocks
    }

    /// Samples dropped so far.
    pub fn dropped_samples(&self) -> u64 {
        self.dropped_samples
    }

    /// The blocks held, oldest first.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.blocks.iter()
    }

    /// Releases every block.
    pub fn clear(&mut self) {
        self.blocks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_store_drops_only_from_the_front() {
        let acc = Arc::new(Accountant::new(100, 0));
        let mut s = BlockStore::new(acc.clone(), 10);
        assert!(s.needs_block());
        assert_eq!(s.write(&[1; 5]), 0);
        s.grow().expect("grow");
        let data: Vec<i16> = (0..50).collect();
        let mut rest = &data[..];
        loop {
            let n = s.write(rest);
            rest = &rest[n..];
            if rest.is_empty() {
                break;
            }
            if s.grow().is_err() {
                s.drop_oldest();
                s.grow().expect("room after a drop");
            }
        }
        // 100 bytes = 5 blocks of 10 samples: all 50 fit exactly.
        assert_eq!((s.len(), s.dropped_blocks()), (5, 0));
        s.grow().unwrap_err();
        assert_eq!(s.drop_oldest(), Some(10));
        s.grow().expect("grow");
        assert_eq!(s.write(&[99; 3]), 3);
        let kept: Vec<i16> = s.blocks().flat_map(|b| b.samples().to_vec()).collect();
        let mut expected: Vec<i16> = (10..50).collect();
        expected.extend([99; 3]);
        assert_eq!(kept, expected);
        assert_eq!(s.blocks().next().map(Block::first_sample), Some(10));
        assert_eq!((s.dropped_samples(), s.written()), (10, 53));
        s.clear();
        assert_eq!(acc.memory_used(), 0);
    }
}
