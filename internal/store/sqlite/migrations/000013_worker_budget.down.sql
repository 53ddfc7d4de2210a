ALTER TABLE workers DROP COLUMN vcpus;
ALTER TABLE workers DROP COLUMN memory_mb;
