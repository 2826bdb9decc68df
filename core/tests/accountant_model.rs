//! Model test of the accountant: random sequences of reserve / grow / shrink / resize /
//! split / merge / drop across all categories, checked step by step against a plain model.
//!
//! After every step: the memory total never exceeds the budget, no category exceeds its
//! limit (disk: its budget), usage equals the sum of the live reservations, and every
//! figure (used, peak, live, granted, refused) equals the model's exactly. Refusals are
//! checked field by field (bound, available, limit, holders in order).

use std::ops::Deref;
use std::sync::Arc;

use proptest::prelude::*;
use w4l_core::accountant::{
    Accountant, Bound, Category, Figures, ReduceOp, Reservation, ReserveError, ReserveOp,
};

#[derive(Clone, Debug)]
enum Op {
    Reserve(usize, usize),
    Grow(usize, usize),
    Shrink(usize, usize),
    Resize(usize, usize),
    Split(usize, usize),
    Merge(usize, usize),
    Drop(usize),
}

fn bytes() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..400,
        1 => 0usize..3,
        1 => (usize::MAX - 4)..=usize::MAX,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let idx = 0usize..16;
    prop_oneof![
        4 => (0usize..4, bytes()).prop_map(|(c, b)| Op::Reserve(c, b)),
        2 => (idx.clone(), bytes()).prop_map(|(i, b)| Op::Grow(i, b)),
        2 => (idx.clone(), bytes()).prop_map(|(i, b)| Op::Shrink(i, b)),
        1 => (idx.clone(), bytes()).prop_map(|(i, b)| Op::Resize(i, b)),
        2 => (idx.clone(), bytes()).prop_map(|(i, b)| Op::Split(i, b)),
        1 => (idx.clone(), idx.clone()).prop_map(|(i, j)| Op::Merge(i, j)),
        3 => idx.prop_map(Op::Drop),
    ]
}

/// The model: what every figure should be.
#[derive(Default)]
struct Model {
    memory_budget: usize,
    disk_budget: usize,
    limits: [Option<usize>; 4],
    used: [usize; 4],
    peak: [usize; 4],
    memory_peak: usize,
    granted: [usize; 4],
    ended: [usize; 4],
    refused: [usize; 4],
}

impl Model {
    fn memory_used(&self) -> usize {
        self.used[..3].iter().sum()
    }

    fn cap(&self, c: Category) -> usize {
        let limit = self.limits[c.index()].unwrap_or(usize::MAX);
        if c.is_memory() {
            limit
        } else {
            limit.min(self.disk_budget)
        }
    }

    /// Returns the expected refusal (bound, limit, available), or charges the bytes.
    fn charge(&mut self, c: Category, bytes: usize) -> Result<(), (Bound, usize, usize)> {
        let i = c.index();
        let cap = self.cap(c);
        if c.is_memory() {
            let total = self.memory_used();
            if total
                .checked_add(bytes)
                .is_none_or(|t| t > self.memory_budget)
            {
                self.refused[i] += 1;
                return Err((
                    Bound::MemoryBudget,
                    self.memory_budget,
                    self.memory_budget - total,
                ));
            }
        }
        if self.used[i].checked_add(bytes).is_none_or(|u| u > cap) {
            self.refused[i] += 1;
            let bound = if !c.is_memory() && cap >= self.disk_budget {
                Bound::DiskBudget
            } else {
                Bound::CategoryLimit
            };
            return Err((bound, cap, cap - self.used[i]));
        }
        self.used[i] += bytes;
        self.peak[i] = self.peak[i].max(self.used[i]);
        self.memory_peak = self.memory_peak.max(self.memory_used());
        Ok(())
    }

    fn holders(&self, c: Category, live: &[(Category, usize)]) -> Vec<(Category, usize, usize)> {
        let cats: Vec<Category> = if c.is_memory() {
            Category::MEMORY.to_vec()
        } else {
            vec![Category::Disk]
        };
        let mut h: Vec<_> = cats
            .into_iter()
            .map(|c| {
                let n = live.iter().filter(|(lc, _)| *lc == c).count();
                (c, self.used[c.index()], n)
            })
            .collect();
        h.sort_by_key(|h| std::cmp::Reverse(h.1)); // stable: ties stay in category order
        h
    }
}

fn check_refusal(
    err: &ReserveError,
    op: ReserveOp,
    c: Category,
    bytes: usize,
    expected: (Bound, usize, usize),
    holders: Vec<(Category, usize, usize)>,
) {
    assert_eq!(err.op, op);
    assert_eq!(err.category, c);
    assert_eq!(err.requested, bytes);
    assert_eq!((err.bound, err.limit, err.available), expected);
    let got: Vec<_> = err
        .holders
        .iter()
        .map(|h| (h.category, h.bytes, h.live))
        .collect();
    assert_eq!(got, holders);
    let text = err.to_string();
    assert!(!text.contains('\n'));
    assert!(text.starts_with("cannot reserve "));
}

fn check_figures(f: &Figures, m: &Model, live: &[(Category, usize)]) {
    // The invariants.
    assert!(f.memory_used <= f.memory_budget, "memory budget exceeded");
    assert!(f.disk_used <= f.disk_budget, "disk budget exceeded");
    for c in Category::ALL {
        let cf = f.category(c);
        if let Some(limit) = m.limits[c.index()] {
            assert!(cf.used <= limit, "{c} limit exceeded");
        }
        let sum: usize = live.iter().filter(|(lc, _)| *lc == c).map(|(_, b)| b).sum();
        assert_eq!(cf.used, sum, "{c} usage != sum of live reservations");
    }
    let mem_sum: usize = live
        .iter()
        .filter(|(c, _)| c.is_memory())
        .map(|(_, b)| b)
        .sum();
    assert_eq!(f.memory_used, mem_sum);
    // Exact figures.
    for c in Category::ALL {
        let i = c.index();
        let cf = f.category(c);
        assert_eq!(cf.used, m.used[i]);
        assert_eq!(cf.peak, m.peak[i], "{c} peak");
        assert_eq!(cf.limit, m.limits[i]);
        assert_eq!(cf.granted, m.granted[i], "{c} granted");
        assert_eq!(cf.live, m.granted[i] - m.ended[i], "{c} live");
        assert_eq!(cf.live, live.iter().filter(|(lc, _)| *lc == c).count());
        assert_eq!(cf.refused, m.refused[i], "{c} refused");
    }
    assert_eq!(f.memory_peak, m.memory_peak);
    assert_eq!(f.disk_peak, m.peak[3]);
    assert_eq!(f.live, live.len());
    assert_eq!(f.granted, m.granted.iter().sum::<usize>());
    assert_eq!(f.refused, m.refused.iter().sum::<usize>());
}

fn run<A: Deref<Target = Accountant> + Clone>(handle: A, limits: [Option<usize>; 4], ops: &[Op]) {
    let mut m = Model {
        memory_budget: handle.memory_budget(),
        disk_budget: handle.disk_budget(),
        limits,
        ..Model::default()
    };
    let mut live: Vec<Reservation<A>> = Vec::new();
    let shadow = |live: &Vec<Reservation<A>>| -> Vec<(Category, usize)> {
        live.iter().map(|r| (r.category(), r.bytes())).collect()
    };
    check_figures(&handle.figures(), &m, &[]);
    for op in ops {
        match *op {
            Op::Reserve(c, bytes) => {
                let c = Category::ALL[c];
                let before = shadow(&live);
                match (
                    Accountant::try_reserve_in(handle.clone(), c, bytes),
                    m.charge(c, bytes),
                ) {
                    (Ok(r), Ok(())) => {
                        assert_eq!((r.category(), r.bytes()), (c, bytes));
                        m.granted[c.index()] += 1;
                        live.push(r);
                    }
                    (Err(e), Err(exp)) => {
                        check_refusal(&e, ReserveOp::Reserve, c, bytes, exp, m.holders(c, &before))
                    }
                    (got, want) => panic!("reserve {c} {bytes}: got {got:?}, model {want:?}"),
                }
            }
            Op::Grow(i, bytes) if !live.is_empty() => {
                let i = i % live.len();
                let c = live[i].category();
                let old = live[i].bytes();
                let before = shadow(&live);
                match (live[i].grow(bytes), m.charge(c, bytes)) {
                    (Ok(()), Ok(())) => assert_eq!(live[i].bytes(), old + bytes),
                    (Err(e), Err(exp)) => {
                        assert_eq!(live[i].bytes(), old);
                        check_refusal(&e, ReserveOp::Grow, c, bytes, exp, m.holders(c, &before))
                    }
                    (got, want) => panic!("grow {c} {bytes}: got {got:?}, model {want:?}"),
                }
            }
            Op::Shrink(i, bytes) if !live.is_empty() => {
                let i = i % live.len();
                let c = live[i].category();
                let old = live[i].bytes();
                match live[i].shrink(bytes) {
                    Ok(()) => {
                        assert!(bytes <= old);
                        m.used[c.index()] -= bytes;
                        assert_eq!(live[i].bytes(), old - bytes);
                    }
                    Err(e) => {
                        assert!(bytes > old);
                        assert_eq!((e.op, e.requested, e.held), (ReduceOp::Shrink, bytes, old));
                        assert_eq!(live[i].bytes(), old);
                    }
                }
            }
            Op::Resize(i, bytes) if !live.is_empty() => {
                let i = i % live.len();
                let c = live[i].category();
                let old = live[i].bytes();
                let before = shadow(&live);
                if bytes >= old {
                    match (live[i].resize(bytes), m.charge(c, bytes - old)) {
                        (Ok(()), Ok(())) => {}
                        (Err(e), Err(exp)) => check_refusal(
                            &e,
                            ReserveOp::Grow,
                            c,
                            bytes - old,
                            exp,
                            m.holders(c, &before),
                        ),
                        (got, want) => panic!("resize {c} {bytes}: got {got:?}, model {want:?}"),
                    }
                } else {
                    live[i].resize(bytes).unwrap();
                    m.used[c.index()] -= old - bytes;
                }
            }
            Op::Split(i, bytes) if !live.is_empty() => {
                let i = i % live.len();
                let c = live[i].category();
                let old = live[i].bytes();
                match live[i].split(bytes) {
                    Ok(part) => {
                        assert_eq!((part.bytes(), live[i].bytes()), (bytes, old - bytes));
                        m.granted[c.index()] += 1;
                        live.push(part);
                    }
                    Err(e) => {
                        assert!(bytes > old);
                        assert_eq!((e.op, e.requested, e.held), (ReduceOp::Split, bytes, old));
                    }
                }
            }
            Op::Merge(i, j) if live.len() >= 2 => {
                let i = i % live.len();
                let j = j % live.len();
                if i != j {
                    let other = live.remove(j);
                    let i = if j < i { i - 1 } else { i };
                    let (ci, co, bo) = (live[i].category(), other.category(), other.bytes());
                    let old = live[i].bytes();
                    match live[i].merge(other) {
                        Ok(()) => {
                            assert_eq!(ci, co);
                            assert_eq!(live[i].bytes(), old + bo);
                            m.ended[ci.index()] += 1;
                        }
                        Err(back) => {
                            assert_ne!(ci, co);
                            live.push(back);
                        }
                    }
                }
            }
            Op::Drop(i) if !live.is_empty() => {
                let r = live.swap_remove(i % live.len());
                m.used[r.category().index()] -= r.bytes();
                m.ended[r.category().index()] += 1;
                if i % 2 == 0 {
                    drop(r);
                } else {
                    r.release();
                }
            }
            _ => {}
        }
        check_figures(&handle.figures(), &m, &shadow(&live));
        assert_eq!(handle.memory_used(), m.memory_used());
        for c in Category::ALL {
            assert_eq!(handle.used(c), m.used[c.index()]);
            let by_budget = if c.is_memory() {
                m.memory_budget - m.memory_used()
            } else {
                usize::MAX
            };
            let expected = m.cap(c).saturating_sub(m.used[c.index()]).min(by_budget);
            assert_eq!(handle.available(c), expected, "available({c})");
        }
    }
    let granted = m.granted;
    drop(live);
    let f = handle.figures();
    assert_eq!((f.memory_used, f.disk_used, f.live), (0, 0, 0));
    assert_eq!(f.granted, granted.iter().sum::<usize>());
}

fn build(memory: usize, disk: usize, limits: [Option<usize>; 4]) -> Accountant {
    let mut acc = Accountant::new(memory, disk);
    for c in Category::ALL {
        if let Some(limit) = limits[c.index()] {
            acc = acc.with_limit(c, limit);
        }
    }
    acc
}

fn limits() -> impl Strategy<Value = [Option<usize>; 4]> {
    [
        proptest::option::of(0usize..1500),
        proptest::option::of(0usize..1500),
        proptest::option::of(0usize..1500),
        proptest::option::of(0usize..1500),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn borrowed_handle_matches_model(
        memory in 0usize..2000,
        disk in 0usize..1500,
        limits in limits(),
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        let acc = build(memory, disk, limits);
        run(&acc, limits, &ops);
    }

    #[test]
    fn arc_handle_matches_model(
        memory in 0usize..2000,
        disk in 0usize..1500,
        limits in limits(),
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        let acc = Arc::new(build(memory, disk, limits));
        run(acc.clone(), limits, &ops);
        prop_assert_eq!(Arc::strong_count(&acc), 1, "reservations leaked handles");
    }

    /// Budgets that leave only a few spare bits in a category's word: the low bits of the
    /// granted and ended counters wrap every few events and carry into their high parts.
    #[test]
    fn counter_carries_match_model(
        memory_spare in 1u32..=8,
        disk_spare in 1u32..=12,
        limits in limits(),
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let acc = build(usize::MAX >> memory_spare, usize::MAX >> disk_spare, limits);
        run(&acc, limits, &ops);
    }

    #[test]
    fn huge_budgets_never_overflow(
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        let acc = Accountant::new(usize::MAX, usize::MAX);
        run(&acc, [None; 4], &ops);
    }
}

#[test]
fn refusal_message_is_one_helpful_line() {
    let acc = Accountant::new(1000, 100).with_limit(Category::Audio, 300);
    let _m = acc.try_reserve(Category::Model, 600).unwrap();
    let _a = acc.try_reserve(Category::Audio, 250).unwrap();
    let e = acc.try_reserve(Category::Other, 200).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot reserve 200 bytes of other: 150 of the 1000-byte memory budget available; \
         largest holders: model 600 B in 1, audio 250 B in 1, other 0 B in 0; \
         release or shrink reservations, or raise the memory budget"
    );
    let e = acc.try_reserve(Category::Audio, 100).unwrap_err();
    assert_eq!(e.bound, Bound::CategoryLimit);
    assert!(
        e.to_string()
            .ends_with("release or shrink audio reservations, or raise the audio limit")
    );
    let e = acc.try_reserve(Category::Disk, 101).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot reserve 101 bytes of disk: 100 of the 100-byte disk budget available; \
         largest holders: disk 0 B in 0; delete spill files, or raise the disk budget"
    );
}

#[test]
fn memory_and_disk_are_separate() {
    let acc = Accountant::new(10, 10);
    let _m = acc.try_reserve(Category::Model, 10).unwrap();
    let d = acc.try_reserve(Category::Disk, 10).unwrap();
    assert_eq!((acc.memory_used(), acc.disk_used()), (10, 10));
    drop(d);
    assert_eq!((acc.memory_used(), acc.disk_used()), (10, 0));
}

#[test]
fn reservations_can_live_in_long_lived_structs() {
    struct Session {
        audio: Reservation<Arc<Accountant>>,
        spill: Option<Reservation<Arc<Accountant>>>,
    }
    let acc = Arc::new(Accountant::new(1 << 20, 1 << 20));
    let mut s = Session {
        audio: Accountant::try_reserve_in(Arc::clone(&acc), Category::Audio, 4096).unwrap(),
        spill: None,
    };
    let moved = s.audio.split(1024).unwrap();
    s.spill = Some(Accountant::try_reserve_in(Arc::clone(&acc), Category::Disk, 1024).unwrap());
    let handle = std::thread::spawn(move || drop(moved));
    handle.join().unwrap();
    assert_eq!((acc.used(Category::Audio), acc.disk_used()), (3072, 1024));
    drop(s);
    assert_eq!(acc.figures().live, 0);
    assert_eq!(Arc::strong_count(&acc), 1);
}

// --- Small facts of the API (formerly doc examples on accessors, errors and figures) ----

/// The four categories: which share the memory budget, their order and names.
#[test]
fn categories_names_and_indices() {
    assert!(Category::Audio.is_memory());
    assert!(!Category::Disk.is_memory());
    assert_eq!(Category::Model.index(), 1);
    assert_eq!(Category::Other.to_string(), "other");
    assert_eq!(Category::ALL.len(), 4);
    assert!(
        Category::ALL
            .iter()
            .enumerate()
            .all(|(i, c)| c.index() == i)
    );
    assert!(Category::MEMORY.iter().all(|c| c.is_memory()));
    assert_eq!(Category::Disk.index(), 3);
    assert!(Category::Other.is_memory());
    assert_eq!(Category::Audio.name(), "audio");
}

/// A refusal names the operation, the bound that refused, and the holders, largest first.
#[test]
fn refusals_say_what_and_who_holds_it() {
    {
        let acc = Accountant::new(100, 0);
        assert_eq!(
            acc.try_reserve(Category::Model, 101).unwrap_err().bound,
            Bound::MemoryBudget
        );
        assert_eq!(
            acc.try_reserve(Category::Disk, 1).unwrap_err().bound,
            Bound::DiskBudget
        );
    }
    {
        let acc = Accountant::new(10, 0);
        let mut r = acc.try_reserve(Category::Other, 10).unwrap();
        assert_eq!(r.grow(1).unwrap_err().op, ReserveOp::Grow);
    }
    {
        let acc = Accountant::new(10, 0);
        let _m = acc.try_reserve(Category::Model, 8).unwrap();
        let err = acc.try_reserve(Category::Audio, 4).unwrap_err();
        let top = err.holders.largest().unwrap();
        assert_eq!((top.category, top.bytes, top.live), (Category::Model, 8, 1));
    }
    {
        let acc = Accountant::new(100, 0);
        let _a = acc.try_reserve(Category::Audio, 30).unwrap();
        let _m = acc.try_reserve(Category::Model, 60).unwrap();
        let holders = acc.holders(Category::Other);
        let order: Vec<_> = holders.iter().map(|h| (h.category, h.bytes)).collect();
        assert_eq!(
            order,
            [
                (Category::Model, 60),
                (Category::Audio, 30),
                (Category::Other, 0)
            ]
        );
    }
    {
        let acc = Accountant::new(1, 1);
        assert_eq!(acc.holders(Category::Audio).as_slice().len(), 3);
        assert_eq!(acc.holders(Category::Disk).as_slice().len(), 1);
    }
    {
        let acc = Accountant::new(1, 1);
        assert_eq!(
            acc.holders(Category::Model)
                .iter()
                .map(|h| h.bytes)
                .sum::<usize>(),
            0
        );
    }
    {
        let acc = Accountant::new(8, 8);
        let _d = acc.try_reserve(Category::Disk, 5).unwrap();
        assert_eq!(acc.holders(Category::Disk).largest().unwrap().bytes, 5);
    }
    {
        let acc = Accountant::new(1000, 0);
        let _model = acc.try_reserve(Category::Model, 900).unwrap();
        let err = acc.try_reserve(Category::Audio, 200).unwrap_err();
        assert_eq!(
            (err.requested, err.available, err.bound, err.limit),
            (200, 100, Bound::MemoryBudget, 1000)
        );
        assert!(
            err.to_string()
                .starts_with("cannot reserve 200 bytes of audio")
        );
    }
    {
        let acc = Accountant::new(10, 0);
        let _o = acc.try_reserve(Category::Other, 2).unwrap();
        assert_eq!(
            acc.holders(Category::Audio).largest().unwrap().category,
            Category::Other
        );
    }
}

/// Shrinking or splitting off more than is held is refused and changes nothing.
#[test]
fn reductions_beyond_the_held_bytes_change_nothing() {
    {
        let acc = Accountant::new(10, 0);
        let mut r = acc.try_reserve(Category::Other, 4).unwrap();
        assert_eq!(r.shrink(5).unwrap_err().op, ReduceOp::Shrink);
        assert_eq!(r.split(5).unwrap_err().op, ReduceOp::Split);
    }
    {
        let acc = Accountant::new(10, 0);
        let mut r = acc.try_reserve(Category::Other, 4).unwrap();
        let err = r.shrink(6).unwrap_err();
        assert_eq!((err.requested, err.held), (6, 4));
        assert_eq!(r.bytes(), 4);
    }
}

/// Figures: usage, peaks, limits and counters, per category and in total.
#[test]
fn figures_per_category_and_in_total() {
    {
        let acc = Accountant::new(100, 0).with_limit(Category::Audio, 50);
        drop(acc.try_reserve(Category::Audio, 40).unwrap());
        let _ = acc.try_reserve(Category::Audio, 60);
        let audio = acc.figures().categories[Category::Audio.index()];
        assert_eq!((audio.used, audio.peak, audio.limit), (0, 40, Some(50)));
        assert_eq!((audio.live, audio.granted, audio.refused), (0, 1, 1));
    }
    {
        let acc = Accountant::new(100, 50);
        let _a = acc.try_reserve(Category::Audio, 10).unwrap();
        let _d = acc.try_reserve(Category::Disk, 20).unwrap();
        let f = acc.figures();
        assert_eq!(
            (f.memory_used, f.disk_used, f.live, f.granted),
            (10, 20, 2, 2)
        );
        assert_eq!(f.memory_available(), 90);
        assert_eq!(f.category(Category::Disk).used, 20);
    }
    {
        let acc = Accountant::new(10, 0);
        assert_eq!(acc.figures().category(Category::Model).used, 0);
    }
    {
        let acc = Accountant::new(10, 0);
        let _r = acc.try_reserve(Category::Model, 3).unwrap();
        assert_eq!(acc.figures().memory_available(), 7);
    }
    {
        let acc = Accountant::new(0, 10);
        let _r = acc.try_reserve(Category::Disk, 4).unwrap();
        assert_eq!(acc.figures().disk_available(), 6);
    }
    {
        let acc = Accountant::new(10, 0);
        let _ = acc.try_reserve(Category::Model, 11);
        assert_eq!(acc.figures().refused, 1);
    }
    {
        let acc = Accountant::new(10, 0);
        assert_eq!(acc.snapshot(), acc.figures());
    }
}

/// Budgets, limits and what is used and available, memory and disk apart.
#[test]
fn budgets_limits_and_usage() {
    {
        let acc = Accountant::new(1 << 20, 0);
        let r = acc.try_reserve(Category::Model, 1000).unwrap();
        assert_eq!(acc.memory_used(), 1000);
        r.release();
        assert_eq!(acc.memory_used(), 0);
    }
    {
        static ACC: Accountant = Accountant::new(2048, 0);
        assert_eq!(ACC.memory_budget(), 2048);
    }
    {
        let acc = Accountant::new(100, 0).with_limit(Category::Audio, 10);
        assert_eq!(acc.limit(Category::Audio), Some(10));
        assert!(acc.try_reserve(Category::Audio, 11).is_err());
    }
    assert_eq!(Accountant::new(7, 0).memory_budget(), 7);
    assert_eq!(Accountant::new(0, 9).disk_budget(), 9);
    assert_eq!(Accountant::new(1, 1).limit(Category::Model), None);
    {
        let acc = Accountant::new(10, 10);
        let _d = acc.try_reserve(Category::Disk, 5).unwrap();
        assert_eq!(acc.memory_used(), 0);
    }
    {
        let acc = Accountant::new(10, 10);
        let _d = acc.try_reserve(Category::Disk, 5).unwrap();
        assert_eq!(acc.disk_used(), 5);
    }
    {
        let acc = Accountant::new(10, 0);
        let _r = acc.try_reserve(Category::Other, 3).unwrap();
        assert_eq!(acc.used(Category::Other), 3);
    }
    {
        let acc = Accountant::new(100, 0).with_limit(Category::Audio, 30);
        let _m = acc.try_reserve(Category::Model, 80).unwrap();
        assert_eq!(acc.available(Category::Audio), 20);
        assert_eq!(acc.available(Category::Disk), 0);
    }
}

/// A reservation's operations, each keeping the accountant's figures exact.
#[test]
fn a_reservation_grows_shrinks_splits_merges_and_ends() {
    {
        let acc = Accountant::new(10, 0);
        assert_eq!(acc.try_reserve(Category::Other, 4).unwrap().bytes(), 4);
    }
    {
        let acc = Accountant::new(10, 0);
        assert_eq!(
            acc.try_reserve(Category::Model, 1).unwrap().category(),
            Category::Model
        );
    }
    {
        let acc = Accountant::new(10, 0);
        let r = acc.try_reserve(Category::Model, 1).unwrap();
        assert!(core::ptr::eq(r.accountant(), &acc));
    }
    {
        let acc = Accountant::new(10, 0);
        let mut r = acc.try_reserve(Category::Audio, 4).unwrap();
        r.grow(6).unwrap();
        assert!(r.grow(1).is_err());
        assert_eq!(r.bytes(), 10);
    }
    {
        let acc = Accountant::new(10, 0);
        let mut r = acc.try_reserve(Category::Audio, 4).unwrap();
        r.shrink(4).unwrap();
        assert_eq!((r.bytes(), acc.memory_used()), (0, 0));
        assert!(r.shrink(1).is_err());
    }
    {
        let acc = Accountant::new(10, 0);
        let mut r = acc.try_reserve(Category::Audio, 4).unwrap();
        r.resize(9).unwrap();
        r.resize(2).unwrap();
        assert_eq!(acc.memory_used(), 2);
    }
    {
        let acc = Accountant::new(10, 0);
        let mut r = acc.try_reserve(Category::Audio, 8).unwrap();
        let part = r.split(3).unwrap();
        assert_eq!((r.bytes(), part.bytes(), acc.figures().live), (5, 3, 2));
    }
    {
        let acc = Accountant::new(10, 0);
        let mut a = acc.try_reserve(Category::Audio, 2).unwrap();
        let b = acc.try_reserve(Category::Audio, 3).unwrap();
        a.merge(b).unwrap();
        assert_eq!(
            (a.bytes(), acc.memory_used(), acc.figures().live),
            (5, 5, 1)
        );
        let m = acc.try_reserve(Category::Model, 1).unwrap();
        assert!(a.merge(m).is_err());
    }
    {
        let acc = Accountant::new(10, 0);
        acc.try_reserve(Category::Audio, 4).unwrap().release();
        assert_eq!(acc.figures().live, 0);
    }
}
