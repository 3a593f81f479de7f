ALTER TABLE file_records DROP COLUMN ctime_ns;
