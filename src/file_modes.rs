//! Who may read what rostersync writes (README, *Hardening*), whatever the
//! umask it was started with.
//!
//! - The state is the service user's alone: the state folder (0700), the
//!   store, the commit notes, `dates.last`, the control socket,
//!   `status.json`, the logs. [`restrict`], first thing in `main`, narrows
//!   the process umask to owner-only, so that every file created without a
//!   word, sled's own included (it writes snapshots as it goes), is 0600;
//!   the state folder and the store are also made owner-only explicitly
//!   ([`private_dir`]), which closes those an older release left open.
//! - What administrators and HR read, the inbox's sub-folders and the side
//!   files there (reports, `.errors.txt`, plans, `.actions.jsonl`) and the
//!   WBT files, is [`Access::Shared`]: the group's access as the starting
//!   umask allows, never others' (under the unit's `UMask=0007`: folders
//!   0770, files 0660, the setgid bit of a drop folder kept). The drops
//!   themselves keep the mode HR gave them.
//!
//! A program that never calls [`restrict`] (the library in a test) gets the
//! files its umask makes, the state folder and the store made owner-only.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// No [`restrict`] yet: shared files are left as the umask makes them.
const UNRESTRICTED: u32 = u32::MAX;

/// The umask the process started with, once [`restrict`] narrowed it.
static STARTED_UMASK: AtomicU32 = AtomicU32::new(UNRESTRICTED);

/// Who may read a file rostersync writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The service user alone (0600).
    Private,
    /// The group too, as the starting umask allows; others never.
    Shared,
}

/// Narrows the process umask to owner-only and remembers the one it had.
/// Call it once, before any thread starts (the umask is the process's).
pub fn restrict() {
    let started = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let started = started.bits() & 0o777;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(started | 0o077));
    STARTED_UMASK.store(started, Ordering::Relaxed);
}

/// The mode of a shared file or folder, if [`restrict`] ran.
fn shared_mode(folder: bool) -> Option<u32> {
    let started = STARTED_UMASK.load(Ordering::Relaxed);
    (started != UNRESTRICTED).then(|| {
        let full = if folder { 0o777 } else { 0o666 };
        full & !started & !0o007
    })
}

/// Creates (or truncates) a file to write, with its access.
pub fn create_file(path: &Path, access: Access) -> io::Result<File> {
    let mode = match access {
        Access::Private => 0o600,
        Access::Shared => 0o666,
    };
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    if access == Access::Shared {
        share_open(&file)?;
    }
    Ok(file)
}

/// Gives an open file the shared mode (the narrowed umask took its group bits).
fn share_open(file: &File) -> io::Result<()> {
    match shared_mode(false) {
        Some(mode) => file.set_permissions(std::fs::Permissions::from_mode(mode)),
        None => Ok(()),
    }
}

/// Gives a file or folder rostersync made the shared mode (a folder keeps
/// its setgid bit: a drop folder's group is passed on that way).
pub fn share(path: &Path) -> io::Result<()> {
    let metadata = std::fs::symlink_metadata(path)?;
    let Some(mode) = shared_mode(metadata.is_dir()) else {
        return Ok(());
    };
    let setgid = metadata.permissions().mode() & 0o2000;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | setgid))
}

/// Creates a folder administrators read (and the folders above it that are
/// missing), each shared.
pub fn shared_dir(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        shared_dir(parent)?;
    }
    match std::fs::create_dir(path) {
        Ok(()) => share(path),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(error) => Err(error),
    }
}

/// Creates a folder of the state (and those above it that are missing)
/// owner-only, and closes it to group and others if it was open.
pub fn private_dir(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    close(path)
}

/// Takes group and other access off a path of the state.
fn close(path: &Path) -> io::Result<()> {
    let mode = std::fs::symlink_metadata(path)?.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))
}

/// Makes a folder of the state and everything in it owner-only (a store an
/// older release wrote under a wider umask). Links are not followed.
pub fn close_all(path: &Path) -> io::Result<()> {
    close(path)?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            if !entry.file_type()?.is_symlink() {
                close_all(&entry.path())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn the_state_is_closed_to_group_and_others() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(state.join("db")).unwrap();
        std::fs::write(state.join("db/conf"), "x").unwrap();
        std::fs::set_permissions(
            state.join("db/conf"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        private_dir(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        close_all(&state.join("db")).unwrap();
        assert_eq!(mode(&state.join("db/conf")), 0o600);
        assert_eq!(mode(&state.join("db")) & 0o077, 0);

        let new = dir.path().join("a/b");
        private_dir(&new).unwrap();
        assert_eq!(mode(&new), 0o700);
        let file = new.join("status.json");
        create_file(&file, Access::Private).unwrap();
        assert_eq!(mode(&file), 0o600);
    }
}
