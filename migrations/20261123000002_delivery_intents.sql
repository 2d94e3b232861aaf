-- A delivery is recorded as 'sending' before the provider is called. If the notifier dies
-- during the call, the next attempt finds the intent and asks the provider whether the message
-- went out before sending it again, so a crash cannot text a person twice.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check CHECK (state IN ('sending', 'sent', 'dead'));
ALTER TABLE deliveries ADD COLUMN started_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE deliveries ALTER COLUMN finished_at DROP NOT NULL;
ALTER TABLE deliveries ALTER COLUMN finished_at DROP DEFAULT;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_finished CHECK ((state = 'sending') = (finished_at IS NULL));
