-- The payments list: one row per payment, the newest state relayed (rows only move forward by version).
CREATE TABLE payments (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL,
  status TEXT NOT NULL,
  amount REAL NOT NULL,
  currency TEXT NOT NULL,
  initiated_at TEXT NOT NULL,
  initiated_ms INTEGER NOT NULL,
  updated_at TEXT NOT NULL,
  version INTEGER NOT NULL,
  stalled INTEGER NOT NULL DEFAULT 0,
  refunded_amount REAL NOT NULL DEFAULT 0
);
-- Newest first per merchant, with the id breaking ties: the listing's order and its cursor.
CREATE INDEX payments_by_merchant ON payments (merchant_id, initiated_ms DESC, id DESC);
