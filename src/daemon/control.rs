//! The control socket (`state_dir/control.sock`, owner only): sled allows one
//! process, so while the daemon runs, `status`, `show`, `approve`, `retry`
//! and `plan` ask it instead of opening the store. One JSON request per
//! line, one JSON [`Answer`] per line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

pub use super::ops::Answer;

pub const SOCKET_NAME: &str = "control.sock";

/// A request over the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    Status {
        json: bool,
    },
    Show {
        id: String,
    },
    /// `file` is absolute (the client resolves it).
    Approve {
        file: PathBuf,
    },
    Retry {
        target: Option<String>,
    },
    Plan {
        file: PathBuf,
        source: Option<String>,
        json: bool,
    },
}

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// Asks the running daemon; `Ok(None)` when none listens on the socket.
pub fn ask(socket: &Path, request: &Request) -> std::io::Result<Option<Answer>> {
    let mut stream = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(error) => {
            return Err(std::io::Error::new(
                error.kind(),
                format!("cannot reach the daemon at {}: {error}", socket.display()),
            ));
        }
    };
    // An approve of a big file plans and commits it first.
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    let mut line = serde_json::to_string(request).map_err(std::io::Error::other)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    serde_json::from_str(&reply).map(Some).map_err(|error| {
        std::io::Error::other(format!(
            "the daemon's answer on {} is unreadable: {error}",
            socket.display()
        ))
    })
}

/// Binds the socket, owner-only, replacing a stale one left by a crash.
pub fn bind(socket: &Path) -> std::io::Result<tokio::net::UnixListener> {
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let listener = tokio::net::UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Reads one request from a connection and writes the answer `handle` gives.
pub async fn serve_connection<F, Fut>(stream: tokio::net::UnixStream, handle: F)
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    let answer = match lines.next_line().await {
        Ok(Some(line)) => match serde_json::from_str::<Request>(&line) {
            Ok(request) => handle(request).await,
            Err(error) => Answer::new(
                crate::cli::exit::USAGE,
                format!("unreadable request: {error}\n"),
            ),
        },
        _ => return,
    };
    if let Ok(mut text) = serde_json::to_string(&answer) {
        text.push('\n');
        let _ = write.write_all(text.as_bytes()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_line() {
        let request = Request::Retry {
            target: Some("lms".into()),
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(text, r#"{"command":"retry","target":"lms"}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), request);
    }

    #[tokio::test]
    async fn a_request_gets_its_answer_and_the_socket_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let socket = socket_path(dir.path());
        std::fs::write(&socket, "stale").unwrap();
        let listener = bind(&socket).unwrap();
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            serve_connection(stream, |request| async move {
                Answer::new(0, format!("{request:?}"))
            })
            .await;
        });
        let path = socket.clone();
        let answer =
            tokio::task::spawn_blocking(move || ask(&path, &Request::Show { id: "E1".into() }))
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        assert_eq!(answer, Answer::new(0, "Show { id: \"E1\" }"));
        drop(dir);
    }

    #[test]
    fn no_daemon_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let answer = ask(&socket_path(dir.path()), &Request::Status { json: false }).unwrap();
        assert!(answer.is_none());
    }
}
