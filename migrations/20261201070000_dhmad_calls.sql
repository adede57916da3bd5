-- Every DHMAD call made for an order, with its status and latency, for the back office's
-- order page (the per-endpoint totals are in /metrics).
CREATE TABLE dhmad_calls (
    id           BIGSERIAL PRIMARY KEY,
    order_id     UUID NOT NULL REFERENCES orders (id),
    method       TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    -- NULL: no answer (timeout or transport error).
    status       INTEGER,
    duration_ms  INTEGER NOT NULL,
    at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX dhmad_calls_order ON dhmad_calls (order_id, id);
