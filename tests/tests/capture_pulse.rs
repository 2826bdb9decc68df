//! Capture from a real PulseAudio server (`scripts/pulse`): speech played into the virtual
//! microphone comes out of `w4l::source::device` whole, on time, without overruns; a server restart
//! mid-take is survived and its gap measured; bad device names fail with the candidates; a take
//! holds one connection to the server.
//!
//! The capture runs in `w4l-capture-probe` (this package's binary: `w4l::source::device` into the core
//! ring, drained into a WAV), a child process that gets the server's environment; this test
//! process's own environment is never changed. The speech test uses the shared server
//! (`scripts/test` starts it before and stops it after `cargo test`; started here if missing and
//! then left running); the restart test uses a private server that it stops itself.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use w4l_tests::json_u64;
use w4l_tests::pulse::{Pulse, best_correlation, read_mono, rms_envelope, speak};

const PROBE: &str = env!("CARGO_BIN_EXE_w4l-capture-probe");

/// Starts the probe and waits until its stream runs and delivers (it prints `started`, then
/// `flowing`, on stderr). A null sink's monitor may take up to its 2 s block to deliver first.
fn start_probe(pulse: &Pulse, args: &[&str]) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = pulse
        .command(PROBE)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn w4l-capture-probe");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read probe stderr");
    assert_eq!(line.trim(), "started", "the probe did not start: {line}");
    line.clear();
    stderr.read_line(&mut line).expect("read probe stderr");
    assert_eq!(
        line.trim(),
        "flowing",
        "the probe's stream delivers nothing: {line}"
    );
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    (child, rest)
}

/// Waits for the probe (at most `limit`) and returns its JSON report.
fn finish_probe(
    mut child: Child,
    stderr: std::thread::JoinHandle<String>,
    limit: Duration,
) -> String {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the probe did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("probe output");
    let err = stderr.join().unwrap_or_default();
    assert!(out.status.success(), "probe failed ({}): {err}", out.status);
    String::from_utf8(out.stdout).expect("utf-8 report")
}

/// A field of the probe's report in seconds.
fn seconds_field(report: &str, key: &str) -> f64 {
    w4l_tests::json_field(report, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {report}"))
}

#[test]
fn speech_played_into_the_virtual_microphone_is_captured_whole() {
    let pulse = Pulse::shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let phrase = dir.path().join("phrase.wav");
    speak(
        "The quick brown fox jumps over the lazy dog, then rests in the warm sun.",
        &phrase,
    );
    let take = dir.path().join("take.wav");
    let seconds = 6.0;
    let (probe, stderr) = start_probe(
        &pulse,
        &[
            "--seconds",
            "6",
            "--out",
            take.to_str().expect("utf-8 path"),
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut player = pulse.play(&phrase);
    let report = finish_probe(probe, stderr, Duration::from_secs(30));
    let played = player.wait().expect("paplay");
    assert!(played.success(), "paplay failed: {played}");

    // Duration: the take holds 6 s of frames, and the clock agrees (within 2 %, plus the one
    // 200 ms device buffer in flight when the stream starts and the probe's 100 ms drain
    // period).
    let rate = json_u64(&report, "rate");
    let frames = json_u64(&report, "frames_written");
    assert_eq!(rate, 48_000, "{report}");
    let expected = (seconds * rate as f64) as u64;
    assert!(
        frames.abs_diff(expected) as f64 <= 0.02 * expected as f64,
        "{frames} frames, expected {expected}: {report}"
    );
    let elapsed: f64 = seconds_field(&report, "elapsed_s") - seconds_field(&report, "flowing_s");
    assert!(
        (elapsed - seconds).abs() <= 0.02 * seconds + 0.3,
        "6 s of audio took {elapsed:.3} s of wall clock: {report}"
    );
    assert_eq!(json_u64(&report, "overruns"), 0, "{report}");
    assert_eq!(json_u64(&report, "restarts"), 0, "{report}");
    assert_eq!(json_u64(&report, "lost_frames"), 0, "{report}");
    assert!(report.contains(r#""backend":"pulseaudio""#), "{report}");
    assert!(
        report.contains(r#""device_id":"w4l_mic.monitor""#),
        "{report}"
    );

    // Speech: the take's loudness envelope follows the spoken clip's.
    let (take_rate, take_mono) = read_mono(&take);
    let (clip_rate, clip_mono) = read_mono(&phrase);
    let take_env = rms_envelope(&take_mono, take_rate, 20);
    let clip_env = rms_envelope(&clip_mono, clip_rate, 20);
    let (corr, lag) = best_correlation(&clip_env, &take_env);
    assert!(
        corr > 0.8,
        "speech envelope correlation {corr:.3} at {} ms",
        lag * 20
    );
    let lag_s = lag as f64 * 0.02;
    assert!(
        (0.3..3.0).contains(&lag_s),
        "speech found at {lag_s:.2} s, played at about 0.5 s"
    );
    let loud = take_env.iter().cloned().fold(0.0f32, f32::max);
    assert!(loud > 0.05, "the take is nearly silent (peak RMS {loud})");
}

#[test]
fn a_take_holds_one_connection_to_the_server() {
    // The device is listed on the connection the stream then uses (`pulse::Session`): a
    // second connection would cost about a millisecond of CPU per take for nothing.
    let pulse = Pulse::shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let take = dir.path().join("take.wav");
    let (probe, stderr) = start_probe(
        &pulse,
        &[
            "--seconds",
            "2",
            "--out",
            take.to_str().expect("utf-8 path"),
        ],
    );
    let clients = pulse
        .command("pactl")
        .args(["list", "clients", "short"])
        .output()
        .expect("pactl");
    assert!(clients.status.success(), "pactl failed: {clients:?}");
    let listed = String::from_utf8_lossy(&clients.stdout);
    let ours = listed
        .lines()
        .filter(|l| l.contains("w4l-capture-probe"))
        .count();
    finish_probe(probe, stderr, Duration::from_secs(30));
    assert_eq!(ours, 1, "the probe's connections to the server:\n{listed}");
}

#[test]
fn a_server_restart_mid_take_is_survived_and_the_gap_counted() {
    let pulse = Pulse::private("restart");
    let dir = tempfile::tempdir().expect("tempdir");
    let take = dir.path().join("take.wav");
    let seconds = 5.0;
    let (probe, stderr) = start_probe(
        &pulse,
        &[
            "--seconds",
            "5",
            "--out",
            take.to_str().expect("utf-8 path"),
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let restarted = Instant::now();
    pulse.restart();
    let restart_took = restarted.elapsed().as_secs_f64();
    let report = finish_probe(probe, stderr, Duration::from_secs(60));

    let rate = json_u64(&report, "rate") as f64;
    assert!(json_u64(&report, "restarts") >= 1, "{report}");
    assert!(json_u64(&report, "stream_errors") >= 1, "{report}");
    assert_eq!(json_u64(&report, "overruns"), 0, "{report}");
    assert_eq!(
        json_u64(&report, "frames_written"),
        (seconds * rate) as u64,
        "{report}"
    );
    // The take needed its 5 s plus the outage; the gap counted matches that extra time.
    let gap_s = json_u64(&report, "gap_frames") as f64 / rate;
    let elapsed = seconds_field(&report, "elapsed_s") - seconds_field(&report, "flowing_s");
    assert!(gap_s > 0.0, "no gap counted: {report}");
    assert!(
        json_u64(&report, "lost_frames") >= json_u64(&report, "gap_frames"),
        "the gap is lost audio: {report}"
    );
    assert!(
        gap_s <= restart_took + 5.0,
        "gap {gap_s:.2} s for a restart of {restart_took:.2} s: {report}"
    );
    assert!(
        ((elapsed - seconds) - gap_s).abs() < 0.5,
        "took {elapsed:.2} s for {seconds} s of audio but counted a {gap_s:.2} s gap: {report}"
    );
    assert!(pulse.is_running());
}

#[test]
fn an_unknown_device_fails_listing_the_candidates() {
    let pulse = Pulse::shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = pulse
        .command(PROBE)
        .args(["--seconds", "1", "--device", "no-such-microphone", "--out"])
        .arg(dir.path().join("x.wav"))
        .stdin(Stdio::null())
        .output()
        .expect("run probe");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no input device matches 'no-such-microphone'"),
        "{err}"
    );
    assert!(err.contains("w4l_mic.monitor"), "candidates missing: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!Path::new(&dir.path().join("x.wav")).exists());
}
