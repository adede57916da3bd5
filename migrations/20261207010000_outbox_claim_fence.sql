-- Which claim of a job an outcome belongs to. Outcomes were fenced by `attempts`, but a
-- postponed attempt (DHMAD's budget spent, a dispute open) gives its number back, so a worker
-- whose lease had lapsed could find its old number current again, write its stale outcome and
-- let a third worker claim the job while it still ran. `claims` only ever grows.
ALTER TABLE outbox_jobs ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;
-- Jobs claimed before this column existed: their number is the attempt they are at.
UPDATE outbox_jobs SET claims = attempts WHERE claimed_until IS NOT NULL;
