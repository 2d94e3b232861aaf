-- The flows of citizens, call centres and centres: staff sessions and their audit log,
-- capacity published idempotently in batches, check-ins, and the people a centre's
-- cancellation sends back to the pool ahead of others.

-- A staff login. Only the SHA-256 of the bearer token is kept, so a leaked table opens nothing.
CREATE TABLE staff_sessions (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    staff_id    uuid NOT NULL REFERENCES staff (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX staff_sessions_staff ON staff_sessions (staff_id);

-- Every staff action, append-only: who did what, for whom, when.
CREATE TABLE staff_actions (
    id          bigserial PRIMARY KEY,
    staff_id    uuid NOT NULL REFERENCES staff (id),
    action      text NOT NULL CHECK (action ~ '^[a-z_.]+$'),
    region_id   text NOT NULL,
    centre_id   text,
    subject_id  uuid,
    detail      jsonb NOT NULL DEFAULT '{}',
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staff_actions_staff ON staff_actions (staff_id, at DESC);
CREATE INDEX staff_actions_subject ON staff_actions (subject_id) WHERE subject_id IS NOT NULL;

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rows of % are an audit log: they are never changed or deleted', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER staff_actions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON staff_actions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- One capacity publication. The centre's key makes a retried request create nothing twice;
-- the request's digest tells a retry from a different request reusing the key.
CREATE TABLE capacity_batches (
    id               uuid PRIMARY KEY,
    centre_id        text NOT NULL REFERENCES centres (id),
    idempotency_key  text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    request          jsonb NOT NULL,
    request_digest   bytea NOT NULL CHECK (length(request_digest) = 32),
    pairs            integer NOT NULL CHECK (pairs >= 0),
    created_by       uuid REFERENCES staff (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    cancelled_at     timestamptz,
    cancel_reason    text,
    UNIQUE (centre_id, idempotency_key),
    CHECK ((cancelled_at IS NULL) = (cancel_reason IS NULL))
);
ALTER TABLE slot_pairs ADD COLUMN batch_id uuid REFERENCES capacity_batches (id);
CREATE INDEX slot_pairs_batch ON slot_pairs (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX slot_pairs_centre_day ON slot_pairs (centre_id, first_slot_at);
CREATE INDEX slot_pairs_centre_second ON slot_pairs (centre_id, second_slot_at) WHERE second_slot_at IS NOT NULL;

-- When each dose was given, as scanned at the centre.
ALTER TABLE bookings
    ADD COLUMN first_dose_at timestamptz,
    ADD COLUMN second_dose_at timestamptz,
    ADD CHECK (second_dose_at IS NULL OR first_dose_at IS NOT NULL);

-- Set when a centre withdraws someone's booked or offered pair: until their next offer, the
-- draw serves them before every priority tier.
ALTER TABLE registrants ADD COLUMN ahead_since timestamptz;

-- The draw records whether a candidate was served ahead, so replays reproduce it.
ALTER TABLE draw_candidates ADD COLUMN ahead boolean NOT NULL DEFAULT false;
