//! Loom model checks of the ring with one producer thread and one consumer thread, for both
//! overflow policies: data arrives in order, nothing is duplicated, counts are exact, and
//! (through the ring's loom slot tracker) no slot is read while it is written.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=/work/tgt/ring-loom cargo test -p w4l-core
//! --release --test ring_loom`
#![cfg(loom)]

use std::ops::Deref;

use loom::sync::Arc;
use loom::thread;
use w4l_core::ring::{Overflow, Ring, RingRef, Storage, split};

/// The host's storage: an owned heap slice.
struct HeapStorage(Box<[u32]>);

// SAFETY: the boxed slice's heap pointer is stable across moves, its items are initialised,
// and only the ring touches them.
unsafe impl Storage for HeapStorage {
    type Item = u32;
    fn as_mut_ptr(&mut self) -> *mut u32 {
        self.0.as_mut_ptr()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The host's shared handle.
#[derive(Clone)]
struct Shared(Arc<Ring<HeapStorage>>);

impl Deref for Shared {
    type Target = Ring<HeapStorage>;
    fn deref(&self) -> &Ring<HeapStorage> {
        &self.0
    }
}

// SAFETY: clones of an `Arc` share one allocation that does not move.
unsafe impl RingRef for Shared {
    type Storage = HeapStorage;
}

fn ring(cap: usize, overflow: Overflow) -> Shared {
    let storage = HeapStorage(vec![0; cap].into_boxed_slice());
    Shared(Arc::new(Ring::new(storage, overflow).unwrap()))
}

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
        let shared = ring(2, Overflow::RejectNewest);
        let (mut producer, mut consumer) = split(shared.clone()).unwrap();
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
        let s = shared.stats();
        assert_eq!(s.pushed, accepted.len());
        assert_eq!(s.popped, received.len());
        assert_eq!(s.dropped, 5 - accepted.len());
        assert_eq!(s.overwritten, 0);
        assert_eq!(missed, s.dropped);
        assert!(shared.is_empty());
    });
}

#[test]
fn overwrite_oldest_in_order_no_dups_exact_counts() {
    // Exhaustive takes ~80 s; 5 preemptions ~4 s.
    builder(Some(5)).check(|| {
        let shared = ring(2, Overflow::OverwriteOldest);
        let (mut producer, mut consumer) = split(shared.clone()).unwrap();
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
        let s = shared.stats();
        assert_eq!(s.pushed, 5);
        assert_eq!(s.popped, received.len());
        assert_eq!(s.dropped, 0);
        assert_eq!(received.len() + s.overwritten, 5, "{received:?} {s:?}");
        assert_eq!(missed, s.overwritten);
        assert!(shared.is_empty());
    });
}

#[test]
fn overwrite_oldest_single_items() {
    builder(None).check(|| {
        let shared = ring(1, Overflow::OverwriteOldest);
        let (mut producer, mut consumer) = split(shared.clone()).unwrap();
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
        let s = shared.stats();
        assert_eq!(received.len() + s.overwritten, 3);
        assert_eq!(consumer.take_missed(), s.overwritten);
    });
}
