DROP TRIGGER operations_truncated_file_records ON operations;
DROP FUNCTION operations_truncated_file_records();
DROP TRIGGER operations_deleted_file_records ON operations;
DROP FUNCTION operations_deleted_file_records();
DELETE FROM file_records f WHERE NOT EXISTS (SELECT 1 FROM operations o WHERE o.id = f.operation_id);
ALTER TABLE file_records ADD CONSTRAINT file_records_operation_id_fkey
    FOREIGN KEY (operation_id) REFERENCES operations (id) ON DELETE CASCADE;
