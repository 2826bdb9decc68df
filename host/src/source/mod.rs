//! Where samples come from: a cpal device (the `capture` module), a WAV file replayed through the
//! same ring ([`WavReplay`]), or the built-in synthetic voice of `w4l demo` ([`Synthetic`]).
//!
//! Every source pushes interleaved 16-bit samples into the producer half of the core ring. The
//! device source is a real-time callback: when the ring is full it drops and the ring counts an
//! overrun. The file and synthetic sources are not real-time: when the ring is full they wait
//! for the worker, so a replay never loses a sample however slow the consumer is.

pub mod device;
mod status;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use w4l_core::sample::Sample;

use crate::error::{Error, Result};
use crate::ring::AudioProducer;
use crate::wav::{self, WavInfo};

pub use status::SourceStatus;

/// Counters a source may keep beyond what the ring counts (all zero by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceStats {
    /// Device errors reported while capturing (including xruns).
    pub stream_errors: u64,
    /// Of those, xruns the backend recovered from by itself.
    pub xruns: u64,
    /// Streams rebuilt after an error.
    pub restarts: u64,
    /// Frames missed while a stream was down.
    pub gap_frames: u64,
    /// Frames the device captured that never arrived (outages included): see
    /// [`CaptureStats::lost_frames`](crate::source::device::CaptureStats::lost_frames).
    pub lost_frames: u64,
}

/// A producer of interleaved 16-bit samples.
pub trait Source: Send {
    /// What it is, for messages (`"device 'USB Mic'"`, `"take.wav"`).
    fn describe(&self) -> String;
    /// Frames per second.
    fn rate(&self) -> u32;
    /// Interleaved channels.
    fn channels(&self) -> u16;
    /// Starts pushing into `producer`. Synchronous: when it returns `Ok`, the source runs.
    ///
    /// # Errors
    ///
    /// The source could not be started; nothing was pushed.
    fn start(&mut self, producer: AudioProducer, status: Arc<SourceStatus>) -> Result<()>;
    /// Stops pushing at once. When it returns, nothing more will be pushed (a thread is joined,
    /// a stream is stopped), so everything pushed before is in the ring for the worker to drain.
    fn stop(&mut self);
    /// Stops pushing exactly now: a device source first waits (about one device buffer) for
    /// the audio captured up to this call that is still on its way, then stops as
    /// [`stop`](Self::stop). Other sources just stop.
    fn finish(&mut self) {
        self.stop();
    }
    /// Whether the source wakes the consumer ([`SourceStatus::wake_consumer`]) when there is
    /// audio to take (after each push, or once the ring is half full), so that the worker need
    /// not poll the ring (only a source that does not run on a real-time thread can). `false`
    /// by default.
    fn wakes_consumer(&self) -> bool {
        false
    }
    /// The source's own counters (device errors, restarts, gaps); zeros if it keeps none.
    fn stats(&self) -> SourceStats {
        SourceStats::default()
    }
}

/// How long a non-real-time source waits for room in a full ring before it looks again (the
/// worker wakes it sooner when it makes room).
const FULL_RING_WAIT: Duration = Duration::from_millis(5);

/// Pushes all of `samples` (waiting while the ring is full, woken by the worker) unless `stop`
/// is raised; returns whether everything was pushed. Wakes the worker after each push.
fn push_all(
    producer: &mut AudioProducer,
    mut samples: &[i16],
    status: &SourceStatus,
    stop: &AtomicBool,
) -> bool {
    while !samples.is_empty() {
        let n = producer.push_slice_partial(samples);
        samples = &samples[n..];
        if n > 0 {
            status.wake_consumer();
        } else if stop.load(Ordering::Acquire) {
            return false;
        } else {
            std::thread::park_timeout(FULL_RING_WAIT);
        }
    }
    true
}

/// Waits until `frames` frames' worth of real time has passed since `started`, or `stop`.
fn pace(started: Instant, frames: u64, rate: u32, stop: &AtomicBool) {
    let due = started + Duration::from_secs_f64(frames as f64 / f64::from(rate.max(1)));
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now >= due {
            return;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(20)));
    }
}

/// A thread pushing into the ring, with its stop flag.
#[derive(Debug, Default)]
struct Pusher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pusher {
    fn spawn(&mut self, name: &str, body: impl FnOnce(&AtomicBool) + Send + 'static) -> Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        self.stop = stop.clone();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(&stop))
            .map_err(|e| {
                Error::runtime(
                    format!("cannot start the {name} thread ({e})"),
                    "free some system resources and retry",
                )
            })?;
        self.thread = Some(handle);
        Ok(())
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Frames pushed per chunk by the non-real-time sources (fewer past 8 channels, see
/// [`chunk_frames`]).
const CHUNK_FRAMES: usize = 4096;

/// The frames of one chunk for `channels` channels: [`CHUNK_FRAMES`], or fewer so that a chunk
/// never exceeds 8 channels' worth (128 KiB): a WAV header may declare 65 535 channels, which
/// must not size a 1 GiB buffer.
fn chunk_frames(channels: u16) -> usize {
    (CHUNK_FRAMES * 8 / usize::from(channels.max(1))).clamp(1, CHUNK_FRAMES)
}

/// Replays a WAV file through the ring, as fast as the worker takes it (or at the file's real
/// speed with `realtime`), never losing a sample.
#[derive(Debug)]
pub struct WavReplay {
    path: PathBuf,
    info: WavInfo,
    realtime: bool,
    pusher: Pusher,
}

impl WavReplay {
    /// Opens and checks `path` (see [`wav::probe_input`]).
    ///
    /// # Errors
    ///
    /// A usage error naming what is wrong with the file.
    pub fn open(path: &Path, realtime: bool) -> Result<Self> {
        let info = wav::probe_input(path)?;
        if info.frames == 0 {
            return Err(Error::usage(
                format!("--input {} holds no samples", path.display()),
                "pass a WAV file with audio in it",
            ));
        }
        Ok(Self {
            path: path.to_owned(),
            info,
            realtime,
            pusher: Pusher::default(),
        })
    }

    /// The file's format.
    pub fn info(&self) -> WavInfo {
        self.info
    }
}

impl Source for WavReplay {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn rate(&self) -> u32 {
        self.info.rate
    }

    fn channels(&self) -> u16 {
        self.info.channels
    }

    fn start(&mut self, mut producer: AudioProducer, status: Arc<SourceStatus>) -> Result<()> {
        let (reader, info) = wav::open_input(&self.path)?;
        let realtime = self.realtime;
        let shown = self.path.display().to_string();
        self.pusher.spawn("w4l-replay", move |stop| {
            status.set_producer();
            let started = Instant::now();
            let mut chunk = vec![0i16; chunk_frames(info.channels) * usize::from(info.channels)];
            let mut frames = 0u64;
            let mut samples = Samples::new(reader, info);
            loop {
                let n = match samples.fill(&mut chunk) {
                    Ok(0) => {
                        status.finish();
                        return;
                    }
                    Ok(n) => n,
                    Err(e) => {
                        status.fail(Error::runtime(
                            format!("reading {shown} failed mid-way ({e})"),
                            "check that the file is not being changed while it is replayed",
                        ));
                        return;
                    }
                };
                if !push_all(&mut producer, &chunk[..n], &status, stop) {
                    return;
                }
                frames += (n / usize::from(info.channels)) as u64;
                if realtime {
                    pace(started, frames, info.rate, stop);
                }
                if stop.load(Ordering::Acquire) {
                    return;
                }
            }
        })
    }

    fn stop(&mut self) {
        self.pusher.stop();
    }
}

/// The samples of a WAV file as 16-bit integers, whatever their stored format (converted by
/// the core's [`Sample`], correctly rounded).
enum Samples {
    /// 16-bit integers or 32-bit floats in their natural containers (nearly every WAV file):
    /// read in bulk and decoded a slice at a time. `left` samples remain.
    Bulk {
        reader: BufReader<File>,
        left: u64,
        float: bool,
        bytes: Vec<u8>,
    },
    /// Anything else (8-, 24- and 32-bit integers, 24-bit in 4 bytes): hound, sample by sample.
    /// `wav::open_input` refuses what hound cannot decode.
    Hound {
        reader: hound::WavReader<BufReader<File>>,
        info: WavInfo,
    },
}

impl Samples {
    fn new(reader: hound::WavReader<BufReader<File>>, info: WavInfo) -> Self {
        match (info.float, info.bits, info.sample_bytes) {
            (false, 16, 2) | (true, 32, 4) => Samples::Bulk {
                left: u64::from(reader.len()),
                // hound stops its reader at the first sample (any bytes it buffered beyond
                // that stay in the `BufReader`).
                reader: reader.into_inner(),
                float: info.float,
                bytes: Vec::new(),
            },
            _ => Samples::Hound { reader, info },
        }
    }

    /// Fills the start of `out` with the next samples and returns how many: `out.len()`, fewer
    /// only at the end of the file.
    fn fill(&mut self, out: &mut [i16]) -> std::result::Result<usize, hound::Error> {
        match self {
            Samples::Bulk {
                reader,
                left,
                float,
                bytes,
            } => {
                let n = out.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let width = if *float { 4 } else { 2 };
                bytes.resize(n * width, 0);
                reader.read_exact(bytes)?;
                *left -= n as u64;
                if *float {
                    for (s, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                        *s = i16::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                    }
                } else {
                    for (s, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                        *s = i16::from_le_bytes([b[0], b[1]]);
                    }
                }
                Ok(n)
            }
            Samples::Hound { reader, info } => {
                let mut n = 0;
                if info.float {
                    // `out` first in each `zip`: it ends the loop without taking a sample
                    // from the reader that would then be lost.
                    for (s, x) in out.iter_mut().zip(reader.samples::<f32>()) {
                        *s = i16::from_f32(x?);
                        n += 1;
                    }
                } else {
                    match info.bits {
                        8 => {
                            for (s, x) in out.iter_mut().zip(reader.samples::<i8>()) {
                                *s = x?.to_i16();
                                n += 1;
                            }
                        }
                        bits => {
                            // 24- and 32-bit integers, scaled up to the full i32 range.
                            let shift = 32 - u32::from(bits);
                            for (s, x) in out.iter_mut().zip(reader.samples::<i32>()) {
                                *s = (x? << shift).to_i16();
                                n += 1;
                            }
                        }
                    }
                }
                Ok(n)
            }
        }
    }
}

/// The synthetic voice of `w4l demo` as a source: deterministic samples, pushed as fast as the
/// worker takes them (or in real time), for a given number of frames.
#[derive(Debug)]
pub struct Synthetic {
    rate: u32,
    channels: u16,
    seed: u64,
    frames: u64,
    realtime: bool,
    pusher: Pusher,
}

impl Synthetic {
    /// `frames` frames of [`SyntheticVoice`] at `rate` Hz on `channels` channels.
    pub fn new(rate: u32, channels: u16, seed: u64, frames: u64, realtime: bool) -> Self {
        Self {
            rate: rate.max(1),
            channels: channels.max(1),
            seed,
            frames,
            realtime,
            pusher: Pusher::default(),
        }
    }
}

impl Source for Synthetic {
    fn describe(&self) -> String {
        "the built-in synthetic voice".into()
    }

    fn rate(&self) -> u32 {
        self.rate
    }

    fn channels(&self) -> u16 {
        self.channels
    }

    fn start(&mut self, mut producer: AudioProducer, status: Arc<SourceStatus>) -> Result<()> {
        let (rate, channels, total, realtime) =
            (self.rate, self.channels, self.frames, self.realtime);
        let mut voice = SyntheticVoice::new(rate, channels, self.seed);
        self.pusher.spawn("w4l-synthetic", move |stop| {
            status.set_producer();
            let started = Instant::now();
            let frames_per_chunk = chunk_frames(channels);
            let mut chunk = vec![0i16; frames_per_chunk * usize::from(channels)];
            let mut done = 0u64;
            while done < total {
                let frames = (total - done).min(frames_per_chunk as u64) as usize;
                let buf = &mut chunk[..frames * usize::from(channels)];
                voice.fill(buf);
                if !push_all(&mut producer, buf, &status, stop) {
                    return;
                }
                done += frames as u64;
                if realtime {
                    pace(started, done, rate, stop);
                }
                if stop.load(Ordering::Acquire) {
                    return;
                }
            }
            status.finish();
        })
    }

    fn stop(&mut self) {
        self.pusher.stop();
    }
}

/// A deterministic, speech-like test signal: voiced "syllables" (a gliding fundamental with a
/// few harmonics shaped like vowel formants) under raised-cosine envelopes, separated by short
/// gaps, longer gaps between words and long pauses between phrases.
///
/// The same seed always produces the same samples, on every run.
#[derive(Debug, Clone)]
pub struct SyntheticVoice {
    rate: f64,
    channels: usize,
    rng: SplitMix64,
    /// Frames produced so far.
    frame: u64,
    segment: Segment,
    /// Frame at which the current segment ends.
    segment_end: u64,
    /// Frame at which the current segment began.
    segment_start: u64,
    /// Syllables left in the current word, words left in the current phrase.
    syllables_left: u32,
    words_left: u32,
    /// Phase of the fundamental, in cycles.
    phase: f64,
    /// Sample of the current frame already emitted (for outputs that end mid-frame).
    channel: usize,
    current: f32,
}

#[derive(Debug, Clone, Copy)]
enum Segment {
    Silence,
    Syllable {
        f0_start: f64,
        f0_end: f64,
        amplitude: f64,
        /// Harmonic weights (harmonics 1..=8) for this syllable's vowel.
        vowel: usize,
    },
}

/// Relative weights of harmonics 1..=8 for a few vowel-like spectra.
const VOWELS: [[f64; 8]; 4] = [
    [1.0, 0.8, 0.6, 0.3, 0.15, 0.1, 0.05, 0.03],  // "ah"
    [1.0, 0.3, 0.1, 0.05, 0.3, 0.4, 0.2, 0.1],    // "ee"
    [1.0, 0.9, 0.2, 0.05, 0.02, 0.02, 0.01, 0.0], // "oo"
    [1.0, 0.6, 0.5, 0.4, 0.2, 0.1, 0.1, 0.05],    // "eh"
];
/// Sum of each vowel's weights, to normalise the peak below the syllable's amplitude.
fn vowel_norm(v: usize) -> f64 {
    VOWELS[v].iter().sum()
}

impl SyntheticVoice {
    /// A voice at `rate` Hz on `channels` channels (the same signal on every channel).
    pub fn new(rate: u32, channels: u16, seed: u64) -> Self {
        let mut v = Self {
            rate: f64::from(rate.max(1)),
            channels: usize::from(channels.max(1)),
            rng: SplitMix64(seed),
            frame: 0,
            segment: Segment::Silence,
            segment_end: 0,
            segment_start: 0,
            syllables_left: 0,
            words_left: 0,
            phase: 0.0,
            channel: 0,
            current: 0.0,
        };
        // Start with a short lead-in of silence, like a speaker drawing breath.
        v.segment_end = v.frames_for(0.25);
        v
    }

    /// Frames produced so far.
    pub fn frames(&self) -> u64 {
        self.frame
    }

    /// Whether the voice is currently in a pause (the current frame is silent).
    pub fn in_pause(&self) -> bool {
        matches!(self.segment, Segment::Silence)
    }

    fn frames_for(&self, seconds: f64) -> u64 {
        (seconds * self.rate).round().max(1.0) as u64
    }

    fn next_segment(&mut self) {
        self.segment_start = self.frame;
        let (segment, seconds) = match self.segment {
            Segment::Syllable { .. } => {
                // After a syllable: a gap, whose length tells syllable / word / phrase apart.
                let seconds = if self.syllables_left > 0 {
                    self.rng.range(0.03, 0.08)
                } else if self.words_left > 0 {
                    self.rng.range(0.12, 0.3)
                } else {
                    self.rng.range(0.6, 1.2)
                };
                (Segment::Silence, seconds)
            }
            Segment::Silence => {
                if self.syllables_left == 0 {
                    if self.words_left == 0 {
                        self.words_left = 3 + self.rng.below(4) as u32;
                    }
                    self.words_left -= 1;
                    self.syllables_left = 1 + self.rng.below(3) as u32;
                }
                self.syllables_left -= 1;
                let f0 = self.rng.range(110.0, 220.0);
                let glide = self.rng.range(-0.15, 0.1);
                (
                    Segment::Syllable {
                        f0_start: f0,
                        f0_end: f0 * (1.0 + glide),
                        amplitude: self.rng.range(0.25, 0.7),
                        vowel: self.rng.below(VOWELS.len() as u64) as usize,
                    },
                    self.rng.range(0.12, 0.3),
                )
            }
        };
        self.segment = segment;
        self.segment_end = self.frame + self.frames_for(seconds);
    }

    fn next_frame_value(&mut self) -> f32 {
        while self.frame >= self.segment_end {
            self.next_segment();
        }
        let value = match self.segment {
            Segment::Silence => {
                self.phase = 0.0;
                0.0
            }
            Segment::Syllable {
                f0_start,
                f0_end,
                amplitude,
                vowel,
            } => {
                let len = (self.segment_end - self.segment_start) as f64;
                let x = (self.frame - self.segment_start) as f64 / len;
                let f0 = f0_start + (f0_end - f0_start) * x;
                self.phase = (self.phase + f0 / self.rate).fract();
                let envelope = {
                    let s = (std::f64::consts::PI * x).sin();
                    s * s
                };
                let tau = std::f64::consts::TAU;
                let mut sum = 0.0;
                for (k, w) in VOWELS[vowel].iter().enumerate() {
                    sum += w * (tau * self.phase * (k + 1) as f64).sin();
                }
                amplitude * envelope * sum / vowel_norm(vowel)
            }
        };
        self.frame += 1;
        value as f32
    }

    /// Fills `out` with the next interleaved samples (`f32`, or converted to any other
    /// [`Sample`] format).
    pub fn fill<S: Sample>(&mut self, out: &mut [S]) {
        for s in out {
            if self.channel == 0 {
                self.current = self.next_frame_value();
            }
            *s = S::from_f32(self.current);
            self.channel = (self.channel + 1) % self.channels;
        }
    }
}

/// A tiny deterministic PRNG (SplitMix64): the demo must print the same timeline every run.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_voice_is_deterministic_and_speech_like() {
        let mut a = SyntheticVoice::new(16_000, 1, 7);
        let mut b = SyntheticVoice::new(16_000, 1, 7);
        let mut xa = vec![0.0; 16_000 * 10];
        let mut xb = vec![0.0; 16_000 * 10];
        a.fill(&mut xa);
        // Different chunking, same samples.
        for chunk in xb.chunks_mut(333) {
            b.fill(chunk);
        }
        assert_eq!(xa, xb);
        let peak = xa.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(peak > 0.2 && peak <= 0.7, "peak {peak}");
        // Both voiced and silent stretches of at least 100 ms.
        let silent = xa
            .chunks(1600)
            .filter(|c| c.iter().all(|x| *x == 0.0))
            .count();
        let voiced = xa
            .chunks(1600)
            .filter(|c| c.iter().any(|x| x.abs() > 0.05))
            .count();
        assert!(
            silent >= 5 && voiced >= 30,
            "silent {silent} voiced {voiced}"
        );
    }

    #[test]
    fn synthetic_voice_duplicates_channels() {
        let mut v = SyntheticVoice::new(8_000, 2, 1);
        let mut x = vec![0.0; 8_000 * 2];
        v.fill(&mut x[..3]);
        v.fill(&mut x[3..]);
        for f in x.chunks(2) {
            assert_eq!(f[0], f[1]);
        }
        assert_eq!(v.frames(), 8_000);
    }
}
