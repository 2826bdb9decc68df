//! The downstream application records 10 s of 48 kHz stereo from the virtual microphone
//! (`scripts/pulse`, whose environment `scripts/test` exports) while speech over noise plays:
//! exactly 480 000 frames, the played samples found in the take bit for bit (a null sink's
//! monitor passes 16-bit audio unchanged), and nothing reported lost.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const RATE: usize = 48_000;
const CHANNELS: usize = 2;

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); run scripts/setup --test"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

/// Speech over pink noise, 48 kHz stereo 16-bit, about 6 s.
fn speech_over_noise(dir: &Path) -> std::path::PathBuf {
    let p = |name: &str| dir.join(name).display().to_string();
    run(
        "espeak-ng",
        &[
            "-w",
            &p("speech.wav"),
            "Dictation keeps every word, from the first to the very last one, even over noise.",
        ],
    );
    run("sox", &[&p("speech.wav"), "-r", "48000", "-c", "2", "-b", "16", &p("speech48.wav")]);
    run(
        "sox",
        &["-n", "-r", "48000", "-c", "2", "-b", "16", &p("noise.wav"), "synth", "6", "pinknoise", "vol", "0.1"],
    );
    run("sox", &["-m", &p("speech48.wav"), &p("noise.wav"), "-b", "16", &p("played.wav")]);
    dir.join("played.wav")
}

fn read_i16(path: &Path) -> Vec<i16> {
    let mut reader = hound::WavReader::open(path).expect("open WAV");
    reader.samples::<i16>().map(|s| s.expect("sample")).collect()
}

/// Where `piece` starts in `take`, exactly, at a frame boundary.
fn find(piece: &[i16], take: &[i16]) -> Option<usize> {
    (0..take.len().saturating_sub(piece.len()) + 1)
        .step_by(CHANNELS)
        .find(|&j| take[j..j + piece.len()] == *piece)
}

#[test]
fn an_app_outside_the_workspace_records_every_frame() {
    let dir = std::env::temp_dir().join(format!("w4l-downstream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let played = speech_over_noise(&dir);
    let take = dir.join("take.wav");
    let recording = {
        let take = take.clone();
        std::thread::spawn(move || w4l_downstream::record(10 * RATE as u64, &take))
    };
    // The null sink's monitor may take up to its 2 s block before it delivers.
    std::thread::sleep(Duration::from_millis(2500));
    run("paplay", &["--device=w4l_mic", played.to_str().expect("utf-8 path")]);
    let info = recording.join().expect("recording thread").expect("record");

    assert_eq!(info.frames_captured, 10 * RATE as u64, "{info:?}");
    assert_eq!(info.source_stats.lost_frames, 0, "{info:?}");
    assert_eq!(info.overruns, 0, "{info:?}");
    let samples = read_i16(&take);
    assert_eq!(samples.len(), 10 * RATE * CHANNELS);
    // The played signal, but for its first half second (the sink mixes a new stream in with a
    // rewind), is in the take exactly.
    let signal = read_i16(&played);
    let piece = &signal[RATE / 2 * CHANNELS..];
    assert!(
        find(piece, &samples).is_some(),
        "the played signal is not in the take whole: {info:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
