//! A panic on the recorder's worker thread, through the library API (the binary has no hook to
//! make its worker panic): a cleanup callback registered on the recorder's memory monitor runs
//! on the worker thread when the policy asks for actions, and panics there.
//!
//! What must hold: the take is complete (nobody waits forever), `stop` reports the failure, and
//! the audio captured before the panic is still there and written out sample for sample; every
//! byte charged to the budget is given back.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use w4l::memory::monitor::{MemoryMonitor, MonitorConfig};
use w4l::recorder::{Recorder, RecorderConfig};
use w4l::source::WavReplay;
use w4l::take::Mode;
use w4l::tempfiles::ResourceManager;
use w4l_core::accountant::{Accountant, Category};
use w4l_core::policy::Action;
use w4l_tests::faults::{assert_no_leftovers, assert_prefix};
use w4l_tests::{read_wav_i16, test_signal, write_wav_i16};

const RATE: u32 = 16_000;

/// A deterministic monitor (accountant figures only) over a `budget`-byte accountant.
fn monitor(budget: usize) -> Arc<MemoryMonitor> {
    Arc::new(
        MemoryMonitor::new(
            Arc::new(Accountant::new(budget, 1 << 30)),
            MonitorConfig {
                observe_system: false,
                ..MonitorConfig::default()
            },
        )
        .expect("monitor"),
    )
}

/// Replays `input` into a recorder whose `budget` is passed the `Elevated` threshold (60 %)
/// without ever refusing a block, with a callback that panics at the first cleanup request
/// from `panic_from_ms` of audio on. Returns the recorder (stopped), `stop`'s result and the audio time of the
/// panic, ms.
fn record_until_the_worker_panics(
    input: &Path,
    budget: usize,
    panic_from_ms: u64,
    config: RecorderConfig,
) -> (Recorder, w4l::error::Result<()>, u64) {
    let monitor = monitor(budget);
    let panicked_at = Arc::new(AtomicU64::new(u64::MAX));
    let source = WavReplay::open(input, false).expect("open input");
    let recorder = Recorder::new(Box::new(source), monitor.clone(), config).expect("recorder");
    let at = panicked_at.clone();
    monitor.add_cleanup_callback(move |req| {
        assert!(
            req.wants(Action::ReleaseIdleBuffers),
            "a cleanup without the cheapest action: {req:?}"
        );
        if std::thread::current().name() == Some("w4l-worker") && req.at_ms >= panic_from_ms {
            at.store(req.at_ms, Ordering::SeqCst);
            panic!("injected fault: a cleanup callback panics on the worker thread");
        }
        0
    });
    recorder.start().expect("start");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !recorder.wait(Duration::from_millis(50)) {
        assert!(
            Instant::now() < deadline,
            "the take never completed after the worker panicked"
        );
    }
    let stopped = recorder.stop();
    (recorder, stopped, panicked_at.load(Ordering::SeqCst))
}

#[test]
fn a_panic_on_the_worker_keeps_the_audio_captured_before_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.wav");
    let samples = test_signal(20 * RATE as usize, 1, 41);
    write_wav_i16(&input, RATE, 1, &samples);

    // Ring 16 KiB + window 32 KB + 64 KiB blocks: 5 blocks (10 s) are 61 % of 600 KiB.
    let (recorder, stopped, at_ms) = record_until_the_worker_panics(
        &input,
        600 << 10,
        0,
        RecorderConfig {
            window: Duration::from_secs(1),
            ..RecorderConfig::default()
        },
    );
    assert!(at_ms != u64::MAX, "the policy never asked for a cleanup");
    let err = stopped.expect_err("stop must report the worker's failure");
    assert!(
        err.to_string().contains("worker"),
        "the error does not name the worker: {err}"
    );

    // The policy steps on whole seconds of audio: the panic came at the step of `at_ms`, after
    // everything up to that step was stored, and nothing after it was.
    let expected = (at_ms * u64::from(RATE) / 1000) as usize;
    assert!(expected >= RATE as usize, "panicked at {at_ms} ms");
    let take = recorder.take_i16().expect("the whole take");
    assert_eq!(
        assert_prefix(&take, &samples),
        expected,
        "the take after a panic at {at_ms} ms"
    );
    let info = recorder.info();
    assert_eq!(info.frames_captured, expected as u64, "{info:?}");
    assert_eq!(info.lost_samples, 0, "{info:?}");

    // And it can be saved.
    let output = dir.path().join("out.wav");
    let summary = recorder.save(&output).expect("save the take");
    assert_eq!(summary.frames, expected as u64);
    let (_, back) = read_wav_i16(&output);
    assert_eq!(assert_prefix(&back, &samples), expected);
    assert_no_leftovers(dir.path(), &[]);

    // Every byte charged to the budget comes back.
    let accountant = recorder.monitor().accountant().clone();
    drop(recorder);
    assert_eq!(accountant.used(Category::Audio), 0);
}

/// File mode: the take goes to a temporary WAV file as it is captured. After the worker's
/// panic, `save` still moves everything captured before it to the output, and nothing is left
/// in the temporary directory once the recorder and its manager are gone.
#[test]
fn a_panic_on_the_worker_in_file_mode_keeps_the_audio_captured_before_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.wav");
    let samples = test_signal(20 * RATE as usize, 1, 43);
    write_wav_i16(&input, RATE, 1, &samples);
    let temp = w4l_tests::faults::private_dir(dir.path());
    let manager = ResourceManager::open(&temp).expect("manager");

    // No blocks in memory in file mode: ring 16 KiB + window 32 KB are 63 % of 75 KiB (with
    // 4 KiB blocks, the budget holds one); the panic comes at the first request from 3 s on.
    let (recorder, stopped, at_ms) = record_until_the_worker_panics(
        &input,
        75 << 10,
        3000,
        RecorderConfig {
            mode: Mode::File,
            block_bytes: 4 << 10,
            temp_files: Some(manager.clone()),
            window: Duration::from_secs(1),
            ..RecorderConfig::default()
        },
    );
    assert!(at_ms != u64::MAX, "the policy never asked for a cleanup");
    stopped.expect_err("stop must report the worker's failure");
    let expected = (at_ms * u64::from(RATE) / 1000) as usize;
    assert!(expected >= RATE as usize, "panicked at {at_ms} ms");
    assert_eq!(recorder.frames_kept(), expected as u64);
    let info = recorder.info();
    assert!(info.frames_on_disk > 0, "not a file-mode take: {info:?}");

    let output = dir.path().join("out.wav");
    let summary = recorder.save(&output).expect("save the take");
    assert_eq!(summary.frames, expected as u64);
    let (_, back) = read_wav_i16(&output);
    assert_eq!(assert_prefix(&back, &samples), expected);

    drop(recorder);
    drop(manager);
    assert_no_leftovers(&temp, &[]);
    assert_no_leftovers(dir.path(), &[]);
}

/// The binary's own panic hook (`W4L_TEST_PANIC=write`, debug builds: a panic on the main
/// thread after the take was written, before it is moved into place): one line, exit 1, no
/// partial output and no scratch; the take's journal stays with its manifest (file mode, and
/// stream mode under a small budget) and the next start (`w4l clean` here) recovers it into the
/// output, whole, leaving nothing else behind.
#[test]
fn a_panic_while_saving_leaves_the_journal_for_the_next_start_and_nothing_else() {
    if !cfg!(debug_assertions) {
        return; // a release w4l ignores the trigger
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let temp = w4l_tests::faults::private_dir(dir.path());
    let input = dir.path().join("in.wav");
    let samples = test_signal(10 * 48_000, 2, 42);
    write_wav_i16(&input, 48_000, 2, &samples);
    let output = dir.path().join("out").join("take.wav");
    std::fs::create_dir(output.parent().expect("parent")).expect("out dir");
    for extra in [
        &["--mode", "file"][..],
        &["--budget", "1MiB", "--window", "1s"][..],
    ] {
        let mut args = vec![
            "record".to_owned(),
            "--json".to_owned(),
            "--input".to_owned(),
            input.display().to_string(),
            "-o".to_owned(),
            output.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let env = [("W4L_TEMP_DIR", temp.to_str().expect("utf-8"))];
        let panicking = [env[0], ("W4L_TEST_PANIC", "write")];
        let run = w4l_tests::w4l_with(&args, &panicking, Duration::from_secs(120));
        run.fails(1, &["internal error", "W4L_TEST_PANIC=write"]);
        assert!(
            !output.exists(),
            "{extra:?}: a panicked save left {output:?}"
        );
        assert_no_leftovers(output.parent().expect("parent"), &[]);
        w4l_tests::w4l_with(["clean"], &env, Duration::from_secs(60)).ok();
        assert_eq!(
            read_wav_i16(&output).1,
            samples,
            "{extra:?}: the recovered take"
        );
        std::fs::remove_file(&output).expect("remove the recovered take");
        assert_no_leftovers(&temp, &[]);
        assert_no_leftovers(output.parent().expect("parent"), &[]);
        assert_no_leftovers(dir.path(), &[]);
    }
}
