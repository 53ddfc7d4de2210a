ALTER TABLE vms DROP COLUMN ip_address;
