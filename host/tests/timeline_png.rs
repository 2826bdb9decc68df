//! The memory timeline as a picture, checked as a picture: a dictation session simulated
//! second by second through the real accountant, the core policy and the model manager is
//! drawn as SVG, rendered to PNG by `rsvg-convert` (Debian `librsvg2-bin`, installed by
//! `scripts/setup --test`) and the PNG is decoded and checked: its size, and that it is a
//! chart (mostly white paper, with the series' colours on it), not a blank page.
//!
//! `W4L_TIMELINE_PNG=out.png cargo test -p w4l --test timeline_png` also writes the PNG there
//! (a relative path is from the workspace root). The README's example is a real `w4l demo`
//! run instead (`host/tests/demo_timeline.rs`).
//!
//! What is simulated: time (a `ManualClock`), the audio (2 MiB blocks, one a second: a fast multichannel stream, so that it shows), the
//! inference state (`Category::Other` bursts) and the RSS (the accounted memory plus a 46 MiB
//! program baseline, returned to the system with a lag of 60 MiB/s, as glibc's trimming
//! does). What is not: every level, spill, unload and eviction is decided by the real
//! policy and model manager.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use w4l::memory::models::{ManualClock, ModelConfig, ModelManager, ModelSpec};
use w4l::memory::timeline::{Mark, MarkKind, Sample, Timeline};
use w4l::memory::timeline_svg;
use w4l_core::accountant::{Accountant, Category, Reservation};
use w4l_core::budget::{Budget, MIB, Model};
use w4l_core::policy::{Action, Policy, PolicyConfig, Reading};

type Held = Reservation<Arc<Accountant>>;

struct Session {
    clock: Arc<ManualClock>,
    accountant: Arc<Accountant>,
    models: Arc<ModelManager<Vec<u8>>>,
    policy: Policy,
    /// The program's own memory, held for the whole session.
    _program: Held,
    audio: Vec<Held>,
    disk: Held,
    inference: Option<Held>,
    rss: u64,
    timeline: Timeline,
}

impl Session {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(0));
        let accountant = Arc::new(Budget::for_model(Model::Small).accountant());
        let config = ModelConfig {
            idle_timeout: Duration::from_secs(30),
            allow_downsize: false,
        };
        let models =
            Arc::new(ModelManager::new(accountant.clone(), config).with_clock(clock.clone()));
        for model in [Model::Base, Model::Small] {
            // Stand-ins that cost no real memory: the accountant holds the declared size.
            models
                .register(ModelSpec::whisper(model), || Ok(Vec::new()), |_| Ok(()))
                .unwrap();
        }
        let reserve = |c, b| Accountant::try_reserve_in(accountant.clone(), c, b).unwrap();
        let policy_config = PolicyConfig::default();
        Self {
            _program: reserve(Category::Other, 48 * MIB),
            disk: reserve(Category::Disk, 0),
            clock,
            models,
            policy: Policy::new(policy_config),
            audio: Vec::new(),
            inference: None,
            rss: 0,
            timeline: Timeline::new(
                "w4l memory timeline: a dictation session with Whisper small (simulated)",
                &policy_config,
            ),
            accountant,
        }
    }

    fn now_ms(&self) -> u64 {
        use w4l::memory::models::Clock;
        self.clock.now_ms()
    }

    /// Inference state held by the running transcription, grown to `mib`.
    fn infer(&mut self, mib: usize) {
        let acc = self.accountant.clone();
        let held = self
            .inference
            .get_or_insert_with(|| Accountant::try_reserve_in(acc, Category::Other, 0).unwrap());
        let _ = held.resize(mib * MIB);
    }

    /// One second: audio grows (while recording), the policy steps, its actions are done.
    fn second(&mut self, recording: bool) {
        self.clock.advance(1000);
        let t = self.now_ms();
        if recording
            && let Ok(block) =
                Accountant::try_reserve_in(self.accountant.clone(), Category::Audio, 2 * MIB)
        {
            self.audio.push(block);
        }
        let target = (self.accountant.memory_used() + 46 * MIB) as u64;
        self.rss = target.max(self.rss.saturating_sub(60 * MIB as u64));
        let reading = Reading {
            accounted: self.accountant.memory_used(),
            budget: self.accountant.memory_budget(),
            rss: self.rss,
            ..Reading::new(t)
        };
        let step = self.policy.step(&reading);
        self.models.tick(); // idle unloads, once a second
        if !step.actions.is_empty() {
            let freed = self.act(t, &step.actions);
            self.policy.feedback(freed);
        }
        let figures = self.accountant.figures();
        self.timeline
            .samples
            .push(Sample::from_figures(t, &figures, self.rss, step.level));
        for event in self.models.drain_events() {
            self.timeline.marks.extend(Mark::from_model_event(&event));
        }
    }

    fn act(&mut self, t: u64, actions: &w4l_core::policy::Actions) -> u64 {
        let mut freed = 0;
        if actions.contains(Action::SpillOldestAudio) && self.audio.len() > 5 {
            // All but the newest 5 s go to the take's file on disk.
            let spilled: usize = self
                .audio
                .drain(..self.audio.len() - 5)
                .map(|b| b.bytes())
                .sum();
            self.disk.grow(spilled).unwrap();
            self.timeline.marks.push(Mark {
                t_ms: t,
                kind: MarkKind::Spill,
                bytes: spilled as u64,
            });
            freed += spilled as u64;
        }
        freed += self.models.unload_under_pressure(actions, u64::MAX);
        if actions.contains(Action::DropOldestAudio) && !self.audio.is_empty() {
            let dropped: usize = self
                .audio
                .drain(..self.audio.len() / 2)
                .map(|b| b.bytes())
                .sum();
            self.timeline.marks.push(Mark {
                t_ms: t,
                kind: MarkKind::Drop,
                bytes: dropped as u64,
            });
            freed += dropped as u64;
        }
        freed
    }

    fn run(mut self) -> Timeline {
        let figures = self.accountant.figures();
        self.rss = (figures.memory_used + 46 * MIB) as u64;
        let first = Sample::from_figures(0, &figures, self.rss, self.policy.level());
        self.timeline.samples.push(first);
        for _ in 0..4 {
            self.second(false);
        }
        // The model loads as the take starts.
        self.models.load("small").unwrap();
        for _ in 4..20 {
            self.second(true);
        }
        // First transcription: inference state grows while the model is in use.
        let models = self.models.clone();
        models
            .with("small", |_| {
                for i in 0..16 {
                    self.infer((40 * (i + 1)).min(200));
                    self.second(true);
                }
            })
            .unwrap();
        self.inference = None;
        for _ in 36..58 {
            self.second(true);
        }
        // Something else in the process (a large decode) pushes memory up while the model is idle.
        for i in 0..14 {
            self.infer((60 * (i + 1)).min(330));
            self.second(true);
        }
        self.inference = None;
        for _ in 72..90 {
            self.second(true);
        }
        // Second transcription: the model is reloaded on demand.
        models
            .with("small", |_| {
                for i in 0..10 {
                    self.infer((30 * (i + 1)).min(120));
                    self.second(false);
                }
            })
            .unwrap();
        self.inference = None;
        // A quick command with the base model while a decode holds memory: small is evicted.
        self.infer(260);
        self.models.with("base", |_| ()).unwrap();
        for _ in 0..6 {
            self.second(false);
        }
        self.inference = None;
        while self.now_ms() < 160_000 {
            self.second(false);
        }
        let mut timeline = self.timeline;
        timeline.samples.retain(|s| s.t_ms <= 160_000);
        timeline
    }
}

fn rsvg_convert(svg: &Path, png: &Path) {
    let status = Command::new("rsvg-convert")
        .args(["--format", "png", "--output"])
        .arg(png)
        .arg(svg)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run rsvg-convert ({e}); install librsvg2-bin (scripts/setup --test)")
        });
    assert!(status.success(), "rsvg-convert failed: {status}");
}

/// The PNG again without its (opaque) alpha channel, compressed hardest: about a quarter
/// smaller than rsvg-convert's, for the copy kept in the repository.
fn write_rgb_png(path: &Path, width: u32, height: u32, rgb: &[[u8; 3]]) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    encoder.set_filter(png::Filter::Adaptive);
    let data: Vec<u8> = rgb.iter().flatten().copied().collect();
    encoder
        .write_header()
        .unwrap()
        .write_image_data(&data)
        .unwrap();
}

#[test]
fn the_timeline_renders_to_a_readable_png() {
    let timeline = Session::new().run();
    let kinds = |k| timeline.marks.iter().filter(|m| m.kind == k).count();
    assert!(
        kinds(MarkKind::Spill) >= 1
            && kinds(MarkKind::Unload) >= 2
            && kinds(MarkKind::Eviction) == 1,
        "{:?}",
        timeline.marks
    );

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let (svg_path, png_path) = (
        dir.join("memory-timeline.svg"),
        dir.join("memory-timeline.png"),
    );
    timeline_svg::write_file(&timeline, &svg_path).unwrap();
    rsvg_convert(&svg_path, &png_path);

    let file = std::io::BufReader::new(std::fs::File::open(&png_path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (960, 540));
    let channels = info.color_type.samples();
    let rgb: Vec<[u8; 3]> = pixels[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let white = rgb.iter().filter(|p| **p == [255, 255, 255]).count() as f64 / rgb.len() as f64;
    assert!(
        (0.35..0.95).contains(&white),
        "white share {white:.2}: blank or overdrawn"
    );
    // The series' own colours are on the page: the model area, the audio area, the budget line.
    for (name, colour) in [
        ("model", [0x97, 0x75, 0xfa]),
        ("audio", [0x4d, 0xab, 0xf7]),
        ("budget", [0xa6, 0x1e, 0x4d]),
    ] {
        let near = rgb
            .iter()
            .filter(|p| p.iter().zip(colour).all(|(a, b)| a.abs_diff(b) < 24))
            .count();
        assert!(near > 200, "{name}: {near} pixels of its colour");
    }

    if let Ok(out) = std::env::var("W4L_TIMELINE_PNG") {
        // A relative path is taken from the workspace root, as the docs name it.
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(out);
        write_rgb_png(&out, info.width, info.height, &rgb);
    }
}
