//! Model test: random sequences of bulk and single pushes/pops of random lengths, across
//! many laps of the position counters, checked against a `VecDeque` model for both
//! overflow policies, counters and missed-sample reports included.

use std::collections::VecDeque;

use proptest::prelude::*;
use w4l_core::ring::{Overflow, PushError, Ring, RingStats};

#[derive(Clone, Debug)]
enum Op {
    PushSlice(usize),
    PushPartial(usize),
    Push,
    PopSlice(usize),
    Pop,
    TakeMissed,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..24).prop_map(Op::PushSlice),
        1 => (0usize..24).prop_map(Op::PushPartial),
        1 => Just(Op::Push),
        4 => (0usize..24).prop_map(Op::PopSlice),
        1 => Just(Op::Pop),
        1 => Just(Op::TakeMissed),
    ]
}

/// The reference: a bounded deque plus counters.
struct Model {
    cap: usize,
    overflow: Overflow,
    items: VecDeque<u32>,
    stats: RingStats,
    missed_seen: usize,
}

impl Model {
    /// Returns what `push_slice` should return.
    fn push(&mut self, data: &[u32], count_drops: bool) -> usize {
        match self.overflow {
            Overflow::RejectNewest => {
                let n = (self.cap - self.items.len()).min(data.len());
                self.items.extend(&data[..n]);
                self.stats.pushed += n;
                if count_drops {
                    self.stats.dropped += data.len() - n;
                }
                n
            }
            Overflow::OverwriteOldest => {
                self.items.extend(data);
                self.stats.pushed += data.len();
                while self.items.len() > self.cap {
                    self.items.pop_front();
                    self.stats.overwritten += 1;
                }
                data.len()
            }
        }
    }

    fn pop(&mut self, want: usize) -> Vec<u32> {
        let n = want.min(self.items.len());
        self.stats.popped += n;
        self.items.drain(..n).collect()
    }

    fn take_missed(&mut self) -> usize {
        let total = self.stats.dropped + self.stats.overwritten;
        let missed = total - self.missed_seen;
        self.missed_seen = total;
        missed
    }
}

fn run(cap: usize, overflow: Overflow, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut storage = vec![0u32; cap];
    let mut ring = Ring::new(&mut storage[..], overflow).unwrap();
    let (mut producer, mut consumer) = ring.split();
    let ring = consumer.handle();
    let mut model = Model {
        cap,
        overflow,
        items: VecDeque::new(),
        stats: RingStats::default(),
        missed_seen: 0,
    };
    let mut next = 0u32;
    let mut fresh = |len: usize| -> Vec<u32> {
        let v: Vec<u32> = (next..next + len as u32).collect();
        next += len as u32;
        v
    };
    for op in ops {
        match *op {
            Op::PushSlice(len) => {
                let data = fresh(len);
                prop_assert_eq!(producer.push_slice(&data), model.push(&data, true));
            }
            Op::PushPartial(len) => {
                let data = fresh(len);
                prop_assert_eq!(producer.push_slice_partial(&data), model.push(&data, false));
            }
            Op::Push => {
                let data = fresh(1);
                let expected = if model.push(&data, true) == 1 {
                    Ok(())
                } else {
                    Err(PushError::Full(data[0]))
                };
                prop_assert_eq!(producer.push(data[0]), expected);
            }
            Op::PopSlice(len) => {
                let mut out = vec![u32::MAX; len];
                let n = consumer.pop_slice(&mut out);
                prop_assert_eq!(&out[..n], &model.pop(len)[..]);
                prop_assert!(out[n..].iter().all(|&v| v == u32::MAX));
            }
            Op::Pop => {
                prop_assert_eq!(consumer.pop(), model.pop(1).first().copied());
            }
            Op::TakeMissed => {
                prop_assert_eq!(consumer.take_missed(), model.take_missed());
            }
        }
        prop_assert_eq!(ring.stats(), model.stats);
        prop_assert_eq!(ring.len(), model.items.len());
        prop_assert_eq!(consumer.len(), model.items.len());
        prop_assert_eq!(producer.len(), model.items.len());
        prop_assert_eq!(producer.free(), cap - model.items.len());
        let s = ring.stats();
        prop_assert_eq!(s.pushed, s.popped + s.overwritten + ring.len());
    }
    // Drain: whatever is left comes out in order.
    let mut rest = vec![0u32; cap + 1];
    let n = consumer.pop_slice(&mut rest);
    prop_assert_eq!(&rest[..n], &model.pop(cap + 1)[..]);
    prop_assert!(consumer.is_empty());
    prop_assert_eq!(consumer.take_missed(), model.take_missed());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn reject_newest_matches_model(cap in 1usize..12, ops in prop::collection::vec(op(), 1..120)) {
        run(cap, Overflow::RejectNewest, &ops)?;
    }

    #[test]
    fn overwrite_oldest_matches_model(cap in 1usize..12, ops in prop::collection::vec(op(), 1..120)) {
        run(cap, Overflow::OverwriteOldest, &ops)?;
    }
}
