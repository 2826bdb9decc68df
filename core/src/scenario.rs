//! The scripted one-hour memory scenario shared by the host tests and the firmware.
//!
//! [`readings`] yields one [`Reading`] per second for an hour ([`STEPS`] readings),
//! computed from the sample index alone (integer arithmetic and an integer hash for noise:
//! no state, no allocation, identical on every target). [`run`] feeds them to a [`Policy`],
//! reports a fixed amount of freed bytes per emitted action ([`freed_by`]) as feedback, and
//! yields every logged [`Transition`]. Printing those with `Display`, one per line, gives
//! the golden log `core/tests/data/scenario.log`:
//!
//! ```
//! use w4l_core::scenario;
//!
//! let mut log = scenario::transitions().map(|t| t.to_string());
//! assert_eq!(
//!     log.next().as_deref(),
//!     Some("t=301000ms Normal->Elevated pressure=561‰ rss predicted eta=58089ms")
//! );
//! ```
//!
//! The script is open-loop: readings do not react to the actions (recoveries are scripted,
//! like the host finishing a recording); the feedback is what a host would *report*.
//!
//! | seconds | phase | what the policy should do |
//! |---|---|---|
//! | 0–299 | idle: accounted 10 %, rss 30 % ± 2 % | stay `Normal` |
//! | 300–899 | noisy plateau: rss 56 % ± 4.5 % (crosses 60 % now and then, never below 50 %) | one step to `Elevated`, no flapping |
//! | 900–1199 | back to idle | one step down |
//! | 1200–1399 | a recording grows 0.5 %/s of the budget to 95 %, then holds | `Elevated` on pressure, `High` and `Critical` early on the prediction |
//! | 1400–1799 | recording finished: idle | step down one level per dwell |
//! | 1800–2099 | rss spikes to 95 %: 2 s at 1850, 1 s at 1900, 10 s at 1950 | short spikes never reach `Critical`; the 10 s one does |
//! | 2100–2399 | forced cleanup at 2200 (Normal) and 2300 (Elevated); system available memory 560 MiB from 2250 to 2329 | forced entries; cheap cleanup ineffective → `High` once, then no cycling |
//! | 2400–2699 | leak: rss grows 0.3 %/s from 30 % to 88.5 % (± 1 %), then holds | ineffective cheap cleanup → `High`; prediction → `Critical` before 90 % is ever measured |
//! | 2700–3599 | leaking component restarted: idle | step down to `Normal` and stay |

use crate::policy::{Action, Policy, PolicyConfig, Reading, Transition};

/// Time between readings, ms.
pub const PERIOD_MS: u64 = 1_000;

/// Number of readings (one hour).
pub const STEPS: u32 = 3_600;

/// Accountant budget of the scripted recorder: 512 MiB.
pub const BUDGET: usize = 512 << 20;

/// Process limit of the scripted recorder: 1 GiB.
pub const RSS_LIMIT: u64 = 1 << 30;

/// System available memory outside the low-memory episode: 4 GiB.
pub const AVAILABLE: u64 = 4 << 30;

/// System available memory during the low-memory episode (seconds 2250–2329): 560 MiB.
pub const LOW_AVAILABLE: u64 = 560 << 20;

/// Seconds at which the user asks for cleanup.
pub const FORCE_AT_S: [u32; 2] = [2_200, 2_300];

/// Integer hash (lowbias32) used as deterministic noise.
const fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// Noise in `-amp..=amp` per-mille for sample `i` and stream `salt`.
const fn noise(i: u32, salt: u32, amp: u32) -> i32 {
    let span = amp.saturating_mul(2).saturating_add(1);
    let h = mix(i.wrapping_mul(4).wrapping_add(salt));
    // `h % span` is at most `2 · amp` and `amp` at most 45 here: both fit an `i32`.
    (h % span) as i32 - amp as i32
}

/// `limit · permille / 1000`, permille clamped to `0..=2000`.
fn of_limit(limit: u64, permille: i32) -> u64 {
    let pm = permille.clamp(0, 2000) as u64;
    (limit / 1000).saturating_mul(pm) + (limit % 1000).saturating_mul(pm) / 1000
}

/// The scripted reading number `i` (at `i · PERIOD_MS`). Indices past the hour repeat the
/// idle phase.
pub fn reading(i: u32) -> Reading {
    let mut acc_pm = 100 + noise(i, 0, 5);
    // The rss level and its noise amplitude (per-mille).
    let (rss_base, rss_amp) = match i {
        300..900 => (560, 45),
        1200..1400 => {
            acc_pm += 5 * i.saturating_sub(1200).min(170) as i32;
            (250 + acc_pm / 2, 20)
        }
        1850 | 1851 | 1900 | 1950..1960 => (950, 10),
        2400..2700 => (300 + 3 * i.saturating_sub(2400).min(195) as i32, 10),
        _ => (300, 20),
    };
    let rss_pm = rss_base + noise(i, 1, rss_amp);
    let available = if (2250..2330).contains(&i) {
        LOW_AVAILABLE
    } else {
        AVAILABLE
    };
    Reading {
        now_ms: u64::from(i).saturating_mul(PERIOD_MS),
        accounted: usize::try_from(of_limit(BUDGET as u64, acc_pm)).unwrap_or(usize::MAX),
        budget: BUDGET,
        rss: of_limit(RSS_LIMIT, rss_pm),
        rss_limit: RSS_LIMIT,
        available,
        force: FORCE_AT_S.contains(&i),
    }
}

/// The hour of readings, one per second.
pub fn readings() -> impl Iterator<Item = Reading> + Clone {
    (0..STEPS).map(reading)
}

/// Bytes the scripted host reports freed by one action: idle buffers 32 MiB, temp files
/// 32 MiB, spilling audio 96 MiB, unloading the model 160 MiB, dropping audio 64 MiB,
/// refusing recordings nothing (it only prevents growth).
pub const fn freed_by(action: Action) -> u64 {
    match action {
        Action::ReleaseIdleBuffers | Action::ReapTempFiles => 32 << 20,
        Action::SpillOldestAudio => 96 << 20,
        Action::UnloadModel => 160 << 20,
        Action::DropOldestAudio => 64 << 20,
        Action::RefuseNewRecordings => 0,
    }
}

/// Iterator running a [`Policy`] over the scenario; yields each logged [`Transition`]
/// (level changes and forced cleanups) in order.
#[derive(Clone, Debug)]
pub struct Run {
    policy: Policy,
    next: u32,
}

impl Run {
    /// The policy as it stands (after the readings consumed so far).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl Iterator for Run {
    type Item = Transition;

    fn next(&mut self) -> Option<Transition> {
        while self.next < STEPS {
            let r = reading(self.next);
            self.next += 1;
            let step = self.policy.step(&r);
            if !step.actions.is_empty() {
                // At most six actions of at most 160 MiB each: no overflow.
                let freed = step.actions.iter().map(freed_by).sum();
                self.policy.feedback(freed);
            }
            if step.transition.is_some() {
                return step.transition;
            }
        }
        None
    }
}

/// Run `policy` over the scenario.
pub fn run(policy: Policy) -> Run {
    Run { policy, next: 0 }
}

/// Run a default-configured policy over the scenario (what the golden log records).
pub fn transitions() -> Run {
    run(Policy::new(PolicyConfig::default()))
}
