-- Every GetOperation (and every operation the API returns) looks up the undo
-- that reverted it (`undone_by`): without this index that is a sequential
-- scan of all operations per call. Only undos have `undo_of`, so the index
-- stays small.
CREATE INDEX operations_undo_of_idx ON operations (undo_of, created_at DESC)
    WHERE undo_of IS NOT NULL;
