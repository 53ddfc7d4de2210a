DROP INDEX executions_task;
