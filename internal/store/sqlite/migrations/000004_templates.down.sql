ALTER TABLE vms DROP COLUMN template;
DROP TABLE templates;
