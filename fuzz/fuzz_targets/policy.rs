//! The cleanup policy under random configurations, readings (time may jump or go back) and
//! feedback: never panics; steps down one level at a time, only after the dwell time and
//! only below the exit threshold; every level change is logged; actions come cheapest first.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use w4l_core::policy::{Level, Policy, PolicyConfig, PolicyParams, Reading};

#[derive(Arbitrary, Debug)]
struct RawReading {
    dt_ms: i16,
    accounted: u32,
    budget: u32,
    rss: u32,
    rss_limit: u32,
    available: u32,
    force: bool,
    freed: Option<u32>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    custom: Option<([u16; 3], [u16; 3], [u16; 3], u16, u16, u16)>,
    readings: Vec<RawReading>,
}

fuzz_target!(|input: Input| {
    let config = match input.custom {
        None => PolicyConfig::default(),
        Some((enter, exit, confirm, dwell, cooldown, horizon)) => {
            let params = PolicyParams {
                enter_permille: enter,
                exit_permille: exit,
                confirm_ms: confirm.map(u32::from),
                dwell_ms: u32::from(dwell),
                cooldown_ms: u32::from(cooldown),
                horizon_ms: u32::from(horizon),
                ..PolicyParams::default()
            };
            match PolicyConfig::new(params) {
                Ok(config) => config,
                Err(_) => return, // refused, not panicked: that is the contract
            }
        }
    };
    let dwell = u64::from(config.params().dwell_ms);
    let mut policy = Policy::new(config);
    let (mut now, mut latest) = (0u64, 0u64);
    let mut entered_at = 0u64;
    let mut transitions = 0usize;
    for r in input.readings {
        now = now.saturating_add_signed(i64::from(r.dt_ms));
        latest = latest.max(now);
        let reading = Reading {
            accounted: r.accounted as usize,
            budget: r.budget as usize,
            rss: u64::from(r.rss),
            rss_limit: u64::from(r.rss_limit),
            available: u64::from(r.available),
            force: r.force,
            ..Reading::new(now)
        };
        let before = policy.level();
        let step = policy.step(&reading);
        assert_eq!(step.level, policy.level());
        if step.level != before {
            let t = step
                .transition
                .expect("a level change without a transition");
            assert_eq!((t.from, t.to), (before, step.level));
            transitions += 1;
            if step.level < before {
                assert_eq!(
                    Some(step.level),
                    before.down(),
                    "stepped down more than one level"
                );
                assert!(
                    latest >= entered_at + dwell,
                    "stepped down within the dwell time"
                );
                assert!(
                    u32::from(step.pressure.permille) * 1000 < config.exit_ppm(before),
                    "stepped down while above the exit threshold"
                );
            }
            entered_at = latest;
        } else if let Some(t) = step.transition {
            transitions += 1;
            assert_eq!(
                t.from, t.to,
                "a transition that changes nothing must be a forced one"
            );
        }
        let actions = step.actions.as_slice();
        assert!(
            actions.windows(2).all(|w| w[0] < w[1]),
            "actions not cheapest first: {actions:?}"
        );
        assert!(
            actions
                .iter()
                .all(|a| a.level() <= step.level.max(Level::Elevated))
        );
        if let Some(freed) = r.freed {
            policy.feedback(u64::from(freed));
        }
    }
    let log = policy.log();
    assert_eq!(log.len() as u64 + log.dropped(), transitions as u64);
});
