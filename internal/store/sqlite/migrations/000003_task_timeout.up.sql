-- Each task's own timeout (a create that installs tools runs longer); 0 means its type's default.
ALTER TABLE tasks ADD COLUMN timeout_ms BIGINT NOT NULL DEFAULT 0;
