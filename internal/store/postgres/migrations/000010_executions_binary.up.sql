-- Output is bytes: a NUL or invalid UTF-8 from a sandbox must not fail the write.
ALTER TABLE executions ALTER COLUMN stdout DROP DEFAULT, ALTER COLUMN stderr DROP DEFAULT;
ALTER TABLE executions ALTER COLUMN stdout TYPE BYTEA USING convert_to(stdout, 'UTF8'),
    ALTER COLUMN stderr TYPE BYTEA USING convert_to(stderr, 'UTF8');
ALTER TABLE executions ALTER COLUMN stdout SET DEFAULT '', ALTER COLUMN stderr SET DEFAULT '';
CREATE INDEX executions_task ON executions (task_id) WHERE task_id <> '';
