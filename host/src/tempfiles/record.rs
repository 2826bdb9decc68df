//! The small files that let a later process finish what a killed one left: a take's
//! *manifest* beside its journal, and a *record* naming a file outside the directory.
//!
//! Both are `key=value` lines after a first line naming the kind and version. Paths are
//! percent-encoded (every byte outside `!`..`~`, and `%` itself), so any path, even one with a
//! newline in it, fits on one line. Both are written once, 0600, and synced, before the file
//! they speak for holds anything worth keeping. A reader takes what it understands and ignores
//! the rest: a damaged manifest still marks a take (to recover, never to reap).

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// First line of a manifest.
const MANIFEST_HEADER: &str = "w4l-take 1";
/// First line of a record.
const RECORD_HEADER: &str = "w4l-record 1";
/// Largest manifest or record read back (they are a few hundred bytes).
const MAX_LEN: u64 = 64 << 10;

/// What a take's journal is, written beside it (`<journal>.manifest`) when it is created: what
/// a later start needs to finish the take if its owner dies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Where the take was to be saved, if known.
    pub output: Option<PathBuf>,
    /// The sample format's name (`i16`, `f32`).
    pub format: String,
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// When the take started (Unix seconds).
    pub started: u64,
    /// The recording process.
    pub pid: u32,
    /// Names the take: the same for all its numbered parts.
    pub take: String,
    /// This file's place among the take's parts (0, then 1, 2, … past 4 GiB each).
    pub part: u32,
}

impl Manifest {
    /// The manifest as the bytes of its file.
    pub fn render(&self) -> Vec<u8> {
        let mut text = format!(
            "{MANIFEST_HEADER}\npid={}\nstarted={}\nformat={}\nrate={}\nchannels={}\ntake={}\npart={}\n",
            self.pid,
            self.started,
            encode(self.format.as_bytes()),
            self.rate,
            self.channels,
            encode(self.take.as_bytes()),
            self.part
        );
        if let Some(output) = &self.output {
            text.push_str(&format!(
                "output={}\n",
                encode(output.as_os_str().as_bytes())
            ));
        }
        text.into_bytes()
    }

    /// Reads a manifest; `None` if `bytes` is not one. Unknown keys are ignored, missing ones
    /// left at their defaults.
    pub fn parse(bytes: &[u8]) -> Option<Manifest> {
        let mut lines = std::str::from_utf8(bytes).ok()?.lines();
        if lines.next()? != MANIFEST_HEADER {
            return None;
        }
        let mut m = Manifest::default();
        for (key, value) in lines.filter_map(|l| l.split_once('=')) {
            match key {
                "pid" => m.pid = value.parse().ok()?,
                "started" => m.started = value.parse().ok()?,
                "format" => m.format = String::from_utf8(decode(value)?).ok()?,
                "rate" => m.rate = value.parse().ok()?,
                "channels" => m.channels = value.parse().ok()?,
                "take" => m.take = String::from_utf8(decode(value)?).ok()?,
                "part" => m.part = value.parse().ok()?,
                "output" => m.output = Some(PathBuf::from(OsString::from_vec(decode(value)?))),
                _ => {}
            }
        }
        Some(m)
    }

    /// Reads the manifest at `path`; `None` if it is missing, too large or not a manifest.
    pub fn read(path: &Path) -> Option<Manifest> {
        Manifest::parse(&read_small(path).ok()?)
    }
}

/// Which file a path named when it was recorded: its device, inode and, where the file system
/// keeps one, birth time — so a new file that got a freed inode number is not taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ident {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// Birth time, nanoseconds since the epoch.
    pub(crate) born: Option<u128>,
}

impl Ident {
    pub(crate) fn of(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            born: meta
                .created()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos()),
        }
    }

    /// Whether `path` is still the regular file this names (no symbolic link followed).
    pub(crate) fn names(&self, path: &Path) -> bool {
        let Ok(meta) = fs::symlink_metadata(path) else {
            return false;
        };
        let now = Ident::of(&meta);
        let born_same = match (self.born, now.born) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        meta.is_file() && (now.dev, now.ino) == (self.dev, self.ino) && born_same
    }
}

/// A file outside the directory, as a record names it. A file w4l creates is recorded before it
/// exists, so without an [`Ident`]: its random name, and the checks of the reaper (a regular
/// file of this user), are what make it w4l's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) target: PathBuf,
    pub(crate) ident: Option<Ident>,
}

impl Record {
    /// Whether `target` is (still) the file recorded.
    pub(crate) fn names_target(&self) -> bool {
        match &self.ident {
            Some(ident) => ident.names(&self.target),
            None => fs::symlink_metadata(&self.target).is_ok_and(|m| m.is_file()),
        }
    }
}

impl Record {
    pub(crate) fn render(&self) -> Vec<u8> {
        let mut text = format!("{RECORD_HEADER}\n");
        if let Some(ident) = &self.ident {
            text.push_str(&format!("dev={}\nino={}\n", ident.dev, ident.ino));
            if let Some(born) = ident.born {
                text.push_str(&format!("born={born}\n"));
            }
        }
        text.push_str(&format!(
            "path={}\n",
            encode(self.target.as_os_str().as_bytes())
        ));
        text.into_bytes()
    }

    fn parse(bytes: &[u8]) -> Option<Record> {
        let mut lines = std::str::from_utf8(bytes).ok()?.lines();
        if lines.next()? != RECORD_HEADER {
            return None;
        }
        let (mut dev, mut ino, mut born, mut target) = (None, None, None, None);
        for (key, value) in lines.filter_map(|l| l.split_once('=')) {
            match key {
                "dev" => dev = value.parse().ok(),
                "ino" => ino = value.parse().ok(),
                "born" => born = value.parse().ok(),
                "path" => target = decode(value).map(|b| PathBuf::from(OsString::from_vec(b))),
                _ => {}
            }
        }
        let ident = match (dev, ino) {
            (Some(dev), Some(ino)) => Some(Ident { dev, ino, born }),
            _ => None,
        };
        Some(Record {
            target: target?,
            ident,
        })
    }

    /// Reads the record at `at`; `Ok(None)` if it is not one.
    pub(crate) fn read(at: &Path) -> io::Result<Option<Record>> {
        read_small(at).map(|bytes| Record::parse(&bytes))
    }
}

/// Creates `path` (0600, never following a link, never replacing anything), writes `bytes` and
/// syncs them.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_data());
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written
}

/// Reads a small regular file without following a link.
fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_LEN).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Percent-encodes every byte outside `!`..`~`, and `%`.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes [`encode`]; `None` for a malformed escape.
fn decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_and_records_round_trip_any_path() {
        let odd = PathBuf::from(OsString::from_vec(b"/a b/%x\n\xff.wav".to_vec()));
        let m = Manifest {
            output: Some(odd.clone()),
            format: "f32".into(),
            rate: 48_000,
            channels: 2,
            started: 1_700_000_000,
            pid: 42,
            take: "AbCdEfGhIj".into(),
            part: 3,
        };
        let text = m.render();
        assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), 9);
        assert_eq!(Manifest::parse(&text), Some(m.clone()));
        assert_eq!(
            Manifest::parse(&[&text[..], b"future=1\n"].concat()),
            Some(m)
        );
        assert_eq!(Manifest::parse(b"something else\n"), None);
        assert_eq!(Manifest::parse(b"w4l-take 1\nrate=x\n"), None);

        let mut r = Record {
            target: odd,
            ident: Some(Ident {
                dev: 1,
                ino: u64::MAX,
                born: Some(1_700_000_000_123_456_789),
            }),
        };
        assert_eq!(Record::parse(&r.render()), Some(r.clone()));
        r.ident = r.ident.map(|i| Ident { born: None, ..i });
        assert_eq!(Record::parse(&r.render()), Some(r.clone()));
        r.ident = None;
        assert_eq!(Record::parse(&r.render()), Some(r));
        assert_eq!(Record::parse(b"w4l-record 1\ndev=1\n"), None);
        assert_eq!(decode("%4"), None);
    }
}
