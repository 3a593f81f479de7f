-- Operations are both the user-visible resource and the job queue: workers
-- claim `queued` rows with FOR UPDATE SKIP LOCKED and keep `heartbeat_at`
-- fresh; a stale heartbeat lets another worker recover the job.
CREATE TABLE operations (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('organize', 'deduplicate', 'undo')),
    state             text NOT NULL,
    phase             text,
    source_path       text NOT NULL,
    destination_path  text NOT NULL,
    dry_run           boolean NOT NULL DEFAULT false,
    options           jsonb NOT NULL DEFAULT '{}',
    files_scanned     bigint NOT NULL DEFAULT 0,
    files_planned     bigint NOT NULL DEFAULT 0,
    files_moved       bigint NOT NULL DEFAULT 0,
    files_skipped     bigint NOT NULL DEFAULT 0,
    files_failed      bigint NOT NULL DEFAULT 0,
    duplicates_found  bigint NOT NULL DEFAULT 0,
    bytes_scanned     bigint NOT NULL DEFAULT 0,
    bytes_moved       bigint NOT NULL DEFAULT 0,
    reclaimable_bytes bigint NOT NULL DEFAULT 0,
    undo_of           uuid REFERENCES operations (id) ON DELETE SET NULL,
    request_id        text,
    worker_id         text,
    heartbeat_at      timestamptz,
    cancel_requested  boolean NOT NULL DEFAULT false,
    applied_cursor    bigint NOT NULL DEFAULT 0,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz
);
-- ListOperations (a user's operations, newest first, optionally by state);
-- its prefix also serves every "operations of this user" lookup.
CREATE INDEX operations_user_id_created_at_idx ON operations (user_id, created_at DESC);
-- The worker queue: only the few unfinished rows are indexed.
CREATE INDEX operations_pending_idx ON operations (created_at)
    WHERE state IN ('queued', 'running', 'applying', 'undoing', 'cancelling');
-- CreateOperation idempotency.
CREATE UNIQUE INDEX operations_user_request_id_key ON operations (user_id, request_id)
    WHERE request_id IS NOT NULL;
