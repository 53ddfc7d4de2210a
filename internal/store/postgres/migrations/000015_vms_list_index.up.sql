-- Pages of GET /api/v1/vms walk a project's sandboxes in (created_at, id)
-- order; this index serves them without reading or sorting the others.
CREATE INDEX vms_project_created ON vms (project_id, created_at, id);
