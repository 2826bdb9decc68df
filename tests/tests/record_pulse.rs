//! `w4l record` and `w4l devices` against a real PulseAudio server with a virtual microphone
//! (`scripts/pulse`): speech played into it must come out in the take, `--seconds 6` must give
//! exactly 6 s, and device errors must be one clear line.

use std::path::Path;
use std::time::{Duration, Instant};

use w4l_tests::pulse::{Pulse, best_correlation, read_mono, rms_envelope, speak};
use w4l_tests::{Run, json_field, json_u64, w4l_with};

fn with_pulse(pulse: &Pulse, args: &[&str], limit: Duration) -> Run {
    let env = pulse.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    w4l_with(args, &env, limit)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn record_seconds_6_from_the_virtual_microphone() {
    let pulse = Pulse::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    let speech = dir.path().join("speech.wav");
    speak("Testing, one two three.", &speech);
    let out = dir.path().join("take.wav");
    let o = out.display().to_string();

    // Play the short phrase (about 1.5 s) into the microphone while w4l records, 2 s after the
    // start, so it falls inside the 6 s take even if w4l takes a moment to connect.
    let player = {
        let speech = speech.clone();
        let env = pulse.env();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2000));
            let status = std::process::Command::new("paplay")
                .arg("--device=w4l_mic")
                .arg(&speech)
                .envs(env)
                .status()
                .expect("paplay");
            assert!(status.success());
        })
    };
    let started = Instant::now();
    let r = with_pulse(
        &pulse,
        &["record", "--seconds", "6", "-o", &o, "--json"],
        Duration::from_secs(60),
    );
    let wall = started.elapsed();
    player.join().expect("player");
    let json = r.stdout.trim().to_owned();
    assert_eq!(r.code, Some(0), "{r:#?}");

    let rate = json_u64(&json, "rate");
    let channels = json_u64(&json, "channels");
    assert_eq!(json_u64(&json, "frames_captured"), 6 * rate, "{json}");
    assert_eq!(json_u64(&json, "frames_written"), 6 * rate, "{json}");
    assert_eq!(json_u64(&json, "overruns"), 0, "{json}");
    assert_eq!(json_u64(&json, "lost_samples"), 0, "{json}");
    assert!(
        json_field(&json, "source").is_some_and(|s| s.contains("w4l_virtual_microphone")),
        "{json}"
    );
    assert!(
        wall >= Duration::from_secs(6),
        "6 s of live audio took {wall:?}"
    );

    let spec = hound::WavReader::open(&out).expect("open take").spec();
    assert_eq!(u64::from(spec.sample_rate), rate);
    assert_eq!(u64::from(spec.channels), channels);
    let (take_rate, take) = read_mono(&out);
    assert_eq!(take.len() as u64, 6 * rate, "exactly 6 s");

    // The speech is in the take: its loudness envelope (20 ms frames, independent of the
    // sample rate) matches somewhere in the take's.
    let (clip_rate, clip) = read_mono(&speech);
    let clip_env = rms_envelope(&clip, clip_rate, 20);
    let take_env = rms_envelope(&take, take_rate, 20);
    let (corr, lag) = best_correlation(&clip_env, &take_env);
    assert!(
        corr > 0.8,
        "speech not found in the take: correlation {corr} at {lag}"
    );
    assert_eq!(names(dir.path()), ["speech.wav", "take.wav"]);
}

#[test]
fn devices_lists_the_virtual_microphone() {
    let pulse = Pulse::shared();
    let r = with_pulse(
        &pulse,
        &["devices", "--backend", "pulseaudio"],
        Duration::from_secs(30),
    )
    .ok();
    assert!(r.stdout.contains("w4l_mic.monitor"), "{}", r.stdout);
    assert!(r.stdout.contains("* "), "no default marked: {}", r.stdout);
    let j = with_pulse(
        &pulse,
        &["devices", "--backend", "pulseaudio", "--json"],
        Duration::from_secs(30),
    )
    .ok();
    let line = j.stdout.trim();
    assert_eq!(json_field(line, "backend"), Some("\"pulseaudio\""));
    assert!(line.contains("\"id\":\"w4l_mic.monitor\""), "{line}");
}

#[test]
fn device_errors_are_one_line_before_recording() {
    let pulse = Pulse::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    let o = dir.path().join("take.wav").display().to_string();
    let limit = Duration::from_secs(30);

    with_pulse(
        &pulse,
        &[
            "record",
            "--backend",
            "pulseaudio",
            "--device",
            "no-such-mic",
            "-o",
            &o,
        ],
        limit,
    )
    .fails(2, &["no input device matches 'no-such-mic'", "w4l devices"]);

    with_pulse(
        &pulse,
        &[
            "record",
            "--backend",
            "pulseaudio",
            "--channels",
            "33",
            "--seconds",
            "1",
            "-o",
            &o,
        ],
        limit,
    )
    .fails(2, &["33 channels is not supported"]);

    with_pulse(&pulse, &["record", "--backend", "sndio", "-o", &o], limit)
        .fails(2, &["unknown audio backend 'sndio'", "pulseaudio"]);

    // No audio server at all: nothing to capture from.
    let gone = dir.path().join("no-server");
    let server = format!("unix:{}", gone.display());
    w4l_with(
        [
            "record",
            "--backend",
            "pulseaudio",
            "--seconds",
            "1",
            "-o",
            &o,
        ],
        &[("PULSE_SERVER", server.as_str())],
        limit,
    )
    .fails(1, &["pulseaudio", "not available"]);

    assert!(
        names(dir.path()).is_empty(),
        "files left: {:?}",
        names(dir.path())
    );
}
