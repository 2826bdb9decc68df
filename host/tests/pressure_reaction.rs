//! A memory pressure event reaches a recording's policy and w4l acts, end to end: a pipe
//! stands in for the PSI descriptor (`PressureWatch::from_fd`), a real-time synthetic voice is
//! recorded in stream mode with a budget far from any threshold, and each byte written to the
//! pipe must wake the worker, which steps the policy (forced, at the audio time it reached)
//! and evicts the take's cached blocks (they are on disk already). Without the event nothing
//! would be evicted. Prints the reaction times; asserts each is within one PSI window (2 s),
//! the target.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use w4l::memory::monitor::{Event, MemoryMonitor, MonitorConfig, PressureStatus};
use w4l::memory::timeline::MarkKind;
use w4l::memory::watch::{PressureWatch, Readiness};
use w4l::recorder::{Recorder, RecorderConfig};
use w4l::source::Synthetic;
use w4l::tempfiles::ResourceManager;
use w4l_core::accountant::Accountant;

const RATE: u32 = 16_000;
const ROUNDS: usize = 8;
const PSI_WINDOW: Duration = Duration::from_secs(2);

/// The evictions noted so far (each a note carrying a spill mark).
fn evictions(monitor: &MemoryMonitor) -> usize {
    monitor
        .timeline()
        .0
        .iter()
        .filter(|e| {
            matches!(e, Event::Note { mark: Some(m), text, .. }
                if m.kind == MarkKind::Spill && text.starts_with("evicted"))
        })
        .count()
}

#[test]
fn a_pressure_event_makes_the_recording_evict_within_one_psi_window() {
    let base = tempfile::tempdir().expect("temp dir");
    let manager = ResourceManager::open(base.path().join("w4l")).expect("manager");
    let monitor = Arc::new(
        MemoryMonitor::new(
            Arc::new(Accountant::new(256 << 20, 256 << 20)),
            MonitorConfig {
                observe_system: false,
                ..MonitorConfig::default()
            },
        )
        .expect("monitor"),
    );
    let (reader, mut writer) = std::io::pipe().expect("pipe");
    let watch = PressureWatch::from_fd(reader.into(), Readiness::Readable, "a pipe (stand-in PSI)");
    monitor.set_pressure_watch(watch).expect("watch");
    assert!(matches!(
        monitor.pressure_status(),
        PressureStatus::On { .. }
    ));
    let config = RecorderConfig {
        // 0.1 s blocks: several cached between two events.
        block_bytes: 3200,
        window: Duration::from_secs(1),
        temp_files: Some(manager),
        ..RecorderConfig::default()
    };
    let source = Synthetic::new(RATE, 1, 7, u64::from(RATE) * 60, true);
    let recorder = Recorder::new(Box::new(source), monitor.clone(), config).expect("recorder");
    recorder.start().expect("start");
    let mut took = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        // Let the cache fill again (and the worker park, waiting for audio).
        std::thread::sleep(Duration::from_millis(350));
        assert!(
            recorder.info().blocks_held > 1,
            "round {round}: nothing cached"
        );
        let before = evictions(&monitor);
        let sent = Instant::now();
        writer.write_all(b"!").expect("write");
        while evictions(&monitor) == before && sent.elapsed() < PSI_WINDOW {
            std::thread::sleep(Duration::from_micros(100));
        }
        took.push(sent.elapsed());
        assert!(
            evictions(&monitor) > before,
            "round {round}: no eviction within {PSI_WINDOW:?}: {:?}",
            monitor.timeline()
        );
        assert!(
            recorder.info().blocks_held <= 1,
            "round {round}: the cache stayed"
        );
    }
    recorder.stop().expect("stop");
    let info = recorder.info();
    assert!(info.evicted_frames > 0);
    assert_eq!(info.lost_samples, 0, "evicting on pressure loses nothing");
    assert_eq!(
        info.policy_level, "Normal",
        "pressure events do not change the level"
    );
    let (events, _) = monitor.timeline();
    let forced = events
        .iter()
        .filter(|e| matches!(e, Event::Cleanup { forced: true, .. }))
        .count();
    assert_eq!(forced, ROUNDS, "one forced step per event: {events:?}");
    // Every forced step is at an audio time, between the periodic steps' times.
    assert!(
        events
            .iter()
            .all(|e| e.at_ms() <= info.frames_captured * 1000 / 16_000)
    );
    took.sort();
    eprintln!(
        "pipe -> the worker's forced step and eviction, {ROUNDS} events: median {:?}, max {:?}",
        took[ROUNDS / 2],
        took[ROUNDS - 1]
    );
    assert!(took[ROUNDS - 1] < PSI_WINDOW);
}
