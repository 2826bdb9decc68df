//! The memory timeline for a terminal: sparklines of Unicode blocks (`▁▂▃▄▅▆▇█`) for
//! `w4l monitor`'s live view, or one plain line per sample when the output is not a terminal
//! (a log file or a pipe gets text it can grep, not redrawn blocks).
//!
//! Both sparklines of the view share one scale, from 0 to the highest of the budget and
//! the RSS seen, so their heights compare: a full block is that highest value. A column
//! shows the *highest* sample it covers: a peak squeezed into a narrow view still shows.
//!
//! ```
//! use w4l::memory::sparkline::sparkline;
//!
//! assert_eq!(sparkline(&[0, 1, 2, 3, 4, 5, 6, 7, 8], 9, 8), " ▁▂▃▄▅▆▇█");
//! assert_eq!(sparkline(&[8, 0, 0, 8], 2, 8), "██"); // peaks survive narrowing
//! ```

use std::fmt::Write;

use w4l_core::accountant::Category;

use super::timeline::Sample;

const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const MIB: f64 = 1024.0 * 1024.0;

/// `values` as at most `width` block characters scaled to `max` (a full block): each column
/// is the highest of the values it covers; 0 is a space, anything above 0 at least `▁`.
pub fn sparkline(values: &[u64], width: usize, max: u64) -> String {
    let columns = values.len().min(width);
    (0..columns)
        .map(|c| {
            let (from, to) = (c * values.len() / columns, (c + 1) * values.len() / columns);
            let v = values[from..to.max(from + 1)]
                .iter()
                .copied()
                .max()
                .unwrap_or(0);
            block(v, max)
        })
        .collect()
}

fn block(value: u64, max: u64) -> char {
    if value == 0 {
        return ' ';
    }
    let eighths = (u128::from(value) * 8).div_ceil(u128::from(max.max(1)));
    BLOCKS[usize::try_from(eighths.clamp(1, 8)).unwrap_or(8) - 1]
}

/// What `w4l monitor` shows for `samples` (oldest first): on a terminal, two sparklines of
/// the last `width` samples (RSS, accounted) with the newest figures, as two lines the caller
/// redraws in place; otherwise one plain line for the newest sample. Empty without samples.
pub fn live_view(samples: &[Sample], width: usize, terminal: bool) -> String {
    let Some(now) = samples.last() else {
        return String::new();
    };
    if !terminal {
        return plain_line(now);
    }
    let recent = &samples[samples.len().saturating_sub(width)..];
    let max = recent
        .iter()
        .map(|s| s.budget.max(s.rss))
        .max()
        .unwrap_or(0);
    let rss: Vec<u64> = recent.iter().map(|s| s.rss).collect();
    let accounted: Vec<u64> = recent.iter().map(Sample::memory).collect();
    format!(
        "rss       {:<width$} {:>8.1} MiB\naccounted {:<width$} {:>8.1} MiB of {:.0} MiB · {}",
        sparkline(&rss, width, max),
        now.rss as f64 / MIB,
        sparkline(&accounted, width, max),
        now.memory() as f64 / MIB,
        now.budget as f64 / MIB,
        now.level,
    )
}

/// `t=12.0s rss=312.4MiB accounted=100.0MiB audio=… budget=512.0MiB level=Elevated`.
fn plain_line(s: &Sample) -> String {
    let mut line = format!(
        "t={:.1}s rss={:.1}MiB accounted={:.1}MiB",
        s.t_ms as f64 / 1000.0,
        s.rss as f64 / MIB,
        s.memory() as f64 / MIB
    );
    for c in Category::ALL {
        let _ = write!(line, " {c}={:.1}MiB", s.bytes(c) as f64 / MIB);
    }
    let _ = write!(
        line,
        " budget={:.1}MiB level={}",
        s.budget as f64 / MIB,
        s.level
    );
    line
}

#[cfg(test)]
mod tests {
    use w4l_core::policy::Level;

    use super::*;

    const M: u64 = 1 << 20;

    fn sample(t: u64, rss: u64, audio: u64) -> Sample {
        Sample {
            t_ms: t * 1000,
            rss: rss * M,
            accounted: [audio * M, 0, 0, M],
            budget: 100 * M,
            level: if audio > 60 {
                Level::Elevated
            } else {
                Level::Normal
            },
        }
    }

    #[test]
    fn blocks_scale_to_the_maximum_and_round_up() {
        assert_eq!(sparkline(&[], 10, 8), "");
        assert_eq!(sparkline(&[1, 100, 199, 200, 400], 5, 200), "▁▄███");
        assert_eq!(sparkline(&[5], 3, 0), "█");
        // Narrowed: 10 values into 3 columns, each the maximum of its part.
        assert_eq!(
            sparkline(&[1, 0, 0, 0, 8, 0, 0, 0, 0, 2], 3, 8)
                .chars()
                .count(),
            3
        );
        assert_eq!(sparkline(&[1, 0, 0, 0, 8, 0, 0, 0, 0, 2], 3, 8), "▁█▂");
    }

    #[test]
    fn terminal_view_has_two_aligned_sparklines() {
        let samples: Vec<Sample> = (0..20).map(|t| sample(t, 40 + 3 * t, 5 * t)).collect();
        let view = live_view(&samples, 10, true);
        let lines: Vec<&str> = view.lines().collect();
        assert_eq!(lines.len(), 2, "{view}");
        assert!(lines[0].starts_with("rss       ▆▆▇▇▇▇████ "), "{view}");
        assert!(lines[0].ends_with("97.0 MiB"), "{view}");
        assert!(
            lines[1].ends_with("95.0 MiB of 100 MiB · Elevated"),
            "{view}"
        );
    }

    #[test]
    fn plain_view_is_one_greppable_line() {
        let samples = [sample(0, 40, 10), sample(1, 41, 12)];
        assert_eq!(
            live_view(&samples, 40, false),
            "t=1.0s rss=41.0MiB accounted=12.0MiB audio=12.0MiB model=0.0MiB other=0.0MiB \
             disk=1.0MiB budget=100.0MiB level=Normal"
        );
        assert_eq!(live_view(&[], 40, false), "");
    }
}
