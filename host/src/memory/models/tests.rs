//! Deterministic simulations of the model lifecycle: a [`ManualClock`], stand-in models
//! (their load and unload functions count calls), the real core accountant and policy.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use w4l_core::accountant::{Accountant, Category};
use w4l_core::budget::{Budget, MIB, Model};
use w4l_core::policy::Level;

use super::*;

/// Calls of the stand-in models' functions.
#[derive(Default)]
struct Calls {
    loads: AtomicUsize,
    unloads: AtomicUsize,
}

struct Sim {
    clock: Arc<ManualClock>,
    models: Arc<ModelManager<String>>,
    calls: Arc<Calls>,
}

fn sim(accountant: Accountant, config: ModelConfig) -> Sim {
    let clock = Arc::new(ManualClock::new(0));
    let models = ModelManager::new(Arc::new(accountant), config).with_clock(clock.clone());
    Sim {
        clock,
        models: Arc::new(models),
        calls: Arc::default(),
    }
}

impl Sim {
    /// Registers a stand-in: the model is its own name.
    fn add(&self, spec: ModelSpec) {
        let (name, a, b) = (spec.name.clone(), self.calls.clone(), self.calls.clone());
        self.models
            .register(
                spec,
                move || {
                    a.loads.fetch_add(1, Ordering::SeqCst);
                    Ok(name.clone())
                },
                move |_| {
                    b.unloads.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                },
            )
            .unwrap();
    }

    fn whisper(&self, models: &[Model]) {
        for &m in models {
            self.add(ModelSpec::whisper(m));
        }
    }

    fn loads(&self) -> usize {
        self.calls.loads.load(Ordering::SeqCst)
    }

    fn unloads(&self) -> usize {
        self.calls.unloads.load(Ordering::SeqCst)
    }

    fn model_bytes(&self) -> usize {
        self.models.accountant().used(Category::Model)
    }

    fn kinds(&self) -> Vec<(String, ModelEventKind)> {
        let events = self.models.drain_events();
        events.into_iter().map(|e| (e.model, e.kind)).collect()
    }

    fn loaded_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.models.loaded().into_iter().map(|(n, _)| n).collect();
        names.sort();
        names
    }
}

fn ev(model: &str, kind: ModelEventKind) -> (String, ModelEventKind) {
    (model.to_owned(), kind)
}

#[test]
fn load_reserves_the_declared_size_then_is_only_touched() {
    let s = sim(
        Budget::for_model(Model::Small).accountant(),
        ModelConfig::default(),
    );
    s.whisper(&[Model::Small]);
    let loaded = s.models.load("small").unwrap();
    assert_eq!((loaded.bytes, loaded.downsized_from), (500 * MIB, None));
    assert_eq!(s.model_bytes(), 500 * MIB);
    s.clock.advance(1000);
    s.models.load("small").unwrap();
    assert_eq!(s.loads(), 1);
    assert_eq!(
        s.models.status("small"),
        Some(ModelStatus::Loaded {
            bytes: 500 * MIB,
            users: 0,
            last_used_ms: 1000
        })
    );
    use ModelEventKind::*;
    assert_eq!(s.kinds(), [ev("small", LoadStarted), ev("small", Loaded)]);
}

#[test]
fn load_refused_by_the_budget_says_why_in_one_line() {
    // 762 MiB; 300 MiB held by others: 462 MiB free, small needs 500.
    let s = sim(
        Budget::for_model(Model::Base).accountant(),
        ModelConfig::default(),
    );
    s.whisper(&[Model::Tiny, Model::Base, Model::Small]);
    let _audio = s
        .models
        .accountant()
        .try_reserve(Category::Other, 300 * MIB)
        .unwrap();
    let e = s.models.load("small").unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot load model small: it needs 500.0 MiB, 462.0 MiB of the 762.0 MiB memory budget \
         is free (with idle models unloaded: 462.0 MiB); choose a smaller model or raise the budget"
    );
    let cli: crate::error::Error = e.into();
    assert_eq!(cli.exit_code(), 2);
    assert_eq!(cli.fix(), "choose a smaller model or raise the budget");
    assert_eq!((s.loads(), s.model_bytes()), (0, 0));
    assert_eq!(s.models.stats().refused, 1);
    assert_eq!(s.kinds(), [ev("small", ModelEventKind::Refused)]);
    // Unknown names list the known ones.
    let e = s.models.load("huge").unwrap_err();
    assert_eq!(
        e.to_string(),
        "no model named \"huge\" is registered; use one of: tiny, base, small"
    );
}

#[test]
fn refusal_unloads_nothing() {
    let s = sim(Accountant::new(400 * MIB, 0), ModelConfig::default());
    s.add(ModelSpec::declared("a", 200 * MIB));
    s.add(ModelSpec::declared("big", 500 * MIB));
    s.models.load("a").unwrap();
    assert!(
        matches!(s.models.load("big"), Err(ModelError::Refused { reclaimable, .. }) if reclaimable == 200 * MIB)
    );
    assert_eq!(s.loaded_names(), ["a"]);
    assert_eq!(s.unloads(), 0);
}

#[test]
fn downsizing_takes_the_largest_registered_whisper_model_that_fits() {
    let config = ModelConfig {
        allow_downsize: true,
        ..ModelConfig::default()
    };
    let s = sim(Budget::for_model(Model::Medium).accountant(), config); // 2012 MiB
    s.whisper(&[Model::Tiny, Model::Base, Model::Small, Model::Large]);
    // 1500 MiB held by others: 512 MiB free. Large (2500) does not fit; small (500) does.
    let audio = s
        .models
        .accountant()
        .try_reserve(Category::Other, 1500 * MIB)
        .unwrap();
    let loaded = s.models.load("large").unwrap();
    assert_eq!(loaded.name, "small");
    assert_eq!(loaded.downsized_from.as_deref(), Some("large"));
    assert_eq!(s.model_bytes(), 500 * MIB);
    use ModelEventKind::*;
    assert_eq!(
        s.kinds(),
        [
            ev("small", Downsized),
            ev("small", LoadStarted),
            ev("small", Loaded)
        ]
    );
    // Asked again, the loaded smaller model serves without a load.
    assert_eq!(s.models.with("large", |m| m.clone()).unwrap(), "small");
    assert_eq!((s.loads(), s.models.stats().downsized), (1, 2));
    // Nothing smaller fits: refused, even with downsizing.
    drop(audio);
    s.models.unload("small").unwrap();
    let _audio = s
        .models
        .accountant()
        .try_reserve(Category::Other, 1900 * MIB)
        .unwrap();
    assert!(matches!(
        s.models.load("large"),
        Err(ModelError::Refused { .. })
    ));
    // A model outside the Whisper table is never downsized.
    s.add(ModelSpec::declared("custom", 1000 * MIB));
    assert!(matches!(
        s.models.load("custom"),
        Err(ModelError::Refused { .. })
    ));
}

#[test]
fn idle_models_unload_after_the_timeout_and_reload_on_demand() {
    let s = sim(
        Budget::for_model(Model::Small).accountant(),
        ModelConfig::default(),
    );
    s.whisper(&[Model::Small]);
    s.models.load("small").unwrap();
    s.clock.advance(299_000);
    assert_eq!(s.models.tick(), 0);
    // A use restarts the idle time.
    assert_eq!(s.models.with("small", |m| m.len()).unwrap(), 5);
    s.clock.advance(299_999);
    assert_eq!(s.models.tick(), 0);
    s.clock.advance(1);
    assert_eq!(s.models.tick(), 500 * MIB);
    assert_eq!((s.model_bytes(), s.unloads()), (0, 1));
    assert_eq!(s.models.status("small"), Some(ModelStatus::Unloaded));
    assert_eq!(s.models.stats().unloaded_idle, 1);
    // Reload on demand: the next use loads it again.
    assert_eq!(s.models.with("small", |m| m.clone()).unwrap(), "small");
    assert_eq!((s.loads(), s.models.stats().loads), (2, 2));
    assert_eq!(s.model_bytes(), 500 * MIB);
}

#[test]
fn a_zero_idle_timeout_never_unloads() {
    let config = ModelConfig {
        idle_timeout: Duration::ZERO,
        ..ModelConfig::default()
    };
    let s = sim(Budget::for_model(Model::Tiny).accountant(), config);
    s.whisper(&[Model::Tiny]);
    s.models.load("tiny").unwrap();
    s.clock.advance(u64::MAX / 2);
    assert_eq!(s.models.tick(), 0);
    assert_eq!(s.loaded_names(), ["tiny"]);
}

#[test]
fn touch_restarts_the_idle_time() {
    let s = sim(
        Budget::for_model(Model::Tiny).accountant(),
        ModelConfig::default(),
    );
    s.whisper(&[Model::Tiny]);
    s.models.load("tiny").unwrap();
    s.clock.advance(200_000);
    assert!(s.models.touch("tiny"));
    s.clock.advance(200_000);
    assert_eq!(s.models.tick(), 0);
    s.clock.advance(100_000);
    assert_eq!(s.models.tick(), 150 * MIB);
    assert!(!s.models.touch("tiny"));
}

#[test]
fn pressure_unloads_idle_models_lru_first_and_skips_models_in_use() {
    let s = sim(Accountant::new(1000 * MIB, 0), ModelConfig::default());
    for name in ["a", "b", "c"] {
        s.add(ModelSpec::declared(name, 100 * MIB));
        s.models.load(name).unwrap();
        s.clock.advance(1000);
    }
    s.kinds();
    // Elevated does not unload models.
    assert_eq!(
        s.models
            .unload_under_pressure(&Level::Elevated.actions(), u64::MAX),
        0
    );
    // High wants 150 MiB: the two least recently used go.
    let high = Level::High.actions();
    assert_eq!(
        s.models.unload_under_pressure(&high, 150 * MIB as u64),
        200 * MIB as u64
    );
    assert_eq!(s.loaded_names(), ["c"]);
    use ModelEventKind::*;
    assert_eq!(
        s.kinds(),
        [ev("a", UnloadedPressure), ev("b", UnloadedPressure)]
    );
    // In use: skipped and counted, not unloaded.
    let freed = s
        .models
        .with("c", |_| s.models.unload_under_pressure(&high, u64::MAX))
        .unwrap();
    assert_eq!(freed, 0);
    assert_eq!(s.kinds(), [ev("c", SkippedBusy)]);
    assert!(matches!(s.models.unload("c"), Ok(n) if n == 100 * MIB));
    let stats = s.models.stats();
    assert_eq!(
        (
            stats.unloaded_pressure,
            stats.skipped_busy,
            stats.unloaded_explicit
        ),
        (2, 1, 1)
    );
    assert_eq!(s.model_bytes(), 0);
}

#[test]
fn explicit_unload_of_a_model_in_use_is_refused() {
    let s = sim(Accountant::new(1000 * MIB, 0), ModelConfig::default());
    s.add(ModelSpec::declared("a", 100 * MIB));
    let e = s.models.with("a", |_| s.models.unload("a")).unwrap();
    assert_eq!(
        e.unwrap_err().to_string(),
        "model a is in use and cannot be unloaded now; retry when its work is done"
    );
}

#[test]
fn a_new_load_evicts_the_least_recently_used_idle_models() {
    let s = sim(Accountant::new(1000 * MIB, 0), ModelConfig::default());
    for name in ["a", "b", "c", "d"] {
        s.add(ModelSpec::declared(name, 300 * MIB));
    }
    for name in ["a", "b", "c"] {
        s.models.load(name).unwrap();
        s.clock.advance(1000);
    }
    s.models.with("a", |_| ()).unwrap(); // a is now the most recent
    s.clock.advance(1000);
    s.kinds();
    s.models.load("d").unwrap();
    assert_eq!(s.loaded_names(), ["a", "c", "d"]);
    use ModelEventKind::*;
    assert_eq!(
        s.kinds(),
        [ev("b", Evicted), ev("d", LoadStarted), ev("d", Loaded)]
    );
    assert_eq!(s.models.stats().evicted, 1);
    assert_eq!(s.model_bytes(), 900 * MIB);
    // Most recently used first.
    let order: Vec<String> = s.models.loaded().into_iter().map(|(n, _)| n).collect();
    assert_eq!(order, ["d", "a", "c"]);
}

/// A model whose load waits for a gate, and notes how many loads run at once.
fn gated(
    s: &Sim,
    name: &str,
    gate: mpsc::Receiver<()>,
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
) {
    let gate = std::sync::Mutex::new(gate);
    let calls = s.calls.clone();
    s.models
        .register(
            ModelSpec::declared(name, 100 * MIB),
            move || {
                calls.loads.fetch_add(1, Ordering::SeqCst);
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let _ = gate.lock().unwrap().recv();
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(String::new())
            },
            |_| Ok(()),
        )
        .unwrap();
}

#[test]
fn loads_run_one_at_a_time_and_a_second_load_of_the_same_model_joins() {
    let s = sim(Accountant::new(1000 * MIB, 0), ModelConfig::default());
    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (open_a, gate_a) = mpsc::channel();
    let (open_b, gate_b) = mpsc::channel();
    gated(&s, "a", gate_a, running.clone(), most.clone());
    gated(&s, "b", gate_b, running.clone(), most.clone());

    let first = s.models.load_in_background("a");
    while s.models.status("a") != Some(ModelStatus::Loading) {
        std::thread::yield_now();
    }
    let joined = s.models.load_in_background("a");
    let other = s.models.load_in_background("b");
    // b waits for a: its load function has not started.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(s.models.status("b"), Some(ModelStatus::Unloaded));
    assert!(!first.is_finished() && !joined.is_finished() && !other.is_finished());
    open_a.send(()).unwrap();
    assert_eq!(first.wait().unwrap().name, "a");
    assert_eq!(joined.wait().unwrap().name, "a");
    open_b.send(()).unwrap();
    assert_eq!(other.wait().unwrap().name, "b");
    assert_eq!((s.loads(), most.load(Ordering::SeqCst)), (2, 1));
    assert_eq!(s.model_bytes(), 200 * MIB);
}

#[test]
fn a_load_joined_while_it_fails_reports_its_failure_once() {
    let s = sim(Accountant::new(1000 * MIB, 0), ModelConfig::default());
    let (open, gate) = mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(gate);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    s.models
        .register(
            ModelSpec::declared("broken", 10 * MIB),
            move || {
                c.fetch_add(1, Ordering::SeqCst);
                let _ = gate.lock().unwrap().recv();
                Err("weights file is truncated".into())
            },
            |_| Ok(()),
        )
        .unwrap();
    let first = s.models.load_in_background("broken");
    while s.models.status("broken") != Some(ModelStatus::Loading) {
        std::thread::yield_now();
    }
    let joined = s.models.load_in_background("broken");
    std::thread::sleep(Duration::from_millis(20));
    open.send(()).unwrap();
    let want =
        "loading model broken failed: weights file is truncated; check the model's files and retry";
    assert_eq!(first.wait().unwrap_err().to_string(), want);
    assert_eq!(joined.wait().unwrap_err().to_string(), want);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!((s.models.stats().load_failures, s.model_bytes()), (1, 0));
}

#[test]
fn measured_models_reserve_their_rss_change() {
    let rss = Arc::new(AtomicU64::new(100 * MIB as u64));
    let clock = Arc::new(ManualClock::new(0));
    let probe = rss.clone();
    let models: ModelManager<()> = ModelManager::new(
        Arc::new(Accountant::new(1000 * MIB, 0)),
        ModelConfig::default(),
    )
    .with_clock(clock)
    .with_rss_probe(move || Some(probe.load(Ordering::SeqCst)));
    let grows = Arc::new(AtomicU64::new(180 * MIB as u64));
    let (r, g) = (rss.clone(), grows.clone());
    models
        .register(
            ModelSpec::whisper(Model::Base).measured(),
            move || {
                r.fetch_add(g.load(Ordering::SeqCst), Ordering::SeqCst);
                Ok(())
            },
            |()| Ok(()),
        )
        .unwrap();
    // The estimate (250 MiB) is checked first; the measurement (180 MiB) is what is held.
    assert_eq!(models.load("base").unwrap().bytes, 180 * MIB);
    assert_eq!(models.accountant().used(Category::Model), 180 * MIB);
    models.unload("base").unwrap();
    // A reload that measures more than the budget can hold is undone.
    grows.store(1200 * MIB as u64, Ordering::SeqCst);
    let e = models.load("base").unwrap_err();
    assert!(
        matches!(e, ModelError::OverBudget { measured, .. } if measured == 1200 * MIB),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("model base measured 1200.0 MiB once loaded"),
        "{e}"
    );
    assert_eq!(models.accountant().used(Category::Model), 0);
}

#[test]
fn duplicate_names_are_refused() {
    let s = sim(Accountant::new(MIB, 0), ModelConfig::default());
    s.add(ModelSpec::declared("a", 1));
    let e = s.models.register(
        ModelSpec::declared("a", 2),
        || Ok(String::new()),
        |_| Ok(()),
    );
    assert_eq!(e.unwrap_err(), ModelError::Duplicate { name: "a".into() });
}

/// The wiring the app uses: the monitor's cleanup callback unloads the model when the policy
/// reaches `High`, and the policy sees the bytes come back.
#[test]
fn the_monitor_unloads_the_model_at_high_pressure() {
    use crate::memory::monitor::{MemoryMonitor, MonitorConfig};

    let s = sim(
        Budget::for_model(Model::Small).accountant(),
        ModelConfig::default(),
    ); // 1012 MiB
    s.whisper(&[Model::Small]);
    s.models.load("small").unwrap(); // 49 %
    let monitor = MemoryMonitor::new(
        s.models.accountant().clone(),
        MonitorConfig {
            observe_system: false,
            ..MonitorConfig::default()
        },
    )
    .unwrap();
    let models = s.models.clone();
    monitor.add_cleanup_callback(move |r| models.unload_under_pressure(&r.actions, r.wanted));
    let _audio = s
        .models
        .accountant()
        .try_reserve(Category::Other, 300 * MIB)
        .unwrap(); // 79 %
    let unloaded = AtomicBool::new(false);
    for second in 0..5 {
        let report = monitor.step_at(second * 1000);
        if report.freed > 0 {
            assert_eq!(report.level, Level::High);
            assert_eq!(report.freed, 500 * MIB as u64);
            unloaded.store(true, Ordering::SeqCst);
            break;
        }
    }
    assert!(unloaded.load(Ordering::SeqCst), "{:?}", monitor.timeline());
    assert_eq!(s.models.status("small"), Some(ModelStatus::Unloaded));
    assert_eq!(s.models.stats().unloaded_pressure, 1);
}

#[test]
fn background_load_overlaps_other_work() {
    // The load cannot finish before the caller has done its own work: only a caller that
    // was not blocked by the load gets here.
    let s = sim(Accountant::new(1000 * MIB, 0), ModelConfig::default());
    let (open, gate) = mpsc::channel();
    gated(&s, "a", gate, Arc::default(), Arc::default());
    let handle = s.models.load_in_background("a");
    open.send(()).unwrap(); // "capture" runs here
    assert_eq!(handle.wait().unwrap().bytes, 100 * MIB);
}
