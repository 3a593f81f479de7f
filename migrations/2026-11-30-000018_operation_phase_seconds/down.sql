ALTER TABLE operations DROP COLUMN phase_seconds;
