-- Guest IP addresses handed to microVMs, per subnet. The primary key is what
-- makes two sandboxes never share an address, across restarts and workers.
CREATE TABLE addresses (
    subnet     TEXT NOT NULL,
    address    TEXT NOT NULL,
    vm_id      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (subnet, address),
    UNIQUE (subnet, vm_id)
);
