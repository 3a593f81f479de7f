ALTER TABLE file_records RESET (fillfactor);
