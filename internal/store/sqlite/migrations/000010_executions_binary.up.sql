-- Output is bytes (SQLite keeps whatever it is given); executions are found by task.
CREATE INDEX executions_task ON executions (task_id) WHERE task_id <> '';
