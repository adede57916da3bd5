-- A checkout takes its two calls' rows at once, but sends its second call only once DHMAD has
-- answered the first: with a slow DHMAD, later than the row says. Each row now names its taker
-- (`taken_by`), so that a call sent late can date its own row again when it is sent, and the
-- row is not reused while that call is still inside DHMAD's window.
ALTER TABLE dhmad_budget ADD COLUMN taken_by UUID;

-- `take_dhmad_budget` with the taker's mark (NULL: nobody will date them again). Same rule as
-- before (20261202010000_dhmad_budget.sql, in PL/pgSQL since 20261203010000).
CREATE FUNCTION take_dhmad_budget(n integer, reuse_after_ms bigint, jump_queue boolean,
                                  reserve integer, taker uuid)
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
        UPDATE dhmad_budget b SET used_at = clock_timestamp(), taken_by = taker
        FROM pick
        WHERE b.slot = pick.slot
          AND (SELECT count(*) FROM pick) = n
          AND (jump_queue OR NOT EXISTS (SELECT 1 FROM checkout_queue))
          AND (reserve = 0
               OR (SELECT used_at FROM dhmad_budget ORDER BY used_at OFFSET reserve + n - 1 LIMIT 1)
                  <= now() - reuse_after_ms * interval '1 millisecond')
        RETURNING 1)
    SELECT count(*) INTO taken_rows FROM taken;
    RETURN taken_rows = n;
END
$$;

-- The four-argument form stays for instances of the previous release during a rolling
-- deploy; it leaves no mark.
CREATE OR REPLACE FUNCTION take_dhmad_budget(n integer, reuse_after_ms bigint, jump_queue boolean,
                                             reserve integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN take_dhmad_budget(n, reuse_after_ms, jump_queue, reserve, NULL::uuid);
END
$$;
