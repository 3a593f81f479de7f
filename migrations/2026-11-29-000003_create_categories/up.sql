-- Categories: built-in ones (user_id NULL, read-only) and per-user custom
-- rules matched by extension or glob. Names are unique per owner,
-- case-insensitively.
CREATE TABLE categories (
    id         uuid PRIMARY KEY,
    user_id    uuid REFERENCES users (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    extensions text[] NOT NULL DEFAULT '{}',
    globs      text[] NOT NULL DEFAULT '{}',
    color      text,
    icon       text,
    priority   integer NOT NULL DEFAULT 0,
    built_in   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (built_in = (user_id IS NULL))
);
CREATE UNIQUE INDEX categories_owner_name_key
    ON categories (user_id, lower(name)) NULLS NOT DISTINCT;
