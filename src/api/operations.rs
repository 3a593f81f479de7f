//! OperationService: create, inspect, cancel, apply, undo and watch
//! organize jobs. The work itself happens in `jobs` workers.

use std::{pin::Pin, time::Duration};

use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{convert, parts, respond};
use crate::{
    auth::{Principal, watch_tokens},
    db::{self, models::Operation, operations::UndoInsert},
    domain::{Counters, OperationKind, OperationState},
    error::{AppError, AppResult},
    jobs, pagination,
    pb::fileorganizer::v1::{self as pb, operation_service_server::OperationService},
    state::AppState,
};

pub struct Operations {
    state: AppState,
}

impl Operations {
    pub fn new(state: AppState) -> Self {
        Operations { state }
    }
}

/// The API message of an operation (with the undo that reverted it, if any),
/// read on the connection the handler already holds: a handler that took a
/// second pooled connection while holding one would wait for itself once as
/// many copies of the request as the pool has connections arrive together
/// (`tests/api/retries.rs`).
async fn operation_message(
    conn: &mut diesel_async::AsyncPgConnection,
    op: &Operation,
) -> AppResult<pb::Operation> {
    let undone_by = db::operations::find_undo_of(conn, op.id)
        .await?
        .map(|u| u.id);
    Ok(convert::operation(op, undone_by))
}

/// The idempotency key of CreateOperation and UndoOperation, trimmed (empty: none), checked
/// before anything else the request asks (UndoOperation stored any key unchecked).
fn request_id(raw: &str) -> AppResult<&str> {
    let request_id = raw.trim();
    if request_id.len() > 128 || request_id.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "request_id",
            "must be at most 128 printable characters",
        ));
    }
    Ok(request_id)
}

/// Parses `operations/{id}` from request field `field`.
pub fn parse_name(name: &str, field: &str) -> AppResult<Uuid> {
    name.strip_prefix(convert::OPERATION_COLLECTION)
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| AppError::invalid(field, "must be operations/{id}"))
}

impl Operations {
    async fn find(&self, principal: &Principal, name: &str) -> AppResult<Operation> {
        self.find_of(principal.user_id, name).await
    }

    async fn find_of(&self, user_id: Uuid, name: &str) -> AppResult<Operation> {
        let id = parse_name(name, "name")?;
        let mut conn = self.state.db.get().await?;
        db::operations::find_for_user(&mut conn, user_id, id)
            .await?
            .ok_or_else(|| AppError::not_found(name.to_string()))
    }

    /// The user a WatchOperation call acts for: its principal's, or, for a
    /// call without credentials (the auth layer let it through), the one
    /// its watch token was issued to, the token spent (`auth::watch_tokens`).
    async fn watcher(
        &self,
        principal: Option<Principal>,
        req: &pb::WatchOperationRequest,
    ) -> AppResult<Uuid> {
        match (principal, req.watch_token.is_empty()) {
            (Some(principal), true) => Ok(principal.user_id),
            (Some(_), false) => Err(AppError::invalid(
                "watch_token",
                "replaces credentials: send either a watch token or credentials, not both",
            )),
            (None, false) => {
                let id = parse_name(&req.name, "name")?;
                watch_tokens::redeem(&self.state, &req.watch_token, id).await
            }
            (None, true) => Err(AppError::unauthenticated(
                pb::ErrorReason::CredentialsMissing,
                "authentication required: send 'authorization: Bearer <access token>',                  'x-api-key: <key>', or a watch_token from CreateWatchToken",
            )),
        }
    }

    async fn create_watch_token(
        &self,
        principal: Principal,
        req: pb::CreateWatchTokenRequest,
    ) -> AppResult<pb::WatchToken> {
        let op = self.find(&principal, &req.name).await?;
        let issued = watch_tokens::issue(&self.state, principal.user_id, op.id).await?;
        let name = format!("{}{}", convert::OPERATION_COLLECTION, op.id);
        Ok(pb::WatchToken {
            watch_path: format!("/api/v1/{name}:watch?watch_token={}", issued.token),
            token: issued.token,
            name,
            expire_time: Some(convert::timestamp(issued.expires_at)),
        })
    }

    /// Checks the request and queues the operation through
    /// `jobs::submit::create_operation`, the path automations share.
    async fn create(
        &self,
        principal: Principal,
        req: pb::CreateOperationRequest,
    ) -> AppResult<pb::Operation> {
        let requested = req
            .operation
            .ok_or_else(|| AppError::invalid("operation", "is required"))?;
        let request_id = request_id(&req.request_id)?;
        // A retry is answered in one of two places: here, when the first
        // copy has committed (the common case: its answer was lost), and in
        // `jobs::submit::create_operation`, when both copies passed this
        // check at once and the unique index let only one insert win.
        if !request_id.is_empty() {
            let mut conn = self.state.db.get().await?;
            if let Some(existing) =
                db::operations::find_by_request_id(&mut conn, principal.user_id, request_id).await?
            {
                return operation_message(&mut conn, &existing).await;
            }
        }
        let request = convert::operation_request(requested)?;
        let request_id = (!request_id.is_empty()).then_some(request_id);
        let mut conn = self.state.db.get().await?;
        let op = jobs::submit::create_operation(
            &self.state,
            &mut conn,
            principal.user_id,
            request,
            request_id,
            jobs::submit::Origin::MANUAL,
        )
        .await?;
        self.state.jobs_queued.notify_one();
        Ok(convert::operation(&op, None))
    }

    async fn list(
        &self,
        principal: Principal,
        req: pb::ListOperationsRequest,
    ) -> AppResult<pb::ListOperationsResponse> {
        let limit = pagination::page_size(req.page_size, pagination::DEFAULT_PAGE_SIZE)?;
        let after = pagination::decode(&req.page_token)?;
        let state = convert::from_request::<OperationState, pb::OperationState>(
            req.state,
            "state",
            "unknown state",
        )?;
        let kind = convert::from_request::<OperationKind, pb::OperationKind>(
            req.kind,
            "kind",
            "unknown kind",
        )?;
        let automation = if req.automation.is_empty() {
            None
        } else {
            Some(super::automations::parse_name(
                &req.automation,
                "automation",
            )?)
        };
        let mut conn = self.state.db.get().await?;
        let mut ops = db::operations::list_for_user(
            &mut conn,
            principal.user_id,
            db::operations::ListFilter {
                state,
                kind,
                automation,
            },
            after,
            limit + 1,
        )
        .await?;
        let next_page_token = if ops.len() as i64 > limit {
            ops.truncate(limit as usize);
            ops.last()
                .map(|o| pagination::encode(o.created_at, o.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let mut operations = Vec::with_capacity(ops.len());
        for op in &ops {
            let undone_by = db::operations::find_undo_of(&mut conn, op.id)
                .await?
                .map(|u| u.id);
            operations.push(convert::operation(op, undone_by));
        }
        Ok(pb::ListOperationsResponse {
            operations,
            next_page_token,
        })
    }

    async fn cancel(
        &self,
        principal: Principal,
        req: pb::CancelOperationRequest,
    ) -> AppResult<pb::Operation> {
        let op = self.find(&principal, &req.name).await?;
        if op.state.is_final() {
            return Err(AppError::FailedPrecondition {
                message: format!("the operation has already ended ({})", op.state),
            });
        }
        let mut conn = self.state.db.get().await?;
        let op = db::operations::request_cancel(&mut conn, &op).await?;
        self.state.progress.cancel_local(op.id);
        self.state.cache.operation_changed(op.user_id, op.id).await;
        operation_message(&mut conn, &op).await
    }

    async fn apply(
        &self,
        principal: Principal,
        req: pb::ApplyOperationRequest,
    ) -> AppResult<pb::Operation> {
        let op = self.find(&principal, &req.name).await?;
        if op.state != OperationState::Planned {
            return Err(AppError::FailedPrecondition {
                message: format!(
                    "only a planned (dry-run) operation can be applied; this one is {}",
                    op.state
                ),
            });
        }
        let mut conn = self.state.db.get().await?;
        let op = db::operations::queue_apply(&mut conn, op.id)
            .await?
            .ok_or_else(|| AppError::FailedPrecondition {
                message: "the operation is no longer planned".into(),
            })?;
        self.state.cache.operation_changed(op.user_id, op.id).await;
        self.state.jobs_queued.notify_one();
        operation_message(&mut conn, &op).await
    }

    async fn undo(
        &self,
        principal: Principal,
        req: pb::UndoOperationRequest,
    ) -> AppResult<pb::Operation> {
        let request_id = request_id(&req.request_id)?;
        let target = self.find(&principal, &req.name).await?;
        let request_id = (!request_id.is_empty()).then_some(request_id);
        if let Some(id) = request_id
            && let Some(done) = self.undo_by_request_id(&principal, &target, id).await?
        {
            return Ok(done);
        }
        if target.kind == OperationKind::Undo {
            return Err(AppError::FailedPrecondition {
                message: "an undo cannot itself be undone".into(),
            });
        }
        if !target.state.is_final() {
            return Err(AppError::FailedPrecondition {
                message: format!(
                    "only a finished operation can be undone; this one is {}",
                    target.state
                ),
            });
        }
        let mut conn = self.state.db.get().await?;
        let op = match db::operations::insert_undo(&mut conn, &target, request_id).await {
            Ok(UndoInsert::Created(op)) => op,
            // A copy of this request committed first.
            Ok(UndoInsert::AlreadyUndone(existing))
                if request_id.is_some() && existing.request_id.as_deref() == request_id =>
            {
                return operation_message(&mut conn, &existing).await;
            }
            Ok(UndoInsert::AlreadyUndone(existing)) => {
                return Err(AppError::AlreadyExists {
                    reason: pb::ErrorReason::AlreadyExists,
                    message: format!(
                        "this operation is already undone by operations/{}",
                        existing.id
                    ),
                });
            }
            // The same request_id sent twice at once: the other copy won.
            Err(error) if request_id.is_some() && db::operations::is_request_id_taken(&error) => {
                drop(conn);
                let id = request_id.unwrap_or_default();
                return match self.undo_by_request_id(&principal, &target, id).await? {
                    Some(done) => Ok(done),
                    None => Err(error.into()),
                };
            }
            Err(error) => return Err(error.into()),
        };
        // The target now shows `undone_by`.
        self.state
            .cache
            .operation_changed(target.user_id, target.id)
            .await;
        self.state.jobs_queued.notify_one();
        Ok(convert::operation(&op, None))
    }

    /// A repeated UndoOperation: the undo that `request_id` already created
    /// for `target` (None when the key is new). A key the user already spent
    /// on another request is refused rather than answered with an unrelated
    /// operation.
    async fn undo_by_request_id(
        &self,
        principal: &Principal,
        target: &Operation,
        request_id: &str,
    ) -> AppResult<Option<pb::Operation>> {
        let mut conn = self.state.db.get().await?;
        let Some(existing) =
            db::operations::find_by_request_id(&mut conn, principal.user_id, request_id).await?
        else {
            return Ok(None);
        };
        if existing.undo_of != Some(target.id) {
            return Err(AppError::invalid(
                "request_id",
                format!(
                    "was already used by another request (operations/{}); send a new one",
                    existing.id
                ),
            ));
        }
        operation_message(&mut conn, &existing).await.map(Some)
    }

    /// Streams snapshots: the current one first, then live ones (at most ~10
    /// a second) until the operation reaches a state where nothing more
    /// happens by itself, then the last one.
    async fn watch(&self, user_id: Uuid, req: pb::WatchOperationRequest) -> AppResult<WatchStream> {
        let slot = self.state.stream_slots.acquire(user_id)?;
        let op = self.find_of(user_id, &req.name).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let state = self.state.clone();
        tokio::spawn(async move {
            let id = op.id;
            // Local jobs and, through the process's one Redis subscription, all others.
            let mut live = state.progress.watch(id);
            let mut last_live = tokio::time::Instant::now() - Duration::from_secs(60);
            let mut shutdown = state.shutting_down.clone();
            let mut last: Option<Counters> = None;
            let mut snapshot = op.snapshot();
            let mut poll = tokio::time::interval(Duration::from_secs(1));
            poll.tick().await;
            loop {
                // Never let counters go backwards between sources.
                if let Some(last) = last {
                    snapshot.counters = snapshot.counters.max_with(last);
                }
                last = Some(snapshot.counters);
                let ended = snapshot.state.is_at_rest();
                if tx.send(Ok(convert::snapshot(&snapshot))).await.is_err() {
                    return; // the client left
                }
                if ended {
                    return;
                }
                let mut next = None;
                while next.is_none() {
                    tokio::select! {
                        changed = live.changed() => {
                            if changed.is_err() { break; }
                            next = live.latest();
                            last_live = tokio::time::Instant::now();
                            // ~10 a second at most.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        _ = poll.tick() => {
                            let Ok(mut conn) = state.db.get().await else { continue };
                            if let Ok(Some(row)) = db::operations::find(&mut conn, id).await {
                                let polled = row.snapshot();
                                // Live snapshots are fresher while they flow.
                                if polled.state.is_at_rest() || last_live.elapsed() > Duration::from_secs(2) {
                                    next = Some(polled);
                                }
                            }
                        }
                        _ = shutdown.changed() => return,
                        // The client left: release the subscription now, not at the next send.
                        () = tx.closed() => return,
                    }
                }
                match next {
                    Some(s) => snapshot = s,
                    None => return,
                }
            }
        });
        Ok(crate::infra::streams::hold(
            slot,
            Box::pin(ReceiverStream::new(rx)),
        ))
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchOperationResponse, Status>> + Send>>;

#[tonic::async_trait]
impl OperationService for Operations {
    async fn create_operation(
        &self,
        request: Request<pb::CreateOperationRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let ctx = crate::layers::RequestContext::of(&request);
        let (principal, req) = parts(request)?;
        let result = self.create(principal.clone(), req).await;
        if let Err(error) = &result {
            super::audit_path_escape(&self.state, &ctx, &principal, error).await;
        }
        respond(result)
    }

    async fn get_operation(
        &self,
        request: Request<pb::GetOperationRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let (principal, req) = parts(request)?;
        let result = async {
            let id = parse_name(&req.name, "name")?;
            let cache = &self.state.cache;
            // Keyed by owner and id: another user's request can never hit it.
            let key = format!("{}:{id}", principal.user_id);
            if let Some(op) = cache.get::<pb::Operation>("operation", &key).await {
                return Ok(op);
            }
            // One round trip: the operation and its undo together.
            let mut conn = self.state.db.get().await?;
            let (op, undone_by) =
                db::operations::find_for_user_with_undo(&mut conn, principal.user_id, id)
                    .await?
                    .ok_or_else(|| AppError::not_found(req.name.clone()))?;
            drop(conn);
            let message = convert::operation(&op, undone_by);
            if op.state.is_at_rest() {
                cache
                    .put("operation", &key, &message, cache.ttls.operation)
                    .await;
            }
            Ok(message)
        }
        .await;
        respond(result)
    }

    async fn list_operations(
        &self,
        request: Request<pb::ListOperationsRequest>,
    ) -> Result<Response<pb::ListOperationsResponse>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.list(principal, req).await)
    }

    async fn cancel_operation(
        &self,
        request: Request<pb::CancelOperationRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.cancel(principal, req).await)
    }

    async fn apply_operation(
        &self,
        request: Request<pb::ApplyOperationRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.apply(principal, req).await)
    }

    async fn undo_operation(
        &self,
        request: Request<pb::UndoOperationRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.undo(principal, req).await)
    }

    async fn watch_operation(
        &self,
        request: Request<pb::WatchOperationRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        // The one handler that may run without a principal (see `watcher`).
        let principal = request.extensions().get::<Principal>().cloned();
        let req = request.into_inner();
        let result = async {
            let user_id = self.watcher(principal, &req).await?;
            self.watch(user_id, req).await
        }
        .await;
        respond(result)
    }

    async fn create_watch_token(
        &self,
        request: Request<pb::CreateWatchTokenRequest>,
    ) -> Result<Response<pb::WatchToken>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.create_watch_token(principal, req).await)
    }
}
