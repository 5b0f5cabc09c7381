//! Reading a drop out of an inbox. The scan saw a regular file, but whoever
//! may write the inbox may swap the entry between that look and the read:
//! for a link to a file only the daemon may read (a token file, its state),
//! whose lines would come back quoted in a report the drop group reads, or
//! for a named pipe that would block the file processor for good. So the
//! entry is opened without following a link and without blocking, and what
//! was opened is judged, not the name: a regular file, within
//! `max_file_size`, read through the very descriptor that was checked.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use crate::config::size::{ByteSize, too_big};

/// What reading a drop gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Contents {
    Bytes(Vec<u8>),
    /// Bigger than `max_file_size` (why, in words): refused unread.
    TooBig(String),
}

/// Reads the drop at `path`, at most `limit` bytes (blocking IO). An error
/// says what the entry turned out to be when it is no longer a regular file.
pub(super) fn read_drop(path: &Path, limit: ByteSize) -> std::io::Result<Contents> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|errno| {
        if errno == rustix::io::Errno::LOOP {
            replaced("a symbolic link")
        } else {
            std::io::Error::from(errno)
        }
    })?;
    let mut file = std::fs::File::from(fd);
    let metadata = file.metadata()?;
    let kind = metadata.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a folder"
        } else if kind.is_fifo() {
            "a named pipe"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(replaced(what));
    }
    if let Some(reason) = too_big(metadata.len(), limit) {
        return Ok(Contents::TooBig(reason));
    }
    // It may still grow while it is read: never more than the limit.
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    (&mut file)
        .take(limit.0.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit.0 {
        let now = file.metadata().map_or(bytes.len() as u64, |m| m.len());
        return Ok(Contents::TooBig(
            too_big(now.max(limit.0 + 1), limit).unwrap_or_default(),
        ));
    }
    Ok(Contents::Bytes(bytes))
}

fn replaced(what: &str) -> std::io::Error {
    std::io::Error::other(format!(
        "it is now {what}, no longer the file the scan saw (replaced while it was being taken): not read"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: ByteSize = ByteSize(64);

    #[test]
    fn a_regular_file_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("u.csv");
        std::fs::write(&file, "a;b\n1;2\n").unwrap();
        assert_eq!(
            read_drop(&file, LIMIT).unwrap(),
            Contents::Bytes(b"a;b\n1;2\n".to_vec())
        );
    }

    #[test]
    fn a_link_is_never_followed_even_to_a_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("token");
        std::fs::write(&secret, "s3cr3t").unwrap();
        let link = dir.path().join("u.csv");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let error = read_drop(&link, LIMIT).unwrap_err();
        assert!(
            error.to_string().contains("it is now a symbolic link"),
            "{error}"
        );
    }

    #[test]
    fn a_named_pipe_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("u.csv");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &pipe,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // Without O_NONBLOCK the open would wait for a writer forever.
        let error = read_drop(&pipe, LIMIT).unwrap_err();
        assert!(
            error.to_string().contains("it is now a named pipe"),
            "{error}"
        );
    }

    #[test]
    fn a_folder_is_refused_and_a_file_above_the_limit_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_drop(dir.path(), LIMIT).unwrap_err();
        assert!(error.to_string().contains("it is now a folder"), "{error}");
        let big = dir.path().join("big.csv");
        std::fs::write(&big, vec![b'x'; 65]).unwrap();
        let Contents::TooBig(reason) = read_drop(&big, LIMIT).unwrap() else {
            panic!("read")
        };
        assert!(reason.starts_with("the file is 65 bytes"), "{reason}");
    }
}
