ALTER TABLE file_records DROP COLUMN taken_from_metadata;
