-- The journal's link to its operation is kept without a foreign key.
--
-- The foreign key checked each journal row against `operations` as it was
-- copied: one row-level RI trigger per record, 4.3 s of a 1M-row COPY that
-- otherwise takes 7.0 s with the table's four indexes (BENCHMARKS.md, round 5).
-- Its two guarantees are kept another way:
-- * no record without its operation: the journal's only writer
--   (`write_journal_stream`) locks the operation row `FOR KEY SHARE`, as the
--   foreign key's check did for each row, once, in the journal's transaction,
--   so the operation exists at commit and cannot be deleted meanwhile;
-- * deleting an operation (or its user) deletes its records: the triggers
--   below, once per statement (the service itself never deletes operations;
--   this is for an administrator's SQL).
-- src/schema.rs keeps `joinable!(file_records -> operations)` by hand.
ALTER TABLE file_records DROP CONSTRAINT file_records_operation_id_fkey;

CREATE FUNCTION operations_deleted_file_records() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM file_records f USING gone g WHERE f.operation_id = g.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER operations_deleted_file_records
    AFTER DELETE ON operations REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION operations_deleted_file_records();

CREATE FUNCTION operations_truncated_file_records() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE file_records;
    RETURN NULL;
END
$$;
CREATE TRIGGER operations_truncated_file_records
    AFTER TRUNCATE ON operations
    FOR EACH STATEMENT EXECUTE FUNCTION operations_truncated_file_records();
