//! The `w4l` command line: clap definitions and the size / duration parsers.
//!
//! Everything here only parses. Checks that need the machine (does the device exist, is the
//! output directory writable, is the `--input` file a WAV) happen in `main.rs` before anything
//! is recorded.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use w4l::source::device::Backend;
use w4l::take::Mode;
pub use w4l::units::format_bytes;
use w4l::wav::SampleFormat;

/// Capture audio for speech-to-text inside a memory budget, leaving no temporary files behind.
///
/// Logging goes to stderr; set RUST_LOG (e.g. RUST_LOG=w4l=debug) for more than warnings.
///
/// Exit status: 0 done; 1 runtime error; 2 usage error (nothing was recorded); 3 the take was
/// saved but audio was lost on the way (blocks dropped to stay within the budget; the summary
/// says how much). A signal that stops a command gracefully (the first Ctrl-C, SIGTERM or
/// SIGHUP) still ends it with 0 (3 if audio was lost); a second one exits at once with 128 +
/// the signal's number.
#[derive(Debug, Parser)]
#[command(name = "w4l", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the audio input devices.
    Devices(DevicesArgs),
    /// Record from a microphone (or replay a WAV file) into a WAV or FLAC file, inside a memory budget.
    ///
    /// Exit status 3: the take was saved, but audio was dropped to stay within the budget (the
    /// summary's `lost:` line says how much).
    ///
    /// The budget is capped by the machine: the smaller of the memory available now and the
    /// headroom under this process's cgroup limit (systemd scope, Flatpak, container); the
    /// cgroup's limit also becomes the RSS limit when tighter. Kernel memory pressure events
    /// (PSI) make the policy act at once: the cached audio, already on disk, is let go.
    Record(RecordArgs),
    /// Print this process's memory readings and the policy level at an interval, and what was
    /// detected: the cgroup (version, limit or "none") and where kernel memory pressure events
    /// come from (the PSI file and trigger), or exactly why none come.
    ///
    /// On a terminal: the detection on top, then a live view (sparklines of the RSS and the
    /// accounted memory, redrawn in place). Otherwise one plain line per reading (the first
    /// one ends with the detection). A pressure event triggers a reading at once, between the
    /// periodic ones (its line ends with `pressure event N`).
    Monitor(MonitorArgs),
    /// Run the whole pipeline on a built-in synthetic voice with a deliberately small budget,
    /// and print how the cleanup policy escalates and recovers. No microphone needed. Ctrl-C
    /// (or SIGTERM) ends it early, with the figures up to there.
    ///
    /// A stand-in speech model (an eighth of the budget, really allocated) loads in the
    /// background as the take starts, is unloaded under High pressure, reloaded on demand for
    /// the transcription after the take and unloaded again when idle for 10 s.
    Demo(DemoArgs),
    /// Remove the temporary files that killed or crashed w4l processes left behind (never a
    /// running w4l's files), and finish their unfinished takes into WAV files.
    Clean(CleanArgs),
    /// Repair WAV files whose header a crash left stale (cut to whole frames, sizes rewritten),
    /// in place, so every sample that reached the disk can be read. The original is kept as
    /// FILE.wav.w4l-bak.
    ///
    /// When every sample a file's data chunk declares is there, those samples and whatever
    /// follows them (a LIST chunk, stray bytes) are kept as they are: only the RIFF size is
    /// fixed. Otherwise (a writer killed mid-take) the samples run to the end of the file, cut
    /// to whole frames.
    ///
    /// Without FILE: finish the takes killed w4l processes left unfinished (any w4l start does
    /// this too); with --list, only list them.
    Recover(RecoverArgs),
}

/// `w4l devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print one JSON object (the backend and its devices) instead of text.
    #[arg(long)]
    pub json: bool,

    /// Audio backend: auto (PulseAudio if a server answers, else ALSA), pulseaudio or alsa.
    #[arg(long, value_name = "NAME", default_value = "auto", value_parser = parse_backend)]
    pub backend: Backend,
}

/// `--mode`: the library's [`Mode`], as clap lists and parses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Every sample to the take's journal on disk as it is captured (a crash loses at most the
    /// last second), and as much of the take in memory as the budget allows.
    Stream,
    /// Every sample to the journal as it is captured, and nothing of the take in memory beyond
    /// the window.
    File,
    /// Nothing on disk until the take is saved: what memory pressure evicts is lost (counted,
    /// reported, exit status 3).
    Memory,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Stream => Mode::Stream,
            ModeArg::File => Mode::File,
            ModeArg::Memory => Mode::Memory,
        }
    }
}

/// `--format`: the library's [`SampleFormat`], as clap lists and parses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// 16-bit integer PCM: the take's own resolution.
    I16,
    /// 32-bit IEEE float: each 16-bit sample as `x / 32768`, exactly (what Whisper consumes).
    F32,
    /// FLAC: 16-bit, lossless, a third to two thirds of the size on speech.
    Flac,
}

impl From<FormatArg> for SampleFormat {
    fn from(f: FormatArg) -> SampleFormat {
        match f {
            FormatArg::I16 => SampleFormat::I16,
            FormatArg::F32 => SampleFormat::F32,
            FormatArg::Flac => SampleFormat::Flac,
        }
    }
}

/// The Whisper model a take is for: the core's table ([`w4l_core::budget::Model`]), parsed by
/// the core (`small`, `Small`, `small.en`, `large-v3`, … name their base model).
pub use w4l_core::budget::Model;

fn parse_model(text: &str) -> Result<Model, String> {
    Model::parse(text).map_err(|e| e.to_string())
}

/// `w4l record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The file to write when recording ends: WAV, or FLAC when it is named .flac. A WAV take
    /// over 4 GiB continues in numbered files: FILE.001.wav, FILE.002.wav, … An existing
    /// regular file is replaced; anything else is refused: a symbolic link, a directory, a FIFO
    /// or pipe, a device, a socket, `-` (w4l does not stream audio to standard output), and the
    /// --input file itself.
    #[arg(short, long, value_name = "FILE", default_value = "recording.wav")]
    pub output: PathBuf,

    /// Format of the output (and of the take's temporary file): i16 (16-bit PCM WAV), f32
    /// (32-bit float WAV, each 16-bit sample exactly) or flac (lossless FLAC). Default: flac for
    /// an output named .flac, else i16; a format the output's extension contradicts is refused.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<FormatArg>,

    /// Stop after exactly this long (e.g. 10s, 500ms, 2m; a bare number is seconds). Without it,
    /// record until Ctrl-C (or until the end of the --input file).
    #[arg(long, allow_hyphen_values = true, value_name = "DURATION", value_parser = parse_duration)]
    pub seconds: Option<Duration>,

    /// Where the take lives while it records: its journal on disk (the output's format, moved to
    /// the output at the end) and how much of it memory keeps.
    #[arg(long, value_enum, default_value_t = ModeArg::Stream)]
    pub mode: ModeArg,

    /// Disk budget for the take's journal and temporary files, e.g. 2GiB. Default 1 GiB.
    #[arg(long, allow_hyphen_values = true, value_name = "SIZE", value_parser = parse_size)]
    pub disk_budget: Option<u64>,

    /// Length of the rolling "latest audio" window kept in memory (e.g. 30s). The command line
    /// reads none of it (the level meter measures the audio as it arrives), so by default it
    /// keeps none; a library app that calls latest() chooses its own (the library's default is
    /// 30 s).
    #[arg(long, allow_hyphen_values = true, value_name = "DURATION", value_parser = parse_duration)]
    pub window: Option<Duration>,

    /// Memory budget for the take (e.g. 512MiB, 100MB, 64k). Default: the --model's budget.
    /// Either is capped by the memory the machine has available now; a --window whose buffers
    /// need more than that is refused.
    #[arg(long, allow_hyphen_values = true, value_name = "SIZE", value_parser = parse_size)]
    pub budget: Option<u64>,

    /// The Whisper model the take is for: a budget, nothing is loaded. Its memory budget
    /// (footprint + 512 MiB: tiny 662 MiB, base 762 MiB, small 1012 MiB, medium 2012 MiB,
    /// large 3012 MiB; audio at most 100 MiB) is the default --budget, and the process's RSS
    /// limit. Without --budget, a warning says when the machine cannot hold the model beside
    /// the take now, and which smaller one it could.
    #[arg(long, value_name = "MODEL", default_value = "base", value_parser = parse_model)]
    pub model: Model,

    /// Draw the take's memory timeline to this SVG file when recording ends: accounted memory
    /// by category, RSS, budget and thresholds, the policy's levels, evictions and drops.
    #[arg(long, value_name = "FILE.svg")]
    pub timeline: Option<PathBuf>,

    /// The input device: its exact name or id, or a unique part of its name (see `w4l devices`).
    /// Default: the backend's default input.
    #[arg(long, value_name = "NAME", conflicts_with = "input")]
    pub device: Option<String>,

    /// Audio backend: auto (PulseAudio if a server answers, else ALSA), pulseaudio or alsa.
    #[arg(long, value_name = "NAME", default_value = "auto", value_parser = parse_backend, conflicts_with = "input")]
    pub backend: Backend,

    /// Replay this WAV file through the same pipeline instead of capturing from a device. It
    /// must be a regular file: a FIFO, a pipe (/dev/stdin fed by `|`) or a device is refused at
    /// once (a redirect, `--input /dev/stdin < in.wav`, is a file and works).
    #[arg(long, value_name = "FILE.wav")]
    pub input: Option<PathBuf>,

    /// With --input: replay at the file's real speed instead of as fast as possible.
    #[arg(long, requires = "input")]
    pub realtime: bool,

    /// Sample rate in Hz. Default: 48000 if the device supports it, else 16000, else its own
    /// default; the file's own rate with --input.
    #[arg(long, allow_hyphen_values = true, value_name = "HZ", value_parser = parse_rate)]
    pub rate: Option<u32>,

    /// Number of channels. Default: the device's own default; the file's own count with --input.
    #[arg(long, allow_hyphen_values = true, value_name = "N", value_parser = parse_channels)]
    pub channels: Option<u16>,

    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `w4l monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Time between two readings (e.g. 1s, 250ms).
    #[arg(long, allow_hyphen_values = true, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub interval: Duration,

    /// Stop after this many readings. Without it, run until Ctrl-C.
    #[arg(long, allow_hyphen_values = true, value_name = "N", value_parser = parse_count)]
    pub count: Option<u64>,

    /// Memory budget the policy level is computed against (e.g. 512MiB). Default: the --model's.
    #[arg(long, allow_hyphen_values = true, value_name = "SIZE", value_parser = parse_size)]
    pub budget: Option<u64>,

    /// The Whisper model whose budget applies.
    #[arg(long, value_name = "MODEL", default_value = "base", value_parser = parse_model)]
    pub model: Model,

    /// One JSON object per reading (JSON lines) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `w4l demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Length of the synthetic take (e.g. 90s, 2m).
    #[arg(long, allow_hyphen_values = true, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub seconds: Duration,

    /// The deliberately small memory budget (e.g. 1MiB).
    #[arg(long, allow_hyphen_values = true, value_name = "SIZE", value_parser = parse_size, default_value = "1MiB")]
    pub budget: u64,

    /// Print the timeline and the final figures as one JSON object.
    #[arg(long)]
    pub json: bool,

    /// Draw the demo's memory timeline to this SVG file: accounted memory by category, the
    /// budget and thresholds, the policy's levels, evictions and the model's unloads.
    #[arg(long, value_name = "FILE.svg")]
    pub timeline: Option<PathBuf>,
}

/// `w4l clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `w4l recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The WAV files to repair in place. Without any: finish the takes that killed w4l
    /// processes left unfinished (at their output path if free, else beside it or in
    /// $XDG_DATA_HOME/w4l/recovered; any w4l start does this too).
    #[arg(value_name = "FILE.wav")]
    pub files: Vec<PathBuf>,

    /// List the unfinished takes in the temporary directory (being recorded, or left by a
    /// killed process); change nothing.
    #[arg(long, conflicts_with_all = ["files", "dry_run", "no_backup", "samples_to_end"])]
    pub list: bool,

    /// Only show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Do not keep the original as FILE.wav.w4l-bak before changing it (by default it is kept,
    /// and a repair that would overwrite an earlier backup is refused).
    #[arg(long)]
    pub no_backup: bool,

    /// Take every byte after the data chunk's header as samples, to the end of the file, even
    /// when the header declares fewer: for a file whose writer rewrote its header and was
    /// then killed (w4l's own takes mark this themselves). A chunk after the samples becomes
    /// samples too.
    #[arg(long)]
    pub samples_to_end: bool,

    /// One JSON object per file (JSON lines) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Parses a size: a number with an optional unit. `k`/`K`/`KiB`, `M`/`MiB`, `G`/`GiB` are powers
/// of 1024; `kB`/`KB`, `MB`, `GB` are powers of 1000; `B` or no unit is bytes. Fractions are
/// allowed (`1.5GiB`). Zero, negative and out-of-range sizes are errors.
pub fn parse_size(s: &str) -> Result<u64, String> {
    const HINT: &str = "use a size like 512MiB, 100MB or 64k";
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("a size cannot be negative; {HINT}"));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim();
    if number.is_empty() {
        return Err(format!("'{s}' is not a size; {HINT}"));
    }
    let multiplier: u64 = match unit {
        "" | "B" | "b" => 1,
        "k" | "K" | "KiB" | "kiB" | "Ki" => 1 << 10,
        "kB" | "KB" => 1_000,
        "m" | "M" | "MiB" | "Mi" => 1 << 20,
        "MB" => 1_000_000,
        "g" | "G" | "GiB" | "Gi" => 1 << 30,
        "GB" => 1_000_000_000,
        "t" | "T" | "TiB" | "Ti" => 1 << 40,
        "TB" => 1_000_000_000_000,
        _ => return Err(format!("unknown size unit '{unit}'; {HINT}")),
    };
    let bytes = if let Ok(n) = number.parse::<u64>() {
        n.checked_mul(multiplier)
            .ok_or_else(|| format!("'{s}' is too large; {HINT}"))?
    } else {
        let f: f64 = number
            .parse()
            .map_err(|_| format!("'{s}' is not a size; {HINT}"))?;
        let b = (f * multiplier as f64).round();
        if !b.is_finite() || b >= u64::MAX as f64 {
            return Err(format!("'{s}' is too large; {HINT}"));
        }
        b as u64
    };
    if bytes == 0 {
        return Err(format!("a size must be greater than zero; {HINT}"));
    }
    Ok(bytes)
}

/// Parses a duration: a number with an optional unit `ms`, `s`, `m`/`min`, `h`; a bare number is
/// seconds. Fractions are allowed (`1.5s`). Zero, negative and absurd durations are errors.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const HINT: &str = "use a duration like 10s, 500ms or 2m";
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("a duration cannot be negative; {HINT}"));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.is_empty() {
        return Err(format!("'{s}' is not a duration; {HINT}"));
    }
    let seconds_per_unit = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown duration unit '{other}'; {HINT}")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a duration; {HINT}"))?;
    let secs = value * seconds_per_unit;
    // A year is far beyond any take; it also keeps frame counts far from overflow.
    if !secs.is_finite() || secs > 366.0 * 86_400.0 {
        return Err(format!("'{s}' is too long; {HINT}"));
    }
    let d = Duration::from_secs_f64(secs);
    if d.is_zero() {
        return Err(format!("a duration must be greater than zero; {HINT}"));
    }
    Ok(d)
}

/// Parses an audio backend name: `auto`, `pulseaudio` (or `pulse`), `alsa`.
pub fn parse_backend(s: &str) -> Result<Backend, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("unknown audio backend '{s}'; use auto, pulseaudio or alsa"))
}

/// Parses a sample rate in Hz (8000..=384000).
pub fn parse_rate(s: &str) -> Result<u32, String> {
    const HINT: &str = "use a rate between 8000 and 384000, e.g. 16000";
    let hz: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a sample rate; {HINT}"))?;
    if !(8_000..=384_000).contains(&hz) {
        return Err(format!("{hz} Hz is not a supported sample rate; {HINT}"));
    }
    Ok(hz)
}

/// Parses a channel count (1..=32).
pub fn parse_channels(s: &str) -> Result<u16, String> {
    const HINT: &str = "use 1 (mono) or 2 (stereo)";
    let n: u16 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a channel count; {HINT}"))?;
    if !(1..=32).contains(&n) {
        return Err(format!("{n} channels is not supported; {HINT}"));
    }
    Ok(n)
}

/// Parses a count of at least one.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a count; use a whole number like 5"))?;
    if n == 0 {
        return Err("the count must be at least 1; use a whole number like 5".into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("64k"), Ok(65_536));
        assert_eq!(parse_size("64 KiB"), Ok(65_536));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in [
            "0",
            "0MiB",
            "-5MiB",
            "",
            "MiB",
            "abc",
            "5 parsecs",
            "1e3",
            "99999999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_size("-1").unwrap_err().contains("negative"));
        assert!(parse_size("0").unwrap_err().contains("greater than zero"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("6"), Ok(Duration::from_secs(6)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in [
            "0",
            "0s",
            "-3s",
            "",
            "s",
            "ten",
            "3 fortnights",
            "1e400",
            "99999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rates_channels_counts() {
        assert_eq!(parse_rate("16000"), Ok(16_000));
        assert!(parse_rate("12").is_err());
        assert!(parse_rate("-16000").is_err());
        assert_eq!(parse_channels("2"), Ok(2));
        assert!(parse_channels("0").is_err());
        assert!(parse_count("0").is_err());
        assert_eq!(parse_count("3"), Ok(3));
    }

    #[test]
    fn bytes_format() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(64 << 20), "64.0 MiB");
    }
}
