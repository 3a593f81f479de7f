-- Accounts. Emails are stored normalized (trimmed, lower-case), so the plain
-- unique constraint is the case-insensitive uniqueness the API promises.
CREATE TABLE users (
    id                  uuid PRIMARY KEY,
    email               text NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash       text NOT NULL,
    display_name        text NOT NULL DEFAULT '',
    role                text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    disabled            boolean NOT NULL DEFAULT false,
    storage_used_bytes  bigint NOT NULL DEFAULT 0 CHECK (storage_used_bytes >= 0),
    storage_quota_bytes bigint NOT NULL DEFAULT 5368709120 CHECK (storage_quota_bytes >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    last_login_at       timestamptz
);
