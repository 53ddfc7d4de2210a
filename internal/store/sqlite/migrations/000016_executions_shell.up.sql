-- How an execution ran its command: 1 through /bin/sh -c, 0 as the program
-- with its args. No default: rows recorded before this column stay NULL
-- (unknown), never a made-up value.
ALTER TABLE executions ADD COLUMN shell INTEGER;
