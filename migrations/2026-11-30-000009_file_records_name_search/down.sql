DROP INDEX file_records_names_trgm_idx;
DROP FUNCTION file_record_names(text, text);
-- pg_trgm stays installed: other objects may use it, and it is harmless.
