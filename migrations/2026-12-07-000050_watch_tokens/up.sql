-- Watch tokens (issue 22): single-use, short-lived permissions to watch one
-- operation without credentials, for a browser's EventSource
-- (CreateWatchToken, `auth::watch_tokens`). Only the blake3 hash of a token
-- is stored. A token is redeemed by deleting its row (DELETE … RETURNING), so
-- two calls presenting the same token cannot both get it. Expired rows are
-- swept when tokens are issued.
CREATE TABLE watch_tokens (
    token_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    operation_id uuid NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX watch_tokens_expires_at ON watch_tokens (expires_at);
