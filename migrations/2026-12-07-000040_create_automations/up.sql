-- Automations (issue 21): an operation that starts by itself when its trigger
-- fires (`jobs::automations`, docs/triggers.md).
--
-- The scheduler's whole state is here, so that any number of server and
-- worker processes share it: a row is due when `next_run_at` has passed; a
-- process fires it inside one transaction that locks the row
-- (`FOR UPDATE SKIP LOCKED`), inserts the operation and moves `next_run_at`
-- on, so each due firing creates exactly one operation.
--
-- trigger_kind: schedule (cron + time_zone), arrival (uploads into
-- folder_path) or watched_folder (folder_path changed on disk). The
-- operation to create is stored like an operation's own settings (kind,
-- paths, dry_run, options).
CREATE TABLE automations (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    display_name       text NOT NULL DEFAULT '',
    trigger_kind       text NOT NULL,
    cron               text,
    time_zone          text,
    folder_path        text,
    quiet_period_ms    bigint NOT NULL,
    kind               text NOT NULL,
    source_path        text NOT NULL,
    destination_path   text NOT NULL,
    dry_run            boolean NOT NULL,
    options            jsonb NOT NULL,
    paused             boolean NOT NULL DEFAULT false,
    -- When it fires next (NULL: nothing due).
    next_run_at        timestamptz,
    -- The first arrival or change not yet organized (caps the quiet period).
    pending_since      timestamptz,
    -- Watched folders: what the last rescan saw (`storage::fingerprint`).
    folder_fingerprint text,
    last_run_at        timestamptz,
    last_operation_id  uuid REFERENCES operations (id) ON DELETE SET NULL,
    run_count          bigint NOT NULL DEFAULT 0,
    -- The etag: bumped by every update through the API.
    version            bigint NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX automations_user_idx ON automations (user_id, created_at, id);
CREATE INDEX automations_due_idx ON automations (next_run_at)
    WHERE NOT paused AND next_run_at IS NOT NULL;

-- What started each operation; the automation's id stays after the
-- automation is deleted (no foreign key).
ALTER TABLE operations
    ADD COLUMN trigger_kind text NOT NULL DEFAULT 'manual',
    ADD COLUMN automation_id uuid;
CREATE INDEX operations_automation_idx ON operations (automation_id, created_at DESC, id DESC)
    WHERE automation_id IS NOT NULL;
