CREATE INDEX file_records_content_hash_idx ON file_records (content_hash)
    WHERE content_hash IS NOT NULL;
DROP INDEX file_names_content_hash_idx;
ALTER TABLE file_names DROP COLUMN content_hash;
