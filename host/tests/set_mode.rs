//! `Recorder::set_mode` while recording: stream ↔ file, several times in one take, with the
//! output compared sample by sample to the input — nothing lost, nothing duplicated, also when
//! the stream phases spill under a small budget and when the switch lands while samples are in
//! flight.

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod common;

use common::{read_i16, signal};
use w4l::error::Result;
use w4l::memory::monitor::{MemoryMonitor, MonitorConfig};
use w4l::recorder::{Recorder, RecorderConfig, RecorderState};
use w4l::ring::AudioProducer;
use w4l::source::{Source, SourceStatus, WavReplay};
use w4l::take::Mode;
use w4l::tempfiles::ResourceManager;
use w4l::wav::SampleFormat;
use w4l_core::accountant::Accountant;

const RATE: u32 = 16_000;

fn monitor(budget: usize) -> Arc<MemoryMonitor> {
    Arc::new(
        MemoryMonitor::new(
            Arc::new(Accountant::new(budget, 256 << 20)),
            MonitorConfig {
                observe_system: false,
                ..MonitorConfig::default()
            },
        )
        .expect("monitor"),
    )
}

/// A source the test feeds by hand: each `Vec` sent is pushed whole (waiting for room), and
/// closing the channel ends the source.
struct Gate {
    rx: Arc<Mutex<Option<Receiver<Vec<i16>>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Gate {
    fn new() -> (Gate, Sender<Vec<i16>>) {
        let (tx, rx) = channel();
        (
            Gate {
                rx: Arc::new(Mutex::new(Some(rx))),
                stop: Arc::new(AtomicBool::new(false)),
                thread: None,
            },
            tx,
        )
    }
}

impl Source for Gate {
    fn describe(&self) -> String {
        "gate".into()
    }
    fn rate(&self) -> u32 {
        RATE
    }
    fn channels(&self) -> u16 {
        1
    }
    fn start(&mut self, mut producer: AudioProducer, status: Arc<SourceStatus>) -> Result<()> {
        let rx = self.rx.lock().expect("rx").take().expect("started once");
        let stop = self.stop.clone();
        self.thread = Some(std::thread::spawn(move || {
            // Wakes now and then to see `stop` (a test that failed drops the recorder while the
            // sending half is still alive).
            loop {
                let chunk = match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(chunk) => chunk,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        continue;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                };
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let n = producer.push_slice_partial(rest);
                    rest = &rest[n..];
                    if n == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            }
            status.finish();
        }));
        Ok(())
    }
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().expect("gate thread");
        }
    }
}

#[track_caller]
fn wait_for(rec: &Recorder, frames: u64) {
    let until = Instant::now() + Duration::from_secs(30);
    while rec.frames_captured() < frames {
        assert!(Instant::now() < until, "stuck at {}", rec.frames_captured());
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(rec.frames_captured(), frames);
}

#[test]
fn switching_back_and_forth_loses_and_duplicates_nothing() {
    let base = tempfile::tempdir().expect("dir");
    let manager = ResourceManager::open(base.path().join("w4l")).expect("manager");
    let samples = signal(14 * RATE as usize + 77, 1);
    let (gate, tx) = Gate::new();
    // 300 KiB: ring 32 KiB, window 31.25 KiB, the rest for 64 KiB blocks (about 2 s each):
    // the stream phases longer than a few seconds spill.
    let m = monitor(300 << 10);
    let acc = m.accountant().clone();
    let rec = Recorder::new(
        Box::new(gate),
        m,
        RecorderConfig {
            window: Duration::from_secs(1),
            temp_files: Some(manager.clone()),
            ..RecorderConfig::default()
        },
    )
    .expect("recorder");
    assert_eq!(rec.mode(), Mode::Stream);
    rec.start().expect("start");
    // (samples to feed, then the mode to switch to), the last phase ends the take.
    let plan: [(usize, Option<Mode>); 8] = [
        (2 * RATE as usize + 5, Some(Mode::File)),
        (RATE as usize, Some(Mode::Stream)),
        (6 * RATE as usize, Some(Mode::File)),
        (333, Some(Mode::File)),
        (RATE as usize, Some(Mode::Stream)),
        (1, Some(Mode::File)),
        (2 * RATE as usize, Some(Mode::Stream)),
        (usize::MAX, None),
    ];
    let mut fed = 0usize;
    let mut spilled_in_stream = false;
    let mut spilled_at_switch = 0;
    for (n, switch) in plan {
        let end = fed.saturating_add(n).min(samples.len());
        tx.send(samples[fed..end].to_vec()).expect("feed");
        fed = end;
        wait_for(&rec, fed as u64);
        if let Some(mode) = switch {
            let before = rec.info();
            rec.set_mode(mode).expect("set_mode");
            assert_eq!(rec.mode(), mode);
            let after = rec.info();
            assert_eq!(after.mode, mode.as_str());
            if mode == Mode::File {
                // The cache shrank to file mode's newest blocks: everything is on disk.
                assert!(after.blocks_held <= 2, "{after:?}");
                assert_eq!(after.frames_on_disk, fed as u64);
            }
            // Blocks spilled by the policy during the stream phase, not moved by a switch.
            spilled_in_stream |=
                before.mode == "stream" && before.evicted_frames > spilled_at_switch;
            spilled_at_switch = after.evicted_frames;
        }
    }
    drop(tx);
    assert!(rec.wait(Duration::from_secs(30)), "the take never ended");
    rec.stop().expect("stop");
    assert!(
        spilled_in_stream,
        "no stream phase spilled: {:?}",
        rec.info()
    );
    assert!(
        rec.set_mode(Mode::File).is_err(),
        "stopped: no more switches"
    );
    let info = rec.info();
    assert_eq!(info.state, RecorderState::Stopped);
    assert_eq!(info.lost_samples, 0, "{info:?}");
    let out = base.path().join("out.wav");
    let summary = rec.save(&out).expect("save");
    assert_eq!(summary.frames, samples.len() as u64);
    assert_eq!(summary.frames_lost, 0);
    let back = read_i16(&out);
    assert_eq!(back.len(), samples.len());
    let first_diff = back.iter().zip(&samples).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "the output differs from the input");
    drop(rec);
    assert_eq!(acc.memory_used(), 0);
    assert_eq!(acc.disk_used(), 0);
    let left: Vec<_> = fs::read_dir(manager.dir())
        .expect("list")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            name.ends_with(".wav").then_some(name)
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn switching_while_a_real_time_replay_runs_keeps_the_take_whole() {
    let base = tempfile::tempdir().expect("dir");
    let manager = ResourceManager::open(base.path().join("w4l")).expect("manager");
    let input = base.path().join("in.wav");
    let samples = signal(3 * 2 * RATE as usize, 2);
    {
        let mut w =
            hound::WavWriter::create(&input, SampleFormat::I16.spec(RATE, 2)).expect("input");
        for &s in &samples {
            w.write_sample(s).expect("write");
        }
        w.finalize().expect("finalize");
    }
    for format in [SampleFormat::I16, SampleFormat::F32, SampleFormat::Flac] {
        let rec = Recorder::new(
            Box::new(WavReplay::open(&input, true).expect("replay")),
            monitor(8 << 20),
            RecorderConfig {
                mode: Mode::File,
                format,
                window: Duration::from_secs(1),
                temp_files: Some(manager.clone()),
                ..RecorderConfig::default()
            },
        )
        .expect("recorder");
        rec.start().expect("start");
        // Switch at whatever moment the sleeps land on, while the replay pushes.
        let mut switches = 0;
        let mut mode = Mode::File;
        while !rec.wait(Duration::from_millis(137)) {
            mode = if mode == Mode::File {
                Mode::Stream
            } else {
                Mode::File
            };
            rec.set_mode(mode).expect("set_mode");
            switches += 1;
        }
        rec.stop().expect("stop");
        assert!(switches >= 10, "only {switches} switches");
        let out = base
            .path()
            .join(format!("out-{}.{}", format.as_str(), format.extension()));
        let summary = rec.save(&out).expect("save");
        assert_eq!(summary.frames_lost, 0);
        if format == SampleFormat::Flac {
            let mut r = claxon::FlacReader::open(&out).expect("open");
            let back: Vec<i32> = r.samples().map(|s| s.expect("sample")).collect();
            let samples: Vec<i32> = samples.iter().map(|&s| i32::from(s)).collect();
            assert!(back == samples, "FLAC: the output differs from the input");
            continue;
        }
        let mut r = hound::WavReader::open(&out).expect("open");
        let back: Vec<i16> = match format {
            SampleFormat::I16 | SampleFormat::Flac => {
                r.samples::<i16>().map(|s| s.expect("sample")).collect()
            }
            SampleFormat::F32 => r
                .samples::<f32>()
                .map(|s| {
                    let s = s.expect("sample");
                    let i = (s * 32768.0) as i16;
                    assert_eq!(f32::from(i) / 32768.0, s, "not an exact 16-bit value");
                    i
                })
                .collect(),
        };
        assert_eq!(back.len(), samples.len(), "{format:?}");
        assert!(
            back == samples,
            "{format:?}: the output differs from the input"
        );
    }
}
