DROP INDEX executions_task;
ALTER TABLE executions ALTER COLUMN stdout DROP DEFAULT, ALTER COLUMN stderr DROP DEFAULT;
ALTER TABLE executions ALTER COLUMN stdout TYPE TEXT USING convert_from(stdout, 'UTF8'),
    ALTER COLUMN stderr TYPE TEXT USING convert_from(stderr, 'UTF8');
ALTER TABLE executions ALTER COLUMN stdout SET DEFAULT '', ALTER COLUMN stderr SET DEFAULT '';
