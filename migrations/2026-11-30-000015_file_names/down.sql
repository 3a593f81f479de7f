DROP TRIGGER file_records_renamed_names ON file_records;
DROP FUNCTION file_records_rename_names();
DROP TABLE file_names_pending;
DROP TABLE file_names;
DROP FUNCTION file_names_lock_key(uuid);
CREATE OR REPLACE FUNCTION file_record_names(original_path text, new_path text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT lower(regexp_replace(original_path, '^.*/', '')) || E'\n'
                 || lower(regexp_replace(coalesce(new_path, ''), '^.*/', '')) $$;
CREATE INDEX file_records_names_trgm_idx ON file_records
    USING gin (file_record_names(original_path, new_path) gin_trgm_ops);
