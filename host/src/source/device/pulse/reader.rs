//! [`Reader`]: the record stream on a [`Connection`], read into the [`Feed`] until told to quit,
//! with the exact stop (see the [parent module](super)).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use libpulse_binding as pa;
use pa::context::State as ContextState;
use pa::operation::State as OperationState;
use pa::sample::{Format, Spec};
use pa::stream::{FlagSet as StreamFlags, Latency, PeekResult, State as StreamState, Stream};

use super::connection::Connection;
use super::{Control, StreamSpec};
use crate::source::device::SampleFormat;
use crate::source::device::callback::Feed;

fn to_pulse(format: SampleFormat) -> Option<Format> {
    match format {
        SampleFormat::F32 => Some(Format::F32le),
        SampleFormat::I16 => Some(Format::S16le),
        SampleFormat::I32 => Some(Format::S32le),
        SampleFormat::U8 => Some(Format::U8),
        SampleFormat::U16 | SampleFormat::I8 => None,
    }
}

/// The record stream and what it has read.
pub(super) struct Reader {
    pub(super) conn: Connection,
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
    /// Opens the record stream of `spec` on `conn` and waits until it is ready.
    pub(super) fn connect(
        mut conn: Connection,
        spec: StreamSpec,
        deadline: Instant,
    ) -> Result<Reader, String> {
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
    pub(super) fn read_until_quit(
        &mut self,
        feed: &mut Feed,
        control: &Control,
    ) -> Result<(), String> {
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
