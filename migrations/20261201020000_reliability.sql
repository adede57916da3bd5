-- Recovery paths that never stall (see docs/ARCHITECTURE.md, "Reliability").

-- The reconciler backs off per order: an order DHMAD keeps failing on waits longer each time
-- instead of filling every pass; one DHMAD no longer knows is flagged for the merchant.
ALTER TABLE orders ADD COLUMN sync_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN next_sync_at TIMESTAMPTZ;
ALTER TABLE orders ADD COLUMN attention TEXT;

-- A job that used up its attempts is closed as given up, visible and retryable; for a paid
-- instant order the reconciler queues a new deliver later.
ALTER TABLE outbox_jobs ADD COLUMN gave_up_at TIMESTAMPTZ;
UPDATE outbox_jobs SET gave_up_at = done_at WHERE done_at IS NOT NULL AND last_error IS NOT NULL;
CREATE INDEX outbox_jobs_order ON outbox_jobs (order_id, kind, id);
