//! [`Capture`]: the stream, its supervision and its rebuilds.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, StreamTrait};

use super::backend::{
    config_ranges, cpal_message, default_device, find_device, find_device_by_id, kind_name,
    negotiate, open_host,
};
use super::callback::{BREAKING_KINDS, Feed, Shared, SinkSlot, build_typed};
use super::{
    CaptureError, CaptureRequest, CaptureStats, RetryPolicy, SampleFormat, SampleSink, StreamFormat,
};

/// The supervisor's period while a stream is starting or being rebuilt (see
/// [`Capture::poll_interval`]).
pub const SUPERVISOR_PERIOD: Duration = Duration::from_millis(100);

/// The supervisor's longest period while a stream delivers: errors wake it, so this only bounds
/// how late a silent stall is noticed (up to two periods after [`RetryPolicy::stall_timeout`]).
/// At 100 ms its wake-ups were a tenth of `w4l record`'s CPU.
pub const SUPERVISOR_IDLE_PERIOD: Duration = Duration::from_secs(1);

/// How long building a stream may take (a hung server must not hang the supervisor forever).
const BUILD_TIMEOUT: Duration = Duration::from_secs(3);

/// How long an attempt (host, device lookup, building and starting the stream) may take in all.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the stream (with the requested buffer size, else the device's default one) and plays it.
fn open_stream(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    format: SampleFormat,
    make_feed: impl Fn() -> Feed,
) -> Result<cpal::Stream, cpal::Error> {
    let build = |config: cpal::StreamConfig| {
        let (feed, t) = (make_feed(), BUILD_TIMEOUT);
        match format {
            SampleFormat::F32 => build_typed::<f32>(device, config, feed, t),
            SampleFormat::I16 => build_typed::<i16>(device, config, feed, t),
            SampleFormat::I32 => build_typed::<i32>(device, config, feed, t),
            SampleFormat::U16 => build_typed::<u16>(device, config, feed, t),
            SampleFormat::U8 => build_typed::<u8>(device, config, feed, t),
            SampleFormat::I8 => build_typed::<i8>(device, config, feed, t),
        }
    };
    let stream = match build(config) {
        // A device that refuses the fixed buffer size gets its default one.
        Err(e) if e.kind() == cpal::ErrorKind::UnsupportedConfig => build(cpal::StreamConfig {
            buffer_size: cpal::BufferSize::Default,
            ..config
        })?,
        other => other?,
    };
    stream.play()?;
    Ok(stream)
}

/// What the helper thread of [`Capture::spawn_open`] hands back.
struct Opened {
    stream: cpal::Stream,
    device: cpal::Device,
}

/// A stream being opened on a helper thread.
struct Opening {
    rx: Receiver<Result<Opened, CaptureError>>,
    /// When the attempt counts as failed.
    deadline: Instant,
}

#[derive(Debug)]
enum State {
    /// Opened, not started.
    Idle,
    /// A stream runs.
    Running {
        /// Whether the stream has delivered anything since it was (re)built.
        flowing: bool,
        /// Failed attempts of the outage this stream was built in. Cleared once it delivers: a
        /// stream that opens but never delivers is one more failed attempt, not a recovery.
        attempt: u32,
    },
    /// The stream broke; rebuilding.
    Recovering {
        attempt: u32,
        next_try: Instant,
        reason: String,
    },
    /// Gave up.
    Failed,
    /// Stopped.
    Stopped,
}

/// The supervisor's clock of the take, for [`CaptureStats::gap_frames`].
#[derive(Debug)]
struct Clock {
    /// When the first stream started.
    start: Instant,
    /// Frames behind the wall clock at the last poll that saw data flowing.
    deficit: i64,
    /// `samples` and time at the last progress seen, for stall detection.
    last_samples: u64,
    last_progress: Instant,
}

/// An audio input: opened by [`Capture::open`], running between [`Capture::start`] and
/// [`Capture::stop`], kept alive by [`Capture::poll`].
pub struct Capture {
    format: StreamFormat,
    device: cpal::Device,
    retry: RetryPolicy,
    pub(super) shared: Arc<Shared>,
    slot: Arc<SinkSlot>,
    stream: Option<cpal::Stream>,
    /// The stream being opened on the helper thread, while recovering.
    opening: Option<Opening>,
    /// The last helper thread (possibly still blocked in the backend after a timeout).
    helper: Option<JoinHandle<()>>,
    state: State,
    generation: u64,
    /// Whether a stream was rebuilt since the last [`start`](Self::start): only then does the
    /// first data of a stream close an outage (the first stream's start-up is no gap).
    rebuilt: bool,
    clock: Option<Clock>,
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("format", &self.format)
            .field("state", &self.state)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Opens the device and negotiates the format; nothing runs until [`start`](Self::start).
    ///
    /// # Errors
    ///
    /// Unknown backend or device, ambiguous device name (the message lists the candidates), a
    /// rate or channel count the device cannot do (the message lists what it can), or a backend
    /// failure.
    pub fn open(request: &CaptureRequest) -> Result<Capture, CaptureError> {
        // `Auto` settles on one host first (PulseAudio when a server answers): a name is looked
        // up there only, so that a typo does not probe every ALSA plugin (which prints to stderr).
        let host = open_host(request.backend)?;
        let named = match &request.device {
            None => default_device(&host)?,
            Some(wanted) => find_device(&host, wanted)?,
        };
        let (ranges, _) = config_ranges(&named.device).map_err(|e| CaptureError::Stream {
            device: named.label(),
            reason: cpal_message(&e),
        })?;
        let default = named.device.default_input_config().ok();
        let (rate, channels, sample_format) = negotiate(
            &ranges,
            request.rate,
            request.channels,
            default.as_ref().map(|c| c.sample_rate()),
            default.as_ref().map(|c| c.channels()),
            default
                .as_ref()
                .and_then(|c| SampleFormat::from_cpal(c.sample_format())),
        )
        .map_err(|(wanted, supported)| CaptureError::Unsupported {
            device: named.label(),
            wanted,
            supported,
        })?;
        let buffer_frames = request
            .buffer_frames
            .filter(|&b| b > 0)
            .unwrap_or((rate / 5).max(1));
        Ok(Capture {
            format: StreamFormat {
                rate,
                channels,
                device_name: named.name,
                device_id: named.id,
                sample_format,
                backend: host.backend,
                buffer_frames,
            },
            device: named.device,
            retry: request.retry,
            shared: Arc::new(Shared::default()),
            slot: Arc::new(SinkSlot::new()),
            stream: None,
            opening: None,
            helper: None,
            state: State::Idle,
            generation: 0,
            rebuilt: false,
            clock: None,
        })
    }

    /// The negotiated format.
    pub fn format(&self) -> &StreamFormat {
        &self.format
    }

    /// Starts capturing into `sink`. When it returns `Ok`, the stream runs.
    ///
    /// # Errors
    ///
    /// [`CaptureError::AlreadyStarted`], or the stream could not be built or started.
    pub fn start<S: SampleSink>(&mut self, sink: S) -> Result<(), CaptureError> {
        if matches!(self.state, State::Running { .. } | State::Recovering { .. }) {
            return Err(CaptureError::AlreadyStarted);
        }
        self.slot.replace(Some(Box::new(sink)));
        self.rebuilt = false;
        let opened = self
            .spawn_open(false)
            .and_then(|opening| self.opened(opening.rx.recv_timeout(OPEN_TIMEOUT)));
        match opened {
            Ok(stream) => {
                self.stream = Some(stream);
                self.state = State::Running {
                    flowing: false,
                    attempt: 0,
                };
                let now = Instant::now();
                let samples = self.shared.samples.load(Ordering::Relaxed);
                self.clock = Some(Clock {
                    start: now,
                    deficit: 0,
                    last_samples: samples,
                    last_progress: now,
                });
                Ok(())
            }
            Err(e) => {
                self.slot.replace(None);
                self.state = State::Idle;
                Err(e)
            }
        }
    }

    /// Starts opening a stream of the negotiated format, as a new generation, on a helper
    /// thread: with `fresh_host`, the whole rebuild (a fresh host, as a PulseAudio client must
    /// reconnect; the device looked up again; the stream built and played), else the stream on
    /// the device already known. Nothing of it runs on the caller's thread, which waits for the
    /// result at most [`OPEN_TIMEOUT`] (`start`) or not at all (`poll`): a hung server cannot
    /// hang the supervisor, hence neither [`stop`](Self::stop). A stream that comes up after
    /// the caller gave up is dropped by the helper; its callbacks, of a stale generation, push
    /// nothing.
    ///
    /// At most one helper lives at a time: while the previous one is still blocked in the
    /// backend, this attempt fails at once instead of starting another.
    fn spawn_open(&mut self, fresh_host: bool) -> Result<Opening, CaptureError> {
        if self.helper.as_ref().is_some_and(|h| !h.is_finished()) {
            return Err(CaptureError::Stream {
                device: self.label(),
                reason: "the previous attempt is still blocked in the audio backend".into(),
            });
        }
        if let Some(finished) = self.helper.take() {
            // Already over (a panic in it was reported when its channel closed).
            let _ = finished.join();
        }
        self.generation += 1;
        let generation = self.generation;
        self.shared.generation.store(generation, Ordering::Release);
        let shared = self.shared.clone();
        let slot = self.slot.clone();
        let make_feed = move || Feed::new(shared.clone(), slot.clone(), generation);
        let config = cpal::StreamConfig {
            channels: self.format.channels,
            sample_rate: self.format.rate,
            buffer_size: cpal::BufferSize::Fixed(self.format.buffer_frames),
        };
        let format = self.format.sample_format;
        let (backend, id, name, label) = (
            self.format.backend,
            self.format.device_id.clone(),
            self.format.device_name.clone(),
            self.label(),
        );
        let known = self.device.clone();
        let open = move || -> Result<Opened, CaptureError> {
            let device = if fresh_host {
                let host = open_host(backend)?;
                find_device_by_id(&host, &id, &name)?.device
            } else {
                known
            };
            let stream = open_stream(&device, config, format, make_feed).map_err(|e| {
                CaptureError::Stream {
                    device: label,
                    reason: cpal_message(&e),
                }
            })?;
            Ok(Opened { stream, device })
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("w4l-capture-open".into())
            .spawn(move || {
                // If the caller gave up, the send fails and the stream is dropped here.
                let _ = tx.send(open());
            });
        match spawned {
            Ok(handle) => {
                self.helper = Some(handle);
                Ok(Opening {
                    rx,
                    deadline: Instant::now() + OPEN_TIMEOUT,
                })
            }
            Err(e) => {
                self.shared.generation.store(0, Ordering::Release);
                Err(CaptureError::Thread {
                    reason: e.to_string(),
                })
            }
        }
    }

    /// What became of a [`spawn_open`](Self::spawn_open): the stream, or why there is none
    /// (then whatever the helper still brings up must not push).
    fn opened(
        &mut self,
        received: Result<Result<Opened, CaptureError>, RecvTimeoutError>,
    ) -> Result<cpal::Stream, CaptureError> {
        let error = match received {
            Ok(Ok(Opened { stream, device })) => {
                self.device = device;
                return Ok(stream);
            }
            Ok(Err(e)) => e,
            Err(RecvTimeoutError::Timeout) => CaptureError::Stream {
                device: self.label(),
                reason: format!(
                    "the stream did not start within {} s",
                    OPEN_TIMEOUT.as_secs()
                ),
            },
            Err(RecvTimeoutError::Disconnected) => CaptureError::Stream {
                device: self.label(),
                reason: "the thread opening the stream panicked".into(),
            },
        };
        self.shared.generation.store(0, Ordering::Release);
        Err(error)
    }

    fn label(&self) -> String {
        if self.format.device_name == self.format.device_id {
            self.format.device_name.clone()
        } else {
            format!("{} ({})", self.format.device_name, self.format.device_id)
        }
    }

    /// Whether a stream is running (not idle, recovering, failed or stopped).
    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// How long the supervisor may wait before its next [`poll`](Self::poll): while the stream
    /// delivers, half the stall timeout (at most [`SUPERVISOR_IDLE_PERIOD`], at least
    /// [`SUPERVISOR_PERIOD`]): an error that breaks the stream wakes the thread given to
    /// [`wake_on_error`](Self::wake_on_error) at once, so only a silent stall waits for it.
    /// Otherwise (starting, recovering) [`SUPERVISOR_PERIOD`], for prompt rebuilds.
    pub fn poll_interval(&self) -> Duration {
        match self.state {
            State::Running { flowing: true, .. } => (stall_timeout(&self.retry, &self.format) / 2)
                .clamp(SUPERVISOR_PERIOD, SUPERVISOR_IDLE_PERIOD),
            _ => SUPERVISOR_PERIOD,
        }
    }

    /// Has an error that breaks a stream unpark `thread` (the one that calls
    /// [`poll`](Self::poll)), or no thread with `None`.
    pub fn wake_on_error(&self, thread: Option<std::thread::Thread>) {
        *self
            .shared
            .waker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = thread;
    }

    /// One supervisor step; call it from the thread that owns the capture after
    /// [`poll_interval`](Self::poll_interval) (or every 50–200 ms) and whenever woken.
    /// Detects a broken or stalled stream, and rebuilds it when its back-off delay has passed:
    /// a rebuild runs on a helper thread and takes effect at a later step, so `poll` never
    /// waits for the audio backend. Returns whether a stream is running after the step.
    ///
    /// # Errors
    ///
    /// [`CaptureError::StreamLost`] once every retry failed (and on every call after that).
    pub fn poll(&mut self) -> Result<bool, CaptureError> {
        let now = Instant::now();
        match &mut self.state {
            State::Idle | State::Stopped => return Ok(false),
            State::Failed => {
                return Err(CaptureError::StreamLost {
                    device: self.label(),
                    attempts: self.retry.attempts,
                    reason: "gave up earlier".into(),
                });
            }
            State::Running { flowing, attempt } => {
                let samples = self.shared.samples.load(Ordering::Relaxed);
                let broken = self.shared.broken.load(Ordering::Acquire) == self.generation;
                if let Some(clock) = self.clock.as_mut() {
                    if samples != clock.last_samples {
                        clock.last_samples = samples;
                        clock.last_progress = now;
                        let deficit = deficit(
                            clock.start,
                            now,
                            self.format.rate,
                            samples,
                            self.format.channels,
                        );
                        if !*flowing {
                            // The first data after a rebuild closes the outage.
                            *flowing = true;
                            *attempt = 0;
                            if self.rebuilt {
                                let gap = (deficit - clock.deficit).max(0) as u64;
                                self.shared.gap_frames.fetch_add(gap, Ordering::Relaxed);
                            }
                        }
                        clock.deficit = deficit;
                    }
                    let stalled = now.duration_since(clock.last_progress)
                        > stall_timeout(&self.retry, &self.format);
                    if broken || stalled {
                        // A stream that never delivered was one more failed attempt.
                        let failed = if *flowing { 0 } else { *attempt + 1 };
                        let reason = if broken {
                            self.last_error()
                        } else {
                            format!(
                                "no audio for {:.1} s",
                                now.duration_since(clock.last_progress).as_secs_f64()
                            )
                        };
                        self.break_stream(reason, now, failed)?;
                    }
                }
            }
            State::Recovering { .. } => {}
        }
        if let State::Recovering {
            attempt,
            next_try,
            reason,
        } = &self.state
        {
            let (attempt, reason) = (*attempt, reason.clone());
            let received = match &self.opening {
                None if now < *next_try => return Ok(false),
                None => match self.spawn_open(true) {
                    Ok(opening) => {
                        self.opening = Some(opening);
                        return Ok(false);
                    }
                    Err(e) => Ok(Err(e)),
                },
                Some(opening) => match opening.rx.try_recv() {
                    Ok(result) => Ok(result),
                    Err(TryRecvError::Empty) if now < opening.deadline => return Ok(false),
                    Err(TryRecvError::Empty) => Err(RecvTimeoutError::Timeout),
                    Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
                },
            };
            self.opening = None;
            match self.opened(received) {
                Ok(stream) => {
                    self.stream = Some(stream);
                    self.shared.restarts.fetch_add(1, Ordering::Relaxed);
                    self.rebuilt = true;
                    self.state = State::Running {
                        flowing: false,
                        attempt,
                    };
                    if let Some(clock) = self.clock.as_mut() {
                        clock.last_progress = Instant::now();
                    }
                }
                Err(e) => {
                    self.schedule_retry(attempt + 1, reason, Some(&e), Instant::now())?;
                    return Ok(false);
                }
            }
        }
        Ok(self.is_running())
    }

    fn last_error(&self) -> String {
        let code = self.shared.last_kind.load(Ordering::Relaxed);
        match code
            .checked_sub(1)
            .and_then(|i| BREAKING_KINDS.get(i as usize))
        {
            Some(&kind) => kind_name(kind).into(),
            None => "stream error".into(),
        }
    }

    /// Drops the broken stream and schedules the next rebuild attempt: now if the stream had
    /// delivered (`failed == 0`, a new outage), else after the back-off of `failed` attempts.
    fn break_stream(
        &mut self,
        reason: String,
        now: Instant,
        failed: u32,
    ) -> Result<(), CaptureError> {
        // Callbacks of the old stream no longer push.
        self.shared.generation.store(0, Ordering::Release);
        // Dropped without `pause`: a round trip to a server that may be gone. Dropping deletes
        // the stream (PulseAudio) or joins its worker (ALSA), so it is bounded.
        drop_bounded(self.stream.take());
        self.schedule_retry(failed, reason, None, now)
    }

    /// After `failed` failed attempts of an outage: the next attempt, after its back-off delay
    /// (none for the first), or [`CaptureError::StreamLost`] once the policy's attempts are spent.
    fn schedule_retry(
        &mut self,
        failed: u32,
        reason: String,
        last: Option<&CaptureError>,
        now: Instant,
    ) -> Result<(), CaptureError> {
        if failed >= self.retry.attempts.max(1) {
            self.state = State::Failed;
            return Err(CaptureError::StreamLost {
                device: self.label(),
                attempts: failed,
                reason: match last {
                    Some(e) => format!("{reason}; then: {}", e.what()),
                    None => reason,
                },
            });
        }
        let delay = match failed {
            0 => Duration::ZERO,
            n => self
                .retry
                .first_delay
                .saturating_mul(1 << (n - 1).min(16))
                .min(self.retry.max_delay),
        };
        self.state = State::Recovering {
            attempt: failed,
            next_try: now + delay,
            reason,
        };
        Ok(())
    }

    /// The counters so far.
    pub fn stats(&self) -> CaptureStats {
        self.shared.stats(self.format.channels)
    }

    /// Stops the stream. When it returns, no callback can push anything more into the sink, so
    /// the consumer can drain everything pushed before. Idempotent. Returns the final counters.
    pub fn stop(&mut self) -> CaptureStats {
        self.shared.generation.store(0, Ordering::Release);
        // A stream still being opened is dropped by its helper thread (not waited for).
        self.opening = None;
        drop_bounded(self.stream.take());
        // Waits for a callback still inside the sink, then takes the sink away for good.
        drop(self.slot.replace(None));
        if !matches!(self.state, State::Idle) {
            self.state = State::Stopped;
        }
        self.stats()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long [`drop_bounded`] waits for a stream to go.
const STREAM_DROP_WAIT: Duration = Duration::from_secs(2);

/// Drops a stream without hanging on it. cpal's ALSA stream joins its worker thread on drop,
/// and with ALSA's `pulse` plugin a PulseAudio server that restarted can block that thread for
/// ever (in libpulse's mainloop), which hung the supervisor and with it Ctrl-C. The drop runs on
/// its own thread; after [`STREAM_DROP_WAIT`] the stream is left to go (or not) on its own.
/// Callbacks no longer reach the sink by then: the generation and the sink slot see to that.
fn drop_bounded(stream: Option<cpal::Stream>) {
    let Some(stream) = stream else { return };
    let (done, gone) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("w4l-stream-drop".into())
        .spawn(move || {
            drop(stream);
            let _ = done.send(());
        });
    // If the thread cannot be spawned, the closure (and the stream) was dropped right here.
    if spawned.is_ok() && gone.recv_timeout(STREAM_DROP_WAIT).is_err() {
        tracing::warn!("an audio stream did not close within {STREAM_DROP_WAIT:?}; abandoned");
    }
}

/// How long a running stream may deliver nothing before it counts as broken: the policy's
/// [`RetryPolicy::stall_timeout`], but at least three device buffers (a stream delivers one
/// buffer at a time, so a long buffer is not a stall).
fn stall_timeout(retry: &RetryPolicy, format: &StreamFormat) -> Duration {
    let buffer =
        Duration::from_secs_f64(f64::from(format.buffer_frames) / f64::from(format.rate.max(1)));
    retry.stall_timeout.max(buffer.saturating_mul(3))
}

/// Frames the stream is behind the wall clock.
fn deficit(start: Instant, now: Instant, rate: u32, samples: u64, channels: u16) -> i64 {
    let expected = now.duration_since(start).as_secs_f64() * f64::from(rate);
    let delivered = samples / u64::from(channels.max(1));
    expected as i64 - delivered as i64
}

#[cfg(test)]
mod tests {
    use super::super::Backend;
    use super::*;

    #[test]
    fn stall_timeout_covers_three_buffers() {
        let mut format = StreamFormat {
            rate: 48_000,
            channels: 2,
            device_name: "d".into(),
            device_id: "d".into(),
            sample_format: SampleFormat::F32,
            backend: Backend::PulseAudio,
            buffer_frames: 4800,
        };
        let retry = RetryPolicy::default();
        assert_eq!(stall_timeout(&retry, &format), retry.stall_timeout);
        // 1 s buffers: a stream may stay quiet for a whole buffer and then some.
        format.buffer_frames = 48_000;
        assert_eq!(stall_timeout(&retry, &format), Duration::from_secs(3));
    }
}
