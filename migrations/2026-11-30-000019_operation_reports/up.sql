-- GetOperationReport's answer for an operation at rest, computed once per
-- version of the operation instead of once per request.
--
-- A report aggregates the operation's whole journal (three scans of its
-- records: about 1 s at 1,000,000 records on an idle machine, far more under
-- load), and the in-process cache keeps it for only a second. `version` names
-- what the report was computed from: the operation's `updated_at` and that of
-- its latest undo (the only writers of an operation's records at rest are its
-- own apply and undo jobs, and each moves one of the two). A row whose version
-- no longer matches is simply recomputed and overwritten (`api::reports`).
CREATE TABLE operation_reports (
    operation_id uuid PRIMARY KEY REFERENCES operations (id) ON DELETE CASCADE,
    version text NOT NULL,
    report bytea NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now()
);
