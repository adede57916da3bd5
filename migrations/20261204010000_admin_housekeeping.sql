-- Failed logins older than the throttle's window decide nothing: the session sweeper deletes
-- them by age (a flood from many addresses must not grow the table for good).
CREATE INDEX admin_login_failures_at ON admin_login_failures (at);
