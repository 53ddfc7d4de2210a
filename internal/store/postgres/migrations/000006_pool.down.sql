DROP INDEX vms_pool;
ALTER TABLE templates DROP COLUMN pool_size;
