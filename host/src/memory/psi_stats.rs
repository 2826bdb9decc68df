//! The figures of a pressure file (`/proc/pressure/memory`, a cgroup's `memory.pressure`):
//! how much of the last 10, 60 and 300 s tasks stalled waiting for memory, for `w4l monitor`.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

/// Stall figures of one line of a pressure file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stalls {
    /// Share of the last 10 s that tasks stalled, in hundredths of a percent (`1.23` → 123).
    pub avg10: u32,
    /// The same over 60 s.
    pub avg60: u32,
    /// The same over 300 s.
    pub avg300: u32,
    /// Total stall time since boot (or the group's creation).
    pub total: Duration,
}

/// The figures of a pressure file (`/proc/pressure/memory`, a cgroup's `memory.pressure`).
///
/// ```
/// use std::time::Duration;
/// use w4l::memory::psi_stats::PsiStats;
///
/// let stats = PsiStats::parse(
///     "some avg10=1.23 avg60=0.50 avg300=0.00 total=84285\n\
///      full avg10=0.00 avg60=0.00 avg300=0.00 total=54208\n",
/// )
/// .unwrap();
/// assert_eq!(stats.some.avg10, 123);
/// assert_eq!(stats.full.unwrap().total, Duration::from_micros(54208));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PsiStats {
    /// At least one task stalled.
    pub some: Stalls,
    /// All non-idle tasks stalled at once (absent from old kernels' CPU files).
    pub full: Option<Stalls>,
}

impl PsiStats {
    /// Reads and parses the pressure file at `path`.
    ///
    /// # Errors
    ///
    /// The read's error, or `InvalidData` when the text is not a pressure file.
    pub fn read(path: &Path) -> io::Result<Self> {
        let text = fs::read_to_string(path)?;
        Self::parse(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a pressure file", path.display()),
            )
        })
    }

    /// Parses the text of a pressure file; `None` if the `some` line is missing or malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let mut stats = PsiStats::default();
        let mut some = false;
        for line in text.lines() {
            let mut words = line.split_ascii_whitespace();
            match words.next() {
                Some("some") => (stats.some, some) = (parse_stalls(words)?, true),
                Some("full") => stats.full = Some(parse_stalls(words)?),
                _ => return None,
            }
        }
        some.then_some(stats)
    }
}

fn parse_stalls<'a>(words: impl Iterator<Item = &'a str>) -> Option<Stalls> {
    let mut stalls = Stalls::default();
    for word in words {
        match word.split_once('=')? {
            ("avg10", v) => stalls.avg10 = parse_percent(v)?,
            ("avg60", v) => stalls.avg60 = parse_percent(v)?,
            ("avg300", v) => stalls.avg300 = parse_percent(v)?,
            ("total", v) => stalls.total = Duration::from_micros(v.parse().ok()?),
            _ => {}
        }
    }
    Some(stalls)
}

/// `12.34` → 1234 hundredths (the kernel prints two decimals).
fn parse_percent(text: &str) -> Option<u32> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let hundredths = match frac.len() {
        0 => 0,
        1 => frac.parse::<u32>().ok()? * 10,
        _ => frac.get(..2)?.parse().ok()?,
    };
    whole
        .parse::<u32>()
        .ok()?
        .checked_mul(100)?
        .checked_add(hundredths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::psi::PROC_PRESSURE_MEMORY;

    #[test]
    fn parses_the_kernels_pressure_file() {
        let text = "some avg10=0.00 avg60=12.05 avg300=100.00 total=84285\n\
                    full avg10=0.10 avg60=0.00 avg300=0.00 total=54208\n";
        let stats = PsiStats::parse(text).expect("parses");
        assert_eq!(
            stats.some,
            Stalls {
                avg10: 0,
                avg60: 1205,
                avg300: 10000,
                total: Duration::from_micros(84285)
            }
        );
        assert_eq!(stats.full.map(|f| f.avg10), Some(10));
        // Old kernels' cpu file: no `full` line.
        let cpu = PsiStats::parse("some avg10=1.5 avg60=0.00 avg300=0.00 total=1").expect("cpu");
        assert_eq!((cpu.some.avg10, cpu.full), (150, None));
    }

    #[test]
    fn refuses_what_is_not_a_pressure_file() {
        for text in [
            "",
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=1",
            "some avg10=x avg60=0.00 avg300=0.00 total=1",
            "some avg10=0.00 total=-1",
            "MemTotal: 24731400 kB",
        ] {
            assert_eq!(PsiStats::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn reads_this_machines_pressure_file() {
        let path = Path::new(PROC_PRESSURE_MEMORY);
        if !path.exists() {
            eprintln!("skipped: {PROC_PRESSURE_MEMORY} does not exist (kernel without PSI)");
            return;
        }
        let stats = PsiStats::read(path).expect("the kernel's file parses");
        assert!(
            stats.some.avg10 <= 10_000 && stats.full.is_some(),
            "{stats:?}"
        );
    }
}
