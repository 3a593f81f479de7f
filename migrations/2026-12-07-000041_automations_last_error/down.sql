ALTER TABLE automations DROP COLUMN last_error;
