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

-- Takes `n` calls of the budget (n <= 2: a checkout's two), all or none (true when taken): rows used
-- `reuse_after_ms` ago or longer, locked with SKIP LOCKED so concurrent takers never share
-- one. Who asks sets the priority (`db::budget::Claimant`): a new checkout may not jump the
-- line (`jump_queue`), background work leaves `reserve` rows free. "At least reserve + n rows
-- are free" is read as "the (reserve + n)-th oldest row is free": an index walk, not a count.
-- The candidates are capped by a constant (2), not by `n`: a SQL function is planned without
-- its arguments' values, and an unknown LIMIT makes the planner sort the whole table. Few
-- candidates also mean that concurrent takers, each skipping the rows the others hold, rarely
-- find too few.
CREATE FUNCTION take_dhmad_budget(n integer, reuse_after_ms bigint, jump_queue boolean,
                                  reserve integer)
RETURNS boolean LANGUAGE sql VOLATILE AS $$
    WITH free AS (
        SELECT slot, used_at FROM dhmad_budget
        WHERE used_at <= now() - reuse_after_ms * interval '1 millisecond'
        ORDER BY used_at LIMIT 2 FOR UPDATE SKIP LOCKED),
    pick AS (
        SELECT slot FROM free ORDER BY used_at LIMIT n),
    taken AS (
        UPDATE dhmad_budget b SET used_at = clock_timestamp()
        FROM pick
        WHERE b.slot = pick.slot
          AND (SELECT count(*) FROM pick) = n
          AND (jump_queue OR NOT EXISTS (SELECT 1 FROM checkout_queue))
          AND (reserve = 0
               OR (SELECT used_at FROM dhmad_budget ORDER BY used_at OFFSET reserve + n - 1 LIMIT 1)
                  <= now() - reuse_after_ms * interval '1 millisecond')
        RETURNING 1)
    SELECT count(*) = n FROM taken
$$;
