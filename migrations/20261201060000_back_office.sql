-- The back office (issue 12): an index for every filter of the order list and the consoles,
-- and what the inbox and outbox consoles record. The filters' predicates are written once, in
-- `src/db/admin_views.rs` and `src/db/admin_consoles.rs`; each partial index below repeats the
-- column part of one of them (the planner uses a partial index only when the query's WHERE
-- implies its predicate).

-- The order list pages newest first by (created_at, id) (keyset pagination), whatever the filter:
-- scanned backwards, this index serves the unfiltered list (and `list_recent`, which used
-- `orders_created`).
DROP INDEX IF EXISTS orders_created;
CREATE INDEX orders_admin_list ON orders (created_at, id);
CREATE INDEX orders_admin_status ON orders (status, created_at, id);
CREATE INDEX orders_admin_mode ON orders (mode, created_at, id);
-- Needs action: a partial index per filter, with the filter's column predicate. "Paid, not
-- shipped" and "dispute open" are one status first (`orders_admin_status`).
CREATE INDEX orders_admin_cancellation ON orders (created_at, id)
    WHERE cancellation = 'requested' AND status IN ('paid', 'delivered');
CREATE INDEX orders_admin_proof ON orders (created_at, id)
    WHERE status = 'paid' AND proof_phase IN ('waiting_seller_proof', 'correction_requested');
CREATE INDEX orders_admin_review ON orders (created_at, id)
    WHERE payment_review_since IS NOT NULL AND status = 'awaiting_payment';
CREATE INDEX orders_admin_attention ON orders (created_at, id) WHERE attention IS NOT NULL;
-- Search: the buyer's e-mail by case-insensitive prefix (`lower(buyer_email) LIKE 'x%'`). An
-- order id prefix is a range of the primary key, an escrow id its unique index.
CREATE INDEX orders_admin_email ON orders (lower(buyer_email) text_pattern_ops);

-- Each row of the list shows its order's open jobs ("shipping requested").
CREATE INDEX outbox_jobs_open_order ON outbox_jobs (order_id) WHERE done_at IS NULL;
-- A job the merchant closed from the outbox console: it never runs again and is not "failed".
ALTER TABLE outbox_jobs ADD COLUMN abandoned_at TIMESTAMPTZ;
-- Dead jobs (given up, not abandoned), by order: the "failed jobs" filter and count.
CREATE INDEX outbox_jobs_dead ON outbox_jobs (order_id, kind, id)
    WHERE gave_up_at IS NOT NULL AND abandoned_at IS NULL;

-- The inbox console reprocesses stored events; one that fails then is kept as `failed`, with
-- why. (A live delivery that fails is rolled back and answered 503: DHMAD sends it again, and
-- nothing is stored. A redelivery of a stored event is a duplicate: answered 200, not stored.)
ALTER TABLE webhook_inbox DROP CONSTRAINT webhook_inbox_outcome_check;
ALTER TABLE webhook_inbox ADD CONSTRAINT webhook_inbox_outcome_check
    CHECK (outcome IN ('processed', 'ignored', 'unmatched', 'failed'));
ALTER TABLE webhook_inbox ADD COLUMN last_error TEXT;
ALTER TABLE webhook_inbox ADD COLUMN reprocessed_at TIMESTAMPTZ;
-- The console pages newest first by (received_at, event_id), by outcome or type or neither;
-- the order page lists the events applied to the order.
CREATE INDEX webhook_inbox_recent ON webhook_inbox (received_at, event_id);
CREATE INDEX webhook_inbox_outcome ON webhook_inbox (outcome, received_at, event_id);
CREATE INDEX webhook_inbox_type ON webhook_inbox (event_type, received_at, event_id);
CREATE INDEX webhook_inbox_order ON webhook_inbox (order_id, received_at) WHERE order_id IS NOT NULL;
DROP INDEX IF EXISTS webhook_inbox_unmatched;

-- The audit page, by action.
CREATE INDEX admin_audit_action ON admin_audit (action, id);
