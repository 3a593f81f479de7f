-- The status-change time (nanoseconds since the epoch) of a journaled file at
-- scan time. Nobody can set it back (unlike mtime), so the apply step
-- compares it to notice a file rewritten with its size and mtime kept.
ALTER TABLE file_records ADD COLUMN ctime_ns bigint;
