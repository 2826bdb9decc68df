//! The `w4l` command line. See `w4l --help`.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;

mod chart;
mod cli;
mod demo;
mod models;
mod monitor;
mod progress;

use crate::cli::{Cli, Command, DemoArgs, DevicesArgs, RecordArgs, format_bytes};
use crate::progress::{LiveLine, LiveStatus};
use w4l::error::{Error, Result};
use w4l::memory::monitor::{MemoryCeiling, MemoryMonitor, MonitorConfig};
use w4l::recorder::{Recorder, RecorderConfig};
use w4l::source::device::{CaptureRequest, CaptureSource};
use w4l::source::{Source, WavReplay};
use w4l::tempfiles::signals::SignalCleanup;
use w4l_core::accountant::Accountant;
use w4l_core::budget::{Budget, Model};

/// Set once the panic hook has printed its line, so `main` prints nothing more.
static PANICKED: AtomicBool = AtomicBool::new(false);

fn main() {
    let status = run_cli();
    // Everything is written, synced and closed by now, and every temporary file is gone: the C
    // libraries' exit handlers (libpulse's, X11's...) would only free what the kernel takes back
    // anyway, and running them faulted 300 KiB of their code in, the peak of a take's RSS.
    let _ = std::io::stdout().flush();
    // SAFETY: `_exit` ends the process at once, without atexit handlers; nothing of w4l's
    // depends on them (stdout is flushed above, stderr is unbuffered, files are closed).
    unsafe { libc::_exit(i32::from(status)) }
}

/// The command line, run: its exit status (0, 1 failure, 2 usage, 3 audio lost; a second
/// Ctrl-C exits from the signal watcher with 128 + the signal).
fn run_cli() -> u8 {
    install_panic_hook();
    // Chained in front of ours: a panic that ends the process removes the temporary files.
    w4l::tempfiles::signals::install_panic_cleanup();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(&e),
    };
    init_logging(&cli.command);
    // Ctrl-C, SIGTERM, SIGHUP: the first asks the command to stop gracefully (finish and
    // save the take), a second removes every temporary file and exits at once.
    let signals = match SignalCleanup::install(w4l::tempfiles::signals::OnSignal::NotifyFirst) {
        Ok(s) => s,
        Err(e) => {
            return report(&Error::runtime(
                format!("cannot install the Ctrl-C handler ({e})"),
                "run w4l in a normal terminal or service environment",
            ));
        }
    };
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli.command, &signals)));
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => report(&e),
        // The hook printed the line; the unwinding dropped (and so cleaned up) everything.
        Err(_) => 1,
    }
}

fn report(e: &Error) -> u8 {
    if !PANICKED.load(Ordering::Acquire) {
        let _ = std::io::stdout().flush();
        eprintln!("error: {}", in_flags(e));
    }
    u8::try_from(e.exit_code()).unwrap_or(1)
}

/// The library says what to do in its own terms ("raise the budget"); the command line names
/// the flag that does it.
fn in_flags(e: &Error) -> Error {
    const FLAGS: [(&str, &str); 9] = [
        ("raise the budget", "raise --budget"),
        ("lower the budget", "lower --budget"),
        ("shorten the window", "shorten --window"),
        ("use a longer window", "pass a longer --window"),
        ("raise the disk budget", "raise --disk-budget"),
        (
            "use a lower rate or fewer channels",
            "lower --rate or --channels",
        ),
        (
            "pick a device by name",
            "pick one with --device (see `w4l devices`)",
        ),
        (
            "an exact device name or id from the device list",
            "an exact name or id from `w4l devices` to --device",
        ),
        ("use the ALSA backend", "use --backend alsa"),
    ];
    let fix = FLAGS.iter().fold(e.fix().to_owned(), |fix, (api, flag)| {
        fix.replace(api, flag)
    });
    e.clone().with_fix(fix)
}

/// clap's errors, as one line `error: …; …` (exit code 2), and its help / version output as is.
fn clap_error(e: &clap::Error) -> u8 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            // `w4l` alone prints the help but is still a usage error.
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                2
            } else {
                0
            }
        }
        _ => {
            let rendered = e.render().to_string();
            // clap's message: a first line (maybe continued by indented lines, e.g. the missing
            // arguments), then `Usage:`, `tip:` and `For more information` lines.
            let mut what = Vec::new();
            let mut tip = None;
            for l in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if let Some(t) = l.strip_prefix("tip: ") {
                    tip.get_or_insert_with(|| t.to_owned());
                } else if l.starts_with("Usage:") || l.starts_with("For more") {
                    break;
                } else {
                    what.push(l.strip_prefix("error: ").unwrap_or(l).to_owned());
                }
            }
            let first = if what.is_empty() {
                "invalid command line".to_owned()
            } else {
                what.join(" ")
            };
            let line = if first.contains("; ") {
                first
            } else if let Some(tip) = tip {
                format!("{first}; {tip}")
            } else {
                format!("{first}; see 'w4l --help'")
            };
            eprintln!("error: {line}");
            2
        }
    }
}

/// Debug builds only: panics at `point` when `W4L_TEST_PANIC` names it, so the end-to-end tests
/// can check that a panic prints one line and leaves no file behind. Release builds ignore it.
fn test_panic(point: &str) {
    if cfg!(debug_assertions) && std::env::var("W4L_TEST_PANIC").is_ok_and(|p| p == point) {
        panic!("W4L_TEST_PANIC={point}");
    }
}

/// One line for a panic, no backtrace; the unwinding still runs every destructor (the
/// recorder's cleanup, temporary files).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        let msg = msg.replace(['\n', '\r'], " ");
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if !PANICKED.swap(true, Ordering::AcqRel) {
            eprintln!("error: internal error: {msg}{place}; please report this bug");
        }
    }));
}

/// `RUST_LOG` decides (`debug`, `w4l=trace`, `warn,w4l::take=debug`: levels by target; a
/// value that does not parse is ignored); without it, warnings (errors only for `demo`, whose
/// timeline already shows what the warnings would say). Always to stderr. Targets, not
/// `EnvFilter`: the latter's span and field filters bring a regex engine, a quarter of a
/// megabyte of code in every process, for nothing a recorder's log needs.
fn init_logging(command: &Command) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let default = match command {
        Command::Demo(_) => LevelFilter::ERROR,
        _ => LevelFilter::WARN,
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(default));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .with_target(false)
                .without_time(),
        )
        .with(filter)
        .try_init();
}

/// The exit status of a take that was saved but lost audio on the way (blocks dropped to stay
/// within the budget, audio the device never delivered, overruns); the summary says how much.
/// 1 and 2 stay runtime and usage errors.
const AUDIO_LOST: u8 = 3;

fn run(command: Command, signals: &SignalCleanup) -> Result<u8> {
    let interrupted = &|| signals.received().is_some();
    // Every start finishes the takes killed processes left (clean and recover without files
    // do it themselves).
    let itself = match &command {
        Command::Clean(_) => true,
        Command::Recover(args) => args.files.is_empty(),
        _ => false,
    };
    if !itself {
        recover_at_start();
    }
    let done = match command {
        Command::Record(args) => return record(&args, signals),
        Command::Devices(args) => devices(&args),
        Command::Monitor(args) => crate::monitor::run(&args, interrupted),
        Command::Demo(args) => demo(&args, interrupted),
        Command::Clean(args) => clean(&args),
        Command::Recover(args) => recover(&args),
    };
    done.map(|()| 0)
}

/// Finishes the takes killed processes left in the default temporary directory, and says so on
/// stderr (see `w4l::take::recover`). Quiet when there is nothing to do or no directory yet.
fn recover_at_start() {
    let config = w4l::take::recover::RecoveryConfig::from_env().unwrap_or_default();
    let report = w4l::take::recover::recover_at_start(&config);
    for line in report.to_string().lines() {
        eprintln!("note: {line}");
    }
}

/// `w4l clean [--dry-run]`: the orphans of dead processes in the temporary directory; their
/// takes are finished, not removed.
fn clean(args: &crate::cli::CleanArgs) -> Result<()> {
    use w4l::take::recover::{RecoveryConfig, RecoveryReport, recover_orphans};
    let dir = w4l::tempfiles::default_dir()?;
    let report = w4l::tempfiles::reap_dir(&dir, args.dry_run)?;
    let recovery = if args.dry_run {
        RecoveryReport::default()
    } else {
        recover_orphans(&dir, &RecoveryConfig::from_env()?)?
    };
    let pending: Vec<_> = w4l::tempfiles::unfinished_takes(&dir)?
        .into_iter()
        .filter(|t| !t.owner_alive)
        .collect();
    if args.json {
        #[derive(serde::Serialize)]
        struct Clean<'a> {
            #[serde(flatten)]
            reaped: &'a w4l::tempfiles::ReapReport,
            recovered: &'a [w4l::take::recover::Recovered],
            retired: &'a [std::path::PathBuf],
            unfinished: usize,
        }
        print_json(&Clean {
            reaped: &report,
            recovered: &recovery.recovered,
            retired: &recovery.retired,
            unfinished: pending.len(),
        })?;
    } else {
        let mut text = String::new();
        for file in &report.files {
            text.push_str(&format!("{}\n", file.display()));
        }
        text.push_str(&format!("{report} in {}\n", dir.display()));
        text.push_str(&recovery.to_string());
        for take in &pending {
            let verb = if args.dry_run {
                "would recover"
            } else {
                "could not recover"
            };
            text.push_str(&format!("{verb} {}\n", w4l::take::recover::describe(take)));
        }
        emit(&text)?;
    }
    match report.failures.first().or(recovery.failures.first()) {
        None => Ok(()),
        Some(first) => Err(Error::runtime(
            format!(
                "could not remove or recover {} file(s), first {}: {}",
                report.failures.len() + recovery.failures.len(),
                first.path.display(),
                first.reason
            ),
            "check the permissions of the temporary directory",
        )),
    }
}

/// `w4l recover` without files: finishes (or, with `--list`, lists) the unfinished takes.
fn recover_takes(args: &crate::cli::RecoverArgs) -> Result<()> {
    use w4l::take::recover::{RecoveryConfig, describe, recover_orphans};
    let dir = w4l::tempfiles::default_dir()?;
    if args.list {
        let takes = w4l::tempfiles::unfinished_takes(&dir)?;
        let mut text: String = takes.iter().map(|t| format!("{}\n", describe(t))).collect();
        if takes.is_empty() {
            text = format!("no unfinished takes in {}\n", dir.display());
        }
        emit(&text)?;
        return Ok(());
    }
    let report = recover_orphans(&dir, &RecoveryConfig::from_env()?)?;
    if args.json {
        print_json(&report)?;
    } else if report.is_empty() {
        emit(&format!(
            "no unfinished takes to recover in {}\n",
            dir.display()
        ))?;
    } else {
        emit(&report.to_string())?;
    }
    match report.failures.first() {
        None => Ok(()),
        Some(first) => Err(Error::runtime(
            format!(
                "could not recover {} take(s), first {}: {}",
                report.failures.len(),
                first.path.display(),
                first.reason
            ),
            "free space, check the permissions there, and run w4l recover again",
        )),
    }
}

/// `w4l recover FILE...`: repairs each file; the first failure is the exit status.
fn recover(args: &crate::cli::RecoverArgs) -> Result<()> {
    if args.files.is_empty() {
        return recover_takes(args);
    }
    let options = w4l::wav::repair::RecoverOptions {
        backup: !args.no_backup,
        dry_run: args.dry_run,
        samples_to_end: args.samples_to_end,
    };
    let mut first_error: Option<Error> = None;
    let mut failed = 0usize;
    for path in &args.files {
        match w4l::wav::fix::recover_file(path, options) {
            Ok(report) => {
                if args.json {
                    print_json(&report.summary())?;
                } else {
                    emit(&format!("{report}\n"))?;
                }
            }
            Err(e) if args.files.len() == 1 => return Err(e.into()),
            Err(e) => {
                let e = Error::from(e);
                eprintln!("error: {e}");
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        None => Ok(()),
        Some(first) => {
            let what = format!(
                "{failed} of {} files could not be repaired (errors above)",
                args.files.len()
            );
            Err(match first.kind() {
                w4l::error::ErrorKind::Usage => Error::usage(what, first.fix()),
                w4l::error::ErrorKind::Runtime => Error::runtime(what, first.fix()),
            })
        }
    }
}

/// Writes `text` to stdout. A closed pipe (`w4l monitor | head -3`) is not an error: it returns
/// `Ok(false)` and the command ends quietly; other write errors are runtime errors.
fn emit(text: &str) -> Result<bool> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::runtime(
            format!("cannot write to standard output ({e})"),
            "check where the output is redirected",
        )),
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<bool> {
    let text = serde_json::to_string(value)
        .map_err(|e| Error::runtime(format!("cannot format JSON ({e})"), "report this bug"))?;
    emit(&format!("{text}\n"))
}

/// The accountant for `--budget` / `--model`: an explicit budget is the whole memory budget and
/// the audio limit; without one, the model's table entry applies. Either is capped by what the
/// machine can give (`ceiling`: the smaller of the memory available and the cgroup's headroom,
/// see [`w4l::memory::monitor::memory_ceiling`]): a budget the machine cannot give is no
/// budget. An explicit `--budget` above it says so.
fn accountant_for(
    budget: Option<u64>,
    model: Model,
    disk: Option<u64>,
    ceiling: Option<MemoryCeiling>,
) -> (Accountant, u64) {
    let rss_limit = model.total_limit() as u64;
    let cap = |bytes: usize| match ceiling {
        Some(c) => bytes.min(usize::try_from(c.bytes).unwrap_or(usize::MAX)),
        None => bytes,
    };
    let with_disk = |b: Budget| match disk {
        Some(d) => b.with_disk(usize::try_from(d).unwrap_or(usize::MAX)),
        None => b,
    };
    if let (Some(asked), Some(ceiling)) = (budget, ceiling)
        && asked > ceiling.bytes
    {
        tracing::warn!(
            "--budget {} is more than the memory available ({ceiling}); the budget is capped to it",
            format_bytes(asked),
        );
    }
    let b = match budget {
        Some(bytes) => {
            let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
            Budget {
                memory: bytes,
                audio_limit: bytes,
                model_limit: None,
                ..Budget::for_model(model)
            }
        }
        None => Budget::for_model(model),
    };
    let b = Budget {
        memory: cap(b.memory),
        audio_limit: cap(b.audio_limit),
        ..b
    };
    let memory = b.memory as u64;
    (with_disk(b).accountant(), rss_limit.max(memory))
}

fn devices(args: &DevicesArgs) -> Result<()> {
    let list = w4l::source::device::list::list_devices_for(args.backend)?;
    if args.json {
        print_json(&list)?;
    } else {
        emit(&list.to_string())?;
    }
    Ok(())
}

fn open_source(args: &RecordArgs) -> Result<Box<dyn Source>> {
    if let Some(input) = &args.input {
        let replay = WavReplay::open(input, args.realtime)?;
        let info = replay.info();
        if let Some(rate) = args.rate
            && rate != info.rate
        {
            return Err(Error::usage(
                format!(
                    "--rate {rate} does not match {}'s {} Hz (w4l does not resample)",
                    input.display(),
                    info.rate
                ),
                "drop --rate to use the file's rate",
            ));
        }
        if let Some(channels) = args.channels
            && channels != info.channels
        {
            return Err(Error::usage(
                format!(
                    "--channels {channels} does not match {}'s {} channel(s) (w4l does not remix)",
                    input.display(),
                    info.channels
                ),
                "drop --channels to use the file's channels",
            ));
        }
        return Ok(Box::new(replay));
    }
    let request = CaptureRequest {
        device: args.device.clone(),
        rate: args.rate,
        channels: args.channels,
        backend: args.backend,
        ..CaptureRequest::default()
    };
    let source = CaptureSource::open(&request)?;
    tracing::info!("capturing from {}", source.format());
    Ok(Box::new(source))
}

fn record(args: &RecordArgs, signals: &SignalCleanup) -> Result<u8> {
    let interrupted = &|| signals.received().is_some();
    let recorder = prepare_recording(args)?;
    let rate = recorder.rate();
    let live = LiveLine::for_stdout();
    let started = Instant::now();
    // Ctrl-C and lost audio end the wait at once, so the loop wakes only to refresh the live
    // line (ten times a second), or else never: on a VM every wake-up costs about 50 us, and
    // one a second was 5 % of the whole recording's CPU.
    let interrupter = recorder.interrupter();
    signals.on_first_signal(move || interrupter.interrupt());
    let tick = if live.is_visible() {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(3_600)
    };
    // A first reading as the take starts, on the take's clock (the worker's come at every
    // second of audio): the timeline begins at 0.
    recorder.monitor().step_at(0);
    recorder.start()?;
    let mut loss_warned = false;
    while !recorder.wait(tick) {
        if interrupted() {
            break;
        }
        if !loss_warned {
            loss_warned = warn_of_loss(&recorder.source_stats(), rate);
        }
        if live.is_visible() {
            let info = recorder.info();
            live.update(&LiveStatus {
                elapsed: Duration::from_secs_f64(info.seconds_captured),
                peak_dbfs: info.peak_dbfs,
                used: info.memory_used,
                budget: info.memory_budget,
                level: info.policy_level,
                overruns: info.overruns,
                lost_samples: info.lost_samples,
            });
        }
    }
    let stopped = recorder.stop();
    live.finish();
    finish_recording(args, &recorder, stopped, started, interrupted)
}

/// Every check that can fail, then the recorder (not started): nothing is recorded before
/// they all pass.
fn prepare_recording(args: &RecordArgs) -> Result<Recorder> {
    w4l::wav::check_output_path(&args.output)?;
    if let Some(input) = &args.input {
        w4l::wav::check_not_input(&args.output, input)?;
    }
    if let Some(timeline) = &args.timeline {
        chart::check_path(timeline, Some(&args.output))?;
    }
    let source = open_source(args)?;
    let rate = source.rate();
    let config = RecorderConfig {
        mode: args.mode.into(),
        format: w4l::wav::SampleFormat::for_output(&args.output, args.format.map(Into::into))?,
        window: args.window.unwrap_or(Duration::ZERO),
        limit_frames: args
            .seconds
            .map(|d| (d.as_secs_f64() * f64::from(rate)).round().max(1.0) as u64),
        // A take killed before it is saved is recovered there by the next start.
        output: std::path::absolute(&args.output).ok(),
        ..RecorderConfig::default()
    };
    let ceiling = w4l::memory::monitor::machine_ceiling();
    check_fits_machine(&config, rate, source.channels(), ceiling)?;
    let (accountant, rss_limit) =
        accountant_for(args.budget, args.model, args.disk_budget, ceiling);
    let accountant = Arc::new(accountant);
    if args.budget.is_none() {
        let fixed = w4l::recorder::minimum_budget(&config, rate, source.channels());
        models::warn_if_model_does_not_fit(&accountant, args.model, fixed);
    }
    let monitor = Arc::new(MemoryMonitor::new(
        accountant,
        MonitorConfig {
            rss_limit,
            history: if args.timeline.is_some() {
                chart::HISTORY
            } else {
                0
            },
            ..MonitorConfig::default()
        },
    )?);
    Recorder::new(source, monitor, config)
}

/// Saves the take, prints the summary, draws the timeline; the exit status.
fn finish_recording(
    args: &RecordArgs,
    recorder: &Recorder,
    stopped: Result<()>,
    started: Instant,
    interrupted: &dyn Fn() -> bool,
) -> Result<u8> {
    // A take that failed part-way (the disk filled up in file mode, the device vanished) is
    // still saved up to the failure; the failure is the exit status.
    if stopped.is_err() && recorder.frames_kept() == 0 {
        return stopped.map(|()| 0);
    }
    let info = recorder.info();
    let saved = recorder.save_with(&args.output, &|| test_panic("write"));
    stopped?;
    let summary = saved?;
    if args.json {
        print_record_json(args, &info, &summary, started, interrupted())?;
    } else {
        print_summary(args, &info, &summary)?;
    }
    if let Some(path) = &args.timeline {
        let title = format!("w4l record: {} from {}", args.output.display(), info.source);
        let samples = chart::write(recorder.monitor(), &title, path)?;
        if !args.json {
            emit(&format!(
                "timeline: {} ({samples} samples)\n",
                path.display()
            ))?;
        }
    }
    let device = &info.source_stats;
    if summary.frames_lost == 0 && device.lost_frames == 0 && info.overruns == 0 {
        return Ok(0);
    }
    Ok(AUDIO_LOST)
}

/// The JSON summary of `record`: the saved files, the recorder's figures, the timeline's path.
fn print_record_json(
    args: &RecordArgs,
    info: &w4l::recorder::RecorderInfo,
    summary: &w4l::take::Saved,
    started: Instant,
    interrupted: bool,
) -> Result<bool> {
    #[derive(serde::Serialize)]
    struct Report<'a> {
        output: &'a Path,
        files: &'a [std::path::PathBuf],
        frames_written: u64,
        frames_dropped: u64,
        interrupted: bool,
        wall_seconds: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        timeline: Option<&'a Path>,
        #[serde(flatten)]
        info: &'a w4l::recorder::RecorderInfo,
    }
    print_json(&Report {
        output: &args.output,
        files: &summary.files,
        frames_written: summary.frames,
        frames_dropped: summary.frames_lost,
        interrupted,
        wall_seconds: started.elapsed().as_secs_f64(),
        timeline: args.timeline.as_deref(),
        info,
    })
}

/// The text summary of `record`: what was recorded, the memory figures, what was lost (if
/// anything), and where the disk came in.
fn print_summary(
    args: &RecordArgs,
    info: &w4l::recorder::RecorderInfo,
    summary: &w4l::take::Saved,
) -> Result<()> {
    let seconds = |frames: u64| frames as f64 / f64::from(info.rate);
    emit(&format!(
        "recorded {:.3} s ({} frames, {} Hz, {} ch) from {} to {}\n\
         memory: peak {} of a {} budget; policy {}; overruns {}; evicted {:.3} s from memory; lost {} frames\n",
        info.seconds_captured,
        info.frames_captured,
        info.rate,
        info.channels,
        info.source,
        args.output.display(),
        format_bytes(info.memory_peak),
        format_bytes(info.memory_budget),
        info.policy_level,
        info.overruns,
        seconds(info.evicted_frames),
        summary.frames_lost
    ))?;
    if summary.frames_lost > 0 {
        emit(&format!(
            "lost: {:.3} s of audio ({} frames) missing from {}: memory gave it up where the disk could not keep it (exit status {AUDIO_LOST})\n",
            seconds(summary.frames_lost),
            summary.frames_lost,
            args.output.display()
        ))?;
    }
    let device = &info.source_stats;
    if device.lost_frames > 0 {
        emit(&format!(
            "lost: {:.3} s of audio ({} frames) the device captured but never delivered; {} stream restart(s) (exit status {AUDIO_LOST})\n",
            seconds(device.lost_frames),
            device.lost_frames,
            device.restarts
        ))?;
    }
    if info.overruns > 0 {
        emit(&format!(
            "lost: {} samples ({:.3} s) the recorder could not take in time (overruns; exit status {AUDIO_LOST})\n",
            info.overruns,
            seconds(info.overruns / u64::from(info.channels.max(1)))
        ))?;
    }
    if info.frames_on_disk > 0 || summary.files.len() > 1 {
        let files: Vec<String> = summary
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        emit(&format!(
            "disk: {} mode, {:.3} s journaled ({}); written to {}\n",
            info.mode,
            seconds(info.frames_on_disk),
            format_bytes(info.disk_bytes),
            files.join(", ")
        ))?;
    }
    Ok(())
}

/// Warns on stderr, once, that the device lost audio; returns whether it did.
fn warn_of_loss(stats: &w4l::source::SourceStats, rate: u32) -> bool {
    if stats.lost_frames == 0 {
        return false;
    }
    eprintln!(
        "warning: the audio device lost {:.3} s of audio so far (the take goes on; the summary counts it)",
        stats.lost_frames as f64 / f64::from(rate.max(1))
    );
    true
}

/// Refuses a take whose fixed buffers (the ring and the rolling window, sized by `--window`,
/// the rate and the channels) need more memory than the machine has available: allocating them
/// would abort the process, or push the machine into swap.
fn check_fits_machine(
    config: &RecorderConfig,
    rate: u32,
    channels: u16,
    ceiling: Option<MemoryCeiling>,
) -> Result<()> {
    let need = w4l::recorder::minimum_budget(config, rate, channels);
    match ceiling {
        Some(ceiling) if need > ceiling.bytes => Err(Error::usage(
            format!(
                "the ring and the {:.0} s window of a {rate} Hz, {channels}-channel take need {}, more than the memory available ({ceiling})",
                config.window.as_secs_f64(),
                format_bytes(need),
            ),
            "shorten --window, or replay a file with a lower rate or fewer channels",
        )),
        _ => Ok(()),
    }
}

/// `w4l demo`: the first Ctrl-C or SIGTERM ends the take early; the report covers what was
/// played up to there, and the exit status is 0, as for `record`.
fn demo(args: &DemoArgs, interrupted: &dyn Fn() -> bool) -> Result<()> {
    if let Some(path) = &args.timeline {
        chart::check_path(path, None)?;
    }
    let config = crate::demo::DemoConfig {
        duration: args.seconds,
        budget: args.budget,
        timeline: args.timeline.is_some(),
        ..crate::demo::DemoConfig::default()
    };
    let (report, monitor) = crate::demo::run_until(&config, interrupted)?;
    if args.json {
        print_json(&report)?;
    } else {
        emit(&report.render())?;
    }
    if let Some(path) = &args.timeline {
        let title = format!(
            "w4l demo: {:.0} s of synthetic speech in a {} budget",
            args.seconds.as_secs_f64(),
            format_bytes(args.budget)
        );
        let samples = chart::write(&monitor, &title, path)?;
        if !args.json {
            emit(&format!(
                "\ntimeline: {} ({samples} samples)\n",
                path.display()
            ))?;
        }
    }
    Ok(())
}
