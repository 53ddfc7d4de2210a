CREATE TABLE templates (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects (id),
    name            TEXT NOT NULL,
    status          TEXT NOT NULL,
    spec            TEXT NOT NULL,
    spec_hash       TEXT NOT NULL,
    image           TEXT NOT NULL DEFAULT '',
    tools_installed TEXT NOT NULL DEFAULT '{}',
    worker_id       TEXT NOT NULL DEFAULT '',
    task_id         TEXT NOT NULL DEFAULT '',
    error           TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX templates_project_name ON templates (project_id, name);
-- The template a sandbox was created from, if any.
ALTER TABLE vms ADD COLUMN template TEXT NOT NULL DEFAULT '';
