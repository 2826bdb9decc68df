//! `w4l record --mode file` and `--format f32` end to end: the take goes to a temporary WAV file
//! in `W4L_TEMP_DIR` as it is captured and is moved to `-o` at the end, sample-exact; nothing
//! is left in the temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use w4l_tests::{Run, json_field, json_u64, read_wav_i16, test_signal, w4l_with, write_wav_i16};

/// A test directory with a private `W4L_TEMP_DIR` (`<base>/w4l`, mode 0700).
struct Dirs {
    base: tempfile::TempDir,
    temp: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let base = tempfile::tempdir().expect("temp dir");
        let temp = base.path().join("w4l");
        fs::create_dir(&temp).expect("w4l dir");
        fs::set_permissions(&temp, fs::Permissions::from_mode(0o700)).expect("chmod");
        Dirs { base, temp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.base.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Run {
        w4l_with(
            args,
            &[("W4L_TEMP_DIR", self.temp.to_str().expect("utf-8"))],
            Duration::from_secs(120),
        )
    }

    /// Nothing of w4l's in the temporary directory (its lock file goes with the process).
    #[track_caller]
    fn assert_no_temp_files(&self) {
        let left: Vec<_> = fs::read_dir(&self.temp)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert!(left.is_empty(), "left in the temporary directory: {left:?}");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn file_mode_replay_is_sample_exact_mono_and_stereo() {
    let d = Dirs::new();
    for (rate, channels, frames) in [(16_000u32, 1u16, 81_234usize), (48_000, 2, 150_001)] {
        let input = d.path(&format!("in-{channels}.wav"));
        let output = d.path(&format!("out-{channels}.wav"));
        let samples = test_signal(frames, channels, rate);
        write_wav_i16(&input, rate, channels, &samples);
        let run = d
            .run(&[
                "record",
                "--mode",
                "file",
                "--input",
                input.to_str().expect("utf-8"),
                "-o",
                output.to_str().expect("utf-8"),
                "--json",
            ])
            .ok();
        assert!(run.stderr.is_empty(), "{run:#?}");
        let json = run.stdout.trim();
        let (spec, back) = read_wav_i16(&output);
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (rate, channels, 16)
        );
        assert_eq!(back.len(), samples.len(), "{json}");
        assert!(back == samples, "file mode differs from the input");
        assert_eq!(json_field(json, "mode"), Some("\"file\""));
        assert_eq!(json_field(json, "format"), Some("\"i16\""));
        assert_eq!(json_u64(json, "frames_written"), frames as u64);
        assert_eq!(json_u64(json, "frames_on_disk"), frames as u64);
        assert_eq!(json_u64(json, "frames_dropped"), 0);
        // File mode caches the newest two blocks (the journal holds everything).
        assert!(json_u64(json, "blocks_held") <= 2, "{json}");
        assert_eq!(json_u64(json, "disk_files"), 1);
        assert!(json_u64(json, "disk_bytes") >= (frames * usize::from(channels) * 2) as u64);
        assert!(
            json.contains(&format!("\"files\":[\"{}\"]", output.display())),
            "{json}"
        );
    }
    d.assert_no_temp_files();
    assert_eq!(
        names(d.base.path()),
        ["in-1.wav", "in-2.wav", "out-1.wav", "out-2.wav", "w4l"]
    );
}

#[test]
fn file_mode_seconds_is_exact_and_the_text_report_names_the_disk() {
    let d = Dirs::new();
    let input = d.path("in.wav");
    let samples = test_signal(3 * 16_000, 1, 11);
    write_wav_i16(&input, 16_000, 1, &samples);
    let output = d.path("out.wav");
    let run = d
        .run(&[
            "record",
            "--mode",
            "file",
            "--seconds",
            "1.5",
            "--input",
            input.to_str().expect("utf-8"),
            "-o",
            output.to_str().expect("utf-8"),
        ])
        .ok();
    assert!(run.stdout.contains("disk: file mode, 1.500 s"), "{run:#?}");
    let (_, back) = read_wav_i16(&output);
    assert!(back[..] == samples[..24_000]);
    d.assert_no_temp_files();
}

#[test]
fn f32_output_in_both_modes_holds_every_sample_exactly() {
    let d = Dirs::new();
    let input = d.path("in.wav");
    let samples = test_signal(40_000, 2, 12);
    write_wav_i16(&input, 22_050, 2, &samples);
    for mode in ["stream", "file"] {
        let output = d.path(&format!("out-{mode}.wav"));
        let run = d
            .run(&[
                "record",
                "--mode",
                mode,
                "--format",
                "f32",
                "--input",
                input.to_str().expect("utf-8"),
                "-o",
                output.to_str().expect("utf-8"),
                "--json",
            ])
            .ok();
        assert_eq!(json_field(&run.stdout, "format"), Some("\"f32\""));
        let mut r = hound::WavReader::open(&output).expect("open");
        let spec = r.spec();
        assert_eq!(
            (spec.sample_format, spec.bits_per_sample, spec.channels),
            (hound::SampleFormat::Float, 32, 2)
        );
        let back: Vec<f32> = r.samples::<f32>().map(|s| s.expect("sample")).collect();
        assert_eq!(back.len(), samples.len());
        let first_diff = back
            .iter()
            .zip(&samples)
            .position(|(b, &s)| b.to_bits() != (f32::from(s) / 32768.0).to_bits());
        assert_eq!(first_diff, None, "{mode}: f32 output is not the input");
    }
    d.assert_no_temp_files();
}

#[test]
fn bad_format_is_a_usage_error() {
    let d = Dirs::new();
    let input = d.path("in.wav");
    write_wav_i16(&input, 16_000, 1, &test_signal(1_000, 1, 13));
    let out = d.path("out.wav");
    d.run(&[
        "record",
        "--format",
        "s24",
        "--input",
        input.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
    ])
    .fails(2, &["s24"]);
    d.run(&[
        "record",
        "--disk-budget",
        "0",
        "--input",
        input.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
    ])
    .fails(2, &["greater than zero"]);
    assert!(!out.exists());
    d.assert_no_temp_files();
}
