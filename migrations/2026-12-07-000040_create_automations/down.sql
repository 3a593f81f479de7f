DROP INDEX operations_automation_idx;
ALTER TABLE operations DROP COLUMN automation_id, DROP COLUMN trigger_kind;
DROP TABLE automations;
