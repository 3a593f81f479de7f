-- The trash: one row per file or folder moved to `.trash/` (DeleteFile, or an
-- operation's MOVE_TO_TRASH duplicate policy), with where it came from. Rows
-- are history, not just state: RestoreFile sets restored_at/restored_path,
-- EmptyTrash sets purged_at after deleting the bytes, and only rows with
-- neither are "in the trash". Keeping them means an operation's trashed
-- duplicates are taken into the trash exactly once (the unique key below),
-- never re-listed after they were restored or purged.
CREATE TABLE trash_items (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    original_path text NOT NULL,
    -- Where the entry lies now, relative to the user's root (under `.trash/`).
    trash_path    text NOT NULL CHECK (trash_path LIKE '.trash/%'),
    kind          text NOT NULL CHECK (kind IN ('file', 'directory', 'symlink', 'other')),
    size_bytes    bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    -- Set for duplicates an operation moved here: its journal record.
    operation_id  uuid REFERENCES operations (id) ON DELETE CASCADE,
    operation_seq bigint,
    deleted_at    timestamptz NOT NULL DEFAULT now(),
    restored_at   timestamptz,
    restored_path text,
    purged_at     timestamptz,
    CHECK (restored_at IS NULL OR purged_at IS NULL),
    CHECK ((operation_id IS NULL) = (operation_seq IS NULL))
);
-- ListTrash (newest first) and the total size: only what is in the trash now.
CREATE INDEX trash_items_user_active_idx ON trash_items (user_id, deleted_at DESC, id DESC)
    WHERE restored_at IS NULL AND purged_at IS NULL;
-- An operation's trashed duplicate becomes a trash item once.
CREATE UNIQUE INDEX trash_items_operation_record_key ON trash_items (operation_id, operation_seq)
    WHERE operation_id IS NOT NULL;
