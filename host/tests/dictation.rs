//! The library as an app uses it, through the front door (`w4l::Dictation`): the scenarios of
//! a dictation app, on the synthetic voice and WAV replays (no microphone needed), with real
//! temp directories and real files.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{read_i16 as read_wav, signal};
use w4l::prelude::*;
use w4l::source::Synthetic;
use w4l::tempfiles::ResourceManager;

const RATE: u32 = 16_000;

/// A temp dir of the test's own for the take's journal (an app's manager).
fn manager(dir: &Path) -> Arc<ResourceManager> {
    ResourceManager::open(dir.join("w4l")).expect("temp manager")
}

#[test]
fn a_transcription_thread_reads_the_window_while_the_worker_records() {
    let dir = tempfile::tempdir().expect("dir");
    let session = Dictation::new()
        .source(Box::new(Synthetic::new(
            RATE,
            1,
            3,
            3 * u64::from(RATE),
            true,
        )))
        .window(Duration::from_secs(2))
        .temp_files(manager(dir.path()))
        .start()
        .expect("start");
    let read = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut longest = 0;
            while !session.wait(Duration::from_millis(50)) {
                longest = longest.max(session.latest(5.0).len());
            }
            longest
        });
        reader.join().expect("reader")
    });
    // The window holds 2 s: the reader saw it fill while the worker recorded.
    assert!(read > RATE as usize, "the reader saw only {read} samples");
    assert!(read <= 2 * RATE as usize);
    let take = session.stop().expect("stop");
    assert_eq!(take.info().frames_captured, 3 * u64::from(RATE));
    assert_eq!(take.lost_frames(), 0);
}

#[test]
fn the_whole_take_as_f32_equals_the_input_after_stream_file_stream() {
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("in.wav");
    let samples = signal(4 * RATE as usize, 5);
    common::write_wav(&input, RATE, 1, &samples);
    let session = Dictation::new()
        .replay(&input, true)
        .budget(8 << 20)
        .window(Duration::from_secs(1))
        .temp_files(manager(dir.path()))
        .start()
        .expect("start");
    for (at, mode) in [(1, Mode::File), (2, Mode::Stream), (3, Mode::File)] {
        while session.info().frames_captured < at * u64::from(RATE) {
            std::thread::sleep(Duration::from_millis(10));
        }
        session.set_mode(mode).expect("switch");
    }
    assert!(session.wait(Duration::from_secs(30)));
    let take = session.stop().expect("stop");
    let f32s = take.samples_f32().expect("samples");
    let expected: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
    assert!(f32s == expected, "the take is not the input");
    let out = dir.path().join("out.wav");
    take.save(&out).expect("save");
    assert_eq!(read_wav(&out), samples);
}

#[test]
fn an_app_with_its_own_temp_manager_loses_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("in.wav");
    let samples = signal(20 * RATE as usize, 9);
    common::write_wav(&input, RATE, 1, &samples);
    // The app's own manager, on its own directory, handed to the session: the journal goes
    // there, and a small budget evicts memory for free.
    let temp = manager(dir.path());
    let session = Dictation::new()
        .replay(&input, false)
        .budget(2 << 20)
        .window(Duration::from_secs(1))
        .temp_files(temp.clone())
        .start()
        .expect("start");
    assert!(session.wait(Duration::from_secs(60)));
    let take = session.stop().expect("stop");
    assert_eq!(take.lost_frames(), 0, "{:?}", take.info());
    assert!(take.info().evicted_frames > 0, "{:?}", take.info());
    assert!(take.events().is_empty(), "{:?}", take.events());
    let out = dir.path().join("out.wav");
    take.save(&out).expect("save");
    assert_eq!(read_wav(&out), samples);
}

#[test]
fn a_journal_that_cannot_grow_is_an_event_the_app_sees() {
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("in.wav");
    let samples = signal(10 * RATE as usize, 11);
    common::write_wav(&input, RATE, 1, &samples);
    // 4 KiB of disk for the journal, and memory for a second or two: audio is lost, and the
    // app is told (events, lost frames) without any log subscriber.
    let session = Dictation::new()
        .replay(&input, false)
        .budget(1 << 20)
        .disk_budget(4 << 10)
        .window(Duration::from_secs(1))
        .temp_files(manager(dir.path()))
        .start()
        .expect("start");
    assert!(session.wait(Duration::from_secs(60)));
    let take = session.stop().expect("stop");
    assert!(take.lost_frames() > 0, "{:?}", take.info());
    let said: Vec<String> = take.events().iter().map(ToString::to_string).collect();
    assert!(
        said.iter().any(|e| e.contains("disk budget")),
        "no event for the journal: {said:?}"
    );
    assert!(
        said.iter().any(|e| e.contains("given up")),
        "no event for the lost audio: {said:?}"
    );
    let out = dir.path().join("out.wav");
    let saved = take.save(&out).expect("save");
    assert_eq!(saved.frames + saved.frames_lost, samples.len() as u64);
}

#[test]
fn the_session_tracks_its_buffers_and_the_apps() {
    let dir = tempfile::tempdir().expect("dir");
    let session = Dictation::new()
        .source(Box::new(Synthetic::new(
            RATE,
            1,
            4,
            2 * u64::from(RATE),
            false,
        )))
        .window(Duration::from_secs(1))
        .temp_files(manager(dir.path()))
        .start()
        .expect("start");
    let features = session
        .track("features", 1 << 20, w4l::core::tracker::Priority::Normal)
        .expect("track");
    assert!(session.wait(Duration::from_secs(30)));
    let info = session.buffers();
    let names: Vec<&str> = info.entries.iter().map(|e| e.name.as_str()).collect();
    for name in ["take cache", "window", "ring", "features"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(info.count, 4);
    let cache = info
        .entries
        .iter()
        .find(|e| e.name == "take cache")
        .expect("cache");
    assert!(cache.bytes > 0, "{info:?}");
    assert_eq!(session.info().buffers, 4);
    drop(features);
    assert_eq!(session.buffers().count, 3);
    let take = session.stop().expect("stop");
    // The ring is gone with the stop; the window and the cache stay until the take goes.
    assert_eq!(take.info().buffers, 2);
}
