//! Buffer tracker: capacity and duplicate errors, victim order, and that releasing an
//! entry frees its accountant reservation for real.

use std::sync::Arc;

use proptest::prelude::*;
use w4l_core::accountant::{Accountant, Category, Reservation};
use w4l_core::tracker::{BufferId, Order, Priority, RegisterErrorKind, Tracked, Tracker};

fn id(n: u64) -> BufferId {
    BufferId(n)
}

#[test]
fn capacity_and_duplicates_are_errors_and_hand_the_payload_back() {
    let acc = Accountant::new(1000, 0);
    let mut t: Tracker<Reservation<&Accountant>, 2> = Tracker::new();
    t.register(
        id(1),
        0,
        Priority::Normal,
        acc.try_reserve(Category::Audio, 100).unwrap(),
    )
    .unwrap();
    t.register(
        id(2),
        0,
        Priority::Normal,
        acc.try_reserve(Category::Audio, 100).unwrap(),
    )
    .unwrap();
    assert!(t.is_full());

    let err = t
        .register(
            id(3),
            0,
            Priority::Normal,
            acc.try_reserve(Category::Audio, 50).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.kind, RegisterErrorKind::Full { capacity: 2 });
    assert_eq!(err.id, id(3));
    assert_eq!(err.payload.bytes(), 50);
    assert_eq!(
        acc.memory_used(),
        250,
        "the refused payload is still held by the caller"
    );
    let text = err.to_string();
    assert!(!text.contains('\n'));
    assert!(text.contains("all 2 slots are taken"));
    drop(err);
    assert_eq!(
        acc.memory_used(),
        200,
        "dropping the error frees the refused reservation"
    );

    t.release(id(2)).unwrap();
    let err = t
        .register(
            id(1),
            0,
            Priority::Normal,
            acc.try_reserve(Category::Audio, 10).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.kind, RegisterErrorKind::Duplicate(id(1)));
    assert!(err.to_string().contains("already tracked"));
    assert_eq!(t.len(), 1);

    let unknown = t.release(id(2)).unwrap_err();
    assert_eq!((unknown.id, unknown.tracked), (id(2), 1));
}

#[test]
fn zero_capacity_tracker_refuses_everything() {
    let mut t: Tracker<usize, 0> = Tracker::new();
    let err = t.register(id(1), 0, Priority::Low, 1).unwrap_err();
    assert_eq!(err.kind, RegisterErrorKind::Full { capacity: 0 });
    let mut out = [id(0); 2];
    let s = t.select_victims(Order::LargestFirst, true, 1, &mut out);
    assert_eq!((s.count, s.bytes), (0, 0));
    assert_eq!(t.stats(0).average_bytes, 0);
}

#[test]
fn ids_priorities_and_payload_sizes() {
    assert!(id(1) < id(2));
    assert_eq!(id(7).to_string(), "#7");
    assert!(Priority::Low < Priority::Normal && Priority::Normal < Priority::High);
    assert_eq!(4096usize.tracked_bytes(), 4096);
    assert_eq!((16usize, "the buffer itself").tracked_bytes(), 16);
}

#[test]
fn entries_queries_and_totals() {
    let mut t: Tracker<usize, 4> = Tracker::new();
    assert!(t.is_empty() && !t.is_full());
    assert_eq!((t.len(), t.capacity(), t.average_bytes()), (0, 4, None));
    assert!(t.get(id(1)).is_none() && t.oldest().is_none() && t.largest().is_none());
    let s = t.stats(0);
    assert_eq!(
        (s.count, s.capacity, s.oldest, s.largest),
        (0, 4, None, None)
    );

    t.register(id(1), 10, Priority::Low, 100).unwrap();
    t.register(id(2), 5, Priority::High, 300).unwrap();
    t.register(id(3), 5, Priority::Low, 300).unwrap();
    assert_eq!(
        (t.len(), t.total_bytes(), t.average_bytes()),
        (3, 700, Some(233))
    );
    assert_eq!(t.iter().map(|e| e.payload).sum::<usize>(), 700);
    // Ties go to the smaller id.
    assert_eq!(
        (t.oldest().unwrap().id, t.largest().unwrap().id),
        (id(2), id(2))
    );
    let e = t.get(id(2)).unwrap();
    assert_eq!(
        (e.id, e.bytes(), e.created_ms, e.priority),
        (id(2), 300, 5, Priority::High)
    );
    assert_eq!(
        (e.age_ms(250), e.age_ms(1)),
        (245, 0),
        "an earlier now is age 0"
    );
    let s = t.stats(20);
    assert_eq!((s.count, s.total_bytes, s.average_bytes), (3, 700, 233));
    assert_eq!(
        (s.oldest, s.oldest_age_ms, s.largest),
        (Some(id(2)), 15, Some(id(2)))
    );

    t.set_priority(id(2), Priority::Low).unwrap();
    assert_eq!(t.get(id(2)).unwrap().priority, Priority::Low);
    let err = t.set_priority(id(9), Priority::Low).unwrap_err();
    assert_eq!((err.id, err.tracked), (id(9), 3));
    assert!(err.to_string().contains("#9"));

    // Releasing one in the middle keeps every other entry.
    assert_eq!(t.release(id(1)).unwrap().payload, 100);
    assert!(!t.contains(id(1)) && t.contains(id(2)) && t.contains(id(3)));
    t.register(id(4), 0, Priority::Normal, usize::MAX).unwrap();
    t.register(id(5), 0, Priority::Normal, 1).unwrap();
    assert!(t.is_full());
    assert_eq!(t.total_bytes(), usize::MAX, "the total saturates");
    let err = t.register(id(6), 0, Priority::Low, 7).unwrap_err();
    assert_eq!(
        (err.kind, err.payload),
        (RegisterErrorKind::Full { capacity: 4 }, 7)
    );
    assert!(err.to_string().starts_with("cannot track buffer #6"));
}

/// Six buffers: (id, created_ms, priority, bytes).
const BUFFERS: [(u64, u64, Priority, usize); 6] = [
    (10, 500, Priority::High, 4000),
    (11, 100, Priority::Normal, 1000),
    (12, 300, Priority::Low, 3000),
    (13, 100, Priority::Low, 2000),
    (14, 700, Priority::Normal, 3000),
    (15, 50, Priority::High, 500),
];

fn filled() -> Tracker<usize, 8> {
    let mut t = Tracker::new();
    for (n, at, p, bytes) in BUFFERS {
        t.register(id(n), at, p, bytes).unwrap();
    }
    t
}

fn pick(t: &Tracker<usize, 8>, order: Order, by_priority: bool, bytes: usize) -> Vec<u64> {
    let mut out = [id(0); 8];
    let s = t.select_victims(order, by_priority, bytes, &mut out);
    let ids: Vec<u64> = out[..s.count].iter().map(|b| b.0).collect();
    let covered: usize = ids.iter().map(|n| t.get(id(*n)).unwrap().payload).sum();
    assert_eq!(s.bytes, covered);
    ids
}

#[test]
fn victims_oldest_first_ties_by_id() {
    let t = filled();
    assert_eq!(pick(&t, Order::OldestFirst, false, 1), [15]);
    assert_eq!(pick(&t, Order::OldestFirst, false, 3500), [15, 11, 13]);
    assert_eq!(
        pick(&t, Order::OldestFirst, false, usize::MAX),
        [15, 11, 13, 12, 10, 14]
    );
}

#[test]
fn victims_largest_first_ties_by_id() {
    let t = filled();
    assert_eq!(pick(&t, Order::LargestFirst, false, 4000), [10]);
    assert_eq!(pick(&t, Order::LargestFirst, false, 4001), [10, 12]);
    assert_eq!(
        pick(&t, Order::LargestFirst, false, usize::MAX),
        [10, 12, 14, 13, 11, 15]
    );
}

#[test]
fn victims_lowest_priority_first() {
    let t = filled();
    assert_eq!(
        pick(&t, Order::OldestFirst, true, usize::MAX),
        [13, 12, 11, 14, 15, 10]
    );
    assert_eq!(pick(&t, Order::LargestFirst, true, 5000), [12, 13]);
    assert_eq!(pick(&t, Order::LargestFirst, true, 5001), [12, 13, 14]);
}

#[test]
fn victims_stop_at_zero_bytes_and_full_output() {
    let t = filled();
    assert!(pick(&t, Order::OldestFirst, false, 0).is_empty());
    let mut out = [id(0); 2];
    let s = t.select_victims(Order::OldestFirst, false, usize::MAX, &mut out);
    assert_eq!((s.count, s.bytes), (2, 1500));
    assert_eq!(out, [id(15), id(11)]);
}

#[test]
fn stats_and_lookups() {
    let t = filled();
    let s = t.stats(1000);
    assert_eq!(s.count, 6);
    assert_eq!(s.capacity, 8);
    assert_eq!(s.total_bytes, 13_500);
    assert_eq!(s.average_bytes, 2250);
    assert_eq!((s.oldest, s.oldest_age_ms), (Some(id(15)), 950));
    assert_eq!(s.largest, Some(id(10)));
    assert_eq!(t.oldest().unwrap().id, id(15));
    assert!(t.contains(id(12)) && !t.contains(id(99)));
}

#[test]
fn release_frees_the_reservation_for_real() {
    let acc = Arc::new(Accountant::new(10_000, 0).with_limit(Category::Audio, 6000));
    let mut t: Tracker<(Reservation<Arc<Accountant>>, Vec<f32>), 4> = Tracker::new();
    for (n, bytes) in [(1u64, 2000usize), (2, 3000), (3, 1000)] {
        let r = Accountant::try_reserve_in(Arc::clone(&acc), Category::Audio, bytes).unwrap();
        let buffer = vec![0.0f32; bytes / 4];
        t.register(id(n), n * 10, Priority::Normal, (r, buffer))
            .unwrap();
    }
    assert_eq!(t.total_bytes(), 6000);
    assert_eq!(acc.used(Category::Audio), 6000);
    // The audio limit is reached: a new buffer is refused...
    let err = Accountant::try_reserve_in(Arc::clone(&acc), Category::Audio, 2500).unwrap_err();
    assert_eq!(err.available, 0);

    // ...so the host frees the oldest until 2500 bytes are covered, then retries.
    let mut victims = [id(0); 4];
    let s = t.select_victims(Order::OldestFirst, false, err.requested, &mut victims);
    assert_eq!(&victims[..s.count], &[id(1), id(2)]);
    for v in &victims[..s.count] {
        let entry = t.release(*v).unwrap();
        assert_eq!(entry.id, *v);
        drop(entry);
    }
    assert_eq!(acc.used(Category::Audio), 1000);
    assert_eq!(t.total_bytes(), 1000);
    let r = Accountant::try_reserve_in(Arc::clone(&acc), Category::Audio, 2500).unwrap();
    t.register(id(4), 40, Priority::High, (r, Vec::new()))
        .unwrap();
    assert_eq!(acc.used(Category::Audio), 3500);

    drop(t);
    let f = acc.figures();
    assert_eq!((f.memory_used, f.live), (0, 0));
    assert_eq!(Arc::strong_count(&acc), 1);
}

proptest! {
    /// Whatever is registered and released, the tracker's total equals the accountant's
    /// usage and victim selection covers the request whenever the tracker holds enough.
    #[test]
    fn tracker_total_matches_accountant(
        ops in proptest::collection::vec((0u64..12, 0usize..500, any::<bool>(), 0u8..3), 0..60),
        want in 0usize..3000,
        by_priority in any::<bool>(),
        largest in any::<bool>(),
    ) {
        let acc = Accountant::new(4000, 0);
        let mut t: Tracker<Reservation<&Accountant>, 6> = Tracker::new();
        for (step, (n, bytes, release, p)) in ops.into_iter().enumerate() {
            if release {
                let _ = t.release(id(n));
            } else if let Ok(r) = acc.try_reserve(Category::Audio, bytes) {
                let p = [Priority::Low, Priority::Normal, Priority::High][usize::from(p)];
                let _ = t.register(id(n), step as u64, p, r);
            }
            prop_assert_eq!(t.total_bytes(), acc.memory_used());
            prop_assert!(t.len() <= 6);
        }
        let order = if largest { Order::LargestFirst } else { Order::OldestFirst };
        let mut out = [id(0); 6];
        let s = t.select_victims(order, by_priority, want, &mut out);
        let mut ids: Vec<_> = out[..s.count].to_vec();
        ids.sort();
        ids.dedup();
        prop_assert_eq!(ids.len(), s.count, "a victim was picked twice");
        if t.total_bytes() >= want {
            prop_assert!(s.bytes >= want);
        } else {
            prop_assert_eq!(s.count, t.len());
        }
        // Minimal: without the last victim the request would not be covered.
        if s.count > 0 {
            let last = t.get(out[s.count - 1]).unwrap().bytes();
            prop_assert!(s.bytes - last < want);
        }
        for v in &out[..s.count] {
            drop(t.release(*v).unwrap());
        }
        prop_assert_eq!(t.total_bytes(), acc.memory_used());
    }
}
