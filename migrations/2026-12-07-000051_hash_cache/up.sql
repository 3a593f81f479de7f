-- The persistent hash cache (issue 24 item 5): a second organize, dedupe or
-- automatic run over an unchanged tree reads no file content.
--
-- One row per file (device, inode) a user's hash phase read, with the key it
-- was read under: size, mtime and ctime in nanoseconds. A row is used only
-- when the whole key equals the scan's for the same user
-- (`engine::hash_cache` says why that is enough, and when a hash is kept at
-- all). The primary key makes a changed file overwrite its row; rows of files
-- no longer seen expire (`seen_at`, refreshed at most daily on a hit; pruned
-- after HASH_CACHE_DAYS by each of the user's runs), so the table holds at
-- most the inodes a user's runs saw in that window. Advisory: losing a row
-- only costs a re-hash.
CREATE TABLE hash_cache (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    dev bigint NOT NULL,
    ino bigint NOT NULL,
    size bigint NOT NULL,
    mtime_ns bigint NOT NULL,
    ctime_ns bigint NOT NULL,
    head_hash bytea CHECK (octet_length(head_hash) = 32),
    full_hash bytea CHECK (octet_length(full_hash) = 32),
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, dev, ino),
    CHECK (head_hash IS NOT NULL OR full_hash IS NOT NULL)
);

CREATE INDEX hash_cache_seen_at_idx ON hash_cache (user_id, seen_at);

-- Bytes of file content the operation's hash phase read (0 when every hash
-- came from the cache). Not in the API: for tests, benchmarks and operators.
ALTER TABLE operations ADD COLUMN bytes_hashed bigint NOT NULL DEFAULT 0;
