//! Tests of the heap ring: construction errors, and two threads sharing it through the `Arc`.
//! Miri runs them too, so data sizes shrink under `cfg(miri)`.

use super::*;
use std::format;
use std::string::ToString;
use std::sync::Arc;
use std::sync::atomic::{self, AtomicBool};
use std::vec::Vec;

/// Samples moved by the two-thread tests.
const THREAD_SAMPLES: u32 = if cfg!(miri) { 300 } else { 200_000 };

#[test]
fn capacity_errors_come_before_any_allocation() {
    let max = Ring::<HeapStorage<u64>>::MAX_CAPACITY;
    assert_eq!(
        HeapRing::<u64>::new(0, Overflow::RejectNewest).unwrap_err(),
        RingError::ZeroCapacity
    );
    for capacity in [max + 1, usize::MAX] {
        assert_eq!(
            HeapRing::<u64>::new(capacity, Overflow::OverwriteOldest).unwrap_err(),
            RingError::CapacityTooLarge { capacity, max }
        );
    }
    // 2^62 eight-byte samples: not even a valid layout.
    assert_eq!(
        HeapRing::<u64>::new(max, Overflow::RejectNewest).unwrap_err(),
        RingError::AllocFailed { capacity: max }
    );
}

#[test]
#[cfg_attr(miri, ignore = "Miri stops at an allocation larger than the machine")]
fn a_refused_allocation_is_an_error_not_an_abort() {
    // A valid layout (2^62 bytes) that no allocator grants.
    let capacity = Ring::<HeapStorage<u8>>::MAX_CAPACITY;
    let err = HeapRing::<u8>::new(capacity, Overflow::RejectNewest).unwrap_err();
    assert_eq!(err, RingError::AllocFailed { capacity });
    assert!(err.to_string().contains("ask for a smaller ring"), "{err}");
}

#[test]
fn max_capacity_of_zero_sized_items_works() {
    // Zero-sized items need no memory, so the largest capacity can be exercised.
    let max = Ring::<HeapStorage<()>>::MAX_CAPACITY;
    let (mut p, mut c) = HeapRing::<()>::new(max, Overflow::OverwriteOldest).unwrap();
    assert_eq!(p.push_slice(&[(); 3]), 3);
    let mut out = [(); 5];
    assert_eq!(c.pop_slice(&mut out), 3);
    assert!(c.is_empty() && c.capacity() == max);
}

#[test]
fn halves_are_send_and_static() {
    fn send_static<X: Send + 'static>(_: &X) {}
    let (p, c) = HeapRing::<f32>::new(4, Overflow::RejectNewest).unwrap();
    send_static(&p);
    send_static(&c);
    send_static(&p.handle());
}

#[test]
fn handles_watch_the_same_ring() {
    let (mut p, c) = HeapRing::<u32>::new(2, Overflow::RejectNewest).unwrap();
    let ring = c.handle();
    assert_eq!(p.push_slice(&[1, 2, 3]), 2);
    assert_eq!(p.stats(), c.stats());
    assert_eq!(ring.stats(), c.stats());
    assert_eq!((ring.len(), ring.free(), ring.capacity()), (2, 0, 2));
    assert!(format!("{ring:?}").contains("capacity: 2"));
    assert!(format!("{p:?}").contains("dropped: 1"));
    assert!(format!("{c:?}").contains("popped: 0"));
    // The ring outlives both halves while a handle holds it.
    drop((p, c));
    assert_eq!(ring.stats().dropped, 1);
}

/// A producer thread sends `0..THREAD_SAMPLES` in chunks, then raises `done`; the consumer
/// drains until `done` is up and the ring is empty. (An end-of-stream *sample* would not do:
/// under `OverwriteOldest` it may itself be discarded by the busy race.) Returns what the
/// consumer saw, how many samples it was told it missed, and the ring's final counters.
fn run_threads(overflow: Overflow, cap_chunk: usize) -> (Vec<u32>, usize, crate::ring::RingStats) {
    let (mut p, mut c) = HeapRing::<u32>::new(8, overflow).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let producer_done = done.clone();
    let producer = std::thread::spawn(move || {
        let mut next = 0u32;
        while next < THREAD_SAMPLES {
            let len = (next as usize % cap_chunk + 1).min((THREAD_SAMPLES - next) as usize);
            let chunk: Vec<u32> = (next..next + len as u32).collect();
            let mut sent = 0;
            while sent < len {
                sent += p.push_slice_partial(&chunk[sent..]);
                if sent < len {
                    std::thread::yield_now();
                }
            }
            next += len as u32;
        }
        producer_done.store(true, atomic::Ordering::Release);
    });
    let mut seen = Vec::new();
    let mut missed = 0;
    let mut out = [0u32; 7];
    loop {
        // Read `done` before popping: once it is up, an empty pop means the end.
        let finished = done.load(atomic::Ordering::Acquire);
        let n = c.pop_slice(&mut out[..(seen.len() % 7) + 1]);
        missed += c.take_missed();
        seen.extend_from_slice(&out[..n]);
        if n == 0 {
            if finished {
                break;
            }
            std::thread::yield_now();
        }
    }
    producer.join().unwrap();
    missed += c.take_missed();
    let stats = c.stats();
    assert_eq!(stats.pushed, stats.popped + stats.overwritten + c.len());
    (seen, missed, stats)
}

#[test]
fn two_threads_reject_newest_in_order() {
    let (seen, missed, s) = run_threads(Overflow::RejectNewest, 5);
    assert_eq!(missed, 0);
    assert_eq!(seen.len(), THREAD_SAMPLES as usize);
    assert!(seen.iter().enumerate().all(|(i, &v)| v == i as u32));
    assert_eq!(s.pushed, THREAD_SAMPLES as usize);
    assert_eq!(s.popped, THREAD_SAMPLES as usize);
}

#[test]
fn two_threads_overwrite_oldest_no_dups_exact_counts() {
    let (seen, missed, s) = run_threads(Overflow::OverwriteOldest, 11);
    // Strictly increasing: in order, nothing duplicated.
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(s.pushed, THREAD_SAMPLES as usize);
    assert_eq!(s.popped, seen.len());
    assert_eq!(s.overwritten, missed);
    assert_eq!(seen.len() + missed, THREAD_SAMPLES as usize);
    assert_eq!(s.dropped, 0);
}
