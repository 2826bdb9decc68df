//! Loom model checks of the ring with one producer thread and one consumer thread, for both
//! overflow policies: data arrives in order, nothing is duplicated, counts are exact, and
//! (through the ring's loom slot tracker) no slot is read while it is written. The ring is
//! the core's own `HeapRing`, whose `Arc` is loom's under `--cfg loom`.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=/work/tgt/ring-loom cargo test -p w4l-core
//! --release --test ring_loom`
#![cfg(loom)]

use loom::thread;
use w4l_core::ring::{HeapRing, Overflow};

/// A model builder: exhaustive (`None`) or bounded to `bound` preemptions, unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise.
fn builder(bound: Option<usize>) -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        b.preemption_bound = bound;
    }
    b
}

/// The producer's script: chunks pushed one after the other (values 1..=5).
const CHUNKS: [&[u32]; 3] = [&[1, 2], &[3], &[4, 5]];

#[test]
fn reject_newest_in_order_exact_counts() {
    builder(None).check(|| {
        let (mut producer, mut consumer) = HeapRing::new(2, Overflow::RejectNewest).unwrap();
        let t = thread::spawn(move || {
            let mut accepted = Vec::new();
            for chunk in CHUNKS {
                let n = producer.push_slice(chunk);
                accepted.extend_from_slice(&chunk[..n]);
            }
            accepted
        });
        let mut received = Vec::new();
        let mut missed = 0;
        for _ in 0..2 {
            let mut out = [0u32; 2];
            let n = consumer.pop_slice(&mut out);
            received.extend_from_slice(&out[..n]);
            missed += consumer.take_missed();
        }
        let accepted = t.join().unwrap();
        let mut out = [0u32; 4];
        let n = consumer.pop_slice(&mut out);
        received.extend_from_slice(&out[..n]);
        missed += consumer.take_missed();

        assert_eq!(received, accepted);
        let s = consumer.stats();
        assert_eq!(s.pushed, accepted.len());
        assert_eq!(s.popped, received.len());
        assert_eq!(s.dropped, 5 - accepted.len());
        assert_eq!(s.overwritten, 0);
        assert_eq!(missed, s.dropped);
        assert!(consumer.is_empty());
    });
}

#[test]
fn overwrite_oldest_in_order_no_dups_exact_counts() {
    // Exhaustive takes ~80 s; 5 preemptions ~4 s.
    builder(Some(5)).check(|| {
        let (mut producer, mut consumer) = HeapRing::new(2, Overflow::OverwriteOldest).unwrap();
        let t = thread::spawn(move || {
            for chunk in CHUNKS {
                assert_eq!(producer.push_slice(chunk), chunk.len());
            }
        });
        let mut received = Vec::new();
        let mut missed = 0;
        for _ in 0..2 {
            let mut out = [0u32; 2];
            let n = consumer.pop_slice(&mut out);
            received.extend_from_slice(&out[..n]);
            missed += consumer.take_missed();
        }
        t.join().unwrap();
        let mut out = [0u32; 4];
        let n = consumer.pop_slice(&mut out);
        received.extend_from_slice(&out[..n]);
        missed += consumer.take_missed();

        // In order, nothing duplicated, only real values.
        assert!(received.windows(2).all(|w| w[0] < w[1]), "{received:?}");
        assert!(received.iter().all(|v| (1..=5).contains(v)));
        let s = consumer.stats();
        assert_eq!(s.pushed, 5);
        assert_eq!(s.popped, received.len());
        assert_eq!(s.dropped, 0);
        assert_eq!(received.len() + s.overwritten, 5, "{received:?} {s:?}");
        assert_eq!(missed, s.overwritten);
        assert!(consumer.is_empty());
    });
}

#[test]
fn overwrite_oldest_single_items() {
    builder(None).check(|| {
        let (mut producer, mut consumer) = HeapRing::new(1, Overflow::OverwriteOldest).unwrap();
        let t = thread::spawn(move || {
            for v in 1..=3 {
                producer.push(v).unwrap();
            }
        });
        let mut received = Vec::new();
        for _ in 0..2 {
            received.extend(consumer.pop());
        }
        t.join().unwrap();
        received.extend(consumer.pop());
        assert!(received.windows(2).all(|w| w[0] < w[1]), "{received:?}");
        let s = consumer.stats();
        assert_eq!(received.len() + s.overwritten, 3);
        assert_eq!(consumer.take_missed(), s.overwritten);
    });
}
