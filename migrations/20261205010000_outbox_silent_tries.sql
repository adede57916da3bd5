-- Tries of an e-mail job that ended with the server silent (the message may have arrived):
-- counted apart from `attempts`, which counts refusals too, so that an e-mail that waited out
-- an outage is not given up at its first slow answer afterwards.
ALTER TABLE outbox_jobs ADD COLUMN silent_tries INTEGER NOT NULL DEFAULT 0;
