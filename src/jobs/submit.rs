//! Creating an operation: the one path that CreateOperation and the
//! automations' scheduler (`jobs::automations`) share, so that an automatic
//! run is checked and queued exactly like a requested one.

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::{
    db::{
        self,
        models::{NewOperation, Operation},
    },
    domain::{OperationRequest, OperationSpec, TriggerKind},
    engine,
    error::AppResult,
    state::AppState,
};

/// What started an operation.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub trigger: TriggerKind,
    pub automation_id: Option<Uuid>,
}

impl Origin {
    /// A request (CreateOperation).
    pub const MANUAL: Origin = Origin {
        trigger: TriggerKind::Manual,
        automation_id: None,
    };
}

/// Checks the request (`OperationSpec::parse`), then the folders on disk
/// (`engine::spec::check_on_disk`), then inserts the queued operation on
/// `conn` (the scheduler passes its transaction). The caller wakes the
/// workers (`AppState::jobs_queued`) once the row is committed.
pub async fn create_operation(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    request: OperationRequest,
    request_id: Option<&str>,
    origin: Origin,
) -> AppResult<Operation> {
    let spec = OperationSpec::parse(request)?;
    let root = state.user_root(user_id)?;
    let checked = spec.clone();
    tokio::task::spawn_blocking(move || engine::spec::check_on_disk(&root, &checked)).await??;
    let mut new = NewOperation::queued(user_id, &spec, request_id);
    new.trigger_kind = origin.trigger;
    new.automation_id = origin.automation_id;
    match db::operations::insert(conn, &new).await {
        // The same request_id sent twice at once: the other copy won, and
        // both callers get its operation (a retry after the first copy
        // committed is answered before this, in `api::operations`).
        Err(error)
            if let Some(id) = request_id
                && db::operations::is_request_id_taken(&error) =>
        {
            db::operations::find_by_request_id(conn, user_id, id)
                .await?
                .ok_or_else(|| error.into())
        }
        inserted => Ok(inserted?),
    }
}
