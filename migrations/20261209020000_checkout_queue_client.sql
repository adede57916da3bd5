-- Each checkout waiting in line names the client that sent it (its rate-limit key: an address,
-- an IPv6 /64; NULL when no request did, as for one put back by the reconciler), and the line
-- serves clients in rounds: a checkout joins the round after its client's last one still in
-- line, and never a round the line has left behind, so every client's first checkout goes
-- before anyone's second. First come first served alone let a few addresses, each within its
-- rate limit, keep the line full of their own checkouts, and a buyer waited behind all of them.
-- The round is fixed when a checkout joins: counted from the rows still in line, a client's
-- second checkout became its first as soon as the first was served, older than the buyer's.
ALTER TABLE checkout_queue ADD COLUMN client_key TEXT;
ALTER TABLE checkout_queue ADD COLUMN round INTEGER NOT NULL DEFAULT 1;
CREATE INDEX checkout_queue_turns ON checkout_queue (round, queued_at, order_id);
CREATE INDEX checkout_queue_client_rounds ON checkout_queue (client_key, round);
