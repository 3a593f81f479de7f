-- Duplicate groups (ReportService): a group is its kept record plus every
-- record whose `duplicate_of` names it. Grouping and listing a group's
-- members look records up by (operation_id, duplicate_of); only duplicates
-- are indexed, so the index stays as small as the groups.
CREATE INDEX file_records_duplicate_of_idx ON file_records (operation_id, duplicate_of)
    WHERE duplicate_of IS NOT NULL;
