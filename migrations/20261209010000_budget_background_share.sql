-- Background work (the outbox's delivers, the reconciler, the sweeper) took DHMAD's calls only
-- while no checkout waited in line. Anyone who kept the line from emptying (a flash sale that
-- lasts, or a stranger sending a checkout every second from a few addresses) held back every
-- paid order's deliver and every repair of a lost webhook for as long as it lasted. Background
-- work now has a share of each window it may take even while buyers wait: rows it took are
-- marked, and while fewer than `share` of them lie inside the window it takes any free row.
-- Buyers still come first for everything beyond the share.
ALTER TABLE dhmad_budget ADD COLUMN background boolean NOT NULL DEFAULT false;

-- `share`: 0 for buyers (their rows are not marked); for background work, the rows of a window
-- it may take while checkouts wait (with none waiting, it leaves `reserve` rows free as before). Concurrent takers may each see the share unspent: it can be
-- passed by as many rows as background takers run at once, never the window's limit, which the
-- row locks alone hold.
CREATE FUNCTION take_dhmad_budget(n integer, reuse_after_ms bigint, jump_queue boolean,
                                  reserve integer, taker uuid, share integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    taken_rows integer;
BEGIN
    WITH free AS (
        SELECT slot, used_at FROM dhmad_budget
        WHERE used_at <= now() - reuse_after_ms * interval '1 millisecond'
        ORDER BY used_at LIMIT 2 FOR UPDATE SKIP LOCKED),
    pick AS (
        SELECT slot FROM free ORDER BY used_at LIMIT n),
    taken AS (
        UPDATE dhmad_budget b
           SET used_at = clock_timestamp(), taken_by = taker, background = share > 0
        FROM pick
        WHERE b.slot = pick.slot
          AND (SELECT count(*) FROM pick) = n
          AND (jump_queue
               OR (NOT EXISTS (SELECT 1 FROM checkout_queue)
                   AND (reserve = 0
                        OR (SELECT used_at FROM dhmad_budget ORDER BY used_at
                             OFFSET reserve + n - 1 LIMIT 1)
                           <= now() - reuse_after_ms * interval '1 millisecond'))
               OR (share > 0
                   AND EXISTS (SELECT 1 FROM checkout_queue)
                   AND (SELECT count(*) FROM dhmad_budget
                         WHERE background
                           AND used_at > now() - reuse_after_ms * interval '1 millisecond')
                       + n <= share))
        RETURNING 1)
    SELECT count(*) INTO taken_rows FROM taken;
    RETURN taken_rows = n;
END
$$;

-- The older forms stay for instances of the previous releases during a rolling deploy; they
-- take no share, and their rows are buyers'.
CREATE OR REPLACE FUNCTION take_dhmad_budget(n integer, reuse_after_ms bigint, jump_queue boolean,
                                             reserve integer, taker uuid)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN take_dhmad_budget(n, reuse_after_ms, jump_queue, reserve, taker, 0);
END
$$;

CREATE OR REPLACE FUNCTION take_dhmad_budget(n integer, reuse_after_ms bigint, jump_queue boolean,
                                             reserve integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN take_dhmad_budget(n, reuse_after_ms, jump_queue, reserve, NULL::uuid, 0);
END
$$;
