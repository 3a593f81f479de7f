//! ReportService: operation reports, duplicate groups, exports and the
//! caller's usage summary.
//!
//! The report is `reports::report_of`'s (the domain's, computed once per
//! version of the operation), turned into protobuf by `convert::report`;
//! documents come from the writers in `reports`. An export is produced by a task that reads the
//! journal in keyset batches and sends `HttpBody` chunks over a small mpsc
//! channel, so memory stays bounded by one batch plus a few chunks whatever
//! the journal's size, and a slow client slows the reading down. A failed
//! send means the client left; the task then stops.

use std::pin::Pin;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, metadata::MetadataValue};
use uuid::Uuid;

use super::{StreamEnd, convert, parts, respond};
use crate::{
    auth::Principal,
    db::{self, models::Operation, reports::GroupKey},
    error::{AppError, AppResult},
    pagination,
    pb::{
        fileorganizer::v1::{self as pb, report_service_server::ReportService},
        google::api::HttpBody,
    },
    reports::{self, Format},
    state::AppState,
    storage::UserPath,
};

/// The collection prefix of report names.
pub const REPORT_COLLECTION: &str = "reports/";
/// File records read per export batch.
const EXPORT_BATCH: i64 = 5000;
/// Duplicate groups read per export batch.
const EXPORT_GROUP_BATCH: i64 = 500;
/// Bytes gathered before an export chunk is sent.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight between the reading task and the client.
const CHANNEL_CHUNKS: usize = 4;

pub struct Reports {
    state: AppState,
}

impl Reports {
    pub fn new(state: AppState) -> Self {
        Reports { state }
    }
}

/// Parses `reports/{operation_id}` from request field `field`.
pub fn parse_name(name: &str, field: &str) -> AppResult<Uuid> {
    name.strip_prefix(REPORT_COLLECTION)
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| AppError::invalid(field, "must be reports/{operation_id}"))
}

fn parse_format(raw: i32) -> AppResult<Format> {
    match pb::ReportFormat::try_from(raw) {
        Ok(pb::ReportFormat::Unspecified | pb::ReportFormat::Csv) => Ok(Format::Csv),
        Ok(pb::ReportFormat::Json) => Ok(Format::Json),
        Ok(pb::ReportFormat::Html) => Ok(Format::Html),
        Err(_) => Err(AppError::invalid(
            "format",
            "unknown format (use CSV, JSON or HTML)",
        )),
    }
}

/// Page tokens of ListDuplicateGroups: the listing key of the last group
/// shown, bound to the operation and filter it came from.
fn encode_token(operation_id: Uuid, min_size: i64, key: &GroupKey) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "g1:{operation_id}:{min_size}:{}:{}:{}",
        key.reclaimable_bytes,
        hex::encode(&key.content_hash),
        key.keeper_seq
    ))
}

fn decode_token(token: &str, operation_id: Uuid, min_size: i64) -> AppResult<Option<GroupKey>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || AppError::invalid("page_token", "is not a token from a previous response");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let parts: Vec<&str> = text.split(':').collect();
    let [version, op, min, bytes, hash, seq] = parts.as_slice() else {
        return Err(bad());
    };
    if *version != "g1" {
        return Err(bad());
    }
    if *op != operation_id.to_string() || min.parse::<i64>().ok() != Some(min_size) {
        return Err(AppError::invalid(
            "page_token",
            "belongs to another parent or min_size_bytes",
        ));
    }
    Ok(Some(GroupKey {
        reclaimable_bytes: bytes.parse().map_err(|_| bad())?,
        content_hash: hex::decode(hash).map_err(|_| bad())?,
        keeper_seq: seq.parse().map_err(|_| bad())?,
    }))
}

type ExportStream = Pin<Box<dyn Stream<Item = Result<HttpBody, Status>> + Send>>;

/// Sends export bytes in chunks; the first chunk carries the content type.
struct Chunks {
    tx: mpsc::Sender<Result<HttpBody, Status>>,
    content_type: Option<&'static str>,
    buf: Vec<u8>,
}

impl Chunks {
    /// Sends the buffer once it holds a chunk; with `last`, sends whatever
    /// is left (and at least one message, for the content type).
    async fn flush(&mut self, last: bool) -> Result<(), StreamEnd> {
        let nothing_left = self.buf.is_empty() && self.content_type.is_none();
        if (!last && self.buf.len() < CHUNK_BYTES) || (last && nothing_left) {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES + 8192));
        let body = HttpBody {
            content_type: self.content_type.take().unwrap_or_default().to_string(),
            data,
            extensions: Vec::new(),
        };
        self.tx
            .send(Ok(body))
            .await
            .map_err(|_| StreamEnd::ClientGone)
    }
}

/// Produces one export into `chunks`.
async fn produce(
    state: &AppState,
    op: &Operation,
    format: Format,
    chunks: &mut Chunks,
) -> Result<(), StreamEnd> {
    let mut writer = format.writer();
    let stopping = || {
        state.is_shutting_down().then_some(AppError::Unavailable {
            what: "server",
            detail: "shutting down during an export".into(),
        })
    };
    if format.needs_report() {
        let report = reports::compute(state, op).await?;
        writer.begin(&mut chunks.buf, &report);
    }
    if format.needs_groups() {
        let mut after: Option<GroupKey> = None;
        loop {
            if let Some(e) = stopping() {
                return Err(e.into());
            }
            let page = {
                let mut conn = state.db.get().await?;
                db::reports::duplicate_groups(
                    &mut conn,
                    op.id,
                    0,
                    after.as_ref(),
                    EXPORT_GROUP_BATCH,
                )
                .await?
            };
            let full = page.len() as i64 == EXPORT_GROUP_BATCH;
            for (key, group) in page {
                writer.group(&mut chunks.buf, &group);
                after = Some(key);
                chunks.flush(false).await?;
            }
            if !full {
                break;
            }
        }
        writer.end_groups(&mut chunks.buf);
    }
    if format.needs_records() {
        let mut after_seq = 0i64;
        loop {
            if let Some(e) = stopping() {
                return Err(e.into());
            }
            let batch = {
                let mut conn = state.db.get().await?;
                db::reports::records_after(&mut conn, op.id, after_seq, EXPORT_BATCH).await?
            };
            let full = batch.len() as i64 == EXPORT_BATCH;
            for record in &batch {
                writer.record(&mut chunks.buf, record);
                after_seq = record.seq;
                chunks.flush(false).await?;
            }
            if !full {
                break;
            }
        }
    }
    writer.finish(&mut chunks.buf);
    chunks.flush(true).await
}

impl Reports {
    /// The caller's operation behind a report name; NOT_FOUND (with the same
    /// message) when it does not exist or is someone else's.
    async fn find(&self, principal: &Principal, name: &str, field: &str) -> AppResult<Operation> {
        let id = parse_name(name, field)?;
        let mut conn = self.state.db.get().await?;
        db::operations::find_for_user(&mut conn, principal.user_id, id)
            .await?
            .ok_or_else(|| AppError::not_found(name.to_string()))
    }

    async fn get(
        &self,
        principal: Principal,
        req: pb::GetOperationReportRequest,
    ) -> AppResult<pb::OperationReport> {
        // Cache-aside, keyed by owner and operation: another user's request
        // can never hit it. Only reports of operations at rest are cached;
        // every state change and an undo invalidate (see `crate::infra::cache`).
        let cache = &self.state.cache;
        let key = req
            .name
            .strip_prefix("reports/")
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .map(|id| format!("{}:{id}", principal.user_id));
        if let Some(key) = &key
            && let Some(report) = cache.get::<pb::OperationReport>("report", key).await
        {
            return Ok(report);
        }
        let op = self.find(&principal, &req.name, "name").await?;
        let report = convert::report(&reports::report_of(&self.state, &op).await?);
        if let Some(key) = &key
            && op.state.is_at_rest()
        {
            cache.put("report", key, &report, cache.ttls.report).await;
        }
        Ok(report)
    }

    async fn list_groups(
        &self,
        principal: Principal,
        req: pb::ListDuplicateGroupsRequest,
    ) -> AppResult<pb::ListDuplicateGroupsResponse> {
        let limit = pagination::page_size(req.page_size, pagination::DEFAULT_PAGE_SIZE)?;
        if req.min_size_bytes < 0 {
            return Err(AppError::invalid("min_size_bytes", "must not be negative"));
        }
        let op = self.find(&principal, &req.parent, "parent").await?;
        let after = decode_token(&req.page_token, op.id, req.min_size_bytes)?;
        let mut conn = self.state.db.get().await?;
        let mut page = db::reports::duplicate_groups(
            &mut conn,
            op.id,
            req.min_size_bytes,
            after.as_ref(),
            limit + 1,
        )
        .await?;
        let next_page_token = if page.len() as i64 > limit {
            page.truncate(limit as usize);
            page.last()
                .map(|(key, _)| encode_token(op.id, req.min_size_bytes, key))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let total_size =
            db::reports::count_duplicate_groups(&mut conn, op.id, req.min_size_bytes).await?;
        Ok(pb::ListDuplicateGroupsResponse {
            duplicate_groups: page
                .into_iter()
                .map(|(_, group)| convert::duplicate_group(op.id, group))
                .collect(),
            next_page_token,
            total_size,
        })
    }

    /// Validates the request, then starts the producing task. Errors found
    /// here (bad name, not found) are the call's status; later ones end the
    /// stream.
    async fn export(
        &self,
        principal: Principal,
        req: pb::ExportReportRequest,
    ) -> AppResult<(ExportStream, String)> {
        let format = parse_format(req.format)?;
        let op = self.find(&principal, &req.name, "name").await?;
        let filename = format!("report-{}.{}", op.id, format.extension());
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut chunks = Chunks {
                tx: tx.clone(),
                content_type: Some(format.content_type()),
                buf: Vec::with_capacity(CHUNK_BYTES + 8192),
            };
            match produce(&state, &op, format, &mut chunks).await {
                Ok(()) => {}
                Err(StreamEnd::ClientGone) => {
                    tracing::debug!(operation = %op.id, "export client went away");
                }
                Err(end) => {
                    let _ = tx.send(Err(Status::from(end))).await;
                }
            }
        });
        Ok((Box::pin(ReceiverStream::new(rx)), filename))
    }

    async fn usage(&self, principal: Principal) -> AppResult<pb::UsageSummary> {
        let mut conn = self.state.db.get().await?;
        let mut by_state: Vec<pb::OperationStateCount> =
            db::reports::operations_by_state(&mut conn, principal.user_id)
                .await?
                .into_iter()
                .map(|(state, count)| pb::OperationStateCount {
                    state: pb::OperationState::from(state) as i32,
                    count,
                })
                .collect();
        by_state.sort_by_key(|s| s.state);
        let totals = db::reports::usage_totals(&mut conn, principal.user_id).await?;
        drop(conn);
        let root = self.state.user_root(principal.user_id)?;
        let trash_bytes = tokio::task::spawn_blocking(move || {
            let trash = UserPath::parse(crate::engine::plan::TRASH_FOLDER).expect("valid");
            reports::usage::folder_bytes(&root, &trash).map_err(|e| e.at("trash"))
        })
        .await??;
        let (used, quota) = (totals.storage_used_bytes, totals.storage_quota_bytes);
        Ok(pb::UsageSummary {
            operation_count: by_state.iter().map(|s| s.count).sum(),
            operations_by_state: by_state,
            files_organized: totals.files_organized,
            bytes_organized: totals.bytes_organized,
            duplicates_found: totals.duplicates_found,
            reclaimable_bytes: totals.reclaimable_bytes,
            storage_used_bytes: used,
            storage_quota_bytes: quota,
            storage_used_percent: match (used, quota) {
                (_, q) if q > 0 => 100.0 * used as f64 / q as f64,
                (0, _) => 0.0,
                _ => 100.0,
            },
            trash_bytes: i64::try_from(trash_bytes).unwrap_or(i64::MAX),
            compute_time: Some(convert::timestamp(Utc::now())),
        })
    }
}

#[tonic::async_trait]
impl ReportService for Reports {
    async fn get_operation_report(
        &self,
        request: Request<pb::GetOperationReportRequest>,
    ) -> Result<Response<pb::OperationReport>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.get(principal, req).await)
    }

    async fn list_duplicate_groups(
        &self,
        request: Request<pb::ListDuplicateGroupsRequest>,
    ) -> Result<Response<pb::ListDuplicateGroupsResponse>, Status> {
        let (principal, req) = parts(request)?;
        respond(self.list_groups(principal, req).await)
    }

    async fn export_report(
        &self,
        request: Request<pb::ExportReportRequest>,
    ) -> Result<Response<ExportStream>, Status> {
        let (principal, req) = parts(request)?;
        let slot = self.state.stream_slots.acquire(principal.user_id)?;
        let (stream, filename) = self.export(principal, req).await?;
        let mut response = Response::new(crate::infra::streams::hold(slot, stream));
        // Over REST, Envoy turns response metadata into HTTP headers: the
        // download gets its file name (ASCII only: a UUID and an extension).
        let disposition = format!("attachment; filename=\"{filename}\"");
        response.metadata_mut().insert(
            "content-disposition",
            MetadataValue::try_from(disposition.as_str())
                .map_err(|e| Status::from(AppError::internal(e)))?,
        );
        Ok(response)
    }

    async fn get_usage_summary(
        &self,
        request: Request<pb::GetUsageSummaryRequest>,
    ) -> Result<Response<pb::UsageSummary>, Status> {
        let (principal, _) = parts(request)?;
        respond(self.usage(principal).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let id = Uuid::new_v4();
        assert_eq!(parse_name(&format!("reports/{id}"), "name").unwrap(), id);
        for bad in ["", "reports/", "operations/x", &format!("operations/{id}")] {
            assert!(parse_name(bad, "name").is_err(), "{bad}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(parse_format(0).unwrap(), Format::Csv);
        assert_eq!(parse_format(3).unwrap(), Format::Html);
        assert!(parse_format(42).is_err());
    }

    #[test]
    fn tokens_round_trip_and_are_bound_to_the_listing() {
        let op = Uuid::new_v4();
        let key = GroupKey {
            reclaimable_bytes: 2000,
            content_hash: vec![0xab; 32],
            keeper_seq: 7,
        };
        let token = encode_token(op, 10, &key);
        assert_eq!(decode_token(&token, op, 10).unwrap(), Some(key));
        assert!(decode_token(&token, op, 11).is_err());
        assert!(decode_token(&token, Uuid::new_v4(), 10).is_err());
        assert!(decode_token("garbage!", op, 10).is_err());
        assert_eq!(decode_token("", op, 10).unwrap(), None);
    }
}
