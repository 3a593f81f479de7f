DROP INDEX IF EXISTS file_records_duplicate_of_idx;
