-- The journal: one row per file an operation considered, written in batches
-- before any file is touched. The primary key (operation_id, seq) also serves
-- every per-operation lookup, so no separate operation_id index is needed.
CREATE TABLE file_records (
    operation_id  uuid NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    seq           bigint NOT NULL,
    original_path text NOT NULL,
    new_path      text,
    size_bytes    bigint NOT NULL DEFAULT 0,
    modified_at   timestamptz,
    device        bigint,
    inode         bigint,
    content_hash  bytea,
    category      text NOT NULL,
    duplicate_of  bigint,
    status        text NOT NULL,
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operation_id, seq)
);
-- "Where else do I have this file?" (SearchFiles by hash, duplicate groups).
CREATE INDEX file_records_content_hash_idx ON file_records (content_hash)
    WHERE content_hash IS NOT NULL;
