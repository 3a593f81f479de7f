-- Two hot queries that did not stay fast at 1,000,000 journal records
-- (BENCHMARKS.md, "Hot queries at 1,000,000 records").
--
-- 1. ListDuplicateGroups lists an operation's duplicate groups by reclaimable
--    bytes. That order is an aggregate (files in the group x size), so no
--    index on file_records can serve it: every page grouped every duplicate
--    of the operation and sorted the groups. `duplicate_groups` keeps the
--    aggregate, one row per group, and its listing index serves pages and the
--    group count directly. Triggers on file_records keep it exact for any
--    writer: an operation's groups are recomputed whenever rows of it are
--    inserted or deleted (the journal is written in one COPY, so that is
--    once per journal), or when a column the groups depend on changes (the
--    apply and undo updates touch status, new_path and reason only, so they
--    never fire it). The kept file's path is not stored: it changes while
--    files move and is read from the keeper's record.
CREATE TABLE duplicate_groups (
    operation_id      uuid NOT NULL,
    keeper_seq        bigint NOT NULL,
    content_hash      bytea NOT NULL,
    size_bytes        bigint NOT NULL,
    file_count        bigint NOT NULL,
    reclaimable_bytes bigint NOT NULL,
    PRIMARY KEY (operation_id, keeper_seq)
);
-- The listing order (keyset pages); size_bytes for the min_size filter and
-- the count without visiting the table.
CREATE INDEX duplicate_groups_listing_idx ON duplicate_groups
    (operation_id, reclaimable_bytes DESC, content_hash, keeper_seq) INCLUDE (size_bytes);
-- A large min_size_bytes: the few groups that pass, counted or listed.
CREATE INDEX duplicate_groups_size_idx ON duplicate_groups (operation_id, size_bytes);

-- ListDuplicateGroups' total_size without counting every group: the number of
-- groups of an operation and the smallest group's file size. Every group
-- passes a min_size_bytes filter up to that size (the usual request is 0),
-- so only a larger filter counts rows of duplicate_groups.
CREATE TABLE duplicate_group_totals (
    operation_id        uuid PRIMARY KEY,
    groups              bigint NOT NULL,
    smallest_size_bytes bigint NOT NULL
);

-- The groups of one operation as the journal defines them: a kept record plus
-- the records whose duplicate_of names it.
-- (work_mem: at 1M records the grouping would otherwise spill to disk.)
CREATE FUNCTION refresh_duplicate_groups(op uuid) RETURNS void LANGUAGE sql
SET work_mem = '64MB' AS $$
    DELETE FROM duplicate_groups WHERE operation_id = op;
    INSERT INTO duplicate_groups
        (operation_id, keeper_seq, content_hash, size_bytes, file_count, reclaimable_bytes)
    SELECT k.operation_id, k.seq, coalesce(k.content_hash, ''::bytea), k.size_bytes,
           count(*) + 1, (count(*) * k.size_bytes)::bigint
    FROM file_records d
    JOIN file_records k ON k.operation_id = d.operation_id AND k.seq = d.duplicate_of
    WHERE d.operation_id = op AND d.duplicate_of IS NOT NULL
    GROUP BY k.operation_id, k.seq;
    DELETE FROM duplicate_group_totals WHERE operation_id = op;
    INSERT INTO duplicate_group_totals (operation_id, groups, smallest_size_bytes)
    SELECT op, count(*), min(size_bytes) FROM duplicate_groups
    WHERE operation_id = op HAVING count(*) > 0;
$$;

-- Statement level: once per INSERT/COPY/DELETE statement, for each operation
-- it touched (the transition table is named `changed` in both triggers).
CREATE FUNCTION file_records_refresh_duplicate_groups() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_duplicate_groups(c.operation_id)
    FROM (SELECT DISTINCT operation_id FROM changed) c;
    RETURN NULL;
END
$$;
CREATE TRIGGER file_records_inserted_duplicate_groups
    AFTER INSERT ON file_records REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION file_records_refresh_duplicate_groups();
CREATE TRIGGER file_records_deleted_duplicate_groups
    AFTER DELETE ON file_records REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION file_records_refresh_duplicate_groups();

-- Row level, and only for updates of the columns the groups depend on
-- (transition tables cannot be limited to columns). Nothing in the service
-- issues such an update; this keeps the table exact if anything ever does.
CREATE FUNCTION file_records_regroup_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_duplicate_groups(OLD.operation_id);
    IF NEW.operation_id <> OLD.operation_id THEN
        PERFORM refresh_duplicate_groups(NEW.operation_id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER file_records_updated_duplicate_groups
    AFTER UPDATE OF operation_id, seq, size_bytes, content_hash, duplicate_of ON file_records
    FOR EACH ROW
    WHEN ((OLD.operation_id, OLD.seq, OLD.size_bytes, OLD.content_hash, OLD.duplicate_of)
          IS DISTINCT FROM (NEW.operation_id, NEW.seq, NEW.size_bytes, NEW.content_hash, NEW.duplicate_of))
    EXECUTE FUNCTION file_records_regroup_row();

CREATE FUNCTION file_records_truncate_duplicate_groups() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE duplicate_groups, duplicate_group_totals;
    RETURN NULL;
END
$$;
CREATE TRIGGER file_records_truncated_duplicate_groups
    AFTER TRUNCATE ON file_records
    FOR EACH STATEMENT EXECUTE FUNCTION file_records_truncate_duplicate_groups();

-- The journals already written (those with duplicates; the others have no
-- groups).
SELECT refresh_duplicate_groups(o.id) FROM operations o
WHERE EXISTS (SELECT 1 FROM file_records f WHERE f.operation_id = o.id AND f.duplicate_of IS NOT NULL);

-- 2. SearchFiles lists a user's matching records newest first. The trigram
--    index finds every match (~50,000 for a common word at 1M records), all
--    of which were fetched, rechecked and sorted to keep 51. With the owner on
--    each record, one btree serves "this user's records in listing order", so
--    the planner can walk it newest first and stop after a page of matches
--    (common words) or still take the trigram bitmap (rare ones). The owner
--    has to be on the record: an index ordered by time alone makes a user's
--    search walk every newer record of every other user (measured: 8 s).
--    write_journal copies it from the operation; an operation never changes
--    owner.
ALTER TABLE file_records ADD COLUMN user_id uuid;
-- Backfill: rebuilding the trigram index once is far cheaper than updating
-- it row by row, so it is dropped and created again with its definition from
-- migration 000009.
DROP INDEX file_records_names_trgm_idx;
UPDATE file_records f SET user_id = o.user_id FROM operations o WHERE o.id = f.operation_id;
CREATE INDEX file_records_names_trgm_idx ON file_records
    USING gin (file_record_names(original_path, new_path) gin_trgm_ops);
ALTER TABLE file_records ALTER COLUMN user_id SET NOT NULL;
CREATE INDEX file_records_user_newest_idx ON file_records (user_id, created_at, operation_id, seq);
