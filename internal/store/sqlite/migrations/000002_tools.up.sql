-- What each tool step actually installed (tool -> exact version).
ALTER TABLE vms ADD COLUMN tools_installed TEXT NOT NULL DEFAULT '{}';
