-- Answers computed from an operation's whole journal, kept while the journal
-- is at rest: computed once per version of the operation instead of once per
-- request (`db::memos`, `api::memo`).
--
-- Two kinds so far: GetOperationReport's report (three scans of the
-- operation's records: about 1 s at 1,000,000 records on an idle machine) and
-- ListFileRecords' counts per status for one set of filters (one scan, which
-- every page used to repeat: 2.4 s a page under the load test's mix at 1M).
-- `version` names what a value was computed from: the operation's
-- `updated_at` and that of its latest undo (at rest, the only writers of an
-- operation's records are its own apply and undo jobs, and each moves one of
-- the two). A row whose version no longer matches is recomputed and
-- overwritten.
CREATE TABLE operation_memos (
    operation_id uuid NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    kind text NOT NULL,
    version text NOT NULL,
    value bytea NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operation_id, kind)
);
