-- The sandbox's egress policy (egress.Policy text: internet, none or an allowlist); '' means the worker's default.
ALTER TABLE vms ADD COLUMN egress TEXT NOT NULL DEFAULT '';
