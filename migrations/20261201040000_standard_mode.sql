-- Standard escrows (a contract signed by both sides). Its own migration: Postgres cannot use a
-- new enum value in the transaction that adds it.
ALTER TYPE escrow_mode ADD VALUE 'standard';
