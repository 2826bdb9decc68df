//! Takes in a row (`Dictation::takes_in_a_row`): one session, its source opened once, takes
//! begun with a pre-roll from the window and ended while the session goes on — each saved take
//! compared sample by sample with the input's slice it must hold, memory between takes, the
//! errors, and a killed in-row take recovered by the next start.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod common;

use common::{read_i16, signal};
use w4l::error::Result;
use w4l::prelude::*;
use w4l::ring::AudioProducer;
use w4l::source::{Source, SourceStatus, Synthetic};
use w4l::take::recover::{RecoveryConfig, recover_orphans};
use w4l::tempfiles::{ResourceManager, unfinished_takes};

const RATE: u32 = 16_000;
const CHILD_ENV: &str = "W4L_ROW_CHILD";
const READY: &str = "@@READY";

/// Samples of `seconds` of 16 kHz mono.
fn at(seconds: f64) -> usize {
    (seconds * f64::from(RATE)).round() as usize
}

fn manager(dir: &Path) -> Arc<ResourceManager> {
    ResourceManager::open(dir.join("w4l")).expect("temp manager")
}

/// A source the test feeds by hand (each `Vec` pushed whole), counting how often it is started
/// (opened).
struct Gate {
    rx: Arc<Mutex<Option<Receiver<Vec<i16>>>>>,
    stop: Arc<AtomicBool>,
    opens: Arc<AtomicUsize>,
    channels: u16,
    thread: Option<JoinHandle<()>>,
}

impl Gate {
    fn new(channels: u16) -> (Gate, Sender<Vec<i16>>, Arc<AtomicUsize>) {
        let (tx, rx) = channel();
        let opens = Arc::new(AtomicUsize::new(0));
        let gate = Gate {
            rx: Arc::new(Mutex::new(Some(rx))),
            stop: Arc::new(AtomicBool::new(false)),
            opens: opens.clone(),
            channels,
            thread: None,
        };
        (gate, tx, opens)
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
        self.channels
    }
    fn start(&mut self, mut producer: AudioProducer, _: Arc<SourceStatus>) -> Result<()> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        let rx = self.rx.lock().expect("rx").take().expect("started once");
        let stop = self.stop.clone();
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                let Ok(chunk) = rx.recv_timeout(Duration::from_millis(20)) else {
                    continue;
                };
                let mut rest = &chunk[..];
                while !rest.is_empty() && !stop.load(Ordering::Acquire) {
                    let n = producer.push_slice_partial(rest);
                    rest = &rest[n..];
                    if n == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            }
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

/// Feeds the gate the input's next `n` samples and waits until the worker took them.
struct Feeder<'a> {
    input: &'a [i16],
    fed: usize,
    channels: usize,
    tx: Sender<Vec<i16>>,
}

impl Feeder<'_> {
    #[track_caller]
    fn feed(&mut self, session: &Session, n: usize) {
        let chunk = self.input[self.fed..self.fed + n].to_vec();
        self.tx.send(chunk).expect("send");
        self.fed += n;
        let until = Instant::now() + Duration::from_secs(30);
        let whole = (self.fed - self.fed % self.channels) as u64;
        while session.info().samples_captured < whole {
            assert!(Instant::now() < until, "the worker is stuck");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// `take` holds exactly `input[first..end]`, read from the take and from its saved file.
#[track_caller]
fn assert_holds(take: Take, input: &[i16], first: usize, end: usize, out: &Path) {
    assert_eq!(take.first_frame(), first as u64);
    assert_eq!(take.info().frames_captured, (end - first) as u64);
    let samples = take.samples_i16().expect("samples");
    assert!(samples == input[first..end], "the take is not its slice");
    take.save(out).expect("save");
    assert!(
        read_i16(out) == input[first..end],
        "the saved take is not its slice"
    );
}

#[test]
fn three_takes_in_a_row_hold_exactly_their_slices() {
    let dir = tempfile::tempdir().expect("dir");
    let input = signal(at(6.0), 13);
    let (gate, tx, opens) = Gate::new(1);
    let session = Dictation::new()
        .source(Box::new(gate))
        .window(Duration::from_secs(1))
        .takes_in_a_row(true)
        .temp_files(manager(dir.path()))
        .start()
        .expect("start");
    let mut feeder = Feeder {
        input: &input,
        fed: 0,
        channels: 1,
        tx,
    };
    let out = |n: usize| dir.path().join(format!("take{n}.wav"));
    feeder.feed(&session, at(1.5));
    session.begin_take(Duration::ZERO).expect("begin 1");
    feeder.feed(&session, at(1.0));
    let first = session.end_take().expect("end 1");
    feeder.feed(&session, at(0.2));
    session
        .begin_take(Duration::from_millis(500))
        .expect("begin 2");
    // The first take is saved while the second records.
    assert_holds(first, &input, at(1.5), at(2.5), &out(1));
    feeder.feed(&session, at(1.0));
    let second = session.end_take().expect("end 2");
    feeder.feed(&session, at(1.2));
    // The full window as pre-roll; the take is finished by the session's stop.
    session.begin_take(Duration::from_secs(1)).expect("begin 3");
    feeder.feed(&session, at(1.0));
    let third = session.stop().expect("stop");
    assert_holds(second, &input, at(2.2), at(3.7), &out(2));
    assert_holds(third, &input, at(3.9), at(5.9), &out(3));
    assert_eq!(
        opens.load(Ordering::SeqCst),
        1,
        "the source was opened again"
    );
}

#[test]
fn a_take_begun_while_half_a_stereo_frame_is_in_the_ring_starts_with_that_frame() {
    let dir = tempfile::tempdir().expect("dir");
    let input = signal(2 * at(3.0), 19);
    let (gate, tx, _) = Gate::new(2);
    let session = Dictation::new()
        .source(Box::new(gate))
        .window(Duration::from_secs(1))
        .takes_in_a_row(true)
        .temp_files(manager(dir.path()))
        .start()
        .expect("start");
    let mut feeder = Feeder {
        input: &input,
        fed: 0,
        channels: 2,
        tx,
    };
    // Half a frame more than 1.5 s: it waits in the ring for its right sample.
    feeder.feed(&session, 2 * at(1.5) + 1);
    session
        .begin_take(Duration::from_millis(500))
        .expect("begin");
    feeder.feed(&session, 2 * at(1.0) - 1);
    let take = session.end_take().expect("end");
    assert_eq!(take.first_frame(), at(1.0) as u64);
    assert_eq!(take.info().frames_captured, at(1.5) as u64);
    let samples = take.samples_i16().expect("samples");
    assert!(samples == input[2 * at(1.0)..2 * at(2.5)], "not its slice");
}

#[test]
fn takes_cut_from_a_realtime_replay_lose_and_repeat_nothing_at_the_seams() {
    let dir = tempfile::tempdir().expect("dir");
    let wav = dir.path().join("in.wav");
    let input = signal(at(4.0), 17);
    common::write_wav(&wav, RATE, 1, &input);
    let session = Dictation::new()
        .replay(&wav, true)
        .window(Duration::from_secs(1))
        .takes_in_a_row(true)
        .temp_files(manager(dir.path()))
        .start()
        .expect("start");
    let wait_until = |seconds: f64| {
        while session.recorder().frames_captured() < at(seconds) as u64 {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_until(0.5);
    session.begin_take(Duration::ZERO).expect("begin 1");
    wait_until(1.3);
    let first = session.end_take().expect("end 1");
    session
        .begin_take(Duration::from_millis(500))
        .expect("begin 2");
    wait_until(2.5);
    let second = session.end_take().expect("end 2");
    session.begin_take(Duration::from_secs(1)).expect("begin 3");
    assert!(
        session.wait(Duration::from_secs(30)),
        "the replay did not end"
    );
    let third = session.stop().expect("stop");
    let mut ends = Vec::new();
    for (n, take) in [first, second, third].into_iter().enumerate() {
        let start = take.first_frame() as usize;
        let end = start + take.info().frames_captured as usize;
        ends.push((start, end));
        assert_holds(
            take,
            &input,
            start,
            end,
            &dir.path().join(format!("{n}.wav")),
        );
    }
    // The second and third begin with their pre-roll (the window held a full second); the
    // third ends with the file.
    assert!(ends[1].1 - ends[1].0 >= at(0.5) + at(1.0), "{ends:?}");
    assert!(ends[1].0 <= ends[0].1, "no pre-roll: {ends:?}");
    assert_eq!(ends[2].1, input.len(), "{ends:?}");
}

#[test]
fn nothing_accumulates_between_takes_over_fifty_cycles() {
    let dir = tempfile::tempdir().expect("dir");
    let temp = manager(dir.path());
    let session = Dictation::new()
        .source(Box::new(Synthetic::new(RATE, 1, 5, u64::MAX, true)))
        .window(Duration::from_secs(1))
        .takes_in_a_row(true)
        .temp_files(temp.clone())
        .start()
        .expect("start");
    std::thread::sleep(Duration::from_millis(100));
    let idle = |session: &Session| (session.info().memory_used, session.buffers().bytes);
    let between = idle(&session);
    assert!(unfinished_takes(temp.dir()).expect("list").is_empty());
    for cycle in 0..50 {
        session
            .begin_take(Duration::from_millis(200))
            .expect("begin");
        // While a take runs, its journal has a manifest: a crash leaves it recoverable.
        let running = unfinished_takes(temp.dir()).expect("list");
        assert_eq!(running.len(), 1, "cycle {cycle}: {running:?}");
        assert!(
            running[0].manifest().is_some(),
            "cycle {cycle}: no manifest"
        );
        std::thread::sleep(Duration::from_millis(2));
        let take = session.end_take().expect("end");
        assert!(
            take.info().frames_captured >= at(0.2) as u64,
            "cycle {cycle}"
        );
        drop(take);
        assert_eq!(idle(&session), between, "cycle {cycle}: memory grew");
        assert!(unfinished_takes(temp.dir()).expect("list").is_empty());
    }
    // The session's fixed buffers only: the window and the ring, no take cache.
    let info = session.info();
    assert_eq!(info.frames_held, 0);
    assert_eq!(info.disk_bytes, 0);
}

#[test]
fn the_errors_of_takes_in_a_row() {
    let dir = tempfile::tempdir().expect("dir");
    let source = || Box::new(Synthetic::new(RATE, 1, 3, u64::MAX, true));
    let single = Dictation::new()
        .source(source())
        .window(Duration::from_secs(1))
        .temp_files(manager(dir.path()))
        .start()
        .expect("start");
    let said = |e: Error| e.to_string();
    assert!(said(single.begin_take(Duration::ZERO).unwrap_err()).contains("single take"));
    assert!(said(single.end_take().unwrap_err()).contains("single take"));
    drop(single);
    let session = Dictation::new()
        .source(source())
        .window(Duration::from_secs(1))
        .takes_in_a_row(true)
        .temp_files(manager(dir.path()))
        .start()
        .expect("start");
    assert!(said(session.end_take().unwrap_err()).contains("no take is running"));
    let long = session.begin_take(Duration::from_millis(1001)).unwrap_err();
    assert!(said(long).contains("longer than the window"));
    session.begin_take(Duration::ZERO).expect("begin");
    let twice = session.begin_take(Duration::ZERO).unwrap_err();
    assert!(said(twice).contains("already running"));
    session.end_take().expect("end");
    session.recorder().stop().expect("stop the recorder");
    let stopped = session.begin_take(Duration::ZERO).unwrap_err();
    assert!(said(stopped).contains("stopped"));
    // Stopping with no take running: an error, and nothing left behind.
    assert!(said(session.stop().unwrap_err()).contains("no take is running"));
    assert!(
        unfinished_takes(&dir.path().join("w4l"))
            .expect("list")
            .is_empty()
    );
}

/// The child side of the recovery test: records takes in a row from `W4L_ROW_CHILD`'s WAV,
/// and is killed during its second take. Does nothing in a normal test run.
#[test]
fn child_process() {
    let Some(wav) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let dir = wav.parent().expect("dir").to_path_buf();
    let session = Dictation::new()
        .replay(&wav, true)
        .window(Duration::from_secs(1))
        .takes_in_a_row(true)
        .temp_files(manager(&dir))
        .start()
        .expect("start");
    let wait_until = |seconds: f64| {
        while session.recorder().frames_captured() < at(seconds) as u64 {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_until(0.3);
    session.begin_take(Duration::ZERO).expect("begin");
    wait_until(0.8);
    session
        .end_take()
        .expect("end")
        .save(&dir.join("first.wav"))
        .expect("save");
    session
        .begin_take(Duration::from_millis(500))
        .expect("begin");
    // Past two checkpoints (one a second of audio).
    wait_until(3.2);
    println!("{READY}");
    std::io::stdout().flush().expect("flush");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_killed_take_in_a_row_is_recovered_like_any_other() {
    let dir = tempfile::tempdir().expect("dir");
    let wav = dir.path().join("in.wav");
    let input = signal(at(10.0), 21);
    common::write_wav(&wav, RATE, 1, &input);
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["child_process", "--exact", "--nocapture"])
        .env(CHILD_ENV, &wav)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = lines.map_while(|l| l.ok()).any(|l| l.contains(READY));
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert!(ready, "the child ended before its second take");
    let config = RecoveryConfig {
        recovered_dir: Some(dir.path().join("recovered")),
        ..RecoveryConfig::default()
    };
    let report = recover_orphans(&dir.path().join("w4l"), &config).expect("recover");
    assert_eq!(report.recovered.len(), 1, "{report:?}");
    let back = read_i16(&report.recovered[0].files[0]);
    // At least the pre-roll and the first checkpoint's second, and exactly a slice of the
    // input that starts within the window before the second take began.
    assert!(back.len() >= at(1.5), "recovered {} samples", back.len());
    let start = (0..input.len() - back.len())
        .find(|&i| input[i..i + 64] == back[..64])
        .expect("the recovered take is not from the input");
    assert!(
        back == input[start..start + back.len()],
        "not a slice of the input"
    );
    assert!((at(0.3)..at(1.0)).contains(&start), "starts at {start}");
    assert!(read_i16(&dir.path().join("first.wav")).len() >= at(0.5));
}
