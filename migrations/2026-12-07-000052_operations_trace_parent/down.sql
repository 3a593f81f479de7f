ALTER TABLE operations DROP COLUMN trace_parent;
