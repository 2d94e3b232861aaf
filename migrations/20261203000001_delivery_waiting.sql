-- A delivery whose last attempt certainly did not reach the provider (a 429, a refused
-- connection) waits for its retry as 'waiting', and that retry sends without asking the
-- provider first. 'sending' keeps its meaning: an attempt is with the provider, or may have
-- reached it and its answer was lost, so the next attempt asks before sending again.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('sending', 'waiting', 'sent', 'dead'));
ALTER TABLE deliveries DROP CONSTRAINT deliveries_finished;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_finished
    CHECK ((state IN ('sending', 'waiting')) = (finished_at IS NULL));
