CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
INSERT INTO projects (id, name, created_at) VALUES ('default', 'default', (extract(epoch FROM now()) * 1000000)::bigint);

CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL DEFAULT '',
    runtime      TEXT NOT NULL DEFAULT '',
    capacity     BIGINT NOT NULL DEFAULT 0,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

CREATE TABLE vms (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL REFERENCES projects (id),
    name             TEXT NOT NULL,
    status           TEXT NOT NULL,
    runtime          TEXT NOT NULL,
    runtime_id       TEXT NOT NULL DEFAULT '',
    worker_id        TEXT NOT NULL DEFAULT '',
    image            TEXT NOT NULL,
    vcpus            INTEGER NOT NULL,
    memory_mb        INTEGER NOT NULL,
    additional_tools TEXT NOT NULL DEFAULT '[]',
    tool_versions    TEXT NOT NULL DEFAULT '{}',
    error            TEXT NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
-- A name is unique among a project's live sandboxes; deleted ones free it.
CREATE UNIQUE INDEX vms_project_name ON vms (project_id, name) WHERE status <> 'deleted';

CREATE TABLE tasks (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects (id),
    type         TEXT NOT NULL,
    status       TEXT NOT NULL,
    priority     TEXT NOT NULL,
    vm_id        TEXT NOT NULL DEFAULT '',
    payload      TEXT NOT NULL DEFAULT '{}',
    result       TEXT NOT NULL DEFAULT '',
    progress     TEXT NOT NULL DEFAULT '',
    error        TEXT NOT NULL DEFAULT '',
    retry_count  BIGINT NOT NULL DEFAULT 0,
    max_retries  BIGINT NOT NULL DEFAULT 0,
    worker_id    TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    started_at   BIGINT,
    completed_at BIGINT
);
CREATE INDEX tasks_status_created ON tasks (status, created_at);

CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects (id),
    vm_id        TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    status       TEXT NOT NULL,
    commands     TEXT NOT NULL,
    error        TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    started_at   BIGINT,
    completed_at BIGINT
);

CREATE TABLE executions (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL REFERENCES projects (id),
    vm_id            TEXT NOT NULL,
    task_id          TEXT NOT NULL DEFAULT '',
    job_id           TEXT NOT NULL DEFAULT '',
    command          TEXT NOT NULL,
    args             TEXT NOT NULL DEFAULT '[]',
    exit_code        INTEGER,
    signal           TEXT NOT NULL DEFAULT '',
    timed_out        BOOLEAN NOT NULL DEFAULT false,
    error            TEXT NOT NULL DEFAULT '',
    stdout           TEXT NOT NULL DEFAULT '',
    stderr           TEXT NOT NULL DEFAULT '',
    stdout_truncated BOOLEAN NOT NULL DEFAULT false,
    stderr_truncated BOOLEAN NOT NULL DEFAULT false,
    started_at       BIGINT NOT NULL,
    completed_at     BIGINT,
    duration_ms      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX executions_vm ON executions (vm_id, started_at);
CREATE INDEX executions_job ON executions (job_id, started_at);
