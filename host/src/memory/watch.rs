//! A descriptor that becomes ready under memory pressure, and the thread that waits on it.
//!
//! A [`PressureWatch`] owns the descriptor: a PSI file with a trigger (ready for `POLLPRI`, from
//! [`psi`](super::psi)), a FIFO or socket the service manager named, or anything a test hands
//! over (a pipe: ready for `POLLIN`, the data read and discarded). The caller either waits on it
//! with a timeout in its own loop ([`PressureWatch::wait`]) or leaves that to a thread that
//! runs a callback per event ([`PressureWatch::spawn`]).
//!
//! Waiting is `poll(2)`: no wake-ups while nothing happens (a laptop stays idle), and the
//! kernel's trigger fires at most once per window, so a callback is not flooded. The thread is
//! stopped through a socket pair polled beside the descriptor: it ends at once, without a
//! timeout to wait out.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What "ready" means for a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// `POLLPRI`: a PSI file with a trigger. Never read.
    Priority,
    /// `POLLIN`: a FIFO, socket or pipe. Whatever arrives is read and discarded; one wake-up is
    /// one event however many bytes came. End of file ends the watch.
    Readable,
}

/// One pressure notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PressureEvent {
    /// When the waiter woke.
    pub at: Instant,
    /// Events so far on this watch, this one included.
    pub count: u64,
}

/// A pressure source: the descriptor, what readiness means for it, and where it came from.
#[derive(Debug)]
pub struct PressureWatch {
    file: File,
    readiness: Readiness,
    source: String,
    count: u64,
}

impl PressureWatch {
    pub(crate) fn new(file: File, readiness: Readiness, source: String) -> Self {
        Self {
            file,
            readiness,
            source,
            count: 0,
        }
    }

    /// A watch on any descriptor: an injected event source for tests (a pipe standing in for a
    /// PSI trigger), or one the application opened itself.
    pub fn from_fd(fd: OwnedFd, readiness: Readiness, source: impl Into<String>) -> Self {
        Self::new(File::from(fd), readiness, source.into())
    }

    /// Where the events come from, for `w4l monitor`: a path and the trigger written to it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Waits up to `timeout` (`None`: for ever) for the next event. `Ok(None)`: the time ran
    /// out without pressure.
    ///
    /// # Errors
    ///
    /// The source failed (`POLLERR`: the PSI file lost its trigger or its cgroup) or was closed
    /// (end of file): no more events will come.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Option<PressureEvent>> {
        let mut fds = [self.pollfd()];
        if poll(&mut fds, timeout)? == 0 {
            return Ok(None);
        }
        let [fd] = fds;
        self.take(fd.revents).map(Some)
    }

    /// Runs `on_event` on a new thread (`w4l-pressure`) for every event until the returned
    /// handle is stopped or dropped, or the source fails (logged as a warning).
    ///
    /// The callback runs on the watcher thread: it should hand over (a channel, a forced step
    /// of the monitor) rather than work long.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use w4l::memory::watch::{PressureWatch, Readiness};
    ///
    /// // A pipe stands in for a PSI trigger.
    /// let (reader, mut writer) = std::io::pipe()?;
    /// let watch = PressureWatch::from_fd(reader.into(), Readiness::Readable, "test pipe");
    /// let (tx, rx) = mpsc::channel();
    /// let thread = watch.spawn(move |event| tx.send(event.count).unwrap())?;
    /// writer.write_all(b"!")?;
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(1));
    /// thread.stop()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The thread or its stop channel cannot be created.
    pub fn spawn<F>(mut self, mut on_event: F) -> io::Result<WatchThread>
    where
        F: FnMut(PressureEvent) + Send + 'static,
    {
        let (stop, stopped) = UnixStream::pair()?;
        let source = self.source.clone();
        let thread = std::thread::Builder::new()
            .name("w4l-pressure".into())
            .spawn(move || {
                let result = self.run(&stopped, &mut on_event);
                if let Err(e) = &result {
                    tracing::warn!(
                        "memory pressure events from {} stopped ({e}); w4l reads memory once a \
                         second",
                        self.source
                    );
                }
                result
            })?;
        Ok(WatchThread {
            stop,
            thread: Some(thread),
            source,
        })
    }

    fn run(
        &mut self,
        stopped: &UnixStream,
        on_event: &mut dyn FnMut(PressureEvent),
    ) -> io::Result<()> {
        loop {
            let mut fds = [self.pollfd(), pollfd(stopped.as_raw_fd(), libc::POLLIN)];
            poll(&mut fds, None)?;
            let [watch, stop] = fds;
            if stop.revents != 0 {
                return Ok(());
            }
            if watch.revents != 0 {
                on_event(self.take(watch.revents)?);
            }
        }
    }

    /// Turns the poll result into an event, or the reason there will be none.
    fn take(&mut self, revents: libc::c_short) -> io::Result<PressureEvent> {
        if revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(io::Error::other(format!(
                "{} reports an error (no trigger, or its cgroup is gone)",
                self.source
            )));
        }
        let ended = match self.readiness {
            Readiness::Priority => revents & libc::POLLPRI == 0,
            Readiness::Readable => self.discard_pending()? == 0,
        };
        if ended {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} was closed", self.source),
            ));
        }
        self.count += 1;
        Ok(PressureEvent {
            at: Instant::now(),
            count: self.count,
        })
    }

    /// Reads whatever is queued without blocking; returns how many bytes (0: end of file).
    pub(crate) fn discard_pending(&mut self) -> io::Result<usize> {
        let mut buf = [0u8; 256];
        let mut total = 0;
        loop {
            let mut fds = [pollfd(self.file.as_raw_fd(), libc::POLLIN)];
            poll(&mut fds, Some(Duration::ZERO))?;
            let [fd] = fds;
            if fd.revents & libc::POLLIN == 0 {
                return Ok(total);
            }
            match self.file.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    fn pollfd(&self) -> libc::pollfd {
        let events = match self.readiness {
            Readiness::Priority => libc::POLLPRI,
            Readiness::Readable => libc::POLLIN,
        };
        pollfd(self.file.as_raw_fd(), events)
    }
}

/// The running watcher of [`PressureWatch::spawn`]. Dropping it stops the thread.
#[derive(Debug)]
pub struct WatchThread {
    stop: UnixStream,
    thread: Option<JoinHandle<io::Result<()>>>,
    source: String,
}

impl WatchThread {
    /// Where the events come from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the thread still waits for events (`false` once the source failed).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the thread and waits for it (at once: it is woken, not waited out).
    ///
    /// # Errors
    ///
    /// Why the thread had ended before, if the source failed or the callback panicked.
    pub fn stop(mut self) -> io::Result<()> {
        self.end()
    }

    fn end(&mut self) -> io::Result<()> {
        // A shutdown, not a write: no SIGPIPE if the thread has already gone.
        let _ = self.stop.shutdown(std::net::Shutdown::Both);
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the pressure callback panicked")),
        }
    }
}

impl Drop for WatchThread {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// `poll(2)` until a descriptor is ready or `timeout` passes, through interruptions by signals.
fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let count = libc::nfds_t::try_from(fds.len()).map_err(io::Error::other)?;
    loop {
        let ms = deadline.map_or(-1, |d| {
            let left = d.saturating_duration_since(Instant::now()).as_nanos();
            i32::try_from(left.div_ceil(1_000_000)).unwrap_or(i32::MAX)
        });
        // SAFETY: `fds` is an exclusively borrowed slice of `count` initialised `pollfd`s that
        // outlives the call; poll only writes their `revents`.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, ms) };
        if let Ok(ready) = usize::try_from(ready) {
            return Ok(ready);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pipe_watch() -> (PressureWatch, std::io::PipeWriter) {
        let (reader, writer) = std::io::pipe().expect("pipe");
        let watch = PressureWatch::from_fd(reader.into(), Readiness::Readable, "pipe");
        (watch, writer)
    }

    #[test]
    fn wait_times_out_then_sees_one_event_per_wakeup() {
        let (mut watch, mut writer) = pipe_watch();
        assert_eq!(
            watch.wait(Some(Duration::from_millis(10))).expect("wait"),
            None
        );
        writer.write_all(&[7u8; 1000]).expect("write");
        let event = watch.wait(Some(Duration::from_secs(5))).expect("wait");
        assert_eq!(event.map(|e| e.count), Some(1));
        // All 1000 bytes were one event.
        assert_eq!(watch.wait(Some(Duration::ZERO)).expect("wait"), None);
    }

    #[test]
    fn a_closed_source_ends_the_watch() {
        let (mut watch, writer) = pipe_watch();
        drop(writer);
        let e = watch
            .wait(Some(Duration::from_secs(5)))
            .expect_err("closed");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("pipe was closed"), "{e}");
    }

    #[test]
    fn the_thread_stops_at_once_and_reports_a_failed_source() {
        let (watch, writer) = pipe_watch();
        let thread = watch.spawn(|_| {}).expect("spawn");
        assert!(thread.is_running());
        let t = Instant::now();
        thread.stop().expect("a healthy source stops cleanly");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        drop(writer);

        let (watch, writer) = pipe_watch();
        let thread = watch.spawn(|_| {}).expect("spawn");
        drop(writer);
        let deadline = Instant::now() + Duration::from_secs(5);
        while thread.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!thread.is_running());
        let e = thread.stop().expect_err("the source was closed");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
