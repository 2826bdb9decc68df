//! [`CaptureSource`]: a [`Capture`] as a recorder [`Source`](crate::source::Source).

use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use super::callback::Shared;
use super::{
    Backend, Capture, CaptureError, CaptureRequest, CaptureStats, SampleSink, StreamFormat,
};
use crate::ring::AudioProducer;
use crate::source::{Source, SourceStats, SourceStatus};

/// How the supervisor thread is told to stop.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// At once ([`Capture::stop`]).
    Now,
    /// Exactly at that instant ([`Capture::finish`]).
    At(Instant),
}

/// A [`Capture`] as a recorder [`Source`]: a small thread runs [`Capture::poll`] at the
/// capture's [`poll_interval`](Capture::poll_interval) (once a second while a stream runs;
/// errors wake it at once) and reports a lost stream through the [`SourceStatus`].
#[derive(Debug)]
pub struct CaptureSource {
    format: StreamFormat,
    capture: Option<Capture>,
    stop: Arc<OnceLock<Stop>>,
    thread: Option<JoinHandle<(Capture, CaptureStats)>>,
    /// The capture's counters, readable while the supervisor thread owns the capture.
    shared: Arc<Shared>,
}

impl CaptureSource {
    /// Wraps an opened (not started) capture.
    pub fn new(capture: Capture) -> Self {
        Self {
            format: capture.format().clone(),
            shared: capture.shared.clone(),
            capture: Some(capture),
            stop: Arc::new(OnceLock::new()),
            thread: None,
        }
    }

    /// Opens a capture and wraps it.
    ///
    /// # Errors
    ///
    /// As [`Capture::open`].
    pub fn open(request: &CaptureRequest) -> Result<Self, CaptureError> {
        Capture::open(request).map(Self::new)
    }

    /// The negotiated format.
    pub fn format(&self) -> &StreamFormat {
        &self.format
    }

    /// The counters (live while running; final after `stop`).
    pub fn stats(&self) -> CaptureStats {
        self.shared.stats(self.format.channels)
    }

    /// Starts the capture and its supervisor thread.
    ///
    /// # Errors
    ///
    /// As [`Capture::start`]; [`CaptureError::Thread`] if the thread cannot be spawned.
    pub fn start_sink<S: SampleSink>(
        &mut self,
        sink: S,
        status: Option<Arc<SourceStatus>>,
    ) -> Result<(), CaptureError> {
        let Some(mut capture) = self.capture.take() else {
            return Err(CaptureError::AlreadyStarted);
        };
        if let Err(e) = capture.start(sink) {
            self.capture = Some(capture);
            return Err(e);
        }
        let stop = Arc::new(OnceLock::new());
        self.stop = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("w4l-capture".into())
            .spawn(move || {
                capture.wake_on_error(Some(std::thread::current()));
                let mut period = capture.poll_interval();
                let mut lost = 0;
                while stop.get().is_none() {
                    std::thread::park_timeout(period);
                    if stop.get().is_some() {
                        break;
                    }
                    if let Err(e) = capture.poll() {
                        if let Some(status) = &status {
                            status.fail(e.into());
                        }
                        break;
                    }
                    let now_lost = capture.stats().lost_frames;
                    if now_lost > lost {
                        lost = now_lost;
                        if let Some(status) = &status {
                            status.note_loss();
                        }
                    }
                    period = capture.poll_interval();
                }
                capture.wake_on_error(None);
                let last = match stop.get() {
                    Some(Stop::At(at)) => capture.finish(*at),
                    _ => capture.stop(),
                };
                (capture, last)
            });
        match spawned {
            Ok(handle) => {
                self.thread = Some(handle);
                Ok(())
            }
            Err(e) => Err(CaptureError::Thread {
                reason: e.to_string(),
            }),
        }
    }

    /// Stops the capture at once (joins the supervisor). Returns the final counters.
    pub fn stop_capture(&mut self) -> CaptureStats {
        self.end(Stop::Now)
    }

    /// Stops the capture exactly now ([`Capture::finish`]: every frame captured up to this call,
    /// waiting about one device buffer for the last of them). Returns the final counters.
    pub fn finish_capture(&mut self) -> CaptureStats {
        self.end(Stop::At(Instant::now()))
    }

    fn end(&mut self, how: Stop) -> CaptureStats {
        // The first request wins (a later one finds the thread gone).
        let _ = self.stop.set(how);
        if let Some(handle) = self.thread.take() {
            handle.thread().unpark();
            if let Ok((capture, stats)) = handle.join() {
                self.capture = Some(capture);
                return stats;
            }
        }
        match self.capture.as_mut() {
            Some(c) => c.stop(),
            // The supervisor panicked: the capture is gone with it (dropped, hence stopped).
            None => self.stats(),
        }
    }
}

impl Drop for CaptureSource {
    fn drop(&mut self) {
        self.stop_capture();
    }
}

/// The ring's producer, and a wake-up of the recorder's worker once the ring is half full
/// ([`SampleSink::flush`]): for the PulseAudio backend, whose fragments arrive on a thread of
/// w4l's own, so the worker sleeps until there is audio to take instead of polling the ring.
///
/// Half full, not at every fragment: each wake-up costs about 50 µs on this VM, and waking
/// the worker at every 200 ms fragment (or every piece, when the server splits fragments)
/// was a fifth of `w4l record`'s CPU. With the default 500 ms ring the worker takes audio
/// every 250–340 ms (the ring is a power of two of samples), and the recorder's `latest` lags
/// by up to that; a shorter ring (`RecorderConfig::ring`) buys fresher audio with more
/// wake-ups. A stop wakes the worker at once, so no take waits for it.
struct WakingProducer {
    producer: AudioProducer,
    status: Arc<SourceStatus>,
}

impl SampleSink for WakingProducer {
    fn push(&mut self, samples: &[i16]) -> usize {
        self.producer.push_slice(samples)
    }

    fn room(&mut self) -> usize {
        self.producer.free()
    }

    fn flush(&mut self) {
        if self.producer.free() <= self.producer.capacity() / 2 {
            // At least half the ring waits.
            self.status.wake_consumer();
        }
    }
}

impl Source for CaptureSource {
    fn describe(&self) -> String {
        format!("device '{}'", self.format.device_name)
    }

    fn rate(&self) -> u32 {
        self.format.rate
    }

    fn channels(&self) -> u16 {
        self.format.channels
    }

    fn start(
        &mut self,
        producer: AudioProducer,
        status: Arc<SourceStatus>,
    ) -> crate::error::Result<()> {
        if self.wakes_consumer() {
            let sink = WakingProducer {
                producer,
                status: status.clone(),
            };
            self.start_sink(sink, Some(status)).map_err(Into::into)
        } else {
            self.start_sink(producer, Some(status)).map_err(Into::into)
        }
    }

    fn wakes_consumer(&self) -> bool {
        self.format.backend == Backend::PulseAudio
    }

    fn stop(&mut self) {
        self.stop_capture();
    }

    fn finish(&mut self) {
        self.finish_capture();
    }

    fn stats(&self) -> SourceStats {
        let s = CaptureSource::stats(self);
        SourceStats {
            stream_errors: s.stream_errors,
            xruns: s.xruns,
            restarts: s.restarts,
            gap_frames: s.gap_frames,
            lost_frames: s.lost_frames,
        }
    }
}
