//! The recorder (the earlier design's `AudioBufferManager`).

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
/// core policy) what to give up: [`pop_oldest`](Self::pop_oldest) hands the oldest block out —
/// today to be dropped (and counted), later to be spilled to a file — and the caller retries.
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
