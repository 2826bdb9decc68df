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
    use std::time::Duration;

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
            built_in(profile_dir)
        })
        .clone()
    }

    /// `w4l` built with the release profile into the tests' target directory (for figures that
    /// only a release build gives, such as peak RSS). `W4L_RELEASE_BIN` overrides it.
    pub fn w4l_release_bin() -> PathBuf {
        static BIN: OnceLock<PathBuf> = OnceLock::new();
        BIN.get_or_init(|| {
            if let Some(p) = std::env::var_os("W4L_RELEASE_BIN") {
                return PathBuf::from(p);
            }
            let exe = std::env::current_exe().expect("the test executable's path");
            // <target>/<profile>/deps/<test>-<hash>
            let target = exe
                .parent()
                .and_then(Path::parent)
                .and_then(Path::parent)
                .expect("target directory");
            built_in(&target.join("release"))
        })
        .clone()
    }

    /// `w4l` of the profile whose output directory is `profile_dir`, built (a no-op when fresh).
    fn built_in(profile_dir: &Path) -> PathBuf {
        let bin = profile_dir.join(format!("w4l{}", std::env::consts::EXE_SUFFIX));
        build(profile_dir, &bin);
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
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
            .args([
                "build",
                "--quiet",
                "-p",
                "w4l",
                "--features",
                "cli",
                "--bin",
                "w4l",
            ])
            .arg("--profile")
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
        let args: Vec<S> = args.into_iter().collect();
        crate::faults::Spawned::start(&args, env).wait(limit)
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

/// Fault-injection helpers: a `w4l` child process to signal or kill mid-take, conditions
/// polled with a deadline, the temporary directory (`W4L_TEMP_DIR`) and what is left in it,
/// small file systems for disk-full and read-only faults, WAV data as it sits on disk.
pub mod faults {
    use std::fs;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use crate::bin::{Run, w4l_bin};

    /// A private temporary directory for w4l (mode 0700) at `base/w4l`, for `W4L_TEMP_DIR`.
    pub fn private_dir(base: &Path) -> PathBuf {
        let dir = base.join("w4l");
        fs::create_dir(&dir).expect("create the private temporary directory");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod 700");
        dir
    }

    /// Polls `probe` every 20 ms until it returns `Some`, panicking with `what` after `limit`.
    #[track_caller]
    pub fn wait_for<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = probe() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?}: {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A running `w4l` (stdout and stderr collected in the background), to signal or kill.
    #[derive(Debug)]
    pub struct Spawned {
        child: Option<Child>,
        out: Option<JoinHandle<String>>,
        err: Option<JoinHandle<String>>,
        /// When it was spawned.
        pub started: Instant,
    }

    /// A directory of this test process's own, under the target directory (`<target>/w4l-test-
    /// homes/<pid>`), emptied when a later run reuses the pid.
    fn private_home() -> &'static Path {
        static HOME: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        HOME.get_or_init(|| {
            let exe = std::env::current_exe().expect("the test executable's path");
            // <target>/<profile>/deps/<test>-<hash>
            let target = exe
                .ancestors()
                .nth(3)
                .map_or_else(std::env::temp_dir, Path::to_path_buf);
            let home = target
                .join("w4l-test-homes")
                .join(std::process::id().to_string());
            let _ = fs::remove_dir_all(&home);
            fs::create_dir_all(&home).expect("a home for w4l");
            home
        })
    }

    impl Spawned {
        /// Starts `w4l args…` with `env` added (and no `RUST_LOG`/`RUST_BACKTRACE`).
        pub fn start<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Spawned {
            let mut cmd = Command::new(w4l_bin());
            cmd.args(args);
            Self::start_command(cmd, env)
        }

        /// Starts a prepared `w4l` command (e.g. with a `pre_exec`) the same way. Unless `env`
        /// says otherwise, w4l's cache and data directories (where its takes' journals and the
        /// takes it recovers live) are this test process's own, never the user's: a test that
        /// kills a take leaves its journal for the next start, and that must be a start of
        /// this test binary, not the next test run's or the developer's.
        pub fn start_command(mut cmd: Command, env: &[(&str, &str)]) -> Spawned {
            for (key, dir) in [("XDG_CACHE_HOME", "cache"), ("XDG_DATA_HOME", "data")] {
                // A variable the prepared command sets (or removes) is the test's choice.
                if !cmd.get_envs().any(|(k, _)| k == key) {
                    cmd.env(key, private_home().join(dir));
                }
            }
            cmd.env_remove("RUST_LOG")
                .env_remove("RUST_BACKTRACE")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().expect("spawn w4l");
            let collect = |mut r: Box<dyn Read + Send>| {
                std::thread::spawn(move || {
                    let mut s = String::new();
                    r.read_to_string(&mut s).ok();
                    s
                })
            };
            let out = collect(Box::new(child.stdout.take().expect("stdout")));
            let err = collect(Box::new(child.stderr.take().expect("stderr")));
            Spawned {
                child: Some(child),
                out: Some(out),
                err: Some(err),
                started: Instant::now(),
            }
        }

        /// The process id.
        pub fn pid(&self) -> u32 {
            self.child.as_ref().expect("running").id()
        }

        /// Sends `signal` (a name `kill -s` knows: `INT`, `TERM`, `HUP`, `KILL`).
        pub fn signal(&self, signal: &str) {
            let status = Command::new("kill")
                .args(["-s", signal, &self.pid().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -s {signal} failed");
        }

        /// Whether it has exited (without reaping it).
        pub fn has_exited(&mut self) -> bool {
            let child = self.child.as_mut().expect("running");
            matches!(child.try_wait(), Ok(Some(_)))
        }

        /// Waits up to `limit` for the exit (without reaping it); whether it exited.
        pub fn exits_within(&mut self, limit: Duration) -> bool {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if self.has_exited() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            self.has_exited()
        }

        /// Whether one of its threads is named `name` (`/proc/<pid>/task/*/comm`).
        pub fn has_thread(&self, name: &str) -> bool {
            let Ok(tasks) = fs::read_dir(format!("/proc/{}/task", self.pid())) else {
                return false;
            };
            tasks.flatten().any(|t| {
                fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
            })
        }

        /// Polls `probe` every 20 ms until it returns `Some`; panics with `what` (and what the
        /// process printed) if it exits first or `limit` passes.
        #[track_caller]
        pub fn until<T>(
            &mut self,
            limit: Duration,
            what: &str,
            mut probe: impl FnMut(&Spawned) -> Option<T>,
        ) -> T {
            let deadline = Instant::now() + limit;
            loop {
                if let Some(v) = probe(self) {
                    return v;
                }
                if self.has_exited() {
                    let run = self.take_run();
                    panic!("w4l exited before {what}: {run:#?}");
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out after {limit:?}: {what}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        fn take_run(&mut self) -> Run {
            let code = self
                .child
                .as_mut()
                .and_then(|c| c.wait().ok())
                .and_then(|s| s.code());
            self.child = None;
            self.collect(code)
        }

        /// The run with exit `code` and everything it printed (joins the output readers).
        fn collect(&mut self, code: Option<i32>) -> Run {
            let joined = |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok());
            Run {
                code,
                stdout: joined(self.out.take()).unwrap_or_default(),
                stderr: joined(self.err.take()).unwrap_or_default(),
            }
        }

        /// Waits for the exit (killing it after `limit`, then panicking) and returns the run.
        /// `code` is `None` when a signal ended it.
        #[track_caller]
        pub fn wait(mut self, limit: Duration) -> Run {
            let mut child = self.child.take().expect("running");
            let deadline = Instant::now() + limit;
            let status = loop {
                match child.try_wait().expect("wait for w4l") {
                    Some(status) => break status,
                    None if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        let err = self.err.take().and_then(|h| h.join().ok());
                        panic!("w4l did not finish within {limit:?}; stderr: {err:?}");
                    }
                    None => std::thread::sleep(Duration::from_millis(20)),
                }
            };
            self.collect(status.code())
        }

        /// SIGKILL, then reap it; returns what it printed.
        pub fn kill(mut self) -> Run {
            let mut child = self.child.take().expect("running");
            let _ = child.kill();
            let status = child.wait().expect("reap w4l");
            self.collect(status.code())
        }
    }

    impl Drop for Spawned {
        fn drop(&mut self) {
            // A failed assertion must not leave a recorder running.
            if let Some(child) = self.child.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Names in `dir` that w4l made: `w4l-*` entries (temporary files, lock files) and the
    /// hidden output partials (`.NAME.*.w4l-tmp`, `.w4l-check-*`), sorted. Entries in `keep`
    /// (planted on purpose) are not listed.
    pub fn w4l_leftovers(dir: &Path, keep: &[&Path]) -> Vec<String> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| !keep.iter().any(|k| *k == e.path()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("w4l-") || n.ends_with(".w4l-tmp") || n.starts_with(".w4l-"))
            .collect();
        names.sort();
        names
    }

    /// Asserts that w4l left nothing in `dir` (see [`w4l_leftovers`]).
    #[track_caller]
    pub fn assert_no_leftovers(dir: &Path, keep: &[&Path]) {
        let left = w4l_leftovers(dir, keep);
        assert!(left.is_empty(), "w4l left {left:?} in {}", dir.display());
    }

    /// The temporary audio files (`w4l-<pid>-<purpose>-<random>.wav`, regular files only) in
    /// `dir`, sorted.
    pub fn temp_wavs(dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("w4l-") && n.ends_with(".wav"))
            })
            .collect();
        v.sort();
        v
    }

    /// The temporary audio files of process `pid` in `dir` (see [`temp_wavs`]).
    pub fn temp_wavs_of(dir: &Path, pid: u32) -> Vec<PathBuf> {
        let prefix = format!("w4l-{pid}-");
        temp_wavs(dir)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect()
    }

    /// Where the `data` chunk's samples start in a WAV file's first bytes, and the size its
    /// header declares (`None` if there is no `data` chunk header yet).
    pub fn data_chunk(bytes: &[u8]) -> Option<(usize, u32)> {
        if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return None;
        }
        let mut at = 12usize;
        while at + 8 <= bytes.len() {
            let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?);
            if &bytes[at..at + 4] == b"data" {
                return Some((at + 8, size));
            }
            at = at.checked_add(8 + size as usize + (size as usize & 1))?;
        }
        None
    }

    /// Bytes of samples a WAV file being written holds on disk now (its length past the
    /// `data` chunk header), whatever its header says; 0 before the header is complete.
    pub fn data_bytes_on_disk(path: &Path) -> u64 {
        let Ok(bytes) = fs::read(path) else {
            return 0;
        };
        match data_chunk(&bytes) {
            Some((start, _)) => (bytes.len() - start) as u64,
            None => 0,
        }
    }

    /// The input's samples that `output` holds: asserts that `output` is exactly the first
    /// `output.len()` samples of `input` (naming the first difference), returns that length.
    #[track_caller]
    pub fn assert_prefix(output: &[i16], input: &[i16]) -> usize {
        assert!(
            output.len() <= input.len(),
            "the output holds {} samples, more than the {} of the input",
            output.len(),
            input.len()
        );
        let first_diff = output.iter().zip(input).position(|(a, b)| a != b);
        assert_eq!(
            first_diff,
            None,
            "the output is not the input's start: first difference at sample {first_diff:?} of {}",
            output.len()
        );
        output.len()
    }

    /// A WAV file's samples as `f32` (16-bit integers divided by 32768, floats as they are).
    pub fn read_wav_f32(path: &Path) -> (hound::WavSpec, Vec<f32>) {
        let mut r =
            hound::WavReader::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let spec = r.spec();
        let samples = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, _) => r
                .samples::<f32>()
                .collect::<Result<Vec<_>, _>>()
                .expect("read float samples"),
            (hound::SampleFormat::Int, 16) => r
                .samples::<i16>()
                .map(|s| s.map(|v| f32::from(v) / 32768.0))
                .collect::<Result<Vec<_>, _>>()
                .expect("read 16-bit samples"),
            other => panic!("unexpected WAV format {other:?} in {}", path.display()),
        };
        (spec, samples)
    }

    /// A file system mounted for one test (`mount -t tmpfs`), unmounted on drop. Needs root
    /// (or `CAP_SYS_ADMIN`); [`Tmpfs::mount`] returns `None` where mounting is not allowed.
    #[derive(Debug)]
    pub struct Tmpfs {
        dir: PathBuf,
    }

    impl Tmpfs {
        /// Mounts a tmpfs with `options` (e.g. `size=1m`, `ro,size=64k`) on the new directory
        /// `dir`, owned by the current user with mode 0700.
        pub fn mount(dir: &Path, options: &str) -> Option<Tmpfs> {
            fs::create_dir_all(dir).ok()?;
            let opts = format!("{options},mode=0700,uid={}", current_uid());
            let ok = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &opts, "w4l-test", dir.to_str()?])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            ok.then(|| Tmpfs {
                dir: dir.to_owned(),
            })
        }

        /// The mount point.
        pub fn path(&self) -> &Path {
            &self.dir
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// A small ext4 file system on a loop device, mounted for one test: a disk-backed file
    /// system other than the one the test's directories are on. Unmounted on drop.
    #[derive(Debug)]
    pub struct LoopExt4 {
        dir: PathBuf,
    }

    impl LoopExt4 {
        /// Makes a 64 MiB ext4 image `dir.img` and mounts it on the new directory `dir`
        /// (mode 0755, owned by the current user). Needs root, `mkfs.ext4` and a loop device;
        /// `Err` says which step failed where they are missing.
        pub fn mount(dir: &Path) -> Result<LoopExt4, String> {
            let image = dir.with_extension("img");
            fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            let image_arg = image.to_str().ok_or("a non-UTF-8 path")?;
            let dir_arg = dir.to_str().ok_or("a non-UTF-8 path")?;
            run("truncate", &["-s", "64M", image_arg])?;
            run("mkfs.ext4", &["-q", image_arg])?;
            run("mount", &["-o", "loop", image_arg, dir_arg])?;
            let mounted = LoopExt4 {
                dir: dir.to_owned(),
            };
            let uid = current_uid().to_string();
            run("chown", &[&uid, dir_arg])?;
            Ok(mounted)
        }

        /// The mount point.
        pub fn path(&self) -> &Path {
            &self.dir
        }
    }

    /// Runs `program args…`; `Err` with its stderr when it fails.
    fn run(program: &str, args: &[&str]) -> Result<(), String> {
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    impl Drop for LoopExt4 {
        fn drop(&mut self) {
            // `-d`: the loop device goes with the mount (`-l` would leave it attached).
            let umount = |flags: &[&str]| {
                Command::new("umount")
                    .args(flags)
                    .arg(&self.dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !umount(&["-d"]) {
                umount(&["-l", "-d"]);
            }
        }
    }

    /// The effective user id (from `/proc/self/status`, no libc needed).
    pub fn current_uid() -> u32 {
        fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(2))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(u32::MAX)
    }

    /// A pid that no process has now (for planting the leftovers of a dead process).
    pub fn dead_pid() -> u32 {
        (4_000_000..4_194_304)
            .find(|p| !Path::new(&format!("/proc/{p}")).exists())
            .unwrap_or(4_194_303)
    }
}
