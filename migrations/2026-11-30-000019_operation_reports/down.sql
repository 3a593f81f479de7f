DROP TABLE operation_reports;
