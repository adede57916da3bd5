-- "Reprocess all unmatched" takes its batch in this order (`db::admin_consoles::unmatched_ids`):
-- never reprocessed first, then reprocessed longest ago, each oldest first.
CREATE INDEX webhook_inbox_reprocess ON webhook_inbox (reprocessed_at NULLS FIRST, received_at, event_id)
    WHERE outcome IN ('unmatched', 'failed');
