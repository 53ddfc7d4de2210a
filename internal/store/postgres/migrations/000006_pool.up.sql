-- How many ready sandboxes of a template its worker keeps started.
ALTER TABLE templates ADD COLUMN pool_size BIGINT NOT NULL DEFAULT 0;
CREATE INDEX vms_pool ON vms (template, status);
