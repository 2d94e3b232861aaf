-- Region admins run their centres from the console: a centre names the vaccines it gives (NULL:
-- every vaccine of the region's policy, as before this column) and can be closed. A closed
-- centre publishes no capacity and its open pairs are offered to nobody; what is booked stays.
ALTER TABLE centres
    ADD COLUMN vaccines   text[] CHECK (vaccines IS NULL OR cardinality(vaccines) >= 1),
    ADD COLUMN closed_at  timestamptz;
