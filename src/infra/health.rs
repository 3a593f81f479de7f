//! Dependency checks and the grpc.health.v1 status they drive.
//!
//! The same checks answer SystemService.GetHealth/GetStatus (measured on each
//! call) and feed tonic-health from a background loop: every service is
//! SERVING only while the database answers, so orchestrators stop routing
//! traffic to a process that cannot reach Postgres and resume when it can.
//!
//! The same checks, with the pool's and the job queue's state, are what
//! `/metrics` samples at each scrape ([`sampler`], `dependency_up` and the
//! queue gauges; docs/observability.md).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use metrics::{counter, gauge};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    infra::observability::{
        DB_POOL_CONNECTIONS, DB_POOL_GET_TIMEOUTS_TOTAL, DB_POOL_MAX_CONNECTIONS, DEPENDENCY_UP,
        OPERATIONS_OLDEST_QUEUED_AGE_SECONDS, OPERATIONS_QUEUED, OPERATIONS_STALLED,
        STORAGE_VOLUME_AVAILABLE_BYTES, STORAGE_VOLUME_SIZE_BYTES, Sampler,
    },
    pb::fileorganizer::v1::HealthState,
    state::AppState,
};

/// Bound on each dependency check.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The gRPC service names whose health is reported ("" is the whole server,
/// last so that once it changes every service has).
pub const SERVICE_NAMES: &[&str] = &[
    "fileorganizer.v1.AuthService",
    "fileorganizer.v1.OperationService",
    "fileorganizer.v1.FileService",
    "fileorganizer.v1.ReportService",
    "fileorganizer.v1.RuleService",
    "fileorganizer.v1.SystemService",
    "",
];

/// The measured state of one dependency.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub state: HealthState,
    pub message: String,
    pub latency: Duration,
}

pub async fn check_database(state: &AppState) -> Check {
    let started = Instant::now();
    let result = crate::db::ping(&state.db, CHECK_TIMEOUT).await;
    let latency = started.elapsed();
    match result {
        Ok(()) => Check {
            name: "database",
            state: HealthState::Healthy,
            message: "SELECT 1 answered".into(),
            latency,
        },
        Err(e) => Check {
            name: "database",
            state: HealthState::Unhealthy,
            message: e,
            latency,
        },
    }
}

pub async fn check_redis(state: &AppState) -> Check {
    let Some(pool) = &state.redis else {
        return Check {
            name: "redis",
            state: HealthState::Disabled,
            message: "REDIS_URL is not set".into(),
            latency: Duration::ZERO,
        };
    };
    let started = Instant::now();
    let ping = async {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        bb8_redis::redis::cmd("PING")
            .query_async::<String>(&mut *conn)
            .await
            .map_err(|e| e.to_string())
    };
    let result = tokio::time::timeout(CHECK_TIMEOUT, ping)
        .await
        .unwrap_or_else(|_| Err("no answer in time".into()));
    let latency = started.elapsed();
    match result {
        Ok(reply) => Check {
            name: "redis",
            state: HealthState::Healthy,
            message: format!("PING answered {reply}"),
            latency,
        },
        Err(e) => Check {
            name: "redis",
            state: HealthState::Unhealthy,
            message: e,
            latency,
        },
    }
}

/// The storage root exists and a file can be created, synced and removed in it.
pub async fn check_storage(state: &AppState) -> Check {
    let root = state.config.storage_root.clone();
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let probe = root.join(format!(".health-{}", uuid::Uuid::new_v4()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)?;
        let written = file.write_all(b"ok").and_then(|_| file.sync_all());
        let removed = std::fs::remove_file(&probe);
        written.and(removed)
    })
    .await;
    let latency = started.elapsed();
    match result {
        Ok(Ok(())) => Check {
            name: "storage",
            state: HealthState::Healthy,
            message: "writable".into(),
            latency,
        },
        Ok(Err(e)) => Check {
            name: "storage",
            state: HealthState::Unhealthy,
            message: format!("not writable: {e}"),
            latency,
        },
        Err(e) => Check {
            name: "storage",
            state: HealthState::Unhealthy,
            message: e.to_string(),
            latency,
        },
    }
}

/// Overall state: the worst of the required checks; an unhealthy optional
/// dependency (redis) only degrades.
pub fn overall(checks: &[Check]) -> HealthState {
    let mut state = HealthState::Healthy;
    for check in checks {
        match (check.name, check.state) {
            (_, HealthState::Healthy | HealthState::Disabled) => {}
            ("redis", _) => {
                if state == HealthState::Healthy {
                    state = HealthState::Degraded;
                }
            }
            _ => return HealthState::Unhealthy,
        }
    }
    state
}

/// Sets every service's status.
pub async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    for name in SERVICE_NAMES {
        reporter.set_service_status(*name, status).await;
    }
}

/// Checks the database every `interval` and publishes the result through
/// grpc.health.v1 until shutdown begins; then reports NOT_SERVING.
pub async fn run_health_loop(state: AppState, reporter: HealthReporter, interval: Duration) {
    let mut shutdown = state.shutting_down.clone();
    let mut last: Option<ServingStatus> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let status = match crate::db::ping(&state.db, CHECK_TIMEOUT).await {
            Ok(()) => ServingStatus::Serving,
            Err(error) => {
                if last != Some(ServingStatus::NotServing) {
                    tracing::warn!(%error, "database unreachable: health is NOT_SERVING");
                }
                ServingStatus::NotServing
            }
        };
        if last != Some(status) {
            if last.is_some() && status == ServingStatus::Serving {
                tracing::info!("database reachable again: health is SERVING");
            }
            set_all(&reporter, status).await;
            last = Some(status);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
    }
    set_all(&reporter, ServingStatus::NotServing).await;
}

/// The values read at each scrape of `/metrics` (infra::observability's
/// module docs): the pool, the storage volume, the dependencies and the job
/// queue. The exporter bounds it by `SCRAPE_TIMEOUT`.
pub fn sampler(state: AppState) -> Sampler {
    Arc::new(move || {
        let state = state.clone();
        Box::pin(async move { sample(&state).await })
    })
}

async fn sample(state: &AppState) {
    let pool = state.db.state();
    gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle_connections));
    gauge!(DB_POOL_CONNECTIONS, "state" => "in_use")
        .set(f64::from(pool.connections - pool.idle_connections));
    gauge!(DB_POOL_MAX_CONNECTIONS).set(f64::from(state.config.database_pool_size));
    counter!(DB_POOL_GET_TIMEOUTS_TOTAL).absolute(pool.statistics.get_timed_out);
    if let Ok(volume) = rustix::fs::statvfs(&state.config.storage_root) {
        gauge!(STORAGE_VOLUME_SIZE_BYTES).set((volume.f_blocks * volume.f_frsize) as f64);
        gauge!(STORAGE_VOLUME_AVAILABLE_BYTES).set((volume.f_bavail * volume.f_frsize) as f64);
    }
    let (database, redis) = tokio::join!(check_database(state), check_redis(state));
    for check in [&database, &redis] {
        let up = match check.state {
            HealthState::Healthy => 1.0,
            HealthState::Disabled => continue,
            _ => 0.0,
        };
        gauge!(DEPENDENCY_UP, "dependency" => check.name).set(up);
    }
    if database.state != HealthState::Healthy {
        return;
    }
    let stats = async {
        let mut conn = state.db.get().await?;
        anyhow::Ok(
            crate::db::operations::queue_stats(&mut conn, state.config.job_stale_after).await?,
        )
    };
    match stats.await {
        Ok(stats) => {
            gauge!(OPERATIONS_QUEUED).set(stats.waiting as f64);
            gauge!(OPERATIONS_OLDEST_QUEUED_AGE_SECONDS).set(stats.oldest_wait_seconds);
            gauge!(OPERATIONS_STALLED).set(stats.stalled as f64);
        }
        Err(error) => tracing::debug!(%error, "the queue gauges were not read"),
    }
}
