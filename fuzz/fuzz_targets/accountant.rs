//! The memory accountant under random reserve/grow/shrink/split/merge/drop sequences:
//! never over a budget or a category limit, usage always equal to the sum of the live
//! reservations, refusals and peaks exact.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use w4l_core::accountant::{Accountant, Category, Reservation};

#[derive(Arbitrary, Debug)]
enum Op {
    Reserve(u8, u16),
    Grow(u8, u16),
    Shrink(u8, u16),
    Resize(u8, u16),
    Split(u8, u16),
    Merge(u8, u8),
    Drop(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    memory: u16,
    disk: u16,
    audio_limit: Option<u16>,
    ops: Vec<Op>,
}

fn category(i: u8) -> Category {
    Category::ALL[usize::from(i) % Category::ALL.len()]
}

fuzz_target!(|input: Input| {
    let mut acct = Accountant::new(usize::from(input.memory), usize::from(input.disk));
    if let Some(limit) = input.audio_limit {
        acct = acct.with_limit(Category::Audio, usize::from(limit));
    }
    let acct = &acct;
    let mut live: Vec<Reservation<&Accountant>> = Vec::new();
    let mut peaks = [0usize; 4];
    let pick = |live: &Vec<Reservation<&Accountant>>, i: u8| {
        (!live.is_empty()).then(|| usize::from(i) % live.len())
    };

    for op in input.ops {
        match op {
            Op::Reserve(c, n) => {
                if let Ok(r) = acct.try_reserve(category(c), usize::from(n)) {
                    live.push(r);
                }
            }
            Op::Grow(i, n) => {
                if let Some(i) = pick(&live, i) {
                    let before = live[i].bytes();
                    match live[i].grow(usize::from(n)) {
                        Ok(()) => assert_eq!(live[i].bytes(), before + usize::from(n)),
                        Err(_) => assert_eq!(live[i].bytes(), before),
                    }
                }
            }
            Op::Shrink(i, n) => {
                if let Some(i) = pick(&live, i) {
                    let before = live[i].bytes();
                    let ok = live[i].shrink(usize::from(n)).is_ok();
                    assert_eq!(
                        ok,
                        usize::from(n) <= before,
                        "shrink below zero must be refused"
                    );
                    assert_eq!(
                        live[i].bytes(),
                        if ok { before - usize::from(n) } else { before }
                    );
                }
            }
            Op::Resize(i, n) => {
                if let Some(i) = pick(&live, i) {
                    let before = live[i].bytes();
                    let ok = live[i].resize(usize::from(n)).is_ok();
                    assert_eq!(live[i].bytes(), if ok { usize::from(n) } else { before });
                }
            }
            Op::Split(i, n) => {
                if let Some(i) = pick(&live, i) {
                    let before = live[i].bytes();
                    match live[i].split(usize::from(n)) {
                        Ok(part) => {
                            assert_eq!(part.bytes() + live[i].bytes(), before);
                            live.push(part);
                        }
                        Err(_) => assert!(usize::from(n) > before),
                    }
                }
            }
            Op::Merge(a, b) => {
                if let (Some(a), Some(b)) = (pick(&live, a), pick(&live, b)) {
                    if a != b {
                        let other = live.swap_remove(b);
                        let a = if a == live.len() { b } else { a };
                        if let Err(back) = live[a].merge(other) {
                            live.push(back);
                        }
                    }
                }
            }
            Op::Drop(i) => {
                if let Some(i) = pick(&live, i) {
                    live.swap_remove(i);
                }
            }
        }
        let figures = acct.figures();
        let mut sums = [0usize; 4];
        for r in &live {
            sums[r.category().index()] += r.bytes();
        }
        for c in Category::ALL {
            let f = figures.category(c);
            assert_eq!(
                f.used,
                sums[c.index()],
                "{c} usage != sum of its live reservations"
            );
            if let Some(limit) = f.limit {
                assert!(f.used <= limit, "{c} over its limit");
            }
            peaks[c.index()] = peaks[c.index()].max(f.used);
            assert_eq!(f.peak, peaks[c.index()]);
        }
        assert!(
            figures.memory_used <= figures.memory_budget,
            "memory over budget"
        );
        assert!(figures.disk_used <= figures.disk_budget, "disk over budget");
        assert_eq!(figures.disk_used, sums[Category::Disk.index()]);
        assert_eq!(
            figures.memory_used,
            sums.iter().sum::<usize>() - sums[Category::Disk.index()]
        );
        assert_eq!(figures.live, live.len());
    }
});
