//! Cleanup-policy state machine: pressure levels with hysteresis, escalating actions,
//! feedback and prediction. Pure and deterministic (sans-IO).
//!
//! The host samples its memory figures (a [`Reading`]) periodically — the recorder does it
//! once a second — and passes them to [`Policy::step`]. The policy answers with a [`Step`]:
//! the current [`Level`], the [`Transition`] if the level changed, and an ordered list of
//! [`Action`]s for the host to perform, cheapest first. After performing them the host
//! reports how many bytes they actually freed with [`Policy::feedback`]; if that was too
//! little the policy escalates on the next step.
//!
//! Everything is integer arithmetic (pressure in parts per million, times in ms), so the
//! same readings produce byte-identical [`Transition`] lines on x86_64 and on a Cortex-M.
//!
//! # Host loop
//!
//! ```
//! use w4l_core::policy::{Action, Level, Policy, PolicyConfig, Reading};
//!
//! let mut policy = Policy::new(PolicyConfig::default());
//! let mut accounted = 100 << 20;
//! for second in 0..10u64 {
//!     let reading = Reading {
//!         accounted,
//!         budget: 512 << 20,
//!         rss: 300 << 20,
//!         rss_limit: 1 << 30,
//!         ..Reading::new(second * 1000)
//!     };
//!     let step = policy.step(&reading);
//!     if let Some(t) = step.transition {
//!         // e.g. log::info!("{t}")
//!         if second == 3 {
//!             assert_eq!(t.to_string(), "t=3000ms Normal->Elevated pressure=781‰ accounted");
//!         }
//!     }
//!     let mut freed = 0;
//!     for action in step.actions.iter() {
//!         freed += match action {
//!             Action::ReleaseIdleBuffers => 1 << 20, // the host does the work here
//!             _ => 0,
//!         };
//!     }
//!     if !step.actions.is_empty() {
//!         policy.feedback(freed);
//!     }
//!     accounted += 100 << 20; // a recording grows
//! }
//! assert!(policy.level() >= Level::High);
//! ```
//!
//! # Pressure
//!
//! Pressure is the maximum of three ratios, each in ppm (1 000 000 = 100 %):
//! `accounted / budget`, `rss / rss_limit`, and `available_reserve / available` (the system
//! part: 100 % when available memory falls to the reserve). A limit of 0 (or
//! `available == u64::MAX`) means "not observed" and contributes nothing. Pressure saturates
//! at 200 %. Thresholds are configured in per-mille; reports print per-mille (`‰`), rounded
//! down.
//!
//! # Levels and defaults
//!
//! | level | enter | exit | confirm | actions added (cheap first) |
//! |---|---|---|---|---|
//! | `Normal` | — | — | — | none |
//! | `Elevated` | 600 ‰ | 500 ‰ | 0 s | [`Action::ReleaseIdleBuffers`], [`Action::ReapTempFiles`] |
//! | `High` | 750 ‰ | 650 ‰ | 1 s | [`Action::SpillOldestAudio`], [`Action::UnloadModel`] |
//! | `Critical` | 900 ‰ | 800 ‰ | 3 s | [`Action::DropOldestAudio`], [`Action::RefuseNewRecordings`] |
//!
//! Each level emits its own actions *and* those of every lower level (Chromium's critical
//! pressure means "free all possible"), always in the fixed order above. The anchors:
//!
//! - **Android `onTrimMemory`**: `RUNNING_MODERATE` ↔ `Elevated`, `RUNNING_LOW` ↔ `High`,
//!   `RUNNING_CRITICAL` ↔ `Critical`. Android asks apps to release caches at MODERATE, more at
//!   LOW, and warns that at CRITICAL the system is about to kill; the enter thresholds at 60 /
//!   75 / 90 % of the limit leave room for each stage to act before the next.
//! - **Chromium memory pressure**: *moderate* = free cheap caches (our `Elevated`: idle
//!   buffers, temp files), *critical* = free everything possible (our `Critical`: includes
//!   dropping audio). Chromium's Windows evaluator signals critical below 400 MB available;
//!   the default `available_reserve` of 360 MiB puts our Critical enter (900 ‰) at exactly
//!   400 MiB available, High at 480 MiB and Elevated at 600 MiB.
//! - **systemd-oomd**: pressure must persist 30 s before oomd acts, and it stays quiet 15 s
//!   after acting. oomd kills whole cgroups based on 10 s PSI averages; a recorder fills
//!   memory at megabytes per second and its first actions are cheap and reversible, so we
//!   scale oomd's timings by **1/10**: Critical (the only level that loses data) must be
//!   confirmed for 3 s (oomd's 30 s), and an action set repeats at most every 1.5 s
//!   (`cooldown`, oomd's 15 s). Elevated reacts immediately (like Chromium's moderate), High
//!   after 1 s (one sample: a single noisy reading never spills audio).
//!
//! Stepping **down** is deliberately slower than stepping up: one level at a time, only after
//! the level has been held for `dwell` (10 s) *and* pressure has stayed below the level's exit
//! threshold for `calm` (3 s, the same 1/10-scaled oomd window), with no prediction holding
//! the level and no upward trend that would bring pressure back to the level's enter
//! threshold within the `horizon` (no stepping down in the middle of a leak). The 100 ‰ hysteresis band is wider than typical RSS jitter (allocator arenas,
//! page-cache attribution: a few percent), so noise alone cannot flap the level.
//!
//! # Feedback
//!
//! When actions are emitted, the policy computes how many bytes would bring every pressure
//! source back below the level's exit threshold (`wanted`). If the host's
//! [`feedback`](Policy::feedback) for that batch totals less than `ineffective_permille`
//! (default 500 ‰, i.e. half) of `wanted` and, at the next step, pressure is still at or above
//! the level's *enter* threshold, the policy escalates one level ([`Reason::Ineffective`]).
//! This fires at most once per pressure episode of a level: it re-arms only once pressure
//! drops below that level's exit threshold, so a host whose cleanups never show up in its
//! readings does not make the level cycle. A host that never calls `feedback` never triggers
//! it.
//!
//! # Prediction
//!
//! The last [`trend::HISTORY_LEN`] pressures feed a least-squares [`trend::Trend`] (slope in
//! ppm of the limit per second, fitted over time in ms; see the module for the estimator).
//! Growth counts as sustained when both the full 16-sample fit and the fit over its newest 8
//! samples reach 100 % (the limit) — the later of the two etas is used, so a one-off step
//! (idle → plateau) stops looking like growth once it is 8 samples old. When that eta is
//! within `horizon` (default 60 s), the policy escalates to one
//! level above the level the current pressure alone indicates (capped at `predict_max`,
//! default `Critical`), after the same confirmation time as a measured escalation
//! ([`Reason::Predicted`]). Noise with zero trend does not trigger it: over 16 s the slope
//! jitter of ±40 ‰ noise is about ±1.3 ‰/s, while 60 s to the limit from 56 % needs
//! 7.3 ‰/s.
//!
//! # Force
//!
//! [`Reading::force`] means the user asked for cleanup now: the current level's actions are
//! emitted immediately, ignoring the cooldown (at `Normal`, which has no actions, the
//! `Elevated` set is emitted — the cheapest cleanup). Force never changes the level; it is
//! recorded in the log as a [`Transition`] with `from == to` and [`Reason::Forced`]. If the
//! same step escalates, the escalation's actions already satisfy the request.

pub mod trend;

use core::fmt;

use heapless::Deque;
use trend::{Forecast, Trend};

/// Capacity of the transition log kept by [`Policy`]; older entries are dropped and counted.
pub const LOG_CAPACITY: usize = 32;

/// Pressure saturates at this many ppm (200 %).
pub const MAX_PRESSURE_PPM: u32 = 2_000_000;

/// Memory-pressure level, ordered `Normal < Elevated < High < Critical`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Level {
    /// No pressure: no actions.
    #[default]
    Normal,
    /// Android `RUNNING_MODERATE` / Chromium moderate: free cheap caches.
    Elevated,
    /// Android `RUNNING_LOW`: move audio out of memory, unload the model.
    High,
    /// Android `RUNNING_CRITICAL` / Chromium critical: free everything, even audio.
    Critical,
}

impl Level {
    /// All levels, lowest first.
    pub const ALL: [Level; 4] = [Level::Normal, Level::Elevated, Level::High, Level::Critical];

    /// Position in [`Level::ALL`] (0 for `Normal`).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The next higher level, if any.
    pub const fn up(self) -> Option<Level> {
        match self {
            Level::Normal => Some(Level::Elevated),
            Level::Elevated => Some(Level::High),
            Level::High => Some(Level::Critical),
            Level::Critical => None,
        }
    }

    /// The next lower level, if any.
    pub const fn down(self) -> Option<Level> {
        match self {
            Level::Normal => None,
            Level::Elevated => Some(Level::Normal),
            Level::High => Some(Level::Elevated),
            Level::Critical => Some(Level::High),
        }
    }

    /// Name as printed in transition lines.
    pub const fn name(self) -> &'static str {
        match self {
            Level::Normal => "Normal",
            Level::Elevated => "Elevated",
            Level::High => "High",
            Level::Critical => "Critical",
        }
    }

    /// The actions this level asks for: its own and every lower level's, cheapest first.
    pub const fn actions(self) -> Actions {
        // `Action::ALL` is ordered by level, two actions per level (checked at compile time
        // below its definition): a level's actions are the first two per level up to it.
        Actions {
            len: 2 * self as u8,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something the host should do to free memory. Ordered by cost: cheap and reversible first,
/// data loss last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Action {
    /// Return pooled, currently unused buffers to the allocator (Elevated).
    ReleaseIdleBuffers,
    /// Delete finished temporary files (Elevated).
    ReapTempFiles,
    /// Write the oldest in-memory audio to disk and free it (High).
    SpillOldestAudio,
    /// Unload the speech model; it can be reloaded from disk later (High).
    UnloadModel,
    /// Discard the oldest in-memory audio; the host counts what it dropped (Critical).
    DropOldestAudio,
    /// Refuse to start new recordings until pressure recedes (Critical).
    RefuseNewRecordings,
}

impl Action {
    /// Every action in emission order.
    pub const ALL: [Action; 6] = [
        Action::ReleaseIdleBuffers,
        Action::ReapTempFiles,
        Action::SpillOldestAudio,
        Action::UnloadModel,
        Action::DropOldestAudio,
        Action::RefuseNewRecordings,
    ];

    /// The lowest level that asks for this action.
    pub const fn level(self) -> Level {
        match self {
            Action::ReleaseIdleBuffers | Action::ReapTempFiles => Level::Elevated,
            Action::SpillOldestAudio | Action::UnloadModel => Level::High,
            Action::DropOldestAudio | Action::RefuseNewRecordings => Level::Critical,
        }
    }
}

// `Level::actions` relies on this layout of `Action::ALL`: two actions per level, by level.
// Evaluated by the compiler: a failing check (or index) is a build error, never a panic.
#[allow(clippy::indexing_slicing, clippy::panic)]
const _: () = {
    let mut i = 0;
    while i < Action::ALL.len() {
        assert!(Action::ALL[i].level() as usize == i / 2 + 1);
        i += 1;
    }
};

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::ReleaseIdleBuffers => "ReleaseIdleBuffers",
            Action::ReapTempFiles => "ReapTempFiles",
            Action::SpillOldestAudio => "SpillOldestAudio",
            Action::UnloadModel => "UnloadModel",
            Action::DropOldestAudio => "DropOldestAudio",
            Action::RefuseNewRecordings => "RefuseNewRecordings",
        })
    }
}

/// Fixed-capacity, ordered list of [`Action`]s (no allocation; at most one of each): always
/// the first `len` of [`Action::ALL`], so a length is all it stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Actions {
    len: u8,
}

impl fmt::Debug for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Actions {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=[?]}", self.as_slice());
    }
}

impl Default for Actions {
    fn default() -> Self {
        Self::new()
    }
}

impl Actions {
    /// The empty list.
    pub const fn new() -> Self {
        Self { len: 0 }
    }

    /// The actions, cheapest first.
    pub fn as_slice(&self) -> &[Action] {
        Action::ALL.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Iterate cheapest first.
    pub fn iter(&self) -> core::iter::Copied<core::slice::Iter<'_, Action>> {
        self.as_slice().iter().copied()
    }

    /// Number of actions.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// `true` when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `action` is in the list.
    pub fn contains(&self, action: Action) -> bool {
        self.as_slice().contains(&action)
    }
}

impl<'a> IntoIterator for &'a Actions {
    type Item = Action;
    type IntoIter = core::iter::Copied<core::slice::Iter<'a, Action>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Which figure produced the pressure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Source {
    /// `accounted / budget`.
    #[default]
    Accounted,
    /// `rss / rss_limit`.
    Rss,
    /// `available_reserve / available`.
    Available,
}

impl Source {
    /// Name as printed in transition lines.
    pub const fn name(self) -> &'static str {
        match self {
            Source::Accounted => "accounted",
            Source::Rss => "rss",
            Source::Available => "available",
        }
    }
}

/// A pressure figure: per-mille of the limit (rounded down, at most 2000) and its source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Pressure {
    /// Per-mille of the limit, rounded down.
    pub permille: u16,
    /// The figure that was highest.
    pub source: Source,
}

impl fmt::Display for Pressure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pressure={}‰ {}", self.permille, self.source.name())
    }
}

/// Why a [`Transition`] happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reason {
    /// Measured pressure crossed an enter threshold (up, after confirmation) or stayed below
    /// an exit threshold (down, after dwell and calm).
    Pressure(Pressure),
    /// The trend reaches 100 % within the horizon.
    Predicted {
        /// Measured pressure at the time.
        pressure: Pressure,
        /// Forecast milliseconds until the limit.
        eta_ms: u64,
    },
    /// The host's feedback showed the last actions freed too little.
    Ineffective {
        /// Bytes the host reported freed.
        freed: u64,
        /// Bytes needed to get back below the exit threshold.
        wanted: u64,
    },
    /// The user asked for cleanup (no level change: `from == to`).
    Forced(Pressure),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Pressure(p) => write!(f, "{p}"),
            Reason::Predicted { pressure, eta_ms } => {
                write!(f, "{pressure} predicted eta={eta_ms}ms")
            }
            Reason::Ineffective { freed, wanted } => {
                write!(f, "ineffective freed={freed}B wanted={wanted}B")
            }
            Reason::Forced(p) => write!(f, "forced {p}"),
        }
    }
}

/// One entry of the transition log: at `at_ms` the level went `from` → `to` because of
/// `reason`. Displays as one deterministic line, such as
/// `t=125000ms Normal->Elevated pressure=712‰ rss`,
/// `t=130000ms Elevated->High pressure=640‰ accounted predicted eta=45000ms`,
/// `t=131000ms High->Critical ineffective freed=1024B wanted=4096B` or
/// `t=140000ms High->High forced pressure=712‰ rss`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Transition {
    /// Time of the reading that caused it, ms (clamped to be non-decreasing).
    pub at_ms: u64,
    /// Level before.
    pub from: Level,
    /// Level after (equal to `from` for a forced cleanup).
    pub to: Level,
    /// Why.
    pub reason: Reason,
}

impl Transition {
    /// `false` for a forced cleanup entry (`from == to`).
    pub fn is_level_change(&self) -> bool {
        self.from != self.to
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={}ms {}->{} ", self.at_ms, self.from, self.to)?;
        // Reason's `fmt` writes through `write!`, ignoring `f`'s options, as `{}` would.
        self.reason.fmt(f)
    }
}

/// One sample of the host's memory figures.
///
/// `accounted`/`budget` come from the accountant, `rss`/`rss_limit` from the OS (the process'
/// resident set and the limit the host wants to stay under), `available` from the system
/// (e.g. Linux `MemAvailable`). A zero limit, or `available == u64::MAX`, means "not
/// observed". Times should not go backwards; if they do the policy uses the latest time seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Reading {
    /// Monotonic time of the sample, ms.
    pub now_ms: u64,
    /// Bytes the accountant holds.
    pub accounted: usize,
    /// The accountant's budget, bytes (0: not observed).
    pub budget: usize,
    /// Observed process bytes (resident set).
    pub rss: u64,
    /// Process bytes the host must stay under (0: not observed).
    pub rss_limit: u64,
    /// System available bytes (`u64::MAX`: not observed).
    pub available: u64,
    /// The user asked for cleanup now.
    pub force: bool,
}

impl Reading {
    /// A reading at `now_ms` with nothing observed (zero pressure) and no force.
    pub const fn new(now_ms: u64) -> Self {
        Self {
            now_ms,
            accounted: 0,
            budget: 0,
            rss: 0,
            rss_limit: 0,
            available: u64::MAX,
            force: false,
        }
    }
}

/// What one [`Policy::step`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Step {
    /// Level after this step.
    pub level: Level,
    /// The level change (or forced cleanup) recorded in this step, if any.
    pub transition: Option<Transition>,
    /// What the host should do now, cheapest first (empty most of the time).
    pub actions: Actions,
    /// Measured pressure of this reading.
    pub pressure: Pressure,
    /// Trend fit, once the window holds enough samples.
    pub forecast: Option<Forecast>,
}

/// Invalid [`PolicyParams`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// A level's exit threshold is not strictly below its enter threshold.
    ExitNotBelowEnter(Level),
    /// A level's exit threshold is 0: it could never be left.
    ExitZero(Level),
    /// A level's enter threshold is not strictly above the lower level's.
    EnterNotIncreasing(Level),
    /// A level's exit threshold is not strictly above the lower level's.
    ExitNotIncreasing(Level),
    /// An enter threshold above 1000 ‰.
    EnterAboveLimit(Level),
    /// Confirmation times must not decrease with the level.
    ConfirmNotIncreasing(Level),
    /// `dwell_ms` is 0.
    ZeroDwell,
    /// `cooldown_ms` is 0.
    ZeroCooldown,
    /// `ineffective_permille` above 1000.
    IneffectiveAboveLimit,
    /// `predict_max` is `Normal`.
    PredictMaxNormal,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ExitNotBelowEnter(l) => {
                write!(f, "{l}: exit threshold must be below enter")
            }
            ConfigError::ExitZero(l) => write!(f, "{l}: exit threshold must be above 0"),
            ConfigError::EnterNotIncreasing(l) => {
                write!(f, "{l}: enter threshold must exceed the lower level's")
            }
            ConfigError::ExitNotIncreasing(l) => {
                write!(f, "{l}: exit threshold must exceed the lower level's")
            }
            ConfigError::EnterAboveLimit(l) => write!(f, "{l}: enter threshold above 1000‰"),
            ConfigError::ConfirmNotIncreasing(l) => {
                write!(f, "{l}: confirmation time below the lower level's")
            }
            ConfigError::ZeroDwell => f.write_str("dwell must be at least 1 ms"),
            ConfigError::ZeroCooldown => f.write_str("cooldown must be at least 1 ms"),
            ConfigError::IneffectiveAboveLimit => f.write_str("ineffective threshold above 1000‰"),
            ConfigError::PredictMaxNormal => f.write_str("predict_max must be above Normal"),
        }
    }
}

impl core::error::Error for ConfigError {}

/// Unchecked policy parameters; turn them into a [`PolicyConfig`] with [`PolicyConfig::new`].
/// Arrays are indexed `[Elevated, High, Critical]`. See the [module docs](self) for the
/// justification of every default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PolicyParams {
    /// Pressure (‰) at or above which a level is entered. Default `[600, 750, 900]`.
    pub enter_permille: [u16; 3],
    /// Pressure (‰) below which a level may be left. Default `[500, 650, 800]`.
    pub exit_permille: [u16; 3],
    /// How long pressure (or a prediction) must hold before entering a level, ms.
    /// Default `[0, 1_000, 3_000]`.
    pub confirm_ms: [u32; 3],
    /// Minimum time in a level before stepping down, ms. Default 10 000.
    pub dwell_ms: u32,
    /// How long pressure must stay below the exit threshold before stepping down, ms.
    /// Default 3 000.
    pub calm_ms: u32,
    /// Minimum time between two emissions of a level's actions, ms. Default 1 500.
    pub cooldown_ms: u32,
    /// Escalate early when the trend reaches 100 % within this many ms; 0 disables
    /// prediction. Default 60 000.
    pub horizon_ms: u32,
    /// Highest level a prediction may escalate to. Default `Critical`.
    pub predict_max: Level,
    /// System available bytes that count as 100 % pressure; 0 ignores `available`.
    /// Default 360 MiB.
    pub available_reserve: u64,
    /// Feedback below this fraction (‰) of the wanted bytes is ineffective. Default 500.
    pub ineffective_permille: u16,
}

impl Default for PolicyParams {
    fn default() -> Self {
        Self {
            enter_permille: [600, 750, 900],
            exit_permille: [500, 650, 800],
            confirm_ms: [0, 1_000, 3_000],
            dwell_ms: 10_000,
            calm_ms: 3_000,
            cooldown_ms: 1_500,
            horizon_ms: 60_000,
            predict_max: Level::Critical,
            available_reserve: 360 << 20,
            ineffective_permille: 500,
        }
    }
}

/// Validated [`PolicyParams`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PolicyConfig {
    params: PolicyParams,
}

impl PolicyConfig {
    /// Check `params`: per level `0 < exit < enter ≤ 1000`, enter and exit strictly
    /// increasing with the level, confirmation times non-decreasing, non-zero dwell and
    /// cooldown, `ineffective_permille ≤ 1000`, `predict_max > Normal`.
    pub fn new(params: PolicyParams) -> Result<Self, ConfigError> {
        let levels = [Level::Elevated, Level::High, Level::Critical];
        let mut prev: Option<(u16, u16, u32)> = None;
        for (i, level) in levels.into_iter().enumerate() {
            let enter = params.enter_permille.get(i).copied().unwrap_or(0);
            let exit = params.exit_permille.get(i).copied().unwrap_or(0);
            let confirm = params.confirm_ms.get(i).copied().unwrap_or(0);
            if exit == 0 {
                return Err(ConfigError::ExitZero(level));
            }
            if exit >= enter {
                return Err(ConfigError::ExitNotBelowEnter(level));
            }
            if enter > 1000 {
                return Err(ConfigError::EnterAboveLimit(level));
            }
            if let Some((pe, px, pc)) = prev {
                if enter <= pe {
                    return Err(ConfigError::EnterNotIncreasing(level));
                }
                if exit <= px {
                    return Err(ConfigError::ExitNotIncreasing(level));
                }
                if confirm < pc {
                    return Err(ConfigError::ConfirmNotIncreasing(level));
                }
            }
            prev = Some((enter, exit, confirm));
        }
        if params.dwell_ms == 0 {
            return Err(ConfigError::ZeroDwell);
        }
        if params.cooldown_ms == 0 {
            return Err(ConfigError::ZeroCooldown);
        }
        if params.ineffective_permille > 1000 {
            return Err(ConfigError::IneffectiveAboveLimit);
        }
        if params.predict_max == Level::Normal {
            return Err(ConfigError::PredictMaxNormal);
        }
        Ok(Self { params })
    }

    /// The validated parameters.
    pub const fn params(&self) -> &PolicyParams {
        &self.params
    }

    /// Enter threshold of `level` in ppm (0 for `Normal`).
    pub fn enter_ppm(&self, level: Level) -> u32 {
        Self::pick(&self.params.enter_permille, level).map_or(0, |v| u32::from(v) * 1000)
    }

    /// Exit threshold of `level` in ppm (0 for `Normal`).
    pub fn exit_ppm(&self, level: Level) -> u32 {
        Self::pick(&self.params.exit_permille, level).map_or(0, |v| u32::from(v) * 1000)
    }

    /// Confirmation time of `level`, ms (0 for `Normal`).
    pub fn confirm_ms(&self, level: Level) -> u64 {
        Self::pick(&self.params.confirm_ms, level).map_or(0, u64::from)
    }

    fn pick<T: Copy>(arr: &[T; 3], level: Level) -> Option<T> {
        level
            .index()
            .checked_sub(1)
            .and_then(|i| arr.get(i).copied())
    }
}

/// Fixed-capacity log of the last [`LOG_CAPACITY`] transitions; older ones are dropped and
/// counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionLog {
    /// Oldest first. A `Deque` (drop the oldest when full, push the newest), not the
    /// hand-written ring it replaced (148 B more of the core's `.text` on thumbv7m,
    /// `scripts/firmware`) nor a `heapless::HistoryBuf` (8 B less, but its `write` indexes
    /// its storage with a bounds check the optimizer keeps: a panic branch in the core).
    entries: Deque<Transition, LOG_CAPACITY>,
    dropped: u64,
}

impl TransitionLog {
    const fn new() -> Self {
        Self {
            entries: Deque::new(),
            dropped: 0,
        }
    }

    #[inline(never)]
    fn push(&mut self, t: Transition) {
        if self.entries.is_full() {
            self.entries.pop_front();
            self.dropped = self.dropped.saturating_add(1);
        }
        // Cannot fail: there is room now.
        let _ = self.entries.push_back(t);
    }

    /// Entries held (at most [`LOG_CAPACITY`]).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when nothing was logged (the newest entries are always kept).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many of the oldest entries were dropped because the log was full.
    pub const fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Entries, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Transition> + '_ {
        self.entries.iter()
    }
}

/// What the trend says at one step (see [`Policy::step`]'s `predict`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Prediction {
    /// The predicted level once confirmed, else `Normal`.
    confirmed: Level,
    /// The predicted level, confirmed or not (`Normal` when none): holds the current level.
    holding: Level,
    /// The forecast's sustained eta, when within the horizon.
    eta_ms: Option<u64>,
}

/// Actions emitted and awaiting feedback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    level: Level,
    wanted: u64,
    freed: u64,
    reported: bool,
}

/// The cleanup-policy state machine: feed it readings with [`Policy::step`]. See the
/// [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    config: PolicyConfig,
    level: Level,
    /// Latest time seen (times are clamped to never decrease); 0 before the first reading.
    now_ms: u64,
    /// When the current level was entered.
    entered_ms: u64,
    /// Last emission of actions.
    last_action_ms: Option<u64>,
    /// Per level (index = `Level::index`): since when pressure is at or above its enter
    /// threshold.
    above_since: [Option<u64>; 4],
    /// Since when pressure is below the current level's exit threshold without a prediction.
    calm_since: Option<u64>,
    /// Since when the forecast reaches the limit within the horizon.
    predicted_since: Option<u64>,
    /// Per level: feedback escalation already used in this pressure episode.
    ineffective_used: [bool; 4],
    pending: Option<Pending>,
    trend: Trend,
    log: TransitionLog,
}

impl Default for Policy {
    fn default() -> Self {
        Self::new(PolicyConfig::default())
    }
}

/// `num / den` in ppm, saturating at [`MAX_PRESSURE_PPM`]; 0 when `den == 0`.
fn ratio_ppm(num: u64, den: u64) -> u32 {
    if den == 0 || num == 0 {
        return 0;
    }
    if num / 2 >= den {
        return MAX_PRESSURE_PPM;
    }
    // Now num < 2·den. Scale down huge values so num·10⁶ fits in u64 (num < 2⁴⁴): the
    // product cannot wrap, and d >= 2²³ after scaling.
    let (n, d) = if den >= 1 << 43 {
        (num >> 20, den >> 20)
    } else {
        (num, den)
    };
    let v = n.wrapping_mul(1_000_000).checked_div(d).unwrap_or(0);
    u32::try_from(v.min(u64::from(MAX_PRESSURE_PPM))).unwrap_or(MAX_PRESSURE_PPM)
}

/// `ppm` as reported: per-mille rounded down (at most 2000 ‰ since `ppm` saturates).
fn to_pressure(ppm: u32, source: Source) -> Pressure {
    Pressure {
        permille: u16::try_from(ppm / 1000).unwrap_or(u16::MAX),
        source,
    }
}

/// `⌈value · permille / 1000⌉` for `permille ≤ 1000` (then at most `value`: no overflow), so
/// that `freed · 1000 < wanted · permille` exactly when `freed < ceil_permille(wanted,
/// permille)`.
fn ceil_permille(value: u64, permille: u16) -> u64 {
    // `PolicyConfig::new` refuses more than 1000; the clamp keeps this total on its own.
    let permille = u64::from(permille.min(1000));
    (value / 1000) * permille + ((value % 1000) * permille).div_ceil(1000)
}

/// `value · permille / 1000` without overflow (`permille ≤ 1000`).
fn scale_permille(value: u64, permille: u64) -> u64 {
    (value / 1000)
        .saturating_mul(permille)
        .saturating_add((value % 1000).saturating_mul(permille) / 1000)
}

impl Policy {
    /// A policy at `Normal` with empty history and log.
    pub const fn new(config: PolicyConfig) -> Self {
        Self {
            config,
            level: Level::Normal,
            now_ms: 0,
            entered_ms: 0,
            last_action_ms: None,
            above_since: [None; 4],
            calm_since: None,
            predicted_since: None,
            ineffective_used: [false; 4],
            pending: None,
            trend: Trend::new(),
            log: TransitionLog::new(),
        }
    }

    /// Current level.
    pub const fn level(&self) -> Level {
        self.level
    }

    /// The configuration.
    pub const fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The transition log (level changes and forced cleanups).
    pub const fn log(&self) -> &TransitionLog {
        &self.log
    }

    /// Measured pressure of `reading` under this policy's configuration.
    pub fn pressure(&self, reading: &Reading) -> Pressure {
        let (ppm, source) = self.pressure_ppm(reading);
        to_pressure(ppm, source)
    }

    fn pressure_ppm(&self, r: &Reading) -> (u32, Source) {
        let acc = ratio_ppm(r.accounted as u64, r.budget as u64);
        let rss = ratio_ppm(r.rss, r.rss_limit);
        let reserve = self.config.params.available_reserve;
        let avail = if reserve == 0 {
            0
        } else if r.available == 0 {
            MAX_PRESSURE_PPM
        } else {
            ratio_ppm(reserve, r.available)
        };
        let mut best = (acc, Source::Accounted);
        if rss > best.0 {
            best = (rss, Source::Rss);
        }
        if avail > best.0 {
            best = (avail, Source::Available);
        }
        best
    }

    /// Bytes needed to bring every observed figure below `level`'s exit threshold.
    fn wanted(&self, r: &Reading, level: Level) -> u64 {
        let exit = self.config.exit_ppm(level) / 1000;
        if exit == 0 {
            return 0;
        }
        let exit = u64::from(exit);
        let mut wanted = 0u64;
        if r.budget != 0 {
            wanted = wanted
                .max((r.accounted as u64).saturating_sub(scale_permille(r.budget as u64, exit)));
        }
        if r.rss_limit != 0 {
            wanted = wanted.max(r.rss.saturating_sub(scale_permille(r.rss_limit, exit)));
        }
        let reserve = self.config.params.available_reserve;
        if reserve != 0 && r.available != u64::MAX {
            let target = reserve.saturating_mul(1000) / exit;
            wanted = wanted.max(target.saturating_sub(r.available));
        }
        wanted
    }

    /// Report bytes the host's last actions freed. May be called several times per batch
    /// (the amounts add up); ignored when no actions are outstanding. Evaluated at the next
    /// [`step`](Self::step): see the module docs, *Feedback*.
    ///
    /// ```
    /// use w4l_core::policy::{Level, Policy, Reading};
    /// let mut p = Policy::default();
    /// let r = |t| Reading { rss: 70, rss_limit: 100, ..Reading::new(t) };
    /// assert_eq!(p.step(&r(0)).level, Level::Elevated);
    /// p.feedback(0); // cheap cleanup freed nothing
    /// let s = p.step(&r(1_000));
    /// assert_eq!(s.level, Level::High);
    /// assert_eq!(s.transition.unwrap().to_string(), "t=1000ms Elevated->High ineffective freed=0B wanted=20B");
    /// ```
    pub fn feedback(&mut self, freed_bytes: u64) {
        if let Some(p) = self.pending.as_mut() {
            p.freed = p.freed.saturating_add(freed_bytes);
            p.reported = true;
        }
    }

    /// Feed one reading; get the level, the transition if any, and the actions to perform,
    /// cheapest first.
    ///
    /// In order: measure the pressure and confirm the levels it reaches, consult the trend,
    /// escalate (measured, predicted, or because the last actions freed too little), or else
    /// settle (step down after dwell and calm, or repeat the level's actions once the
    /// cooldown has passed); a forced reading with nothing else to do cleans up at the
    /// current level. Only the latest time seen counts: an earlier `now_ms` is taken as it.
    ///
    /// ```
    /// use w4l_core::policy::{Action, Level, Policy, Reading};
    ///
    /// let mut policy = Policy::default();
    /// let at = |t, rss| Reading { rss, rss_limit: 100, ..Reading::new(t) };
    ///
    /// // 95 % of the limit: Elevated at once, with its two cheap actions...
    /// let s = policy.step(&at(0, 95));
    /// assert_eq!((s.level, s.actions.len()), (Level::Elevated, 2));
    /// assert_eq!(s.transition.unwrap().to_string(), "t=0ms Normal->Elevated pressure=950‰ rss");
    /// // ...High once confirmed for 1 s, Critical for 3 s; each adds its own actions.
    /// assert_eq!(policy.step(&at(1_000, 95)).level, Level::High);
    /// let s = policy.step(&at(3_000, 95));
    /// assert_eq!(s.level, Level::Critical);
    /// assert_eq!(s.actions.iter().last(), Some(Action::RefuseNewRecordings));
    ///
    /// // Pressure falls: the level is held for the 10 s dwell, then goes down one step.
    /// assert_eq!(policy.step(&at(4_000, 10)).level, Level::Critical);
    /// assert_eq!(policy.step(&at(13_000, 10)).level, Level::High);
    ///
    /// // The user asks for cleanup: the current level's actions now, the level unchanged.
    /// let s = policy.step(&Reading { force: true, ..at(13_500, 10) });
    /// assert_eq!((s.level, s.actions.len()), (Level::High, 4));
    /// assert!(!s.transition.unwrap().is_level_change());
    /// ```
    pub fn step(&mut self, reading: &Reading) -> Step {
        // Times never go backwards: the latest time seen (0 before the first reading). Every
        // time the policy keeps (`*_since`, `entered_ms`, `last_action_ms`) is an earlier
        // `now`, so `now.wrapping_sub(t)` in the steps below is the exact elapsed time.
        let now = reading.now_ms.max(self.now_ms);
        self.now_ms = now;
        let (ppm, source) = self.pressure_ppm(reading);
        let pressure = to_pressure(ppm, source);
        self.trend.push(now, ppm);
        let forecast = self.trend.forecast();
        let (measured, instant) = self.measure(now, ppm);
        let prediction = self.predict(now, instant, forecast);
        let (target, reason) = self.escalation(ppm, pressure, measured, &prediction);
        // The new level (or a forced cleanup's `from`) and why; the level to act on.
        let from = self.level;
        let (mut change, mut act) = if target > from {
            (Some((target, reason)), Some(target))
        } else {
            self.settle(now, ppm, pressure, forecast, prediction.holding)
        };
        if reading.force && act.is_none() {
            let to = change.map_or(from, |(to, _)| to);
            change.get_or_insert((from, Reason::Forced(pressure)));
            act = Some(to.max(Level::Elevated));
        }
        let transition = change.map(|(to, reason)| self.record(now, to, reason));
        let actions = match act {
            Some(level) => self.emit(now, reading, level),
            None => Actions::new(),
        };
        Step {
            level: self.level,
            transition,
            actions,
            pressure,
            forecast,
        }
    }

    /// The measured level, the highest whose enter threshold `ppm` has met for its
    /// confirmation time, and the instantaneous one, the highest whose enter threshold it
    /// meets now. Also re-arms feedback escalation for every level whose pressure episode is
    /// over (`ppm` below its exit threshold).
    fn measure(&mut self, now: u64, ppm: u32) -> (Level, Level) {
        let mut measured = Level::Normal;
        let mut instant = Level::Normal;
        for level in [Level::Elevated, Level::High, Level::Critical] {
            let i = level.index();
            let (Some(slot), Some(used)) = (
                self.above_since.get_mut(i),
                self.ineffective_used.get_mut(i),
            ) else {
                continue;
            };
            if ppm >= self.config.enter_ppm(level) {
                let since = *slot.get_or_insert(now);
                instant = level;
                if now.wrapping_sub(since) >= self.config.confirm_ms(level) {
                    measured = level;
                }
            } else {
                *slot = None;
            }
            if ppm < self.config.exit_ppm(level) {
                *used = false;
            }
        }
        (measured, instant)
    }

    /// What the trend says: while its sustained eta is within the horizon, the level one above
    /// the `instant` one (capped at `predict_max`) holds the current level, and counts once it
    /// has lasted that level's confirmation time.
    fn predict(&mut self, now: u64, instant: Level, forecast: Option<Forecast>) -> Prediction {
        let horizon = u64::from(self.config.params.horizon_ms);
        let eta_ms = forecast
            .and_then(|f| f.sustained_eta_ms())
            .filter(|&e| horizon > 0 && e <= horizon);
        let mut prediction = Prediction {
            confirmed: Level::Normal,
            holding: Level::Normal,
            eta_ms,
        };
        if eta_ms.is_some() {
            let since = *self.predicted_since.get_or_insert(now);
            let target = instant
                .up()
                .unwrap_or(Level::Critical)
                .min(self.config.params.predict_max);
            prediction.holding = target;
            if now.wrapping_sub(since) >= self.config.confirm_ms(target) {
                prediction.confirmed = target;
            }
        } else {
            self.predicted_since = None;
        }
        prediction
    }

    /// The level pressure calls for and why: the measured level, a confirmed prediction above
    /// it, or one above the current level when the last actions freed too little while
    /// pressure persists (once per episode). Consumes the pending feedback.
    fn escalation(
        &mut self,
        ppm: u32,
        pressure: Pressure,
        measured: Level,
        prediction: &Prediction,
    ) -> (Level, Reason) {
        let from = self.level;
        let mut target = measured;
        let mut reason = Reason::Pressure(pressure);
        if prediction.confirmed > target {
            target = prediction.confirmed;
            reason = Reason::Predicted {
                pressure,
                eta_ms: prediction.eta_ms.unwrap_or(0),
            };
        }
        if let Some(p) = self.pending.take()
            && p.reported
            && p.level == from
            && from > Level::Normal
            && ppm >= self.config.enter_ppm(from)
            && p.freed < ceil_permille(p.wanted, self.config.params.ineffective_permille)
            && let Some(up) = from.up()
            && up > target
            && let Some(used) = self.ineffective_used.get_mut(from.index())
            && !*used
        {
            target = up;
            reason = Reason::Ineffective {
                freed: p.freed,
                wanted: p.wanted,
            };
            *used = true;
        }
        (target, reason)
    }

    /// No escalation: step down one level once the current one has been held for `dwell` and
    /// pressure has been calm for `calm`; else, while pressure stays in the level, repeat its
    /// actions once the cooldown has passed. Returns the change and the level to act on.
    fn settle(
        &mut self,
        now: u64,
        ppm: u32,
        pressure: Pressure,
        forecast: Option<Forecast>,
        holding: Level,
    ) -> (Option<(Level, Reason)>, Option<Level>) {
        let from = self.level;
        let horizon = u64::from(self.config.params.horizon_ms);
        // Calm: below the exit threshold with no prediction holding this level. Rising back
        // into this level within the horizon also holds it.
        if from > Level::Normal
            && ppm < self.config.exit_ppm(from)
            && holding < from
            && forecast
                .and_then(|f| f.eta_to_ms(self.config.enter_ppm(from)))
                .is_none_or(|e| e > horizon)
        {
            self.calm_since.get_or_insert(now);
        } else {
            self.calm_since = None;
        }
        if let (Some(calm_since), Some(down)) = (self.calm_since, from.down())
            && now.wrapping_sub(self.entered_ms) >= u64::from(self.config.params.dwell_ms)
            && now.wrapping_sub(calm_since) >= u64::from(self.config.params.calm_ms)
        {
            (Some((down, Reason::Pressure(pressure))), None)
        } else if from > Level::Normal && ppm >= self.config.exit_ppm(from) && self.cooled_down(now)
        {
            (None, Some(from))
        } else {
            (None, None)
        }
    }

    /// Moves to `to` (unless it is the current level: a forced cleanup) and logs the
    /// transition.
    fn record(&mut self, now: u64, to: Level, reason: Reason) -> Transition {
        let from = self.level;
        if to != from {
            self.level = to;
            self.entered_ms = now;
            self.calm_since = None;
        }
        let t = Transition {
            at_ms: now,
            from,
            to,
            reason,
        };
        self.log.push(t);
        t
    }

    fn cooled_down(&self, now: u64) -> bool {
        self.last_action_ms
            .is_none_or(|last| now.wrapping_sub(last) >= u64::from(self.config.params.cooldown_ms))
    }

    fn emit(&mut self, now: u64, reading: &Reading, level: Level) -> Actions {
        self.last_action_ms = Some(now);
        self.pending = Some(Pending {
            level: self.level,
            wanted: self.wanted(reading, level),
            freed: 0,
            reported: false,
        });
        level.actions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_edges() {
        assert_eq!(ratio_ppm(0, 0), 0);
        assert_eq!(ratio_ppm(5, 0), 0);
        assert_eq!(ratio_ppm(u64::MAX, 1), MAX_PRESSURE_PPM);
        assert_eq!(ratio_ppm(u64::MAX / 2, u64::MAX / 2), 1_000_000);
        assert_eq!(ratio_ppm(1, 3), 333_333);
    }

    #[test]
    fn ceil_permille_decides_like_the_wide_product() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let n = if cfg!(miri) { 200 } else { 20_000 };
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let wanted = x >> (x % 64);
            let permille = (x % 1001) as u16;
            let c = ceil_permille(wanted, permille);
            for freed in [
                c.wrapping_sub(1),
                c,
                c.saturating_add(1),
                0,
                wanted,
                u64::MAX,
            ] {
                assert_eq!(
                    freed < c,
                    u128::from(freed) * 1000 < u128::from(wanted) * u128::from(permille),
                    "freed {freed} wanted {wanted} permille {permille}"
                );
            }
        }
    }

    #[test]
    fn scale_permille_is_exact_for_small_and_safe_for_huge() {
        assert_eq!(scale_permille(1000, 500), 500);
        assert_eq!(scale_permille(1999, 500), 999);
        assert!(scale_permille(u64::MAX, 1000) > u64::MAX / 2);
    }

    #[test]
    fn cooldown_limits_repeats_and_force_bypasses_it() {
        let mut p = Policy::default();
        let r = |t| Reading {
            rss: 62,
            rss_limit: 100,
            ..Reading::new(t)
        };
        assert_eq!(p.step(&r(0)).actions.len(), 2);
        assert!(p.step(&r(1_000)).actions.is_empty());
        assert_eq!(p.step(&r(2_000)).actions.len(), 2);
        let forced = p.step(&Reading {
            force: true,
            ..r(2_100)
        });
        assert_eq!(forced.actions.len(), 2);
        assert_eq!(forced.transition.map(|t| t.is_level_change()), Some(false));
    }

    #[test]
    fn prediction_escalates_before_threshold() {
        let mut p = Policy::default();
        // +2 %/s from 10 %: limit in 45 s once at 10 %.
        let mut first_up = None;
        for i in 0..20u64 {
            let s = p.step(&Reading {
                rss: 100 + i * 20,
                rss_limit: 1000,
                ..Reading::new(i * 1000)
            });
            if first_up.is_none()
                && let Some(t) = s.transition
            {
                first_up = Some(t);
            }
        }
        let t = first_up.unwrap();
        assert!(matches!(t.reason, Reason::Predicted { .. }), "{t}");
        assert_eq!(t.to, Level::Elevated);
    }
}
