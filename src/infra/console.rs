//! Serves the browser console (`console/`, built by vite into `CONSOLE_DIR`) on its own
//! address, `CONSOLE_ADDR`, when that is set.
//!
//! Why a separate listener rather than a route on the gRPC port: the console is static files
//! on a plain HTTP/1.1 server, and keeping it off the API's port keeps the API's layers
//! (authentication, limits, grpc-web) free of a non-RPC special case. The console talks to the
//! API only over grpc-web, so its origin (`http://CONSOLE_ADDR`) must be listed in
//! `CORS_ORIGINS`; `scripts/run-stack.sh` does that. Unknown paths answer `index.html`, the
//! usual single-page-app fallback. The server stops when shutdown begins.
//!
//! Where the page sends credentials is the server's decision, never the page URL's: the API
//! origin (`CONSOLE_API_URL`, by default the gRPC listener's own address) is served as
//! `/config.json`, and the Content-Security-Policy of every response names it as the only
//! origin besides the console's own that the page may connect to. A link such as
//! `/?api=https://attacker.example` therefore changes nothing. Every response also carries the
//! security headers the API's responses carry ([`crate::infra::security_headers`]), `frame-ancestors
//! 'none'` and `X-Frame-Options: DENY` among them, so no other site can frame the sign-in form.

use std::{net::SocketAddr, path::Path};

use anyhow::Context;
use axum::{
    http::{HeaderName, HeaderValue, header},
    response::IntoResponse,
    routing::get,
};
use tower_http::services::{ServeDir, ServeFile};

use crate::{infra::security_headers, state::AppState};

/// When CONSOLE_ADDR is set: checks that CONSOLE_DIR holds a built console and serves it
/// until shutdown begins. A missing build stops start-up with a message saying how to
/// build it, rather than serving 404s. `api_addr` is the address the gRPC listener is
/// bound to, the API origin when CONSOLE_API_URL is not set.
pub async fn start(
    state: &AppState,
    api_addr: SocketAddr,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = state.config.console_addr else {
        return Ok(None);
    };
    let api_origin = api_origin(state.config.console_api_url.as_deref(), api_addr)?;
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
    let router = router(&dir, &index, &api_origin);
    tracing::info!(%addr, dir = %dir.display(), api = %api_origin, "serving the browser console");
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

/// CONSOLE_API_URL when set (already validated by the configuration), else the gRPC
/// listener's address. A listener on every address (0.0.0.0) names no origin a browser
/// could use, so then the variable is required.
fn api_origin(configured: Option<&str>, api_addr: SocketAddr) -> anyhow::Result<String> {
    match configured {
        Some(origin) => Ok(origin.to_string()),
        None => {
            anyhow::ensure!(
                !api_addr.ip().is_unspecified(),
                "configuration error in CONSOLE_API_URL: required when CONSOLE_ADDR is set and \
                 the gRPC listener is bound to every address ({api_addr}); set it to the \
                 grpc-web origin browsers reach, e.g. https://api.example.com"
            );
            Ok(format!("http://{api_addr}"))
        }
    }
}

fn router(dir: &Path, index: &Path, api_origin: &str) -> axum::Router {
    let config = serde_json::json!({ "apiUrl": api_origin }).to_string();
    let mut headers: Vec<(HeaderName, HeaderValue)> = security_headers::COMMON
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
        .collect();
    headers.push((
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::try_from(security_headers::console_csp(api_origin))
            .expect("a validated origin is a valid header value"),
    ));
    axum::Router::new()
        .route(
            "/config.json",
            get(move || {
                let config = config.clone();
                async move {
                    let headers = [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "no-store"),
                    ];
                    (headers, config).into_response()
                }
            }),
        )
        .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)))
        // Outermost, so every answer has them: files, the fallback, config.json, errors.
        .layer(tower::util::MapResponseLayer::new(
            move |mut response: axum::response::Response| {
                for (name, value) in &headers {
                    response.headers_mut().insert(name.clone(), value.clone());
                }
                response
            },
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_origin_comes_from_the_configuration_or_the_listener() {
        let local: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        assert_eq!(api_origin(None, local).unwrap(), "http://127.0.0.1:50051");
        assert_eq!(
            api_origin(Some("https://api.example.com"), local).unwrap(),
            "https://api.example.com"
        );
        let any: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        let refused = api_origin(None, any).unwrap_err().to_string();
        assert!(refused.contains("CONSOLE_API_URL"), "{refused}");
        assert!(api_origin(Some("https://api.example.com"), any).is_ok());
    }
}
