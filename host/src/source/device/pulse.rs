//! The PulseAudio backend: a native client on `libpulse` (through `libpulse-binding`), which also
//! serves PipeWire through `pipewire-pulse`. It is what `arecord` uses underneath (through ALSA's
//! `pulse` plugin), minus the plugin: see `docs/capture-backends.md` for the measurements.
//!
//! A stream runs on a thread of its own (`w4l-pulse`) that owns the whole libpulse state (its
//! objects are not `Send`): a standard main loop, a context and a record stream. Every time the
//! loop wakes up (a fragment arrived, a timing reply, a wake-up from [`PulseStream`]) the thread
//! reads everything the stream holds and hands it to the [`Feed`], the same code the ALSA
//! backend's callback runs. Nothing else happens on that thread.
//!
//! # Exact stop
//!
//! [`PulseStream::finish`] asks the server where the stream's clock stands (a timing update):
//! the stream's latency is what the device has captured but this client has not read yet, so
//! the frames captured up to the stop instant are `read + latency − (reply − stop) · rate`. The
//! thread reads on until it has them (at most about one fragment time), then cuts there. For a
//! monitor source the server's clock is that of the sink, so the cut is at what was played by
//! the stop instant.
//!
//! # Holes
//!
//! The server marks audio it had to drop (its queue overflowed) as a hole in the stream; holes
//! are counted as lost frames, never filled or skipped silently.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libpulse_binding as pa;
use pa::context::{Context, FlagSet as ContextFlags, State as ContextState};
use pa::mainloop::api::MainloopInnerType;
use pa::mainloop::standard::Mainloop;
use pa::operation::{Operation, State as OperationState};
use pa::sample::{Format, Spec};
use pa::stream::{FlagSet as StreamFlags, Latency, PeekResult, State as StreamState, Stream};

use super::SampleFormat;
use super::callback::Feed;

/// How long connecting to the server may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The channel count the server accepts at most (`PA_CHANNELS_MAX`).
pub(super) const MAX_CHANNELS: u16 = 32;

/// The highest rate the server accepts (`PA_RATE_MAX`).
pub(super) const MAX_RATE: u32 = 384_000;

/// The formats w4l asks the server for; it converts from the source's own.
pub(super) const FORMATS: [SampleFormat; 4] = [
    SampleFormat::F32,
    SampleFormat::I16,
    SampleFormat::I32,
    SampleFormat::U8,
];

/// A source (an input) as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceDesc {
    /// The server's name for it (`w4l_mic.monitor`): what a stream connects to.
    pub(crate) id: String,
    /// Its description (`Monitor of w4l_virtual_microphone`).
    pub(crate) name: String,
    /// Its own rate and channels (its format does not matter: w4l asks for 16-bit samples and
    /// the server converts).
    pub(crate) rate: u32,
    pub(crate) channels: u16,
}

/// What a server holds: its sources and the default one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) sources: Vec<SourceDesc>,
    pub(crate) default_source: Option<String>,
}

/// A main loop and a context connected to the server.
struct Connection {
    mainloop: Mainloop,
    context: Context,
}

impl Connection {
    /// Connects (to `$PULSE_SERVER`, else the user's server); never spawns a server.
    fn open(deadline: Instant) -> Result<Connection, String> {
        let mainloop = Mainloop::new().ok_or("cannot create a libpulse main loop")?;
        let mut context =
            Context::new(&mainloop, "w4l").ok_or("cannot create a libpulse context")?;
        context
            .connect(None, ContextFlags::NOAUTOSPAWN, None)
            .map_err(|e| format!("cannot connect to the server: {e}"))?;
        let mut conn = Connection { mainloop, context };
        conn.run_until(deadline, |c| match c.context.get_state() {
            ContextState::Ready => Some(Ok(())),
            ContextState::Failed | ContextState::Terminated => {
                Some(Err(format!("no server answers ({})", c.context.errno())))
            }
            _ => None,
        })?;
        Ok(conn)
    }

    /// One pass of the main loop, waiting at most `timeout` (`None`: until something happens).
    fn iterate(&mut self, timeout: Option<Duration>) -> Result<(), String> {
        let usec =
            timeout.map(|t| pa::time::MicroSeconds(t.as_micros().min(i32::MAX as u128) as u64));
        self.mainloop
            .prepare(usec)
            .and_then(|()| self.mainloop.poll())
            .and_then(|_| self.mainloop.dispatch())
            .map(|_| ())
            .map_err(|e| format!("the libpulse main loop failed: {e}"))
    }

    /// Runs the loop until `done` says so, or fails once `deadline` passed.
    fn run_until<T>(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&mut Self) -> Option<Result<T, String>>,
    ) -> Result<T, String> {
        loop {
            if let Some(result) = done(self) {
                return result;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("the server did not answer in time".into());
            }
            self.iterate(Some(left))?;
        }
    }

    /// Waits for an operation to complete.
    fn wait<F: ?Sized>(&mut self, op: &Operation<F>, deadline: Instant) -> Result<(), String> {
        self.run_until(deadline, |c| match op.get_state() {
            OperationState::Done => Some(Ok(())),
            OperationState::Cancelled => {
                Some(Err(format!("request failed ({})", c.context.errno())))
            }
            OperationState::Running => None,
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.context.disconnect();
    }
}

/// The sources of the server and its default one, from a short-lived connection. `Err`: no
/// server answers (the message says why).
pub(crate) fn snapshot() -> Result<Snapshot, String> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut conn = Connection::open(deadline)?;
    let found = Rc::new(std::cell::RefCell::new(Snapshot::default()));
    let introspect = conn.context.introspect();
    let sink = found.clone();
    let op = introspect.get_source_info_list(move |item| {
        if let pa::callbacks::ListResult::Item(info) = item {
            sink.borrow_mut().sources.push(SourceDesc {
                id: info.name.as_deref().unwrap_or_default().to_string(),
                name: info
                    .description
                    .as_deref()
                    .or(info.name.as_deref())
                    .unwrap_or_default()
                    .to_string(),
                rate: info.sample_spec.rate,
                channels: u16::from(info.sample_spec.channels),
            });
        }
    });
    conn.wait(&op, deadline)?;
    let sink = found.clone();
    let op = introspect.get_server_info(move |info| {
        sink.borrow_mut().default_source = info.default_source_name.as_deref().map(str::to_string);
    });
    conn.wait(&op, deadline)?;
    let snapshot = found.borrow().clone();
    Ok(snapshot)
}

fn to_pulse(format: SampleFormat) -> Option<Format> {
    match format {
        SampleFormat::F32 => Some(Format::F32le),
        SampleFormat::I16 => Some(Format::S16le),
        SampleFormat::I32 => Some(Format::S32le),
        SampleFormat::U8 => Some(Format::U8),
        SampleFormat::U16 | SampleFormat::I8 => None,
    }
}

/// What a record stream is opened with.
#[derive(Debug, Clone)]
pub(crate) struct StreamSpec {
    pub(crate) source: String,
    pub(crate) rate: u32,
    pub(crate) channels: u16,
    pub(crate) format: SampleFormat,
    /// Frames per fragment: the server sends the audio in pieces of about this size.
    pub(crate) fragment_frames: u32,
}

impl StreamSpec {
    fn bytes_per_frame(&self) -> u64 {
        u64::from(self.channels) * self.format.bytes() as u64
    }
}

/// A stop request: the instant to cut at, and who waits for it.
struct Finish {
    at: Instant,
    deadline: Instant,
    done: SyncSender<()>,
}

/// What the stream's thread and its handle share.
struct Control {
    quit: AtomicBool,
    finish: Mutex<Option<Finish>>,
    /// The running main loop, to interrupt its `poll` from another thread; `None` once it is gone.
    waker: Mutex<Option<Waker>>,
}

/// `pa_mainloop_wakeup` on a main loop owned by another thread.
struct Waker(*mut libpulse_sys::pa_mainloop);

// SAFETY: the pointer is only used for `pa_mainloop_wakeup`, which libpulse documents as safe to
// call from any thread ("Interrupt a running poll (for threaded systems)"), and only while
// `Control::waker` holds it: the stream's thread takes it out (under the same lock) before the
// main loop is freed, so it never dangles when used.
unsafe impl Send for Waker {}

impl Control {
    fn wake(&self) {
        if let Some(waker) = &*self.waker.lock().unwrap_or_else(PoisonError::into_inner) {
            // SAFETY: see `unsafe impl Send for Waker`: the main loop is alive while the lock
            // holds `Some`.
            unsafe { libpulse_sys::pa_mainloop_wakeup(waker.0) };
        }
    }
}

/// A running record stream: its thread, and the way to stop it. Dropping it stops the thread
/// (and disconnects) without waiting for anything more.
pub(crate) struct PulseStream {
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PulseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulseStream").finish_non_exhaustive()
    }
}

impl PulseStream {
    /// Connects a record stream and starts its thread; returns once the stream is ready (or
    /// failed, or `timeout` passed). From then on the thread hands every fragment to `feed`,
    /// and reports a broken stream through it.
    pub(crate) fn open(spec: StreamSpec, feed: Feed, timeout: Duration) -> Result<Self, String> {
        let control = Arc::new(Control {
            quit: AtomicBool::new(false),
            finish: Mutex::new(None),
            waker: Mutex::new(None),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let shared = control.clone();
        let deadline = Instant::now() + timeout;
        let thread = std::thread::Builder::new()
            .name("w4l-pulse".into())
            .spawn(move || run(spec, feed, &shared, deadline, &ready_tx))
            .map_err(|e| format!("cannot start the capture thread: {e}"))?;
        let stream = PulseStream {
            control,
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(timeout + Duration::from_millis(500)) {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the stream did not start in time".into()),
        }
    }

    /// Reads on until every frame captured up to `at` arrived (or `deadline`), and cuts the
    /// stream there. Returns when done (or the stream is gone).
    pub(crate) fn finish(&self, at: Instant, deadline: Instant) {
        let (done, finished) = std::sync::mpsc::sync_channel(1);
        *self
            .control
            .finish
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Finish { at, deadline, done });
        self.control.wake();
        let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(500);
        let _ = finished.recv_timeout(wait);
    }
}

impl Drop for PulseStream {
    fn drop(&mut self) {
        self.control.quit.store(true, Ordering::Release);
        self.control.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The stream's thread: connect, report readiness, then read until told to quit or the stream
/// breaks.
fn run(
    spec: StreamSpec,
    mut feed: Feed,
    control: &Control,
    deadline: Instant,
    ready: &SyncSender<Result<(), String>>,
) {
    let mut reader = match Reader::connect(spec, deadline) {
        Ok(reader) => reader,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    *control.waker.lock().unwrap_or_else(PoisonError::into_inner) =
        Some(Waker(reader.conn.mainloop._inner.get_ptr()));
    let _ = ready.send(Ok(()));
    if let Err(reason) = reader.read_until_quit(&mut feed, control) {
        feed.break_stream(reason);
    }
    // The main loop goes with `reader`: nobody may wake it any more.
    *control.waker.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

/// The record stream and what it has read.
struct Reader {
    conn: Connection,
    stream: Stream,
    spec: StreamSpec,
    /// Bytes read from the stream (holes included).
    read: u64,
    /// Bytes of a sample split across two fragments, carried to the next one.
    carry: [u8; 4],
    carry_len: usize,
    /// The fault the tests inject (see [`test_drop_every`]).
    drop_every: Option<u64>,
    /// Since when a piece waits in the server for room in the sink.
    waiting_since: Option<Instant>,
}

/// How long a piece may wait in the server for room in the sink before it is pushed anyway
/// (and what does not fit counted as overruns): a few of the consumer's polls.
const ROOM_WAIT: Duration = Duration::from_millis(500);

/// How often a thread waiting for room in the sink looks again.
const ROOM_POLL: Duration = Duration::from_millis(10);

/// Debug builds only: `W4L_TEST_DROP_FRAGMENTS=N` throws away every N-th fragment's worth of
/// audio without a word, as a lossy client library would (cpal 0.18's PulseAudio host lost half the audio so),
/// so that the end-to-end tests can check that the stream clock finds and reports the loss.
fn test_drop_every() -> Option<u64> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let n: u64 = std::env::var("W4L_TEST_DROP_FRAGMENTS")
        .ok()?
        .parse()
        .ok()?;
    (n > 0).then_some(n)
}

impl Reader {
    fn connect(spec: StreamSpec, deadline: Instant) -> Result<Reader, String> {
        let mut conn = Connection::open(deadline)?;
        let format = to_pulse(spec.format).ok_or("a sample format PulseAudio does not have")?;
        let channels = u8::try_from(spec.channels).map_err(|_| "too many channels")?;
        let sample_spec = Spec {
            format,
            rate: spec.rate,
            channels,
        };
        if !sample_spec.is_valid() {
            return Err(format!(
                "the server cannot record {} Hz with {} channel(s)",
                spec.rate, spec.channels
            ));
        }
        // Any channel count: the default (AIFF) layout for it, else one extended with
        // auxiliary channels (there is no default for, say, 32).
        let mut map = pa::channelmap::Map::default();
        map.init_extend(channels, pa::channelmap::MapDef::AIFF);
        let mut stream = Stream::new(&mut conn.context, "w4l capture", &sample_spec, Some(&map))
            .ok_or_else(|| format!("cannot create a record stream ({})", conn.context.errno()))?;
        let fragment = u64::from(spec.fragment_frames) * spec.bytes_per_frame();
        // maxlength: the server's largest queue (about 4 MiB), so that a client that was
        // suspended for seconds catches up instead of losing audio. ADJUST_LATENCY: the source
        // delivers about once per fragment, not in smaller pieces (fewer wake-ups). DONT_MOVE:
        // when the source goes away the stream ends (and the supervisor rebuilds it, counting
        // the gap) instead of being moved to another source without a word, which is what
        // PipeWire's session manager does otherwise (a take that silently records the wrong
        // microphone, or a null source).
        let attr = pa::def::BufferAttr {
            maxlength: u32::MAX,
            tlength: u32::MAX,
            prebuf: u32::MAX,
            minreq: u32::MAX,
            fragsize: u32::try_from(fragment).unwrap_or(u32::MAX),
        };
        stream
            .connect_record(
                Some(&spec.source),
                Some(&attr),
                StreamFlags::ADJUST_LATENCY | StreamFlags::DONT_MOVE,
            )
            .map_err(|e| format!("cannot connect the record stream: {e}"))?;
        conn.run_until(deadline, |c| match stream.get_state() {
            StreamState::Ready => Some(Ok(())),
            StreamState::Failed | StreamState::Terminated => Some(Err(format!(
                "the server refused the stream ({})",
                c.context.errno()
            ))),
            _ => None,
        })?;
        Ok(Reader {
            conn,
            stream,
            spec,
            read: 0,
            carry: [0; 4],
            carry_len: 0,
            drop_every: test_drop_every(),
            waiting_since: None,
        })
    }

    /// Whether the injected fault (see [`test_drop_every`]) swallows the piece read next: those
    /// starting in every N-th fragment-sized span of the stream.
    fn test_drops(&self) -> bool {
        let Some(n) = self.drop_every else {
            return false;
        };
        let fragment = (u64::from(self.spec.fragment_frames) * self.spec.bytes_per_frame()).max(1);
        (self.read / fragment) % n == n - 1
    }

    /// The stream's steady state. `Err` when it broke (the reason).
    fn read_until_quit(&mut self, feed: &mut Feed, control: &Control) -> Result<(), String> {
        let mut emptied = true;
        loop {
            self.conn.iterate((!emptied).then_some(ROOM_POLL))?;
            self.check()?;
            let before = self.read;
            emptied = self.drain(feed)?;
            if self.read != before {
                feed.flush();
            }
            if control.quit.load(Ordering::Acquire) {
                return Ok(());
            }
            let finish = control
                .finish
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(finish) = finish {
                let missing = self.read_up_to(finish.at, finish.deadline, feed);
                if missing > 0 {
                    // The server's latency is an estimate (a timer-driven source may report
                    // more than it holds): not loss by itself; the stream clock judges that.
                    tracing::debug!("exact stop: {missing} frames were still due at the deadline");
                }
                let _ = finish.done.send(());
            }
        }
    }

    /// `Err` if the connection or the stream is gone.
    fn check(&self) -> Result<(), String> {
        match (self.conn.context.get_state(), self.stream.get_state()) {
            (ContextState::Ready, StreamState::Ready) => Ok(()),
            _ => Err(format!(
                "the audio server dropped the stream ({})",
                self.conn.context.errno()
            )),
        }
    }

    /// Reads everything the stream holds into `feed`, or as much as the sink has room for:
    /// returns `Ok(false)` when it left a piece in the server for want of room (see
    /// [`ROOM_WAIT`]), `Ok(true)` when the stream is empty.
    fn drain(&mut self, feed: &mut Feed) -> Result<bool, String> {
        loop {
            let peeked = self
                .stream
                .peek()
                .map_err(|e| format!("reading the stream failed: {e}"))?;
            match peeked {
                PeekResult::Empty => return Ok(true),
                PeekResult::Hole(bytes) => {
                    self.read += bytes as u64;
                    feed.lost(bytes as u64 / self.spec.format.bytes() as u64);
                }
                PeekResult::Data(data) => {
                    if !self.has_room(feed, data.len()) {
                        return Ok(false);
                    }
                    if !self.test_drops() {
                        let (format, carry) = (self.spec.format, &mut self.carry);
                        deliver(feed, format, carry, &mut self.carry_len, data);
                    }
                    self.read += data.len() as u64;
                }
            }
            self.stream
                .discard()
                .map_err(|e| format!("reading the stream failed: {e}"))?;
        }
    }

    /// Whether the sink has room for `bytes` of audio now. The server keeps what this thread
    /// does not read yet (seconds of it), so a full ring — after the process was suspended, a
    /// backlog arrives at once — means waiting for the consumer, not losing audio; but not for
    /// ever ([`ROOM_WAIT`]): a consumer that stopped consuming gets overruns, counted.
    fn has_room(&mut self, feed: &mut Feed, bytes: usize) -> bool {
        let samples = bytes / self.spec.format.bytes();
        if feed.room() >= samples {
            self.waiting_since = None;
            return true;
        }
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        if since.elapsed() < ROOM_WAIT {
            return false;
        }
        self.waiting_since = None;
        true
    }

    /// The exact stop (see the [module docs](self)): asks the server for the stream's latency,
    /// reads until every frame captured by `at` arrived, cuts the feed there. Returns the frames
    /// still due at `deadline`.
    fn read_up_to(&mut self, at: Instant, deadline: Instant, feed: &mut Feed) -> u64 {
        let Some(target) = self.target_bytes(at, deadline) else {
            // No timing from the server: keep what arrived; nothing is known to be missing.
            feed.cut_after(0);
            return 0;
        };
        let frame = self.spec.bytes_per_frame();
        // No more than two fragments: what a source that honours the fragment size can hold.
        let fragment = u64::from(self.spec.fragment_frames) * frame;
        let target = target.min(self.read + 2 * fragment);
        let mut left = target.saturating_sub(self.read);
        // Only whole frames up to the target pass from here on.
        feed.cut_after(left / self.spec.format.bytes() as u64);
        while left > 0 && Instant::now() < deadline {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(ROOM_POLL);
            if self.conn.iterate(Some(wait)).is_err() || self.check().is_err() {
                break;
            }
            if self.drain(feed).is_err() {
                break;
            }
            left = target.saturating_sub(self.read);
        }
        left / frame
    }

    /// Bytes of the stream up to the instant `at`, by the server's clock: what was read, plus
    /// the latency at the timing reply, minus what was captured between `at` and the reply.
    fn target_bytes(&mut self, at: Instant, deadline: Instant) -> Option<u64> {
        let updated = Rc::new(Cell::new(None));
        let flag = updated.clone();
        let op = self
            .stream
            .update_timing_info(Some(Box::new(move |ok| flag.set(Some(ok)))));
        // Nothing is read while waiting: the latency must match `self.read`.
        let replied = self.conn.run_until(deadline, |_| {
            (op.get_state() != OperationState::Running).then_some(Ok(()))
        });
        if replied.is_err() || updated.get() != Some(true) {
            return None;
        }
        let replied_at = Instant::now();
        let latency_us = match self.stream.get_latency().ok()? {
            Latency::Positive(us) => us.0 as i128,
            Latency::Negative(us) => -(us.0 as i128),
            Latency::None => return None,
        };
        let late_us = replied_at.saturating_duration_since(at).as_micros() as i128;
        let frames = (latency_us - late_us) * i128::from(self.spec.rate) / 1_000_000;
        let bytes = frames * i128::from(self.spec.bytes_per_frame() as u32);
        Some((i128::from(self.read) + bytes).max(0) as u64)
    }
}

/// Hands `data` (little-endian samples of `format`) to the feed, carrying a sample split across
/// fragments over to the next call.
fn deliver(
    feed: &mut Feed,
    format: SampleFormat,
    carry: &mut [u8; 4],
    carry_len: &mut usize,
    data: &[u8],
) {
    let size = format.bytes();
    let mut data = data;
    if *carry_len > 0 {
        let need = (size - *carry_len).min(data.len());
        carry[*carry_len..*carry_len + need].copy_from_slice(&data[..need]);
        *carry_len += need;
        data = &data[need..];
        if *carry_len < size {
            return;
        }
        feed.on_le_bytes(format, &carry[..size]);
        *carry_len = 0;
    }
    let whole = data.len() - data.len() % size;
    feed.on_le_bytes(format, &data[..whole]);
    let rest = &data[whole..];
    carry[..rest.len()].copy_from_slice(rest);
    *carry_len = rest.len();
}
