-- When each row was last written (ms), by the consumer or a rebuild: a rebuild replaces rows in place and, once the
-- change feed is read to its end, deletes only the rows nobody wrote since it began (payments Cosmos no longer has).
ALTER TABLE payments ADD COLUMN written_at INTEGER NOT NULL DEFAULT 0;
