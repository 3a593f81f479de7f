-- Resumable uploads (FileService.CreateUpload … FinishUpload; docs/uploads.md).
-- One row per unfinished session. Its bytes are the file
-- `.fileorg-tmp-uploads/<id>` under the user's storage root; `committed_offset`
-- is how many of them are durable (fsynced): the file may be longer after a
-- crash, and the next append cuts it back to this offset first.
-- `size_bytes` is reserved in users.storage_used_bytes when the row is
-- created and released when a session ends without storing a file
-- (cancelled, expired, hash mismatch, skipped as identical).
CREATE TABLE upload_sessions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path text NOT NULL,
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    content_hash bytea CHECK (content_hash IS NULL OR length(content_hash) = 32),
    conflict_policy text NOT NULL,
    modify_time timestamptz,
    committed_offset bigint NOT NULL DEFAULT 0
        CHECK (committed_offset >= 0 AND committed_offset <= size_bytes),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX upload_sessions_user ON upload_sessions (user_id);
CREATE INDEX upload_sessions_expiry ON upload_sessions (expires_at);
