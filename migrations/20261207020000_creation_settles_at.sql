-- Until when an escrow creation whose answer never came may still be under way at DHMAD (it
-- was often slow for that very reason): a look at DHMAD's list before then that finds nothing
-- proves nothing, and a retry on its word made a second escrow beside the first. NULL: the
-- outcome can be looked up at once (DHMAD answered, even with an error, or nothing was sent).
ALTER TABLE orders ADD COLUMN creation_settles_at TIMESTAMPTZ;
