//! Kernel memory pressure into the monitor: the watcher thread only counts events and wakes
//! whoever steps the policy; the stepping thread makes the forced step on its own clock.
//!
//! Why not step on the watcher thread: a recorder's policy runs on one clock, the captured
//! audio's, on its worker, which also does the take's part of every cleanup (evicting cached
//! blocks under the take's lock). A step from another thread would put a wall-clock time among
//! audio times and act on the take from outside. So an event increments a counter and wakes
//! the monitor's own thread ([`MemoryMonitor::start`](super::MemoryMonitor::start)) and every
//! listener (a recorder's worker unparks); each of them sees the count change and calls
//! [`MemoryMonitor::step_on_pressure`](super::MemoryMonitor::step_on_pressure).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::memory::watch::WatchThread;

use super::{CallbackId, lock};

/// A pressure listener: runs on the watcher thread; it should only wake someone.
pub(super) type Listener = dyn Fn() + Send + Sync;

/// The counter of events and who to wake; in the monitor's shared state.
#[derive(Default)]
pub(super) struct Link {
    events: AtomicU64,
    listeners: Mutex<Vec<(CallbackId, Arc<Listener>)>>,
    /// The source watched last, for the timeline's notes.
    source: Mutex<String>,
}

impl Link {
    pub(super) fn events(&self) -> u64 {
        self.events.load(Ordering::Acquire)
    }

    /// Counts one event and returns who to wake.
    pub(super) fn count(&self) -> Vec<Arc<Listener>> {
        self.events.fetch_add(1, Ordering::AcqRel);
        lock(&self.listeners)
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    pub(super) fn add(&self, id: CallbackId, listener: Arc<Listener>) {
        lock(&self.listeners).push((id, listener));
    }

    pub(super) fn remove(&self, id: CallbackId) -> bool {
        let mut listeners = lock(&self.listeners);
        let before = listeners.len();
        listeners.retain(|(i, _)| *i != id);
        listeners.len() != before
    }
}

/// Where a monitor's pressure events come from, or why none come.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum PressureStatus {
    /// Events come from `source`: a PSI file and the trigger written to it
    /// (`/proc/pressure/memory (some 150000 2000000)`), a FIFO or socket, an injected watch.
    On {
        /// The source, as [`PressureWatch::source`](crate::memory::watch::PressureWatch::source)
        /// names it.
        source: String,
    },
    /// No events; the periodic readings carry on alone.
    Off {
        /// Why, one line: the kernel's refusal with its errno, the service manager's choice,
        /// a source that failed, or a monitor that does not observe the system.
        reason: String,
    },
}

impl std::fmt::Display for PressureStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::On { source } => write!(f, "pressure events from {source}"),
            Self::Off { reason } => f.write_str(reason),
        }
    }
}

/// The monitor's watcher thread and what it watches.
pub(super) struct Watcher {
    pub(super) thread: Option<WatchThread>,
    pub(super) status: PressureStatus,
}

impl Watcher {
    pub(super) fn off(reason: impl Into<String>) -> Self {
        Self {
            thread: None,
            status: PressureStatus::Off {
                reason: reason.into(),
            },
        }
    }

    /// The status, noticing a source that has failed since.
    pub(super) fn status(&self) -> PressureStatus {
        match (&self.status, &self.thread) {
            (PressureStatus::On { source }, Some(t)) if !t.is_running() => PressureStatus::Off {
                reason: format!(
                    "no memory pressure events: {source} failed or was closed (see the log); \
                     w4l reads memory once a second meanwhile"
                ),
            },
            (status, _) => status.clone(),
        }
    }
}

impl super::MemoryMonitor {
    /// Opens `psi`'s source and watches it, or records why there is none.
    pub(super) fn open_pressure(&self, psi: &crate::memory::psi::PsiConfig) {
        match psi.open() {
            Ok(watch) => {
                if let Err(e) = self.set_pressure_watch(watch) {
                    *lock(&self.watcher) = Watcher::off(format!("no memory pressure events: {e}"));
                }
            }
            Err(why) => {
                tracing::debug!("{why}");
                *lock(&self.watcher) = Watcher::off(why.to_string());
            }
        }
    }

    /// Watches `watch` from now on (in place of the monitor's own source, which stops): each
    /// event makes whoever steps the policy step at once, forced (see the module docs). For
    /// tests (a pipe standing in for the kernel) and apps with a source of their own.
    ///
    /// # Errors
    ///
    /// A runtime error if the watcher thread cannot be started.
    pub fn set_pressure_watch(
        &self,
        watch: crate::memory::watch::PressureWatch,
    ) -> crate::error::Result<()> {
        let source = watch.source().to_owned();
        source.clone_into(&mut lock(&self.shared.pressure.source));
        let shared = std::sync::Arc::downgrade(&self.shared);
        let thread = watch
            .spawn(move |_event| {
                if let Some(shared) = shared.upgrade() {
                    shared.on_pressure();
                }
            })
            .map_err(|e| {
                crate::error::Error::runtime(
                    format!("cannot start the memory pressure watcher thread ({e})"),
                    "free some system resources and retry",
                )
            })?;
        // The old thread (if any) stops as it is dropped here.
        *lock(&self.watcher) = Watcher {
            thread: Some(thread),
            status: PressureStatus::On { source },
        };
        Ok(())
    }

    /// Where pressure events come from, or why none come.
    pub fn pressure_status(&self) -> PressureStatus {
        lock(&self.watcher).status()
    }

    /// Pressure events so far. A stepping thread keeps the count it has acted on and passes it
    /// to [`step_on_pressure`](Self::step_on_pressure).
    pub fn pressure_events(&self) -> u64 {
        self.shared.pressure.events()
    }

    /// Registers `listener`, run on the watcher thread at every pressure event: it should only
    /// wake the thread that steps the policy (a recorder's worker registers an `unpark`).
    pub fn add_pressure_listener(&self, listener: impl Fn() + Send + Sync + 'static) -> CallbackId {
        let id = CallbackId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        self.shared.pressure.add(id, Arc::new(listener));
        id
    }

    /// Unregisters a pressure listener; `false` if it was not registered.
    pub fn remove_pressure_listener(&self, id: CallbackId) -> bool {
        self.shared.pressure.remove(id)
    }

    /// Waits up to `timeout` for a pressure event past `seen`; returns whether one came.
    pub fn wait_for_pressure(&self, seen: u64, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        self.shared.wait(deadline, seen, false) == super::Wake::Pressure
    }

    /// If pressure events came since `seen`: notes the event, steps the policy at `now_ms`
    /// (the caller's clock), forced, with `own` doing the caller's part of the actions (as in
    /// [`step_with`](Self::step_with)), then gives the heap's free memory back to the system
    /// ([`trim::release_freed`](crate::memory::trim::release_freed): after the step, so what
    /// it freed goes back too; a few ms, at most once per PSI window). `None` without news.
    pub fn step_on_pressure(
        &self,
        now_ms: u64,
        seen: &mut u64,
        own: &mut dyn FnMut(&super::CleanupRequest) -> u64,
    ) -> Option<super::StepReport> {
        let events = self.pressure_events();
        if events == *seen {
            return None;
        }
        *seen = events;
        let source = lock(&self.shared.pressure.source).clone();
        self.note(
            now_ms,
            format!("memory pressure event {events} from {source}"),
        );
        let report = self.step_with(now_ms, true, own);
        crate::memory::trim::release_freed();
        Some(report)
    }
}

impl super::Shared {
    /// On the watcher thread: count the event, wake the background thread and the listeners.
    fn on_pressure(&self) {
        let listeners = self.pressure.count();
        {
            let _stop = lock(&self.stop);
            self.wake.notify_all();
        }
        for listener in listeners {
            listener();
        }
    }
}
