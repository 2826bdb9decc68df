//! [`Connection`]: a libpulse main loop and a context connected to the server, owned by one
//! thread (libpulse's objects are not `Send`), and the listing of the server's sources.

use std::rc::Rc;
use std::time::{Duration, Instant};

use libpulse_binding as pa;
use pa::context::{Context, FlagSet as ContextFlags, State as ContextState};
use pa::mainloop::standard::Mainloop;
use pa::operation::{Operation, State as OperationState};

use super::{Snapshot, SourceDesc};

/// A main loop and a context connected to the server.
pub(super) struct Connection {
    pub(super) mainloop: Mainloop,
    pub(super) context: Context,
}

impl Connection {
    /// Connects (to `$PULSE_SERVER`, else the user's server); never spawns a server.
    pub(super) fn open(deadline: Instant) -> Result<Connection, String> {
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

    /// The connection if it still stands once what the server sent meanwhile is handled (a
    /// session may wait between its listing and its stream; the server may have gone).
    pub(super) fn if_ready(mut self) -> Option<Connection> {
        self.iterate(Some(Duration::ZERO)).ok()?;
        (self.context.get_state() == ContextState::Ready).then_some(self)
    }

    /// One pass of the main loop, waiting at most `timeout` (`None`: until something happens).
    pub(super) fn iterate(&mut self, timeout: Option<Duration>) -> Result<(), String> {
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
    pub(super) fn run_until<T>(
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

    /// The server's sources and its default one. `Err`: a request failed or timed out.
    pub(super) fn list(&mut self, deadline: Instant) -> Result<Snapshot, String> {
        let found = Rc::new(std::cell::RefCell::new(Snapshot::default()));
        let introspect = self.context.introspect();
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
        self.wait(&op, deadline)?;
        let sink = found.clone();
        let op = introspect.get_server_info(move |info| {
            sink.borrow_mut().default_source =
                info.default_source_name.as_deref().map(str::to_string);
        });
        self.wait(&op, deadline)?;
        let snapshot = found.borrow().clone();
        Ok(snapshot)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.context.disconnect();
    }
}
