-- Security-relevant events: who did what, when, from where, and how it ended.
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    user_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    action     text NOT NULL,
    target     text,
    outcome    text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    client_ip  text,
    request_id text,
    detail     jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created_at_idx ON audit_log (created_at DESC);
CREATE INDEX audit_log_user_id_created_at_idx ON audit_log (user_id, created_at DESC);
