//! `w4l demo`: the whole pipeline on the built-in synthetic voice, faster than real time, with
//! a deliberately small budget, so the cleanup policy visibly escalates and recovers.
//!
//! Everything the demo prints is deterministic: the voice is a seeded generator, the policy is
//! stepped on the audio's clock (one step per second of audio), and system memory (RSS,
//! available, kernel pressure) is left out of the readings, so the only pressure is the
//! accountant's — the same on every machine and every run.
//!
//! The story: a dictation app loads its speech model (a stand-in of an eighth of the budget,
//! really allocated, managed by [`w4l::memory::models::ModelManager`]) in the background as
//! the take starts, and records a long monologue into a small budget. As the take grows the
//! policy escalates; at `High` the model is unloaded and the oldest cached audio evicted (it
//! is on disk: the take stays whole). When the take is handed over, its memory and file are
//! released, the transcription reloads the model on demand, the policy steps back down to
//! `Normal`, and the model, unused for 10 s, is unloaded again.
//!
//! Capture starts once the model's load function runs: its bytes are reserved by then, so the
//! budget's figures are the same on every run, while the allocation itself overlaps capture.

mod model;

use std::sync::Arc;
use std::time::Duration;

use w4l_core::accountant::Accountant;
use w4l_core::policy::Level;

use crate::cli::format_bytes;
use model::{AudioClock, MODEL, Weights};
use w4l::error::{Error, Result};
use w4l::memory::models::ModelManager;
use w4l::memory::monitor::{Event, MemoryMonitor, MonitorConfig};
use w4l::recorder::{Recorder, RecorderConfig, RecorderInfo, minimum_budget};
use w4l::source::Synthetic;

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Length of the synthetic take.
    pub duration: Duration,
    /// The memory budget.
    pub budget: u64,
    /// Sample rate.
    pub rate: u32,
    /// Seed of the synthetic voice.
    pub seed: u64,
    /// Keep the samples and marks of a memory timeline chart.
    pub timeline: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(60),
            budget: 1 << 20,
            rate: 16_000,
            seed: 0x00C0_FFEE,
            timeline: false,
        }
    }
}

/// What the demo did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoReport {
    /// The budget, bytes.
    pub budget: u64,
    /// The stand-in model's size, bytes.
    pub model_bytes: u64,
    /// Ring, window and block sizes, bytes.
    pub ring_bytes: u64,
    /// Window bytes.
    pub window_bytes: u64,
    /// Block bytes.
    pub block_bytes: u64,
    /// The timeline, one line per event, in order (audio time).
    pub timeline: Vec<String>,
    /// The timeline as printed: a cleanup merged with what it did, runs of identical cleanups
    /// collapsed into one line.
    #[serde(skip)]
    pub display: Vec<String>,
    /// Level changes of the policy.
    pub level_changes: u64,
    /// The recorder's figures when the take ended.
    pub at_stop: RecorderInfo,
    /// The policy level at the end, after the take's memory was released.
    pub final_level: &'static str,
    /// Highest level reached.
    pub highest_level: &'static str,
    /// Accounted bytes at the end.
    pub final_accounted: u64,
    /// Highest accounted bytes (audio and model together) during the run.
    pub peak_accounted: u64,
    /// Loads of the model (in the background as the take started, on demand after it).
    pub model_loads: u64,
    /// Unloads of the model under pressure (`High`).
    pub model_unloads_pressure: u64,
    /// Unloads of the model after it was unused for 10 s.
    pub model_unloads_idle: u64,
    /// Whether a signal (Ctrl-C, SIGTERM, SIGHUP) ended the take before its `duration`.
    pub interrupted: bool,
}

/// Disk budget of the demo's spill file.
const DEMO_DISK_BUDGET: usize = 256 << 20;

/// Settings of the recorder inside the demo: a 5 s window, 1 s blocks, kept raw (the synthetic
/// voice packs to about a third of its size: compressed, a 1 MiB budget would take minutes to
/// fill, and the demo is about the policy).
fn recorder_config(duration: Duration, rate: u32) -> RecorderConfig {
    RecorderConfig {
        window: Duration::from_secs(5),
        block_bytes: rate as usize * 2,
        compress_cache: false,
        limit_frames: Some((duration.as_secs_f64() * f64::from(rate)).round() as u64),
        ..RecorderConfig::default()
    }
}

/// The budget must hold the recorder's fixed buffers and the stand-in model, which is really
/// allocated: the machine must have it too.
fn check_budget(config: &DemoConfig, fixed: u64, model_bytes: u64) -> Result<()> {
    if config.budget < fixed + model_bytes {
        return Err(Error::usage(
            format!(
                "a demo budget of {} cannot hold the recorder's ring, window and one block ({}) \
                 plus the stand-in model",
                format_bytes(config.budget),
                format_bytes(fixed)
            ),
            format!(
                "pass --budget {} or more",
                format_bytes((fixed + model_bytes) * 8 / 7 + 1)
            ),
        ));
    }
    match w4l::memory::monitor::machine_ceiling() {
        Some(ceiling) if model_bytes > ceiling.bytes => Err(Error::usage(
            format!(
                "the demo's stand-in model (an eighth of --budget, {}) is more than the memory \
                 available ({ceiling})",
                format_bytes(model_bytes)
            ),
            "lower --budget",
        )),
        _ => Ok(()),
    }
}

/// Runs the demo, ending the take early once `interrupted` returns true (it is
/// asked ten times a second): the report then covers the audio up to there, as `w4l record`
/// keeps a take stopped by Ctrl-C. Returns the report and the monitor (its timeline, and its
/// chart with [`DemoConfig::timeline`]).
///
/// # Errors
///
/// A usage error if the budget cannot hold the recorder's buffers and the model; runtime
/// errors of thread creation and of the model's allocation.
pub fn run_until(
    config: &DemoConfig,
    interrupted: &dyn Fn() -> bool,
) -> Result<(DemoReport, Arc<MemoryMonitor>)> {
    let rate = config.rate;
    let rec_config = recorder_config(config.duration, rate);
    let fixed = minimum_budget(&rec_config, rate, 1);
    let model_bytes = config.budget / 8;
    check_budget(config, fixed, model_bytes)?;
    let budget = usize::try_from(config.budget).unwrap_or(usize::MAX);
    let accountant = Arc::new(Accountant::new(budget, DEMO_DISK_BUDGET));
    let monitor = Arc::new(MemoryMonitor::new(
        accountant.clone(),
        MonitorConfig {
            observe_system: false,
            history: if config.timeline {
                crate::chart::HISTORY
            } else {
                0
            },
            ..MonitorConfig::default()
        },
    )?);
    let clock = Arc::new(AudioClock::default());
    let bytes = usize::try_from(model_bytes).unwrap_or(usize::MAX);
    let (models, starts) = model::manager(&accountant, &clock, bytes)?;
    let unload = monitor.add_cleanup_callback(model::unload_at_high(
        &models,
        &clock,
        Arc::downgrade(&monitor),
    ));
    monitor.note(
        0,
        format!(
            "recording {:.0} s of synthetic speech; the speech model ({}) loads in the background",
            config.duration.as_secs_f64(),
            format_bytes(model_bytes)
        ),
    );
    let loading = models.load_in_background(MODEL);
    model::wait_for_start(&starts, || loading.is_finished());
    let frames = rec_config.limit_frames.unwrap_or(0);
    let source = Synthetic::new(rate, 1, config.seed, frames, false);
    let recorder = Recorder::new(Box::new(source), monitor.clone(), rec_config.clone())?;
    // A first reading as the take starts (the worker's come at every second of audio): the
    // chart begins at 0.
    monitor.step_at(0);
    recorder.start()?;
    let stopped_early = capture(&recorder, interrupted);
    loading.wait()?;
    recorder.stop()?;
    let at_stop = recorder.info();
    hand_over(&recorder, &monitor, &models, &clock, stopped_early)?;
    monitor.remove_cleanup_callback(unload);
    drop(recorder);
    let report = report(
        &rec_config,
        config,
        &monitor,
        &models,
        at_stop,
        stopped_early,
    );
    Ok((report, monitor))
}

/// Waits for the take to end; `true` if a signal ended it early.
fn capture(recorder: &Recorder, interrupted: &dyn Fn() -> bool) -> bool {
    while !recorder.wait(Duration::from_millis(100)) {
        if interrupted() {
            return true;
        }
    }
    false
}

/// After the take: hands it over (its memory and file released), transcribes (the model is
/// reloaded on demand), then reads once a second of (virtual) time until the policy is back
/// to `Normal` and the idle model is unloaded.
fn hand_over(
    recorder: &Recorder,
    monitor: &MemoryMonitor,
    models: &ModelManager<Weights>,
    clock: &AudioClock,
    stopped_early: bool,
) -> Result<()> {
    let info = recorder.info();
    let end_ms = info.frames_captured * 1000 / u64::from(info.rate);
    if stopped_early {
        monitor.note(end_ms, "interrupted by a signal: the take ends here");
    }
    recorder.discard();
    monitor.note(
        end_ms,
        format!(
            "take handed over for transcription: released {}",
            format_bytes(info.memory_used)
        ),
    );
    clock.set(end_ms);
    // Unloads not noted yet; the background load's events go too: their times depend on the
    // machine, not on the story.
    model::note_unloads(models, monitor);
    let reloaded = model::transcribe(models)?;
    let _ = models.drain_events();
    monitor.note(
        end_ms,
        if reloaded {
            "the transcription reloads the speech model on demand"
        } else {
            "the transcription uses the speech model, still loaded"
        },
    );
    let mut t = end_ms;
    for _ in 0..120 {
        if monitor.level() == Level::Normal && models.loaded().is_empty() {
            break;
        }
        t += 1000;
        clock.set(t);
        models.tick();
        model::note_unloads(models, monitor);
        monitor.step_at(t);
    }
    Ok(())
}

fn report(
    rec_config: &RecorderConfig,
    config: &DemoConfig,
    monitor: &MemoryMonitor,
    models: &ModelManager<Weights>,
    at_stop: RecorderInfo,
    interrupted: bool,
) -> DemoReport {
    let rate = config.rate;
    let (events, _) = monitor.timeline();
    let highest = events
        .iter()
        .filter_map(|e| match e {
            Event::Transition(t) => Some(t.to),
            _ => None,
        })
        .max()
        .unwrap_or(Level::Normal);
    let ring = (rec_config.ring.as_secs_f64() * f64::from(rate)).ceil() as u64;
    let window = (rec_config.window.as_secs_f64() * f64::from(rate)).ceil() as u64 * 2;
    let accountant = monitor.accountant();
    let stats = models.stats();
    DemoReport {
        budget: config.budget,
        model_bytes: config.budget / 8,
        ring_bytes: ring.max(1024).next_power_of_two() * 4,
        window_bytes: window,
        block_bytes: rec_config.block_bytes as u64,
        timeline: events.iter().map(render_event).collect(),
        display: summarize(&events),
        level_changes: events
            .iter()
            .filter(|e| matches!(e, Event::Transition(t) if t.is_level_change()))
            .count() as u64,
        at_stop,
        final_level: monitor.level().name(),
        highest_level: highest.name(),
        final_accounted: accountant.memory_used() as u64,
        peak_accounted: accountant.figures().memory_peak as u64,
        model_loads: stats.loads,
        model_unloads_pressure: stats.unloaded_pressure,
        model_unloads_idle: stats.unloaded_idle,
        interrupted,
    }
}

/// `  12.000 s`: a time column.
fn time_column(ms: u64) -> String {
    format!("{:4}.{:03} s", ms / 1000, ms % 1000)
}

/// One timeline line: `  12.000 s  Normal->Elevated pressure=612‰ accounted`.
fn render_event(e: &Event) -> String {
    let text = e.to_string();
    // Every event renders as `t=<ms>ms <rest>`; show the time as seconds in a column.
    let rest = text
        .split_once(' ')
        .map(|(_, r)| r.to_owned())
        .unwrap_or(text);
    format!("{}  {rest}", time_column(e.at_ms()))
}

/// The printed timeline: each cleanup on one line with what the callbacks did (their notes at
/// the same time), and a run of cleanups that only differ in time collapsed into one line.
fn summarize(events: &[Event]) -> Vec<String> {
    // (time, text) items first.
    let mut items: Vec<(u64, String)> = Vec::new();
    let mut pending_notes: Vec<(u64, String)> = Vec::new();
    for e in events {
        match e {
            Event::Note { at_ms, text, .. } => pending_notes.push((*at_ms, text.clone())),
            Event::Cleanup {
                at_ms,
                level,
                actions,
                freed,
                forced,
            } => {
                let (mine, others): (Vec<_>, Vec<_>) =
                    pending_notes.drain(..).partition(|(t, _)| t == at_ms);
                items.extend(others);
                let names: Vec<String> = actions
                    .iter()
                    .filter(|a| a.level() == *level)
                    .map(|a| a.to_string())
                    .collect();
                let did = if mine.is_empty() {
                    "nothing to free".to_owned()
                } else {
                    mine.into_iter()
                        .map(|(_, t)| t)
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                items.push((
                    *at_ms,
                    format!(
                        "{}cleanup at {level} (+{}): {did} -> freed {}",
                        if *forced { "forced " } else { "" },
                        names.join(", "),
                        format_bytes(*freed)
                    ),
                ));
            }
            Event::Transition(_) => {
                items.append(&mut pending_notes);
                let text = e.to_string();
                let text = text
                    .split_once(' ')
                    .map_or(text.clone(), |(_, r)| r.to_owned());
                items.push((e.at_ms(), text));
            }
        }
    }
    items.append(&mut pending_notes);
    // Collapse runs of identical texts.
    let mut out = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let (t, text) = &items[i];
        let mut j = i + 1;
        while j < items.len() && items[j].1 == *text {
            j += 1;
        }
        out.push(format!("{}  {text}", time_column(*t)));
        let repeats = j - i - 1;
        if repeats > 0 {
            let last = items[j - 1].0;
            let every = (last - t) / repeats as u64;
            out.push(format!(
                "{}  ... the same {repeats} more time{}, every {}.{:03} s, until {}.{:03} s",
                " ".repeat(time_column(0).len()),
                if repeats == 1 { "" } else { "s" },
                every / 1000,
                every % 1000,
                last / 1000,
                last % 1000
            ));
        }
        i = j;
    }
    out
}

impl DemoReport {
    /// The human-readable report.
    pub fn render(&self) -> String {
        let s = &self.at_stop;
        let mut out = String::new();
        out.push_str(&format!(
            "w4l demo: synthetic speech, {} Hz mono, through a {} budget\n",
            s.rate,
            format_bytes(self.budget)
        ));
        out.push_str(&format!(
            "  fixed: ring {}, window 5 s {}; blocks of {} ({:.1} s); stand-in speech model {}\n",
            format_bytes(self.ring_bytes),
            format_bytes(self.window_bytes),
            format_bytes(self.block_bytes),
            self.block_bytes as f64 / 2.0 / f64::from(s.rate),
            format_bytes(self.model_bytes),
        ));
        out.push_str("\ntimeline (audio time):\n");
        for line in &self.display {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("\nfinal figures:\n");
        out.push_str(&format!(
            "  captured        {:.3} s ({} frames), overruns {}{}\n",
            s.seconds_captured,
            s.frames_captured,
            s.overruns,
            if self.interrupted {
                "; interrupted by a signal"
            } else {
                ""
            }
        ));
        out.push_str(&format!(
            "  memory          {:.3} s cached in {} blocks; {:.3} s evicted (on disk), lost {} samples\n",
            s.frames_held as f64 / f64::from(s.rate),
            s.blocks_held,
            s.evicted_frames as f64 / f64::from(s.rate),
            s.lost_samples
        ));
        out.push_str(&format!(
            "  disk            {:.3} s journaled to a temporary file ({}), removed at the end\n",
            s.frames_on_disk as f64 / f64::from(s.rate),
            format_bytes(s.disk_bytes)
        ));
        out.push_str(&format!(
            "  memory          peak {} of {} (audio {}), {}\n",
            format_bytes(self.peak_accounted),
            format_bytes(self.budget),
            format_bytes(s.memory_peak),
            if self.peak_accounted <= self.budget {
                "never over budget"
            } else {
                "OVER BUDGET"
            }
        ));
        out.push_str(&format!(
            "  model           loaded {}× (in the background, then on demand), unloaded {}× \
             under pressure and {}× unused\n",
            self.model_loads, self.model_unloads_pressure, self.model_unloads_idle
        ));
        out.push_str(&format!(
            "  policy          highest {}, {} level changes; now {}, {} accounted\n",
            self.highest_level,
            self.level_changes,
            self.final_level,
            format_bytes(self.final_accounted)
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_escalates_recovers_and_is_deterministic() {
        let config = DemoConfig {
            duration: Duration::from_secs(40),
            ..DemoConfig::default()
        };
        let (a, _) = run_until(&config, &|| false).expect("demo");
        let (b, _) = run_until(&config, &|| false).expect("demo again");
        assert_eq!(a.render(), b.render());
        assert_eq!(a.at_stop.frames_captured, 40 * 16_000);
        assert_eq!(a.at_stop.overruns, 0);
        assert!(a.at_stop.evicted_frames > 0, "{}", a.render());
        assert_eq!(a.at_stop.lost_samples, 0, "{}", a.render());
        // The take is whole on disk, and what memory holds is its end.
        assert_eq!(a.at_stop.frames_on_disk, a.at_stop.frames_captured);
        assert!(a.at_stop.frames_held <= a.at_stop.frames_captured);
        assert!(a.highest_level != "Normal", "{}", a.render());
        assert_eq!(a.final_level, "Normal", "{}", a.render());
        assert_eq!(a.final_accounted, 0);
        assert!(a.at_stop.memory_peak <= a.budget);
        assert!(a.peak_accounted <= a.budget);
        assert!(a.render().contains("never over budget"));
    }

    #[test]
    fn the_model_loads_with_the_take_unloads_at_high_and_reloads_on_demand() {
        use w4l::memory::timeline::MarkKind;
        let config = DemoConfig {
            duration: Duration::from_secs(40),
            timeline: true,
            ..DemoConfig::default()
        };
        let (r, monitor) = run_until(&config, &|| false).expect("demo");
        let text = r.render();
        assert_eq!(
            (
                r.model_loads,
                r.model_unloads_pressure,
                r.model_unloads_idle
            ),
            (2, 1, 1),
            "{text}"
        );
        for line in [
            "the speech model (128.0 KiB) loads in the background",
            "unloaded the speech model (128.0 KiB)",
            "the transcription reloads the speech model on demand",
            "unloaded the speech model after 10 s unused (128.0 KiB)",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
        let chart = monitor.chart("demo");
        // One sample per second of audio, then one per second until the model is idle.
        assert!(chart.samples.len() >= 40, "{}", chart.samples.len());
        let kinds: Vec<MarkKind> = chart.marks.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds.iter().filter(|&&k| k == MarkKind::Unload).count(),
            2,
            "{kinds:?}"
        );
        assert!(kinds.contains(&MarkKind::Spill), "{kinds:?}");
        // The model is in the samples while loaded.
        let model = w4l_core::accountant::Category::Model;
        assert_eq!(chart.samples[0].bytes(model), 128 << 10);
        assert_eq!(chart.samples.last().map(|s| s.bytes(model)), Some(0));
    }

    #[test]
    fn too_small_budget_is_a_usage_error() {
        let e = run_until(
            &DemoConfig {
                budget: 64 << 10,
                ..DemoConfig::default()
            },
            &|| false,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--budget"), "{e}");
    }
}
