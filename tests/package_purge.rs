//! packaging/postrm, the package's script after removal, run on a
//! throwaway root (`$DPKG_ROOT`, as `dpkg --root` gives it): `purge`
//! removes the credentials folder and the secrets in it and says what it
//! keeps; `remove` removes nothing.

use std::path::Path;
use std::process::Command;

/// A root as the package leaves it: the credentials folder with a secret,
/// the state, the logs, the drop folders.
fn installed_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for dir in [
        "etc/rostersync/credentials",
        "var/lib/rostersync/db",
        "var/log/rostersync",
        "srv/rostersync/inbox/users",
    ] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    std::fs::write(
        root.path().join("etc/rostersync/credentials/lms-token"),
        "secret",
    )
    .unwrap();
    root
}

/// `postrm ACTION`: (exit code, stdout).
fn postrm(root: &Path, action: &str) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/postrm");
    let out = Command::new("sh")
        .arg(script)
        .arg(action)
        .env("DPKG_ROOT", root)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn purge_removes_the_credentials_and_says_what_it_keeps() {
    let root = installed_root();
    let (code, out) = postrm(root.path(), "purge");
    assert_eq!(code, 0, "{out}");
    assert!(!root.path().join("etc/rostersync").exists(), "{out}");
    assert!(
        out.contains("removed /etc/rostersync/credentials and the secrets in it"),
        "{out}"
    );
    for kept in [
        "var/lib/rostersync/db",
        "var/log/rostersync",
        "srv/rostersync/inbox/users",
    ] {
        assert!(root.path().join(kept).exists(), "{kept}");
    }
    for kept in [
        "/var/lib/rostersync",
        "/var/log/rostersync",
        "/srv/rostersync",
    ] {
        assert!(out.contains(&format!("kept {kept} ")), "{kept}: {out}");
    }
    // Run again (dpkg may): nothing left to remove, no failure.
    let (code, again) = postrm(root.path(), "purge");
    assert_eq!(code, 0, "{again}");
    assert!(!again.contains("removed"), "{again}");
}

#[test]
fn remove_keeps_the_credentials() {
    let root = installed_root();
    let (code, out) = postrm(root.path(), "remove");
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "");
    assert!(
        root.path()
            .join("etc/rostersync/credentials/lms-token")
            .exists()
    );
}
