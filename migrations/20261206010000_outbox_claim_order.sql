-- The outbox claim's order (`db::outbox::claim`: due delivers first, then by when due) as an
-- index: with only `outbox_jobs_due` (run_after), every claim sorted every due job, since the
-- row lock between LIMIT and the sort keeps PostgreSQL from keeping the top row only. 20,000
-- e-mails due after an SMTP outage: 13 ms per claim, every claim; with this index 0.05 ms.
CREATE INDEX outbox_jobs_claim ON outbox_jobs ((kind <> 'deliver'), run_after, id)
    WHERE done_at IS NULL;
