//! The control socket (`state_dir/control.sock`, owner only): sled allows one
//! process, so while the daemon runs, `status`, `show`, `approve`, `retry`,
//! `push`, `plan` and `forget-target` ask it instead of opening the store. One JSON
//! request per line; the answer is one JSON [`Answer`] line, after any
//! number of `{"chunk": TEXT}` lines for output too long to hold (`plan
//! --json` of a big file streams through them).

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
        #[serde(default)]
        force_older: bool,
    },
    Retry {
        target: Option<String>,
    },
    /// `push EXT_ID [--target NAME]`.
    Push {
        id: String,
        target: Option<String>,
    },
    Plan {
        file: PathBuf,
        source: Option<String>,
        json: bool,
        /// `--person EXT_ID`: that record's actions only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        person: Option<String>,
    },
    /// `forget-target NAME`.
    #[serde(rename = "forget-target")]
    ForgetTarget {
        target: String,
    },
}

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// A piece of an answer's output, sent ahead of the answer.
#[derive(Debug, Serialize, Deserialize)]
struct Chunk {
    chunk: String,
}

/// Where a long answer's output goes, piece by piece, from the blocking
/// task that makes it to the connection.
pub type Chunks = tokio::sync::mpsc::Sender<String>;

/// Writes into [`Chunks`] from a blocking task, in pieces of about 64 KiB
/// (cut at a character boundary).
pub struct ChunkWriter {
    chunks: Chunks,
    buffer: Vec<u8>,
}

impl ChunkWriter {
    pub fn new(chunks: Chunks) -> ChunkWriter {
        ChunkWriter {
            chunks,
            buffer: Vec::with_capacity(CHUNK_BYTES),
        }
    }

    fn send(&mut self, all: bool) -> std::io::Result<()> {
        let valid = match std::str::from_utf8(&self.buffer) {
            Ok(text) => text.len(),
            Err(error) => error.valid_up_to(),
        };
        let end = if all { self.buffer.len() } else { valid };
        let piece: Vec<u8> = self.buffer.drain(..end).collect();
        if piece.is_empty() {
            return Ok(());
        }
        self.chunks
            .blocking_send(String::from_utf8_lossy(&piece).into_owned())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

const CHUNK_BYTES: usize = 64 * 1024;

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send(false)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send(true)
    }
}

/// Asks the running daemon; `Ok(None)` when none listens on the socket.
/// Output streamed ahead of the answer goes to `out` as it comes.
pub fn ask(
    socket: &Path,
    request: &Request,
    out: &mut dyn Write,
) -> std::io::Result<Option<Answer>> {
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
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    loop {
        reply.clear();
        reader.read_line(&mut reply)?;
        match serde_json::from_str::<Chunk>(&reply) {
            Ok(chunk) => out.write_all(chunk.chunk.as_bytes())?,
            Err(_) => break,
        }
    }
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

/// Reads one request from a connection and writes the answer `handle`
/// gives, after the output it streams through its [`Chunks`].
pub async fn serve_connection<F, Fut>(stream: tokio::net::UnixStream, handle: F)
where
    F: FnOnce(Request, Chunks) -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    let request = match lines.next_line().await {
        Ok(Some(line)) => serde_json::from_str::<Request>(&line),
        _ => return,
    };
    let answer = match request {
        Ok(request) => {
            // A few pieces in flight: the task making them waits for the client.
            let (chunks, mut pieces) = tokio::sync::mpsc::channel::<String>(4);
            let forward = async {
                let mut open = true;
                while let Some(piece) = pieces.recv().await {
                    if !open {
                        continue;
                    }
                    if let Ok(mut text) = serde_json::to_string(&Chunk { chunk: piece }) {
                        text.push('\n');
                        open = write.write_all(text.as_bytes()).await.is_ok();
                    }
                }
            };
            let (answer, ()) = tokio::join!(handle(request, chunks), forward);
            answer
        }
        Err(error) => Answer::new(
            crate::cli::exit::USAGE,
            format!("unreadable request: {error}\n"),
        ),
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
    fn forget_target_is_named_as_the_command() {
        let request = Request::ForgetTarget {
            target: "old-lms".into(),
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(text, r#"{"command":"forget-target","target":"old-lms"}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), request);
    }

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
            serve_connection(stream, |request, _| async move {
                Answer::new(0, format!("{request:?}"))
            })
            .await;
        });
        let path = socket.clone();
        let answer = tokio::task::spawn_blocking(move || {
            ask(
                &path,
                &Request::Show { id: "E1".into() },
                &mut std::io::sink(),
            )
        })
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
        let answer = ask(
            &socket_path(dir.path()),
            &Request::Status { json: false },
            &mut std::io::sink(),
        )
        .unwrap();
        assert!(answer.is_none());
    }
}
