-- How an execution ran its command: true through /bin/sh -c, false as the
-- program with its args. No default: rows recorded before this column stay
-- NULL (unknown), never a made-up value.
ALTER TABLE executions ADD COLUMN shell BOOLEAN;
