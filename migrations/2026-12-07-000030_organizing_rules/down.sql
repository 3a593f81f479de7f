ALTER TABLE file_records DROP COLUMN rule_id, DROP COLUMN rule_version;
ALTER TABLE operations DROP COLUMN rule_set_version;
DROP TABLE rule_sets;
DROP TABLE rules;
