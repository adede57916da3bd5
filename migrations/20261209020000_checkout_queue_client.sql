-- Each checkout waiting in line names the client that sent it (its rate-limit key: an address,
-- an IPv6 /64; NULL when no request did, as for one put back by the reconciler), and the line
-- serves clients in turn: every client's first checkout, then every client's second, and so on,
-- each round first come first served. First come first served alone let a few addresses,
-- each within its rate limit, keep the line full of their own checkouts, and a buyer waited
-- behind all of them.
ALTER TABLE checkout_queue ADD COLUMN client_key TEXT;
CREATE INDEX checkout_queue_by_client ON checkout_queue (client_key, queued_at);
