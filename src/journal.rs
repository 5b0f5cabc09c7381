//! stderr as systemd's journal. Under systemd, stderr is a stream the
//! journal reads line by line; a line starting with `<N>` (sd-daemon(3))
//! gets priority N, else every line is `info`, and `journalctl -p err`
//! finds nothing. So when stderr is the journal (`JOURNAL_STREAM`, see
//! systemd.exec(5)), each line carries its level as that prefix.

use std::io::{self, Write};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// sd-daemon(3)'s `SD_ERR`.
pub const ERR: u8 = 3;
/// `SD_WARNING`.
pub const WARNING: u8 = 4;
/// `SD_INFO`.
pub const INFO: u8 = 6;
/// `SD_DEBUG`.
pub const DEBUG: u8 = 7;

/// A log level as the journal's priority.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => ERR,
        Level::WARN => WARNING,
        Level::INFO => INFO,
        Level::DEBUG | Level::TRACE => DEBUG,
    }
}

/// Whether stderr is the journal.
pub fn stderr_is_journal() -> bool {
    is_journal(io::stderr())
}

/// Whether `stream` (stdout or stderr) is the journal: `JOURNAL_STREAM`
/// holds the device and inode of the stream systemd connected, and they
/// are this stream's own (a program started from the service with its
/// output elsewhere inherits the variable, not the stream).
pub fn is_journal(stream: impl std::os::fd::AsFd) -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    match (stream_of(value.to_str()), rustix::fs::fstat(stream)) {
        (Some((device, inode)), Ok(stat)) => stat.st_dev == device && stat.st_ino == inode,
        _ => false,
    }
}

/// `DEVICE:INODE`, as `JOURNAL_STREAM` holds them.
fn stream_of(value: Option<&str>) -> Option<(u64, u64)> {
    let (device, inode) = value?.split_once(':')?;
    Some((device.parse().ok()?, inode.parse().ok()?))
}

/// A writer that starts each line with `<N>`, N the priority; lines may
/// come in any pieces.
pub struct Prefixed<W: Write> {
    inner: W,
    priority: u8,
    at_line_start: bool,
}

impl<W: Write> Prefixed<W> {
    pub fn new(inner: W, priority: u8) -> Prefixed<W> {
        Prefixed {
            inner,
            priority,
            at_line_start: true,
        }
    }
}

impl<W: Write> Write for Prefixed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len() + 8);
        for line in buf.split_inclusive(|&b| b == b'\n') {
            if self.at_line_start {
                out.extend_from_slice(format!("<{}>", self.priority).as_bytes());
            }
            out.extend_from_slice(line);
            self.at_line_start = line.ends_with(b"\n");
        }
        // One write for the whole event, so lines of other threads never
        // come between its lines.
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// tracing's writer for stderr when it is the journal: each event's lines
/// prefixed with its level's priority.
#[derive(Debug, Clone, Copy, Default)]
pub struct JournalStderr;

impl<'a> MakeWriter<'a> for JournalStderr {
    type Writer = Prefixed<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Prefixed::new(io::stderr(), INFO)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Prefixed::new(io::stderr(), priority(meta.level()))
    }
}

/// `text` as lines for a stream that may be the journal: each line
/// prefixed with `priority` when `journal`, as is otherwise.
pub fn lines(text: &str, priority: u8, journal: bool) -> String {
    if !journal {
        return text.to_string();
    }
    let mut out = Prefixed::new(Vec::new(), priority);
    // Writing into a Vec cannot fail.
    let _ = out.write_all(text.as_bytes());
    String::from_utf8_lossy(&out.inner).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_gets_the_priority_even_in_pieces() {
        let mut out = Prefixed::new(Vec::new(), ERR);
        out.write_all(b"one\ntw").unwrap();
        out.write_all(b"o\n\nthree").unwrap();
        out.write_all(b"\n").unwrap();
        assert_eq!(
            String::from_utf8(out.inner).unwrap(),
            "<3>one\n<3>two\n<3>\n<3>three\n"
        );
        assert_eq!(lines("a\nb\n", WARNING, true), "<4>a\n<4>b\n");
        assert_eq!(lines("a\nb\n", WARNING, false), "a\nb\n");
    }

    #[test]
    fn levels_map_to_sd_daemon_priorities() {
        let got: Vec<u8> = [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ]
        .iter()
        .map(priority)
        .collect();
        assert_eq!(got, [3, 4, 6, 7, 7]);
    }

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(stream_of(Some("8:1234")), Some((8, 1234)));
        for bad in ["", "8", "8:", ":1", "x:1", "8:1:2"] {
            assert_eq!(stream_of(Some(bad)), None, "{bad}");
        }
        assert_eq!(stream_of(None), None);
    }
}
