//! The errors that leave a connector: its settings it cannot work with, an
//! online check that failed, a reply it cannot read, a record it cannot
//! send. Each says what happened; a reply's or a record's error becomes the
//! reason of a [`Failure`] for the records concerned.

use std::path::PathBuf;

use crate::retry::Failure;
use crate::secret::SecretError;

/// Settings a connector cannot start with (`Connector::from_config`). The
/// config check reports the same problems first, located in the file.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A setting the kind needs is missing.
    #[error("{0}")]
    Missing(&'static str),
    /// A setting has a value the kind cannot use.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Encoding(#[from] UnknownEncoding),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("ca_file {}: {error}", path.display())]
    CaFileUnreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("ca_file {}: {reason}", path.display())]
    CaFileInvalid { path: PathBuf, reason: String },
    #[error("cannot set up HTTPS: {0}")]
    Https(reqwest::Error),
    #[error("the secret for {header} holds characters a header cannot carry")]
    HeaderValue { header: &'static str },
}

/// Why a target gets nothing more for now, whatever the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its last reply was a 401: it refuses rostersync's credentials.
    Credentials,
    /// Its certificate is not one rostersync trusts (the words say which
    /// server and why).
    Certificate(String),
}

impl Refusal {
    /// Why the push to the target stops; `said`: the words a record failed
    /// with, when one did.
    pub fn stop_reason(&self, said: Option<String>) -> String {
        const WAITS: &str = "nothing more is sent to this target, and what waits keeps waiting";
        match self {
            Refusal::Credentials => format!(
                "{}; {WAITS}, until its credentials are fixed (a token file or systemd credential is read \
                 again on `systemctl reload rostersync`, an environment variable on a restart)",
                said.unwrap_or_else(
                    || "the target refused rostersync's credentials (HTTP 401)".into()
                )
            ),
            Refusal::Certificate(reason) => format!(
                "{reason}; {WAITS}, until its certificate is trusted (ca_file is read again on \
                 `systemctl reload rostersync`)"
            ),
        }
    }
}

/// An `encoding` the kind does not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("encoding {label:?} is not one {kind} targets take ({takes})")]
pub struct UnknownEncoding {
    pub label: String,
    pub kind: &'static str,
    pub takes: &'static str,
}

/// Why `check --online` failed for a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// No reply, or a reply that is a failure: the failure's reason.
    #[error("{0}")]
    Failed(String),
    /// The target refused the credentials.
    #[error("{0}")]
    Refused(String),
    /// A reply that is not what the kind answers.
    #[error("{0}")]
    Unexpected(String),
}

impl From<Failure> for CheckError {
    fn from(failure: Failure) -> CheckError {
        CheckError::Failed(failure.reason().to_string())
    }
}

impl From<ReplyError> for CheckError {
    fn from(error: ReplyError) -> CheckError {
        CheckError::Unexpected(error.to_string())
    }
}

/// A reply that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Not JSON, or not the JSON expected: what was read, and the parser's word.
    #[error("unreadable {what} ({reason})")]
    Unreadable { what: &'static str, reason: String },
    /// JSON, without what the kind answers with.
    #[error("{0}")]
    Shape(String),
}

impl ReplyError {
    /// `unreadable reply (...)` and its likes, from a JSON parse error.
    pub fn unreadable(what: &'static str, error: &serde_json::Error) -> ReplyError {
        ReplyError::Unreadable {
            what,
            reason: error.to_string(),
        }
    }

    /// A reply without what the kind answers with.
    pub fn shape(message: impl Into<String>) -> ReplyError {
        ReplyError::Shape(message.into())
    }
}

/// Records the target cannot take, found before sending them: the reason
/// they are refused with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::ConnectorError;

    /// `main` prints errors with their chain (`{:#}`): a cause already in
    /// the message must not be its `source` too, or it shows twice.
    #[test]
    fn an_error_chain_names_each_cause_once() {
        let unreadable = |path: &str| SecretError::Unreadable {
            path: path.into(),
            error: std::io::Error::other("permission denied"),
        };
        let errors = [
            anyhow::Error::from(ConnectorError::Settings {
                target: "lms".into(),
                error: SettingsError::Secret(unreadable("/run/token")),
            }),
            anyhow::Error::from(ConnectorError::Settings {
                target: "lms".into(),
                error: SettingsError::CaFileUnreadable {
                    path: "/etc/ca.pem".into(),
                    error: std::io::Error::other("permission denied"),
                },
            }),
            anyhow::Error::from(crate::sync::SyncError::Read {
                file: "u.csv".into(),
                error: std::io::Error::other("permission denied"),
            }),
        ];
        for error in errors {
            let shown = format!("{error:#}");
            assert_eq!(shown.matches("permission denied").count(), 1, "{shown}");
        }
    }
}
