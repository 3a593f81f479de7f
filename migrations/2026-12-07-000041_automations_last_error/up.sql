-- Why an automation's latest run failed (issue 21): its operation could not
-- be created (the folder was removed, the request no longer holds) or it
-- ended FAILED. NULL when the latest run started and did not fail; cleared
-- when a later run's operation succeeds (`jobs::automations`).
ALTER TABLE automations ADD COLUMN last_error text;
