DROP INDEX operations_user_started_idx;
DROP INDEX operations_held_idx;
DROP INDEX operations_pending_user_idx;
