DROP INDEX vms_project_created;
