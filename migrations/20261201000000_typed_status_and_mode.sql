-- Order status and escrow mode become Postgres enums, read into Rust enums (`src/orders/state.rs`)
-- with `sqlx::Type`: a value the code does not know is a decode error, never another status.
-- Adding a status is `ALTER TYPE order_status ADD VALUE …` plus the variant and its match arms.

CREATE TYPE order_status AS ENUM (
    'new', 'creating_escrow', 'escrow_failed', 'needs_reconciliation',
    'awaiting_payment', 'paid', 'delivered', 'completed', 'cancelled', 'disputed');
CREATE TYPE escrow_mode AS ENUM ('instant', 'quick');

-- Indexes and checks that compare these columns with text must go before the type change.
DROP INDEX orders_one_open_per_buyer_sku;
DROP INDEX orders_reconcile;
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders DROP CONSTRAINT orders_mode_check;
ALTER TABLE products DROP CONSTRAINT products_mode_check;
ALTER TABLE products DROP CONSTRAINT products_check;

ALTER TABLE orders ALTER COLUMN status TYPE order_status USING status::order_status;
ALTER TABLE orders ALTER COLUMN mode TYPE escrow_mode USING mode::escrow_mode;
ALTER TABLE products ALTER COLUMN mode TYPE escrow_mode USING mode::escrow_mode;

-- DHMAD requires a delivery estimate for quick escrows.
ALTER TABLE products ADD CONSTRAINT products_quick_needs_delivery_days
    CHECK (mode <> 'quick' OR estimated_delivery_days IS NOT NULL);

-- At most one open (unpaid) order per buyer and product: a repeated checkout reuses it. The
-- list is `OrderStatus::OPEN`; a test checks that both agree.
CREATE UNIQUE INDEX orders_one_open_per_buyer_sku ON orders (sku, buyer_email)
    WHERE status IN ('new', 'creating_escrow', 'escrow_failed', 'needs_reconciliation', 'awaiting_payment');
-- Open orders with an escrow, by when we last heard of them (the reconciler's scan). The list
-- is `OrderStatus::SETTLED`.
CREATE INDEX orders_reconcile ON orders (last_synced_at)
    WHERE escrow_id IS NOT NULL AND status NOT IN ('completed', 'cancelled');
