-- When a delivery in flight is next due in a consumer's hands: for 'waiting', when its retry
-- delay ends; for 'sending', when its attempt's request has timed out. The notifier's sweeper
-- publishes again any message still in flight well past that time: the broker lost it.
-- The default is evaluated once, so adding the column rewrites nothing; only rows in flight
-- need a real value.
ALTER TABLE deliveries ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();
UPDATE deliveries SET next_attempt_at = started_at WHERE finished_at IS NULL;
CREATE INDEX deliveries_in_flight ON deliveries (next_attempt_at) WHERE finished_at IS NULL;
