-- A running attempt's lease: set when a worker claims the job, cleared when that attempt's
-- outcome is written. While it holds, the merchant's "run now" and "abandon" leave the job to
-- its worker (a second worker would repeat the call or the e-mail); once it lapses (the worker
-- died), the job is due again like any other.
ALTER TABLE outbox_jobs ADD COLUMN claimed_until TIMESTAMPTZ;
