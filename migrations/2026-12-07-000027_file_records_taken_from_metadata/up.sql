-- Where the date of a layout with {taken_...} tokens came from, per journal
-- record: true, the file's metadata (its capture date: engine::taken);
-- false, its modification time; NULL when the layout used no such date for
-- the file (no {taken_...} token, or the file was not placed by the
-- template). The report counts them (OperationReport.taken_dates_*).
-- Nullable without a default: no table rewrite.
ALTER TABLE file_records ADD COLUMN taken_from_metadata boolean;
