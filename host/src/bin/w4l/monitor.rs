//! `w4l monitor`: readings at an interval, what was detected (the cgroup, the pressure
//! source), a reading at once on a kernel pressure event, and a live view on a terminal.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use w4l::error::Result;
use w4l::memory::monitor::{Detected, MemoryMonitor, MemoryUsage, MonitorConfig, StepReport};
use w4l::memory::sparkline;
use w4l::memory::timeline::Sample;

use crate::cli::{MonitorArgs, format_bytes};
use crate::{accountant_for, emit, print_json};

/// Columns of the live view's sparklines: the last this many readings. The view's lines stay
/// under 80 columns: a wrapped line would break the redraw in place.
const SPARK_WIDTH: usize = 32;
/// How often the wait for the next reading looks at Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// One reading, as printed.
struct Reading {
    t: f64,
    usage: MemoryUsage,
    step: StepReport,
    /// The pressure event that triggered it, if one did.
    event: Option<u64>,
    /// The cgroup (its figures now) and the pressure source.
    detected: Detected,
}

pub fn run(args: &MonitorArgs, interrupted: &dyn Fn() -> bool) -> Result<()> {
    let ceiling = w4l::memory::monitor::machine_ceiling();
    let (accountant, rss_limit) = accountant_for(args.budget, args.model, None, ceiling);
    let accountant = Arc::new(accountant);
    let monitor = MemoryMonitor::new(
        accountant.clone(),
        MonitorConfig {
            interval: args.interval,
            rss_limit,
            ..MonitorConfig::default()
        },
    )?;
    let mut out = Output::new(args.json);
    let started = Instant::now();
    let (mut readings, mut periodic) = (0u64, 0u64);
    let mut seen = monitor.pressure_events();
    let mut event = false;
    loop {
        let now_ms = monitor.now_ms();
        let (step, by) =
            match event.then(|| monitor.step_on_pressure(now_ms, &mut seen, &mut |_| 0)) {
                Some(Some(step)) => (step, Some(seen)),
                _ => {
                    periodic += 1;
                    (monitor.step_at(now_ms), None)
                }
            };
        let usage = monitor.usage();
        let sample = Sample::from_figures(now_ms, &accountant.figures(), usage.rss, usage.level);
        let reading = Reading {
            t: started.elapsed().as_secs_f64(),
            usage,
            step,
            event: by,
            detected: monitor.detected(),
        };
        if !out.show(&reading, sample)? {
            return Ok(());
        }
        readings += 1;
        if args.count.is_some_and(|c| readings >= c) {
            return Ok(());
        }
        let due = started + args.interval.mul_f64(periodic as f64);
        match wait(&monitor, due, seen, interrupted) {
            Some(pressure) => event = pressure,
            None => return Ok(()),
        }
    }
}

/// Waits for the next reading: `Some(false)` when it is due, `Some(true)` on a pressure event
/// past `seen`, `None` on Ctrl-C.
fn wait(
    monitor: &MemoryMonitor,
    due: Instant,
    seen: u64,
    interrupted: &dyn Fn() -> bool,
) -> Option<bool> {
    loop {
        if interrupted() {
            return None;
        }
        let now = Instant::now();
        if now >= due {
            return Some(false);
        }
        if monitor.wait_for_pressure(seen, (due - now).min(SIGNAL_POLL)) {
            return Some(true);
        }
    }
}

/// Where readings go: JSON lines, plain lines, or a live view on a terminal.
struct Output {
    json: bool,
    /// On a terminal: the lines of the live view drawn last (0: none yet).
    live: Option<usize>,
    samples: VecDeque<Sample>,
}

impl Output {
    fn new(json: bool) -> Self {
        let terminal = !json && std::io::stdout().is_terminal();
        Self {
            json,
            live: terminal.then_some(0),
            samples: VecDeque::with_capacity(SPARK_WIDTH),
        }
    }

    /// Shows one reading; `false` when standard output is gone (`| head`).
    fn show(&mut self, r: &Reading, sample: Sample) -> Result<bool> {
        if self.samples.len() == SPARK_WIDTH {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        if self.json {
            return self.json_line(r);
        }
        let Some(drawn) = self.live else {
            let mut line = text_line(r);
            // Plain lines: the first one also says what was detected.
            if self.samples.len() == 1 {
                line.push_str(&format!("  ·  {}", detection(&r.detected, "; ")));
            }
            return emit(&format!("{line}\n"));
        };
        let mut text = String::new();
        if drawn == 0 {
            text.push_str(&format!("w4l monitor: {}\n", detection(&r.detected, "\n")));
        } else {
            // Back to the live view's first line, and clear from there.
            text.push_str(&format!("\x1b[{drawn}F\x1b[J"));
        }
        let samples: Vec<Sample> = self.samples.iter().copied().collect();
        let view = sparkline::live_view(&samples, SPARK_WIDTH, true);
        text.push_str(&format!("{view}\n{}\n", live_line(r)));
        self.live = Some(view.lines().count() + 1);
        emit(&text)
    }

    fn json_line(&self, r: &Reading) -> Result<bool> {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            t: f64,
            #[serde(flatten)]
            usage: &'a MemoryUsage,
            actions: Vec<String>,
            /// The pressure event that triggered this reading.
            event: Option<u64>,
            cgroup: Option<&'a w4l::memory::monitor::CgroupInfo>,
            pressure_events: &'a w4l::memory::monitor::PressureStatus,
        }
        print_json(&Line {
            t: r.t,
            usage: &r.usage,
            actions: r.step.actions.iter().map(|a| a.to_string()).collect(),
            event: r.event,
            cgroup: r.detected.cgroup.as_ref(),
            pressure_events: &r.detected.pressure,
        })
    }
}

/// `   1.0s  rss …  level Normal`, and ` pressure event N` for a reading an event triggered.
fn text_line(r: &Reading) -> String {
    let u = &r.usage;
    let mut line = format!(
        "{:7.1}s  rss {:>10}  available {:>10}  accounted {:>10} / {:>10}  pressure {:4}‰ {:<9}  level {}",
        r.t,
        format_bytes(u.rss),
        format_bytes(u.available),
        format_bytes(u.accounted),
        format_bytes(u.budget),
        u.pressure_permille,
        u.pressure_source,
        u.level.name(),
    );
    if let Some(n) = r.event {
        line.push_str(&format!("  pressure event {n}"));
    }
    line
}

/// The live view's line under the sparklines (which show the RSS and the accounted bytes).
fn live_line(r: &Reading) -> String {
    let u = &r.usage;
    let mut line = format!(
        "{:.1}s  available {}  pressure {}‰ {}",
        r.t,
        format_bytes(u.available),
        u.pressure_permille,
        u.pressure_source
    );
    if let Some(n) = r.event {
        line.push_str(&format!("  pressure event {n}"));
    }
    line
}

/// The cgroup and the pressure source, joined by `sep`.
fn detection(d: &Detected, sep: &str) -> String {
    let cgroup = d
        .cgroup
        .as_ref()
        .map_or_else(|| "no memory cgroup found".to_owned(), ToString::to_string);
    format!("{cgroup}{sep}{}", d.pressure)
}
