//! A real PulseAudio-protocol server with a virtual microphone (`scripts/pulse`): PulseAudio, or
//! PipeWire with `pipewire-pulse`; speech to play into it, and the signal measures the capture
//! tests compare with.
//!
//! * [`Pulse::shared`] is the server `scripts/test` starts before `cargo test` (directory
//!   `$W4L_PULSE_DIR`, default `/tmp/w4l-pulse`): started here if it is not running, and left
//!   running (`scripts/test` stops it afterwards; by hand: `scripts/pulse stop`).
//! * [`Pulse::private`] is a server of the test's own (its own directory and socket), stopped
//!   and removed when the value is dropped: for tests that restart or disturb the server.
//!
//! Both run the server `W4L_AUDIO_SERVER` names ([`Server::requested`]: `pulseaudio`, the
//! default, or `pipewire`), so the same tests run against either:
//! `W4L_AUDIO_SERVER=pipewire cargo test -p w4l-tests --test capture_pulse`.
//!
//! A client reaches a server only through the environment [`Pulse::env`] gives
//! (`PULSE_SERVER`, `PULSE_COOKIE`): [`Pulse::command`] sets it on a child process. The test
//! process's own environment is never changed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `scripts/pulse` of this checkout.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("pulse")
}

/// The server behind the PulseAudio socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// PulseAudio's own daemon.
    PulseAudio,
    /// PipeWire, WirePlumber and `pipewire-pulse`.
    PipeWire,
}

impl Server {
    /// The server `W4L_AUDIO_SERVER` asks for: `pulseaudio` (also when unset) or `pipewire`.
    pub fn requested() -> Server {
        match std::env::var("W4L_AUDIO_SERVER").as_deref() {
            Err(std::env::VarError::NotPresent) | Ok("pulseaudio") => Server::PulseAudio,
            Ok("pipewire") => Server::PipeWire,
            other => panic!("W4L_AUDIO_SERVER is {other:?}; set it to pulseaudio or pipewire"),
        }
    }

    /// Its name for `scripts/pulse` (`W4L_AUDIO_SERVER`).
    pub fn name(self) -> &'static str {
        match self {
            Server::PulseAudio => "pulseaudio",
            Server::PipeWire => "pipewire",
        }
    }
}

/// A running server made by `scripts/pulse`.
#[derive(Debug)]
pub struct Pulse {
    dir: PathBuf,
    server: Server,
    private: bool,
}

impl Pulse {
    /// The shared server (`$W4L_PULSE_DIR` or `/tmp/w4l-pulse`), started if needed (replacing
    /// another kind of server running there); left running.
    pub fn shared() -> Pulse {
        let dir = std::env::var_os("W4L_PULSE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp/w4l-pulse"));
        Pulse::start(dir, false)
    }

    /// A server of this test's own under `/tmp/w4l-pulse-<tag>-<pid>`, stopped on drop.
    pub fn private(tag: &str) -> Pulse {
        let dir = PathBuf::from(format!("/tmp/w4l-pulse-{tag}-{}", std::process::id()));
        Pulse::start(dir, true)
    }

    fn start(dir: PathBuf, private: bool) -> Pulse {
        let pulse = Pulse {
            dir,
            server: Server::requested(),
            private,
        };
        // With W4L_AUDIO_SERVER set (by `command`), `start` runs exactly that server.
        pulse.run_script(&["start"]);
        pulse
    }

    /// Which server this is.
    pub fn server(&self) -> Server {
        self.server
    }

    /// The server's directory (`W4L_PULSE_DIR` for `scripts/pulse`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What a client needs to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "PULSE_SERVER".into(),
                format!("unix:{}", self.dir.join("native").display()),
            ),
            (
                "PULSE_COOKIE".into(),
                self.dir.join("cookie").display().to_string(),
            ),
        ]
    }

    /// `program` with this server's environment (and none of the caller's PulseAudio settings);
    /// `scripts/pulse` run this way starts the same kind of server again.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_remove("XDG_RUNTIME_DIR")
            .env_remove("PULSE_RUNTIME_PATH")
            .env("W4L_PULSE_DIR", &self.dir)
            .env("W4L_AUDIO_SERVER", self.server.name())
            .envs(self.env());
        cmd
    }

    /// Starts playing `wav` into the virtual microphone (`paplay --device=w4l_mic`).
    pub fn play(&self, wav: &Path) -> Child {
        self.command("paplay")
            .arg("--device=w4l_mic")
            .arg(wav)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn paplay")
    }

    /// Stops the server and starts it again on the same socket.
    pub fn restart(&self) {
        self.run_script(&["restart"]);
    }

    /// Whether the server answers.
    pub fn is_running(&self) -> bool {
        self.command(script())
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn run_script(&self, args: &[&str]) {
        let out = self
            .command(script())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/pulse");
        assert!(
            out.status.success(),
            "scripts/pulse {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        if self.private {
            let _ = self
                .command(script())
                .arg("stop")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Speaks `text` into a WAV file with `espeak-ng -w` (22050 Hz mono, 16-bit).
pub fn speak(text: &str, out: &Path) {
    let status = Command::new("espeak-ng")
        .arg("-w")
        .arg(out)
        .arg(text)
        .stdin(Stdio::null())
        .status()
        .expect("run espeak-ng (scripts/setup --test installs it)");
    assert!(status.success(), "espeak-ng failed: {status}");
}

/// A WAV file (any integer or float format) as mono `f32` (channels averaged), with its rate.
pub fn read_mono(path: &Path) -> (u32, Vec<f32>) {
    let mut r =
        hound::WavReader::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let spec = r.spec();
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .expect("read float samples"),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .expect("read integer samples")
        }
    };
    let ch = usize::from(spec.channels.max(1));
    let mono = interleaved
        .chunks(ch)
        .map(|f| f.iter().sum::<f32>() / ch as f32)
        .collect();
    (spec.sample_rate, mono)
}

/// RMS of consecutive `frame_ms` frames of a mono signal.
pub fn rms_envelope(mono: &[f32], rate: u32, frame_ms: u32) -> Vec<f32> {
    let len = (rate as usize * frame_ms as usize / 1000).max(1);
    mono.chunks_exact(len)
        .map(|f| (f.iter().map(|x| x * x).sum::<f32>() / len as f32).sqrt())
        .collect()
}

/// The best normalized cross-correlation of `clip` against every window of `take` of the same
/// length (lags `0..=take.len() - clip.len()`): `(correlation, lag)`. `(0, 0)` when `take` is
/// shorter than `clip` or a window is constant.
pub fn best_correlation(clip: &[f32], take: &[f32]) -> (f32, usize) {
    if clip.is_empty() || take.len() < clip.len() {
        return (0.0, 0);
    }
    let n = clip.len() as f64;
    let clip_mean = clip.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let a: Vec<f64> = clip.iter().map(|&x| f64::from(x) - clip_mean).collect();
    let a_norm = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut best = (0.0f32, 0usize);
    for lag in 0..=take.len() - clip.len() {
        let w = &take[lag..lag + clip.len()];
        let mean = w.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let mut dot = 0.0;
        let mut norm = 0.0;
        for (x, &y) in a.iter().zip(w) {
            let y = f64::from(y) - mean;
            dot += x * y;
            norm += y * y;
        }
        let denom = a_norm * norm.sqrt();
        if denom > 0.0 {
            let c = (dot / denom) as f32;
            if c > best.0 {
                best = (c, lag);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_finds_a_shifted_envelope() {
        let clip = [0.0, 1.0, 3.0, 1.0, 0.0, 2.0];
        let mut take = vec![0.1f32; 20];
        take[7..13].copy_from_slice(&clip.map(|x| x * 0.5 + 0.1));
        let (c, lag) = best_correlation(&clip, &take);
        assert_eq!(lag, 7);
        assert!((c - 1.0).abs() < 1e-5, "{c}");
        assert_eq!(best_correlation(&clip, &take[..3]), (0.0, 0));
    }

    #[test]
    fn envelope_is_rms_per_frame() {
        let env = rms_envelope(&[1.0, -1.0, 0.0, 0.0, 0.5], 100, 20);
        assert_eq!(env, vec![1.0, 0.0]);
    }
}
