//! `[daemon] metrics`: the HTTP server Prometheus scrapes. `/metrics` the
//! registry, `/healthz` that the process answers, `/readyz` whether the
//! daemon does its job (200 `ready`, else 503 with the reason in one line).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

/// Whether the daemon is ready, and if not, why.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Binds `address`; the server then runs until `stop`.
pub async fn bind(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address).await
}

/// Serves the metrics on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ready: Readiness,
    stop: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(ready))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

fn router(ready: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(move || readyz(Arc::clone(&ready))))
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, super::CONTENT_TYPE)],
        super::get().encode(),
    )
        .into_response()
}

async fn readyz(ready: Readiness) -> Response {
    match ready() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

/// The address the server listens on, as the log names it.
pub fn shown(listener: &tokio::net::TcpListener) -> String {
    listener
        .local_addr()
        .map(|a: SocketAddr| a.to_string())
        .unwrap_or_default()
}
