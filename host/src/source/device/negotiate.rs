//! Choosing among what devices offer: a device by name, a format among the ranges a device
//! supports. Backend-neutral (plain data in, a choice out).

use std::fmt;

use serde::Serialize;

use super::SampleFormat;

/// Picks `wanted` among `names` (name, id): an exact name or id, else the one whose name or id
/// contains it, case-insensitively. `Err(None)`: none matches; `Err(Some(indices))`: several do.
pub(crate) fn select_by_name(
    names: &[(String, String)],
    wanted: &str,
) -> Result<usize, Option<Vec<usize>>> {
    if let Some(i) = names
        .iter()
        .position(|(name, id)| name == wanted || id == wanted)
    {
        return Ok(i);
    }
    let needle = wanted.to_lowercase();
    let hits: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, (name, id))| {
            name.to_lowercase().contains(&needle) || id.to_lowercase().contains(&needle)
        })
        .map(|(i, _)| i)
        .collect();
    match hits.len() {
        0 => Err(None),
        1 => Ok(hits[0]),
        _ => Err(Some(hits)),
    }
}

/// A range of configurations a device supports, in w4l's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConfigRange {
    /// Sample format.
    pub sample_format: SampleFormat,
    /// Fewest channels.
    pub min_channels: u16,
    /// Most channels.
    pub max_channels: u16,
    /// Lowest rate, Hz.
    pub min_rate: u32,
    /// Highest rate, Hz.
    pub max_rate: u32,
}

impl ConfigRange {
    fn contains(&self, rate: u32, channels: u16) -> bool {
        (self.min_channels..=self.max_channels).contains(&channels)
            && (self.min_rate..=self.max_rate).contains(&rate)
    }
}

impl fmt::Display for ConfigRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.sample_format)?;
        if self.min_channels == self.max_channels {
            write!(f, "{} ch", self.min_channels)?;
        } else {
            write!(f, "{}-{} ch", self.min_channels, self.max_channels)?;
        }
        if self.min_rate == self.max_rate {
            write!(f, " {} Hz", self.min_rate)
        } else {
            write!(f, " {}-{} Hz", self.min_rate, self.max_rate)
        }
    }
}

/// Merges ranges that differ only by adjacent channel counts.
pub(crate) fn merge_ranges(mut ranges: Vec<ConfigRange>) -> Vec<ConfigRange> {
    let rank = |f: SampleFormat| SampleFormat::PREFERENCE.iter().position(|&p| p == f);
    ranges.sort_by_key(|r| {
        (
            rank(r.sample_format),
            r.min_rate,
            r.max_rate,
            r.min_channels,
        )
    });
    let mut out: Vec<ConfigRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        if let Some(last) = out.last_mut()
            && last.sample_format == r.sample_format
            && last.min_rate == r.min_rate
            && last.max_rate == r.max_rate
            && r.min_channels <= last.max_channels.saturating_add(1)
        {
            last.max_channels = last.max_channels.max(r.max_channels);
            continue;
        }
        out.push(r);
    }
    out.sort_by_key(|r| (rank(r.sample_format), r.min_channels, r.min_rate));
    out
}

/// The rates tried, in order, when the request names none.
pub const PREFERRED_RATES: [u32; 2] = [48_000, 16_000];

/// Chooses rate, channels and format among `ranges`.
///
/// Rate: the requested one, else 48000, else 16000, else `default_rate`, else the highest
/// supported rate up to 48000 (or the lowest above). Channels: the requested count, else
/// `default_channels`, else the fewest supported. Format: `default_format` (what the device
/// is best asked for: an ALSA device's own, no conversion in ALSA; 16-bit from a PulseAudio
/// source), else the first of [`SampleFormat::PREFERENCE`], that supports both. `Err` describes what was wanted and what is supported.
pub fn negotiate(
    ranges: &[ConfigRange],
    rate: Option<u32>,
    channels: Option<u16>,
    default_rate: Option<u32>,
    default_channels: Option<u16>,
    default_format: Option<SampleFormat>,
) -> Result<(u32, u16, SampleFormat), (String, String)> {
    let supported = describe_ranges(ranges);
    let fewest = ranges.iter().map(|r| r.min_channels).min();
    let Some(channels) = channels.or(default_channels).or(fewest) else {
        return Err(("any input".into(), supported));
    };
    let mut rates: Vec<u32> = match rate {
        Some(r) => vec![r],
        None => PREFERRED_RATES
            .iter()
            .copied()
            .chain(default_rate)
            .collect(),
    };
    if rate.is_none() {
        // Last resort: the supported rate closest to 48000 from below, else from above.
        let fits: Vec<&ConfigRange> = ranges
            .iter()
            .filter(|r| (r.min_channels..=r.max_channels).contains(&channels))
            .collect();
        if let Some(best) = fits
            .iter()
            .filter(|r| r.min_rate <= 48_000)
            .map(|r| r.max_rate.min(48_000))
            .max()
        {
            rates.push(best);
        } else if let Some(best) = fits.iter().map(|r| r.min_rate).min() {
            rates.push(best);
        }
    }
    for &r in &rates {
        for format in default_format.into_iter().chain(SampleFormat::PREFERENCE) {
            if ranges
                .iter()
                .any(|c| c.sample_format == format && c.contains(r, channels))
            {
                return Ok((r, channels, format));
            }
        }
    }
    let wanted = match rate {
        Some(r) => format!("{r} Hz with {channels} channel(s)"),
        None => format!("{channels} channel(s)"),
    };
    Err((wanted, supported))
}

/// A short description of `ranges` for messages.
pub fn describe_ranges(ranges: &[ConfigRange]) -> String {
    if ranges.is_empty() {
        return "no format w4l can convert".into();
    }
    let parts: Vec<String> = ranges.iter().take(12).map(ToString::to_string).collect();
    let more = ranges.len().saturating_sub(12);
    if more > 0 {
        format!("{} and {more} more", parts.join(", "))
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(f: SampleFormat, ch: (u16, u16), rate: (u32, u32)) -> ConfigRange {
        ConfigRange {
            sample_format: f,
            min_channels: ch.0,
            max_channels: ch.1,
            min_rate: rate.0,
            max_rate: rate.1,
        }
    }

    #[test]
    fn device_names_exact_then_unique_substring() {
        let names: Vec<(String, String)> = [
            ("Monitor of w4l_virtual_microphone", "w4l_mic.monitor"),
            ("USB Microphone", "alsa_input.usb-mic"),
            ("USB Microphone Pro", "alsa_input.usb-mic-pro"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(select_by_name(&names, "USB Microphone"), Ok(1));
        assert_eq!(select_by_name(&names, "alsa_input.usb-mic-pro"), Ok(2));
        assert_eq!(select_by_name(&names, "W4L_MIC"), Ok(0));
        assert_eq!(select_by_name(&names, "pro"), Ok(2));
        assert_eq!(select_by_name(&names, "usb"), Err(Some(vec![1, 2])));
        assert_eq!(select_by_name(&names, "nothing"), Err(None));
    }

    #[test]
    fn negotiation_prefers_48k_then_16k_and_f32_then_i16() {
        let r = [
            range(SampleFormat::I16, (1, 2), (8000, 48000)),
            range(SampleFormat::F32, (1, 2), (8000, 48000)),
            range(SampleFormat::U8, (1, 2), (8000, 96000)),
        ];
        assert_eq!(
            negotiate(&r, None, Some(1), None, None, None),
            Ok((48000, 1, SampleFormat::F32))
        );
        let r = [
            range(SampleFormat::I16, (1, 1), (16000, 16000)),
            range(SampleFormat::U8, (1, 1), (16000, 44100)),
        ];
        assert_eq!(
            negotiate(&r, None, None, Some(44100), Some(1), None),
            Ok((16000, 1, SampleFormat::I16))
        );
        // Neither 48000 nor 16000: the device default.
        let r = [range(SampleFormat::I32, (2, 2), (44100, 44100))];
        assert_eq!(
            negotiate(&r, None, None, Some(44100), Some(2), None),
            Ok((44100, 2, SampleFormat::I32))
        );
        // No default: the closest to 48000 from below.
        let r = [range(SampleFormat::I8, (1, 1), (22050, 32000))];
        assert_eq!(
            negotiate(&r, None, None, None, None, None),
            Ok((32000, 1, SampleFormat::I8))
        );
    }

    #[test]
    fn negotiation_prefers_the_devices_own_format() {
        let r = [
            range(SampleFormat::I16, (1, 2), (8000, 48000)),
            range(SampleFormat::F32, (1, 2), (8000, 48000)),
        ];
        assert_eq!(
            negotiate(&r, None, Some(2), None, None, Some(SampleFormat::I16)),
            Ok((48000, 2, SampleFormat::I16))
        );
        // A default the device cannot do at that rate: the preference order.
        let r = [
            range(SampleFormat::I16, (1, 2), (8000, 16000)),
            range(SampleFormat::F32, (1, 2), (8000, 48000)),
        ];
        assert_eq!(
            negotiate(&r, None, Some(2), None, None, Some(SampleFormat::I16)),
            Ok((48000, 2, SampleFormat::F32))
        );
    }

    #[test]
    fn negotiation_failure_lists_what_is_supported() {
        let r = [range(SampleFormat::I16, (1, 2), (8000, 48000))];
        let (wanted, supported) =
            negotiate(&r, Some(96000), Some(2), None, None, None).unwrap_err();
        assert_eq!(wanted, "96000 Hz with 2 channel(s)");
        assert_eq!(supported, "i16 1-2 ch 8000-48000 Hz");
        let (wanted, _) = negotiate(&r, None, Some(6), None, None, None).unwrap_err();
        assert_eq!(wanted, "6 channel(s)");
        let (_, supported) = negotiate(&[], None, None, None, None, None).unwrap_err();
        assert_eq!(supported, "no format w4l can convert");
    }

    #[test]
    fn ranges_merge_adjacent_channel_counts() {
        let rs: Vec<ConfigRange> = (1..=31)
            .flat_map(|ch| {
                [
                    range(SampleFormat::I16, (ch, ch), (1, 384000)),
                    range(SampleFormat::F32, (ch, ch), (1, 384000)),
                ]
            })
            .collect();
        let merged = merge_ranges(rs);
        assert_eq!(
            merged,
            vec![
                range(SampleFormat::F32, (1, 31), (1, 384000)),
                range(SampleFormat::I16, (1, 31), (1, 384000)),
            ]
        );
        assert_eq!(merged[0].to_string(), "f32 1-31 ch 1-384000 Hz");
    }
}
