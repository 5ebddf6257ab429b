//! What operators and orchestrators ask `tollgate serve`: liveness,
//! readiness, Prometheus metrics, and a plain 404 for any other path.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tollgate_core::policy::Store;

/// How long the readiness probe waits for the store.
const STORE_PROBE_BOUND: Duration = Duration::from_secs(2);

/// `GET /healthz` (the process answers) and `GET /readyz` (the store
/// answers too: 503 while it is unreachable, so a load balancer sends no
/// token requests that would fail).
pub(crate) fn health(store: Arc<dyn Store>, issuer: String) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            get(move || {
                let (store, issuer) = (store.clone(), issuer.clone());
                async move { ready(&*store, &issuer).await }
            }),
        )
}

async fn ready(store: &dyn Store, issuer: &str) -> impl IntoResponse + use<> {
    // A read of a credit counter no token has: one real round trip.
    match tokio::time::timeout(STORE_PROBE_BOUND, store.spent(issuer, "readiness-probe")).await {
        Ok(Ok(_)) => (StatusCode::OK, axum::Json(json!({"status": "ready"}))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the store cannot be read");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "unavailable", "reason": "the store cannot be read"})),
            )
        }
        Err(_) => {
            tracing::warn!(
                bound_ms = STORE_PROBE_BOUND.as_millis() as u64,
                "not ready: the store did not answer"
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "unavailable", "reason": "the store did not answer"})),
            )
        }
    }
}

/// Any path nothing serves: 404 with an RFC 9457 problem body, never the
/// demo API's 401.
pub(crate) async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({"type": "about:blank", "title": "Not Found", "status": 404}).to_string(),
    )
}

/// Installs the Prometheus recorder and serves `GET /metrics` on its own
/// listener.
pub(crate) async fn serve_metrics(
    listen: std::net::SocketAddr,
) -> Result<std::net::SocketAddr, crate::Failure> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(crate::runtime)?;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        crate::Failure::Runtime(format!("cannot listen on {listen} for metrics: {e}"))
    })?;
    let addr = listener.local_addr().map_err(crate::runtime)?;
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = handle.render();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
            }),
        )
        .fallback(not_found);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(addr)
}
