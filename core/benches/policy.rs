//! One `Policy::step` (criterion). Goal: ≤ 100 ns per step on the host.
//!
//! Run briefly: `cargo bench -p w4l-core --bench policy -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use w4l_core::policy::{Policy, PolicyConfig, Reading};
use w4l_core::scenario;

fn bench_step(c: &mut Criterion) {
    // Steady state: full history window, Elevated-band noise (no transitions).
    c.bench_function("policy_step_steady", |b| {
        let mut p = Policy::new(PolicyConfig::default());
        let mut t = 0u64;
        b.iter(|| {
            t += 1_000;
            let rss = 550_000 + (t / 1_000 % 17) * 1_000;
            let r = Reading {
                rss,
                rss_limit: 1_000_000,
                accounted: 100,
                budget: 1_000,
                ..Reading::new(t)
            };
            black_box(p.step(black_box(&r)))
        });
    });
    // The scripted hour, cycled: transitions, actions, feedback, prediction.
    let readings: Vec<Reading> = scenario::readings().collect();
    c.bench_function("policy_step_scenario", |b| {
        let mut p = Policy::new(PolicyConfig::default());
        let mut i = 0usize;
        let mut offset = 0u64;
        b.iter(|| {
            let mut r = readings[i];
            r.now_ms += offset;
            i += 1;
            if i == readings.len() {
                i = 0;
                offset += scenario::STEPS as u64 * scenario::PERIOD_MS;
            }
            let s = p.step(black_box(&r));
            if !s.actions.is_empty() {
                p.feedback(64 << 20);
            }
            black_box(s)
        });
    });
}

criterion_group!(benches, bench_step);
criterion_main!(benches);
