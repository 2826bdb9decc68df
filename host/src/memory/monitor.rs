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
//! a small budget ran out. One reading costs one `pread` of `/proc/self/statm` and one read of
//! `/proc/meminfo` through `sysinfo` (about 10 µs), so 1 s is cheap.
//!
//! The recorder (`w4l::recorder::Recorder`) does not use the background thread: its worker
//! calls [`MemoryMonitor::step_at`] once per second of *captured audio*, so decisions follow the
//! audio and are deterministic on replay. [`MemoryMonitor::start`] runs the same steps on a
//! background thread at the wall-clock interval, for a GUI; [`MemoryMonitor::stop`] wakes and
//! joins it at once (a condition variable, not a sleep).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use w4l_core::accountant::Accountant;
use w4l_core::policy::{
    Action, Actions, Level, Policy, PolicyConfig, Pressure, Reading, Transition,
};

use crate::error::{Error, Result};

/// One reading of the process's and the system's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemReading {
    /// Resident set size of this process, bytes.
    pub rss: u64,
    /// Memory the system can still give out without swapping, bytes.
    pub available: u64,
    /// Total physical memory, bytes.
    pub total: u64,
    /// When the reading was taken.
    pub at: Instant,
}

/// Reads this process's RSS and the system's available memory, refreshing only those: the
/// system's RAM through `sysinfo` (no swap, no CPU, no other processes), and this process's
/// resident set from `/proc/self/statm`, kept open and read again in one `pread` (Linux; through
/// `sysinfo` elsewhere, or if it cannot be opened). `sysinfo`'s refresh of one process opens
/// seven `/proc` files (its directory, `task`, `stat`, `statm`, `status`, `/proc/uptime`...)
/// for the one figure the policy uses.
#[derive(Debug)]
pub struct Probe {
    system: System,
    pid: Pid,
    /// `/proc/self/statm` and the page size, when available.
    statm: Option<(std::fs::File, u64)>,
}

impl Probe {
    /// A probe for the current process.
    pub fn new() -> Result<Self> {
        let system = System::new().map_err(|e| {
            Error::runtime(
                format!("cannot read memory figures ({e})"),
                "w4l needs /proc (Linux) or the platform's equivalent",
            )
        })?;
        let pid = sysinfo::get_current_pid().map_err(|e| {
            Error::runtime(
                format!("cannot find this process's id ({e})"),
                "w4l needs /proc (Linux) or the platform's equivalent",
            )
        })?;
        Ok(Self {
            system,
            pid,
            statm: open_statm(),
        })
    }

    /// A fresh reading.
    pub fn read(&mut self) -> Result<SystemReading> {
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let rss = match self
            .statm
            .as_ref()
            .and_then(|(f, page)| statm_rss(f, *page))
        {
            Some(rss) => rss,
            None => self.sysinfo_rss()?,
        };
        Ok(SystemReading {
            rss,
            available: self.system.available_memory(),
            total: self.system.total_memory(),
            at: Instant::now(),
        })
    }

    fn sysinfo_rss(&mut self) -> Result<u64> {
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            false,
            ProcessRefreshKind::nothing().with_memory(),
        );
        self.system
            .process(self.pid)
            .map(sysinfo::Process::memory)
            .ok_or_else(|| {
                Error::runtime(
                    "cannot read this process's memory use",
                    "w4l needs /proc (Linux) or the platform's equivalent",
                )
            })
    }
}

/// The most memory a budget may promise now: what the system can give without swapping
/// (`MemAvailable` of `/proc/meminfo`, read through `sysinfo`). `None` when it cannot be read;
/// budgets then stand as given.
///
/// `w4l record` and `w4l monitor` cap their budget by it, and refuse a take whose ring and
/// window alone need more. A container's cgroup limit (`memory.max` less `memory.current`)
/// belongs here too, as a second minimum: it is not read yet.
pub fn memory_ceiling() -> Option<u64> {
    let available = Probe::new().ok()?.read().ok()?.available;
    (available > 0).then_some(available)
}

/// `/proc/self/statm` and the page size, if this is Linux and both can be had.
fn open_statm() -> Option<(std::fs::File, u64)> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    // SAFETY: `sysconf` only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page).ok().filter(|&p| p > 0)?;
    let file = std::fs::File::open("/proc/self/statm").ok()?;
    // A first read proves the format; otherwise `sysinfo` it is.
    statm_rss(&file, page)?;
    Some((file, page))
}

/// The resident set in bytes from `statm` (`size resident shared ...`, in pages), read afresh.
fn statm_rss(file: &std::fs::File, page: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 128];
    let n = file.read_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(buf.get(..n)?).ok()?;
    let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page)
}

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
    /// figures in the readings, which makes every decision deterministic (`w4l demo`, tests).
    pub observe_system: bool,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            policy: PolicyConfig::default(),
            rss_limit: 0,
            observe_system: true,
        }
    }
}

/// A snapshot of memory figures and the policy's view of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MemoryUsage {
    /// This process's resident set, bytes (0 when the system is not observed).
    pub rss: u64,
    /// Process RSS limit, bytes (0: not observed).
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
            Event::Note { at_ms, text } => write!(f, "t={at_ms}ms {text}"),
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
}

struct Shared {
    accountant: Arc<Accountant>,
    config: MonitorConfig,
    origin: Instant,
    state: Mutex<State>,
    callbacks: Mutex<Vec<(CallbackId, Arc<CleanupCallback>)>>,
    next_id: AtomicU64,
    stop: Mutex<bool>,
    wake: Condvar,
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
    /// A monitor over `accountant`'s figures (and the system's, if configured).
    ///
    /// # Errors
    ///
    /// A runtime error when the system's memory figures cannot be read.
    pub fn new(accountant: Arc<Accountant>, config: MonitorConfig) -> Result<Self> {
        let probe = if config.observe_system {
            Some(Probe::new()?)
        } else {
            None
        };
        let state = State {
            policy: Policy::new(config.policy),
            probe,
            last: None,
            last_at: None,
            timeline: std::collections::VecDeque::new(),
            timeline_dropped: 0,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                accountant,
                config,
                origin: Instant::now(),
                state: Mutex::new(state),
                callbacks: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                stop: Mutex::new(false),
                wake: Condvar::new(),
            }),
            thread: Mutex::new(None),
        })
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
            },
        );
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
        let monitor = MemoryMonitor {
            shared: self.shared.clone(),
            thread: Mutex::new(None),
        };
        let handle = std::thread::Builder::new()
            .name("w4l-monitor".into())
            .spawn(move || monitor.run())
            .map_err(|e| {
                Error::runtime(
                    format!("cannot start the memory monitor thread ({e})"),
                    "free some system resources and retry",
                )
            })?;
        *thread = Some(handle);
        Ok(())
    }

    fn run(&self) {
        let interval = self.shared.config.interval.max(Duration::from_millis(1));
        let mut next = Instant::now();
        loop {
            self.step_at(self.now_ms());
            next += interval;
            let mut stop = lock(&self.shared.stop);
            loop {
                if *stop {
                    return;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                stop = self
                    .shared
                    .wake
                    .wait_timeout(stop, next - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
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

impl Shared {
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
            reading.rss = last.rss;
            reading.rss_limit = self.config.rss_limit;
            reading.available = last.available;
        }
        reading
    }

    fn usage(&self, state: &State, reading: &Reading, pressure: Pressure) -> MemoryUsage {
        let last = state.last;
        MemoryUsage {
            rss: reading.rss,
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

#[cfg(test)]
mod tests {
    use super::*;
    use w4l_core::accountant::Category;

    fn deterministic() -> MonitorConfig {
        MonitorConfig {
            observe_system: false,
            ..MonitorConfig::default()
        }
    }

    #[test]
    fn callbacks_run_on_actions_and_feed_back() {
        let acc = Arc::new(Accountant::new(1000, 0));
        let m = MemoryMonitor::new(acc.clone(), deterministic()).expect("monitor");
        let held = Arc::new(Mutex::new(Some(
            Accountant::try_reserve_in(acc.clone(), Category::Model, 700).expect("reserve"),
        )));
        let h = held.clone();
        let id = m.add_cleanup_callback(move |req| {
            if req.wants(Action::ReleaseIdleBuffers) {
                lock(&h).take().map_or(0, |r| r.bytes() as u64)
            } else {
                0
            }
        });
        assert_eq!(m.usage().pressure_permille, 700);
        let report = m.step_at(0);
        assert_eq!(report.level, Level::Elevated);
        assert_eq!(report.freed, 700);
        assert_eq!(acc.memory_used(), 0);
        assert!(m.remove_cleanup_callback(id));
        assert!(!m.remove_cleanup_callback(id));
        let (timeline, dropped) = m.timeline();
        assert_eq!(dropped, 0);
        assert_eq!(timeline.len(), 2, "{timeline:?}");
        assert!(
            timeline[0]
                .to_string()
                .starts_with("t=0ms Normal->Elevated")
        );
        assert!(timeline[1].to_string().contains("freed 700B"));
    }

    #[test]
    fn forced_cleanup_runs_cheap_actions_without_pressure() {
        let acc = Arc::new(Accountant::new(1000, 0));
        let m = MemoryMonitor::new(acc, deterministic()).expect("monitor");
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        m.add_cleanup_callback(move |req| {
            assert!(req.forced);
            c.fetch_add(1, Ordering::Relaxed);
            0
        });
        assert!(m.step_at(0).actions.is_empty());
        assert_eq!(calls.load(Ordering::Relaxed), 0);
        let r = m.cleanup(true);
        assert_eq!(r.actions.len(), 2);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert!(!m.is_high());
    }

    #[test]
    fn background_thread_steps_and_stops_promptly() {
        let acc = Arc::new(Accountant::new(1000, 0));
        let _r = acc.try_reserve(Category::Audio, 950).expect("reserve");
        let m = MemoryMonitor::new(
            acc.clone(),
            MonitorConfig {
                interval: Duration::from_secs(30),
                ..deterministic()
            },
        )
        .expect("monitor");
        m.start().expect("start");
        assert!(m.is_running());
        // The first step happens at once.
        let deadline = Instant::now() + Duration::from_secs(5);
        while m.level() == Level::Normal && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(m.level(), Level::Elevated);
        let t = Instant::now();
        m.stop();
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "stop took {:?}",
            t.elapsed()
        );
        assert!(!m.is_running());
        assert!(m.is_high());
    }

    #[test]
    fn system_readings_appear_in_usage() {
        let acc = Arc::new(Accountant::new(1 << 30, 0));
        let m = MemoryMonitor::new(
            acc,
            MonitorConfig {
                rss_limit: 1 << 40,
                ..MonitorConfig::default()
            },
        )
        .expect("monitor");
        let u = m.usage();
        assert!(
            u.rss > 0 && u.available > 0 && u.total >= u.available,
            "{u:?}"
        );
        assert_eq!(u.level, Level::Normal);
    }

    #[test]
    fn probe_reads_plausible_figures() {
        let mut p = Probe::new().expect("probe");
        let r = p.read().expect("reading");
        assert!(r.rss > 100_000, "rss {}", r.rss);
        assert!(r.total >= r.available && r.available > 0, "{r:?}");
        // Grows with a big allocation that is touched.
        let big = vec![1u8; 64 << 20];
        let r2 = p.read().expect("reading");
        assert!(r2.rss >= r.rss + (32 << 20), "{} -> {}", r.rss, r2.rss);
        drop(big);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn statm_rss_agrees_with_sysinfo() {
        let mut p = Probe::new().expect("probe");
        let (file, page) = p.statm.take().expect("/proc/self/statm opens on Linux");
        let big = vec![1u8; 16 << 20];
        let before = statm_rss(&file, page).expect("statm");
        let theirs = p.sysinfo_rss().expect("sysinfo");
        let after = statm_rss(&file, page).expect("statm");
        // Other tests of this process allocate meanwhile: sysinfo's reading lies between the two
        // of statm, give or take a megabyte.
        assert!(
            theirs + (1 << 20) >= before.min(after) && theirs <= before.max(after) + (1 << 20),
            "statm {before} and {after}, sysinfo {theirs}"
        );
        drop(big);
    }
}
