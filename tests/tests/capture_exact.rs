//! The capture is exact, end to end, each test on an audio server of its own (`scripts/pulse`,
//! so that no other test plays into the same virtual microphone): a take
//! stopped by a signal holds everything played before the stop, a backend that loses audio
//! without a word is caught by the stream clock, and a suspended process resumes its stream.
//!
//! A 16-bit 48 kHz stereo signal played with `paplay` into the null sink comes out of its
//! monitor bit for bit, so the take is searched for the played samples exactly.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use w4l_tests::faults::Spawned;
use w4l_tests::pulse::{Pulse, speak};
use w4l_tests::{Run, json_u64, read_wav_i16, test_signal, write_wav_i16};

const RATE: usize = 48_000;
const CHANNELS: usize = 2;
const LIMIT: Duration = Duration::from_secs(60);

/// The environment of a `w4l` that captures from `pulse`.
fn env_of(pulse: &Pulse, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = pulse.env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Starts `w4l record args…` on `pulse` and waits until its stream is on the server.
fn start_record(pulse: &Pulse, args: &[&str], extra_env: &[(&str, &str)]) -> Spawned {
    let env = env_of(pulse, extra_env);
    let mut all = vec!["record"];
    all.extend_from_slice(args);
    let mut w = Spawned::start(&all, &as_refs(&env));
    w.until(LIMIT, "w4l's record stream appears on the server", |_| {
        let out = pulse
            .command("pactl")
            .args(["list", "short", "source-outputs"])
            .stdin(Stdio::null())
            .output()
            .expect("run pactl");
        (!String::from_utf8_lossy(&out.stdout).trim().is_empty()).then_some(())
    });
    w
}

/// Where `piece` starts in `take`, exactly (interleaved samples; whole frames only).
fn find(piece: &[i16], take: &[i16]) -> Option<usize> {
    (0..take.len().saturating_sub(piece.len()) + 1)
        .step_by(CHANNELS)
        .find(|&j| &take[j..j + piece.len()] == piece)
}

/// Speech as 48 kHz stereo 16-bit samples (espeak-ng, converted by sox), and the frame just
/// after its last audible sample.
fn speech(dir: &Path) -> (Vec<i16>, usize) {
    let mono = dir.join("phrase.wav");
    speak(
        "Please remember to buy milk, bread and seven green apples.",
        &mono,
    );
    let stereo = dir.join("phrase48.wav");
    let status = std::process::Command::new("sox")
        .args([
            mono.as_os_str(),
            "-r".as_ref(),
            "48000".as_ref(),
            "-c".as_ref(),
        ])
        .arg("2")
        .args(["-b", "16"])
        .arg(&stereo)
        .status()
        .expect("run sox");
    assert!(status.success(), "sox failed");
    let (_, samples) = read_wav_i16(&stereo);
    let end = samples
        .iter()
        .rposition(|s| s.unsigned_abs() > 300)
        .expect("the phrase is not silent")
        / CHANNELS
        + 1;
    (samples, end)
}

/// Feeds `speech` into the FIFO of a `module-pipe-source` at the pace of a microphone (10 ms
/// at a time): a second of silence, the speech, then silence until `stop`. Says on `spoken`
/// when the speech's last sample is in.
fn feed_fifo(
    fifo: std::path::PathBuf,
    speech: Vec<i16>,
    spoken: std::sync::mpsc::Sender<()>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::io::Write;
    let mut pipe = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open the source's FIFO");
    let chunk = RATE / 100 * CHANNELS;
    let mut samples = vec![0i16; RATE * CHANNELS];
    samples.extend_from_slice(&speech);
    let speech_end = samples.len();
    let started = std::time::Instant::now();
    let mut sent = 0;
    loop {
        let piece: Vec<u8> = if sent < speech_end {
            samples[sent..(sent + chunk).min(speech_end)]
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect()
        } else {
            vec![0; chunk * 2]
        };
        if stop.load(std::sync::atomic::Ordering::Acquire) || pipe.write_all(&piece).is_err() {
            return;
        }
        let before = sent;
        sent += piece.len() / 2;
        if before < speech_end && sent >= speech_end {
            let _ = spoken.send(());
        }
        let due = started + Duration::from_secs_f64(sent as f64 / (RATE * CHANNELS) as f64);
        std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
    }
}

#[test]
fn a_take_stopped_50_ms_after_the_speech_holds_all_of_it() {
    // A source that behaves as a microphone does (audio arrives as it is captured, a fragment
    // at a time), fed from a FIFO so that the test knows when the speech ended.
    let pulse = Pulse::private("stop");
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("mic.fifo");
    let module = format!(
        "file={} format=s16le rate={RATE} channels={CHANNELS}",
        fifo.display()
    );
    let loaded = pulse
        .command("pactl")
        .args(["load-module", "module-pipe-source", "source_name=w4l_pipe"])
        .args(module.split(' '))
        .stdin(Stdio::null())
        .output()
        .expect("run pactl");
    assert!(loaded.status.success(), "pactl load-module: {loaded:?}");
    let (phrase, end) = speech(dir.path());
    let take = dir.path().join("take.wav");
    let out = take.display().to_string();
    let w4l = start_record(&pulse, &["--device", "w4l_pipe", "-o", &out], &[]);
    let (spoken_tx, spoken) = std::sync::mpsc::channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let (speech, stop) = (phrase[..end * CHANNELS].to_vec(), stop.clone());
        std::thread::spawn(move || feed_fifo(fifo, speech, spoken_tx, stop))
    };
    spoken.recv_timeout(LIMIT).expect("the speech was fed");
    std::thread::sleep(Duration::from_millis(50));
    w4l.signal("INT");
    let run = w4l.wait(LIMIT);
    stop.store(true, std::sync::atomic::Ordering::Release);
    feeder.join().expect("feeder");
    assert_eq!(run.code, Some(0), "{run:?}");

    // The last 300 ms of speech, up to its very last sample, are in the take.
    let (_, samples) = read_wav_i16(&take);
    let tail = &phrase[(end - RATE * 3 / 10) * CHANNELS..end * CHANNELS];
    assert!(
        find(tail, &samples).is_some(),
        "the end of the speech is not in the take ({} frames): {run:?}",
        samples.len() / CHANNELS
    );
}

#[test]
fn audio_a_backend_loses_without_a_word_is_counted_and_reported() {
    let pulse = Pulse::private("loss");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("take.wav").display().to_string();
    // The stream throws away every other fragment, as cpal 0.18's PulseAudio host did.
    let fault = [("W4L_TEST_DROP_FRAGMENTS", "2")];
    let w4l = start_record(&pulse, &["--seconds", "4", "--json", "-o", &out], &fault);
    let run = w4l.wait(LIMIT);
    assert_eq!(
        run.code,
        Some(3),
        "the exit status must say audio was lost: {run:?}"
    );
    assert!(run.stdout.contains("frames_captured"), "{run:?}");
    assert_eq!(json_u64(&run.stdout, "frames_captured"), 4 * RATE as u64);
    let lost = json_u64(&run.stdout, "lost_frames");
    let wall: f64 = w4l_tests::json_field(&run.stdout, "wall_seconds")
        .and_then(|v| v.parse().ok())
        .expect("wall_seconds");
    // About as much was thrown away as was kept (less what the clock cannot tell from one
    // buffer in flight, and never more than the wall clock allows).
    assert!(
        lost >= 5 * RATE as u64 / 2,
        "only {lost} frames counted lost: {run:?}"
    );
    assert!(
        (lost as f64) <= (wall - 4.0) * RATE as f64,
        "{lost} frames lost in {wall:.2} s for 4 s of audio: {run:?}"
    );
    assert!(
        run.stderr.contains("warning: the audio device lost"),
        "no warning: {run:?}"
    );

    // The text summary says it too.
    let w4l = start_record(&pulse, &["--seconds", "2", "-o", &out], &fault);
    let run: Run = w4l.wait(LIMIT);
    assert!(
        run.stdout
            .contains("the device captured but never delivered")
            && run.code == Some(3),
        "the summary hides the loss: {run:?}"
    );
}

#[test]
fn a_suspended_process_resumes_its_stream_without_loss() {
    let pulse = Pulse::private("suspend");
    let dir = tempfile::tempdir().expect("tempdir");
    let signal = test_signal(3 * RATE, CHANNELS as u16, 7);
    let played = dir.path().join("played.wav");
    write_wav_i16(&played, RATE as u32, CHANNELS as u16, &signal);
    let take = dir.path().join("take.wav");
    let out = take.display().to_string();
    let w4l = start_record(&pulse, &["--seconds", "8", "--json", "-o", &out], &[]);
    let mut player = pulse.play(&played);
    // Stopped twice: 50 ms (a hiccup) and 2 s (Ctrl-Z, then `fg`).
    for pause in [50, 2000] {
        std::thread::sleep(Duration::from_millis(700));
        w4l.signal("STOP");
        std::thread::sleep(Duration::from_millis(pause));
        w4l.signal("CONT");
    }
    assert!(player.wait().expect("paplay").success());
    let run = w4l.wait(LIMIT);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(json_u64(&run.stdout, "restarts"), 0, "{run:?}");
    assert_eq!(json_u64(&run.stdout, "lost_frames"), 0, "{run:?}");
    assert!(!run.stderr.contains("ERROR"), "{run:?}");
    // The whole signal (but for the sink's rewind as playback starts) is in the take.
    let (_, samples) = read_wav_i16(&take);
    let middle = &signal[RATE / 2 * CHANNELS..];
    assert!(
        find(middle, &samples).is_some(),
        "the played signal is not whole in the take: {run:?}"
    );
}
