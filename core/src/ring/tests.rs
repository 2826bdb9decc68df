//! Unit tests of the ring. These are what Miri runs (`cargo +nightly miri test -p w4l-core
//! --lib ring`), so data sizes shrink under `cfg(miri)`.

use super::*;
use std::boxed::Box;
use std::string::ToString;
use std::vec::Vec;

fn check_invariant<S: Storage>(ring: &Ring<S>) {
    let s = ring.stats();
    assert_eq!(s.pushed, s.popped + s.overwritten + ring.len(), "{s:?}");
}

#[test]
fn zero_capacity_is_an_error() {
    let empty: &mut [f32] = &mut [];
    assert_eq!(
        Ring::new(empty, Overflow::RejectNewest).unwrap_err(),
        RingError::ZeroCapacity
    );
}

#[test]
fn split_again_after_the_halves_are_gone() {
    let mut storage = [0u32; 4];
    let mut ring = Ring::new(&mut storage[..], Overflow::RejectNewest).unwrap();
    {
        let (mut p, _c) = ring.split();
        assert_eq!(p.push_slice(&[1, 2, 3, 4, 5]), 4);
    }
    // The new halves carry on: same contents and counters; only the report of missed
    // samples starts afresh.
    let (mut p, mut c) = ring.split();
    assert_eq!((c.pop(), c.pop()), (Some(1), Some(2)));
    assert_eq!(c.take_missed(), 0);
    assert_eq!(p.push_slice(&[6, 7]), 2);
    let mut out = [0; 8];
    assert_eq!(c.pop_slice(&mut out), 4);
    assert_eq!(out[..4], [3, 4, 6, 7]);
    let s = c.stats();
    assert_eq!((s.pushed, s.popped, s.dropped), (6, 6, 1));
    assert_eq!(p.push_slice(&[8]), 1);
    assert_eq!(c.pop(), Some(8));
    check_invariant(c.handle());
}

#[test]
fn single_push_pop_and_full() {
    let mut storage = [0u32; 3];
    let mut ring = Ring::new(&mut storage[..], Overflow::RejectNewest).unwrap();
    let (mut p, mut c) = ring.split();
    let ring = c.handle();
    assert_eq!(c.pop(), None);
    for v in 1..=3 {
        p.push(v).unwrap();
    }
    assert_eq!(p.push(4), Err(PushError::Full(4)));
    assert_eq!(p.free(), 0);
    assert_eq!(p.len(), 3);
    assert_eq!(c.len(), 3);
    assert_eq!(c.pop(), Some(1));
    p.push(5).unwrap();
    assert_eq!(c.pop(), Some(2));
    assert_eq!(c.pop(), Some(3));
    assert_eq!(c.pop(), Some(5));
    assert_eq!(c.pop(), None);
    assert!(c.is_empty() && p.is_empty());
    let s = ring.stats();
    assert_eq!((s.pushed, s.popped, s.dropped, s.overwritten), (4, 4, 1, 0));
    assert_eq!(c.take_missed(), 1);
}

#[test]
fn wrap_around_reject_newest() {
    // A capacity that is not a power of two, many laps of the position counter.
    let mut storage = [0u32; 5];
    let mut ring = Ring::new(&mut storage[..], Overflow::RejectNewest).unwrap();
    let (mut p, mut c) = ring.split();
    let ring = c.handle();
    let mut next_in = 0u32;
    let mut next_out = 0u32;
    let mut dropped = 0;
    for round in 0..60usize {
        let len = round % 7;
        let chunk: Vec<u32> = (next_in..next_in + len as u32).collect();
        let n = p.push_slice(&chunk);
        dropped += len - n;
        next_in += n as u32;
        let mut out = [0u32; 4];
        let want = (round * 3) % 5;
        let got = c.pop_slice(&mut out[..want.min(4)]);
        for &v in &out[..got] {
            assert_eq!(v, next_out);
            next_out += 1;
        }
        check_invariant(ring);
    }
    let mut out = [0u32; 8];
    let got = c.pop_slice(&mut out);
    for &v in &out[..got] {
        assert_eq!(v, next_out);
        next_out += 1;
    }
    assert_eq!(next_out, next_in);
    let s = ring.stats();
    assert_eq!(s.dropped, dropped);
    assert_eq!(s.pushed, next_in as usize);
    assert_eq!(s.popped, next_out as usize);
    assert_eq!(c.take_missed(), dropped);
}

#[test]
fn partial_push_does_not_count_drops() {
    let mut storage = [0u32; 4];
    let mut ring = Ring::new(&mut storage[..], Overflow::RejectNewest).unwrap();
    let (mut p, mut c) = ring.split();
    let ring = c.handle();
    assert_eq!(p.push_slice_partial(&[1, 2, 3, 4, 5, 6]), 4);
    assert_eq!(p.push_slice_partial(&[5, 6]), 0);
    assert_eq!(ring.stats().dropped, 0);
    let mut out = [0; 3];
    assert_eq!(c.pop_slice(&mut out), 3);
    assert_eq!(p.push_slice_partial(&[5, 6]), 2);
    let mut out = [0; 8];
    assert_eq!(c.pop_slice(&mut out), 3);
    assert_eq!(&out[..3], &[4, 5, 6]);
    assert_eq!(c.take_missed(), 0);
    assert_eq!(c.pop_slice(&mut []), 0);
}

#[test]
fn overwrite_oldest_keeps_newest() {
    let mut storage = [0u32; 4];
    let mut ring = Ring::new(&mut storage[..], Overflow::OverwriteOldest).unwrap();
    let (mut p, mut c) = ring.split();
    let ring = c.handle();
    assert_eq!(p.push_slice(&[1, 2, 3]), 3);
    assert_eq!(p.push_slice(&[4, 5, 6]), 3);
    let mut out = [0; 4];
    assert_eq!(c.pop_slice(&mut out), 4);
    assert_eq!(out, [3, 4, 5, 6]);
    assert_eq!(c.take_missed(), 2);
    // Longer than the capacity: only the last `capacity` samples survive.
    assert_eq!(p.push_slice(&[7, 8, 9, 10, 11, 12, 13]), 7);
    p.push(14).unwrap();
    assert_eq!(c.pop_slice(&mut out), 4);
    assert_eq!(out, [11, 12, 13, 14]);
    assert_eq!(c.take_missed(), 4);
    assert_eq!(c.take_missed(), 0);
    let s = ring.stats();
    assert_eq!(
        (s.pushed, s.popped, s.dropped, s.overwritten),
        (14, 8, 0, 6)
    );
    check_invariant(ring);
}

#[test]
fn overwrite_wrap_around_many_laps() {
    let mut storage = [0u32; 3];
    let mut ring = Ring::new(&mut storage[..], Overflow::OverwriteOldest).unwrap();
    let (mut p, mut c) = ring.split();
    let ring = c.handle();
    let mut next_in = 0u32;
    let mut last_out: Option<u32> = None;
    for round in 0..80usize {
        let len = round % 5;
        let chunk: Vec<u32> = (next_in..next_in + len as u32).collect();
        assert_eq!(p.push_slice(&chunk), len);
        next_in += len as u32;
        let mut out = [0u32; 2];
        let got = c.pop_slice(&mut out[..round % 3]);
        if got != 0 {
            // Single-threaded, every loss is older than what is still in the ring, so the
            // gap before this batch is exactly the samples missed since the last batch.
            let missed = c.take_missed() as u32;
            let expected = last_out.map_or(0, |l| l + 1) + missed;
            assert_eq!(&out[..got], &[expected, expected + 1][..got]);
            last_out = Some(expected + got as u32 - 1);
        }
        check_invariant(ring);
    }
    let s = ring.stats();
    assert_eq!(s.pushed, next_in as usize);
    assert_eq!(s.dropped, 0);
}

#[test]
fn overwrite_discards_newest_while_consumer_busy() {
    // Simulate the race deterministically: the consumer has claimed (busy flag set).
    let mut storage = [0u32; 4];
    let mut ring = Ring::new(&mut storage[..], Overflow::OverwriteOldest).unwrap();
    let (mut p, mut c) = ring.split();
    let ring = c.handle();
    p.push_slice(&[1, 2, 3]);
    ring.consumer.0.head.fetch_or(BUSY, Ordering::AcqRel);
    // One slot free: 4 is kept, 5 and 6 (the newest) are discarded.
    assert_eq!(p.push_slice(&[4, 5, 6]), 3);
    assert_eq!(ring.stats().overwritten, 2);
    // Still busy and full: everything new is discarded.
    assert_eq!(p.push(7), Ok(()));
    assert_eq!(ring.stats().overwritten, 3);
    // The consumer finishes its (empty) copy.
    ring.consumer.0.head.fetch_and(!BUSY, Ordering::AcqRel);
    let mut out = [0; 4];
    assert_eq!(c.pop_slice(&mut out), 4);
    assert_eq!(out, [1, 2, 3, 4]);
    assert_eq!(c.take_missed(), 3);
    check_invariant(ring);
}

#[test]
fn ring_can_move_after_construction() {
    // Moving the ring (and the `&mut` storage inside it) must not invalidate the buffer
    // pointer under Miri's aliasing model.
    let mut storage = [0u32; 4];
    let ring = Ring::new(&mut storage[..], Overflow::OverwriteOldest).unwrap();
    let ring = Box::new(ring);
    let mut moved = *ring;
    let (mut p, mut c) = moved.split();
    p.push_slice(&[1, 2, 3, 4, 5]);
    assert_eq!(c.pop(), Some(2));
}

#[test]
fn two_threads_borrowed_ring_single_items() {
    for overflow in [Overflow::RejectNewest, Overflow::OverwriteOldest] {
        let mut storage = [0u32; 3];
        let mut ring = Ring::new(&mut storage[..], overflow).unwrap();
        let (mut p, mut c) = ring.split();
        let ring = c.handle();
        let total = if cfg!(miri) { 300 } else { 2000 };
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for v in 0..total {
                    while p.push_slice_partial(&[v]) == 0 {
                        std::thread::yield_now();
                    }
                }
                done.store(true, std::sync::atomic::Ordering::Release);
            });
            let mut last = None;
            let mut count = 0u32;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                match c.pop() {
                    Some(v) => {
                        assert!(last.is_none_or(|l| v > l));
                        last = Some(v);
                        count += 1;
                    }
                    None if finished => break,
                    None => std::thread::yield_now(),
                }
            }
            assert_eq!(count as usize + c.take_missed(), total as usize);
            if overflow == Overflow::RejectNewest {
                assert_eq!(count, total);
            }
        });
        check_invariant(ring);
    }
}

#[test]
fn the_halves_and_the_ring_report_the_same_figures() {
    let mut storage = [0u8; 4];
    let mut ring = Ring::new(&mut storage[..], Overflow::default()).unwrap();
    assert_eq!(ring.overflow(), Overflow::RejectNewest);
    let (mut p, mut c) = ring.split();
    let ring = p.handle();
    assert!(p.is_empty() && c.is_empty() && ring.is_empty());
    assert_eq!(p.push_slice(&[1, 2, 3]), 3);
    assert_eq!((p.len(), p.free()), (3, 1));
    assert_eq!((c.len(), ring.len(), ring.free()), (3, 3, 1));
    assert_eq!(c.pop(), Some(1));
    assert_eq!((c.len(), c.stats().popped, p.stats().pushed), (2, 1, 3));
    assert_eq!((p.capacity(), c.capacity(), ring.capacity()), (4, 4, 4));
    assert_eq!(
        Ring::<&mut [f32]>::MAX_CAPACITY,
        1 << (usize::BITS - 2),
        "positions run to twice the capacity, and head's top bit is the busy flag"
    );
}

#[test]
fn names_and_messages() {
    assert_eq!(Overflow::OverwriteOldest.to_string(), "overwrite oldest");
    assert_eq!(Overflow::RejectNewest.to_string(), "reject newest");
    assert_eq!(PushError::Full(1u8).to_string(), "ring full");
    assert_eq!(
        RingError::ZeroCapacity.to_string(),
        "ring storage has zero capacity; give the ring at least one slot"
    );
}

#[test]
fn borrowed_slices_are_storage() {
    let mut samples = [0i16; 4];
    let mut storage: &mut [i16] = &mut samples;
    assert_eq!(Storage::len(&storage), 4);
    assert!(!Storage::is_empty(&storage));
    let ptr = Storage::as_mut_ptr(&mut storage);
    assert_eq!(
        ptr,
        Storage::as_mut_ptr(&mut storage),
        "the same pointer every call"
    );
    let empty: &mut [f32] = &mut [];
    assert!(Storage::is_empty(&empty));
}
