//! [`Capture`]: the stream, its supervision and its rebuilds.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::backend::{
    Device, InputStream, NamedDevice, StreamParams, default_device, find_device, find_device_by_id,
    open_host, open_stream,
};
use super::callback::{Feed, Shared, SinkSlot};
use super::clock::{Reading, StreamClock};
use super::negotiate::negotiate;
use super::pulse::Session;
use super::{
    CaptureError, CaptureRequest, CaptureStats, RetryPolicy, SampleSink, StreamFormat, alsa,
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

/// A supervisor step this much later than its period means the process was suspended.
const SUSPENDED_AFTER: Duration = Duration::from_secs(1);

/// How long [`Capture::finish`] waits beyond one device buffer for the last audio.
const FINISH_SLACK: Duration = Duration::from_millis(150);

/// What the helper thread of [`Capture::spawn_open`] hands back.
struct Opened {
    stream: InputStream,
    device: NamedDevice,
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

/// What the supervisor knows of the stream's progress.
#[derive(Debug)]
struct Progress {
    /// `samples` and time at the last progress seen, for stall detection.
    last_samples: u64,
    last_progress: Instant,
    /// When the supervisor last looked: a look much later than its period means the process was
    /// suspended (SIGSTOP, Ctrl-Z), which is not the stream's fault.
    last_poll: Instant,
    /// The loss detector (see [`StreamClock`]).
    clock: StreamClock,
}

/// An audio input: opened by [`Capture::open`], running between [`Capture::start`] and
/// [`Capture::stop`] (or [`Capture::finish`]), kept alive by [`Capture::poll`].
pub struct Capture {
    format: StreamFormat,
    device: NamedDevice,
    /// The PulseAudio connection that listed the device, kept for the first stream.
    session: Option<Session>,
    retry: RetryPolicy,
    pub(super) shared: Arc<Shared>,
    slot: Arc<SinkSlot>,
    stream: Option<InputStream>,
    /// The stream being opened on the helper thread, while recovering.
    opening: Option<Opening>,
    /// The last helper thread (possibly still blocked in the backend after a timeout).
    helper: Option<JoinHandle<()>>,
    state: State,
    generation: u64,
    /// Whether a stream was rebuilt since the last [`start`](Self::start): only then does the
    /// first data of a stream close an outage (the first stream's start-up is no gap).
    rebuilt: bool,
    progress: Option<Progress>,
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
        // `Auto` settles on one backend first (PulseAudio when a server answers): a name is
        // looked up there only, so that a typo does not probe every ALSA plugin.
        let mut host = open_host(request.backend)?;
        let named = match &request.device {
            None => default_device(&host)?,
            Some(wanted) => find_device(&host, wanted)?,
        };
        let (ranges, _) = named.configs()?;
        let default = named.default_config();
        let (rate, channels, sample_format) = negotiate(
            &ranges,
            request.rate,
            request.channels,
            default.map(|c| c.0),
            default.map(|c| c.1),
            default.and_then(|c| c.2),
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
                device_name: named.name.clone(),
                device_id: named.id.clone(),
                sample_format,
                backend: host.backend,
                buffer_frames,
            },
            device: named,
            session: host.take_session(),
            retry: request.retry,
            shared: Arc::new(Shared::default()),
            slot: Arc::new(SinkSlot::new()),
            stream: None,
            opening: None,
            helper: None,
            state: State::Idle,
            generation: 0,
            rebuilt: false,
            progress: None,
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
        self.shared.cut.store(u64::MAX, Ordering::Release);
        self.shared.forget_first_delivery();
        self.rebuilt = false;
        let opened = if matches!(self.device.device, Device::Pulse(_)) {
            // Every step of a PulseAudio open has its own deadline (the stream's thread is its
            // own helper): no thread of the supervisor's is needed to bound it.
            let open = self.open_job(false);
            self.opened(Ok(open()))
        } else {
            self.spawn_open(false)
                .and_then(|opening| self.opened(opening.rx.recv_timeout(OPEN_TIMEOUT)))
        };
        match opened {
            Ok(stream) => {
                self.stream = Some(stream);
                self.state = State::Running {
                    flowing: false,
                    attempt: 0,
                };
                let now = Instant::now();
                self.progress = Some(Progress {
                    last_samples: self.shared.samples.load(Ordering::Relaxed),
                    last_progress: now,
                    last_poll: now,
                    clock: StreamClock::new(self.format.rate, self.format.buffer_frames),
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

    /// The work of opening a stream of the negotiated format, as a new generation: with
    /// `fresh_host`, the whole rebuild (a fresh connection, as a PulseAudio client must
    /// reconnect; the device looked up again; the stream built and played), else the stream on
    /// the device already known.
    fn open_job(
        &mut self,
        fresh_host: bool,
    ) -> impl FnOnce() -> Result<Opened, CaptureError> + Send + 'static {
        self.generation += 1;
        let generation = self.generation;
        self.shared.generation.store(generation, Ordering::Release);
        let shared = self.shared.clone();
        let slot = self.slot.clone();
        let make_feed = move || Feed::new(shared.clone(), slot.clone(), generation);
        let params = StreamParams {
            rate: self.format.rate,
            channels: self.format.channels,
            format: self.format.sample_format,
            buffer_frames: self.format.buffer_frames,
        };
        let (backend, id, name) = (
            self.format.backend,
            self.format.device_id.clone(),
            self.format.device_name.clone(),
        );
        let known = (self.device.clone(), self.session.take());
        move || {
            let (device, session) = if fresh_host {
                let mut host = open_host(backend)?;
                (find_device_by_id(&host, &id, &name)?, host.take_session())
            } else {
                known
            };
            let stream = open_stream(&device, session, params, make_feed, BUILD_TIMEOUT)?;
            Ok(Opened { stream, device })
        }
    }

    /// Starts [`open_job`](Self::open_job) on a helper thread. Nothing of it runs on the
    /// caller's thread, which waits for the result at most [`OPEN_TIMEOUT`] (`start`) or not at
    /// all (`poll`): a hung server cannot hang the supervisor, hence neither
    /// [`stop`](Self::stop). A stream that comes up after the caller gave up is dropped by the
    /// helper; its callbacks, of a stale generation, push nothing.
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
        let open = self.open_job(fresh_host);
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
    ) -> Result<InputStream, CaptureError> {
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

    /// How long the supervisor may wait before its next [`poll`](Self::poll): while a stream
    /// runs, half the stall timeout (at most [`SUPERVISOR_IDLE_PERIOD`], at least
    /// [`SUPERVISOR_PERIOD`]): an error that breaks the stream wakes the thread given to
    /// [`wake_on_error`](Self::wake_on_error) at once, so only a silent stall waits for it. That
    /// holds before its first data too: a PulseAudio monitor can take 1.5 s to deliver, and
    /// nothing needs to see the first data sooner (the loss clock starts at the first delivery
    /// the callback noted, however late this looks). Otherwise (recovering) [`SUPERVISOR_PERIOD`], for prompt rebuilds.
    pub fn poll_interval(&self) -> Duration {
        match self.state {
            State::Running { .. } => (stall_timeout(&self.retry, &self.format) / 2)
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
                let (flowing, attempt) = (*flowing, *attempt);
                self.check_running(now, flowing, attempt)?;
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
                    if let Some(progress) = self.progress.as_mut() {
                        progress.last_progress = Instant::now();
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

    /// The running stream's step: progress (closing an outage, feeding the loss clock), and a
    /// broken or stalled stream dropped for a rebuild.
    fn check_running(
        &mut self,
        now: Instant,
        flowing: bool,
        attempt: u32,
    ) -> Result<(), CaptureError> {
        let first = self.shared.first_delivery();
        let samples = self.shared.samples.load(Ordering::Relaxed);
        let broken = self.shared.broken.load(Ordering::Acquire) == self.generation;
        let channels = u64::from(self.format.channels.max(1));
        let period = self.poll_interval();
        let stall = stall_timeout(&self.retry, &self.format);
        let Some(progress) = self.progress.as_mut() else {
            return Ok(());
        };
        if now.duration_since(progress.last_poll) > period + SUSPENDED_AFTER {
            // The process itself was suspended: its stream gets a fresh chance to deliver the
            // backlog the server kept meanwhile.
            progress.last_progress = now;
        }
        progress.last_poll = now;
        if samples != progress.last_samples {
            progress.last_samples = samples;
            progress.last_progress = now;
            // The first data after a rebuild closes the outage: what the clock finds missing
            // then is the outage's gap.
            let after_outage = !flowing && self.rebuilt;
            let reading = if after_outage {
                Reading::AfterOutage
            } else {
                Reading::Periodic
            };
            if let Some((at, first)) = first {
                progress.clock.start_at(at, first / channels);
            }
            let lost = progress.clock.observe(now, samples / channels, reading);
            self.shared
                .clock_lost_frames
                .store(progress.clock.lost(), Ordering::Relaxed);
            if after_outage {
                self.shared.gap_frames.fetch_add(lost, Ordering::Relaxed);
            }
            if !flowing {
                self.state = State::Running {
                    flowing: true,
                    attempt: 0,
                };
            }
        }
        let stalled = now.duration_since(progress.last_progress) > stall;
        if broken || stalled {
            // A stream that never delivered was one more failed attempt.
            let failed = if flowing { 0 } else { attempt + 1 };
            let reason = if broken {
                self.last_error()
            } else {
                format!(
                    "no audio for {:.1} s",
                    now.duration_since(progress.last_progress).as_secs_f64()
                )
            };
            self.break_stream(reason, now, failed)?;
        }
        Ok(())
    }

    fn last_error(&self) -> String {
        let said = self
            .shared
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        said.or_else(|| alsa::last_error(&self.shared).map(str::to_string))
            .unwrap_or_else(|| "stream error".into())
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

    /// Stops the stream at once: what the server still holds is not part of the take. When it
    /// returns, no callback can push anything more into the sink, so the consumer can drain
    /// everything pushed before. Idempotent. Returns the final counters.
    pub fn stop(&mut self) -> CaptureStats {
        if matches!(self.state, State::Running { flowing: true, .. }) {
            // A shortfall the last poll saw and that still stands is loss, even at the stop.
            self.observe_at(Instant::now(), Reading::Periodic);
        }
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

    /// Stops the stream exactly at `at`: waits (at most about one device buffer) for the audio
    /// captured up to `at` that is still on its way, takes it, and cuts there; then as
    /// [`stop`](Self::stop). On PulseAudio the cut is at `at` by the server's clock; on ALSA it
    /// is after the first buffer delivered after `at` (every frame up to `at`, and at most one
    /// buffer more). A last look of the stream clock counts any shortfall in
    /// [`CaptureStats::lost_frames`].
    pub fn finish(&mut self, at: Instant) -> CaptureStats {
        if matches!(self.state, State::Running { flowing: true, .. }) {
            let buffer = Duration::from_secs_f64(
                f64::from(self.format.buffer_frames) / f64::from(self.format.rate.max(1)),
            );
            let deadline = at + buffer + FINISH_SLACK;
            match &self.stream {
                Some(InputStream::Pulse(stream)) => stream.finish(at, deadline),
                Some(InputStream::Alsa(_)) => self.finish_alsa(deadline),
                None => {}
            }
            self.observe_at(at, Reading::Final);
        }
        self.stop()
    }

    /// The ALSA side of [`finish`](Self::finish): the next delivery, then nothing more.
    fn finish_alsa(&self, deadline: Instant) {
        let before = self.shared.samples.load(Ordering::Acquire);
        while self.shared.samples.load(Ordering::Acquire) == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.shared.cut.store(0, Ordering::Release);
    }

    /// A last look of the stream clock at `at`.
    fn observe_at(&mut self, at: Instant, reading: Reading) {
        let frames =
            self.shared.samples.load(Ordering::Acquire) / u64::from(self.format.channels.max(1));
        if let Some(progress) = self.progress.as_mut() {
            progress.clock.observe(at, frames, reading);
            self.shared
                .clock_lost_frames
                .store(progress.clock.lost(), Ordering::Relaxed);
        }
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
/// w4l's own PulseAudio client needs none of that: its thread ends as soon as it is told to
/// (it never waits on the server), so it is dropped here, without a thread.
fn drop_bounded(stream: Option<InputStream>) {
    let stream = match stream {
        None => return,
        Some(InputStream::Pulse(pulse)) => return drop(pulse),
        Some(alsa) => alsa,
    };
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

#[cfg(test)]
mod tests {
    use super::super::{Backend, SampleFormat};
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
