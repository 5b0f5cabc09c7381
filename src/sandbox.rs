//! What the service's sandbox explains. Under the unit's
//! `ProtectSystem=strict` every folder is read-only but the state, the logs
//! and `ReadWritePaths=`: a write elsewhere fails with EROFS, which reads
//! like a broken disk or a permission problem unless it is said.

/// Said after an error writing a folder when it is EROFS, else nothing.
pub fn hint(error: &std::io::Error) -> &'static str {
    if error.raw_os_error() == Some(rustix::io::Errno::ROFS.raw_os_error()) {
        READ_ONLY
    } else {
        ""
    }
}

const READ_ONLY: &str = " (a read-only file system: for the service most likely its sandbox, \
ProtectSystem=strict, which leaves writable only its state, its logs and /srv/rostersync; \
add the folder with ReadWritePaths= in a drop-in, `systemctl edit rostersync`, then \
`systemctl restart rostersync`)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_read_only_file_system_names_the_sandbox() {
        let read_only = std::io::Error::from(rustix::io::Errno::ROFS);
        assert!(
            hint(&read_only).contains("ReadWritePaths="),
            "{}",
            hint(&read_only)
        );
        let denied = std::io::Error::from(rustix::io::Errno::ACCESS);
        assert_eq!(hint(&denied), "");
        assert_eq!(hint(&std::io::Error::other("x")), "");
    }
}
