ALTER TABLE vms DROP COLUMN tools_installed;
