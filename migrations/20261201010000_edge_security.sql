-- The HTTP edge's security (see docs/ARCHITECTURE.md, "Security").

-- Who may continue an open order: the browser that started it (a hash of its HttpOnly cookie),
-- or the API client's Idempotency-Key (hashed), never whoever knows the buyer's e-mail. Orders
-- from before this migration belong to nobody and are never reused.
ALTER TABLE orders ADD COLUMN owner_key TEXT;
UPDATE orders SET owner_key = 'legacy:' || id::text;
ALTER TABLE orders ALTER COLUMN owner_key SET NOT NULL;
DROP INDEX orders_one_open_per_buyer_sku;
-- At most one open (unpaid) order per owner, product and buyer: a repeated checkout from the
-- same browser (or with the same key) reuses it. The list is `OrderStatus::OPEN`.
CREATE UNIQUE INDEX orders_one_open_per_owner ON orders (owner_key, sku, buyer_email)
    WHERE status IN ('new', 'creating_escrow', 'escrow_failed', 'needs_reconciliation', 'awaiting_payment');

-- An Idempotency-Key of `POST /api/checkout` is bound to the request it first came with: the same
-- key with another body is refused (422).
CREATE TABLE checkout_keys (
    key_hash     TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The callback asks DHMAD at most once per session per short interval.
ALTER TABLE checkout_sessions ADD COLUMN checked_at TIMESTAMPTZ;

-- E-mails to the buyer go through the outbox, committed with what they announce.
ALTER TABLE outbox_jobs DROP CONSTRAINT outbox_jobs_kind_check;
ALTER TABLE outbox_jobs ADD CONSTRAINT outbox_jobs_kind_check
    CHECK (kind IN ('deliver', 'email_confirmation', 'email_good'));

-- Back-office sessions: the browser holds a random id, the database its hash, expiry and
-- revocation. The admin token itself never travels in a cookie.
CREATE TABLE admin_sessions (
    id_hash      TEXT PRIMARY KEY,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    client_addr  TEXT NOT NULL
);

-- Failed back-office logins, for throttling by client address (shared by every instance).
CREATE TABLE admin_login_failures (
    id           BIGSERIAL PRIMARY KEY,
    client_addr  TEXT NOT NULL,
    at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX admin_login_failures_recent ON admin_login_failures (client_addr, at);

-- Every back-office action: who, when, what, from where. Append-only.
CREATE TABLE admin_audit (
    id           BIGSERIAL PRIMARY KEY,
    at           TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    order_id     UUID REFERENCES orders (id),
    detail       TEXT NOT NULL DEFAULT '',
    client_addr  TEXT NOT NULL
);
CREATE INDEX admin_audit_order ON admin_audit (order_id, id);
CREATE RULE admin_audit_no_update AS ON UPDATE TO admin_audit DO INSTEAD NOTHING;
CREATE RULE admin_audit_no_delete AS ON DELETE TO admin_audit DO INSTEAD NOTHING;

-- The SHA-256 of a webhook's raw bytes: what DHMAD signed, even where the stored JSONB had to
-- replace characters Postgres cannot hold (NUL).
ALTER TABLE webhook_inbox ADD COLUMN body_sha256 TEXT;
