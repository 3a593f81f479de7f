//! SystemService: health and status. The admin RPCs (rate limits, audit
//! events) keep their generated UNIMPLEMENTED defaults until their issue lands.

use tonic::{Request, Response, Status};

use super::{convert, respond};
use crate::{
    error::AppError,
    health,
    pb::fileorganizer::v1::{self as pb, HealthState, system_service_server::SystemService},
    state::AppState,
};

pub struct System {
    state: AppState,
}

impl System {
    pub fn new(state: AppState) -> Self {
        System { state }
    }
}

fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

#[tonic::async_trait]
impl SystemService for System {
    async fn get_health(
        &self,
        _: Request<pb::GetHealthRequest>,
    ) -> Result<Response<pb::GetHealthResponse>, Status> {
        let (database, redis) = tokio::join!(
            health::check_database(&self.state),
            health::check_redis(&self.state)
        );
        let status = health::overall(&[database.clone(), redis]);
        if status == HealthState::Unhealthy {
            return Err(AppError::Unavailable {
                what: "database",
                detail: database.message,
            }
            .into());
        }
        respond(Ok(pb::GetHealthResponse {
            status: status as i32,
            version: version(),
            uptime: Some(convert::duration(self.state.started.elapsed())),
            check_time: Some(convert::timestamp(chrono::Utc::now())),
        }))
    }

    async fn get_status(
        &self,
        _: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let (database, redis, storage) = tokio::join!(
            health::check_database(&self.state),
            health::check_redis(&self.state),
            health::check_storage(&self.state)
        );
        let checks = [database, redis, storage];
        respond(Ok(pb::GetStatusResponse {
            status: health::overall(&checks) as i32,
            version: version(),
            environment: self.state.config.environment.as_str().into(),
            start_time: Some(convert::timestamp(self.state.start_time)),
            uptime: Some(convert::duration(self.state.started.elapsed())),
            components: checks
                .into_iter()
                .map(|c| pb::ComponentStatus {
                    name: c.name.into(),
                    state: c.state as i32,
                    message: c.message,
                    latency: Some(convert::duration(c.latency)),
                })
                .collect(),
            check_time: Some(convert::timestamp(chrono::Utc::now())),
        }))
    }
}
