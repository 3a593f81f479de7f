-- The W3C traceparent of the request that created the operation (issue 23):
-- the worker that runs the job makes its spans children of it, so one trace
-- shows CreateOperation and the job's phases (infra::otel). NULL when tracing
-- was off or nothing traced the creation (the automations' scheduler).
ALTER TABLE operations ADD COLUMN trace_parent text;
