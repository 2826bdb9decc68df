//! File mode, spill and the take's files, through the library, in real temporary directories:
//! every output read back with hound and compared sample by sample.
//!
//! * numbered files past the WAV size limit (lowered to a few KiB here), in file mode and for a
//!   spilled stream take: together exactly the take;
//! * the header checkpoint: a take file read as it lies, mid-take, plays up to at most a second
//!   before its end;
//! * the disk budget: a refused write writes nothing, the file stays whole;
//! * `f32` output: each 16-bit sample exactly as `x / 32768`;
//! * nothing left in the temporary directory afterwards.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use w4l::memory::monitor::{MemoryMonitor, MonitorConfig};
use w4l::recorder::{Recorder, RecorderConfig};
use w4l::source::WavReplay;
use w4l::take::Mode;
use w4l::take::file::{TakeFile, TakeFileConfig};
use w4l::tempfiles::ResourceManager;
use w4l::wav::{SampleFormat, numbered_path};
use w4l_core::accountant::{Accountant, Category};

const RATE: u32 = 16_000;

/// A deterministic signal: noise and a sweep, both extremes, `frames × channels` samples.
fn signal(frames: usize, channels: u16, seed: u32) -> Vec<i16> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..frames * usize::from(channels))
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let sweep = ((i as f64 * 0.003).sin() * 18_000.0) as i32;
            (sweep + (x % 8_192) as i32 - 4_096).clamp(-32_768, 32_767) as i16
        })
        .collect()
}

fn write_wav(path: &Path, channels: u16, samples: &[i16]) {
    let spec = SampleFormat::I16.spec(RATE, channels);
    let mut w = hound::WavWriter::create(path, spec).expect("create input");
    for &s in samples {
        w.write_sample(s).expect("write input");
    }
    w.finalize().expect("finalize input");
}

fn read_i16(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    let s = r
        .samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .expect("samples");
    (spec, s)
}

/// A test directory with a private temporary directory (`<base>/w4l`) and its manager.
struct Dirs {
    base: tempfile::TempDir,
    manager: Arc<ResourceManager>,
}

impl Dirs {
    fn new() -> Dirs {
        let base = tempfile::tempdir().expect("test dir");
        let manager = ResourceManager::open(base.path().join("w4l")).expect("manager");
        Dirs { base, manager }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.base.path().join(name)
    }

    /// The temporary directory holds nothing but this process's lock file.
    #[track_caller]
    fn assert_no_temp_files(&self) {
        let left: Vec<String> = fs::read_dir(self.manager.dir())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wav"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
}

fn monitor(memory: usize, disk: usize) -> Arc<MemoryMonitor> {
    Arc::new(
        MemoryMonitor::new(
            Arc::new(Accountant::new(memory, disk)),
            MonitorConfig {
                observe_system: false,
                ..MonitorConfig::default()
            },
        )
        .expect("monitor"),
    )
}

/// Replays `input` through a recorder with `config` to the end, saves to `output`.
fn record(
    input: &Path,
    output: &Path,
    monitor: Arc<MemoryMonitor>,
    config: RecorderConfig,
) -> (w4l::take::Saved, w4l::recorder::RecorderInfo) {
    let source = WavReplay::open(input, false).expect("open input");
    let rec = Recorder::new(Box::new(source), monitor, config).expect("recorder");
    rec.start().expect("start");
    assert!(rec.wait(Duration::from_secs(60)), "replay never finished");
    rec.stop().expect("stop");
    let info = rec.info();
    let summary = rec.save(output).expect("save");
    (summary, info)
}

/// Concatenates the files and checks each holds at most `limit` bytes of samples.
fn concatenated(files: &[PathBuf], limit: u64) -> Vec<i16> {
    let mut all = Vec::new();
    for f in files {
        let (spec, s) = read_i16(f);
        assert_eq!((spec.sample_rate, spec.bits_per_sample), (RATE, 16));
        assert!(
            s.len() as u64 * 2 <= limit,
            "{} holds {} bytes of samples, over the {limit}-byte limit",
            f.display(),
            s.len() * 2
        );
        all.extend(s);
    }
    all
}

#[test]
fn file_mode_rolls_over_to_numbered_files_that_together_are_the_take() {
    let d = Dirs::new();
    let input = d.path("in.wav");
    let samples = signal(3 * RATE as usize + 123, 2, 1);
    write_wav(&input, 2, &samples);
    let output = d.path("out.wav");
    // 10 000 bytes of samples per file: 2 500 stereo frames.
    let limit = 10_000;
    let m = monitor(8 << 20, 64 << 20);
    let acc = m.accountant().clone();
    let (summary, info) = record(
        &input,
        &output,
        m,
        RecorderConfig {
            mode: Mode::File,
            temp_files: Some(d.manager.clone()),
            max_file_bytes: limit,
            window: Duration::from_secs(1),
            ..RecorderConfig::default()
        },
    );
    assert_eq!(info.mode, "file");
    assert!(
        info.blocks_held <= 2,
        "file mode keeps only the newest blocks: {info:?}"
    );
    assert_eq!(info.frames_on_disk, info.frames_captured);
    let expected_files = (samples.len() * 2).div_ceil(10_000);
    assert_eq!(summary.files.len(), expected_files, "{summary:?}");
    for (i, f) in summary.files.iter().enumerate() {
        assert_eq!(*f, numbered_path(&output, i));
    }
    assert_eq!(summary.files[1], d.path("out.001.wav"));
    assert_eq!(summary.frames, samples.len() as u64 / 2);
    assert_eq!(summary.frames_lost, 0);
    let back = concatenated(&summary.files, limit);
    assert_eq!(back.len(), samples.len());
    assert!(back == samples, "the numbered files are not the take");
    d.assert_no_temp_files();
    assert_eq!(acc.disk_used(), 0, "disk charge left after saving");
    assert_eq!(acc.used(Category::Audio), 0);
}

#[test]
fn a_spilled_stream_take_rolls_over_too_and_stays_sample_exact() {
    let d = Dirs::new();
    let input = d.path("in.wav");
    // 20 s of mono: 640 000 bytes in 64 KiB blocks, through a 300 KiB budget.
    let samples = signal(20 * RATE as usize, 1, 2);
    write_wav(&input, 1, &samples);
    let output = d.path("take.wav");
    let limit = 100_000;
    let (summary, info) = record(
        &input,
        &output,
        monitor(300 << 10, 64 << 20),
        RecorderConfig {
            temp_files: Some(d.manager.clone()),
            max_file_bytes: limit,
            window: Duration::from_secs(1),
            ..RecorderConfig::default()
        },
    );
    assert!(info.evicted_frames > 0, "nothing spilled: {info:?}");
    assert_eq!(info.lost_samples, 0, "{info:?}");
    assert!(info.memory_peak <= 300 << 10);
    assert!(summary.files.len() >= 6, "{summary:?}");
    let back = concatenated(&summary.files, limit);
    assert!(back == samples, "spill + memory is not the take");
    assert_eq!(summary.frames_lost, 0);
    d.assert_no_temp_files();
}

#[test]
fn f32_output_holds_each_sample_exactly_in_both_modes() {
    let d = Dirs::new();
    let input = d.path("in.wav");
    let samples = signal(RATE as usize * 2, 1, 3);
    write_wav(&input, 1, &samples);
    for mode in [Mode::File, Mode::Stream] {
        let output = d.path(&format!("out-{}.wav", mode.as_str()));
        let (summary, info) = record(
            &input,
            &output,
            monitor(8 << 20, 64 << 20),
            RecorderConfig {
                mode,
                format: SampleFormat::F32,
                temp_files: Some(d.manager.clone()),
                window: Duration::from_secs(1),
                ..RecorderConfig::default()
            },
        );
        assert_eq!(info.format, "f32");
        assert_eq!(summary.files, std::slice::from_ref(&output));
        let mut r = hound::WavReader::open(&output).expect("open");
        let spec = r.spec();
        assert_eq!(
            (spec.sample_format, spec.bits_per_sample),
            (hound::SampleFormat::Float, 32)
        );
        let back: Vec<f32> = r.samples::<f32>().map(|s| s.expect("sample")).collect();
        assert_eq!(back.len(), samples.len());
        for (i, (&b, &s)) in back.iter().zip(&samples).enumerate() {
            assert_eq!(
                b.to_bits(),
                (f32::from(s) / 32768.0).to_bits(),
                "sample {i}"
            );
        }
    }
    d.assert_no_temp_files();
}

fn take_file(d: &Dirs, accountant: Arc<Accountant>, channels: u16) -> TakeFile {
    TakeFile::new(
        d.manager.clone(),
        Arc::new(accountant),
        TakeFileConfig {
            rate: RATE,
            channels,
            format: SampleFormat::I16,
            max_data_bytes: w4l::wav::WAV_DATA_LIMIT,
            purpose: "take",
            output: None,
        },
    )
}

#[test]
fn the_header_is_checkpointed_every_second_so_a_killed_take_plays() {
    let d = Dirs::new();
    let samples = signal(5 * RATE as usize, 1, 4);
    let mut file = take_file(&d, Arc::new(Accountant::new(1 << 20, 64 << 20)), 1);
    let mut written = 0usize;
    // Chunks of 10 ms, like a capture callback's.
    for chunk in samples.chunks(160) {
        file.write(chunk).expect("write");
        written += chunk.len();
        if !written.is_multiple_of(RATE as usize / 4) {
            continue;
        }
        // The file as a killed process would leave it now: read as it lies.
        let path = &file.files()[0];
        let copy = d.path("as-is.wav");
        fs::copy(path, &copy).expect("copy");
        let (_, back) = read_i16(&copy);
        assert!(
            back.len() + RATE as usize >= written,
            "after {written} samples the header covers only {}",
            back.len()
        );
        assert!(back.len() <= written);
        assert!(back[..] == samples[..back.len()], "not the take's start");
    }
    assert_eq!(file.samples(), samples.len() as u64);
    let out = d.path("out.wav");
    assert_eq!(
        file.persist(&out).expect("persist"),
        std::slice::from_ref(&out)
    );
    assert!(read_i16(&out).1 == samples);
    d.assert_no_temp_files();
}

#[test]
fn a_refused_disk_budget_writes_nothing_and_keeps_the_file_whole() {
    let d = Dirs::new();
    // 44 bytes of header and 1000 bytes of samples fit the disk budget, not one more.
    let acc = Arc::new(Accountant::new(1 << 20, 1_044));
    let mut file = take_file(&d, acc.clone(), 1);
    let samples = signal(700, 1, 5);
    file.write(&samples[..500]).expect("500 samples fit");
    let e = file.write(&samples[500..]).unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(e.to_string().contains("disk budget"), "{e}");
    assert!(e.to_string().contains("raise the disk budget"), "{e}");
    assert_eq!(file.samples(), 500);
    assert_eq!(acc.disk_used(), 1_044);
    // Still whole and appendable once the budget allows it (not here): saved as it is.
    let out = d.path("out.wav");
    file.persist(&out).expect("persist");
    assert!(read_i16(&out).1[..] == samples[..500]);
    assert_eq!(
        acc.disk_used(),
        0,
        "the saved file is not a temporary file any more"
    );
    d.assert_no_temp_files();
}

#[test]
fn dropping_an_unsaved_take_removes_its_files_and_gives_the_disk_back() {
    let d = Dirs::new();
    let acc = Arc::new(Accountant::new(1 << 20, 64 << 20));
    let mut file = TakeFile::new(
        d.manager.clone(),
        Arc::new(acc.clone()),
        TakeFileConfig {
            rate: RATE,
            channels: 1,
            format: SampleFormat::I16,
            max_data_bytes: 1_000,
            purpose: "spill",
            output: None,
        },
    );
    file.write(&signal(RATE as usize, 1, 6)).expect("write");
    assert_eq!(file.files().len(), 32, "16 000 samples in 500-sample files");
    assert!(acc.disk_used() > 32_000);
    drop(file);
    d.assert_no_temp_files();
    assert_eq!(acc.disk_used(), 0);
}

#[test]
fn a_file_with_its_own_ledger_is_charged_there_only() {
    use std::io::Write;
    let d = Dirs::new();
    let theirs = Arc::new(Accountant::new(1 << 20, 1 << 20));
    let mine = Arc::new(Accountant::new(1 << 20, 1 << 20));
    let mut other = d.manager.create_charged("spill", &theirs).expect("create");
    other.write_all(&[0; 1000]).expect("write");
    let mut file = d.manager.create_charged("spill", &mine).expect("create");
    file.write_all(&[0; 3000]).expect("write");
    assert_eq!((mine.disk_used(), theirs.disk_used()), (3000, 1000));
    drop(file);
    assert_eq!((mine.disk_used(), theirs.disk_used()), (0, 1000));
}

#[test]
fn the_whole_take_reads_back_from_disk_and_memory_and_stays_for_save() {
    let d = Dirs::new();
    let input = d.path("in.wav");
    let samples = signal(12 * RATE as usize, 1, 8);
    write_wav(&input, 1, &samples);
    for (mode, format) in [
        (Mode::Stream, SampleFormat::I16),
        (Mode::File, SampleFormat::F32),
    ] {
        let source = WavReplay::open(&input, false).expect("open input");
        let rec = Recorder::new(
            Box::new(source),
            monitor(300 << 10, 64 << 20),
            RecorderConfig {
                mode,
                format,
                temp_files: Some(d.manager.clone()),
                max_file_bytes: 50_000,
                window: Duration::from_secs(1),
                ..RecorderConfig::default()
            },
        )
        .expect("recorder");
        rec.start().expect("start");
        assert!(rec.wait(Duration::from_secs(60)));
        rec.stop().expect("stop");
        assert!(rec.info().frames_on_disk > 0, "{:?}", rec.info());
        let whole = rec.take_i16().expect("take_i16");
        assert!(whole == samples, "{mode:?}: take_i16 is not the take");
        let saved = d.path("saved.wav");
        let summary = rec.save(&saved).expect("save");
        let mut all = Vec::new();
        for f in &summary.files {
            let mut r = hound::WavReader::open(f).expect("open");
            match format {
                // Only WAV formats here (FLAC takes: tests/flac_take.rs).
                SampleFormat::I16 | SampleFormat::Flac => {
                    all.extend(r.samples::<i16>().map(|s| s.expect("s")))
                }
                SampleFormat::F32 => {
                    all.extend(r.samples::<f32>().map(|s| (s.expect("s") * 32768.0) as i16))
                }
            }
        }
        assert!(
            all == samples,
            "{mode:?}: save after take_i16 is not the take"
        );
    }
    d.assert_no_temp_files();
}
