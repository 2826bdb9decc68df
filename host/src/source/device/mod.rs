//! Audio capture from a real device, into any [`SampleSink`] (normally the producer half of the
//! core ring).
//!
//! ```text
//!  Capture::open(&CaptureRequest)   backend, device and format negotiated, nothing running yet
//!  capture.start(sink)              the stream runs; every sample is converted to i16 (if it
//!                                   is not already) and pushed into the sink
//!  capture.poll()                   the supervisor step (the caller's thread): rebuilds a stream
//!                                   that failed, with bounded retries and back-off; counts loss
//!  capture.finish(at)               the exact stop: every frame captured up to `at`, no more
//!  capture.stop()                   the stream is gone: nothing more is pushed, so the consumer
//!                                   can drain everything pushed up to that moment
//! ```
//!
//! [`CaptureSource`] wraps a [`Capture`] as a recorder [`Source`], with the supervisor on its own
//! small thread.
//!
//! # Backends
//!
//! * **PulseAudio** (`pulse`): w4l's own client on libpulse, which also serves PipeWire through
//!   `pipewire-pulse` — what most Linux desktops run. A stream thread reads the server's
//!   fragments (200 ms by default) and feeds them on. It delivers every frame, marks what the
//!   server dropped (holes), and knows the stream's clock, which the exact stop uses.
//! * **ALSA** (`alsa`): cpal's ALSA host, for hardware without a sound server and for other
//!   platforms.
//!
//! The default ([`Backend::Auto`]) is PulseAudio whenever a server answers, else ALSA. The
//! choice was made by measurement (`docs/capture-backends.md`): cpal's own PulseAudio host lost
//! half the audio without a word, and ALSA's `pulse` plugin under cpal spun a core.
//!
//! # The data path
//!
//! No allocation, no lock, no system call, no logging, no panic. Both backends hand the device's
//! samples (`f32`, `i16`, `u16`, `i32`, `u8` or `i8`) to the same `Feed` (`callback.rs`), which
//! converts them with [`w4l_core::sample::convert`] into a fixed-size scratch buffer allocated when
//! the stream is built (16-bit samples go to the sink as they are), offers every chunk to the sink, and adds to atomic counters: samples
//! delivered, and samples the sink refused (**overruns**, never silent). The sink lives in a slot
//! guarded by an atomic flag, not a mutex, so that a rebuilt stream can take it over and
//! [`Capture::stop`] can take it away: after `stop` returns, nothing can reach it.
//!
//! # Loss is never silent
//!
//! Whatever the backend, a stream clock (`clock.rs`) compares the frames delivered with the frames a
//! stream of that rate owes since its first delivery; a shortfall beyond two buffers (and the
//! drift of a slow crystal) is counted in [`CaptureStats::lost_frames`], as are the server's holes
//! and audio owed at the stop that never came.
//!
//! # Stream errors
//!
//! An error that ends a stream (server gone, device unplugged, anything but an xrun or a route
//! change) marks it broken. A stream that delivers nothing for [`RetryPolicy::stall_timeout`]
//! counts as broken too (a server that died without a word). [`Capture::poll`] then drops it and
//! rebuilds it, from a fresh connection, on a helper thread so that a hung server never blocks
//! the supervisor (at most one such thread at a time), retrying with doubling delays up to
//! [`RetryPolicy::attempts`] times before it gives up with [`CaptureError::StreamLost`]. An outage
//! ends only when a rebuilt stream delivers: one that opens but stays silent is a failed attempt
//! too, so a device that never delivers ends in `StreamLost`, not in endless rebuilds. The audio
//! missed meanwhile is lost and counted (in [`CaptureStats::gap_frames`] as well). A process that
//! was suspended (SIGSTOP, Ctrl-Z) is not a stall: the server kept its audio, and the stream
//! delivers the backlog when the process resumes.
//!
//! [`Source`]: crate::source::Source

mod alsa;
mod backend;
mod callback;
mod clock;
pub mod list;
mod negotiate;
mod pulse;
mod recorder_source;
mod supervisor;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use w4l_core::ring::{Producer, RingRef, Storage};

pub(crate) use backend::{NamedDevice, default_device, input_devices, open_host};
pub use clock::DRIFT_PPM;
pub use negotiate::{ConfigRange, PREFERRED_RATES, describe_ranges, negotiate};
pub use recorder_source::CaptureSource;
pub use supervisor::{Capture, SUPERVISOR_IDLE_PERIOD, SUPERVISOR_PERIOD};

/// Where captured samples go. The data callback calls [`push`](Self::push) with interleaved
/// 16-bit samples (the take's format: a device's other formats are converted by the core's
/// [`w4l_core::sample`], correctly rounded); it must not block, allocate or lock.
pub trait SampleSink: Send + 'static {
    /// Takes as many of `samples` as it can and returns how many (a prefix). The rest are lost
    /// and counted as overruns.
    fn push(&mut self, samples: &[i16]) -> usize;

    /// How many samples [`push`](Self::push) would take now (a backend that can leave audio in
    /// its server waits for room instead of losing it). Unbounded by default.
    fn room(&mut self) -> usize {
        usize::MAX
    }

    /// A batch of pushes is complete. A backend that does not run on a real-time thread calls
    /// it after each fragment, so that a sink may wake its consumer (a syscall) instead of the
    /// consumer polling. Nothing by default.
    fn flush(&mut self) {}
}

/// The core ring's producer is a sink. With `RejectNewest`, what does not fit is refused and
/// counted in the ring's `dropped`; the callback offers every sample to the ring, so
/// [`CaptureStats::overruns`] is exactly the ring's `dropped` plus the samples that met a busy
/// sink slot (only in a race with [`Capture::stop`] taking the sink away).
impl<R> SampleSink for Producer<R>
where
    R: RingRef + Send + 'static,
    R::Storage: Storage<Item = i16>,
{
    #[inline]
    fn push(&mut self, samples: &[i16]) -> usize {
        self.push_slice(samples)
    }

    #[inline]
    fn room(&mut self) -> usize {
        self.free()
    }
}

/// Which audio system to capture through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// PulseAudio if a server is reachable, else ALSA (see the [module docs](self) for why).
    #[default]
    Auto,
    /// w4l's PulseAudio client on libpulse (also serves PipeWire through `pipewire-pulse`).
    PulseAudio,
    /// cpal's ALSA host (hardware devices, or ALSA's plugins such as `pulse`).
    Alsa,
}

impl Backend {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::PulseAudio => "pulseaudio",
            Backend::Alsa => "alsa",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = CaptureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Backend::Auto),
            "pulseaudio" | "pulse" => Ok(Backend::PulseAudio),
            "alsa" => Ok(Backend::Alsa),
            _ => Err(CaptureError::UnknownBackend { name: s.into() }),
        }
    }
}

/// A sample format w4l can capture (the formats the core's sample conversion covers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleFormat {
    /// 32-bit float.
    F32,
    /// Signed 16-bit.
    I16,
    /// Signed 32-bit.
    I32,
    /// Unsigned 16-bit (offset binary).
    U16,
    /// Unsigned 8-bit (offset binary).
    U8,
    /// Signed 8-bit.
    I8,
}

impl SampleFormat {
    /// Every format, most preferred first: `f32` (a device's full resolution, rounded once by
    /// the core to the take's 16 bits), `i16` (what most microphones deliver), then the others,
    /// widest first. The device's own format, when it has one,
    /// comes before all of them (see [`negotiate`]).
    pub const PREFERENCE: [SampleFormat; 6] = [
        SampleFormat::F32,
        SampleFormat::I16,
        SampleFormat::I32,
        SampleFormat::U16,
        SampleFormat::U8,
        SampleFormat::I8,
    ];

    /// `"f32"`, `"i16"`, ...
    pub fn name(self) -> &'static str {
        match self {
            SampleFormat::F32 => "f32",
            SampleFormat::I16 => "i16",
            SampleFormat::I32 => "i32",
            SampleFormat::U16 => "u16",
            SampleFormat::U8 => "u8",
            SampleFormat::I8 => "i8",
        }
    }

    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        match self {
            SampleFormat::F32 | SampleFormat::I32 => 4,
            SampleFormat::I16 | SampleFormat::U16 => 2,
            SampleFormat::U8 | SampleFormat::I8 => 1,
        }
    }
}

impl fmt::Display for SampleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a failed stream is rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Rebuild attempts per outage before [`Capture::poll`] gives up.
    pub attempts: u32,
    /// Delay before the second attempt (the first is immediate); doubles after each failure.
    pub first_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// A running stream that delivers nothing for this long (or for three device buffers, if
    /// that is longer) is treated as broken. A rebuilt stream that never delivers counts as a
    /// failed attempt, so a silent device ends in [`CaptureError::StreamLost`] too. The
    /// supervisor looks once per poll period (half this, at most 1 s) and dates progress from
    /// the poll that saw it, so a stall is noticed up to two periods later than this (with the
    /// defaults, 2 to 4 s after the last audio).
    pub stall_timeout: Duration,
}

impl Default for RetryPolicy {
    /// 30 attempts, 50 ms doubling up to 500 ms (about 14 s in all), stall after 2 s. A local
    /// server restart (1–2 s) is back within half a second of its return.
    fn default() -> Self {
        Self {
            attempts: 30,
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            stall_timeout: Duration::from_secs(2),
        }
    }
}

/// What to open. Every field has a sensible default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureRequest {
    /// Device name or id: exact match, else a unique case-insensitive substring. `None`: the
    /// backend's default input.
    pub device: Option<String>,
    /// Frames per second. `None`: 48000 if supported, else 16000, else the device's default.
    pub rate: Option<u32>,
    /// Channels. `None`: the device's default channel count.
    pub channels: Option<u16>,
    /// Which audio system.
    pub backend: Backend,
    /// Frames per device buffer. `None`: a fifth of a second (see the [module docs](self)).
    pub buffer_frames: Option<u32>,
    /// Rebuilding after stream errors.
    pub retry: RetryPolicy,
}

/// The negotiated stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamFormat {
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// The device's human-readable name.
    pub device_name: String,
    /// The device's id within its backend (what `--device` matches exactly, with the name).
    pub device_id: String,
    /// The device's sample format (converted to `i16` in the callback, unless it is `i16`).
    pub sample_format: SampleFormat,
    /// The backend actually used (never `Auto`).
    pub backend: Backend,
    /// Frames per device buffer requested from the backend.
    pub buffer_frames: u32,
}

impl fmt::Display for StreamFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' ({} {}): {} Hz, {} ch, {}",
            self.device_name,
            self.backend,
            self.device_id,
            self.rate,
            self.channels,
            self.sample_format
        )
    }
}

/// Counters of a capture, cumulative over every stream (re)build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CaptureStats {
    /// Frames the device delivered to the callback.
    pub frames: u64,
    /// Samples the sink accepted.
    pub samples_pushed: u64,
    /// Samples the sink refused (ring full) or that met a busy sink slot: lost, counted.
    pub overruns: u64,
    /// Frames the device captured that never arrived: found missing by the stream clock
    /// (outages included, see [`gap_frames`](Self::gap_frames)), reported as holes by the
    /// server, or owed at the stop and not delivered. Exact to about one device buffer.
    pub lost_frames: u64,
    /// Errors cpal reported (every kind, including xruns).
    pub stream_errors: u64,
    /// Of those, xruns (the backend recovered by itself; audio may have a glitch).
    pub xruns: u64,
    /// Streams rebuilt after an error or a stall.
    pub restarts: u64,
    /// Of [`lost_frames`](Self::lost_frames), those missed while streams were down.
    pub gap_frames: u64,
}

/// Why capture could not be opened or kept running. [`Display`](fmt::Display) is one line: what
/// was wrong, then what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureError {
    /// A backend name that is not `auto`, `pulseaudio` or `alsa`.
    UnknownBackend {
        /// What was asked for.
        name: String,
    },
    /// The backend cannot be used (no PulseAudio server, ALSA failed).
    BackendUnavailable {
        /// Which one.
        backend: Backend,
        /// The backend's words.
        reason: String,
    },
    /// Listing the devices failed.
    Enumerate {
        /// Which backend.
        backend: Backend,
        /// The backend's words.
        reason: String,
    },
    /// The backend has no default input device.
    NoDefaultDevice {
        /// Which backend.
        backend: Backend,
    },
    /// No device matches the name.
    UnknownDevice {
        /// The name asked for.
        name: String,
        /// Every input device (`name (id)`).
        candidates: Vec<String>,
    },
    /// More than one device contains the name.
    AmbiguousDevice {
        /// The name asked for.
        name: String,
        /// The devices that match.
        candidates: Vec<String>,
    },
    /// The device cannot capture what was asked for.
    Unsupported {
        /// The device.
        device: String,
        /// What was asked for.
        wanted: String,
        /// What it supports.
        supported: String,
    },
    /// Building or starting the stream failed.
    Stream {
        /// The device.
        device: String,
        /// The backend's words.
        reason: String,
    },
    /// `start` on a running capture.
    AlreadyStarted,
    /// The stream failed and every rebuild attempt failed too.
    StreamLost {
        /// The device.
        device: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        reason: String,
    },
    /// The supervisor thread could not be started.
    Thread {
        /// The OS's words.
        reason: String,
    },
}

impl CaptureError {
    /// Whether the request was at fault (unknown or ambiguous device, unsupported format): a
    /// usage error. Everything else is the environment's.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            CaptureError::UnknownBackend { .. }
                | CaptureError::UnknownDevice { .. }
                | CaptureError::AmbiguousDevice { .. }
                | CaptureError::Unsupported { .. }
        )
    }

    /// What was wrong.
    pub fn what(&self) -> String {
        match self {
            CaptureError::UnknownBackend { name } => format!("unknown audio backend '{name}'"),
            CaptureError::BackendUnavailable { backend, reason } => {
                format!("the {backend} audio backend is not available ({reason})")
            }
            CaptureError::Enumerate { backend, reason } => {
                format!("cannot list the {backend} input devices ({reason})")
            }
            CaptureError::NoDefaultDevice { backend } => {
                format!("the {backend} backend has no default input device")
            }
            CaptureError::UnknownDevice { name, candidates } => format!(
                "no input device matches '{name}' (input devices: {})",
                list_or_none(candidates)
            ),
            CaptureError::AmbiguousDevice { name, candidates } => format!(
                "'{name}' matches {} input devices: {}",
                candidates.len(),
                candidates.join(", ")
            ),
            CaptureError::Unsupported {
                device,
                wanted,
                supported,
            } => format!("device '{device}' cannot capture {wanted} (it supports {supported})"),
            CaptureError::Stream { device, reason } => {
                format!("cannot start capturing from '{device}' ({reason})")
            }
            CaptureError::AlreadyStarted => "the capture is already running".into(),
            CaptureError::StreamLost {
                device,
                attempts,
                reason,
            } => format!(
                "lost the audio stream from '{device}' and {attempts} attempts to reopen it failed ({reason})"
            ),
            CaptureError::Thread { reason } => {
                format!("cannot start the capture supervisor thread ({reason})")
            }
        }
    }

    /// What to do about it.
    pub fn fix(&self) -> String {
        match self {
            CaptureError::UnknownBackend { .. } => "use auto, pulseaudio or alsa".into(),
            CaptureError::BackendUnavailable {
                backend: Backend::PulseAudio,
                ..
            } => "start PulseAudio (or pipewire-pulse), set PULSE_SERVER, or use the ALSA backend"
                .into(),
            CaptureError::BackendUnavailable { .. } | CaptureError::Enumerate { .. } => {
                "check that the audio system is installed and running (`w4l devices`)".into()
            }
            CaptureError::NoDefaultDevice { .. } => {
                "connect a microphone or pick a device by name".into()
            }
            CaptureError::UnknownDevice { .. } | CaptureError::AmbiguousDevice { .. } => {
                "pass an exact device name or id from the device list".into()
            }
            CaptureError::Unsupported { .. } => {
                "ask for a supported rate and channel count, or omit them to let w4l choose".into()
            }
            CaptureError::Stream { .. } | CaptureError::StreamLost { .. } => {
                "check that the device is connected and not in exclusive use, then retry".into()
            }
            CaptureError::AlreadyStarted => "stop it before starting it again".into(),
            CaptureError::Thread { .. } => "free some system resources and retry".into(),
        }
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = self.what();
        let fix = self.fix();
        // One line whatever a backend's message holds.
        let line = format!("{what}; {fix}");
        if line.contains(['\n', '\r']) {
            let folded: Vec<&str> = line
                .split(['\n', '\r'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            f.write_str(&folded.join(" "))
        } else {
            f.write_str(&line)
        }
    }
}

impl std::error::Error for CaptureError {}

impl From<CaptureError> for crate::error::Error {
    fn from(e: CaptureError) -> Self {
        if e.is_usage() {
            crate::error::Error::usage(e.what(), e.fix())
        } else {
            crate::error::Error::runtime(e.what(), e.fix())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_with_a_fix() {
        let e = CaptureError::AmbiguousDevice {
            name: "usb".into(),
            candidates: vec!["USB Mic (a)".into(), "USB Mic Pro (b)".into()],
        };
        assert_eq!(
            e.to_string(),
            "'usb' matches 2 input devices: USB Mic (a), USB Mic Pro (b); \
             pass an exact device name or id from the device list"
        );
        assert!(e.is_usage());
        let e = CaptureError::Stream {
            device: "x".into(),
            reason: "line one\nline two".into(),
        };
        assert!(!e.to_string().contains('\n'));
        assert!(!e.is_usage());
        let host: crate::error::Error = e.into();
        assert_eq!(host.exit_code(), 1);
        assert_eq!("PULSE".parse::<Backend>(), Ok(Backend::PulseAudio));
        assert!(
            "jack"
                .parse::<Backend>()
                .unwrap_err()
                .to_string()
                .contains("auto, pulseaudio or alsa")
        );
    }
}
