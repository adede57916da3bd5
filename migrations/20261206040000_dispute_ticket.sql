-- The open dispute ticket DHMAD's escrow read names (`disputeTicketId`), if any. Whether a dispute
-- turns the escrow's status to `disputed` is UNSTATED (§2.3), and no event tells of one (§6.2):
-- a ticket on a held escrow is a dispute, whatever the status says. Only reads carry the field,
-- so only a read sets or clears it; webhooks leave it as it is.
ALTER TABLE orders ADD COLUMN dispute_ticket_id TEXT;
-- The back office's "dispute open" list takes these beside the `disputed` status.
CREATE INDEX orders_dispute_ticket ON orders (created_at, id) WHERE dispute_ticket_id IS NOT NULL;
