DROP TABLE operation_memos;
