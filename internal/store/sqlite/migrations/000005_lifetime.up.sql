-- Sandbox lifetime: an absolute deadline, an idle timeout measured from the
-- last exec or file transfer, and what to do on expiry.
ALTER TABLE vms ADD COLUMN expires_at BIGINT;
ALTER TABLE vms ADD COLUMN idle_timeout_s BIGINT NOT NULL DEFAULT 0;
ALTER TABLE vms ADD COLUMN last_active_at BIGINT;
ALTER TABLE vms ADD COLUMN on_expire TEXT NOT NULL DEFAULT 'delete';
