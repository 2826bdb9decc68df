//! The SPSC ring, single-threaded, against a `VecDeque` model: contents, counters and
//! `take_missed` exact under both overflow policies.
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use w4l_core::ring::{Overflow, Ring};

#[derive(Arbitrary, Debug)]
enum Op {
    Push(u8),
    PushPartial(u8),
    Pop(u8),
    PopOne,
    TakeMissed,
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    overwrite: bool,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let overflow = if input.overwrite {
        Overflow::OverwriteOldest
    } else {
        Overflow::RejectNewest
    };
    let mut storage = vec![0u32; usize::from(input.capacity)];
    let Ok(mut ring) = Ring::new(&mut storage[..], overflow) else {
        assert_eq!(input.capacity, 0, "only an empty storage is refused");
        return;
    };
    let cap = ring.capacity();
    let (mut producer, mut consumer) = ring.split();
    let ring = consumer.handle();

    let mut model = VecDeque::new();
    let (mut pushed, mut popped, mut dropped, mut overwritten, mut missed) = (0, 0, 0, 0, 0);
    let mut next = 0u32;
    for op in input.ops {
        match op {
            Op::Push(n) | Op::PushPartial(n) => {
                let partial = matches!(op, Op::PushPartial(_));
                let data: Vec<u32> = (next..next + u32::from(n)).collect();
                let n = data.len();
                next += n as u32;
                let accepted = if partial {
                    producer.push_slice_partial(&data)
                } else {
                    producer.push_slice(&data)
                };
                match overflow {
                    Overflow::RejectNewest => {
                        let fit = n.min(cap - model.len());
                        assert_eq!(accepted, fit);
                        model.extend(&data[..fit]);
                        pushed += fit;
                        if !partial {
                            dropped += n - fit;
                            missed += n - fit;
                        }
                    }
                    Overflow::OverwriteOldest => {
                        assert_eq!(accepted, n);
                        model.extend(&data);
                        let excess = model.len().saturating_sub(cap);
                        model.drain(..excess);
                        pushed += n;
                        overwritten += excess;
                        missed += excess;
                    }
                }
            }
            Op::Pop(n) => {
                let mut out = vec![0u32; usize::from(n)];
                let got = consumer.pop_slice(&mut out);
                assert_eq!(got, out.len().min(model.len()));
                let want: Vec<u32> = model.drain(..got).collect();
                assert_eq!(&out[..got], &want[..]);
                popped += got;
            }
            Op::PopOne => {
                let want = model.pop_front();
                assert_eq!(consumer.pop(), want);
                popped += usize::from(want.is_some());
            }
            Op::TakeMissed => {
                assert_eq!(consumer.take_missed(), missed);
                missed = 0;
            }
        }
        let stats = ring.stats();
        assert_eq!(
            (stats.pushed, stats.popped, stats.dropped, stats.overwritten),
            (pushed, popped, dropped, overwritten)
        );
        assert_eq!(ring.len(), model.len());
        assert_eq!(stats.pushed, stats.popped + stats.overwritten + ring.len());
    }
});
