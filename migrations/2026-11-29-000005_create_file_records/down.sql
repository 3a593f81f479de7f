DROP TABLE file_records;
