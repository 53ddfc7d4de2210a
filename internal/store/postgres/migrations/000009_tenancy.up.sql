-- Quotas per project: 0 means no limit.
ALTER TABLE projects ADD COLUMN max_sandboxes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN max_vcpus INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN max_memory_mb INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN max_templates INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN max_pool_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN max_execs INTEGER NOT NULL DEFAULT 0;

-- API keys: only a hash of the secret is kept; prefix tells keys apart.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects (id),
    name         TEXT NOT NULL DEFAULT '',
    prefix       TEXT NOT NULL UNIQUE,
    hash         TEXT NOT NULL,
    role         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_project ON api_keys (project_id);

-- Who did what to which object, and when.
CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    key_prefix  TEXT NOT NULL,
    project_id  TEXT NOT NULL,
    action      TEXT NOT NULL,
    object      TEXT NOT NULL DEFAULT '',
    status      INTEGER NOT NULL
);
CREATE INDEX audit_log_project_at ON audit_log (project_id, at);
