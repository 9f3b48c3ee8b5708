-- How long the events queue's messages waited, as its consumer last saw it (one row). The payments' recovery timers
-- (redelivery, watchdog) wait at least twice this long, so a slow queue is not mistaken for a lost message.
CREATE TABLE queue_health (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  lag_ms INTEGER NOT NULL,
  observed_at INTEGER NOT NULL
);
