-- DHMAD's rate limit as one budget shared by every instance on this database: one row per call
-- its sliding minute allows (`DHMAD_RATE_LIMIT`, rows added or removed at start). A call takes
-- the row used longest ago, if that was a whole window ago; so no window ever holds more calls
-- than the limit, whichever instance made them.
CREATE TABLE dhmad_budget (
    slot     INTEGER PRIMARY KEY CHECK (slot >= 0),
    -- Never used: long ago (a finite time, which every client library can read).
    used_at  TIMESTAMPTZ NOT NULL DEFAULT 'epoch'
);
CREATE INDEX dhmad_budget_oldest ON dhmad_budget (used_at);

-- Checkouts waiting for DHMAD's budget, first come first served: the buyer waits on a page that
-- refreshes itself while a worker (any instance) makes the calls as the budget frees up.
CREATE TABLE checkout_queue (
    order_id       UUID PRIMARY KEY REFERENCES orders (id),
    queued_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    -- A worker is making this order's calls until then (a dead worker's claim runs out).
    claimed_until  TIMESTAMPTZ
);
CREATE INDEX checkout_queue_fifo ON checkout_queue (queued_at);
