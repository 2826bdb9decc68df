//! Loom model check of the accountant: two threads reserving, growing, splitting and
//! releasing at once never push the memory total past the budget (not even for an
//! instant, as far as any thread can observe) and leave usage equal to the sum of the
//! live reservations.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=/work/tgt/acct-loom \
//!       cargo test -p w4l-core --release --test accountant_loom`
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use w4l_core::accountant::{Accountant, Category, Reservation};

type Handle = Arc<Accountant>;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// What any thread may observe at any moment: within the budget and every limit.
fn assert_within(acc: &Accountant) {
    assert!(acc.memory_used() <= acc.memory_budget());
    assert!(acc.disk_used() <= acc.disk_budget());
    for c in Category::ALL {
        let bound = if c.is_memory() {
            acc.memory_budget()
        } else {
            acc.disk_budget()
        };
        assert!(
            acc.used(c) <= acc.limit(c).unwrap_or(bound).min(bound),
            "{c}"
        );
    }
}

/// Usage figures agree with the reservations the caller still holds.
fn assert_sums(acc: &Accountant, live: &[&Reservation<Handle>]) {
    let f = acc.figures();
    assert!(f.memory_used <= f.memory_budget);
    for c in Category::ALL {
        let sum: usize = live
            .iter()
            .filter(|r| r.category() == c)
            .map(|r| r.bytes())
            .sum();
        assert_eq!(f.category(c).used, sum, "{c}");
        assert_eq!(
            f.category(c).live,
            live.iter().filter(|r| r.category() == c).count()
        );
    }
    let mem: usize = live
        .iter()
        .filter(|r| r.category().is_memory())
        .map(|r| r.bytes())
        .sum();
    assert_eq!(f.memory_used, mem);
}

#[test]
fn racing_reservations_never_exceed_the_budget() {
    model(|| {
        let acc = Arc::new(Accountant::new(100, 0));
        let spawn = |category| {
            let acc = acc.clone();
            thread::spawn(move || {
                let r = Accountant::try_reserve_in(acc.clone(), category, 60).ok();
                assert_within(&acc);
                r
            })
        };
        let a = spawn(Category::Audio);
        let b = spawn(Category::Model);
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        // Exactly one of two 60-byte requests fits in 100.
        assert!(a.is_some() != b.is_some(), "one must win, one must lose");
        let held: Vec<_> = a.iter().chain(b.iter()).collect();
        assert_sums(&acc, &held);
        let f = acc.figures();
        assert_eq!((f.granted, f.refused, f.memory_peak), (1, 1, 60));
        drop(held);
        drop((a, b));
        assert_eq!(acc.figures().live, 0);
        assert_eq!(acc.memory_used(), 0);
    });
}

#[test]
fn grow_and_release_concurrently() {
    model(|| {
        let acc = Arc::new(Accountant::new(100, 0));
        let t = {
            let acc = acc.clone();
            thread::spawn(move || {
                let mut r = Accountant::try_reserve_in(acc.clone(), Category::Audio, 30).ok()?;
                let grew = r.grow(40).is_ok();
                assert_within(&acc);
                let part = r.split(10).ok()?;
                drop(part);
                Some((r, grew))
            })
        };
        let mut mine = Accountant::try_reserve_in(acc.clone(), Category::Model, 50).ok();
        if let Some(r) = mine.as_mut() {
            let _ = r.grow(20);
            assert_within(&acc);
        }
        let theirs = t.join().unwrap();
        let held: Vec<_> = mine.iter().chain(theirs.iter().map(|(r, _)| r)).collect();
        assert_sums(&acc, &held);
        assert!(acc.figures().memory_peak <= 100);
        drop(held);
        drop((mine, theirs));
        let f = acc.figures();
        assert_eq!((f.memory_used, f.live), (0, 0));
    });
}

#[test]
fn category_limit_rollback_keeps_the_budget() {
    model(|| {
        // Audio may use 30 of 100: a 40-byte audio request charges the total, is refused by
        // the audio limit and rolls back, while a 70-byte model request races it.
        let acc = Arc::new(Accountant::new(100, 0).with_limit(Category::Audio, 30));
        let t = {
            let acc = acc.clone();
            thread::spawn(move || {
                let r = Accountant::try_reserve_in(acc.clone(), Category::Audio, 40);
                assert!(r.is_err(), "the audio limit always refuses 40");
                assert_within(&acc);
            })
        };
        let model = Accountant::try_reserve_in(acc.clone(), Category::Model, 70).ok();
        assert_within(&acc);
        t.join().unwrap();
        let held: Vec<_> = model.iter().collect();
        assert_sums(&acc, &held);
        let f = acc.figures();
        assert_eq!(f.category(Category::Audio).used, 0);
        assert_eq!(f.category(Category::Audio).refused, 1);
        // The model request may lose to the audio request's transient charge (the
        // accountant errs on the safe side), but then it is counted as refused.
        assert_eq!(
            f.category(Category::Model).refused,
            usize::from(model.is_none())
        );
        drop(held);
        drop(model);
        assert_eq!(acc.memory_used(), 0);
    });
}

#[test]
fn disk_and_memory_race_independently() {
    model(|| {
        let acc = Arc::new(Accountant::new(50, 50));
        let t = {
            let acc = acc.clone();
            thread::spawn(move || {
                let d = Accountant::try_reserve_in(acc.clone(), Category::Disk, 50);
                assert!(d.is_ok());
                assert_within(&acc);
            })
        };
        let m = Accountant::try_reserve_in(acc.clone(), Category::Other, 50);
        assert!(m.is_ok());
        t.join().unwrap();
        let f = acc.figures();
        assert_eq!((f.memory_used, f.disk_used, f.disk_peak), (50, 0, 50));
        drop(m);
        assert_eq!(acc.figures().live, 0);
    });
}

#[test]
fn counter_carries_race_exactly() {
    model(|| {
        // A budget that leaves two spare bits in a category's word: one bit each for the low
        // parts of the granted and ended counters, so every second grant or end carries into
        // the high part, while two threads reserve and release in the same category.
        let acc = Arc::new(Accountant::new(usize::MAX >> 2, 0));
        let t = {
            let acc = acc.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    let r = Accountant::try_reserve_in(acc.clone(), Category::Audio, 7);
                    assert!(r.is_ok());
                }
            })
        };
        let mine = Accountant::try_reserve_in(acc.clone(), Category::Audio, 5).unwrap();
        t.join().unwrap();
        let f = acc.figures();
        let audio = f.category(Category::Audio);
        assert_eq!((audio.used, audio.live, audio.granted), (5, 1, 3));
        drop(mine);
        let audio = *acc.figures().category(Category::Audio);
        assert_eq!((audio.used, audio.live, audio.granted), (0, 0, 3));
        assert_eq!(acc.memory_used(), 0);
    });
}
