//! After an organize: how long the server's background task takes to index
//! the operation's names for SearchFiles (`db::file_names`). Not part of the
//! organize's end-to-end time (the operation has succeeded, and searches
//! already find its files), so it is reported beside it.

use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

/// Seconds from now until the operation is no longer pending, or why that
/// could not be measured.
pub async fn wait_indexed(url: &str, operation: &str, timeout: Duration) -> Result<f64, String> {
    let id = Uuid::parse_str(operation.trim_start_matches("operations/"))
        .map_err(|e| format!("operation name {operation}: {e}"))?;
    let mut conn = tokio::time::timeout(Duration::from_secs(5), AsyncPgConnection::establish(url))
        .await
        .map_err(|_| "could not connect to DATABASE_URL within 5 s".to_string())?
        .map_err(|e| format!("could not connect to DATABASE_URL: {e}"))?;
    let started = Instant::now();
    loop {
        let pending = fileorganizer::db::file_names::is_pending(&mut conn, id)
            .await
            .map_err(|e| format!("could not read file_names_pending: {e}"))?;
        if !pending {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > timeout {
            return Err(format!("still pending after {} s", timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
