//! The daemon's side of the control socket: answers `status`, `show`,
//! `retry`, `push`, `plan`, `approve` and `forget-target` (the wire format is in
//! [`super::control`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::warn;

use super::intake::ProcessorRequest;
use super::ops::{self, Answer};
use super::{Shared, control, filing, lock, status, status_file};
use crate::cli::exit;
use crate::store;

/// Accepts connections on the control socket until the daemon stops; each
/// is answered in a task of its own.
pub(super) async fn control_server(shared: Arc<Shared>, listener: Arc<tokio::net::UnixListener>) {
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = Arc::clone(&shared);
                    shared.tasks.spawn(control::serve_connection(stream, move |request, chunks| {
                        answer(handler, request, chunks)
                    }));
                }
                Err(error) => {
                    warn!(%error, "control socket: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn answer(shared: Arc<Shared>, request: control::Request, chunks: control::Chunks) -> Answer {
    use control::Request;
    let config = shared.config();
    let failed =
        |message: &dyn std::fmt::Display| Answer::new(exit::FAILURE, format!("{message}\n"));
    match request {
        Request::Status { json } => {
            status_file::write(&shared, true).await;
            let status = lock(&shared.status).clone();
            if json {
                Answer::new(exit::OK, String::from_utf8_lossy(&filing::pretty(&status)))
            } else {
                Answer::new(exit::OK, status::render(&status))
            }
        }
        Request::Show { id } => {
            let config = Arc::clone(&config);
            store::blocking(&shared.store, move |store| ops::show(&config, store, &id))
                .await
                .unwrap_or_else(|error| failed(&error))
        }
        Request::Retry { target } => {
            let for_store = Arc::clone(&config);
            let wanted = target.clone();
            let answer = store::blocking(&shared.store, move |store| {
                ops::retry(&for_store, store, wanted.as_deref())
            })
            .await
            .unwrap_or_else(|error| failed(&error));
            match target {
                Some(target) => shared.wake(&target),
                None => shared.wake_all(),
            }
            shared.touch();
            answer
        }
        Request::Push { id, target } => {
            let answer =
                super::push_now::push_person(&config, &shared.store, &id, target.as_deref()).await;
            // The outbox moved: status and the reports say so.
            shared.touch();
            answer
        }
        Request::Plan {
            file,
            source,
            json,
            person,
        } => {
            let store = Arc::clone(&shared.store);
            // Streamed: a big file's plan is never held whole.
            tokio::task::spawn_blocking(move || {
                let mut out = control::ChunkWriter::new(chunks);
                let asked = ops::PlanAsk {
                    source: source.as_deref(),
                    json,
                    person: person.as_deref(),
                };
                ops::plan(&config, &store, &file, asked, &mut out)
            })
            .await
            .map_err(|error| error.to_string())
            .and_then(|code| code.map_err(|error| error.to_string()))
            .map(|code| Answer::new(code, String::new()))
            .unwrap_or_else(|message| Answer::new(exit::USAGE, format!("{message}\n")))
        }
        Request::ForgetTarget { target } => {
            let (reply, answer) = oneshot::channel();
            let request = ProcessorRequest::ForgetTarget { target, reply };
            if shared.processor.send(request).await.is_err() {
                return failed(&"the daemon is stopping");
            }
            answer
                .await
                .unwrap_or_else(|_| failed(&"the daemon is stopping"))
        }
        Request::Approve { file, force_older } => {
            let (reply, answer) = oneshot::channel();
            if shared
                .processor
                .send(ProcessorRequest::Approve {
                    file,
                    force_older,
                    reply,
                })
                .await
                .is_err()
            {
                return failed(&"the daemon is stopping");
            }
            answer
                .await
                .unwrap_or_else(|_| failed(&"the daemon is stopping"))
        }
    }
}
