//! The ALSA backend, through cpal: hardware devices (and ALSA's plugins), and the path on
//! platforms without a PulseAudio server. Opening the host (and quieting ALSA's stderr), its
//! devices and their formats, building a stream whose data callback feeds a [`Feed`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use cpal::traits::{DeviceTrait, StreamTrait};

use super::callback::{Feed, Incoming, Shared};
use super::negotiate::{ConfigRange, merge_ranges};
use super::{Backend, CaptureError, SampleFormat};

/// Opens cpal's ALSA host.
pub(crate) fn open_host() -> Result<cpal::Host, CaptureError> {
    quiet_alsa();
    cpal::host_from_id(cpal::HostId::Alsa).map_err(|e| CaptureError::BackendUnavailable {
        backend: Backend::Alsa,
        reason: cpal_message(&e),
    })
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

/// A device's id and human-readable name.
pub(super) fn names(device: &cpal::Device) -> (String, String) {
    let id = device
        .id()
        .map(|id| id.id().to_string())
        .unwrap_or_default();
    let name = device
        .description()
        .map(|d| d.name().to_string())
        .unwrap_or_else(|_| id.clone());
    (id, name)
}

/// The w4l format for a cpal format, if w4l can capture it.
fn from_cpal(format: cpal::SampleFormat) -> Option<SampleFormat> {
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

/// The device's input configurations in w4l's formats, adjacent channel counts with the same
/// format and rates merged, sorted by format preference then channels. Also the number of
/// cpal ranges left out (formats w4l cannot convert, such as 24-bit).
pub(super) fn config_ranges(
    device: &cpal::Device,
) -> Result<(Vec<ConfigRange>, usize), cpal::Error> {
    let mut skipped = 0;
    let mut ranges: Vec<ConfigRange> = Vec::new();
    for r in device.supported_input_configs()? {
        let Some(sample_format) = from_cpal(r.sample_format()) else {
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

/// The device's default input configuration: rate, channels, and the format if w4l has it.
pub(super) fn default_config(device: &cpal::Device) -> Option<(u32, u16, Option<SampleFormat>)> {
    let c = device.default_input_config().ok()?;
    Some((c.sample_rate(), c.channels(), from_cpal(c.sample_format())))
}

/// The error kinds that break a stream, for [`Shared::last_kind`].
pub(super) const BREAKING_KINDS: [cpal::ErrorKind; 9] = [
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

/// The name of the last error that broke a stream, from [`Shared::last_kind`].
pub(super) fn last_error(shared: &Shared) -> Option<&'static str> {
    let code = shared.last_kind.load(Ordering::Relaxed);
    let kind = code
        .checked_sub(1)
        .and_then(|i| BREAKING_KINDS.get(i as usize))?;
    Some(kind_name(*kind))
}

/// The error callback: counters, and for an error that breaks the stream a flag and a wake-up
/// of the supervisor (a short lock and a futex wake). cpal's ALSA host calls it on the stream's
/// own thread, between data callbacks, but only a breaking error (the stream is over) takes the
/// lock and makes the syscall; xruns and the rest are counters only.
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
            shared.break_stream(generation, None);
        }
    }
}

fn build_typed<T: Incoming + cpal::SizedSample>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut feed: Feed,
    timeout: Duration,
) -> Result<cpal::Stream, cpal::Error> {
    let (shared, generation) = feed.shared();
    let shared = shared.clone();
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| feed.on_data(data),
        move |e: cpal::Error| on_error(&shared, generation, &e),
        Some(timeout),
    )
}

/// Builds the stream (with `buffer_frames` per buffer, else the device's default size if it
/// refuses that) and plays it.
pub(super) fn open_stream(
    device: &cpal::Device,
    (rate, channels, format): (u32, u16, SampleFormat),
    buffer_frames: u32,
    make_feed: impl Fn() -> Feed,
    timeout: Duration,
) -> Result<cpal::Stream, cpal::Error> {
    let build = |buffer_size: cpal::BufferSize| {
        let config = cpal::StreamConfig {
            channels,
            sample_rate: rate,
            buffer_size,
        };
        let feed = make_feed();
        match format {
            SampleFormat::F32 => build_typed::<f32>(device, config, feed, timeout),
            SampleFormat::I16 => build_typed::<i16>(device, config, feed, timeout),
            SampleFormat::I32 => build_typed::<i32>(device, config, feed, timeout),
            SampleFormat::U16 => build_typed::<u16>(device, config, feed, timeout),
            SampleFormat::U8 => build_typed::<u8>(device, config, feed, timeout),
            SampleFormat::I8 => build_typed::<i8>(device, config, feed, timeout),
        }
    };
    let stream = match build(cpal::BufferSize::Fixed(buffer_frames)) {
        Err(e) if e.kind() == cpal::ErrorKind::UnsupportedConfig => {
            build(cpal::BufferSize::Default)?
        }
        other => other?,
    };
    stream.play()?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(last_error(&shared), Some("stream invalidated"));
    }
}
