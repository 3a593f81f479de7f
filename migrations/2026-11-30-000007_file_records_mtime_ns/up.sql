-- The exact modification time (nanoseconds since the epoch) of a journaled
-- file: `modified_at` (microseconds) is for people; the apply and undo steps
-- compare this value to decide that a file is still the one that was scanned.
ALTER TABLE file_records ADD COLUMN mtime_ns bigint;
