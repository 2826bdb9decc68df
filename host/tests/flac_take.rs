//! FLAC takes through the library (issue 15 point 3), each output decoded with `claxon` and
//! tested with `flac -t` (`scripts/setup --test` installs it):
//!
//! * a replayed take in each mode, its journal FLAC: the output is the journal renamed, or
//!   written anew (memory mode), sample for sample the input;
//! * a take whose FLAC journal was refused by the disk budget mid-take: saved from the
//!   journal's frames, its unwritten block and the packed cache, nothing lost;
//! * the whole take read back (`Recorder::take_i16`) from a FLAC journal and a packed cache.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use w4l::memory::monitor::{MemoryMonitor, MonitorConfig};
use w4l::recorder::{Recorder, RecorderConfig};
use w4l::source::WavReplay;
use w4l::take::Mode;
use w4l::tempfiles::ResourceManager;
use w4l::wav::SampleFormat;
use w4l_core::accountant::Accountant;

const RATE: u32 = 16_000;

/// A voice-like signal: two drifting tones and a little noise (it compresses, as speech does).
fn voice(frames: usize, channels: u16) -> Vec<i16> {
    let mut x = 0x9E37_79B9_u32;
    (0..frames * usize::from(channels))
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let t = (i / usize::from(channels)) as f64 / f64::from(RATE);
            let tone = (t * 220.0 * std::f64::consts::TAU).sin() * 6_000.0
                + (t * 1_310.0 * std::f64::consts::TAU * (1.0 + t * 0.01)).sin() * 2_000.0;
            (tone as i32 + (x % 64) as i32 - 32) as i16
        })
        .collect()
}

fn write_wav(path: &Path, channels: u16, samples: &[i16]) {
    let spec = SampleFormat::I16.spec(RATE, channels);
    let mut w = hound::WavWriter::create(path, spec).expect("create input");
    for &s in samples {
        w.write_sample(s).expect("write input");
    }
    w.finalize().expect("finalize input");
}

/// The FLAC file passes `flac -t`; its samples as `claxon` decodes them.
fn decoded(path: &Path) -> Vec<i16> {
    let out = Command::new("flac")
        .args(["-t", "-s"])
        .arg(path)
        .output()
        .expect("run flac (scripts/setup --test installs it)");
    assert!(
        out.status.success(),
        "flac -t {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = claxon::FlacReader::open(path).expect("claxon opens it");
    assert_eq!(r.streaminfo().bits_per_sample, 16);
    r.samples()
        .map(|s| i16::try_from(s.expect("claxon decodes it")).expect("16-bit"))
        .collect()
}

fn monitor(memory: usize, disk: usize) -> Arc<MemoryMonitor> {
    let config = MonitorConfig {
        observe_system: false,
        ..MonitorConfig::default()
    };
    Arc::new(MemoryMonitor::new(Arc::new(Accountant::new(memory, disk)), config).expect("monitor"))
}

/// Replays `input` to the end through a recorder with `config` (FLAC); returns it stopped.
fn replayed(input: &Path, monitor: Arc<MemoryMonitor>, config: RecorderConfig) -> Recorder {
    let source = WavReplay::open(input, false).expect("open input");
    let config = RecorderConfig {
        format: SampleFormat::Flac,
        window: Duration::from_secs(1),
        ..config
    };
    let rec = Recorder::new(Box::new(source), monitor, config).expect("recorder");
    rec.start().expect("start");
    assert!(rec.wait(Duration::from_secs(60)), "replay never finished");
    rec.stop().expect("stop");
    rec
}

#[test]
fn a_flac_take_round_trips_in_every_mode() {
    let dir = tempfile::tempdir().expect("dir");
    let manager = ResourceManager::open(dir.path().join("w4l")).expect("manager");
    let input = dir.path().join("in.wav");
    // Not a whole number of FLAC blocks: the last frame is short.
    let samples = voice(3 * RATE as usize + 777, 2);
    write_wav(&input, 2, &samples);
    for mode in [Mode::Stream, Mode::File, Mode::Memory] {
        let rec = replayed(
            &input,
            monitor(16 << 20, 64 << 20),
            RecorderConfig {
                mode,
                temp_files: Some(manager.clone()),
                ..RecorderConfig::default()
            },
        );
        assert_eq!(rec.info().format, "flac");
        let output = dir.path().join(format!("{mode}.flac"));
        let saved = rec.save(&output).expect("save");
        assert_eq!(
            (saved.frames, saved.frames_lost),
            (samples.len() as u64 / 2, 0)
        );
        assert!(decoded(&output) == samples, "{mode} mode: not the input");
    }
}

#[test]
fn a_take_whose_flac_journal_was_refused_is_saved_whole_from_journal_and_cache() {
    let dir = tempfile::tempdir().expect("dir");
    let manager = ResourceManager::open(dir.path().join("w4l")).expect("manager");
    let input = dir.path().join("in.wav");
    let samples = voice(10 * RATE as usize, 1);
    write_wav(&input, 1, &samples);
    // 60 KiB of disk: the journal stops after a few seconds; the rest stays in the (packed)
    // cache, which the memory budget holds whole.
    let rec = replayed(
        &input,
        monitor(16 << 20, 60 << 10),
        RecorderConfig {
            temp_files: Some(manager),
            ..RecorderConfig::default()
        },
    );
    let info = rec.info();
    assert!(
        info.frames_on_disk > 0 && info.frames_on_disk < info.frames_captured,
        "{info:?}"
    );
    assert!(rec.take_i16().expect("read") == samples, "take_i16");
    let output = dir.path().join("out.flac");
    let saved = rec.save(&output).expect("save");
    assert_eq!(saved.frames_lost, 0);
    assert!(decoded(&output) == samples, "not the input");
}

#[test]
fn the_whole_take_reads_back_from_a_flac_journal_and_a_packed_cache() {
    let dir = tempfile::tempdir().expect("dir");
    let manager = ResourceManager::open(dir.path().join("w4l")).expect("manager");
    let input = dir.path().join("in.wav");
    let samples = voice(20 * RATE as usize, 1);
    write_wav(&input, 1, &samples);
    // 400 KiB: the cache evicts its oldest (packed) blocks, the journal holds them.
    let rec = replayed(
        &input,
        monitor(400 << 10, 64 << 20),
        RecorderConfig {
            temp_files: Some(manager),
            ..RecorderConfig::default()
        },
    );
    let info = rec.info();
    assert!(
        info.evicted_frames > 0 && info.lost_samples == 0,
        "{info:?}"
    );
    assert!(rec.take_i16().expect("read") == samples, "take_i16");
    let output = dir.path().join("out.flac");
    rec.save(&output).expect("save");
    assert!(decoded(&output) == samples, "not the input");
}
