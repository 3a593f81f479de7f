DROP TABLE watch_tokens;
