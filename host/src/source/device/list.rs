//! The input devices w4l can capture from, with what each supports: `w4l devices [--json]`.
//!
//! [`list_devices_for`] lists the devices of a backend ([`Backend::Auto`]: PulseAudio when a
//! server answers, else ALSA). Every entry says
//! whether it is the default input and what [`Capture::open`](crate::source::device::Capture::open)
//! would negotiate on it without a rate or channel request. [`DeviceInfo`] and [`DeviceList`]
//! serialize to JSON and print as text.

use std::fmt;

use serde::Serialize;

use crate::source::device::{
    Backend, CaptureError, ConfigRange, NamedDevice, SampleFormat, default_device, describe_ranges,
    input_devices, negotiate, open_host,
};

/// A stream configuration (the device's default, or what w4l would choose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConfigChoice {
    /// Frames per second.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// Sample format.
    pub sample_format: SampleFormat,
}

impl fmt::Display for ConfigChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} Hz, {} ch, {}",
            self.rate, self.channels, self.sample_format
        )
    }
}

/// One input device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// Human-readable name.
    pub name: String,
    /// Id within the backend (`--device` matches it exactly, like the name).
    pub id: String,
    /// The backend it belongs to.
    pub backend: Backend,
    /// Whether it is the backend's default input.
    pub is_default: bool,
    /// Supported configurations in the formats w4l converts (adjacent channel counts merged).
    pub configs: Vec<ConfigRange>,
    /// cpal ranges left out because w4l cannot convert their format (24-bit, 64-bit, DSD).
    pub other_format_ranges: usize,
    /// The device's own default configuration, if it has one w4l can use.
    pub default_config: Option<ConfigChoice>,
    /// What `w4l record` would open without `--rate`/`--channels`.
    pub w4l_choice: Option<ConfigChoice>,
    /// Why the configurations could not be read, if they could not.
    pub error: Option<String>,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.is_default { "* " } else { "  " };
        if self.name == self.id {
            writeln!(f, "{mark}{} [{}]", self.name, self.backend)?;
        } else {
            writeln!(f, "{mark}{} [{} id: {}]", self.name, self.backend, self.id)?;
        }
        if let Some(e) = &self.error {
            return writeln!(f, "      unavailable: {e}");
        }
        writeln!(f, "      supports: {}", describe_ranges(&self.configs))?;
        if let Some(d) = &self.default_config {
            writeln!(f, "      default:  {d}")?;
        }
        match &self.w4l_choice {
            Some(c) => writeln!(f, "      w4l uses: {c}"),
            None => writeln!(f, "      w4l uses: nothing (no usable format)"),
        }
    }
}

/// The devices of one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceList {
    /// The backend listed.
    pub backend: Backend,
    /// Its input devices, the default first.
    pub devices: Vec<DeviceInfo>,
}

impl fmt::Display for DeviceList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.devices.is_empty() {
            return writeln!(f, "no input devices ({} backend)", self.backend);
        }
        writeln!(f, "input devices ({} backend, * = default):", self.backend)?;
        for d in &self.devices {
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The input devices of `backend` (`Auto`: PulseAudio if reachable, else ALSA).
///
/// # Errors
///
/// The backend is unavailable or cannot list its devices.
pub fn list_devices_for(backend: Backend) -> Result<DeviceList, CaptureError> {
    let host = open_host(backend)?;
    let default_id = default_device(&host).ok().map(|d| d.id);
    let mut devices: Vec<DeviceInfo> = input_devices(&host)?
        .into_iter()
        .map(|d| describe(d, host.backend, default_id.as_deref()))
        // ALSA lists every plugin of its configuration, most of which cannot capture here.
        .filter(|d| d.is_default || d.backend != Backend::Alsa || !d.configs.is_empty())
        .collect();
    devices.sort_by_key(|d| !d.is_default);
    Ok(DeviceList {
        backend: host.backend,
        devices,
    })
}

fn describe(d: NamedDevice, backend: Backend, default_id: Option<&str>) -> DeviceInfo {
    let mut info = DeviceInfo {
        name: d.name.clone(),
        id: d.id.clone(),
        backend,
        is_default: default_id == Some(d.id.as_str()),
        configs: Vec::new(),
        other_format_ranges: 0,
        default_config: None,
        w4l_choice: None,
        error: None,
    };
    match d.configs() {
        Ok((configs, skipped)) => {
            info.configs = configs;
            info.other_format_ranges = skipped;
        }
        Err(e) => {
            info.error = Some(e.what());
            return info;
        }
    }
    let default = d.default_config();
    info.default_config = default.and_then(|(rate, channels, format)| {
        Some(ConfigChoice {
            rate,
            channels,
            sample_format: format?,
        })
    });
    info.w4l_choice = negotiate(
        &info.configs,
        None,
        None,
        default.map(|c| c.0),
        default.map(|c| c.1),
        default.and_then(|c| c.2),
    )
    .ok()
    .map(|(rate, channels, sample_format)| ConfigChoice {
        rate,
        channels,
        sample_format,
    });
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_marks_the_default_and_shows_the_choice() {
        let info = DeviceInfo {
            name: "Monitor of w4l_virtual_microphone".into(),
            id: "w4l_mic.monitor".into(),
            backend: Backend::PulseAudio,
            is_default: true,
            configs: vec![ConfigRange {
                sample_format: SampleFormat::F32,
                min_channels: 1,
                max_channels: 31,
                min_rate: 1,
                max_rate: 768_000,
            }],
            other_format_ranges: 31,
            default_config: Some(ConfigChoice {
                rate: 48_000,
                channels: 2,
                sample_format: SampleFormat::I16,
            }),
            w4l_choice: Some(ConfigChoice {
                rate: 48_000,
                channels: 2,
                sample_format: SampleFormat::F32,
            }),
            error: None,
        };
        let list = DeviceList {
            backend: Backend::PulseAudio,
            devices: vec![info.clone()],
        };
        let text = list.to_string();
        assert_eq!(
            text,
            "input devices (pulseaudio backend, * = default):\n\
             * Monitor of w4l_virtual_microphone [pulseaudio id: w4l_mic.monitor]\n      \
             supports: f32 1-31 ch 1-768000 Hz\n      \
             default:  48000 Hz, 2 ch, i16\n      \
             w4l uses: 48000 Hz, 2 ch, f32\n"
        );
        let json = serde_json::to_string(&info).expect("json");
        assert!(json.contains(r#""backend":"pulseaudio""#), "{json}");
        assert!(json.contains(r#""is_default":true"#), "{json}");
        assert!(json.contains(r#""sample_format":"f32""#), "{json}");
    }
}
