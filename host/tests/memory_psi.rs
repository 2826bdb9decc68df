//! Pressure events: real PSI triggers with the kernel's exact answers, systemd's
//! `$MEMORY_PRESSURE_WATCH` protocol against a FIFO, a socket and a PSI file, and the reaction
//! time from an event to the callback with a pipe standing in for the PSI descriptor.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use w4l::memory::psi::{PROC_PRESSURE_MEMORY, PsiConfig, Trigger, register_trigger};
use w4l::memory::watch::{PressureWatch, Readiness};

const MS: Duration = Duration::from_millis(1);

/// `None` (and a note) on a kernel without PSI.
fn proc_pressure() -> Option<&'static Path> {
    let path = Path::new(PROC_PRESSURE_MEMORY);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: {PROC_PRESSURE_MEMORY} does not exist (kernel without CONFIG_PSI)");
        None
    }
}

/// A configuration that looks only where the test says.
fn config(watch: Option<PathBuf>, write: Option<&str>) -> PsiConfig {
    PsiConfig {
        trigger: Trigger::DEFAULT,
        watch,
        write: write.map(str::to_owned),
        cgroup_file: None,
        proc_file: PathBuf::from("/nonexistent/pressure/memory"),
    }
}

fn some(ms: u64, window_s: u64) -> Trigger {
    Trigger::some(Duration::from_millis(ms), Duration::from_secs(window_s))
}

#[test]
fn the_kernel_takes_2s_windows_and_refuses_1s() {
    let Some(path) = proc_pressure() else { return };
    let taken = register_trigger(path, &some(150, 2)).expect("`some 150000 2000000` accepted");
    assert_eq!(
        taken.source(),
        "/proc/pressure/memory (some 150000 2000000)"
    );
    register_trigger(path, &some(200, 2)).expect("systemd's `some 200000 2000000` accepted");
    let refused = register_trigger(path, &some(150, 1)).expect_err("a 1 s window");
    eprintln!("{refused}");
    assert_eq!(refused.errno(), Some(libc::EINVAL), "{refused}");
    let line = refused.to_string();
    assert!(
        line.starts_with(
            "no memory pressure events: the kernel refused the trigger `some 150000 1000000` on \
             /proc/pressure/memory (EINVAL: Invalid argument (os error 22))"
        ),
        "{line}"
    );
    // The real descriptor waits (an event, if the machine is under pressure, is fine too) and
    // its thread stops at once.
    let mut taken = taken;
    assert!(taken.wait(Some(Duration::from_millis(10))).is_ok());
    let thread = taken.spawn(|_| {}).expect("spawn");
    std::thread::sleep(Duration::from_millis(10));
    assert!(thread.is_running(), "no POLLERR from a registered trigger");
    let t = Instant::now();
    thread.stop().expect("stops cleanly");
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn this_machine_opens_a_source() {
    let cfg = PsiConfig::from_env();
    match cfg.open() {
        Ok(watch) => eprintln!("pressure events from {}", watch.source()),
        Err(why) => {
            eprintln!("{why}");
            let psi = proc_pressure().is_some();
            assert!(!psi || cfg.watch.is_some(), "PSI exists but: {why}");
        }
    }
}

#[test]
fn a_refused_trigger_falls_back_to_the_system_file_then_to_polling() {
    let Some(path) = proc_pressure() else { return };
    // The own cgroup's file refuses (here: it does not exist); the system's takes it.
    let cfg = PsiConfig {
        cgroup_file: Some(PathBuf::from("/nonexistent/memory.pressure")),
        proc_file: path.to_path_buf(),
        ..config(None, None)
    };
    let watch = cfg.open().expect("falls back to /proc/pressure/memory");
    assert_eq!(
        watch.source(),
        "/proc/pressure/memory (some 150000 2000000)"
    );
    // Neither takes a 1 s window: the caller gets the reason and keeps its 1 s poll.
    let cfg = PsiConfig {
        trigger: some(150, 1),
        ..cfg
    };
    let why = cfg.open().expect_err("refused everywhere");
    assert_eq!(why.errno(), Some(libc::EINVAL));
    assert!(
        why.to_string().contains("reads memory once a second"),
        "{why}"
    );
}

#[test]
fn the_service_managers_psi_file_and_trigger_are_used() {
    let Some(path) = proc_pressure() else { return };
    // base64("some 200000 2000000\0"), as systemd sets it.
    let systemd = "c29tZSAyMDAwMDAgMjAwMDAwMAA=";
    let watch = config(Some(path.into()), Some(systemd))
        .open()
        .expect("accepted");
    assert_eq!(
        watch.source(),
        "/proc/pressure/memory (some 200000 2000000)"
    );
    // base64("some 150000 1000000"): the kernel's refusal comes back as it is.
    let one_second = "c29tZSAxNTAwMDAgMTAwMDAwMA==";
    let why = config(Some(path.into()), Some(one_second))
        .open()
        .expect_err("1 s");
    assert_eq!(why.errno(), Some(libc::EINVAL));
    // No $MEMORY_PRESSURE_WRITE: our default trigger.
    let watch = config(Some(path.into()), None).open().expect("default");
    assert_eq!(
        watch.source(),
        "/proc/pressure/memory (some 150000 2000000)"
    );
}

#[test]
fn dev_null_and_bad_base64_turn_events_off() {
    let why = config(Some("/dev/null".into()), None)
        .open()
        .expect_err("off");
    assert!(
        why.to_string().contains("MEMORY_PRESSURE_WATCH=/dev/null"),
        "{why}"
    );
    assert_eq!(why.errno(), None);
    let dir = tempfile::tempdir().expect("dir");
    let why = config(Some(dir.path().into()), Some("not base64!")).open();
    assert!(why.expect_err("bad").to_string().contains("not Base64"));
    let why = config(Some(dir.path().join("missing")), None)
        .open()
        .expect_err("missing");
    assert_eq!(why.errno(), Some(libc::ENOENT));
}

#[test]
fn a_socket_receives_the_announcement_and_sends_events() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("pressure.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let watch = config(Some(path.clone()), Some("c29tZSAyMDAwMDAgMjAwMDAwMAA="))
        .open()
        .expect("connects");
    assert_eq!(watch.source(), path.display().to_string());
    let (mut peer, _) = listener.accept().expect("accept");
    let mut announced = [0u8; 20];
    peer.read_exact(&mut announced).expect("read");
    assert_eq!(&announced, b"some 200000 2000000\0");

    let (tx, rx) = mpsc::channel();
    let thread = watch
        .spawn(move |e| tx.send(e.count).expect("send"))
        .expect("spawn");
    peer.write_all(b"pressure").expect("write");
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(1));
    drop(peer);
    // The manager hung up: the thread ends and says so.
    let deadline = Instant::now() + Duration::from_secs(5);
    while thread.is_running() && Instant::now() < deadline {
        std::thread::sleep(MS);
    }
    assert!(thread.stop().is_err());
}

#[test]
fn a_fifo_sends_events_and_not_our_own_announcement() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("pressure.fifo");
    let c_path = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("no NUL");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    let mut watch = config(Some(path.clone()), Some("c29tZSAyMDAwMDAgMjAwMDAwMAA="))
        .open()
        .expect("opens");
    assert_eq!(
        watch.wait(Some(Duration::from_millis(20))).expect("wait"),
        None,
        "no event yet"
    );
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    writer.write_all(b"x").expect("write");
    let event = watch.wait(Some(Duration::from_secs(5))).expect("wait");
    assert_eq!(event.map(|e| e.count), Some(1));
}

/// The end-to-end reaction: an event written to a pipe standing in for the PSI descriptor
/// reaches the callback. Prints the latency; asserts only that every event arrives well within
/// one PSI window (2 s), the target.
#[test]
fn reaction_time_from_event_to_callback() {
    const ROUNDS: usize = 200;
    let (reader, mut writer) = std::io::pipe().expect("pipe");
    let watch = PressureWatch::from_fd(reader.into(), Readiness::Readable, "pipe");
    let (tx, rx) = mpsc::channel();
    let thread = watch
        .spawn(move |_| tx.send(Instant::now()).expect("send"))
        .expect("spawn");
    let mut latencies = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let sent = Instant::now();
        writer.write_all(b"!").expect("write");
        let at = rx
            .recv_timeout(Duration::from_secs(2))
            .expect("within one PSI window");
        latencies.push(at - sent);
    }
    thread.stop().expect("stops cleanly");
    latencies.sort();
    let pick = |q: usize| latencies[(ROUNDS - 1) * q / 100];
    eprintln!(
        "pipe -> callback over {ROUNDS} events: median {:?}, p99 {:?}, max {:?}",
        pick(50),
        pick(99),
        pick(100)
    );
    assert!(pick(100) < Duration::from_secs(2));
}
