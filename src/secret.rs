//! Secrets: tokens and passwords, read from the environment, a file or a
//! systemd credential, and never printed.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret value. `Debug` and `Display` print `***`; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a secret comes from. Holds names and paths only, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
    /// A systemd credential, read from `$CREDENTIALS_DIRECTORY/NAME`.
    Credential(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("environment variable {0} is not valid UTF-8")]
    EnvNotUnicode(String),
    #[error("cannot read secret file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {} is readable by others (mode {mode:o}): chmod o-rwx it", path.display())]
    ReadableByOthers { path: PathBuf, mode: u32 },
    #[error("secret file {} is not valid UTF-8", path.display())]
    NotUnicode { path: PathBuf },
    #[error("secret file {} is empty", path.display())]
    Empty { path: PathBuf },
    #[error("credential {0} needs $CREDENTIALS_DIRECTORY (set by systemd's LoadCredential=)")]
    NoCredentialsDirectory(String),
}

impl SecretSource {
    pub fn load(&self) -> Result<Secret, SecretError> {
        match self {
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(Secret(value)),
                Ok(_) | Err(std::env::VarError::NotPresent) => {
                    Err(SecretError::EnvMissing(name.clone()))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(SecretError::EnvNotUnicode(name.clone()))
                }
            },
            SecretSource::File(path) => read_secret_file(path, true),
            SecretSource::Credential(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .ok_or_else(|| SecretError::NoCredentialsDirectory(name.clone()))?;
                // systemd owns that directory and its modes; no permission rule to apply.
                read_secret_file(&Path::new(&dir).join(name), false)
            }
        }
    }
}

/// Mode check first, so a world-readable secret is refused before it is read.
fn read_secret_file(path: &Path, check_mode: bool) -> Result<Secret, SecretError> {
    let unreadable = |source| SecretError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    if check_mode {
        check_not_world_readable(path)?;
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    let text = String::from_utf8(bytes).map_err(|_| SecretError::NotUnicode {
        path: path.to_path_buf(),
    })?;
    let value = text.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return Err(SecretError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret(value.to_string()))
}

pub fn check_not_world_readable(path: &Path) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).map_err(|source| SecretError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o004 != 0 {
        return Err(SecretError::ReadableByOthers {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(***)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn file_secret_is_trimmed_and_mode_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc123\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let source = SecretSource::File(path.clone());
        assert_eq!(source.load().unwrap().expose(), "abc123");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = source.load().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("readable by others"), "{message}");
        assert!(!message.contains("abc123"));
    }

    #[test]
    fn missing_env_names_the_variable_only() {
        let error = SecretSource::Env("ROSTERSYNC_TEST_SURELY_UNSET".into())
            .load()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable ROSTERSYNC_TEST_SURELY_UNSET is not set"
        );
    }
}
