//! The demo's speech model: a stand-in of the declared size, really allocated (every page
//! written, so resident), managed by [`ModelManager`] on the audio's clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Weak};
use std::time::Duration;

use w4l::error::Result;
use w4l::memory::models::{
    BoxError, Clock, ModelConfig, ModelEventKind, ModelManager, ModelSpec, ModelStatus,
};
use w4l::memory::monitor::{CleanupRequest, MemoryMonitor};
use w4l::memory::timeline::Mark;
use w4l_core::accountant::Accountant;
use w4l_core::policy::Action;

use crate::cli::format_bytes;

/// The model's name, as the timeline prints it.
pub const MODEL: &str = "speech model";
/// Idle time after which the model is unloaded: the library's 5 min scaled by 1/30, as the
/// demo's story is minutes, not hours.
pub const IDLE: Duration = Duration::from_secs(10);

/// The stand-in's weights.
pub type Weights = Vec<u8>;

/// The demo's one clock, the captured audio's, in ms: the policy's callback moves it to the
/// step's time, the demo to the times after the take. The model manager's events (and so the
/// chart's unload marks) are on it.
#[derive(Debug, Default)]
pub struct AudioClock(AtomicU64);

impl AudioClock {
    /// Moves the clock to `ms` (never back).
    pub fn set(&self, ms: u64) {
        self.0.fetch_max(ms, Ordering::Relaxed);
    }
}

impl Clock for AudioClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A manager holding the stand-in model of `bytes`, and a receiver told each time its load
/// function starts (its bytes are reserved by then).
pub fn manager(
    accountant: &Arc<Accountant>,
    clock: &Arc<AudioClock>,
    bytes: usize,
) -> Result<(Arc<ModelManager<Weights>>, Receiver<()>)> {
    let config = ModelConfig {
        idle_timeout: IDLE,
        allow_downsize: false,
    };
    let models = ModelManager::new(accountant.clone(), config).with_clock(clock.clone());
    let (started, starts) = sync_channel(1);
    models.register(
        ModelSpec::declared(MODEL, bytes),
        stand_in(bytes, started),
        |weights| {
            drop(weights);
            Ok(())
        },
    )?;
    Ok((Arc::new(models), starts))
}

/// The load function: `bytes` allocated fallibly, every byte written.
fn stand_in(
    bytes: usize,
    started: SyncSender<()>,
) -> impl Fn() -> std::result::Result<Weights, BoxError> + Send + Sync + 'static {
    move || {
        let _ = started.try_send(());
        let mut weights = Vec::new();
        weights.try_reserve_exact(bytes).map_err(|e| {
            format!(
                "cannot allocate {} for the stand-in model ({e})",
                format_bytes(bytes as u64)
            )
        })?;
        weights.resize(bytes, 1u8);
        Ok(weights)
    }
}

/// The monitor's cleanup callback for the model: at `High` (`UnloadModel`), the model is
/// unloaded if idle, noted and marked on the timeline.
pub fn unload_at_high(
    models: &Arc<ModelManager<Weights>>,
    clock: &Arc<AudioClock>,
    monitor: Weak<MemoryMonitor>,
) -> impl Fn(&CleanupRequest) -> u64 + Send + Sync + 'static {
    let (models, clock) = (models.clone(), clock.clone());
    move |request| {
        if !request.wants(Action::UnloadModel) {
            return 0;
        }
        clock.set(request.at_ms);
        if models.status(MODEL) == Some(ModelStatus::Loading) {
            // The load that started with the take is waited for, so that the story is the
            // same on every run (an app's unload skips a model still loading, and retries).
            let _ = models.load(MODEL);
        }
        // At High the model goes, whatever the policy computed it wants.
        let freed = models.unload_under_pressure(&request.actions, request.wanted.max(1));
        if let Some(monitor) = monitor.upgrade() {
            note_unloads(&models, &monitor);
        }
        freed
    }
}

/// Notes the model's unloads since the last call on the monitor's timeline, with their marks.
pub fn note_unloads(models: &ModelManager<Weights>, monitor: &MemoryMonitor) {
    for event in models.drain_events() {
        let Some(mark) = Mark::from_model_event(&event) else {
            continue;
        };
        let bytes = format_bytes(event.bytes as u64);
        let text = match event.kind {
            ModelEventKind::UnloadedIdle => format!(
                "unloaded the speech model after {} s unused ({bytes})",
                IDLE.as_secs()
            ),
            _ => format!("unloaded the speech model ({bytes})"),
        };
        monitor.note_mark(mark, text);
    }
}

/// Waits until the load function of a background load has started (its bytes are then
/// reserved) or the load has ended.
pub fn wait_for_start(starts: &Receiver<()>, finished: impl Fn() -> bool) {
    while starts.recv_timeout(Duration::from_millis(5)).is_err() && !finished() {}
}

/// The transcription after the take: reads the model, reloading it on demand. Returns whether
/// it had to be reloaded.
pub fn transcribe(models: &ModelManager<Weights>) -> Result<bool> {
    let reloaded = !matches!(models.status(MODEL), Some(ModelStatus::Loaded { .. }));
    // Reading one byte a page stands in for inference.
    models.with(MODEL, |weights| weights.iter().step_by(4096).count())?;
    Ok(reloaded)
}
