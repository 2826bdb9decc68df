//! FLAC on disk end to end (issue 15 point 3): `w4l record --format flac` or `-o take.flac` in
//! every mode, a FLAC take killed with SIGKILL and recovered, and `w4l recover FILE.flac` on a
//! torn file. Every file is checked by the reference (`flac -t`: frames, CRCs, the MD5 of the
//! audio), by `soxi` (what libFLAC-based loaders see) and decoded with `claxon`, sample for
//! sample against the input. Needs `flac` and `sox` (`scripts/setup --test` installs them).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use w4l::wav::flac::FrameReader;
use w4l_tests::faults::{Spawned, assert_prefix, private_dir, temp_wavs_of};
use w4l_tests::{test_signal, w4l_with, write_wav_i16};

const RATE: u32 = 48_000;
const CHANNELS: u16 = 2;
const LIMIT: Duration = Duration::from_secs(60);

/// One test's directories and input.
struct Setup {
    base: tempfile::TempDir,
    temp: PathBuf,
    input: PathBuf,
    samples: Vec<i16>,
    data: String,
}

impl Setup {
    fn new(seconds: usize, seed: u32) -> Setup {
        let base = tempfile::tempdir().expect("temp dir");
        let temp = private_dir(base.path());
        let input = base.path().join("in.wav");
        let samples = test_signal(seconds * RATE as usize, CHANNELS, seed);
        write_wav_i16(&input, RATE, CHANNELS, &samples);
        let data = base.path().join("data").display().to_string();
        Setup {
            base,
            temp,
            input,
            samples,
            data,
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("W4L_TEMP_DIR", self.temp.to_str().expect("utf-8")),
            ("XDG_DATA_HOME", &self.data),
        ]
    }

    fn record(&self, output: &Path, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec!["record".into(), "--json".into(), "--input".into()];
        args.push(self.input.display().to_string());
        args.push("-o".into());
        args.push(output.display().to_string());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?} ({e}); scripts/setup --test installs it"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The file passes `flac -t` and `soxi` sees `frames` frames of 16-bit audio at the test's rate
/// and channels; returns its samples as `claxon` decodes them.
#[track_caller]
fn checked_flac(path: &Path, frames: usize) -> Vec<i16> {
    run(Command::new("flac").args(["-t", "-s"]).arg(path));
    let soxi = |flag: &str| {
        run(Command::new("soxi").arg(flag).arg(path))
            .trim()
            .to_owned()
    };
    assert_eq!(soxi("-s"), frames.to_string(), "{}", path.display());
    assert_eq!(
        (soxi("-r"), soxi("-c"), soxi("-b")),
        (RATE.to_string(), CHANNELS.to_string(), "16".to_owned())
    );
    let mut reader = claxon::FlacReader::open(path).expect("claxon opens it");
    reader
        .samples()
        .map(|s| i16::try_from(s.expect("claxon decodes it")).expect("16-bit"))
        .collect()
}

#[test]
fn replayed_takes_are_flac_files_sample_for_sample_in_every_mode() {
    let s = Setup::new(5, 91);
    let frames = s.samples.len() / usize::from(CHANNELS);
    for mode in ["stream", "file", "memory"] {
        // By the name, and by the flag with a name that says nothing.
        for (name, flag) in [("take.flac", &[][..]), ("take", &["--format", "flac"][..])] {
            let output = s.base.path().join(format!("{mode}-{name}"));
            let mut extra = vec!["--mode", mode];
            extra.extend(flag);
            let run = w4l_with(s.record(&output, &extra), &s.env(), LIMIT).ok();
            assert!(run.stdout.contains("\"format\":\"flac\""), "{run:#?}");
            let back = checked_flac(&output, frames);
            assert!(back == s.samples, "{mode} {name}: not the input");
        }
    }
    // A name that contradicts the format is refused before anything is recorded.
    let wav = s.base.path().join("take.wav");
    let run = w4l_with(s.record(&wav, &["--format", "flac"]), &s.env(), LIMIT);
    run.fails(2, &["named .wav", "flac"]);
    assert!(!wav.exists());
}

/// Samples in the whole frames of the FLAC file at `path` now (0 if it cannot be read yet).
fn samples_on_disk(path: &Path) -> usize {
    let Ok(file) = fs::File::open(path) else {
        return 0;
    };
    let Ok(mut reader) = FrameReader::new(std::io::BufReader::new(file)) else {
        return 0;
    };
    let mut n = 0;
    while let Ok(Some((_, samples))) = reader.next_frame() {
        n += samples.len();
    }
    n
}

#[test]
fn a_killed_flac_take_is_recovered_as_a_valid_flac_file() {
    let s = Setup::new(20, 92);
    let out = s.base.path().join("out");
    fs::create_dir(&out).expect("out dir");
    let output = out.join("take.flac");
    let args = s.record(&output, &["--realtime", "--mode", "file"]);
    let mut w = Spawned::start(&args, &s.env());
    let pid = w.pid();
    let journal = w.until(LIMIT, "the journal holds 2 s of frames", |_| {
        let journal = temp_wavs_of(&s.temp, pid).into_iter().next()?;
        (samples_on_disk(&journal) >= 2 * RATE as usize * usize::from(CHANNELS)).then_some(journal)
    });
    let on_disk = samples_on_disk(&journal);
    let killed = w.kill();
    assert_eq!(killed.code, None, "not killed: {killed:#?}");
    assert!(journal.exists() && !output.exists());

    let run = w4l_with(["recover"], &s.env(), LIMIT).ok();
    assert!(
        run.stdout.contains(output.to_str().expect("utf-8")),
        "not recovered at its output: {run:#?}"
    );
    let frames = run_frames(&output);
    let back = checked_flac(&output, frames);
    let n = assert_prefix(&back, &s.samples);
    assert!(
        n >= on_disk,
        "recovered {n} samples, {on_disk} were on disk"
    );
    assert!(!journal.exists());
}

/// Frames of the FLAC file at `path` as its STREAMINFO says.
fn run_frames(path: &Path) -> usize {
    let reader = claxon::FlacReader::open(path).expect("claxon opens it");
    reader.streaminfo().samples.expect("a total") as usize
}

#[test]
fn w4l_recover_repairs_a_torn_flac_file_and_keeps_the_original() {
    let s = Setup::new(3, 93);
    let whole = s.base.path().join("whole.flac");
    w4l_with(s.record(&whole, &[]), &s.env(), LIMIT).ok();
    let bytes = fs::read(&whole).expect("read");
    let torn = s.base.path().join("torn.flac");
    fs::write(&torn, &bytes[..bytes.len() * 2 / 3]).expect("write");
    let run = w4l_with(["recover", torn.to_str().expect("utf-8")], &s.env(), LIMIT).ok();
    assert!(run.stdout.starts_with("repaired"), "{run:#?}");
    let backup = s.base.path().join("torn.flac.w4l-bak");
    assert_eq!(
        fs::read(&backup).expect("backup"),
        bytes[..bytes.len() * 2 / 3]
    );
    let frames = run_frames(&torn);
    let back = checked_flac(&torn, frames);
    assert_prefix(&back, &s.samples);
    assert!(
        back.len() > s.samples.len() / 2,
        "{} samples kept",
        back.len()
    );
    // Consistent now: nothing more to do.
    let again = w4l_with(
        ["recover", "--no-backup", torn.to_str().expect("utf-8")],
        &s.env(),
        LIMIT,
    )
    .ok();
    assert!(
        again.stdout.contains("already a consistent FLAC file"),
        "{again:#?}"
    );
}
