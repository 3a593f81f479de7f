-- The fair job queue (issue 24 item 4; db::operations::claim). A worker
-- takes, among the users with a claimable job, the user whose last job
-- started longest ago (never: first), and that user's oldest claimable job.
-- The claim walks the waiting users, not the queued jobs: with 10,000 jobs
-- queued by 100 users it reads ~1,300 buffers (BENCHMARKS.md, "Many tenants
-- at once").
--
-- Each user's queue, in creation order: the claim skips from one waiting
-- user to the next on it and reads the head of each user's queue from it.
-- The predicate is OperationState::RUNNABLE, written out as the claim
-- writes it.
CREATE INDEX operations_pending_user_idx ON operations (user_id, created_at)
    WHERE state IN ('queued', 'running', 'applying', 'cancelling');
-- The jobs a worker holds (a handful: one per busy worker, plus those of
-- dead workers): "does this user already have a job held by a live worker"
-- without reading every job the user queued.
CREATE INDEX operations_held_idx ON operations (user_id)
    WHERE worker_id IS NOT NULL AND state IN ('queued', 'running', 'applying', 'cancelling');
-- Each user's turn: the start of their most recent job, max(started_at),
-- one step down this index per waiting user.
CREATE INDEX operations_user_started_idx ON operations (user_id, started_at DESC)
    WHERE started_at IS NOT NULL;
