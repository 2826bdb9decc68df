//! Backend-neutral hosts, devices and streams: what the supervisor and `w4l devices` use, each
//! dispatching to the PulseAudio backend ([`pulse`](super::pulse)) or the ALSA one
//! ([`alsa`](super::alsa)).

use std::time::Duration;

use super::callback::Feed;
use super::negotiate::{ConfigRange, select_by_name};
use super::pulse::{self, PulseStream, Session, SourceDesc, StreamSpec};
use super::{Backend, CaptureError, SampleFormat, alsa};

/// An opened backend.
pub(crate) enum Host {
    /// The server's sources, as listed when it was opened, and the connection that listed them
    /// (kept for the first stream; see [`pulse::Session`]).
    Pulse(pulse::Snapshot, Option<Session>),
    Alsa(cpal::Host),
}

/// An opened backend and which one it is (never `Auto`).
pub(crate) struct OpenHost {
    pub(crate) host: Host,
    pub(crate) backend: Backend,
}

/// Opens the backend. `Auto`: PulseAudio (or PipeWire's `pipewire-pulse`) if a server answers,
/// else ALSA.
pub(crate) fn open_host(backend: Backend) -> Result<OpenHost, CaptureError> {
    let pulse = || {
        Session::open()
            .map(|(session, s)| OpenHost {
                host: Host::Pulse(s, Some(session)),
                backend: Backend::PulseAudio,
            })
            .map_err(|reason| CaptureError::BackendUnavailable {
                backend: Backend::PulseAudio,
                reason,
            })
    };
    let alsa = || {
        alsa::open_host().map(|h| OpenHost {
            host: Host::Alsa(h),
            backend: Backend::Alsa,
        })
    };
    match backend {
        Backend::Auto => pulse().or_else(|_| alsa()),
        Backend::PulseAudio => pulse(),
        Backend::Alsa => alsa(),
    }
}

impl OpenHost {
    /// The PulseAudio connection kept for the first stream, if any (taken: one stream per
    /// session).
    pub(super) fn take_session(&mut self) -> Option<Session> {
        match &mut self.host {
            Host::Pulse(_, session) => session.take(),
            Host::Alsa(_) => None,
        }
    }
}

/// A device of either backend.
#[derive(Clone)]
pub(crate) enum Device {
    Pulse(SourceDesc),
    Alsa(cpal::Device),
}

/// A device with its name and id.
#[derive(Clone)]
pub(crate) struct NamedDevice {
    pub(crate) device: Device,
    pub(crate) name: String,
    pub(crate) id: String,
}

impl NamedDevice {
    fn pulse(source: &SourceDesc) -> Self {
        Self {
            name: source.name.clone(),
            id: source.id.clone(),
            device: Device::Pulse(source.clone()),
        }
    }

    fn alsa(device: cpal::Device) -> Self {
        let (id, name) = alsa::names(&device);
        Self {
            device: Device::Alsa(device),
            name,
            id,
        }
    }

    pub(crate) fn label(&self) -> String {
        if self.name == self.id || self.id.is_empty() {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, self.id)
        }
    }

    /// What the device can capture in w4l's formats, and how many of its ranges w4l cannot
    /// convert. A PulseAudio source takes any of the server's formats, rates and channel counts:
    /// the server converts.
    pub(crate) fn configs(&self) -> Result<(Vec<ConfigRange>, usize), CaptureError> {
        match &self.device {
            Device::Pulse(_) => Ok((
                pulse::FORMATS
                    .iter()
                    .map(|&sample_format| ConfigRange {
                        sample_format,
                        min_channels: 1,
                        max_channels: pulse::MAX_CHANNELS,
                        min_rate: 1,
                        max_rate: pulse::MAX_RATE,
                    })
                    .collect(),
                0,
            )),
            Device::Alsa(d) => alsa::config_ranges(d).map_err(|e| CaptureError::Stream {
                device: self.label(),
                reason: alsa::cpal_message(&e),
            }),
        }
    }

    /// The device's own rate and channels, and the sample format to ask it for first: an ALSA
    /// device's own (if w4l has it); from a PulseAudio source 16-bit, the ring's format, which
    /// the server converts to from the source's own, as it does for `arecord -f S16_LE` (from
    /// PipeWire's `float32le` sources: half the bytes through the socket, no conversion in w4l).
    pub(crate) fn default_config(&self) -> Option<(u32, u16, Option<SampleFormat>)> {
        match &self.device {
            Device::Pulse(s) => Some((s.rate, s.channels, Some(SampleFormat::I16))),
            Device::Alsa(d) => alsa::default_config(d),
        }
    }
}

/// The backend's input devices.
pub(crate) fn input_devices(host: &OpenHost) -> Result<Vec<NamedDevice>, CaptureError> {
    match &host.host {
        Host::Pulse(s, _) => Ok(s.sources.iter().map(NamedDevice::pulse).collect()),
        Host::Alsa(h) => {
            use cpal::traits::HostTrait;
            let devices = h.input_devices().map_err(|e| CaptureError::Enumerate {
                backend: host.backend,
                reason: alsa::cpal_message(&e),
            })?;
            Ok(devices.map(NamedDevice::alsa).collect())
        }
    }
}

/// The backend's default input device.
pub(crate) fn default_device(host: &OpenHost) -> Result<NamedDevice, CaptureError> {
    let found = match &host.host {
        Host::Pulse(s, _) => s
            .default_source
            .as_ref()
            .and_then(|name| s.sources.iter().find(|d| &d.id == name))
            .map(NamedDevice::pulse),
        Host::Alsa(h) => {
            use cpal::traits::HostTrait;
            h.default_input_device().map(NamedDevice::alsa)
        }
    };
    found.ok_or(CaptureError::NoDefaultDevice {
        backend: host.backend,
    })
}

/// Finds a device by name on one host.
pub(super) fn find_device(host: &OpenHost, wanted: &str) -> Result<NamedDevice, CaptureError> {
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

/// Finds the device by its exact id (after a rebuild: a fresh host, the same device), else by
/// its name.
pub(super) fn find_device_by_id(
    host: &OpenHost,
    id: &str,
    name: &str,
) -> Result<NamedDevice, CaptureError> {
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

/// A running input stream of either backend. Dropping it ends it.
pub(super) enum InputStream {
    Pulse(PulseStream),
    Alsa(#[expect(dead_code, reason = "held for its Drop, which ends the stream")] cpal::Stream),
}

/// What a stream is opened with.
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamParams {
    pub(super) rate: u32,
    pub(super) channels: u16,
    pub(super) format: SampleFormat,
    pub(super) buffer_frames: u32,
}

/// Builds and starts a stream on `device` that feeds what `make_feed` makes; a PulseAudio
/// stream on `session`'s connection when there is one.
pub(super) fn open_stream(
    device: &NamedDevice,
    session: Option<Session>,
    params: StreamParams,
    make_feed: impl Fn() -> Feed,
    timeout: Duration,
) -> Result<InputStream, CaptureError> {
    let failed = |reason: String| CaptureError::Stream {
        device: device.label(),
        reason,
    };
    match &device.device {
        Device::Pulse(source) => {
            let spec = StreamSpec {
                source: source.id.clone(),
                rate: params.rate,
                channels: params.channels,
                format: params.format,
                fragment_frames: params.buffer_frames,
            };
            PulseStream::open(session, spec, make_feed(), timeout)
                .map(InputStream::Pulse)
                .map_err(failed)
        }
        Device::Alsa(d) => alsa::open_stream(
            d,
            (params.rate, params.channels, params.format),
            params.buffer_frames,
            make_feed,
            timeout,
        )
        .map(InputStream::Alsa)
        .map_err(|e| failed(alsa::cpal_message(&e))),
    }
}
