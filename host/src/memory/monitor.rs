//! The memory monitor: readings of this process and the system through `sysinfo`, fed to the
//! core cleanup policy, whose actions it carries out through registered callbacks.
//!
//! # Readings and decisions
//!
//! A [`MemoryMonitor`] combines three figures into a [`w4l_core::policy::Reading`]: the bytes
//! the [`Accountant`] holds (and its budget), this process's resident set (RSS) against an RSS
//! limit, and the system's available memory. The core [`Policy`] turns a stream of readings
//! into a level (`Normal`, `Elevated`, `High`, `Critical`) and, now and then, a list of
//! [`Action`]s. The monitor decides nothing itself: it runs every registered cleanup callback
//! with the actions, adds up the bytes they report freed and feeds that back to the policy
//! (which escalates when cleanups prove ineffective).
//!
//! # Interval
//!
//! [`MonitorConfig::interval`] defaults to **1 s** (the earlier design used 30 s). A recording
//! grows its memory by 32 KB/s (16 kHz mono, 16-bit) up to 384 KB/s (48 kHz stereo, `f32`), and
//! the policy's timings are built around one reading per second: `High` is entered after 1 s
//! of confirmation, `Critical` after 3 s, actions repeat at most every 1.5 s, and the trend
//! fit uses the last 16 readings. At 30 s the policy could neither confirm nor predict before
//! a small budget ran out. One reading costs one `pread` each of `/proc/self/statm` and
//! `/proc/meminfo`, kept open (about 10 µs), so 1 s is cheap.
//!
//! The recorder (`w4l::recorder::Recorder`) does not use the background thread: its worker
//! calls [`MemoryMonitor::step_at`] once per second of *captured audio*, so decisions follow the
//! audio and are deterministic on replay. [`MemoryMonitor::start`] runs the same steps on a
//! background thread at the wall-clock interval, for a GUI; [`MemoryMonitor::stop`] wakes and
//! joins it at once (a condition variable, not a sleep).
//!
//! # The machine's limits and signals
//!
//! A monitor that observes the system also reads, once at start (each optional; every path
//! injectable through [`MonitorConfig`]):
//!
//! - **the cgroup's limit** ([`MonitorConfig::cgroup`]): when it is tighter than
//!   [`MonitorConfig::rss_limit`] (or that is 0), it becomes the RSS limit, so the policy acts
//!   before the kernel reclaims or kills. Budgets are capped by [`memory_ceiling`]: the
//!   smaller of `MemAvailable` and the cgroup's headroom.
//! - **kernel pressure events** ([`MonitorConfig::pressure`], PSI; see
//!   [`psi`](crate::memory::psi)): an event makes the policy step at once, forced, between two
//!   periodic readings, on the stepping thread's own clock ([`MemoryMonitor::step_on_pressure`];
//!   why in the `pressure` module). Any [`PressureWatch`](crate::memory::watch::PressureWatch) can be attached instead
//!   ([`MemoryMonitor::set_pressure_watch`]: a test's pipe, an app's own source). The 1 s
//!   readings carry on either way: they are the fallback when the kernel refuses a trigger.
//! - **files in RAM**: a take's journal on tmpfs is memory, not disk;
//!   [`MemoryMonitor::count_disk_as_memory`] adds the accountant's disk bytes to the RSS of
//!   every reading (the RSS limit then bounds both, as the cgroup and `MemAvailable` do).
//!
//! [`MemoryMonitor::detected`] says what was found, for `w4l monitor`.
//!
//! # History
//!
//! With [`MonitorConfig::history`], every periodic step keeps a [`Sample`] of the figures and
//! [`MemoryMonitor::note_mark`] keeps marks (evictions, drops, unloads); [`MemoryMonitor::chart`]
//! gives them as a [`Timeline`](crate::memory::timeline::Timeline) for [`timeline_svg`](crate::memory::timeline_svg).

mod history;
mod machine;
mod pressure;
mod probe;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use w4l_core::accountant::Accountant;
use w4l_core::policy::{
    Action, Actions, Level, Policy, PolicyConfig, Pressure, Reading, Transition,
};

use crate::error::{Error, Result};
use crate::memory::cgroup::CgroupMemory;
use crate::memory::psi::PsiConfig;
use crate::memory::timeline::{Mark, Sample};
use history::History;
pub use machine::{
    CeilingSource, CgroupInfo, Detected, MemoryCeiling, ceiling, machine_ceiling, memory_ceiling,
};
pub use pressure::PressureStatus;
use pressure::Watcher;
pub use probe::{Probe, SystemReading};

/// How a [`MemoryMonitor`] reads and decides.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Time between two readings of the background thread (see the module docs for the 1 s
    /// default).
    pub interval: Duration,
    /// The policy's thresholds and timings.
    pub policy: PolicyConfig,
    /// Process RSS the host must stay under, bytes; 0: RSS is not part of the pressure.
    pub rss_limit: u64,
    /// Read RSS and available memory from the system. `false` leaves only the accountant's
    /// figures in the readings, which makes every decision deterministic (`w4l demo`, tests):
    /// then neither the cgroup nor kernel pressure events are read either.
    pub observe_system: bool,
    /// The cgroup whose limit becomes the RSS limit when tighter (see the module docs).
    /// Default: this process's ([`CgroupMemory::of_this_process`]); `None`: none.
    pub cgroup: Option<CgroupMemory>,
    /// Where kernel pressure events come from. Default: [`PsiConfig::from_env`] (systemd's
    /// `$MEMORY_PRESSURE_WATCH`, the cgroup's `memory.pressure`, `/proc/pressure/memory`);
    /// `None`: none, the periodic readings alone.
    pub pressure: Option<PsiConfig>,
    /// Samples kept for [`MemoryMonitor::chart`]: one per `interval` of the stepping clock,
    /// the resolution halved when full (so any session fits). 0 (the default): none kept.
    /// 3600 samples are 230 KB.
    pub history: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            policy: PolicyConfig::default(),
            rss_limit: 0,
            observe_system: true,
            cgroup: CgroupMemory::of_this_process(),
            pressure: Some(PsiConfig::from_env()),
            history: 0,
        }
    }
}

/// A snapshot of memory figures and the policy's view of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MemoryUsage {
    /// This process's resident set, bytes (0 when the system is not observed), and the bytes
    /// of its files in RAM ([`MemoryMonitor::count_disk_as_memory`]).
    pub rss: u64,
    /// Of `rss`, the bytes of files in RAM (a take's journal on tmpfs).
    pub files_in_memory: u64,
    /// Process RSS limit, bytes (0: not observed): the configured one or the cgroup's.
    pub rss_limit: u64,
    /// System available memory, bytes (0 when not observed).
    pub available: u64,
    /// System total memory, bytes (0 when not observed).
    pub total: u64,
    /// Bytes the accountant holds (all memory categories).
    pub accounted: u64,
    /// The accountant's memory budget, bytes.
    pub budget: u64,
    /// Highest pressure source, per mille of its limit.
    pub pressure_permille: u16,
    /// Which figure that was: `accounted`, `rss` or `available`.
    pub pressure_source: &'static str,
    /// The policy's current level.
    #[serde(serialize_with = "level_name")]
    pub level: Level,
}

fn level_name<S: serde::Serializer>(level: &Level, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(level.name())
}

/// What cleanup callbacks are asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupRequest {
    /// Time of the reading, ms (the monitor's clock).
    pub at_ms: u64,
    /// The level the actions belong to.
    pub level: Level,
    /// The actions, cheapest first. A callback does what it can and ignores the rest.
    pub actions: Actions,
    /// Bytes that would bring the pressure back below the level's exit threshold.
    pub wanted: u64,
    /// Whether the user (or a refused reservation) asked for this cleanup.
    pub forced: bool,
}

impl CleanupRequest {
    /// Whether `action` is requested.
    pub fn wants(&self, action: Action) -> bool {
        self.actions.contains(action)
    }
}

/// A cleanup callback: performs what it can of the request and returns the bytes it freed.
pub type CleanupCallback = dyn Fn(&CleanupRequest) -> u64 + Send + Sync;

/// Identifies a registered callback, for [`MemoryMonitor::remove_cleanup_callback`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

/// One entry of the monitor's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The policy changed level (or recorded a forced cleanup).
    Transition(Transition),
    /// Actions were run; the callbacks reported `freed` bytes.
    Cleanup {
        /// Time, ms.
        at_ms: u64,
        /// The level the actions belong to.
        level: Level,
        /// The actions.
        actions: Actions,
        /// Bytes the callbacks reported freed.
        freed: u64,
        /// Forced (by the user or a refused reservation)?
        forced: bool,
    },
    /// Something a client (e.g. the recorder) wants on the timeline.
    Note {
        /// Time, ms.
        at_ms: u64,
        /// What happened, one line.
        text: String,
        /// The chart's mark for it, if it freed or lost memory ([`MemoryMonitor::note_mark`]).
        mark: Option<Mark>,
    },
}

impl Event {
    /// Time of the event, ms.
    pub fn at_ms(&self) -> u64 {
        match self {
            Event::Transition(t) => t.at_ms,
            Event::Cleanup { at_ms, .. } | Event::Note { at_ms, .. } => *at_ms,
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Transition(t) => write!(f, "{t}"),
            Event::Cleanup {
                at_ms,
                level,
                actions,
                freed,
                forced,
            } => {
                let names: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
                write!(
                    f,
                    "t={at_ms}ms {}cleanup at {level}: {} -> freed {freed}B",
                    if *forced { "forced " } else { "" },
                    names.join(", ")
                )
            }
            Event::Note { at_ms, text, .. } => write!(f, "t={at_ms}ms {text}"),
        }
    }
}

/// What one [`MemoryMonitor::step_at`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    /// The level after the step.
    pub level: Level,
    /// The pressure measured.
    pub pressure: Pressure,
    /// The level change (or forced-cleanup entry), if any.
    pub transition: Option<Transition>,
    /// Actions run (empty most of the time).
    pub actions: Actions,
    /// Bytes the callbacks reported freed.
    pub freed: u64,
}

/// Most timeline entries kept; older ones are counted and dropped.
const TIMELINE_CAPACITY: usize = 10_000;

/// How old a reading of the process's and the system's memory may be when the policy steps.
const MAX_READING_AGE: Duration = Duration::from_millis(100);

struct State {
    policy: Policy,
    probe: Option<Probe>,
    last: Option<SystemReading>,
    /// When /proc was last read (wall clock), successfully or not (a failing read is not
    /// retried at every step); `None` makes the next step read it.
    last_at: Option<Instant>,
    timeline: std::collections::VecDeque<Event>,
    timeline_dropped: u64,
    history: Option<History>,
}

struct Shared {
    accountant: Arc<Accountant>,
    config: MonitorConfig,
    /// The RSS limit in use: the configured one or the cgroup's (see the module docs).
    rss_limit: u64,
    /// The cgroup read at start (observing monitors only).
    cgroup: Option<CgroupMemory>,
    origin: Instant,
    state: Mutex<State>,
    callbacks: Mutex<Vec<(CallbackId, Arc<CleanupCallback>)>>,
    next_id: AtomicU64,
    stop: Mutex<bool>,
    /// Wakes the background thread (stop, or a pressure event) and `wait_for_pressure`.
    wake: Condvar,
    pressure: pressure::Link,
    /// The accountant's disk bytes are in RAM (tmpfs): they count in the RSS.
    disk_in_memory: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking callback must not take the monitor down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Memory readings + the core policy + cleanup callbacks (see the module docs).
///
/// `Send + Sync`; share it in an `Arc`. Dropping it stops the background thread.
pub struct MemoryMonitor {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    watcher: Mutex<Watcher>,
}

impl std::fmt::Debug for MemoryMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryMonitor")
            .field("config", &self.shared.config)
            .field("level", &self.level())
            .finish_non_exhaustive()
    }
}

impl MemoryMonitor {
    /// A monitor over `accountant`'s figures (and the system's, if configured: then the
    /// cgroup is read and kernel pressure events are set up here, see the module docs).
    ///
    /// # Errors
    ///
    /// A runtime error when the system's memory figures cannot be read.
    pub fn new(accountant: Arc<Accountant>, config: MonitorConfig) -> Result<Self> {
        let observe = config.observe_system;
        let probe = if observe { Some(Probe::new()?) } else { None };
        let cgroup = config.cgroup.clone().filter(|_| observe);
        let rss_limit = machine::rss_limit(
            config.rss_limit,
            cgroup.as_ref().and_then(CgroupMemory::limit),
        );
        let state = State {
            policy: Policy::new(config.policy),
            probe,
            last: None,
            last_at: None,
            timeline: std::collections::VecDeque::new(),
            timeline_dropped: 0,
            history: History::new(
                config.history,
                u64::try_from(config.interval.as_millis()).unwrap_or(u64::MAX),
            ),
        };
        let psi = config.pressure.clone().filter(|_| observe);
        let monitor = Self {
            shared: Arc::new(Shared {
                accountant,
                config,
                rss_limit,
                cgroup,
                origin: Instant::now(),
                state: Mutex::new(state),
                callbacks: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                stop: Mutex::new(false),
                wake: Condvar::new(),
                pressure: pressure::Link::default(),
                disk_in_memory: AtomicBool::new(false),
            }),
            thread: Mutex::new(None),
            watcher: Mutex::new(Watcher::off(if observe {
                "no memory pressure events: none were asked for (MonitorConfig::pressure)"
            } else {
                "no memory pressure events: the monitor does not observe the system"
            })),
        };
        if let Some(psi) = psi {
            monitor.open_pressure(&psi);
        }
        Ok(monitor)
    }

    /// The configuration.
    pub fn config(&self) -> &MonitorConfig {
        &self.shared.config
    }

    /// The accountant whose figures are read.
    pub fn accountant(&self) -> &Arc<Accountant> {
        &self.shared.accountant
    }

    /// Milliseconds since the monitor was created (the clock of [`start`](Self::start) and
    /// [`cleanup`](Self::cleanup)).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.shared.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The policy's current level.
    pub fn level(&self) -> Level {
        lock(&self.shared.state).policy.level()
    }

    /// A fresh reading and the policy's view of it, without stepping the policy.
    pub fn usage(&self) -> MemoryUsage {
        let mut state = lock(&self.shared.state);
        state.last_at = None;
        let reading = self.shared.read(&mut state, 0, false);
        let pressure = state.policy.pressure(&reading);
        self.shared.usage(&state, &reading, pressure)
    }

    /// Whether memory is high: the policy is at `High` or above, or the current pressure is
    /// at or above `High`'s enter threshold.
    pub fn is_high(&self) -> bool {
        let mut state = lock(&self.shared.state);
        let reading = self.shared.read(&mut state, 0, false);
        let ppm = u32::from(state.policy.pressure(&reading).permille) * 1000;
        state.policy.level() >= Level::High || ppm >= state.policy.config().enter_ppm(Level::High)
    }

    /// Steps the policy now (wall clock). With `force`, the current level's actions (at least
    /// `Elevated`'s) run even without pressure; without it, only what the policy decides runs.
    pub fn cleanup(&self, force: bool) -> StepReport {
        self.step_forced(self.now_ms(), force)
    }

    /// Steps the policy with a reading at `now_ms` (any monotonic clock: the recorder uses the
    /// captured audio's time) and runs the actions it returns.
    pub fn step_at(&self, now_ms: u64) -> StepReport {
        self.step_forced(now_ms, false)
    }

    /// Like [`step_at`](Self::step_at), forced (see [`cleanup`](Self::cleanup)).
    pub fn step_forced(&self, now_ms: u64, force: bool) -> StepReport {
        self.step_with(now_ms, force, &mut |_| 0)
    }

    /// A step whose caller does its own part of the actions: `own` runs first (on this
    /// thread, before the registered callbacks, which are for outside parties such as an app's
    /// model), and every part's freed bytes are reported to the policy together. This is how a
    /// recorder drives the policy: its worker steps, acts on the take, and says what it freed.
    pub fn step_with(
        &self,
        now_ms: u64,
        force: bool,
        own: &mut dyn FnMut(&CleanupRequest) -> u64,
    ) -> StepReport {
        let (step, request) = {
            let mut state = lock(&self.shared.state);
            let reading = self.shared.read(&mut state, now_ms, force);
            let step = state.policy.step(&reading);
            if let Some(t) = step.transition {
                self.shared.push(&mut state, Event::Transition(t));
            }
            if !force {
                self.shared.sample(&mut state, &reading, step.level);
            }
            let request = (!step.actions.is_empty()).then(|| CleanupRequest {
                at_ms: reading.now_ms,
                level: step
                    .actions
                    .iter()
                    .map(Action::level)
                    .max()
                    .unwrap_or(step.level),
                actions: step.actions,
                wanted: wanted(&state.policy, &reading, step.level.max(Level::Elevated)),
                forced: force,
            });
            (step, request)
        };
        let mut freed = 0;
        if let Some(request) = request {
            freed += own(&request);
            // Callbacks run without the state lock: they may call back into the monitor.
            let callbacks: Vec<Arc<CleanupCallback>> = lock(&self.shared.callbacks)
                .iter()
                .map(|(_, c)| c.clone())
                .collect();
            for cb in callbacks {
                freed += cb(&request);
            }
            let mut state = lock(&self.shared.state);
            state.policy.feedback(freed);
            self.shared.push(
                &mut state,
                Event::Cleanup {
                    at_ms: request.at_ms,
                    level: request.level,
                    actions: request.actions,
                    freed,
                    forced: force,
                },
            );
        }
        StepReport {
            level: step.level,
            pressure: step.pressure,
            transition: step.transition,
            actions: step.actions,
            freed,
        }
    }

    /// Registers a cleanup callback, run (on the stepping thread) whenever the policy asks for
    /// actions. It returns the bytes it freed.
    pub fn add_cleanup_callback(
        &self,
        callback: impl Fn(&CleanupRequest) -> u64 + Send + Sync + 'static,
    ) -> CallbackId {
        let id = CallbackId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        lock(&self.shared.callbacks).push((id, Arc::new(callback)));
        id
    }

    /// Unregisters a callback; `false` if it was not registered.
    pub fn remove_cleanup_callback(&self, id: CallbackId) -> bool {
        let mut callbacks = lock(&self.shared.callbacks);
        let before = callbacks.len();
        callbacks.retain(|(i, _)| *i != id);
        callbacks.len() != before
    }

    /// Adds a line to the timeline at `at_ms`.
    pub fn note(&self, at_ms: u64, text: impl Into<String>) {
        let mut state = lock(&self.shared.state);
        self.shared.push(
            &mut state,
            Event::Note {
                at_ms,
                text: text.into(),
                mark: None,
            },
        );
    }

    /// Counts the accountant's disk bytes as memory from now on if `dir` (where a take's
    /// journal lives) is on tmpfs or ramfs: they are added to the RSS of every reading, so
    /// the RSS limit (the model's, the cgroup's) bounds both. Returns whether they are.
    pub fn count_disk_as_memory(&self, dir: &Path) -> bool {
        let in_ram = crate::memory::tmpfs::is_tmpfs(dir).unwrap_or(false);
        if in_ram {
            self.shared.disk_in_memory.store(true, Ordering::Relaxed);
        }
        in_ram
    }

    /// What was found on the machine (the cgroup, with its figures read now; the pressure
    /// source or why there is none; the RSS limit in use).
    pub fn detected(&self) -> Detected {
        Detected {
            cgroup: self.shared.cgroup.as_ref().map(CgroupInfo::of),
            pressure: self.pressure_status(),
            rss_limit: self.shared.rss_limit,
        }
    }

    /// The timeline so far (transitions, cleanups, notes), oldest first, and how many older
    /// entries were dropped to bound it.
    pub fn timeline(&self) -> (Vec<Event>, u64) {
        let state = lock(&self.shared.state);
        (
            state.timeline.iter().cloned().collect(),
            state.timeline_dropped,
        )
    }

    /// Starts stepping the policy on a background thread every [`MonitorConfig::interval`].
    /// Does nothing if it is already running.
    ///
    /// # Errors
    ///
    /// A runtime error if the thread cannot be spawned.
    pub fn start(&self) -> Result<()> {
        let mut thread = lock(&self.thread);
        if thread.is_some() {
            return Ok(());
        }
        *lock(&self.shared.stop) = false;
        // Counted here, not on the thread: an event right after `start` returns is news.
        let seen = self.pressure_events();
        let monitor = MemoryMonitor {
            shared: self.shared.clone(),
            thread: Mutex::new(None),
            watcher: Mutex::new(Watcher::off("the background thread's handle")),
        };
        let handle = std::thread::Builder::new()
            .name("w4l-monitor".into())
            .spawn(move || monitor.run(seen))
            .map_err(|e| {
                Error::runtime(
                    format!("cannot start the memory monitor thread ({e})"),
                    "free some system resources and retry",
                )
            })?;
        *thread = Some(handle);
        Ok(())
    }

    fn run(&self, mut seen: u64) {
        let interval = self.shared.config.interval.max(Duration::from_millis(1));
        let mut next = Instant::now();
        loop {
            self.step_at(self.now_ms());
            next += interval;
            loop {
                match self.shared.wait(next, seen, true) {
                    Wake::Stop => return,
                    Wake::Due => break,
                    Wake::Pressure => {
                        self.step_on_pressure(self.now_ms(), &mut seen, &mut |_| 0);
                    }
                }
            }
        }
    }

    /// Stops the background thread and waits for it (promptly: it is woken, not waited out).
    pub fn stop(&self) {
        *lock(&self.shared.stop) = true;
        self.shared.wake.notify_all();
        if let Some(handle) = lock(&self.thread).take() {
            let _ = handle.join();
        }
    }

    /// Whether the background thread runs.
    pub fn is_running(&self) -> bool {
        lock(&self.thread).is_some()
    }
}

impl Drop for MemoryMonitor {
    fn drop(&mut self) {
        // The clone inside the thread has no handle; only the owner joins.
        if lock(&self.thread).is_some() {
            self.stop();
        }
    }
}

/// Why [`Shared::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    Stop,
    Due,
    Pressure,
}

impl Shared {
    /// Waits until `deadline`, a pressure event past `seen`, or (with `stoppable`) a stop.
    fn wait(&self, deadline: Instant, seen: u64, stoppable: bool) -> Wake {
        // Checked under the lock the watcher takes to notify: no event is missed.
        let mut stop = lock(&self.stop);
        loop {
            if stoppable && *stop {
                return Wake::Stop;
            }
            if self.pressure.events() != seen {
                return Wake::Pressure;
            }
            let now = Instant::now();
            if now >= deadline {
                return Wake::Due;
            }
            stop = self
                .wake
                .wait_timeout(stop, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    fn read(&self, state: &mut State, now_ms: u64, force: bool) -> Reading {
        // The accountant's figures are atomics, fresh at every step; the process's and the
        // system's come from /proc (tens of µs) and are read again only when the last reading
        // is older than the monitoring interval or 100 ms (or `usage()` asks for a fresh one).
        // A replay steps the policy thousands of times a second (a forced step at every block
        // the budget refuses, a step every second of audio): reading /proc each time was 40% of
        // its worker. So a step right after a cleanup may still see the RSS from before it, for
        // at most 100 ms of wall clock; the accountant's figures, which drive spilling, are
        // always current.
        let fresh = self.config.interval.min(MAX_READING_AGE);
        let stale = state.last_at.is_none_or(|t| t.elapsed() >= fresh);
        if let Some(probe) = state.probe.as_mut().filter(|_| stale) {
            match probe.read() {
                Ok(r) => state.last = Some(r),
                Err(e) => tracing::debug!("memory reading failed: {e}"),
            }
            state.last_at = Some(Instant::now());
        }
        let mut reading = Reading {
            accounted: self.accountant.memory_used(),
            budget: self.accountant.memory_budget(),
            force,
            ..Reading::new(now_ms)
        };
        if let Some(last) = state.last {
            reading.rss = last.rss.saturating_add(self.files_in_memory());
            reading.rss_limit = self.rss_limit;
            reading.available = last.available;
        }
        reading
    }

    /// The accountant's disk bytes, when they are in RAM.
    fn files_in_memory(&self) -> u64 {
        if self.disk_in_memory.load(Ordering::Relaxed) {
            self.accountant.disk_used() as u64
        } else {
            0
        }
    }

    /// Keeps a sample of a periodic step, if a history is kept and one is due.
    fn sample(&self, state: &mut State, reading: &Reading, level: Level) {
        if let Some(history) = state.history.as_mut().filter(|h| h.due(reading.now_ms)) {
            let figures = self.accountant.figures();
            history.push(Sample::from_figures(
                reading.now_ms,
                &figures,
                reading.rss,
                level,
            ));
        }
    }

    fn usage(&self, state: &State, reading: &Reading, pressure: Pressure) -> MemoryUsage {
        let last = state.last;
        MemoryUsage {
            rss: reading.rss,
            files_in_memory: if last.is_some() {
                self.files_in_memory()
            } else {
                0
            },
            rss_limit: reading.rss_limit,
            available: last.map_or(0, |l| l.available),
            total: last.map_or(0, |l| l.total),
            accounted: reading.accounted as u64,
            budget: reading.budget as u64,
            pressure_permille: pressure.permille,
            pressure_source: pressure.source.name(),
            level: state.policy.level(),
        }
    }

    fn push(&self, state: &mut State, event: Event) {
        tracing::info!("{event}");
        if state.timeline.len() == TIMELINE_CAPACITY {
            state.timeline.pop_front();
            state.timeline_dropped += 1;
        }
        state.timeline.push_back(event);
    }
}

/// Bytes that bring every observed figure of `r` below `level`'s exit threshold.
fn wanted(policy: &Policy, r: &Reading, level: Level) -> u64 {
    let exit = u64::from(policy.config().exit_ppm(level));
    let below = |limit: u64| u128::from(limit) * u128::from(exit) / 1_000_000;
    let mut wanted = 0u64;
    if r.budget != 0 {
        let target = below(r.budget as u64);
        wanted = wanted.max(
            u64::try_from(u128::from(r.accounted as u64).saturating_sub(target))
                .unwrap_or(u64::MAX),
        );
    }
    if r.rss_limit != 0 {
        let target = below(r.rss_limit);
        wanted =
            wanted.max(u64::try_from(u128::from(r.rss).saturating_sub(target)).unwrap_or(u64::MAX));
    }
    wanted
}
