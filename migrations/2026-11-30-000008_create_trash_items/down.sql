DROP TABLE trash_items;
