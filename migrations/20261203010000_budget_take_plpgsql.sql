-- `take_dhmad_budget` in PL/pgSQL, same rule and body. A SQL-language function that cannot be
-- inlined is parsed and planned on every call (PostgreSQL before 18): about 0.3 ms of every
-- checkout here. PL/pgSQL keeps its plan per connection. Its generic plan keeps the index walks
-- (the candidates are still capped by a constant).
CREATE OR REPLACE FUNCTION take_dhmad_budget(n integer, reuse_after_ms bigint, jump_queue boolean,
                                             reserve integer)
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
        UPDATE dhmad_budget b SET used_at = clock_timestamp()
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
