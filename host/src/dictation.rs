//! The front door for apps: [`Dictation`] builds a recording session from a few choices (a
//! budget or a Whisper model, a device, a window), [`Session`] is the recording (shareable with
//! a transcription thread), and [`Take`] is what it leaves: the whole take, its figures, and
//! `save`.
//!
//! ```no_run
//! use std::time::Duration;
//! use w4l::prelude::*;
//!
//! let session = Dictation::new()
//!     .model(Model::Small)        // the budget from the Whisper table
//!     .window(Duration::from_secs(30))
//!     .model_input(true)          // latest() in 16 kHz mono, as Whisper wants it
//!     .start()?;
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         // A transcription thread: the newest 5 s, every second.
//!         for _ in 0..3 {
//!             let audio: Vec<f32> = session.latest(5.0);
//!             # let _ = audio;
//!             std::thread::sleep(Duration::from_secs(1));
//!         }
//!     });
//! });
//! let take = session.stop()?;
//! println!("{} frames, {} lost", take.info().frames_captured, take.lost_frames());
//! take.save("dictation.wav".as_ref())?;
//! # Ok::<(), w4l::error::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use w4l_core::budget::{Budget, Model};

use crate::error::{Error, Result};
use crate::memory::buffers::{BufferHandle, BufferInfo};
use crate::memory::monitor::{MemoryMonitor, MonitorConfig, memory_ceiling};
use crate::recorder::{EndedTake, Recorder, RecorderConfig, RecorderInfo};
use crate::source::device::{CaptureRequest, CaptureSource};
use crate::source::{Source, WavReplay};
use crate::take::{Mode, Saved};
use crate::tempfiles::ResourceManager;
use crate::wav::SampleFormat;

/// The rate [`Dictation::model_input`] converts to: what Whisper consumes.
pub const MODEL_RATE: u32 = 16_000;

/// Where a session's audio comes from.
enum Input {
    Device(CaptureRequest),
    Replay { path: PathBuf, realtime: bool },
    Source(Box<dyn Source>),
}

/// A recording session to be started: every choice has a sensible default (the default input
/// device, a 512 MiB budget, stream mode, a 30 s window, 16-bit output).
pub struct Dictation {
    input: Input,
    budget: Option<u64>,
    model: Option<Model>,
    disk_budget: Option<u64>,
    config: RecorderConfig,
    duration: Option<Duration>,
    model_input: bool,
}

impl Default for Dictation {
    fn default() -> Self {
        Self::new()
    }
}

impl Dictation {
    /// The defaults: the default input device, 512 MiB, stream mode, a 30 s window.
    pub fn new() -> Self {
        Self {
            input: Input::Device(CaptureRequest::default()),
            budget: None,
            model: None,
            disk_budget: None,
            config: RecorderConfig::default(),
            duration: None,
            model_input: false,
        }
    }

    /// The memory budget, bytes (capped by what the machine has available).
    pub fn budget(mut self, bytes: u64) -> Self {
        self.budget = Some(bytes);
        self
    }

    /// The budget for a Whisper model: the model's size plus 512 MiB for the rest (the core's
    /// table, [`Model`]).
    pub fn model(mut self, model: Model) -> Self {
        self.model = Some(model);
        self
    }

    /// The disk budget for the take's journal, bytes (default 1 GiB).
    pub fn disk_budget(mut self, bytes: u64) -> Self {
        self.disk_budget = Some(bytes);
        self
    }

    /// Records from the input device whose name or id contains `name` (see
    /// [`crate::source::device::list`]).
    pub fn device(mut self, name: impl Into<String>) -> Self {
        let mut request = match self.input {
            Input::Device(r) => r,
            _ => CaptureRequest::default(),
        };
        request.device = Some(name.into());
        self.input = Input::Device(request);
        self
    }

    /// Records from a device as `request` says (backend, rate, channels, buffer, retries).
    pub fn capture(mut self, request: CaptureRequest) -> Self {
        self.input = Input::Device(request);
        self
    }

    /// Replays a WAV file through the same pipeline (at its real pace with `realtime`, else
    /// as fast as it goes).
    pub fn replay(mut self, wav: impl Into<PathBuf>, realtime: bool) -> Self {
        self.input = Input::Replay {
            path: wav.into(),
            realtime,
        };
        self
    }

    /// Records from any [`Source`] (a synthetic voice, an app's own).
    pub fn source(mut self, source: Box<dyn Source>) -> Self {
        self.input = Input::Source(source);
        self
    }

    /// The length of the rolling window [`Session::latest`] reads from (default 30 s).
    pub fn window(mut self, window: Duration) -> Self {
        self.config.window = window;
        self
    }

    /// Where the take is kept (default [`Mode::Stream`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.config.mode = mode;
        self
    }

    /// The format of the journal and the saved file (default 16-bit).
    pub fn format(mut self, format: SampleFormat) -> Self {
        self.config.format = format;
        self
    }

    /// Ends the take after exactly this much audio.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }

    /// Takes in a row (default off): the session keeps its device open between takes,
    /// feeding only the rolling window, so that a push-to-talk take begins at once
    /// ([`Session::begin_take`]) and may start with up to a window of audio from before the
    /// press. It starts with no take: nothing is kept, and no journal exists, until the first
    /// `begin_take`. A `duration` limits the whole session, not each take.
    pub fn takes_in_a_row(mut self, yes: bool) -> Self {
        self.config.takes_in_a_row = yes;
        self
    }

    /// The temporary-file manager for the take's journal (default: the process's shared one).
    pub fn temp_files(mut self, manager: Arc<ResourceManager>) -> Self {
        self.config.temp_files = Some(manager);
        self
    }

    /// Whether [`Session::latest`] returns [`MODEL_RATE`] mono (what Whisper consumes) instead
    /// of the capture's own rate and channels.
    pub fn model_input(mut self, yes: bool) -> Self {
        self.model_input = yes;
        self
    }

    /// The budget this session will run in.
    fn accountant(&self) -> Budget {
        let mut b = self.model.map_or(Budget::DEFAULT, Budget::for_model);
        if let Some(bytes) = self.budget {
            let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
            b = Budget {
                memory: bytes,
                audio_limit: bytes,
                model_limit: None,
                ..b
            };
        }
        if let Some(available) = memory_ceiling().and_then(|c| usize::try_from(c).ok()) {
            b.memory = b.memory.min(available);
            b.audio_limit = b.audio_limit.min(available);
        }
        match self.disk_budget {
            Some(d) => b.with_disk(usize::try_from(d).unwrap_or(usize::MAX)),
            None => b,
        }
    }

    /// Opens the input, builds the recorder, starts recording.
    ///
    /// # Errors
    ///
    /// The input cannot be opened (no device, a bad file), the budget cannot hold the
    /// recorder's buffers, the journal cannot be created, or the source cannot start.
    pub fn start(self) -> Result<Session> {
        let budget = self.accountant();
        let rss_limit = (budget.memory as u64)
            .max(self.model.map_or(0, |m| Budget::for_model(m).memory as u64));
        let source: Box<dyn Source> = match self.input {
            Input::Device(request) => Box::new(CaptureSource::open(&request)?),
            Input::Replay { path, realtime } => Box::new(WavReplay::open(&path, realtime)?),
            Input::Source(s) => s,
        };
        let mut config = self.config;
        config.limit_frames = self.duration.map(|d| {
            (d.as_secs_f64() * f64::from(source.rate()))
                .round()
                .max(1.0) as u64
        });
        let monitor = Arc::new(MemoryMonitor::new(
            Arc::new(budget.accountant()),
            MonitorConfig {
                rss_limit,
                ..MonitorConfig::default()
            },
        )?);
        let recorder = Recorder::new(source, monitor, config)?;
        recorder.start()?;
        Ok(Session {
            recorder,
            model_input: self.model_input,
        })
    }
}

/// A recording in progress. `Sync`: share it with a transcription thread (by reference, or in
/// an `Arc`) to call [`latest`](Self::latest) while it records.
#[derive(Debug)]
pub struct Session {
    recorder: Recorder,
    model_input: bool,
}

impl Session {
    /// The newest `seconds` of audio (or as much as there is), interleaved `f32`: in
    /// [`MODEL_RATE`] mono if the session was built with [`Dictation::model_input`].
    pub fn latest(&self, seconds: f32) -> Vec<f32> {
        let audio = self.recorder.latest(seconds);
        if self.model_input {
            to_model_input(&audio, self.recorder.rate(), self.recorder.channels())
        } else {
            audio
        }
    }

    /// Every figure of the recording so far.
    pub fn info(&self) -> RecorderInfo {
        self.recorder.info()
    }

    /// Switches between stream and file mode while recording.
    ///
    /// # Errors
    ///
    /// As for [`Recorder::set_mode`].
    pub fn set_mode(&self, mode: Mode) -> Result<()> {
        self.recorder.set_mode(mode)
    }

    /// Waits until the take is complete (its duration reached, its file replayed) or `timeout`
    /// passed; returns whether it is complete.
    pub fn wait(&self, timeout: Duration) -> bool {
        self.recorder.wait(timeout)
    }

    /// The oldest event not yet handed out that cost the take durability or audio (see
    /// [`Recorder::poll_event`]): poll it to show the user what went wrong as it happens.
    pub fn poll_event(&self) -> Option<Error> {
        self.recorder.poll_event()
    }

    /// The memory monitor: register an app's cleanup (unload a model under pressure) with
    /// [`MemoryMonitor::add_cleanup_callback`].
    pub fn monitor(&self) -> &Arc<MemoryMonitor> {
        self.recorder.monitor()
    }

    /// Tracks an app's buffer (features, a decoder's state) beside the recorder's own, until the
    /// handle is dropped: the session's [`buffers`](Self::buffers) count it.
    ///
    /// # Errors
    ///
    /// The registry is full.
    pub fn track(
        &self,
        name: impl Into<String>,
        bytes: usize,
        priority: w4l_core::tracker::Priority,
    ) -> Result<BufferHandle> {
        self.recorder.buffers().track(name, bytes, priority)
    }

    /// Every buffer of the session (the earlier design's `get_buffer_info()`): the ring, the
    /// window, the take's cache, and the app's own, with bytes, priority and age.
    pub fn buffers(&self) -> BufferInfo {
        self.recorder.buffers().info()
    }

    /// The recorder underneath, for what the session does not say.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Begins a take of a session of takes in a row ([`Dictation::takes_in_a_row`]): its first
    /// samples are the last `pre_roll` of audio from before this call (as much as the window
    /// holds: less just after the start), followed without a gap or a repeat by what the
    /// device captures next. The take has its own journal, recovered like any other's if the
    /// process dies.
    ///
    /// ```
    /// use std::time::Duration;
    /// use w4l::prelude::*;
    /// use w4l::source::Synthetic;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let temp = w4l::tempfiles::ResourceManager::open(dir.path().join("w4l"))?;
    /// let session = Dictation::new()
    ///     .source(Box::new(Synthetic::new(16_000, 1, 7, 16_000, true)))
    ///     .window(Duration::from_secs(1))
    ///     .takes_in_a_row(true)
    ///     # .temp_files(temp)
    ///     .start()?;
    /// std::thread::sleep(Duration::from_millis(200)); // the key is not pressed yet
    /// session.begin_take(Duration::from_millis(100))?; // pressed: 0.1 s before it included
    /// std::thread::sleep(Duration::from_millis(300));
    /// let take = session.end_take()?; // released; the device stays open
    /// assert!(take.info().frames_captured >= 1_600);
    /// # take.save(&dir.path().join("take.wav"))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Not a session of takes in a row; stopped; a take is running; `pre_roll` longer than
    /// the window; the journal cannot be created.
    pub fn begin_take(&self, pre_roll: Duration) -> Result<()> {
        self.recorder.begin_take(pre_roll)
    }

    /// Ends the running take exactly at the audio captured up to this call (a device's
    /// fragment still on its way is not waited for: it goes to the window, and a next take's
    /// pre-roll) and hands it over, while the session goes on. Save it, or drop it (its
    /// journal is removed), while the next take records.
    ///
    /// # Errors
    ///
    /// Not a session of takes in a row; no take is running.
    pub fn end_take(&self) -> Result<Take> {
        let ended = self.recorder.end_take()?;
        Ok(Take::ended(ended, None))
    }

    /// Stops recording, exactly: every frame captured up to this call is in the take. In a
    /// session of takes in a row, the running take is ended (exactly, too) and returned.
    ///
    /// # Errors
    ///
    /// Nothing at all was captured (the device gave nothing); in a session of takes in a row,
    /// no take was running (drop the session to close it between takes: nothing is lost).
    /// Any other failure (the device lost, the disk failed) still gives the take, which
    /// carries the error and what was lost.
    pub fn stop(self) -> Result<Take> {
        if self.recorder.takes_in_a_row() {
            let stopped = self.recorder.stop();
            let ended = self.recorder.end_take()?;
            return Ok(Take::ended(ended, stopped.err()));
        }
        let stopped = self.recorder.stop();
        if let Err(e) = &stopped
            && self.recorder.frames_captured() == 0
        {
            return Err(e.clone());
        }
        let mut events = Vec::new();
        while let Some(e) = self.recorder.poll_event() {
            events.push(e);
        }
        Ok(Take {
            kept: Kept::Session(Box::new(self.recorder)),
            error: stopped.err(),
            events,
        })
    }
}

/// A finished take: the whole of it (on disk and in memory), its figures, and
/// [`save`](Self::save). Dropped unsaved, its journal is removed.
#[derive(Debug)]
pub struct Take {
    kept: Kept,
    error: Option<Error>,
    /// What cost durability or audio on the way and was not polled during the session.
    events: Vec<Error>,
}

/// Where a take's samples are.
#[derive(Debug)]
enum Kept {
    /// The recorder of a single-take session, stopped.
    Session(Box<Recorder>),
    /// A take of a session of takes in a row.
    Ended(Box<EndedTake>),
}

impl Take {
    fn ended(ended: EndedTake, error: Option<Error>) -> Self {
        let mut events = Vec::new();
        while let Some(e) = ended.poll_event() {
            events.push(e);
        }
        Self {
            kept: Kept::Ended(Box::new(ended)),
            error,
            events,
        }
    }

    /// The whole take as interleaved 16-bit samples.
    ///
    /// # Errors
    ///
    /// The journal cannot be read.
    pub fn samples_i16(&self) -> Result<Vec<i16>> {
        match &self.kept {
            Kept::Session(recorder) => recorder.take_i16(),
            Kept::Ended(take) => take.samples_i16(),
        }
    }

    /// The whole take as interleaved `f32` samples (each 16-bit sample as `x / 32768`).
    ///
    /// # Errors
    ///
    /// The journal cannot be read.
    pub fn samples_f32(&self) -> Result<Vec<f32>> {
        let i16s = self.samples_i16()?;
        let mut out = vec![0.0f32; i16s.len()];
        w4l_core::sample::convert(&i16s, &mut out);
        Ok(out)
    }

    /// Every figure of the recording (of a take in a row: the session's when it ended, with
    /// the take's own length, cache and disk figures).
    pub fn info(&self) -> RecorderInfo {
        match &self.kept {
            Kept::Session(recorder) => recorder.info(),
            Kept::Ended(take) => take.info().clone(),
        }
    }

    /// The frame of the session's audio (counted from its start) the take begins with: 0 for
    /// a single take; for a take in a row, where its pre-roll begins.
    pub fn first_frame(&self) -> u64 {
        match &self.kept {
            Kept::Session(_) => 0,
            Kept::Ended(take) => take.first_frame(),
        }
    }

    /// Frames the take misses, whatever the cause: audio the device never delivered, samples
    /// the recorder could not take in time (overruns), and what memory gave up where the disk
    /// could not keep it. (Device losses and overruns are the session's up to the take's end.)
    pub fn lost_frames(&self) -> u64 {
        let info = self.info();
        let channels = u64::from(info.channels.max(1));
        info.source_stats.lost_frames + (info.overruns + info.lost_samples) / channels
    }

    /// The failure that ended or harmed the recording, if any (the take is what was captured
    /// up to it).
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// The events of [`Session::poll_event`] that were not polled during the session.
    pub fn events(&self) -> &[Error] {
        &self.events
    }

    /// Frames per second.
    pub fn rate(&self) -> u32 {
        match &self.kept {
            Kept::Session(recorder) => recorder.rate(),
            Kept::Ended(take) => take.info().rate,
        }
    }

    /// Interleaved channels.
    pub fn channels(&self) -> u16 {
        match &self.kept {
            Kept::Session(recorder) => recorder.channels(),
            Kept::Ended(take) => take.info().channels,
        }
    }

    /// Writes the take to `path` (and `out.001.wav`, … past 4 GiB): the journal moved there
    /// when it holds everything.
    ///
    /// # Errors
    ///
    /// The output cannot be written.
    pub fn save(self, path: &Path) -> Result<Saved> {
        match self.kept {
            Kept::Session(recorder) => recorder.save(path),
            Kept::Ended(take) => (*take).save(path),
        }
    }
}

/// Interleaved `f32` audio of `rate` Hz and `channels` channels as [`MODEL_RATE`] mono: the
/// channels averaged, then the rate converted — by averaging groups of samples when `rate` is
/// a multiple of 16 kHz (48 kHz: groups of 3, a low-pass that keeps speech's band), else by
/// linear interpolation.
pub fn to_model_input(audio: &[f32], rate: u32, channels: u16) -> Vec<f32> {
    let channels = usize::from(channels.max(1));
    let mono: Vec<f32> = audio
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    if rate == MODEL_RATE || rate == 0 {
        return mono;
    }
    if rate.is_multiple_of(MODEL_RATE) {
        let n = (rate / MODEL_RATE) as usize;
        return mono
            .chunks_exact(n)
            .map(|group| group.iter().sum::<f32>() / n as f32)
            .collect();
    }
    let step = f64::from(rate) / f64::from(MODEL_RATE);
    let out_len = (mono.len() as f64 / step) as usize;
    (0..out_len)
        .map(|i| {
            let x = i as f64 * step;
            let j = x as usize;
            let frac = (x - j as f64) as f32;
            let a = mono.get(j).copied().unwrap_or(0.0);
            let b = mono.get(j + 1).copied().unwrap_or(a);
            a + (b - a) * frac
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_input_is_16k_mono() {
        // 48 kHz stereo, left 0.5 and right -0.5 then both 0.25: mono 0.0 then 0.25.
        let mut audio = Vec::new();
        for i in 0..4800 {
            let (l, r) = if i < 2400 { (0.5, -0.5) } else { (0.25, 0.25) };
            audio.extend([l, r]);
        }
        let out = to_model_input(&audio, 48_000, 2);
        assert_eq!(out.len(), 1600);
        assert!(out[..800].iter().all(|&s| s == 0.0));
        assert!(out[800..].iter().all(|&s| s == 0.25));
        // 44.1 kHz mono: interpolated, about 16000/44100 of the length.
        let out = to_model_input(&vec![0.1; 44_100], 44_100, 1);
        assert!((15_990..=16_000).contains(&out.len()), "{}", out.len());
        assert!(out.iter().all(|&s| (s - 0.1).abs() < 1e-6));
        // Already 16 kHz mono: unchanged.
        assert_eq!(to_model_input(&[0.5, -0.5], 16_000, 1), vec![0.5, -0.5]);
    }
}
