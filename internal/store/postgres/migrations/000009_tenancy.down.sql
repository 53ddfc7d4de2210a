DROP TABLE audit_log;
DROP TABLE api_keys;
ALTER TABLE projects DROP COLUMN max_execs;
ALTER TABLE projects DROP COLUMN max_pool_size;
ALTER TABLE projects DROP COLUMN max_templates;
ALTER TABLE projects DROP COLUMN max_memory_mb;
ALTER TABLE projects DROP COLUMN max_vcpus;
ALTER TABLE projects DROP COLUMN max_sandboxes;
