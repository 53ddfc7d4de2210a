ALTER TABLE vms DROP COLUMN on_expire;
ALTER TABLE vms DROP COLUMN last_active_at;
ALTER TABLE vms DROP COLUMN idle_timeout_s;
ALTER TABLE vms DROP COLUMN expires_at;
