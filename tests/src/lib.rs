//! Helpers shared by the end-to-end tests.

pub use bin::{Run, w4l, w4l_bin, w4l_with};
pub use wavs::{read_wav_i16, test_signal, write_wav_i16};

/// The raw value of `"key":` in a one-line JSON object (numbers, `true`/`false`, or a string
/// with its quotes), good enough for the flat reports `w4l --json` prints.
pub fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":");
    let start = json.find(&pattern)? + pattern.len();
    let rest = &json[start..];
    let end = if let Some(quoted) = rest.strip_prefix('"') {
        quoted.find('"').map(|i| i + 2)?
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(&rest[..end])
}

/// `json_field` parsed as a `u64`; panics with the JSON when missing.
#[track_caller]
pub fn json_u64(json: &str, key: &str) -> u64 {
    json_field(json, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no integer {key:?} in {json}"))
}

/// Locating and running the `w4l` binary.
pub mod bin {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// The `w4l` binary of this build, built first (once per test process) with
    /// `cargo build -p w4l` in the same target directory and profile as the tests.
    ///
    /// The tests crate is a different package from `w4l`, so Cargo does not provide
    /// `CARGO_BIN_EXE_w4l`; the binary lives next to the `deps/` directory holding this test
    /// executable. Building through cargo every time (a no-op when fresh) also guarantees the
    /// binary is not stale. `W4L_BIN` overrides the whole search.
    pub fn w4l_bin() -> PathBuf {
        static BIN: OnceLock<PathBuf> = OnceLock::new();
        BIN.get_or_init(|| {
            if let Some(p) = std::env::var_os("W4L_BIN") {
                return PathBuf::from(p);
            }
            let exe = std::env::current_exe().expect("the test executable's path");
            // <target>/<profile>/deps/<test>-<hash>
            let deps = exe.parent().expect("deps directory");
            let profile_dir = if deps.file_name().is_some_and(|n| n == "deps") {
                deps.parent().expect("profile directory")
            } else {
                deps
            };
            let bin = profile_dir.join(format!("w4l{}", std::env::consts::EXE_SUFFIX));
            build(profile_dir, &bin);
            assert!(bin.is_file(), "{} was not built", bin.display());
            bin
        })
        .clone()
    }

    fn build(profile_dir: &Path, bin: &Path) {
        let Some(target_dir) = profile_dir.parent() else {
            return;
        };
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_owned(),
            Some(other) => other.to_owned(),
            None => "dev".to_owned(),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "w4l", "--bin", "w4l", "--profile"])
            .arg(&profile)
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => {}
            // An existing binary is better than none (e.g. no cargo in PATH).
            _ if bin.is_file() => {}
            other => panic!("building w4l failed: {other:?}"),
        }
    }

    /// A finished run of `w4l`.
    #[derive(Debug)]
    pub struct Run {
        /// Exit code (`None` if killed by a signal).
        pub code: Option<i32>,
        /// Standard output.
        pub stdout: String,
        /// Standard error.
        pub stderr: String,
    }

    impl Run {
        /// Asserts a zero exit and returns `self`.
        #[track_caller]
        pub fn ok(self) -> Self {
            assert_eq!(self.code, Some(0), "w4l failed: {self:#?}");
            self
        }

        /// Asserts that the run failed with `code`, printed exactly one line on stderr that
        /// starts with `error: ` and contains every one of `needles`, and no panic or
        /// backtrace. Returns the error line.
        #[track_caller]
        pub fn fails(&self, code: i32, needles: &[&str]) -> String {
            assert_eq!(self.code, Some(code), "wrong exit code: {self:#?}");
            let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.is_empty()).collect();
            assert_eq!(lines.len(), 1, "expected one stderr line: {self:#?}");
            let line = lines[0];
            assert!(line.starts_with("error: "), "{line}");
            assert!(line.contains("; "), "no remedy in {line:?}");
            for n in needles {
                assert!(line.contains(n), "{line:?} does not mention {n:?}");
            }
            for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
                assert!(!self.stderr.contains(bad), "{bad} in {:?}", self.stderr);
            }
            line.to_owned()
        }
    }

    /// Runs `w4l args…` with a 120 s limit and no `RUST_LOG`.
    pub fn w4l<I, S>(args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        w4l_with(args, &[], Duration::from_secs(120))
    }

    /// Runs `w4l args…` with extra environment variables, killing it after `limit`.
    pub fn w4l_with<I, S>(args: I, env: &[(&str, &str)], limit: Duration) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(w4l_bin());
        cmd.args(args)
            .env_remove("RUST_LOG")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn w4l");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut s).ok();
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut stderr, &mut s).ok();
            s
        });
        let deadline = Instant::now() + limit;
        let status = loop {
            match child.try_wait().expect("wait for w4l") {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("w4l did not finish within {limit:?}");
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        Run {
            code: status.code(),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        }
    }
}

/// Writing and reading test WAV files.
pub mod wavs {
    use std::path::Path;

    /// Writes interleaved 16-bit samples as a WAV file.
    pub fn write_wav_i16(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).expect("create test WAV");
        for &s in samples {
            w.write_sample(s).expect("write test WAV");
        }
        w.finalize().expect("finalize test WAV");
    }

    /// Reads a 16-bit WAV file: its spec and every sample.
    pub fn read_wav_i16(path: &Path) -> (hound::WavSpec, Vec<i16>) {
        let mut r =
            hound::WavReader::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let spec = r.spec();
        let samples = r
            .samples::<i16>()
            .collect::<Result<Vec<_>, _>>()
            .expect("read samples");
        (spec, samples)
    }

    /// A deterministic test signal that exercises every bit: a sweep plus pseudo-random noise,
    /// including both extremes (`i16::MIN`, `i16::MAX`), `frames × channels` samples.
    pub fn test_signal(frames: usize, channels: u16, seed: u32) -> Vec<i16> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        let n = frames * usize::from(channels);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let sweep = ((i as f64 * 0.001 * (1.0 + i as f64 * 1e-5)).sin() * 20_000.0) as i32;
            let noise = (x % 8_192) as i32 - 4_096;
            out.push((sweep + noise).clamp(i16::MIN as i32, i16::MAX as i32) as i16);
        }
        if n >= 2 {
            out[0] = i16::MIN;
            out[n - 1] = i16::MAX;
        }
        out
    }
}

pub mod pulse;
