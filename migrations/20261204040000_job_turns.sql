-- When a periodic task shared by every instance last ran: an instance takes the turn only if
-- the previous one is old enough, so N instances do the work once per period, not N times
-- (the sweep for late duplicate escrows, `orders::lost_escrow`).
CREATE TABLE job_turns (
    name TEXT PRIMARY KEY,
    at   TIMESTAMPTZ NOT NULL
);
