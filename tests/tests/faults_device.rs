//! The capture device failing mid-take, end to end, on a PulseAudio server of the test's own
//! (`scripts/pulse`): the server is restarted, or the virtual microphone's module is unloaded
//! and loaded again, while `w4l record --seconds 6` captures from it. The take must go on (the
//! stream is rebuilt), reach its 6 s, report the outage in `--json` (`source_stats`: stream
//! errors, restarts, gap frames), and hold — exactly, sample for sample — the signal that was
//! played into the microphone before the fault.
//!
//! A 16-bit 48 kHz stereo signal played with `paplay` into the null sink comes out of its
//! monitor bit for bit (no resampling, no volume change), so the take is compared with the
//! played signal exactly; only the first moments of a playback (PulseAudio rewinds the sink to
//! mix a new stream in) may be missing.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use w4l_tests::faults::{Spawned, assert_no_leftovers, private_dir};
use w4l_tests::pulse::Pulse;
use w4l_tests::{Run, json_u64, read_wav_i16, test_signal, write_wav_i16};

const RATE: u32 = 48_000;
const CHANNELS: usize = 2;
const LIMIT: Duration = Duration::from_secs(60);
/// The take: 6 s.
const TAKE_SECONDS: u64 = 6;
/// The played signal: 2 s, then 0.5 s of silence (so the signal itself has left the sink
/// when `paplay` returns).
const SIGNAL_FRAMES: usize = 2 * RATE as usize;
/// How much of the signal's start may be missing (the sink's rewind when playback starts).
const START_ALLOWANCE_FRAMES: usize = RATE as usize / 4;

/// Runs `pactl args…` against `pulse`; its stdout.
fn pactl(pulse: &Pulse, args: &[&str]) -> String {
    let out = pulse
        .command("pactl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pactl");
    assert!(
        out.status.success(),
        "pactl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `w4l record --seconds 6 --json` on `pulse` and waits until its stream is connected
/// (a record stream shows up on the server).
fn start_take(pulse: &Pulse, temp: &Path, output: &Path, mode: &str) -> Spawned {
    let mut env: Vec<(String, String)> = pulse.env();
    env.push(("W4L_TEMP_DIR".into(), temp.display().to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let seconds = format!("{TAKE_SECONDS}s");
    let out = output.display().to_string();
    let mut w = Spawned::start(
        &[
            "record",
            "--seconds",
            &seconds,
            "--mode",
            mode,
            "--json",
            "-o",
            &out,
        ],
        &env,
    );
    w.until(LIMIT, "w4l's record stream appears on the server", |_| {
        let outputs = pactl(pulse, &["list", "short", "source-outputs"]);
        (!outputs.trim().is_empty()).then_some(())
    });
    w
}

/// Plays `signal` (then silence) into the virtual microphone and waits until it has played.
fn play(pulse: &Pulse, dir: &Path, signal: &[i16]) {
    let wav = dir.join("played.wav");
    let mut samples = signal.to_vec();
    samples.resize(signal.len() + RATE as usize / 2 * CHANNELS, 0);
    write_wav_i16(&wav, RATE, CHANNELS as u16, &samples);
    let status = pulse.play(&wav).wait().expect("paplay");
    assert!(status.success(), "paplay failed: {status}");
}

/// Where `signal` sits in `take`, exactly: the frame range of `signal` found contiguously in
/// `take`. Searches for a 64-sample piece just after the start allowance, then extends.
fn find_exact(signal: &[i16], take: &[i16]) -> Option<(usize, usize)> {
    let key_at = START_ALLOWANCE_FRAMES * CHANNELS;
    let key = &signal[key_at..key_at + 64];
    let at = (0..take.len().saturating_sub(64))
        .step_by(CHANNELS)
        .find(|&j| &take[j..j + 64] == key)?;
    let offset = at as isize - key_at as isize;
    let same = |i: usize| {
        let j = i as isize + offset;
        j >= 0 && (j as usize) < take.len() && take[j as usize] == signal[i]
    };
    let mut lo = key_at;
    while lo > 0 && same(lo - 1) {
        lo -= 1;
    }
    let mut hi = key_at;
    while hi < signal.len() && same(hi) {
        hi += 1;
    }
    Some((lo / CHANNELS, hi / CHANNELS))
}

/// The share of `signal`'s 10 ms pieces (from the start allowance on) found anywhere in
/// `take`, exactly.
fn coverage(signal: &[i16], take: &[i16]) -> f64 {
    let piece = RATE as usize / 100 * CHANNELS;
    let starts: Vec<usize> = (START_ALLOWANCE_FRAMES * CHANNELS..signal.len() - 32)
        .step_by(piece)
        .collect();
    let found = starts
        .iter()
        .filter(|&&k| {
            let key = &signal[k..k + 32];
            take.windows(32).step_by(CHANNELS).any(|w| w == key)
        })
        .count();
    found as f64 / starts.len() as f64
}

/// The take went on through the fault: saved with the exit status of lost audio (3), 6 s of
/// frames, the outage reported (and counted as lost), the played signal in the take exactly,
/// nothing left behind.
fn assert_survived(run: &Run, output: &Path, signal: &[i16], temp: &Path) {
    assert_eq!(run.code, Some(3), "{run:#?}");
    let json = run.stdout.trim();
    let frames = TAKE_SECONDS * u64::from(RATE);
    assert_eq!(json_u64(json, "frames_written"), frames, "{json}");
    assert!(
        json_u64(json, "stream_errors") >= 1,
        "no error reported: {json}"
    );
    assert!(
        json_u64(json, "restarts") >= 1,
        "no restart reported: {json}"
    );
    assert!(json_u64(json, "gap_frames") > 0, "no gap reported: {json}");
    assert!(
        json_u64(json, "lost_frames") >= json_u64(json, "gap_frames"),
        "the gap is lost audio: {json}"
    );
    assert!(
        run.stderr.contains("warning: the audio device lost"),
        "no warning: {run:#?}"
    );
    let (spec, take) = read_wav_i16(output);
    assert_eq!(
        (spec.sample_rate, usize::from(spec.channels)),
        (RATE, CHANNELS)
    );
    assert_eq!(take.len() as u64, frames * CHANNELS as u64);
    let found = find_exact(signal, &take);
    let Some((lo, hi)) = found else {
        panic!("the signal played before the fault is not in the take: {json}");
    };
    assert!(
        lo <= START_ALLOWANCE_FRAMES && hi == SIGNAL_FRAMES,
        "only frames {lo}..{hi} of the {SIGNAL_FRAMES} played before the fault are in the take \
         exactly and contiguously; {:.0} % of the signal's 10 ms pieces are in it at all, yet no \
         loss was counted before the fault: {json}",
        coverage(signal, &take) * 100.0
    );
    assert_no_leftovers(temp, &[]);
    assert_no_leftovers(output.parent().expect("parent"), &[]);
}

fn server_restart_mid_take(mode: &str, tag: &str, seed: u32) {
    let pulse = Pulse::private(tag);
    let dir = tempfile::tempdir().expect("temp dir");
    let temp = private_dir(dir.path());
    let output = dir.path().join("take.wav");
    let signal = test_signal(SIGNAL_FRAMES, CHANNELS as u16, seed);
    let w = start_take(&pulse, &temp, &output, mode);
    play(&pulse, dir.path(), &signal);
    pulse.restart();
    let run = w.wait(LIMIT);
    assert_survived(&run, &output, &signal, &temp);
    assert!(pulse.is_running());
}

#[test]
fn a_server_restart_mid_take_in_stream_mode_is_survived_and_reported() {
    server_restart_mid_take("stream", "fault-restart-s", 51);
}

#[test]
fn a_server_restart_mid_take_in_file_mode_is_survived_and_reported() {
    server_restart_mid_take("file", "fault-restart-f", 52);
}

/// The virtual microphone disappears (its null-sink module unloaded), then comes back.
/// PulseAudio-only: PipeWire never kills the record stream, WirePlumber moves it to the fallback
/// source (`auto_null.monitor`) and back, so there is no fault to see (`scripts/test` skips these
/// two on PipeWire).
fn device_unplugged_mid_take(mode: &str, tag: &str, seed: u32) {
    let pulse = Pulse::private(tag);
    let dir = tempfile::tempdir().expect("temp dir");
    let temp = private_dir(dir.path());
    let output = dir.path().join("take.wav");
    let signal = test_signal(SIGNAL_FRAMES, CHANNELS as u16, seed);
    let mut w = start_take(&pulse, &temp, &output, mode);
    play(&pulse, dir.path(), &signal);

    let modules = pactl(&pulse, &["list", "short", "modules"]);
    let module = modules
        .lines()
        .find(|l| l.contains("module-null-sink") && l.contains("w4l_mic"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no w4l_mic null sink in {modules}"))
        .to_owned();
    pactl(&pulse, &["unload-module", &module]);
    // Gone: w4l's stream was killed with the source.
    w.until(LIMIT, "w4l's record stream is gone", |_| {
        let outputs = pactl(&pulse, &["list", "short", "source-outputs"]);
        outputs.trim().is_empty().then_some(())
    });
    // Plugged back in: `scripts/pulse start` loads the null sink again and makes it the default.
    let status = pulse
        .command(w4l_tests::pulse::script())
        .arg("start")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("scripts/pulse start");
    assert!(status.success());
    let run = w.wait(LIMIT);
    assert_survived(&run, &output, &signal, &temp);
}

#[test]
fn the_microphone_unplugged_and_back_mid_take_in_stream_mode_is_survived_and_reported() {
    device_unplugged_mid_take("stream", "fault-unplug-s", 53);
}

#[test]
fn the_microphone_unplugged_and_back_mid_take_in_file_mode_is_survived_and_reported() {
    device_unplugged_mid_take("file", "fault-unplug-f", 54);
}

/// The same server restart under the ALSA backend (cpal's ALSA host through PulseAudio's ALSA
/// plugin): whatever the plugin does with its dead connection (it reports no error), the take
/// must end in bounded time — survived, or failed with one line — and a Ctrl-C must always stop
/// it promptly and save what was captured.
#[test]
fn a_server_restart_mid_take_with_the_alsa_backend_ends_in_bounded_time() {
    let pulse = Pulse::private("fault-restart-a");
    let dir = tempfile::tempdir().expect("temp dir");
    let temp = private_dir(dir.path());
    let output = dir.path().join("take.wav");
    let mut env: Vec<(String, String)> = pulse.env();
    env.push(("W4L_TEMP_DIR".into(), temp.display().to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = output.display().to_string();
    let mut w = Spawned::start(
        &[
            "record",
            "--backend",
            "alsa",
            "--seconds",
            "6s",
            "--json",
            "-o",
            &out,
        ],
        &env,
    );
    w.until(LIMIT, "w4l's record stream appears on the server", |_| {
        let outputs = pactl(&pulse, &["list", "short", "source-outputs"]);
        (!outputs.trim().is_empty()).then_some(())
    });
    // Two and a half seconds of capture first (where the restart hangs the plugin).
    let signal = test_signal(SIGNAL_FRAMES, CHANNELS as u16, 55);
    play(&pulse, dir.path(), &signal);
    pulse.restart();
    if !w.exits_within(Duration::from_secs(30)) {
        w.signal("INT");
        let stopped = w.exits_within(Duration::from_secs(10));
        let run = w.kill();
        panic!(
            "30 s after a server restart the 6 s take has not ended (no error, no rebuild); \
             a SIGINT {} within 10 s: {run:#?}",
            if stopped {
                "stopped it"
            } else {
                "did not stop it"
            }
        );
    }
    let run = w.wait(LIMIT);
    match run.code {
        // Saved: whole, or with the outage counted as lost audio (3).
        Some(0 | 3) => assert_eq!(
            json_u64(run.stdout.trim(), "frames_written"),
            TAKE_SECONDS * u64::from(RATE),
            "{run:#?}"
        ),
        _ => {
            run.fails(1, &[]);
        }
    }
    assert_no_leftovers(&temp, &[]);
    assert_no_leftovers(dir.path(), &[]);
}
