-- SearchFiles' name index moves out of the journal's hot path.
--
-- Until now the trigram GIN index was on file_records itself, so every
-- journal row paid for its trigram entries inside the organize: at 1M files
-- half of the plan + journal phase (BENCHMARKS.md, rounds 3 and 4). The names
-- now live in `file_names`, one row per journal record, written by a
-- background task after the job that wrote the journal has finished
-- (`jobs::search_names`). Until then the operation is listed in
-- `file_names_pending` and SearchFiles matches its records by the name
-- expression directly (a scan of that one operation's records), so a search
-- never misses a record, indexed or not.
--
-- Staying exact afterwards: a record's names change only when its new_path
-- does (a rename on conflict during apply, undo), and a row trigger then
-- updates the names row. The trigger and the background writer take the
-- same per-operation advisory lock, so a name change committed while the
-- writer copies an operation's names is never lost (docs/search.md).

DROP INDEX file_records_names_trgm_idx;

-- Same result as the regexp of migration 000009 (the text after the last
-- '/', or all of it), computed in half the time.
CREATE OR REPLACE FUNCTION file_record_names(original_path text, new_path text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT lower(split_part(original_path, '/', -1)) || E'\n'
                 || lower(split_part(coalesce(new_path, ''), '/', -1)) $$;

-- The advisory lock key of an operation's names.
CREATE FUNCTION file_names_lock_key(operation_id uuid) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT hashtextextended('file_names:' || operation_id::text, 0) $$;

CREATE TABLE file_names (
    operation_id uuid NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    seq          bigint NOT NULL,
    -- file_record_names(original_path, new_path) of the record.
    names        text NOT NULL,
    PRIMARY KEY (operation_id, seq)
);

-- Operations whose journal was written and whose names are not yet in
-- file_names.
CREATE TABLE file_names_pending (
    operation_id uuid PRIMARY KEY REFERENCES operations (id) ON DELETE CASCADE,
    since        timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION file_records_rename_names() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(file_names_lock_key(NEW.operation_id));
    UPDATE file_names SET names = file_record_names(NEW.original_path, NEW.new_path)
    WHERE operation_id = NEW.operation_id AND seq = NEW.seq;
    RETURN NULL;
END
$$;
CREATE TRIGGER file_records_renamed_names
    AFTER UPDATE OF original_path, new_path ON file_records
    FOR EACH ROW
    WHEN ((OLD.original_path, OLD.new_path) IS DISTINCT FROM (NEW.original_path, NEW.new_path))
    EXECUTE FUNCTION file_records_rename_names();

-- The journals already written, then their index (building it once is far
-- cheaper than maintaining it row by row).
INSERT INTO file_names (operation_id, seq, names)
SELECT operation_id, seq, file_record_names(original_path, new_path) FROM file_records;
CREATE INDEX file_names_trgm_idx ON file_names USING gin (names gin_trgm_ops);
-- Statistics for the planner now, not when autovacuum gets to it.
ANALYZE file_names;
