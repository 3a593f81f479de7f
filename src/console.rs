//! Serves the browser console (`console/`, built by vite into `CONSOLE_DIR`) on its own
//! address, `CONSOLE_ADDR`, when that is set.
//!
//! Why a separate listener rather than a route on the gRPC port: the console is static files
//! on a plain HTTP/1.1 server, and keeping it off the API's port keeps the API's layers
//! (authentication, limits, grpc-web) free of a non-RPC special case. The console talks to the
//! API only over grpc-web, so its origin (`http://CONSOLE_ADDR`) must be listed in
//! `CORS_ORIGINS`; `scripts/run-stack.sh` does that. Unknown paths answer `index.html`, the
//! usual single-page-app fallback. The server stops when shutdown begins.

use std::path::Path;

use anyhow::Context;
use tower_http::services::{ServeDir, ServeFile};

use crate::state::AppState;

/// When CONSOLE_ADDR is set: checks that CONSOLE_DIR holds a built console and serves it
/// until shutdown begins. A missing build stops start-up with a message saying how to
/// build it, rather than serving 404s.
pub async fn start(state: &AppState) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = state.config.console_addr else {
        return Ok(None);
    };
    let dir = state.config.console_dir.clone();
    let index = dir.join("index.html");
    anyhow::ensure!(
        index.is_file(),
        "CONSOLE_DIR {} has no index.html: build the console with `npm ci && npm run build` \
         (scripts/run-stack.sh does), or unset CONSOLE_ADDR",
        dir.display()
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("CONSOLE_ADDR {addr}"))?;
    let mut shutdown = state.shutting_down.clone();
    let router = router(&dir, &index);
    tracing::info!(%addr, dir = %dir.display(), "serving the browser console");
    Ok(Some(tokio::spawn(async move {
        let stopped = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(%error, "the console server stopped");
        }
    })))
}

fn router(dir: &Path, index: &Path) -> axum::Router {
    axum::Router::new().fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)))
}
