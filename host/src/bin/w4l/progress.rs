//! The live status line of `w4l record`: elapsed time, a level meter, memory used / budget and
//! the policy level, redrawn in place on a terminal and absent otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::format_bytes;

/// What the live line shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveStatus<'a> {
    /// Audio time recorded so far.
    pub elapsed: Duration,
    /// Peak level of the latest audio, in dBFS (`-inf` for silence).
    pub peak_dbfs: f32,
    /// Bytes of audio held, as charged to the budget.
    pub used: u64,
    /// The budget in bytes.
    pub budget: u64,
    /// The policy level's name.
    pub level: &'a str,
    /// Ring overruns so far (samples the worker could not take in time).
    pub overruns: u64,
    /// Samples of the take lost so far (evicted from memory while not on disk).
    pub lost_samples: u64,
}

/// The live line. Hidden (every call a no-op) unless stdout is a terminal.
#[derive(Debug)]
pub struct LiveLine {
    bar: ProgressBar,
}

/// Width of the level meter in characters.
const METER: usize = 20;
/// The meter's floor in dBFS.
const FLOOR_DB: f32 = -60.0;

impl LiveLine {
    /// A live line on stdout if stdout is a terminal, else a hidden one.
    pub fn for_stdout() -> Self {
        Self::new(std::io::stdout().is_terminal())
    }

    /// A live line on stdout if `visible`, else a hidden one.
    pub fn new(visible: bool) -> Self {
        if !visible {
            return Self {
                bar: ProgressBar::hidden(),
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout_with_hz(10));
        let style = ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        Self { bar }
    }

    /// Whether anything is drawn.
    pub fn is_visible(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Redraws the line with `status`.
    pub fn update(&self, status: &LiveStatus<'_>) {
        if self.bar.is_hidden() {
            return;
        }
        self.bar.set_message(render(status));
        self.bar.tick();
    }

    /// Removes the live line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for LiveLine {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}

/// The line's text, e.g. `00:12.3 [#########           ] -18.2 dBFS  mem 1.2 MiB / 64.0 MiB  policy normal`.
pub fn render(s: &LiveStatus<'_>) -> String {
    let secs = s.elapsed.as_secs_f64();
    let minutes = (secs / 60.0).floor();
    let db = if s.peak_dbfs.is_finite() {
        s.peak_dbfs.clamp(FLOOR_DB, 0.0)
    } else {
        FLOOR_DB
    };
    let filled = (((db - FLOOR_DB) / -FLOOR_DB) * METER as f32).round() as usize;
    let filled = filled.min(METER);
    let level = if s.peak_dbfs.is_finite() {
        format!("{:6.1} dBFS", s.peak_dbfs)
    } else {
        "  -inf dBFS".to_owned()
    };
    let mut line = format!(
        "{:02}:{:04.1} [{}{}] {level}  mem {} / {}  policy {}",
        minutes as u64,
        secs - minutes * 60.0,
        "#".repeat(filled),
        " ".repeat(METER - filled),
        format_bytes(s.used),
        format_bytes(s.budget),
        s.level,
    );
    if s.overruns > 0 {
        line.push_str(&format!("  overruns {}", s.overruns));
    }
    if s.lost_samples > 0 {
        line.push_str(&format!("  lost {} samples", s.lost_samples));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_meter_and_figures() {
        let s = LiveStatus {
            elapsed: Duration::from_millis(72_300),
            peak_dbfs: -30.0,
            used: 1536,
            budget: 64 << 20,
            level: "normal",
            overruns: 0,
            lost_samples: 2,
        };
        let line = render(&s);
        assert!(
            line.starts_with("01:12.3 [##########          ]  -30.0 dBFS"),
            "{line}"
        );
        assert!(
            line.contains("mem 1.5 KiB / 64.0 MiB  policy normal"),
            "{line}"
        );
        assert!(line.ends_with("lost 2 samples"), "{line}");
        let silent = LiveStatus {
            peak_dbfs: f32::NEG_INFINITY,
            ..s
        };
        assert!(render(&silent).contains("[                    ]   -inf dBFS"));
    }

    #[test]
    fn hidden_line_is_inert() {
        let l = LiveLine::new(false);
        assert!(!l.is_visible());
        l.finish();
    }
}
