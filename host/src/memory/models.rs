//! The model lifecycle: speech models loaded inside the memory budget, one load at a time,
//! unloaded when idle or under pressure, kept by least-recent use.
//!
//! A [`ModelManager`] holds the app's models: each is registered with its size and a load and
//! an unload function ([`ModelManager::register`]). Every load is checked against the
//! [`Accountant`] first: the model's bytes are reserved as
//! [`Category::Model`](w4l_core::accountant::Category::Model) *before* the
//! load function runs, so a load that would not fit never starts.
//!
//! # Decisions
//!
//! - **Size.** [`Size::Declared`] bytes are reserved as they are. [`Size::Measured`] reserves
//!   the estimate, then measures the load as the change of the process's RSS and resizes the
//!   reservation to it; the largest measurement seen is what later loads reserve (a reload can
//!   measure less when the allocator reuses memory it kept, never more than the truth). RSS
//!   also moves with whatever else the process does during the load (capture is small:
//!   32–384 KB/s), so a measurement is as good as the quiet of the process. A measurement
//!   that no longer fits the budget unloads the model again ([`ModelError::OverBudget`]).
//! - **Not enough room.** Idle models (none of their [`with`](ModelManager::with) calls
//!   running) are unloaded least-recently-used first until the load fits. If even unloading
//!   all of them would not make room, the load is refused ([`ModelError::Refused`]), or, with
//!   [`ModelConfig::allow_downsize`], the largest *registered* model of the Whisper table
//!   ([`w4l_core::budget::Model`]) smaller than the one asked for that fits is loaded instead
//!   (it must be registered: its load function is needed). Nothing is unloaded for a load
//!   that is then refused.
//! - **One load at a time.** A second load **waits** for the first (two loads at once would
//!   double the peak a budget must allow for), then is planned against the budget as it then
//!   stands. A load of a model already loading joins it and gets its outcome.
//! - **In use is never unloaded.** A model is in use while a [`with`](ModelManager::with)
//!   closure runs on it; pressure and idle unloads skip it (counted in
//!   [`ModelStats::skipped_busy`]), an explicit [`unload`](ModelManager::unload) is refused.
//! - **Idle timeout**: [`ModelConfig::idle_timeout`], default 5 min, `Duration::ZERO` never.
//!   Idle means no `with`/[`touch`](ModelManager::touch)/load since. The manager has no
//!   thread: [`tick`](ModelManager::tick) unloads what has been idle too long (call it once a
//!   second, e.g. beside the monitor's step).
//! - **Pressure**: [`unload_under_pressure`](ModelManager::unload_under_pressure) acts on
//!   [`Action::UnloadModel`] (the policy's `High` level) and unloads idle models, least
//!   recently used first, until the bytes the policy wants are freed.
//! - **Unload order**: a model's memory is accounted until its unload function has returned,
//!   so the accountant never reports memory as free that is not. A failing (or panicking)
//!   load or unload function is caught and recorded; an unload that failed still releases the
//!   reservation (the value was handed over and is gone).
//! - **Time** comes from a [`Clock`] ([`MonotonicClock`] by default, [`ManualClock`] for
//!   simulations), so every scenario runs deterministically.
//!
//! Counters ([`ModelManager::stats`]) and events ([`ModelManager::drain_events`]) are for the
//! app to poll; they are also logged at debug level.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use w4l::memory::models::{ModelConfig, ModelManager, ModelSpec};
//! use w4l_core::accountant::Category;
//! use w4l_core::budget::{Budget, Model, MIB};
//!
//! let accountant = Arc::new(Budget::for_model(Model::Base).accountant()); // 762 MiB
//! let models = ModelManager::new(accountant, ModelConfig { allow_downsize: true, ..Default::default() });
//! for model in [Model::Tiny, Model::Base, Model::Small] {
//!     // A real app loads weights here; the stand-in is an allocation of the declared size.
//!     models.register(
//!         ModelSpec::whisper(model),
//!         move || Ok(vec![0u8; model.footprint() / 1024]),
//!         |weights| { drop(weights); Ok(()) },
//!     )?;
//! }
//! // Small (500 MiB) fits the 762 MiB budget; with 300 MiB held by others it no longer
//! // does, and base is loaded instead.
//! let _held = models.accountant().try_reserve(Category::Other, 300 * MIB).unwrap();
//! let loaded = models.load("small")?;
//! assert_eq!((loaded.name.as_str(), loaded.downsized_from.as_deref()), ("base", Some("small")));
//! let len = models.with("base", |weights| weights.len())?;
//! assert_eq!(len, 250 * 1024);
//! # Ok::<(), w4l::memory::models::ModelError>(())
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use w4l_core::accountant::{Accountant, Reservation};
use w4l_core::policy::{Action, Actions};

/// The error a load or unload function may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type LoadFn<T> = dyn Fn() -> Result<T, BoxError> + Send + Sync;
type UnloadFn<T> = dyn Fn(T) -> Result<(), BoxError> + Send + Sync;
type RssFn = dyn Fn() -> Option<u64> + Send + Sync;

mod acquire;
mod clock;
mod events;
mod spec;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use events::{ModelError, ModelEvent, ModelEventKind, ModelStats, ModelStatus};
pub use spec::{Loaded, ModelConfig, ModelSpec, Size};

/// Most events kept for [`ModelManager::drain_events`]; older ones are dropped.
const EVENT_CAPACITY: usize = 1024;

/// Why a model leaves memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Idle,
    Pressure,
    Evicted,
    Explicit,
}

enum Status<T> {
    Unloaded,
    Loading,
    Loaded {
        model: Arc<T>,
        reservation: Reservation<Arc<Accountant>>,
    },
}

struct Slot<T> {
    spec: ModelSpec,
    load: Arc<LoadFn<T>>,
    unload: Arc<UnloadFn<T>>,
    status: Status<T>,
    /// Largest measured size, for [`Size::Measured`].
    measured: Option<usize>,
    users: usize,
    last_used_ms: u64,
    /// Loads started, and the failure of the last one if it failed: a caller that joined a
    /// load gets its outcome.
    attempts: u64,
    failure: Option<(u64, ModelError)>,
}

impl<T> Slot<T> {
    /// Bytes a load reserves.
    fn bytes(&self) -> usize {
        match self.spec.size {
            Size::Declared(bytes) => bytes,
            Size::Measured { estimate } => self.measured.unwrap_or(estimate),
        }
    }

    fn loaded_bytes(&self) -> Option<usize> {
        match &self.status {
            Status::Loaded { reservation, .. } => Some(reservation.bytes()),
            _ => None,
        }
    }
}

struct State<T> {
    /// Never shrinks: an index found under the lock stays valid after it.
    slots: Vec<Slot<T>>,
    /// The slot whose load runs (one at a time).
    loading: Option<usize>,
    stats: ModelStats,
    events: VecDeque<ModelEvent>,
}

/// A model taken out of its slot, to be unloaded without the lock held.
struct Taken<T> {
    index: usize,
    model: Arc<T>,
    reservation: Reservation<Arc<Accountant>>,
    unload: Arc<UnloadFn<T>>,
}

/// The models of an app inside the memory budget (see the [module docs](self)).
///
/// `Send + Sync` when `T` is; share it in an `Arc`.
pub struct ModelManager<T> {
    accountant: Arc<Accountant>,
    config: ModelConfig,
    clock: Arc<dyn Clock>,
    rss: Arc<RssFn>,
    state: Mutex<State<T>>,
    /// Signalled whenever a load ends.
    load_done: Condvar,
}

impl<T> fmt::Debug for ModelManager<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelManager")
            .field("config", &self.config)
            .field("stats", &lock(&self.state).stats)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Load and unload functions run outside the lock and are caught: a poisoned lock can only
    // come from a bug in this module, whose state stays consistent at every unlock.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The process's RSS through the monitor's probe (`/proc/self/statm`), opened at the first
/// measurement.
fn process_rss() -> Arc<RssFn> {
    let probe = Mutex::new(None);
    Arc::new(move || {
        let mut probe = lock(&probe);
        if probe.is_none() {
            *probe = crate::memory::monitor::Probe::new().ok();
        }
        probe.as_mut()?.read().ok().map(|r| r.rss)
    })
}

/// The text of a caught panic.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    format!("it panicked ({text})")
}

impl<T: Send + Sync + 'static> ModelManager<T> {
    /// A manager loading models into `accountant`'s `Category::Model`, on the wall clock.
    pub fn new(accountant: Arc<Accountant>, config: ModelConfig) -> Self {
        Self {
            accountant,
            config,
            clock: Arc::new(MonotonicClock::new()),
            rss: process_rss(),
            state: Mutex::new(State {
                slots: Vec::new(),
                loading: None,
                stats: ModelStats::default(),
                events: VecDeque::new(),
            }),
            load_done: Condvar::new(),
        }
    }

    /// The same manager on another clock (a [`ManualClock`] for simulations).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same manager measuring [`Size::Measured`] models with `rss` (bytes of the
    /// process's resident set; `None` when it cannot be read: the estimate stands).
    #[must_use]
    pub fn with_rss_probe(mut self, rss: impl Fn() -> Option<u64> + Send + Sync + 'static) -> Self {
        self.rss = Arc::new(rss);
        self
    }

    /// The accountant models are reserved in.
    pub fn accountant(&self) -> &Arc<Accountant> {
        &self.accountant
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Registers a model: `load` makes it, `unload` gets it back to free it. Neither is
    /// called here.
    ///
    /// # Errors
    ///
    /// [`ModelError::Duplicate`] if a model of that name is registered already.
    pub fn register(
        &self,
        spec: ModelSpec,
        load: impl Fn() -> Result<T, BoxError> + Send + Sync + 'static,
        unload: impl Fn(T) -> Result<(), BoxError> + Send + Sync + 'static,
    ) -> Result<(), ModelError> {
        let mut st = lock(&self.state);
        if st.slots.iter().any(|s| s.spec.name == spec.name) {
            return Err(ModelError::Duplicate { name: spec.name });
        }
        st.slots.push(Slot {
            spec,
            load: Arc::new(load),
            unload: Arc::new(unload),
            status: Status::Unloaded,
            measured: None,
            users: 0,
            last_used_ms: 0,
            attempts: 0,
            failure: None,
        });
        Ok(())
    }

    /// Loads `name` (or, if allowed and needed, a smaller Whisper model), waiting for a load
    /// in progress first. A loaded model is only touched.
    ///
    /// # Errors
    ///
    /// [`ModelError::Unknown`], [`ModelError::Refused`], [`ModelError::LoadFailed`],
    /// [`ModelError::OverBudget`].
    pub fn load(&self, name: &str) -> Result<Loaded, ModelError> {
        self.acquire(name, false).map(|(loaded, _)| loaded)
    }

    /// Starts [`load`](Self::load) on a thread, so that it overlaps the capture; the handle
    /// waits for it.
    pub fn load_in_background(self: &Arc<Self>, name: &str) -> LoadHandle {
        let (manager, name, name_copy) = (Arc::clone(self), name.to_owned(), name.to_owned());
        let spawned = std::thread::Builder::new()
            .name("w4l-model-load".into())
            .spawn(move || manager.load(&name));
        let outcome = spawned.map_err(|e| ModelError::LoadFailed {
            name: name_copy.clone(),
            reason: format!("cannot start a loading thread ({e})"),
        });
        LoadHandle {
            name: name_copy,
            outcome,
        }
    }

    /// Runs `f` on model `name`, loading it first if needed (a reload on demand; with
    /// downsizing allowed, on the smaller model loaded instead). The model is in use, so
    /// never unloaded, while `f` runs; its idle time starts when `f` returns.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn with<R>(&self, name: &str, f: impl FnOnce(&T) -> R) -> Result<R, ModelError> {
        let (loaded, model) = self.acquire(name, true)?;
        let Some(model) = model else {
            // `acquire` with `pin` always hands the model out.
            return Err(ModelError::LoadFailed {
                name: loaded.name,
                reason: "the model vanished while it was being pinned".into(),
            });
        };
        let _pin = Pin {
            manager: self,
            name: &loaded.name,
        };
        // Bound after the pin, so dropped before it (also when `f` panics): the model is let
        // go of before it counts as unused, and an unload can always take it back whole.
        let model = model;
        Ok(f(&model))
    }

    /// Marks `name` as used now (restarts its idle time). `false` if it is not loaded.
    pub fn touch(&self, name: &str) -> bool {
        let now = self.clock.now_ms();
        let mut st = lock(&self.state);
        let Some(slot) = st.slots.iter_mut().find(|s| s.spec.name == name) else {
            return false;
        };
        slot.last_used_ms = now;
        matches!(slot.status, Status::Loaded { .. })
    }

    /// Unloads `name` now; returns the bytes freed (0 if it was not loaded).
    ///
    /// # Errors
    ///
    /// [`ModelError::Unknown`]; [`ModelError::Busy`] while it is in use.
    pub fn unload(&self, name: &str) -> Result<usize, ModelError> {
        let taken = {
            let mut st = lock(&self.state);
            let i = Self::find(&st, name)?;
            if st.slots[i].users > 0 {
                return Err(ModelError::Busy { name: name.into() });
            }
            self.take(&mut st, i, Why::Explicit)
        };
        Ok(self.finish(taken.into_iter().collect()))
    }

    /// Unloads every model idle for [`ModelConfig::idle_timeout`] or longer; returns the
    /// bytes freed. Call it periodically (once a second is plenty).
    pub fn tick(&self) -> usize {
        let timeout = u64::try_from(self.config.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        if timeout == 0 {
            return 0;
        }
        let now = self.clock.now_ms();
        let taken = {
            let mut st = lock(&self.state);
            let expired: Vec<usize> = Self::idle_lru(&st)
                .into_iter()
                .filter(|&i| now.saturating_sub(st.slots[i].last_used_ms) >= timeout)
                .collect();
            let mut taken = Vec::new();
            for i in expired {
                taken.extend(self.take(&mut st, i, Why::Idle));
            }
            taken
        };
        self.finish(taken)
    }

    /// The policy's cleanup: with [`Action::UnloadModel`] among `actions`, unloads idle
    /// models, least recently used first, until `wanted` bytes are freed (`u64::MAX`: all of
    /// them). Models in use are skipped. Returns the bytes freed, for the policy's feedback.
    pub fn unload_under_pressure(&self, actions: &Actions, wanted: u64) -> u64 {
        if !actions.contains(Action::UnloadModel) {
            return 0;
        }
        let taken = {
            let mut st = lock(&self.state);
            let busy: Vec<usize> = (0..st.slots.len())
                .filter(|&i| st.slots[i].users > 0)
                .collect();
            for i in busy {
                self.skip_busy(&mut st, i);
            }
            let mut taken = Vec::new();
            let mut freed = 0u64;
            for i in Self::idle_lru(&st) {
                if freed >= wanted {
                    break;
                }
                if let Some(t) = self.take(&mut st, i, Why::Pressure) {
                    freed = freed.saturating_add(t.reservation.bytes() as u64);
                    taken.push(t);
                }
            }
            taken
        };
        self.finish(taken) as u64
    }

    /// Where `name` stands; `None` if it is not registered.
    pub fn status(&self, name: &str) -> Option<ModelStatus> {
        let st = lock(&self.state);
        let slot = st.slots.iter().find(|s| s.spec.name == name)?;
        Some(match &slot.status {
            Status::Unloaded => ModelStatus::Unloaded,
            Status::Loading => ModelStatus::Loading,
            Status::Loaded { reservation, .. } => ModelStatus::Loaded {
                bytes: reservation.bytes(),
                users: slot.users,
                last_used_ms: slot.last_used_ms,
            },
        })
    }

    /// The loaded models and their bytes, most recently used first.
    pub fn loaded(&self) -> Vec<(String, usize)> {
        let st = lock(&self.state);
        let mut loaded: Vec<(u64, String, usize)> = st
            .slots
            .iter()
            .filter_map(|s| Some((s.last_used_ms, s.spec.name.clone(), s.loaded_bytes()?)))
            .collect();
        loaded.sort_by_key(|l| std::cmp::Reverse(l.0));
        loaded.into_iter().map(|(_, n, b)| (n, b)).collect()
    }

    /// The counters.
    pub fn stats(&self) -> ModelStats {
        lock(&self.state).stats
    }

    /// The events since the last call (at most the newest 1024), oldest first.
    pub fn drain_events(&self) -> Vec<ModelEvent> {
        lock(&self.state).events.drain(..).collect()
    }

    fn find(st: &State<T>, name: &str) -> Result<usize, ModelError> {
        st.slots
            .iter()
            .position(|s| s.spec.name == name)
            .ok_or_else(|| ModelError::Unknown {
                name: name.into(),
                known: st.slots.iter().map(|s| s.spec.name.clone()).collect(),
            })
    }

    /// Loaded models nobody uses, least recently used first.
    fn idle_lru(st: &State<T>) -> Vec<usize> {
        let mut idle: Vec<(u64, usize)> = st
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.users == 0 && s.loaded_bytes().is_some())
            .map(|(i, s)| (s.last_used_ms, i))
            .collect();
        idle.sort_unstable();
        idle.into_iter().map(|(_, i)| i).collect()
    }

    fn event(
        &self,
        st: &mut State<T>,
        kind: ModelEventKind,
        i: usize,
        bytes: usize,
        detail: String,
    ) {
        let model = st.slots[i].spec.name.clone();
        let event = ModelEvent {
            at_ms: self.clock.now_ms(),
            kind,
            model,
            bytes,
            detail,
        };
        tracing::debug!("{event}");
        if st.events.len() == EVENT_CAPACITY {
            st.events.pop_front();
        }
        st.events.push_back(event);
    }

    fn skip_busy(&self, st: &mut State<T>, i: usize) {
        let bytes = st.slots[i].loaded_bytes().unwrap_or(0);
        st.stats.skipped_busy += 1;
        self.event(st, ModelEventKind::SkippedBusy, i, bytes, String::new());
    }

    /// Takes slot `i`'s model out (if loaded and idle) and counts why; the caller unloads it
    /// with [`finish`](Self::finish) after dropping the lock.
    fn take(&self, st: &mut State<T>, i: usize, why: Why) -> Option<Taken<T>> {
        let slot = &mut st.slots[i];
        if slot.users > 0 || !matches!(slot.status, Status::Loaded { .. }) {
            return None;
        }
        let Status::Loaded { model, reservation } =
            std::mem::replace(&mut slot.status, Status::Unloaded)
        else {
            return None;
        };
        let taken = Taken {
            index: i,
            model,
            reservation,
            unload: Arc::clone(&slot.unload),
        };
        let (counter, kind) = match why {
            Why::Idle => (&mut st.stats.unloaded_idle, ModelEventKind::UnloadedIdle),
            Why::Pressure => (
                &mut st.stats.unloaded_pressure,
                ModelEventKind::UnloadedPressure,
            ),
            Why::Evicted => (&mut st.stats.evicted, ModelEventKind::Evicted),
            Why::Explicit => (&mut st.stats.unloaded_explicit, ModelEventKind::Unloaded),
        };
        *counter += 1;
        self.event(st, kind, i, taken.reservation.bytes(), String::new());
        Some(taken)
    }

    /// Runs the unload functions of `taken` (without the lock), then releases their
    /// reservations; returns the bytes released.
    fn finish(&self, taken: Vec<Taken<T>>) -> usize {
        let mut freed = 0;
        for t in taken {
            let (i, bytes) = (t.index, t.reservation.bytes());
            let outcome = match Arc::try_unwrap(t.model) {
                Ok(model) => catch_unwind(AssertUnwindSafe(|| (t.unload)(model)))
                    .unwrap_or_else(|p| Err(panic_text(p.as_ref()).into())),
                // Nobody else holds it while it is idle; if someone did, the last holder frees it.
                Err(_shared) => Ok(()),
            };
            drop(t.reservation);
            freed += bytes;
            if let Err(e) = outcome {
                let mut st = lock(&self.state);
                st.stats.unload_failures += 1;
                self.event(
                    &mut st,
                    ModelEventKind::UnloadFailed,
                    i,
                    bytes,
                    e.to_string(),
                );
            }
        }
        freed
    }
}

/// Ends a `with` call: the model is no longer in use and its idle time starts now.
struct Pin<'a, T: Send + Sync + 'static> {
    manager: &'a ModelManager<T>,
    name: &'a str,
}

impl<T: Send + Sync + 'static> Drop for Pin<'_, T> {
    fn drop(&mut self) {
        let now = self.manager.clock.now_ms();
        let mut st = lock(&self.manager.state);
        if let Some(slot) = st.slots.iter_mut().find(|s| s.spec.name == self.name) {
            slot.users = slot.users.saturating_sub(1);
            slot.last_used_ms = now;
        }
    }
}

/// A load running on its own thread ([`ModelManager::load_in_background`]).
#[derive(Debug)]
pub struct LoadHandle {
    name: String,
    /// The thread, or why it could not be started.
    outcome: Result<JoinHandle<Result<Loaded, ModelError>>, ModelError>,
}

impl LoadHandle {
    /// Whether [`wait`](Self::wait) would return at once.
    pub fn is_finished(&self) -> bool {
        self.outcome.as_ref().map_or(true, JoinHandle::is_finished)
    }

    /// Waits for the load and returns its outcome.
    ///
    /// # Errors
    ///
    /// As [`ModelManager::load`].
    pub fn wait(self) -> Result<Loaded, ModelError> {
        let name = self.name;
        self.outcome?.join().unwrap_or_else(|p| {
            Err(ModelError::LoadFailed {
                name,
                reason: panic_text(p.as_ref()),
            })
        })
    }
}

#[cfg(test)]
mod tests;
