//! SystemService: health and status for everyone; rate-limit inspection,
//! rate-limit reset and the audit trail for admins (PERMISSION_DENIED, and an
//! audit row, for anyone else).

use tonic::{Request, Response, Status};

use super::{convert, respond};
use crate::{
    auth::Principal,
    db,
    error::{AppError, AppResult},
    infra::{health, ratelimit::Bucket},
    layers::RequestContext,
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

impl System {
    /// The caller, who must be an admin; a refusal is audited.
    async fn admin<T>(
        &self,
        request: &Request<T>,
        rpc: &'static str,
    ) -> AppResult<(Principal, RequestContext)> {
        let principal = Principal::from_request(request)?;
        let ctx = RequestContext::of(request);
        if let Err(denied) = principal.require_admin() {
            self.audit(
                &ctx,
                &principal,
                "authorization.denied",
                "denied",
                Some(rpc),
                serde_json::json!({}),
            )
            .await;
            return Err(denied);
        }
        Ok((principal, ctx))
    }

    async fn audit(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        action: &str,
        outcome: &str,
        target: Option<&str>,
        detail: serde_json::Value,
    ) {
        let Ok(mut conn) = self.state.db.get().await else {
            return;
        };
        db::audit::record_request(
            &mut conn,
            ctx,
            Some(principal.user_id),
            action,
            outcome,
            target,
            detail,
        )
        .await;
    }

    async fn counters(&self, user_id: uuid::Uuid) -> Vec<pb::RateLimitCounter> {
        let limits = self.state.config.rate_limits;
        let mut counters = Vec::new();
        for bucket in Bucket::ALL {
            let (limit, _) = crate::layers::rate_limit::limits_of(&limits, bucket);
            let d = self
                .state
                .limiter
                .peek(&bucket.user_key(user_id), limit)
                .await;
            counters.push(pb::RateLimitCounter {
                bucket: bucket.name().into(),
                used: (limit - d.remaining) as i32,
                limit: limit as i32,
                window: Some(convert::duration(limits.window)),
                reset_time: Some(convert::timestamp(
                    chrono::Utc::now()
                        + chrono::Duration::from_std(d.reset_after).unwrap_or_default(),
                )),
            });
        }
        counters
    }

    async fn target_user(&self, raw: &str) -> AppResult<uuid::Uuid> {
        let id = uuid::Uuid::parse_str(raw.trim())
            .map_err(|_| AppError::invalid("user_id", "must be a user id (UUID)"))?;
        let mut conn = self.state.db.get().await?;
        db::users::find(&mut conn, id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("users/{id}")))?;
        Ok(id)
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

    async fn get_rate_limit_status(
        &self,
        request: Request<pb::GetRateLimitStatusRequest>,
    ) -> Result<Response<pb::GetRateLimitStatusResponse>, Status> {
        self.admin(&request, "SystemService.GetRateLimitStatus")
            .await?;
        let user_id = self.target_user(&request.get_ref().user_id).await?;
        respond(Ok(pb::GetRateLimitStatusResponse {
            user_id: user_id.to_string(),
            counters: self.counters(user_id).await,
            backend: self.state.limiter.backend().into(),
        }))
    }

    async fn reset_rate_limit(
        &self,
        request: Request<pb::ResetRateLimitRequest>,
    ) -> Result<Response<pb::ResetRateLimitResponse>, Status> {
        let (principal, ctx) = self.admin(&request, "SystemService.ResetRateLimit").await?;
        let req = request.get_ref();
        let user_id = self.target_user(&req.user_id).await?;
        let mut buckets = Vec::new();
        for name in &req.buckets {
            buckets.push(Bucket::parse(name).ok_or_else(|| {
                AppError::invalid(
                    "buckets",
                    format!("{name:?} is not one of api, upload, export"),
                )
            })?);
        }
        if buckets.is_empty() {
            buckets = Bucket::ALL.to_vec();
        }
        for bucket in &buckets {
            self.state.limiter.reset(&bucket.user_key(user_id)).await;
            if *bucket == Bucket::Upload {
                self.state
                    .limiter
                    .reset(&Bucket::upload_bytes_key(user_id))
                    .await;
            }
        }
        self.audit(
            &ctx,
            &principal,
            "admin.rate_limit.reset",
            "success",
            Some(&format!("users/{user_id}")),
            serde_json::json!({ "buckets": buckets.iter().map(|b| b.name()).collect::<Vec<_>>() }),
        )
        .await;
        respond(Ok(pb::ResetRateLimitResponse {
            counters: self.counters(user_id).await,
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        self.admin(&request, "SystemService.ListAuditEvents")
            .await?;
        let req = request.into_inner();
        let result: AppResult<pb::ListAuditEventsResponse> = async {
            let limit = crate::pagination::page_size(req.page_size, 100)?;
            let before = match req.page_token.as_str() {
                "" => None,
                token => Some(token.parse::<i64>().map_err(|_| {
                    AppError::invalid("page_token", "is not a token from a previous response")
                })?),
            };
            let user_id = match req.user_id.trim() {
                "" => None,
                raw => Some(
                    uuid::Uuid::parse_str(raw)
                        .map_err(|_| AppError::invalid("user_id", "must be a UUID"))?,
                ),
            };
            let since = match &req.start_time {
                None => None,
                Some(ts) => Some(
                    convert::from_timestamp(ts)
                        .ok_or_else(|| AppError::invalid("start_time", "is not a valid time"))?,
                ),
            };
            let prefix = Some(req.action_prefix.trim()).filter(|p| !p.is_empty());
            // Actions are dotted lower-case words (`auth.login`); anything
            // else (NUL included, which Postgres text cannot hold) matches
            // nothing and is refused.
            if prefix.is_some_and(|p| {
                !p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
            }) {
                return Err(AppError::invalid(
                    "action_prefix",
                    "audit actions are dotted lower-case words, such as \"auth.login\"",
                ));
            }
            let mut conn = self.state.db.get().await?;
            let mut rows =
                db::audit::list(&mut conn, user_id, prefix, since, before, limit + 1).await?;
            let next_page_token = if rows.len() as i64 > limit {
                rows.truncate(limit as usize);
                rows.last().map(|r| r.id.to_string()).unwrap_or_default()
            } else {
                String::new()
            };
            Ok(pb::ListAuditEventsResponse {
                events: rows
                    .into_iter()
                    .map(|r| pb::AuditEvent {
                        id: r.id,
                        user_id: r.user_id.map(|u| u.to_string()).unwrap_or_default(),
                        action: r.action,
                        target: r.target.unwrap_or_default(),
                        outcome: r.outcome,
                        client_ip: r.client_ip.unwrap_or_default(),
                        request_id: r.request_id.unwrap_or_default(),
                        detail_json: r.detail.to_string(),
                        create_time: Some(convert::timestamp(r.created_at)),
                    })
                    .collect(),
                next_page_token,
            })
        }
        .await;
        respond(result)
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
