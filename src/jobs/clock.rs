//! The automations' clock: when schedules tick and quiet periods end.
//!
//! Production reads the system clock ([`SystemClock`]). Tests set
//! SCHEDULER_CLOCK_FILE (refused when ENVIRONMENT=production) and get a
//! [`FileClock`]: it reads the instant written in that file, so a test moves
//! time forward by rewriting it, and several server processes started on
//! the same file share one controlled clock. The file only says when
//! automations fire; jobs, heartbeats, tokens and rate limits keep the
//! system clock.

use std::{path::PathBuf, sync::Arc};

use chrono::{DateTime, Utc};

/// Where the scheduler reads "now".
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The instant written in a file (RFC 3339). A file that cannot be read or
/// parsed (a test writing it at that moment) gives the system clock's time
/// and a warning.
pub struct FileClock {
    path: PathBuf,
}

impl Clock for FileClock {
    fn now(&self) -> DateTime<Utc> {
        match std::fs::read_to_string(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                DateTime::parse_from_rfc3339(text.trim()).map_err(|e| format!("{e}: {text:?}"))
            }) {
            Ok(instant) => instant.with_timezone(&Utc),
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "SCHEDULER_CLOCK_FILE unreadable; using the system clock");
                Utc::now()
            }
        }
    }
}

/// The clock the configuration asks for.
pub fn from_config(clock_file: Option<&std::path::Path>) -> Arc<dyn Clock> {
    match clock_file {
        Some(path) => {
            tracing::warn!(path = %path.display(), "automations follow the test clock in SCHEDULER_CLOCK_FILE");
            Arc::new(FileClock {
                path: path.to_path_buf(),
            })
        }
        None => Arc::new(SystemClock),
    }
}
