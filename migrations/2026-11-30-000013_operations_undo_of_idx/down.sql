DROP INDEX operations_undo_of_idx;
