-- The sandbox's address on its network (container bridge or microVM TAP), for reaching services in it.
ALTER TABLE vms ADD COLUMN ip_address TEXT NOT NULL DEFAULT '';
