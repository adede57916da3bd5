-- The storefront's whole schema. Invariants live in constraints, not in application checks.

-- The catalog. `mode` is the DHMAD escrow mode the product is sold with: `instant` for goods we
-- hand over ourselves at once (digital), `quick` for shipped goods the buyer confirms.
CREATE TABLE products (
    sku                     TEXT PRIMARY KEY CHECK (sku ~ '^[a-z0-9][a-z0-9-]{1,63}$'),
    name                    TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    description             TEXT NOT NULL DEFAULT '',
    price                   NUMERIC(12, 3) NOT NULL CHECK (price > 0),
    currency                TEXT NOT NULL DEFAULT 'TND' CHECK (currency IN ('TND', 'USD', 'EUR')),
    mode                    TEXT NOT NULL CHECK (mode IN ('instant', 'quick')),
    estimated_delivery_days INTEGER CHECK (estimated_delivery_days >= 1),
    active                  BOOLEAN NOT NULL DEFAULT TRUE,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- DHMAD requires a delivery estimate for quick escrows.
    CHECK (mode <> 'quick' OR estimated_delivery_days IS NOT NULL)
);

INSERT INTO products (sku, name, description, price, currency, mode, estimated_delivery_days) VALUES
    ('ai-credits-500', 'AI credits — 500',
     'Five hundred credits for the image generator, delivered as a code the moment you pay.',
     15.000, 'TND', 'instant', NULL),
    ('chechia-red', 'Chéchia, red wool (handmade)',
     'A traditional Tunisian chéchia, felted by hand in the souk of Tunis. Shipped in 3–5 days.',
     45.000, 'TND', 'quick', 5);

-- One row per purchase attempt. The id is a random UUID so an order page cannot be guessed.
CREATE TABLE orders (
    id                        UUID PRIMARY KEY,
    sku                       TEXT NOT NULL REFERENCES products (sku),
    mode                      TEXT NOT NULL CHECK (mode IN ('instant', 'quick')),
    buyer_email               TEXT NOT NULL,
    amount                    NUMERIC(12, 3) NOT NULL CHECK (amount > 0),
    currency                  TEXT NOT NULL,
    status                    TEXT NOT NULL CHECK (status IN (
                                  'new', 'creating_escrow', 'escrow_failed', 'needs_reconciliation',
                                  'awaiting_payment', 'paid', 'delivered', 'completed',
                                  'cancelled', 'disputed')),
    escrow_id                 TEXT UNIQUE,
    -- DHMAD's status string exactly, and the `updatedAt` of the snapshot it came from: a snapshot
    -- older than this one is never applied.
    escrow_status             TEXT,
    escrow_updated_at         TIMESTAMPTZ,
    failure_reason            TEXT,
    deposit_rejection_reason  TEXT,
    digital_code              TEXT,
    -- When we last heard about the escrow (webhook, callback or reconciler).
    last_synced_at            TIMESTAMPTZ,
    -- When an escrow creation was last attempted; the reconciler waits before judging it.
    escrow_attempted_at       TIMESTAMPTZ,
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- At most one open (unpaid) order per buyer and product: a repeated checkout reuses it.
CREATE UNIQUE INDEX orders_one_open_per_buyer_sku ON orders (sku, buyer_email)
    WHERE status IN ('new', 'creating_escrow', 'escrow_failed', 'needs_reconciliation', 'awaiting_payment');
CREATE INDEX orders_reconcile ON orders (last_synced_at)
    WHERE escrow_id IS NOT NULL AND status NOT IN ('completed', 'cancelled');
CREATE INDEX orders_created ON orders (created_at DESC);

-- Every DHMAD checkout session we opened. The primary key makes one order per session.
CREATE TABLE checkout_sessions (
    session_id  TEXT PRIMARY KEY,
    order_id    UUID NOT NULL REFERENCES orders (id),
    escrow_id   TEXT NOT NULL,
    action      TEXT NOT NULL,
    url         TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX checkout_sessions_order ON checkout_sessions (order_id, created_at DESC);
CREATE INDEX checkout_sessions_pending ON checkout_sessions (expires_at) WHERE status = 'pending';

-- Each webhook event exactly once, as received (after signature verification).
CREATE TABLE webhook_inbox (
    event_id     TEXT PRIMARY KEY,
    event_type   TEXT NOT NULL,
    escrow_id    TEXT,
    order_id     UUID REFERENCES orders (id),
    outcome      TEXT NOT NULL CHECK (outcome IN ('processed', 'ignored', 'unmatched')),
    payload      JSONB NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_inbox_unmatched ON webhook_inbox (received_at) WHERE outcome = 'unmatched';

-- The order's timeline, shown to the buyer and the back office.
CREATE TABLE order_events (
    id          BIGSERIAL PRIMARY KEY,
    order_id    UUID NOT NULL REFERENCES orders (id),
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX order_events_order ON order_events (order_id, id);

-- Follow-up work committed with the state change that caused it (transactional outbox).
CREATE TABLE outbox_jobs (
    id          BIGSERIAL PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('deliver')),
    order_id    UUID NOT NULL REFERENCES orders (id),
    payload     JSONB NOT NULL DEFAULT '{}',
    attempts    INTEGER NOT NULL DEFAULT 0,
    run_after   TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at     TIMESTAMPTZ,
    last_error  TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One open job of a kind per order, so a replayed transition cannot queue a second call.
CREATE UNIQUE INDEX outbox_jobs_one_open ON outbox_jobs (kind, order_id) WHERE done_at IS NULL;
CREATE INDEX outbox_jobs_due ON outbox_jobs (run_after) WHERE done_at IS NULL;
