//! Loading: wait for the load in progress, plan against the budget (evict, downsize or
//! refuse), run the load function without the lock, and hand the model out.
//!
//! Slots are never removed, so an index found under the lock stays valid after it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, MutexGuard};

use w4l_core::accountant::{Accountant, Category, Reservation};

use super::{
    LoadFn, Loaded, ModelError, ModelEventKind, ModelManager, Size, State, Status, Taken, UnloadFn,
    Why, lock, panic_text,
};

/// What the budget allows for a load of slot `i`.
enum Plan<T> {
    /// A smaller model, already loaded, serves it.
    Use(usize),
    /// Load `target` after unloading `victims` (least recently used first).
    Load {
        target: usize,
        victims: Vec<Taken<T>>,
    },
}

/// A load function's outcome: the model, its reservation, and its measured size.
type Outcome<T> = Result<(T, Reservation<Arc<Accountant>>, Option<usize>), ModelError>;

impl<T: Send + Sync + 'static> ModelManager<T> {
    /// Loads (or finds loaded) `name`; with `pin`, also marks it in use and hands it out.
    pub(super) fn acquire(
        &self,
        name: &str,
        pin: bool,
    ) -> Result<(Loaded, Option<Arc<T>>), ModelError> {
        let mut st = lock(&self.state);
        let i = Self::find(&st, name)?;
        st = self.wait_turn(st, i)?;
        if matches!(st.slots[i].status, Status::Loaded { .. }) {
            return Ok(self.hand_out(&mut st, i, None, pin));
        }
        let (target, victims) = match self.plan(&mut st, i)? {
            Plan::Use(j) => return Ok(self.hand_out(&mut st, j, Some(name), pin)),
            Plan::Load { target, victims } => (target, victims),
        };
        let slot = &mut st.slots[target];
        slot.status = Status::Loading;
        slot.attempts += 1;
        let (load, unload, bytes) = (
            Arc::clone(&slot.load),
            Arc::clone(&slot.unload),
            slot.bytes(),
        );
        let measure = matches!(slot.spec.size, Size::Measured { .. });
        let target_name = slot.spec.name.clone();
        st.loading = Some(target);
        self.event(
            &mut st,
            ModelEventKind::LoadStarted,
            target,
            bytes,
            String::new(),
        );
        drop(st);

        self.finish(victims);
        let outcome = self.run_load(&target_name, &*load, &*unload, bytes, measure);

        let asked = (target != i).then_some(name);
        self.settle(target, asked, bytes, outcome, pin)
    }

    /// Ends the load of slot `target`: stores the model (and hands it out) or its failure,
    /// and lets the next load go.
    fn settle(
        &self,
        target: usize,
        asked: Option<&str>,
        bytes: usize,
        outcome: Outcome<T>,
        pin: bool,
    ) -> Result<(Loaded, Option<Arc<T>>), ModelError> {
        let mut st = lock(&self.state);
        st.loading = None;
        self.load_done.notify_all();
        match outcome {
            Ok((model, reservation, measured)) => {
                let slot = &mut st.slots[target];
                slot.measured = slot.measured.max(measured);
                let held = reservation.bytes();
                slot.status = Status::Loaded {
                    model: Arc::new(model),
                    reservation,
                };
                st.stats.loads += 1;
                self.event(&mut st, ModelEventKind::Loaded, target, held, String::new());
                Ok(self.hand_out(&mut st, target, asked, pin))
            }
            Err(e) => {
                let slot = &mut st.slots[target];
                slot.status = Status::Unloaded;
                slot.failure = Some((slot.attempts, e.clone()));
                let kind = if matches!(e, ModelError::Refused { .. }) {
                    st.stats.refused += 1;
                    ModelEventKind::Refused
                } else {
                    st.stats.load_failures += 1;
                    ModelEventKind::LoadFailed
                };
                self.event(&mut st, kind, target, bytes, e.to_string());
                Err(e)
            }
        }
    }

    /// Waits while slot `i` loads (then returns that load's failure, if it failed) or another
    /// load runs.
    fn wait_turn<'a>(
        &'a self,
        mut st: MutexGuard<'a, State<T>>,
        i: usize,
    ) -> Result<MutexGuard<'a, State<T>>, ModelError> {
        loop {
            let slot = &st.slots[i];
            match slot.status {
                Status::Loaded { .. } => return Ok(st),
                Status::Loading => {
                    let attempt = slot.attempts;
                    st = self.wait(st);
                    let slot = &st.slots[i];
                    if let Some((failed, e)) = &slot.failure
                        && *failed == attempt
                        && !matches!(slot.status, Status::Loading)
                    {
                        return Err(e.clone());
                    }
                }
                Status::Unloaded if st.loading.is_some() => st = self.wait(st),
                Status::Unloaded => return Ok(st),
            }
        }
    }

    fn wait<'a>(&'a self, st: MutexGuard<'a, State<T>>) -> MutexGuard<'a, State<T>> {
        self.load_done
            .wait(st)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides how slot `i` (unloaded, no load running) gets loaded: the room is what the
    /// accountant has free for models plus what unloading every idle model would free.
    fn plan(&self, st: &mut State<T>, i: usize) -> Result<Plan<T>, ModelError> {
        let available = self.accountant.available(Category::Model);
        let lru = Self::idle_lru(st);
        let reclaimable: usize = lru.iter().filter_map(|&j| st.slots[j].loaded_bytes()).sum();
        let room = available.saturating_add(reclaimable);
        let Some(target) = self.fitting(st, i, room) else {
            let needed = st.slots[i].bytes();
            st.stats.refused += 1;
            let e = ModelError::Refused {
                name: st.slots[i].spec.name.clone(),
                needed,
                available,
                reclaimable,
                budget: self.accountant.memory_budget(),
            };
            self.event(st, ModelEventKind::Refused, i, needed, e.to_string());
            return Err(e);
        };
        if target != i {
            st.stats.downsized += 1;
            let asked = st.slots[i].spec.name.clone();
            let bytes = st.slots[target].bytes();
            self.event(
                st,
                ModelEventKind::Downsized,
                target,
                bytes,
                format!("asked for {asked}"),
            );
            if st.slots[target].loaded_bytes().is_some() {
                return Ok(Plan::Use(target));
            }
        }
        let need = st.slots[target].bytes();
        let (mut free, mut victims) = (available, Vec::new());
        for j in lru {
            if free >= need {
                break;
            }
            if let Some(t) = self.take(st, j, Why::Evicted) {
                free = free.saturating_add(t.reservation.bytes());
                victims.push(t);
            }
        }
        Ok(Plan::Load { target, victims })
    }

    /// Slot `i` if it fits in `room`; else, with downsizing allowed and `i` in the Whisper
    /// table, the largest registered smaller Whisper model that is loaded or fits.
    fn fitting(&self, st: &State<T>, i: usize, room: usize) -> Option<usize> {
        let slot = &st.slots[i];
        if slot.bytes() <= room {
            return Some(i);
        }
        let asked = slot.spec.whisper.filter(|_| self.config.allow_downsize)?;
        st.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.spec.whisper.is_some_and(|w| w < asked))
            .filter(|(_, s)| s.loaded_bytes().is_some() || s.bytes() <= room)
            .max_by_key(|(_, s)| s.spec.whisper)
            .map(|(j, _)| j)
    }

    /// Reserves `bytes`, runs the load function (caught), measures it if asked to.
    fn run_load(
        &self,
        name: &str,
        load: &LoadFn<T>,
        unload: &UnloadFn<T>,
        bytes: usize,
        measure: bool,
    ) -> Outcome<T> {
        let mut reservation =
            Accountant::try_reserve_in(Arc::clone(&self.accountant), Category::Model, bytes)
                .map_err(|e| ModelError::Refused {
                    name: name.into(),
                    needed: bytes,
                    available: e.available,
                    reclaimable: 0,
                    budget: self.accountant.memory_budget(),
                })?;
        let before = if measure { (self.rss)() } else { None };
        let model = catch_unwind(AssertUnwindSafe(load))
            .unwrap_or_else(|p| Err(panic_text(p.as_ref()).into()))
            .map_err(|e| ModelError::LoadFailed {
                name: name.into(),
                reason: e.to_string(),
            })?;
        let measured = before
            .zip((self.rss)())
            .map(|(b, a)| usize::try_from(a.saturating_sub(b)).unwrap_or(usize::MAX))
            .filter(|&m| m > 0);
        if let Some(m) = measured
            && let Err(e) = reservation.resize(m)
        {
            // The reservation stays until the model is gone: accounted until freed.
            let _ = catch_unwind(AssertUnwindSafe(|| unload(model)));
            return Err(ModelError::OverBudget {
                name: name.into(),
                measured: m,
                reason: e.to_string(),
            });
        }
        Ok((model, reservation, measured))
    }

    /// Marks slot `j` used now (and in use, with `pin`) and describes it.
    fn hand_out(
        &self,
        st: &mut State<T>,
        j: usize,
        asked: Option<&str>,
        pin: bool,
    ) -> (Loaded, Option<Arc<T>>) {
        let now = self.clock.now_ms();
        let slot = &mut st.slots[j];
        slot.last_used_ms = now;
        let model = match &slot.status {
            Status::Loaded { model, .. } if pin => {
                slot.users += 1;
                Some(Arc::clone(model))
            }
            _ => None,
        };
        let loaded = Loaded {
            name: slot.spec.name.clone(),
            bytes: slot.loaded_bytes().unwrap_or(0),
            downsized_from: asked.map(str::to_owned),
        };
        (loaded, model)
    }
}
