-- SearchFiles by content hash moves into the search index too.
--
-- `file_records_content_hash_idx` was the costliest index of the journal's
-- COPY: a million random inserts of 32-byte keys, +2.7 to 3.4 s of a 6.6 s
-- COPY of 1M rows (BENCHMARKS.md, round 6), for one query (SearchFiles with a
-- content hash, "where else do I have this file?"). The hash is written once,
-- with the journal, and never changes, so it can be indexed later like the
-- names: the background task that copies an operation's names after its job
-- (`db::file_names::index_next`) copies its content hashes in the same
-- statement, and SearchFiles matches a pending operation's records by
-- `file_records.content_hash` directly, as it does their names.

ALTER TABLE file_names ADD COLUMN content_hash bytea;

UPDATE file_names n SET content_hash = f.content_hash
FROM file_records f
WHERE f.operation_id = n.operation_id AND f.seq = n.seq AND f.content_hash IS NOT NULL;

CREATE INDEX file_names_content_hash_idx ON file_names (content_hash)
    WHERE content_hash IS NOT NULL;

DROP INDEX file_records_content_hash_idx;

ANALYZE file_names;
