-- SearchFiles by name substring ("invoice" finds ".../Invoice-2024.pdf")
-- without reading every record: a trigram GIN index over the lower-cased file
-- names (last path segment) of each record, original and new, joined by a
-- newline (which no stored name contains, so a match never spans both).
-- Queries must use the same function for the index to apply.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE FUNCTION file_record_names(original_path text, new_path text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT lower(regexp_replace(original_path, '^.*/', '')) || E'\n'
                 || lower(regexp_replace(coalesce(new_path, ''), '^.*/', '')) $$;

CREATE INDEX file_records_names_trgm_idx ON file_records
    USING gin (file_record_names(original_path, new_path) gin_trgm_ops);
