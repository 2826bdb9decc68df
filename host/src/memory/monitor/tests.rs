//! The monitor's tests: callbacks, forced cleanups, the background thread, readings.

use super::*;
use crate::memory::watch::PressureWatch;
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

/// A v1 cgroup tree limited to `limit` bytes, using `usage` of it.
fn v1_fixture(limit: u64, usage: u64) -> (tempfile::TempDir, CgroupMemory) {
    let dir = tempfile::tempdir().expect("fixture directory");
    let group = dir.path().join("sys/memory/app");
    std::fs::create_dir_all(&group).expect("mkdir");
    std::fs::write(group.join("memory.limit_in_bytes"), format!("{limit}\n")).expect("write");
    std::fs::write(group.join("memory.usage_in_bytes"), format!("{usage}\n")).expect("write");
    let root_limit = dir.path().join("sys/memory/memory.limit_in_bytes");
    std::fs::write(root_limit, "9223372036854771712\n").expect("write");
    let proc = dir.path().join("proc-self-cgroup");
    std::fs::write(&proc, "4:memory:/app\n0::/\n").expect("write");
    let cg = CgroupMemory::detect(&dir.path().join("sys"), &proc).expect("a v1 memory cgroup");
    (dir, cg)
}

/// An observing monitor without a pressure source of its own (a test injects one).
fn observing(cgroup: Option<CgroupMemory>, rss_limit: u64) -> MonitorConfig {
    MonitorConfig {
        rss_limit,
        cgroup,
        pressure: None,
        ..MonitorConfig::default()
    }
}

#[test]
fn a_tighter_cgroup_limit_becomes_the_rss_limit_and_is_shown() {
    let (_dir, cg) = v1_fixture(300 << 20, 100 << 20);
    let acc = Arc::new(Accountant::new(1 << 30, 0));
    let m = MemoryMonitor::new(acc.clone(), observing(Some(cg.clone()), 1 << 30)).expect("m");
    assert_eq!(m.usage().rss_limit, 300 << 20);
    let d = m.detected();
    assert_eq!(d.rss_limit, 300 << 20);
    let info = d.cgroup.clone().expect("the fixture's cgroup");
    assert_eq!((info.version, info.limit), ("v1", Some(300 << 20)));
    assert_eq!(info.headroom, Some(200 << 20));
    assert!(info.to_string().starts_with("cgroup v1 "), "{info}");
    assert!(
        info.to_string()
            .ends_with("limit 300.0 MiB (200.0 MiB headroom)"),
        "{info}"
    );
    assert!(matches!(d.pressure, PressureStatus::Off { .. }), "{d:?}");
    // A looser one leaves the configured limit; a deterministic monitor reads none.
    let m = MemoryMonitor::new(acc.clone(), observing(Some(cg.clone()), 100 << 20)).expect("m");
    assert_eq!(m.detected().rss_limit, 100 << 20);
    let quiet = MonitorConfig {
        cgroup: Some(cg.clone()),
        ..deterministic()
    };
    assert_eq!(
        MemoryMonitor::new(acc, quiet).expect("m").detected().cgroup,
        None
    );
    // The budget's ceiling: the cgroup's headroom when it is below what is available.
    let c = ceiling(Some(1 << 30), Some(&cg)).expect("a ceiling");
    assert_eq!((c.bytes, c.source), (200 << 20, CeilingSource::Cgroup));
    assert_eq!(
        c.to_string(),
        "200.0 MiB of headroom under the cgroup's limit"
    );
    let c = ceiling(Some(100 << 20), Some(&cg)).expect("a ceiling");
    assert_eq!((c.bytes, c.source), (100 << 20, CeilingSource::Available));
}

#[test]
fn the_kernel_answers_decide_the_pressure_source() {
    use crate::memory::psi::{PROC_PRESSURE_MEMORY, Trigger};
    let path = std::path::Path::new(PROC_PRESSURE_MEMORY);
    if !path.exists() {
        eprintln!("skipped: no {PROC_PRESSURE_MEMORY} (kernel without PSI)");
        return;
    }
    let psi = |window_s| PsiConfig {
        trigger: Trigger::some(Duration::from_millis(150), Duration::from_secs(window_s)),
        watch: None,
        write: None,
        cgroup_file: None,
        proc_file: path.to_path_buf(),
    };
    let acc = Arc::new(Accountant::new(1 << 30, 0));
    let with = |window_s| MonitorConfig {
        pressure: Some(psi(window_s)),
        ..observing(None, 0)
    };
    let m = MemoryMonitor::new(acc.clone(), with(2)).expect("monitor");
    assert_eq!(
        m.pressure_status(),
        PressureStatus::On {
            source: "/proc/pressure/memory (some 150000 2000000)".into()
        }
    );
    let m = MemoryMonitor::new(acc, with(1)).expect("monitor");
    let PressureStatus::Off { reason } = m.pressure_status() else {
        panic!("a 1 s window was taken: {:?}", m.pressure_status());
    };
    assert!(
        reason.starts_with(
            "no memory pressure events: the kernel refused the trigger `some 150000 1000000` on \
             /proc/pressure/memory (EINVAL: Invalid argument (os error 22)); without \
             CAP_SYS_RESOURCE the window must be a multiple of 2 s"
        ),
        "{reason}"
    );
    assert!(
        reason.ends_with("reads memory once a second meanwhile"),
        "{reason}"
    );
    // The fallback: readings go on.
    assert!(m.usage().rss > 0);
}

fn pipe_watch() -> (PressureWatch, std::io::PipeWriter) {
    use crate::memory::watch::Readiness;
    let (reader, writer) = std::io::pipe().expect("pipe");
    let watch = PressureWatch::from_fd(reader.into(), Readiness::Readable, "a test pipe");
    (watch, writer)
}

#[test]
fn a_pressure_event_steps_the_background_thread_at_once() {
    use std::io::Write;
    let acc = Arc::new(Accountant::new(1000, 0));
    let m = MemoryMonitor::new(
        acc,
        MonitorConfig {
            interval: Duration::from_secs(3600),
            ..deterministic()
        },
    )
    .expect("monitor");
    let (watch, mut writer) = pipe_watch();
    m.set_pressure_watch(watch).expect("watch");
    assert_eq!(
        m.pressure_status(),
        PressureStatus::On {
            source: "a test pipe".into()
        }
    );
    let woken = Arc::new(AtomicU64::new(0));
    let w = woken.clone();
    let id = m.add_pressure_listener(move || {
        w.fetch_add(1, Ordering::Relaxed);
    });
    m.start().expect("start");
    let sent = Instant::now();
    writer.write_all(b"!").expect("write");
    let deadline = sent + Duration::from_secs(2);
    let forced = || {
        m.timeline()
            .0
            .iter()
            .any(|e| matches!(e, Event::Cleanup { forced: true, .. }))
    };
    while !forced() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    let took = sent.elapsed();
    m.stop();
    assert!(forced(), "no forced step within 2 s: {:?}", m.timeline());
    eprintln!("pipe -> forced step of the monitor's thread: {took:?}");
    let (events, _) = m.timeline();
    assert!(
        events.iter().any(|e| e
            .to_string()
            .ends_with("memory pressure event 1 from a test pipe")),
        "{events:?}"
    );
    assert_eq!(woken.load(Ordering::Relaxed), 1);
    assert_eq!(m.pressure_events(), 1);
    assert!(m.remove_pressure_listener(id));
    // The source closes: the status says so.
    drop(writer);
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(m.pressure_status(), PressureStatus::On { .. }) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(matches!(m.pressure_status(), PressureStatus::Off { .. }));
}

#[test]
fn a_waiter_sees_events_past_its_count() {
    use std::io::Write;
    let m = MemoryMonitor::new(Arc::new(Accountant::new(1000, 0)), deterministic()).expect("m");
    assert!(!m.wait_for_pressure(0, Duration::from_millis(5)));
    let (watch, mut writer) = pipe_watch();
    m.set_pressure_watch(watch).expect("watch");
    writer.write_all(b"!").expect("write");
    assert!(m.wait_for_pressure(0, Duration::from_secs(5)));
    let mut seen = 0;
    let report = m
        .step_on_pressure(7, &mut seen, &mut |_| 0)
        .expect("a step");
    assert_eq!(
        (seen, report.actions.len()),
        (1, 2),
        "Elevated's two cheap actions"
    );
    assert!(m.step_on_pressure(8, &mut seen, &mut |_| 0).is_none());
}

#[test]
fn periodic_steps_keep_samples_and_marks_for_the_chart() {
    use crate::memory::timeline::MarkKind;
    let acc = Arc::new(Accountant::new(1000, 0));
    let m = MemoryMonitor::new(
        acc.clone(),
        MonitorConfig {
            history: 100,
            ..deterministic()
        },
    )
    .expect("monitor");
    let _held = acc.try_reserve(Category::Audio, 700).expect("reserve");
    for s in 0..5 {
        m.step_at(s * 1000);
        // Forced steps between them keep no sample.
        m.step_forced(s * 1000 + 500, true);
    }
    m.note_mark(
        Mark {
            t_ms: 2500,
            kind: MarkKind::Spill,
            bytes: 100,
        },
        "evicted 100 B of cached audio",
    );
    let chart = m.chart("test");
    let times: Vec<u64> = chart.samples.iter().map(|s| s.t_ms).collect();
    assert_eq!(times, [0, 1000, 2000, 3000, 4000]);
    assert_eq!(chart.samples[0].bytes(Category::Audio), 700);
    assert_eq!(chart.samples[0].level, Level::Elevated);
    assert_eq!(chart.marks.len(), 1);
    assert_eq!(chart.thresholds_permille, [600, 750, 900]);
    assert!(m.timeline().0.iter().any(|e| matches!(
        e,
        Event::Note { mark: Some(mark), .. } if mark.kind == MarkKind::Spill
    )));
    // Without a history, nothing is kept.
    let plain = MemoryMonitor::new(acc.clone(), deterministic()).expect("monitor");
    plain.step_at(0);
    assert!(plain.chart("none").samples.is_empty());
}

#[test]
#[cfg(target_os = "linux")]
fn a_journal_on_tmpfs_counts_in_the_rss() {
    let acc = Arc::new(Accountant::new(1 << 30, 1 << 30));
    let m = MemoryMonitor::new(acc.clone(), observing(None, 0)).expect("monitor");
    let _journal = acc.try_reserve(Category::Disk, 64 << 20).expect("reserve");
    let before = m.usage();
    assert_eq!(before.files_in_memory, 0);
    assert!(!m.count_disk_as_memory(std::path::Path::new("/proc")));
    if !std::path::Path::new("/dev/shm").is_dir() {
        return;
    }
    assert!(m.count_disk_as_memory(std::path::Path::new("/dev/shm")));
    let after = m.usage();
    assert_eq!(after.files_in_memory, 64 << 20);
    // Other tests of this process allocate meanwhile: the RSS moves by a few MiB.
    assert!(
        after.rss + (8 << 20) >= before.rss + (64 << 20),
        "{before:?} {after:?}"
    );
}
