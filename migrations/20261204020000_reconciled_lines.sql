-- The reconciler's duplicate sweep looks up, every pass, the orders whose escrow creation was
-- reconciled lately: a scan of the whole timeline (the largest table) without this.
CREATE INDEX order_events_reconciled ON order_events (created_at) WHERE kind = 'escrow_reconciled';
