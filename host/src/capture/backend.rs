//! Hosts, devices and formats (shared with `devices`): opening a cpal host (and quieting ALSA),
//! finding a device, and negotiating the format.

use std::fmt;

use cpal::traits::{DeviceTrait, HostTrait};
use serde::Serialize;

use super::{Backend, CaptureError, SampleFormat};

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
        quiet_jack();
    });
}

/// ALSA's `jack` plugin (Debian's libasound2-plugins) loads libjack when ALSA probes its PCMs,
/// and with no JACK server running libjack prints five lines on stderr ("Cannot connect to
/// server socket err = No such file or directory", "jack server is not running or cannot be
/// started", "JackShmReadWritePtr::~JackShmReadWritePtr - Init not done for -1, skipping
/// unlock", …). It prints through two global callbacks, so w4l loads libjack first (when it is
/// installed; the plugin then shares that copy) and points both at a function that ignores
/// the text. The library stays loaded, so the callbacks stay set. Opt-out as for ALSA's lines.
#[cfg(target_os = "linux")]
fn quiet_jack() {
    use std::ffi::{c_char, c_void};
    extern "C" fn ignore(_message: *const c_char) {}
    /// `void jack_set_error_function(void (*func)(const char *))`, and the same for info.
    type SetFunction = extern "C" fn(extern "C" fn(*const c_char));

    // SAFETY: a NUL-terminated constant name; `dlopen` returns null when the library is not
    // installed (nothing to quiet then).
    let lib = unsafe { libc::dlopen(c"libjack.so.0".as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
    if lib.is_null() {
        return;
    }
    for name in [c"jack_set_error_function", c"jack_set_info_function"] {
        // SAFETY: `lib` is a live handle (never closed); the name is NUL-terminated.
        let symbol = unsafe { libc::dlsym(lib, name.as_ptr()) };
        if symbol.is_null() {
            continue;
        }
        // SAFETY: libjack's `jack/jack.h` declares both functions with exactly this type, and
        // `symbol` is that function's address in the loaded library.
        let set = unsafe { std::mem::transmute::<*mut c_void, SetFunction>(symbol) };
        set(ignore);
    }
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

pub(super) fn kind_name(kind: cpal::ErrorKind) -> &'static str {
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

/// Finds the device by its exact id (after a rebuild: a fresh host, the same device).
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
/// `default_channels`, else the fewest supported. Format: `default_format` (the device's own:
/// no conversion in the audio server, and for a PulseAudio source of 16-bit samples half the
/// bytes through its socket of `f32`), else the first of [`SampleFormat::PREFERENCE`], that
/// supports both. `Err` describes what was wanted and what is supported.
pub fn negotiate(
    ranges: &[ConfigRange],
    rate: Option<u32>,
    channels: Option<u16>,
    default_rate: Option<u32>,
    default_channels: Option<u16>,
    default_format: Option<SampleFormat>,
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
        for format in default_format.into_iter().chain(SampleFormat::PREFERENCE) {
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
            negotiate(&r, None, Some(1), None, None, None),
            Ok((48000, 1, SampleFormat::F32))
        );
        let r = [
            range(SampleFormat::I16, (1, 1), (16000, 16000)),
            range(SampleFormat::U8, (1, 1), (16000, 44100)),
        ];
        assert_eq!(
            negotiate(&r, None, None, Some(44100), Some(1), None),
            Ok((16000, 1, SampleFormat::I16))
        );
        // Neither 48000 nor 16000: the device default.
        let r = [range(SampleFormat::I32, (2, 2), (44100, 44100))];
        assert_eq!(
            negotiate(&r, None, None, Some(44100), Some(2), None),
            Ok((44100, 2, SampleFormat::I32))
        );
        // No default: the closest to 48000 from below.
        let r = [range(SampleFormat::I8, (1, 1), (22050, 32000))];
        assert_eq!(
            negotiate(&r, None, None, None, None, None),
            Ok((32000, 1, SampleFormat::I8))
        );
    }

    #[test]
    fn negotiation_prefers_the_devices_own_format() {
        let r = [
            range(SampleFormat::I16, (1, 2), (8000, 48000)),
            range(SampleFormat::F32, (1, 2), (8000, 48000)),
        ];
        assert_eq!(
            negotiate(&r, None, Some(2), None, None, Some(SampleFormat::I16)),
            Ok((48000, 2, SampleFormat::I16))
        );
        // A default the device cannot do at that rate: the preference order.
        let r = [
            range(SampleFormat::I16, (1, 2), (8000, 16000)),
            range(SampleFormat::F32, (1, 2), (8000, 48000)),
        ];
        assert_eq!(
            negotiate(&r, None, Some(2), None, None, Some(SampleFormat::I16)),
            Ok((48000, 2, SampleFormat::F32))
        );
    }

    #[test]
    fn negotiation_failure_lists_what_is_supported() {
        let r = [range(SampleFormat::I16, (1, 2), (8000, 48000))];
        let (wanted, supported) =
            negotiate(&r, Some(96000), Some(2), None, None, None).unwrap_err();
        assert_eq!(wanted, "96000 Hz with 2 channel(s)");
        assert_eq!(supported, "i16 1-2 ch 8000-48000 Hz");
        let (wanted, _) = negotiate(&r, None, Some(6), None, None, None).unwrap_err();
        assert_eq!(wanted, "6 channel(s)");
        let (_, supported) = negotiate(&[], None, None, None, None, None).unwrap_err();
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
}
