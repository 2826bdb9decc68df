//! Audio capture from a real device through cpal, into any [`SampleSink`] (normally the
//! producer half of the core ring).
//!
//! ```text
//!  Capture::open(&CaptureRequest)   backend, device and format negotiated, nothing running yet
//!  capture.start(sink)              the cpal input stream runs; its callback converts every
//!                                   sample to f32 and pushes it into the sink
//!  capture.poll()                   the supervisor step (the caller's thread): rebuilds a stream
//!                                   that failed, with bounded retries and back-off
//!  capture.stop()                   the stream is gone: nothing more is pushed, so the consumer
//!                                   can drain everything pushed up to that moment
//! ```
//!
//! [`CaptureSource`] wraps a [`Capture`] as a recorder [`Source`], with the supervisor on its own
//! small thread.
//!
//! # The data callback
//!
//! No allocation, no lock, no system call, no logging, no panic. It converts the device's
//! samples (`f32`, `i16`, `u16`, `i32`, `u8` or `i8`) with [`w4l_core::sample::convert`] into a
//! fixed-size scratch buffer allocated when the stream is built, offers every chunk to the sink,
//! and adds to atomic counters: samples delivered, and samples the sink refused (**overruns**,
//! never silent). The sink lives in a slot guarded by an atomic flag, not a mutex, so that a
//! rebuilt stream can take it over and [`Capture::stop`] can take it away: after `stop` returns,
//! no callback can reach it.
//!
//! That makes the callback real-time safe, which matters only where the caller is real-time:
//! cpal's ALSA host calls it straight from its worker thread. cpal's PulseAudio host calls it
//! from the `pulseaudio` crate's reactor while that holds its state lock, and takes a mutex of
//! its own after it, so there the callback is merely cheap; the PulseAudio server's buffer, not
//! the callback, absorbs the scheduling delays.
//!
//! # Stream errors
//!
//! cpal's error callback only bumps counters and, for errors that end the stream (server gone,
//! device unplugged, anything but an xrun or a route change), marks the stream broken. A stream
//! that delivers nothing for [`RetryPolicy::stall_timeout`] counts as broken too (a server that
//! died without a word). [`Capture::poll`] then drops it and rebuilds it, from a fresh cpal host
//! (a PulseAudio client must reconnect), on a helper thread so that a hung server never blocks
//! the supervisor (at most one such thread at a time), retrying with doubling delays up to
//! [`RetryPolicy::attempts`] times before it gives up with [`CaptureError::StreamLost`]. An outage
//! ends only when a rebuilt stream delivers: one that opens but stays silent is a failed attempt
//! too, so a device that never delivers ends in `StreamLost`, not in endless rebuilds. The audio
//! missed meanwhile is counted in [`CaptureStats::gap_frames`]: the growth, across the outage, of
//! the difference between the frames the wall clock says the device produced and the frames it
//! delivered (exact to about one device buffer).
//!
//! # Backend choice, by measurement
//!
//! CPU time (user + system) of the whole process capturing 10 s of 48 kHz stereo from the
//! PulseAudio null-sink monitor of `scripts/pulse`, median of 3 runs, on the 2-core test VM while
//! other builds ran (`scripts/bench-capture` repeats the w4l and `arecord` rows):
//!
//! | capture path                                        | CPU s / 10 s      | vs `arecord` |
//! |-----------------------------------------------------|-------------------|--------------|
//! | `arecord` (libasound → ALSA `pulse` plugin)          | 0.020 – 0.022     | 1×           |
//! | cpal ALSA host → `pulse` plugin, `BufferSize::Default` (512-frame periods) | 0.40 – 0.95, and it lost 40 % of the frames | 20–45× |
//! | cpal ALSA host, `Fixed(1024)`                        | 0.70 – 0.95       | 35–45×       |
//! | cpal ALSA host, `Fixed(2048 … 24000)`                | bimodal: 0.03 – 0.06 or 0.5 – 0.9 per run | 1.5–45× |
//! | cpal `pulseaudio` host, `Default` (2 s fragments)    | 0.040 – 0.047     | 2.0–2.2×     |
//! | cpal `pulseaudio` host, `Fixed(1200)` (25 ms)        | 0.16 – 0.18       | 8×           |
//! | cpal `pulseaudio` host, `Fixed(2400)` (50 ms)        | 0.088 – 0.096     | 4.5×         |
//! | **cpal `pulseaudio` host, `Fixed(rate / 10)` (100 ms)** | **0.039 – 0.056** | **2.0–2.3×** |
//! | cpal `pulseaudio` host, `Fixed(9600 / 24000)`        | 0.041 – 0.050     | 2.0–2.3×     |
//!
//! The ALSA host spins: through the `pulse` plugin, `poll` reports the PCM readable before a whole
//! period is available, and cpal's worker loops straight back into `poll` (the "half a core"
//! report). It is fast or spinning from one run to the next, whatever the period. The
//! `pulseaudio` host (a native protocol client, no libpulse) never spun and delivered every frame.
//! So the default ([`Backend::Auto`]) is the `pulseaudio` host whenever a PulseAudio server (or
//! PipeWire's `pipewire-pulse`) is reachable, with 100 ms buffers: lowest CPU, and at most 100 ms
//! of audio in flight when the take stops. Without a server it is the ALSA host (real hardware,
//! where `poll` is exact), also with 100 ms periods.
//!
//! What remains of the gap to `arecord` is not in w4l: a profile shows about 55 % of the process's
//! time in `memset`, from the `pulseaudio` crate's reactor (0.3.2) zero-filling a fresh 1 MiB read
//! buffer on every socket read (`read_buf.resize(off + 1024 * 1024, 0)` in `Reactor::recv`).
//! Reading into a reused buffer instead brought the same capture to **0.017 s / 10 s (0.8×
//! `arecord`)**; that one-line fix belongs upstream (or in a `[patch]` of the workspace).
//!
//! `scripts/bench-capture` (3 runs of 10 s, medians, same VM): `arecord` 0.028 s CPU and
//! 6.8 MiB peak RSS; `w4l-capture-probe` (this module into the core ring, drained to a WAV file)
//! 0.065 s (2.3×) and 9.4 MiB (1.4×); the whole `w4l record` 0.18 s (6.5×) and 10.6 MiB: a
//! profile puts 57 % of that in the recorder's worker thread waking up (`park_timeout`), not in
//! capture.
//!
//! [`Source`]: crate::source::Source

use std::cell::UnsafeCell;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use serde::Serialize;
use w4l_core::ring::{Producer, RingRef, Storage};
use w4l_core::sample::{Sample, convert};

use crate::ring::AudioProducer;
use crate::source::{Source, SourceStats, SourceStatus};

/// Where captured samples go. The data callback calls [`push`](Self::push) with interleaved
/// `f32` samples; it must not block, allocate or lock.
pub trait SampleSink: Send + 'static {
    /// Takes as many of `samples` as it can and returns how many (a prefix). The rest are lost
    /// and counted as overruns.
    fn push(&mut self, samples: &[f32]) -> usize;
}

/// The core ring's producer is a sink. With `RejectNewest`, what does not fit is refused and
/// counted in the ring's `dropped`; the callback offers every sample to the ring, so
/// [`CaptureStats::overruns`] is exactly the ring's `dropped` plus the samples that met a busy
/// sink slot (only in a race with [`Capture::stop`] taking the sink away).
impl<R> SampleSink for Producer<R>
where
    R: RingRef + Send + 'static,
    R::Storage: Storage<Item = f32>,
{
    #[inline]
    fn push(&mut self, samples: &[f32]) -> usize {
        self.push_slice(samples)
    }
}

/// Which cpal host to capture through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// PulseAudio if a server is reachable, else ALSA (see the [module docs](self) for why).
    #[default]
    Auto,
    /// cpal's native PulseAudio client (also serves PipeWire through `pipewire-pulse`).
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

    fn host_id(self) -> Option<cpal::HostId> {
        match self {
            Backend::Auto => None,
            Backend::PulseAudio => Some(cpal::HostId::PulseAudio),
            Backend::Alsa => Some(cpal::HostId::Alsa),
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
    /// Every format, most preferred first: `f32` (no conversion), `i16` (what most microphones
    /// deliver), then the others, widest first.
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

    /// The w4l format for a cpal format, if w4l can capture it.
    pub fn from_cpal(format: cpal::SampleFormat) -> Option<Self> {
        Some(match format {
            cpal::SampleFormat::F32 => SampleFormat::F32,
            cpal::SampleFormat::I16 => SampleFormat::I16,
            cpal::SampleFormat::I32 => SampleFormat::I32,
            cpal::SampleFormat::U16 => SampleFormat::U16,
            cpal::SampleFormat::U8 => SampleFormat::U8,
            cpal::SampleFormat::I8 => SampleFormat::I8,
            _ => return None,
        })
    }

    /// The cpal format.
    pub fn to_cpal(self) -> cpal::SampleFormat {
        match self {
            SampleFormat::F32 => cpal::SampleFormat::F32,
            SampleFormat::I16 => cpal::SampleFormat::I16,
            SampleFormat::I32 => cpal::SampleFormat::I32,
            SampleFormat::U16 => cpal::SampleFormat::U16,
            SampleFormat::U8 => cpal::SampleFormat::U8,
            SampleFormat::I8 => cpal::SampleFormat::I8,
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
    /// failed attempt, so a silent device ends in [`CaptureError::StreamLost`] too.
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
    /// Which cpal host.
    pub backend: Backend,
    /// Frames per device buffer. `None`: a tenth of a second (see the [module docs](self)).
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
    /// The device's sample format (converted to `f32` in the callback).
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
    /// Errors cpal reported (every kind, including xruns).
    pub stream_errors: u64,
    /// Of those, xruns (the backend recovered by itself; audio may have a glitch).
    pub xruns: u64,
    /// Streams rebuilt after an error or a stall.
    pub restarts: u64,
    /// Frames missed while streams were down (see the [module docs](self)).
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
            } => "start PulseAudio (or pipewire-pulse), set PULSE_SERVER, or use --backend alsa"
                .into(),
            CaptureError::BackendUnavailable { .. } | CaptureError::Enumerate { .. } => {
                "check that the audio system is installed and running (`w4l devices`)".into()
            }
            CaptureError::NoDefaultDevice { .. } => {
                "connect a microphone or pick one with --device (see `w4l devices`)".into()
            }
            CaptureError::UnknownDevice { .. } | CaptureError::AmbiguousDevice { .. } => {
                "pass an exact name or id from `w4l devices` to --device".into()
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

// ---------------------------------------------------------------------------------------------
// Hosts, devices and formats (shared with `devices`)

/// An opened cpal host.
pub(crate) struct OpenHost {
    pub(crate) host: cpal::Host,
    pub(crate) backend: Backend,
}

/// Opens the backend's cpal host. `Auto`: PulseAudio if a server answers, else ALSA.
pub(crate) fn open_host(backend: Backend) -> Result<OpenHost, CaptureError> {
    let open = |b: Backend| -> Result<OpenHost, CaptureError> {
        let id = b.host_id().unwrap_or(cpal::HostId::Alsa);
        if id == cpal::HostId::PulseAudio
            && !cpal::available_hosts().contains(&cpal::HostId::PulseAudio)
        {
            return Err(CaptureError::BackendUnavailable {
                backend: b,
                reason: "no server socket: PULSE_SERVER and XDG_RUNTIME_DIR name none".into(),
            });
        }
        if id == cpal::HostId::Alsa {
            quiet_alsa();
        }
        cpal::host_from_id(id)
            .map(|host| OpenHost { host, backend: b })
            .map_err(|e| CaptureError::BackendUnavailable {
                backend: b,
                reason: cpal_message(&e),
            })
    };
    match backend {
        Backend::Auto => open(Backend::PulseAudio).or_else(|_| open(Backend::Alsa)),
        b => open(b),
    }
}

/// ALSA prints its own diagnostics on stderr ("ALSA lib pcm.c:2666:(snd_pcm_open_noupdate)
/// Unknown PCM default" when there is no sound card), around w4l's one-line errors. cpal already
/// turns every failure into an error value, so those lines are silenced once the ALSA host is
/// used, unless `W4L_ALSA_ERRORS=1`.
#[cfg(target_os = "linux")]
fn quiet_alsa() {
    unsafe extern "C" {
        // The C shim of `build.rs`: installs a C-variadic handler that ignores
        // everything, through `snd_lib_error_set_handler`.
        fn w4l_alsa_quiet() -> std::ffi::c_int;
    }

    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("W4L_ALSA_ERRORS").is_some_and(|v| v == "1") {
        return;
    }
    ONCE.call_once(|| {
        // SAFETY: a C function without parameters that only stores a pointer to a static
        // function of the right (variadic) type in libasound's global handler.
        unsafe {
            w4l_alsa_quiet();
        }
    });
}

#[cfg(not(target_os = "linux"))]
fn quiet_alsa() {}

/// A cpal error as one short line.
pub(crate) fn cpal_message(e: &cpal::Error) -> String {
    match e.message() {
        Some(m) if !m.is_empty() => format!("{}: {m}", kind_name(e.kind())),
        _ => kind_name(e.kind()).to_string(),
    }
}

fn kind_name(kind: cpal::ErrorKind) -> &'static str {
    use cpal::ErrorKind as K;
    match kind {
        K::DeviceBusy => "device busy",
        K::DeviceChanged => "device changed",
        K::DeviceNotAvailable => "device not available",
        K::HostUnavailable => "audio server not available",
        K::InvalidInput => "invalid argument",
        K::PermissionDenied => "permission denied",
        K::RealtimeDenied => "real-time scheduling refused",
        K::ResourceExhausted => "out of resources",
        K::StreamInvalidated => "stream invalidated",
        K::UnsupportedConfig => "configuration not supported",
        K::UnsupportedOperation => "operation not supported",
        K::Xrun => "xrun",
        K::BackendError => "backend error",
        _ => "error",
    }
}

/// A cpal input device with its name and id.
pub(crate) struct NamedDevice {
    pub(crate) device: cpal::Device,
    pub(crate) name: String,
    pub(crate) id: String,
}

impl NamedDevice {
    pub(crate) fn new(device: cpal::Device) -> Self {
        let id = device
            .id()
            .map(|id| id.id().to_string())
            .unwrap_or_default();
        let name = device
            .description()
            .map(|d| d.name().to_string())
            .unwrap_or_else(|_| id.clone());
        Self { device, name, id }
    }

    pub(crate) fn label(&self) -> String {
        if self.name == self.id || self.id.is_empty() {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, self.id)
        }
    }
}

/// The host's input devices.
pub(crate) fn input_devices(host: &OpenHost) -> Result<Vec<NamedDevice>, CaptureError> {
    let devices = host
        .host
        .input_devices()
        .map_err(|e| CaptureError::Enumerate {
            backend: host.backend,
            reason: cpal_message(&e),
        })?;
    Ok(devices.map(NamedDevice::new).collect())
}

/// The host's default input device.
pub(crate) fn default_device(host: &OpenHost) -> Result<NamedDevice, CaptureError> {
    host.host
        .default_input_device()
        .map(NamedDevice::new)
        .ok_or(CaptureError::NoDefaultDevice {
            backend: host.backend,
        })
}

/// Picks `wanted` among `names` (name, id): an exact name or id, else the one whose name or id
/// contains it, case-insensitively. `Err(None)`: none matches; `Err(Some(indices))`: several do.
pub(crate) fn select_by_name(
    names: &[(String, String)],
    wanted: &str,
) -> Result<usize, Option<Vec<usize>>> {
    if let Some(i) = names
        .iter()
        .position(|(name, id)| name == wanted || id == wanted)
    {
        return Ok(i);
    }
    let needle = wanted.to_lowercase();
    let hits: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, (name, id))| {
            name.to_lowercase().contains(&needle) || id.to_lowercase().contains(&needle)
        })
        .map(|(i, _)| i)
        .collect();
    match hits.len() {
        0 => Err(None),
        1 => Ok(hits[0]),
        _ => Err(Some(hits)),
    }
}

/// Finds a device by name on one host.
fn find_device(host: &OpenHost, wanted: &str) -> Result<NamedDevice, CaptureError> {
    let mut devices = input_devices(host)?;
    let names: Vec<(String, String)> = devices
        .iter()
        .map(|d| (d.name.clone(), d.id.clone()))
        .collect();
    match select_by_name(&names, wanted) {
        Ok(i) => Ok(devices.swap_remove(i)),
        Err(None) => Err(CaptureError::UnknownDevice {
            name: wanted.into(),
            candidates: devices.iter().map(NamedDevice::label).collect(),
        }),
        Err(Some(hits)) => Err(CaptureError::AmbiguousDevice {
            name: wanted.into(),
            candidates: hits.iter().map(|&i| devices[i].label()).collect(),
        }),
    }
}

/// Finds the device by its exact id (after a rebuild: a fresh host, the same device).
fn find_device_by_id(host: &OpenHost, id: &str, name: &str) -> Result<NamedDevice, CaptureError> {
    let devices = input_devices(host)?;
    let mut fallback = None;
    for d in devices {
        if d.id == id {
            return Ok(d);
        }
        if fallback.is_none() && d.name == name {
            fallback = Some(d);
        }
    }
    fallback.ok_or_else(|| CaptureError::UnknownDevice {
        name: name.into(),
        candidates: Vec::new(),
    })
}

/// A range of configurations a device supports, in w4l's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConfigRange {
    /// Sample format.
    pub sample_format: SampleFormat,
    /// Fewest channels.
    pub min_channels: u16,
    /// Most channels.
    pub max_channels: u16,
    /// Lowest rate, Hz.
    pub min_rate: u32,
    /// Highest rate, Hz.
    pub max_rate: u32,
}

impl ConfigRange {
    fn contains(&self, rate: u32, channels: u16) -> bool {
        (self.min_channels..=self.max_channels).contains(&channels)
            && (self.min_rate..=self.max_rate).contains(&rate)
    }
}

impl fmt::Display for ConfigRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.sample_format)?;
        if self.min_channels == self.max_channels {
            write!(f, "{} ch", self.min_channels)?;
        } else {
            write!(f, "{}-{} ch", self.min_channels, self.max_channels)?;
        }
        if self.min_rate == self.max_rate {
            write!(f, " {} Hz", self.min_rate)
        } else {
            write!(f, " {}-{} Hz", self.min_rate, self.max_rate)
        }
    }
}

/// The device's input configurations in w4l's formats, adjacent channel counts with the same
/// format and rates merged, sorted by format preference then channels. Also the number of
/// cpal ranges left out (formats w4l cannot convert, such as 24-bit).
pub(crate) fn config_ranges(
    device: &cpal::Device,
) -> Result<(Vec<ConfigRange>, usize), cpal::Error> {
    let mut skipped = 0;
    let mut ranges: Vec<ConfigRange> = Vec::new();
    for r in device.supported_input_configs()? {
        let Some(sample_format) = SampleFormat::from_cpal(r.sample_format()) else {
            skipped += 1;
            continue;
        };
        ranges.push(ConfigRange {
            sample_format,
            min_channels: r.channels(),
            max_channels: r.channels(),
            min_rate: r.min_sample_rate(),
            max_rate: r.max_sample_rate(),
        });
    }
    Ok((merge_ranges(ranges), skipped))
}

/// Merges ranges that differ only by adjacent channel counts.
pub(crate) fn merge_ranges(mut ranges: Vec<ConfigRange>) -> Vec<ConfigRange> {
    let rank = |f: SampleFormat| SampleFormat::PREFERENCE.iter().position(|&p| p == f);
    ranges.sort_by_key(|r| {
        (
            rank(r.sample_format),
            r.min_rate,
            r.max_rate,
            r.min_channels,
        )
    });
    let mut out: Vec<ConfigRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        if let Some(last) = out.last_mut()
            && last.sample_format == r.sample_format
            && last.min_rate == r.min_rate
            && last.max_rate == r.max_rate
            && r.min_channels <= last.max_channels.saturating_add(1)
        {
            last.max_channels = last.max_channels.max(r.max_channels);
            continue;
        }
        out.push(r);
    }
    out.sort_by_key(|r| (rank(r.sample_format), r.min_channels, r.min_rate));
    out
}

/// The rates tried, in order, when the request names none.
pub const PREFERRED_RATES: [u32; 2] = [48_000, 16_000];

/// Chooses rate, channels and format among `ranges`.
///
/// Rate: the requested one, else 48000, else 16000, else `default_rate`, else the highest
/// supported rate up to 48000 (or the lowest above). Channels: the requested count, else
/// `default_channels`, else the fewest supported. Format: the first of
/// [`SampleFormat::PREFERENCE`] that supports both. `Err` describes what was wanted and what is
/// supported.
pub fn negotiate(
    ranges: &[ConfigRange],
    rate: Option<u32>,
    channels: Option<u16>,
    default_rate: Option<u32>,
    default_channels: Option<u16>,
) -> Result<(u32, u16, SampleFormat), (String, String)> {
    let supported = describe_ranges(ranges);
    let fewest = ranges.iter().map(|r| r.min_channels).min();
    let Some(channels) = channels.or(default_channels).or(fewest) else {
        return Err(("any input".into(), supported));
    };
    let mut rates: Vec<u32> = match rate {
        Some(r) => vec![r],
        None => PREFERRED_RATES
            .iter()
            .copied()
            .chain(default_rate)
            .collect(),
    };
    if rate.is_none() {
        // Last resort: the supported rate closest to 48000 from below, else from above.
        let fits: Vec<&ConfigRange> = ranges
            .iter()
            .filter(|r| (r.min_channels..=r.max_channels).contains(&channels))
            .collect();
        if let Some(best) = fits
            .iter()
            .filter(|r| r.min_rate <= 48_000)
            .map(|r| r.max_rate.min(48_000))
            .max()
        {
            rates.push(best);
        } else if let Some(best) = fits.iter().map(|r| r.min_rate).min() {
            rates.push(best);
        }
    }
    for &r in &rates {
        for format in SampleFormat::PREFERENCE {
            if ranges
                .iter()
                .any(|c| c.sample_format == format && c.contains(r, channels))
            {
                return Ok((r, channels, format));
            }
        }
    }
    let wanted = match rate {
        Some(r) => format!("{r} Hz with {channels} channel(s)"),
        None => format!("{channels} channel(s)"),
    };
    Err((wanted, supported))
}

/// A short description of `ranges` for messages.
pub fn describe_ranges(ranges: &[ConfigRange]) -> String {
    if ranges.is_empty() {
        return "no format w4l can convert".into();
    }
    let parts: Vec<String> = ranges.iter().take(12).map(ToString::to_string).collect();
    let more = ranges.len().saturating_sub(12);
    if more > 0 {
        format!("{} and {more} more", parts.join(", "))
    } else {
        parts.join(", ")
    }
}

// ---------------------------------------------------------------------------------------------
// The callback side

/// Counters shared between the callbacks, the supervisor and whoever reads the stats.
#[derive(Debug, Default)]
struct Shared {
    /// Samples delivered by the device.
    samples: AtomicU64,
    /// Samples the sink accepted.
    pushed: AtomicU64,
    /// Samples lost.
    overruns: AtomicU64,
    /// Errors reported.
    errors: AtomicU64,
    /// Xruns reported.
    xruns: AtomicU64,
    /// Streams rebuilt (supervisor only).
    restarts: AtomicU64,
    /// Frames missed while streams were down (supervisor only).
    gap_frames: AtomicU64,
    /// The stream generation whose callbacks may push (0: none).
    generation: AtomicU64,
    /// The generation an error callback declared broken (0: none).
    broken: AtomicU64,
    /// The kind of the last error that broke a stream (index into [`BREAKING_KINDS`] + 1).
    last_kind: AtomicU8,
}

impl Shared {
    /// The counters, for a stream of `channels` channels.
    fn stats(&self, channels: u16) -> CaptureStats {
        CaptureStats {
            frames: self.samples.load(Ordering::Relaxed) / u64::from(channels.max(1)),
            samples_pushed: self.pushed.load(Ordering::Relaxed),
            overruns: self.overruns.load(Ordering::Relaxed),
            stream_errors: self.errors.load(Ordering::Relaxed),
            xruns: self.xruns.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            gap_frames: self.gap_frames.load(Ordering::Relaxed),
        }
    }
}

/// The error kinds that break a stream, for [`Shared::last_kind`].
const BREAKING_KINDS: [cpal::ErrorKind; 9] = [
    cpal::ErrorKind::DeviceNotAvailable,
    cpal::ErrorKind::HostUnavailable,
    cpal::ErrorKind::StreamInvalidated,
    cpal::ErrorKind::BackendError,
    cpal::ErrorKind::DeviceBusy,
    cpal::ErrorKind::PermissionDenied,
    cpal::ErrorKind::ResourceExhausted,
    cpal::ErrorKind::InvalidInput,
    cpal::ErrorKind::Other,
];

/// The sink, reachable by one party at a time: the current stream's callback, or the supervisor
/// (to install, hand over, or take it away). A flag, not a mutex: the callback never waits; if
/// the slot is busy (only while the supervisor swaps the sink) it counts its samples as lost.
struct SinkSlot {
    busy: AtomicBool,
    sink: UnsafeCell<Option<Box<dyn SampleSink>>>,
}

// SAFETY: the `UnsafeCell` is only reached through `try_with` and `replace`, and both do so only
// between winning `busy` (a compare-exchange from false to true, Acquire) and releasing it (a
// Release store of false, by `SlotGuard::drop`): at most one thread touches the sink at a time,
// and each one sees the previous one's writes. The sink itself is `Send`.
unsafe impl Sync for SinkSlot {}

/// Releases the slot's flag when dropped (also if the sink panics).
struct SlotGuard<'a>(&'a AtomicBool);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl SinkSlot {
    fn new() -> Self {
        Self {
            busy: AtomicBool::new(false),
            sink: UnsafeCell::new(None),
        }
    }

    fn acquire(&self) -> Option<SlotGuard<'_>> {
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SlotGuard(&self.busy))
    }

    /// Runs `f` on the sink. `None` if the slot is busy; `Some(None)` if it holds no sink.
    #[inline]
    fn try_with<R>(&self, f: impl FnOnce(&mut dyn SampleSink) -> R) -> Option<Option<R>> {
        let _guard = self.acquire()?;
        // SAFETY: `_guard` proves this thread won `busy`, so nobody else touches the cell until
        // it is dropped at the end of this function (see `unsafe impl Sync`).
        let sink = unsafe { &mut *self.sink.get() };
        Some(sink.as_mut().map(|s| f(s.as_mut())))
    }

    /// Puts `sink` in (or takes it out with `None`), waiting for a callback in progress to end.
    /// Returns what was there.
    fn replace(&self, sink: Option<Box<dyn SampleSink>>) -> Option<Box<dyn SampleSink>> {
        let _guard = loop {
            if let Some(g) = self.acquire() {
                break g;
            }
            // A callback is pushing: a few microseconds.
            std::thread::yield_now();
        };
        // SAFETY: as in `try_with`.
        let slot = unsafe { &mut *self.sink.get() };
        std::mem::replace(slot, sink)
    }
}

/// Samples in the callback's conversion buffer (16 KiB of `f32`).
const SCRATCH_SAMPLES: usize = 4096;

/// A sample type cpal delivers and the core converts.
trait Incoming: cpal::SizedSample + Sample + Send + 'static {
    /// Converts `data` through `scratch`, `N` samples at a time, and offers every chunk to the
    /// sink (so that what the sink refuses is exactly what this does not count as accepted);
    /// returns how many samples the sink accepted.
    #[inline]
    fn deliver<const N: usize>(
        data: &[Self],
        scratch: &mut [f32; N],
        sink: &mut dyn SampleSink,
    ) -> usize {
        const { assert!(N > 0, "the scratch buffer must hold a sample") };
        let mut accepted = 0;
        for chunk in data.chunks(N) {
            // `convert` writes `min(chunk.len(), N)` samples: the whole chunk.
            let n = convert(chunk, scratch);
            let (converted, _) = scratch.split_at(n);
            accepted += sink.push(converted);
        }
        accepted
    }
}

impl Incoming for f32 {
    #[inline]
    fn deliver<const N: usize>(
        data: &[f32],
        _scratch: &mut [f32; N],
        sink: &mut dyn SampleSink,
    ) -> usize {
        sink.push(data)
    }
}
impl Incoming for i16 {}
impl Incoming for i32 {}
impl Incoming for u16 {}
impl Incoming for u8 {}
impl Incoming for i8 {}

/// What one stream's data callback owns. The scratch buffer's length is part of the type (and
/// checked non-zero when compiled), so the callback cannot slice it out of bounds.
struct Feed<const N: usize = SCRATCH_SAMPLES> {
    shared: Arc<Shared>,
    slot: Arc<SinkSlot>,
    scratch: Box<[f32; N]>,
    generation: u64,
}

impl<const N: usize> Feed<N> {
    fn new(shared: Arc<Shared>, slot: Arc<SinkSlot>, generation: u64) -> Self {
        Self {
            shared,
            slot,
            scratch: Box::new([0.0; N]),
            generation,
        }
    }

    /// The data callback. No allocation, lock, system call, logging or panic.
    #[inline]
    fn on_data<T: Incoming>(&mut self, data: &[T]) {
        if self.shared.generation.load(Ordering::Acquire) != self.generation {
            // A stream that was replaced or stopped: its samples are not part of the take.
            return;
        }
        let n = data.len() as u64;
        let scratch = &mut *self.scratch;
        let accepted = match self
            .slot
            .try_with(|sink| T::deliver(data, scratch, sink) as u64)
        {
            Some(Some(accepted)) => accepted.min(n),
            // No sink (stopping): not part of the take, neither delivered nor lost.
            Some(None) => return,
            // Busy: the supervisor is swapping the sink.
            None => 0,
        };
        self.shared.samples.fetch_add(n, Ordering::Relaxed);
        self.shared.pushed.fetch_add(accepted, Ordering::Relaxed);
        if accepted < n {
            self.shared
                .overruns
                .fetch_add(n - accepted, Ordering::Relaxed);
        }
    }
}

/// The error callback: counters and a flag only.
fn on_error(shared: &Shared, generation: u64, error: &cpal::Error) {
    shared.errors.fetch_add(1, Ordering::Relaxed);
    match error.kind() {
        cpal::ErrorKind::Xrun => {
            shared.xruns.fetch_add(1, Ordering::Relaxed);
        }
        // The stream goes on (rerouted, or merely not real-time).
        cpal::ErrorKind::DeviceChanged | cpal::ErrorKind::RealtimeDenied => {}
        kind => {
            let code = BREAKING_KINDS
                .iter()
                .position(|&k| k == kind)
                .map_or(u8::MAX, |i| i as u8 + 1);
            shared.last_kind.store(code, Ordering::Relaxed);
            shared.broken.store(generation, Ordering::Release);
        }
    }
}

fn build_typed<T: Incoming>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut feed: Feed,
    timeout: Duration,
) -> Result<cpal::Stream, cpal::Error> {
    let shared = feed.shared.clone();
    let generation = feed.generation;
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| feed.on_data(data),
        move |e: cpal::Error| on_error(&shared, generation, &e),
        Some(timeout),
    )
}

// ---------------------------------------------------------------------------------------------
// Capture

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
    shared: Arc<Shared>,
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
        )
        .map_err(|(wanted, supported)| CaptureError::Unsupported {
            device: named.label(),
            wanted,
            supported,
        })?;
        let buffer_frames = request
            .buffer_frames
            .filter(|&b| b > 0)
            .unwrap_or((rate / 10).max(1));
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

    /// One supervisor step; call it every 50–200 ms from the thread that owns the capture.
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
        // the stream (PulseAudio) or joins its worker (ALSA).
        drop(self.stream.take());
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
        drop(self.stream.take());
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

// ---------------------------------------------------------------------------------------------
// As a recorder source

/// How often [`CaptureSource`]'s supervisor thread polls.
pub const SUPERVISOR_PERIOD: Duration = Duration::from_millis(100);

/// A [`Capture`] as a recorder [`Source`]: a small thread runs [`Capture::poll`] every
/// [`SUPERVISOR_PERIOD`] and reports a lost stream through the [`SourceStatus`].
#[derive(Debug)]
pub struct CaptureSource {
    format: StreamFormat,
    capture: Option<Capture>,
    stop: Arc<AtomicBool>,
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
            stop: Arc::new(AtomicBool::new(false)),
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
        let stop = Arc::new(AtomicBool::new(false));
        self.stop = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("w4l-capture".into())
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    std::thread::park_timeout(SUPERVISOR_PERIOD);
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    if let Err(e) = capture.poll() {
                        if let Some(status) = &status {
                            status.fail(e.into());
                        }
                        break;
                    }
                }
                let last = capture.stop();
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

    /// Stops the capture (joins the supervisor). Returns the final counters.
    pub fn stop_capture(&mut self) -> CaptureStats {
        self.stop.store(true, Ordering::Release);
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
        self.start_sink(producer, Some(status)).map_err(Into::into)
    }

    fn stop(&mut self) {
        self.stop_capture();
    }

    fn stats(&self) -> SourceStats {
        let s = CaptureSource::stats(self);
        SourceStats {
            stream_errors: s.stream_errors,
            xruns: s.xruns,
            restarts: s.restarts,
            gap_frames: s.gap_frames,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(f: SampleFormat, ch: (u16, u16), rate: (u32, u32)) -> ConfigRange {
        ConfigRange {
            sample_format: f,
            min_channels: ch.0,
            max_channels: ch.1,
            min_rate: rate.0,
            max_rate: rate.1,
        }
    }

    #[test]
    fn device_names_exact_then_unique_substring() {
        let names: Vec<(String, String)> = [
            ("Monitor of w4l_virtual_microphone", "w4l_mic.monitor"),
            ("USB Microphone", "alsa_input.usb-mic"),
            ("USB Microphone Pro", "alsa_input.usb-mic-pro"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(select_by_name(&names, "USB Microphone"), Ok(1));
        assert_eq!(select_by_name(&names, "alsa_input.usb-mic-pro"), Ok(2));
        assert_eq!(select_by_name(&names, "W4L_MIC"), Ok(0));
        assert_eq!(select_by_name(&names, "pro"), Ok(2));
        assert_eq!(select_by_name(&names, "usb"), Err(Some(vec![1, 2])));
        assert_eq!(select_by_name(&names, "nothing"), Err(None));
    }

    #[test]
    fn negotiation_prefers_48k_then_16k_and_f32_then_i16() {
        let r = [
            range(SampleFormat::I16, (1, 2), (8000, 48000)),
            range(SampleFormat::F32, (1, 2), (8000, 48000)),
            range(SampleFormat::U8, (1, 2), (8000, 96000)),
        ];
        assert_eq!(
            negotiate(&r, None, Some(1), None, None),
            Ok((48000, 1, SampleFormat::F32))
        );
        let r = [
            range(SampleFormat::I16, (1, 1), (16000, 16000)),
            range(SampleFormat::U8, (1, 1), (16000, 44100)),
        ];
        assert_eq!(
            negotiate(&r, None, None, Some(44100), Some(1)),
            Ok((16000, 1, SampleFormat::I16))
        );
        // Neither 48000 nor 16000: the device default.
        let r = [range(SampleFormat::I32, (2, 2), (44100, 44100))];
        assert_eq!(
            negotiate(&r, None, None, Some(44100), Some(2)),
            Ok((44100, 2, SampleFormat::I32))
        );
        // No default: the closest to 48000 from below.
        let r = [range(SampleFormat::I8, (1, 1), (22050, 32000))];
        assert_eq!(
            negotiate(&r, None, None, None, None),
            Ok((32000, 1, SampleFormat::I8))
        );
    }

    #[test]
    fn negotiation_failure_lists_what_is_supported() {
        let r = [range(SampleFormat::I16, (1, 2), (8000, 48000))];
        let (wanted, supported) = negotiate(&r, Some(96000), Some(2), None, None).unwrap_err();
        assert_eq!(wanted, "96000 Hz with 2 channel(s)");
        assert_eq!(supported, "i16 1-2 ch 8000-48000 Hz");
        let (wanted, _) = negotiate(&r, None, Some(6), None, None).unwrap_err();
        assert_eq!(wanted, "6 channel(s)");
        let (_, supported) = negotiate(&[], None, None, None, None).unwrap_err();
        assert_eq!(supported, "no format w4l can convert");
    }

    #[test]
    fn ranges_merge_adjacent_channel_counts() {
        let rs: Vec<ConfigRange> = (1..=31)
            .flat_map(|ch| {
                [
                    range(SampleFormat::I16, (ch, ch), (1, 384000)),
                    range(SampleFormat::F32, (ch, ch), (1, 384000)),
                ]
            })
            .collect();
        let merged = merge_ranges(rs);
        assert_eq!(
            merged,
            vec![
                range(SampleFormat::F32, (1, 31), (1, 384000)),
                range(SampleFormat::I16, (1, 31), (1, 384000)),
            ]
        );
        assert_eq!(merged[0].to_string(), "f32 1-31 ch 1-384000 Hz");
    }

    /// A sink that takes at most `room` samples in all.
    struct Limited {
        room: usize,
        got: Arc<std::sync::Mutex<Vec<f32>>>,
    }

    impl Limited {
        fn boxed(room: usize) -> (Box<dyn SampleSink>, Arc<std::sync::Mutex<Vec<f32>>>) {
            let got = Arc::new(std::sync::Mutex::new(Vec::new()));
            (
                Box::new(Limited {
                    room,
                    got: got.clone(),
                }),
                got,
            )
        }
    }

    impl SampleSink for Limited {
        fn push(&mut self, samples: &[f32]) -> usize {
            let n = samples.len().min(self.room);
            self.room -= n;
            self.got
                .lock()
                .expect("test sink")
                .extend_from_slice(&samples[..n]);
            n
        }
    }

    #[test]
    fn conversion_and_overrun_counting_for_every_format() {
        fn run<T: Incoming>(data: &[T], room: usize) -> (Vec<f32>, CaptureStats) {
            let shared = Arc::new(Shared::default());
            shared.generation.store(1, Ordering::Relaxed);
            let slot = Arc::new(SinkSlot::new());
            let (sink, got) = Limited::boxed(room);
            slot.replace(Some(sink));
            // A 3-sample scratch buffer: conversion in several chunks.
            let mut feed = Feed::<3>::new(shared.clone(), slot.clone(), 1);
            feed.on_data(data);
            assert!(slot.replace(None).is_some());
            let stats = shared.stats(1);
            let got = got.lock().expect("test sink").clone();
            (got, stats)
        }
        let (got, s) = run(&[0i16, 16384, -32768, 32767, -16384], 100);
        assert_eq!(got, [0.0, 0.5, -1.0, 32767.0 / 32768.0, -0.5]);
        assert_eq!((s.frames, s.samples_pushed, s.overruns), (5, 5, 0));
        let (got, s) = run(&[128u8, 0, 255, 192], 100);
        assert_eq!(got, [0.0, -1.0, 127.0 / 128.0, 0.5]);
        assert_eq!(s.overruns, 0);
        let (got, _) = run(&[32768u16, 0], 100);
        assert_eq!(got, [0.0, -1.0]);
        let (got, _) = run(&[i32::MIN, 0x4000_0000], 100);
        assert_eq!(got, [-1.0, 0.5]);
        let (got, _) = run(&[-128i8, 64], 100);
        assert_eq!(got, [-1.0, 0.5]);
        let (got, _) = run(&[0.25f32, 1.5, -2.0], 100);
        assert_eq!(got, [0.25, 1.5, -2.0]);
        // A full sink: what it accepted is pushed, the rest counted, never silent.
        let (got, s) = run(&[1i16, 2, 3, 4, 5, 6, 7], 4);
        assert_eq!(got.len(), 4);
        assert_eq!((s.samples_pushed, s.overruns), (4, 3));
        let (got, s) = run(&[0.0f32; 10], 0);
        assert!(got.is_empty());
        assert_eq!(s.overruns, 10);
    }

    #[test]
    fn stale_generation_and_busy_slot() {
        let shared = Arc::new(Shared::default());
        shared.generation.store(2, Ordering::Relaxed);
        let slot = Arc::new(SinkSlot::new());
        slot.replace(Some(Limited::boxed(100).0));
        let mut old = Feed::<8>::new(shared.clone(), slot.clone(), 1);
        old.on_data(&[0.5f32; 4]);
        assert_eq!(
            shared.samples.load(Ordering::Relaxed),
            0,
            "stale stream ignored"
        );
        let mut cur = Feed {
            generation: 2,
            ..old
        };
        let guard = slot.acquire().expect("free");
        cur.on_data(&[0.5f32; 4]);
        drop(guard);
        assert_eq!(
            shared.overruns.load(Ordering::Relaxed),
            4,
            "busy slot counts"
        );
        cur.on_data(&[0.5f32; 4]);
        assert_eq!(shared.pushed.load(Ordering::Relaxed), 4);
        // No sink (stopping): neither delivered nor lost.
        assert!(slot.replace(None).is_some());
        cur.on_data(&[0.5f32; 4]);
        assert_eq!(shared.samples.load(Ordering::Relaxed), 8);
        assert_eq!(shared.pushed.load(Ordering::Relaxed), 4);
        assert_eq!(shared.overruns.load(Ordering::Relaxed), 4);
    }

    /// A sink that refuses every other push, counting what it refused (like the ring's
    /// `dropped`).
    struct Alternating {
        refuse: bool,
        refused: Arc<AtomicU64>,
    }

    impl SampleSink for Alternating {
        fn push(&mut self, samples: &[f32]) -> usize {
            self.refuse = !self.refuse;
            if self.refuse {
                self.refused
                    .fetch_add(samples.len() as u64, Ordering::Relaxed);
                0
            } else {
                samples.len()
            }
        }
    }

    #[test]
    fn overruns_equal_what_the_sink_refused() {
        let shared = Arc::new(Shared::default());
        shared.generation.store(1, Ordering::Relaxed);
        let slot = Arc::new(SinkSlot::new());
        let refused = Arc::new(AtomicU64::new(0));
        slot.replace(Some(Box::new(Alternating {
            refuse: false,
            refused: refused.clone(),
        })));
        let mut feed = Feed::<4>::new(shared.clone(), slot.clone(), 1);
        // Chunks of 4, 4, 2: refused, accepted, refused.
        feed.on_data(&[1i16; 10]);
        assert_eq!(shared.overruns.load(Ordering::Relaxed), 6);
        assert_eq!(refused.load(Ordering::Relaxed), 6);
        assert_eq!(shared.pushed.load(Ordering::Relaxed), 4);
    }

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

    #[test]
    fn error_callback_marks_only_breaking_kinds() {
        let shared = Shared::default();
        on_error(&shared, 3, &cpal::Error::new(cpal::ErrorKind::Xrun));
        on_error(
            &shared,
            3,
            &cpal::Error::new(cpal::ErrorKind::DeviceChanged),
        );
        assert_eq!(shared.broken.load(Ordering::Relaxed), 0);
        on_error(
            &shared,
            3,
            &cpal::Error::new(cpal::ErrorKind::StreamInvalidated),
        );
        assert_eq!(shared.broken.load(Ordering::Relaxed), 3);
        assert_eq!(shared.errors.load(Ordering::Relaxed), 3);
        assert_eq!(shared.xruns.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn errors_are_one_line_with_a_fix() {
        let e = CaptureError::AmbiguousDevice {
            name: "usb".into(),
            candidates: vec!["USB Mic (a)".into(), "USB Mic Pro (b)".into()],
        };
        assert_eq!(
            e.to_string(),
            "'usb' matches 2 input devices: USB Mic (a), USB Mic Pro (b); \
             pass an exact name or id from `w4l devices` to --device"
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
