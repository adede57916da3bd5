-- The events no order took yet, by escrow: `db::inbox::unmatched_for_escrow` reads them when an
-- order takes up a lost escrow, and the inbox keeps every event ever received (most matched).
CREATE INDEX webhook_inbox_unmatched_escrow ON webhook_inbox (escrow_id)
    WHERE outcome IN ('unmatched', 'failed');
