ALTER TABLE executions DROP COLUMN shell;
