//! SPSC throughput: f32 samples in 1024-sample chunks from a producer thread to a consumer
//! thread through
//!
//! * `w4l`: this crate's heap ring (`HeapRing`, `push_slice_partial` / `pop_slice`,
//!   `RejectNewest`),
//! * `rtrb`: `write_chunk_uninit` + copy / `read_chunk` + copy (rtrb's fastest bulk path),
//! * `ringbuf`: `push_slice` / `pop_slice`,
//! * `memcpy`: a same-thread reference (copy into a ring-sized buffer and out again, no
//!   synchronisation at all),
//!
//! all with the same capacity ([`CAP`]). Both ends copy (into the ring from a source chunk,
//! out of the ring into a destination chunk), spin with `spin_loop` and yield after a while
//! when the ring is full/empty, and the consumer checks the first and last sample of every
//! batch so nothing is optimised away or reordered.
//!
//! First Criterion measures each (short times: the build machine is shared). Then a paired
//! pass moves the same [`PAIRED_SAMPLES`] (100 M) samples through every ring per round,
//! rotating the order each round, and prints the median throughput of each and the median of
//! the per-round ratios to rtrb.
//!
//! `cargo bench -p w4l-core --bench ring`. Without `--bench` (e.g. `cargo test --benches`)
//! everything runs once on tiny counts.

use std::hint::{black_box, spin_loop};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use ringbuf::traits::{Consumer as _, Producer as _, Split as _};
use rtrb::CopyToUninit;
use w4l_core::ring::{HeapRing, Overflow};

/// Samples per push / pop.
const CHUNK: usize = 1024;
/// Ring capacity for every implementation.
const CAP: usize = 16384;
/// Samples per paired-run round and implementation.
const PAIRED_SAMPLES: usize = 100_000_000;
/// Paired rounds (many, short: the build machine is shared and noisy, medians tame that).
const ROUNDS: usize = 21;
/// Samples per Criterion iteration.
const CRITERION_SAMPLES: usize = 4 * 1024 * 1024;

/// Waits a little: spin first, then give the core away (the machine may be oversubscribed).
#[inline]
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// The source chunk: sample `i` of the stream has value `i % CHUNK`.
fn source() -> [f32; CHUNK] {
    std::array::from_fn(|i| i as f32)
}

/// Consumer-side check of one batch that starts at stream position `at`.
#[inline]
fn check(batch: &[f32], at: usize) {
    let first = (at % CHUNK) as f32;
    let last = ((at + batch.len() - 1) % CHUNK) as f32;
    assert!(
        batch[0] == first && batch[batch.len() - 1] == last,
        "corrupt stream at {at}"
    );
}

/// Runs `produce` on a new thread and `consume` here, returns the wall time.
fn timed<P: FnOnce() + Send, C: FnOnce()>(produce: P, consume: C) -> Duration {
    std::thread::scope(|s| {
        let start = Instant::now();
        s.spawn(produce);
        consume();
        start.elapsed()
    })
}

fn run_w4l(total: usize) -> Duration {
    let (mut p, mut c) = HeapRing::<f32>::new(CAP, Overflow::RejectNewest).expect("ring");
    let src = source();
    timed(
        move || {
            let mut sent = 0;
            while sent < total {
                let mut chunk = &src[..CHUNK.min(total - sent)];
                let mut spins = 0;
                while !chunk.is_empty() {
                    let n = p.push_slice_partial(chunk);
                    chunk = &chunk[n..];
                    sent += n;
                    if n == 0 {
                        backoff(&mut spins);
                    }
                }
            }
        },
        move || {
            let mut out = [0.0f32; CHUNK];
            let mut got = 0;
            let mut spins = 0;
            while got < total {
                let n = c.pop_slice(&mut out);
                if n == 0 {
                    backoff(&mut spins);
                    continue;
                }
                spins = 0;
                check(black_box(&out[..n]), got);
                got += n;
            }
        },
    )
}

fn run_rtrb(total: usize) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<f32>::new(CAP);
    let src = source();
    timed(
        move || {
            let mut sent = 0;
            while sent < total {
                let mut chunk = &src[..CHUNK.min(total - sent)];
                let mut spins = 0;
                while !chunk.is_empty() {
                    let n = p.slots().min(chunk.len());
                    if n == 0 {
                        backoff(&mut spins);
                        continue;
                    }
                    let mut w = p.write_chunk_uninit(n).expect("slots checked");
                    let (a, b) = w.as_mut_slices();
                    chunk[..a.len()].copy_to_uninit(a);
                    chunk[a.len()..n].copy_to_uninit(b);
                    // SAFETY: all `n` slots were initialised by the two copies above.
                    unsafe { w.commit_all() };
                    chunk = &chunk[n..];
                    sent += n;
                }
            }
        },
        move || {
            let mut out = [0.0f32; CHUNK];
            let mut got = 0;
            let mut spins = 0;
            while got < total {
                let n = c.slots().min(CHUNK);
                if n == 0 {
                    backoff(&mut spins);
                    continue;
                }
                spins = 0;
                let r = c.read_chunk(n).expect("slots checked");
                let (a, b) = r.as_slices();
                out[..a.len()].copy_from_slice(a);
                out[a.len()..n].copy_from_slice(b);
                r.commit_all();
                check(black_box(&out[..n]), got);
                got += n;
            }
        },
    )
}

fn run_ringbuf(total: usize) -> Duration {
    let rb = ringbuf::HeapRb::<f32>::new(CAP);
    let (mut p, mut c) = rb.split();
    let src = source();
    timed(
        move || {
            let mut sent = 0;
            while sent < total {
                let mut chunk = &src[..CHUNK.min(total - sent)];
                let mut spins = 0;
                while !chunk.is_empty() {
                    let n = p.push_slice(chunk);
                    chunk = &chunk[n..];
                    sent += n;
                    if n == 0 {
                        backoff(&mut spins);
                    }
                }
            }
        },
        move || {
            let mut out = [0.0f32; CHUNK];
            let mut got = 0;
            let mut spins = 0;
            while got < total {
                let n = c.pop_slice(&mut out);
                if n == 0 {
                    backoff(&mut spins);
                    continue;
                }
                spins = 0;
                check(black_box(&out[..n]), got);
                got += n;
            }
        },
    )
}

/// Same-thread reference: the two copies a ring does, without any synchronisation.
fn run_memcpy(total: usize) -> Duration {
    let mut ring = vec![0.0f32; CAP];
    let src = source();
    let mut out = [0.0f32; CHUNK];
    let start = Instant::now();
    let mut at = 0;
    let mut moved = 0;
    while moved < total {
        let n = CHUNK.min(total - moved);
        ring[at..at + n].copy_from_slice(black_box(&src[..n]));
        out[..n].copy_from_slice(black_box(&ring[at..at + n]));
        check(black_box(&out[..n]), moved);
        at = (at + n) % CAP;
        moved += n;
    }
    start.elapsed()
}

type Runner = fn(usize) -> Duration;

const RUNNERS: [(&str, Runner); 4] = [
    ("w4l", run_w4l),
    ("rtrb", run_rtrb),
    ("ringbuf", run_ringbuf),
    ("memcpy", run_memcpy),
];

fn criterion_benches(c: &mut Criterion, samples: usize) {
    let mut group = c.benchmark_group("spsc_f32_chunk1024");
    group.throughput(Throughput::Elements(samples as u64));
    for (name, run) in RUNNERS {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run(samples)).sum());
        });
    }
    group.finish();
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Moves the same number of samples through every implementation, `rounds` times with a
/// rotating order; prints median throughputs and the median per-round ratio to rtrb.
fn paired(samples: usize, rounds: usize) {
    let mut rates = vec![Vec::new(); RUNNERS.len()];
    let mut ratios = vec![Vec::new(); RUNNERS.len()];
    for round in 0..rounds {
        let mut this = [0.0f64; RUNNERS.len()];
        // The three rings back to back in a rotating order, the reference after them.
        for k in 0..RUNNERS.len() {
            let i = if k < 3 { (k + round) % 3 } else { k };
            let elapsed = RUNNERS[i].1(samples).as_secs_f64().max(1e-9);
            this[i] = samples as f64 / elapsed;
        }
        for i in 0..RUNNERS.len() {
            rates[i].push(this[i]);
            ratios[i].push(this[i] / this[1]);
        }
    }
    println!(
        "\npaired: {samples} f32 samples per run, chunk {CHUNK}, capacity {CAP}, {rounds} rounds (medians)"
    );
    for (i, (name, _)) in RUNNERS.iter().enumerate() {
        let rate = median(&mut rates[i]);
        println!(
            "  {name:<8} {:>9.1} Msamples/s {:>7.2} GB/s   ratio to rtrb {:.2}x",
            rate / 1e6,
            rate * 4.0 / 1e9,
            median(&mut ratios[i]),
        );
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    if bench {
        criterion_benches(&mut c, CRITERION_SAMPLES);
        paired(PAIRED_SAMPLES, ROUNDS);
    } else {
        criterion_benches(&mut c, 100_000);
        paired(100_000, 1);
    }
    c.final_summary();
}
