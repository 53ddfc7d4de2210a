-- Public preview tokens: each opens one port of one sandbox at its preview host
-- ({port}-{sandbox}.{api.preview_domain}) without an API key. Only a hash of the secret is kept;
-- revoking deletes the row, and so does deleting the sandbox.
CREATE TABLE preview_tokens (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL,
    vm_id       TEXT NOT NULL,
    port        INTEGER NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX preview_tokens_vm ON preview_tokens (vm_id);
