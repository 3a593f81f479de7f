-- How long each phase of an operation took, by its workers' clocks, as an
-- object of seconds keyed by phase name ({"scan": 2.61, "hash": 8.07, ...}).
-- Written by the job at each phase change (`jobs::timings`); served as
-- `Operation.phase_durations`. A constant default: no table rewrite.
ALTER TABLE operations ADD COLUMN phase_seconds jsonb NOT NULL DEFAULT '{}'::jsonb;
