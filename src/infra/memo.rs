//! Answers computed from an operation's whole journal, once per version of
//! the operation (`db::memos`): GetOperationReport's report and
//! ListFileRecords' counts per status. At 1,000,000 records each is one or
//! more scans of the operation's records; computed per request, a dozen at
//! once held the database pool for seconds and timed every other request out
//! (BENCHMARKS.md, round 7).
//!
//! Reading: the stored value when its version is current. Otherwise one
//! request per (operation, kind) in this process computes it while the others
//! wait for it without holding a connection (`keyed_lock`), then read what
//! it stored. An operation that is working has no version: its values are
//! computed per request and never stored.
//!
//! Each kind of value says how it is stored ([`Memo`]): the report as the
//! domain's JSON (`reports`), a page of counts as the API's protobuf
//! (`api::files`), so that computing a report, which jobs do too, needs
//! nothing of the API.

use std::future::Future;

use crate::{
    db::{self, models::Operation},
    error::AppResult,
    state::AppState,
};

/// A value stored in `operation_memos`: how it is written and read back.
pub trait Memo: Sized {
    fn encode(&self) -> AppResult<Vec<u8>>;
    fn decode(bytes: &[u8]) -> AppResult<Self>;
}

/// The value of `kind` for `operation`: stored for its current version, or
/// `compute`d (and stored when the operation is at rest).
pub async fn memoized<T, F, Fut>(
    state: &AppState,
    operation: &Operation,
    kind: &str,
    compute: F,
) -> AppResult<T>
where
    T: Memo,
    F: FnOnce() -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let decode = |bytes: Vec<u8>| T::decode(&bytes);
    let mut conn = state.db.get().await?;
    let Some(version) = db::memos::version(&mut conn, operation).await? else {
        drop(conn);
        return compute().await;
    };
    if let Some(bytes) = db::memos::get(&mut conn, operation.id, kind, &version).await? {
        return decode(bytes);
    }
    // Wait for our turn without holding a connection: the one computing needs one.
    drop(conn);
    let _turn = state
        .memo_builds
        .lock((operation.id, kind.to_string()))
        .await;
    let mut conn = state.db.get().await?;
    if let Some(bytes) = db::memos::get(&mut conn, operation.id, kind, &version).await? {
        return decode(bytes);
    }
    drop(conn);
    let value = compute().await?;
    let mut conn = state.db.get().await?;
    db::memos::put(&mut conn, operation.id, kind, &version, &value.encode()?).await?;
    Ok(value)
}
