//! The PulseAudio backend: a native client on `libpulse` (through `libpulse-binding`), which also
//! serves PipeWire through `pipewire-pulse`. It is what `arecord` uses underneath (through ALSA's
//! `pulse` plugin), minus the plugin: see `docs/capture-backends.md` for the measurements.
//!
//! A stream runs on a thread of its own (`w4l-pulse`) that owns the whole libpulse state (its
//! objects are not `Send`): a standard main loop, a context ([`connection`]) and a record stream
//! ([`reader`]). Every time the loop wakes up (a fragment arrived, a timing reply, a wake-up from
//! [`PulseStream`]) the thread reads everything the stream holds and hands it to the [`Feed`],
//! the same code the ALSA backend's callback runs. Nothing else happens on that thread.
//!
//! The thread starts as a [`Session`]: it connects and lists the server's sources (what
//! [`Capture::open`](super::Capture::open) chooses from), then keeps the connection for the
//! take's stream. One connection per take instead of two: libpulse reads its configuration and
//! the cookie and sets up a shared-memory pool for each, about 1 ms of CPU, 4 % of a 10 s take.
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

mod connection;
mod reader;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libpulse_binding::mainloop::api::MainloopInnerType;

use super::SampleFormat;
use super::callback::Feed;
use connection::Connection;
use reader::Reader;

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
    /// Starts a record stream of `spec` on `session`'s connection (a fresh one without it) and
    /// returns once the stream is ready (or failed, or `timeout` passed). From then on the
    /// thread hands every fragment to `feed`, and reports a broken stream through it.
    pub(crate) fn open(
        session: Option<Session>,
        spec: StreamSpec,
        feed: Feed,
        timeout: Duration,
    ) -> Result<Self, String> {
        let control = Arc::new(Control {
            quit: AtomicBool::new(false),
            finish: Mutex::new(None),
            waker: Mutex::new(None),
        });
        let (ready, started) = std::sync::mpsc::sync_channel(1);
        let job = Record {
            spec,
            feed,
            control: control.clone(),
            deadline: Instant::now() + timeout,
            ready,
        };
        let handed = match session {
            Some(session) => session.hand(job),
            None => Err(job),
        };
        let thread = match handed {
            Ok(thread) => thread,
            // No session, or its thread is gone: a thread and a connection of the stream's own.
            Err(job) => spawn_thread(move || job.run(None))?,
        };
        let stream = PulseStream {
            control,
            thread: Some(thread),
        };
        match started.recv_timeout(timeout + Duration::from_millis(500)) {
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

/// What a stream's thread is asked to do: open a record stream and read it.
struct Record {
    spec: StreamSpec,
    feed: Feed,
    control: Arc<Control>,
    deadline: Instant,
    ready: SyncSender<Result<(), String>>,
}

/// Starts a stream's thread (`w4l-pulse`).
fn spawn_thread(body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name("w4l-pulse".into())
        .spawn(body)
        .map_err(|e| format!("cannot start the capture thread: {e}"))
}

impl Record {
    /// The stream's thread from here: connect (unless `conn` still is), report readiness, then
    /// read until told to quit or the stream breaks.
    fn run(self, conn: Option<Connection>) {
        let Record {
            spec,
            mut feed,
            control,
            deadline,
            ready,
        } = self;
        let conn = match conn.and_then(Connection::if_ready) {
            Some(conn) => Ok(conn),
            None => Connection::open(deadline),
        };
        let mut reader = match conn.and_then(|conn| Reader::connect(conn, spec, deadline)) {
            Ok(reader) => reader,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        *control.waker.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Waker(reader.conn.mainloop._inner.get_ptr()));
        let _ = ready.send(Ok(()));
        if let Err(reason) = reader.read_until_quit(&mut feed, &control) {
            feed.break_stream(reason);
        }
        // The main loop goes with `reader`: nobody may wake it any more.
        *control.waker.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// A connection to the server on the thread that will read the take's stream (`w4l-pulse`):
/// opened to list the sources, kept for the stream (see the [module docs](self)). Dropping an
/// unused session disconnects.
pub(crate) struct Session {
    /// Where the stream's job goes, and the thread that takes it (`None` once handed over).
    thread: Option<(SyncSender<Record>, JoinHandle<()>)>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    /// Connects on a new thread and lists the server's sources. `Err`: no server answers (the
    /// message says why).
    pub(crate) fn open() -> Result<(Session, Snapshot), String> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let (listed, listing) = std::sync::mpsc::sync_channel(1);
        let (jobs, job) = std::sync::mpsc::sync_channel(1);
        let thread = spawn_thread(move || serve(deadline, &listed, &job))?;
        let session = Session {
            thread: Some((jobs, thread)),
        };
        match listing.recv_timeout(CONNECT_TIMEOUT + Duration::from_millis(500)) {
            Ok(Ok(snapshot)) => Ok((session, snapshot)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the server did not answer in time".into()),
        }
    }

    /// Hands `job` to the session's thread, which becomes the stream's; `Err` gives it back
    /// when that thread is gone.
    fn hand(mut self, job: Record) -> Result<JoinHandle<()>, Record> {
        let Some((jobs, thread)) = self.thread.take() else {
            return Err(job);
        };
        match jobs.send(job) {
            Ok(()) => Ok(thread),
            Err(std::sync::mpsc::SendError(job)) => {
                let _ = thread.join();
                Err(job)
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some((jobs, thread)) = self.thread.take() {
            // Closing the channel ends the thread, which disconnects.
            drop(jobs);
            let _ = thread.join();
        }
    }
}

/// A session's thread: connect, list, then wait for the stream to read (or for the session to
/// be dropped).
fn serve(
    deadline: Instant,
    listed: &SyncSender<Result<Snapshot, String>>,
    jobs: &Receiver<Record>,
) {
    let listing = Connection::open(deadline).and_then(|mut conn| {
        let snapshot = conn.list(deadline)?;
        Ok((conn, snapshot))
    });
    let conn = match listing {
        Ok((conn, snapshot)) => {
            if listed.send(Ok(snapshot)).is_err() {
                return;
            }
            conn
        }
        Err(e) => {
            let _ = listed.send(Err(e));
            return;
        }
    };
    if let Ok(job) = jobs.recv() {
        job.run(Some(conn));
    }
}
