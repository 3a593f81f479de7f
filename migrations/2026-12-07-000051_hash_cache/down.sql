ALTER TABLE operations DROP COLUMN bytes_hashed;
DROP TABLE hash_cache;
