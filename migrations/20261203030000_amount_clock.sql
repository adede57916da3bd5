-- When DHMAD's edit that set the order's amount was made (the escrow's `updatedAt` in its
-- `escrow.updated` event). No snapshot carries the amount, so an edit is kept only if it is newer
-- than the one kept: a retried older edit, arriving after a newer one, changes nothing, and a
-- late edit still lands when only other news came in between.
ALTER TABLE orders ADD COLUMN amount_updated_at TIMESTAMPTZ;
