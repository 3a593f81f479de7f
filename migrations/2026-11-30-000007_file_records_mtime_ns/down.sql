ALTER TABLE file_records DROP COLUMN mtime_ns;
