//! Accountant reserve + release round trip, uncontended and with two threads, against a
//! `std::sync::Mutex<u64>` doing the same bookkeeping (lock to add, lock to subtract).
//!
//! Criterion measures the uncontended cases; the contended cases need both threads
//! running, so they use `iter_custom`. After Criterion, a short plain-timer pass prints
//! ns per round trip for every case and the accountant / mutex ratio.
//!
//! `cargo bench -p w4l-core --bench accountant` (Criterion times shortened: the build
//! machine is shared).

use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use w4l_core::accountant::{Accountant, Category};

const BUDGET: usize = 1 << 30;
const BYTES: usize = 4096;

/// One accountant round trip: reserve, then release on drop.
#[inline]
fn accountant_round_trip(acc: &Accountant) {
    let r = acc.try_reserve(black_box(Category::Audio), black_box(BYTES));
    drop(black_box(r));
}

/// One mutex round trip doing the same bookkeeping: check-and-add, then subtract.
#[inline]
fn mutex_round_trip(m: &Mutex<u64>) {
    {
        let mut used = m.lock().unwrap_or_else(|e| e.into_inner());
        if *used + BYTES as u64 <= BUDGET as u64 {
            *used += black_box(BYTES as u64);
        }
    }
    let mut used = m.lock().unwrap_or_else(|e| e.into_inner());
    *used -= black_box(BYTES as u64);
}

/// Runs `op` `iters` times on this thread while a second thread runs it in a loop;
/// returns this thread's elapsed time.
fn contended<T: Sync>(shared: &T, iters: u64, op: fn(&T)) -> Duration {
    let stop = AtomicBool::new(false);
    let started = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            started.store(true, Ordering::Release);
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    op(shared);
                }
            }
        });
        // Time only while the other thread runs.
        while !started.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        let start = Instant::now();
        for _ in 0..iters {
            op(shared);
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        elapsed
    })
}

fn bench(c: &mut Criterion) {
    let acc = Accountant::new(BUDGET, 0);
    let mutex = Mutex::new(0u64);
    let mut group = c.benchmark_group("reserve_release");
    group.bench_function("accountant/uncontended", |b| {
        b.iter(|| accountant_round_trip(&acc))
    });
    group.bench_function("mutex/uncontended", |b| b.iter(|| mutex_round_trip(&mutex)));
    group.bench_function("accountant/2-threads", |b| {
        b.iter_custom(|iters| contended(&acc, iters, accountant_round_trip))
    });
    group.bench_function("mutex/2-threads", |b| {
        b.iter_custom(|iters| contended(&mutex, iters, mutex_round_trip))
    });
    group.finish();
    assert_eq!(acc.memory_used(), 0);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = bench
}

/// Plain-timer pass: ns per round trip, median of `rounds` runs of `iters` (short runs,
/// so that some of them escape preemption on a shared machine).
fn ns_per_op(rounds: u32, iters: u64, mut run: impl FnMut(u64) -> Duration) -> f64 {
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| run(iters).as_nanos() as f64 / iters as f64)
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Times `n` calls of `op` on this thread.
fn timed(op: impl Fn()) -> impl FnMut(u64) -> Duration {
    move |n| {
        let start = Instant::now();
        for _ in 0..n {
            op();
        }
        start.elapsed()
    }
}

fn summary(quick: bool) {
    let (rounds, iters) = if quick { (1, 1_000) } else { (40, 200_000) };
    let acc = Accountant::new(BUDGET, 0);
    let mutex = Mutex::new(0u64);
    let a1 = ns_per_op(rounds, iters, timed(|| accountant_round_trip(&acc)));
    let m1 = ns_per_op(rounds, iters, timed(|| mutex_round_trip(&mutex)));
    let a2 = ns_per_op(rounds, iters / 4, |n| {
        contended(&acc, n, accountant_round_trip)
    });
    let m2 = ns_per_op(rounds, iters / 4, |n| {
        contended(&mutex, n, mutex_round_trip)
    });
    println!("\nreserve + release round trip (median of {rounds} x {iters}), ns per op:");
    println!("  case           accountant   Mutex<u64>   accountant/mutex");
    println!(
        "  uncontended    {a1:>10.1}   {m1:>10.1}   {:>16.2}",
        a1 / m1
    );
    println!(
        "  2 threads      {a2:>10.1}   {m2:>10.1}   {:>16.2}",
        a2 / m2
    );
    println!(
        "  goal: <= 20 ns uncontended: {}",
        if a1 <= 20.0 { "met" } else { "NOT met" }
    );
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary(quick);
}
