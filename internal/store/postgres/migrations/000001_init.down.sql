DROP TABLE executions;
DROP TABLE jobs;
DROP TABLE tasks;
DROP TABLE vms;
DROP TABLE workers;
DROP TABLE projects;
