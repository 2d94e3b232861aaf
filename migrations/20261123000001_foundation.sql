-- Drawbridge foundation schema.
-- Postgres is the system of record. The invariants of DESIGN.md that a database can hold are
-- held here, so that no code path (or bug, or concurrent request) can break them.

CREATE TABLE regions (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9-]{1,32}$'),
    name        text NOT NULL CHECK (name <> ''),
    -- Centres publish capacity in local time; this turns it into instants.
    timezone    text NOT NULL DEFAULT 'Europe/Berlin',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Policies are versioned documents; a published version is never changed, only superseded.
CREATE TABLE policies (
    region_id     text NOT NULL REFERENCES regions (id),
    version       integer NOT NULL CHECK (version >= 1),
    document      text NOT NULL,
    digest        bytea NOT NULL CHECK (length(digest) = 32),
    published_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region_id, version)
);

-- Centroids of postcode areas, so distance rules can be evaluated without geocoding people.
CREATE TABLE postcode_areas (
    postcode   text PRIMARY KEY CHECK (postcode ~ '^[0-9]{5}$'),
    latitude   double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude  double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180)
);

CREATE TABLE centres (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9-]{1,64}$'),
    region_id   text NOT NULL REFERENCES regions (id),
    name        text NOT NULL CHECK (name <> ''),
    address     text NOT NULL CHECK (address <> ''),
    postcode    text NOT NULL CHECK (postcode ~ '^[0-9]{5}$'),
    latitude    double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude   double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX centres_region ON centres (region_id);

CREATE TABLE staff (
    id             uuid PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9._-]{3,64}$'),
    password_hash  text NOT NULL,
    role           text NOT NULL
                   CHECK (role IN ('callcentre_agent', 'centre_staff', 'region_admin', 'analyst')),
    region_id      text NOT NULL REFERENCES regions (id),
    centre_id      text REFERENCES centres (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled_at    timestamptz,
    -- Centre staff act for exactly one centre; nobody else is bound to one.
    CHECK ((role = 'centre_staff') = (centre_id IS NOT NULL))
);

-- A registrant carries no name: a verified phone, a birth year and their choices suffice.
-- Personal fields are nullable because withdrawal erases them while the row keeps the
-- pseudonymous history that published draws refer to.
CREATE TABLE registrants (
    id                 uuid PRIMARY KEY,
    region_id          text NOT NULL REFERENCES regions (id),
    status             text NOT NULL
                       CHECK (status IN ('pending_verification', 'active', 'withdrawn')),
    channel            text NOT NULL CHECK (channel IN ('web', 'callcentre')),
    phone              text CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    email              text CHECK (email LIKE '%_@_%'),
    language           text NOT NULL DEFAULT 'de' CHECK (language IN ('de', 'en')),
    birth_year         integer CHECK (birth_year BETWEEN 1900 AND 2100),
    priority_group     smallint CHECK (priority_group >= 1),
    postcode           text CHECK (postcode ~ '^[0-9]{5}$'),
    accepted_vaccines  text[] NOT NULL DEFAULT '{}',
    max_distance_km    integer CHECK (max_distance_km BETWEEN 1 AND 1000),
    booking_code_hash  bytea UNIQUE CHECK (length(booking_code_hash) = 32),
    created_at         timestamptz NOT NULL DEFAULT now(),
    verified_at        timestamptz,
    withdrawn_at       timestamptz,
    -- A live registrant has everything the allocator needs; a withdrawn one has no personal data.
    CHECK (status = 'withdrawn' OR (phone IS NOT NULL AND birth_year IS NOT NULL
           AND priority_group IS NOT NULL AND postcode IS NOT NULL AND max_distance_km IS NOT NULL
           AND cardinality(accepted_vaccines) > 0)),
    CHECK (status <> 'withdrawn' OR (phone IS NULL AND email IS NULL AND withdrawn_at IS NOT NULL)),
    CHECK ((status = 'active') = (verified_at IS NOT NULL AND booking_code_hash IS NOT NULL)
           OR status = 'withdrawn')
);
-- One live registration per phone number.
CREATE UNIQUE INDEX registrants_one_live_per_phone ON registrants (phone) WHERE status <> 'withdrawn';
CREATE INDEX registrants_pool ON registrants (region_id) WHERE status = 'active';

CREATE TABLE phone_verifications (
    id             uuid PRIMARY KEY,
    registrant_id  uuid NOT NULL REFERENCES registrants (id) ON DELETE CASCADE,
    code_hash      bytea NOT NULL CHECK (length(code_hash) = 32),
    attempts_left  smallint NOT NULL CHECK (attempts_left >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    verified_at    timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX phone_verifications_registrant ON phone_verifications (registrant_id, created_at DESC);

-- One allocator tick. The seed's SHA-256 is stored before the draw runs; the seed itself only
-- after it has completed, so nobody (including operators) can pick a seed after seeing inputs.
CREATE TABLE draws (
    id               uuid PRIMARY KEY,
    region_id        text NOT NULL,
    policy_version   integer NOT NULL,
    state            text NOT NULL CHECK (state IN ('committed', 'completed', 'failed')),
    seed_commitment  bytea NOT NULL CHECK (length(seed_commitment) = 32),
    seed             bytea CHECK (length(seed) = 32),
    inputs_digest    bytea CHECK (length(inputs_digest) = 32),
    outputs_digest   bytea CHECK (length(outputs_digest) = 32),
    manifest         jsonb,
    started_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    FOREIGN KEY (region_id, policy_version) REFERENCES policies (region_id, version),
    CHECK ((state = 'completed') = (seed IS NOT NULL AND completed_at IS NOT NULL
           AND inputs_digest IS NOT NULL AND outputs_digest IS NOT NULL AND manifest IS NOT NULL))
);
CREATE INDEX draws_region ON draws (region_id, started_at DESC);

-- A slot pair is one unit: first-dose slot plus second-dose slot (none for one-dose vaccines).
CREATE TABLE slot_pairs (
    id               uuid PRIMARY KEY,
    centre_id        text NOT NULL REFERENCES centres (id),
    vaccine          text NOT NULL CHECK (vaccine ~ '^[a-z0-9-]+$'),
    first_slot_at    timestamptz NOT NULL,
    second_slot_at   timestamptz,
    state            text NOT NULL DEFAULT 'open'
                     CHECK (state IN ('open', 'offered', 'booked', 'cancelled', 'used')),
    -- The holder columns make invariant 1 structural: a pair row can point at one pending offer
    -- or one booking, never both, and its state says which.
    offer_id         uuid,
    booking_id       uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (second_slot_at IS NULL OR second_slot_at > first_slot_at),
    CHECK (num_nonnulls(offer_id, booking_id) <= 1),
    CHECK ((state = 'offered') = (offer_id IS NOT NULL)),
    CHECK ((state IN ('booked', 'used')) = (booking_id IS NOT NULL))
);
CREATE INDEX slot_pairs_open ON slot_pairs (centre_id, vaccine, first_slot_at) WHERE state = 'open';

CREATE TABLE offers (
    id             uuid PRIMARY KEY,
    draw_id        uuid REFERENCES draws (id),
    slot_pair_id   uuid NOT NULL REFERENCES slot_pairs (id),
    registrant_id  uuid NOT NULL REFERENCES registrants (id),
    state          text NOT NULL CHECK (state IN ('pending', 'accepted', 'declined', 'expired', 'withdrawn')),
    offered_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    answered_at    timestamptz,
    CHECK (expires_at > offered_at),
    CHECK ((state = 'pending') = (answered_at IS NULL))
);
-- Invariants 1 and 2 for offers: one pending offer per pair and per registrant.
CREATE UNIQUE INDEX offers_one_pending_per_pair ON offers (slot_pair_id) WHERE state = 'pending';
CREATE UNIQUE INDEX offers_one_pending_per_registrant ON offers (registrant_id) WHERE state = 'pending';
CREATE INDEX offers_expiring ON offers (expires_at) WHERE state = 'pending';

CREATE TABLE bookings (
    id              uuid PRIMARY KEY,
    offer_id        uuid NOT NULL UNIQUE REFERENCES offers (id),
    slot_pair_id    uuid NOT NULL REFERENCES slot_pairs (id),
    registrant_id   uuid NOT NULL REFERENCES registrants (id),
    state           text NOT NULL
                    CHECK (state IN ('booked', 'first_dose_given', 'completed', 'cancelled')),
    booked_at       timestamptz NOT NULL DEFAULT now(),
    cancelled_at    timestamptz,
    cancel_reason   text,
    CHECK ((state = 'cancelled') = (cancelled_at IS NOT NULL))
);
-- Invariants 1 and 2 for bookings: one live booking per pair and per registrant.
CREATE UNIQUE INDEX bookings_one_live_per_pair ON bookings (slot_pair_id) WHERE state <> 'cancelled';
CREATE UNIQUE INDEX bookings_one_live_per_registrant ON bookings (registrant_id) WHERE state <> 'cancelled';

ALTER TABLE slot_pairs
    ADD FOREIGN KEY (offer_id) REFERENCES offers (id),
    ADD FOREIGN KEY (booking_id) REFERENCES bookings (id);

-- Transactional outbox: a row is written in the same transaction as the state change it
-- announces. (kind, subject, channel) is unique, so each offer, booking or cancellation has
-- exactly one notification per channel (invariant 3).
CREATE TABLE outbox (
    id                uuid PRIMARY KEY,
    kind              text NOT NULL CHECK (kind ~ '^[a-z_]+$'),
    subject_id        uuid NOT NULL,
    channel           text NOT NULL CHECK (channel IN ('sms', 'email')),
    recipient         text NOT NULL,
    language          text NOT NULL CHECK (language IN ('de', 'en')),
    payload           jsonb NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    published_at      timestamptz,
    publish_attempts  integer NOT NULL DEFAULT 0,
    last_error        text,
    UNIQUE (kind, subject_id, channel)
);
CREATE INDEX outbox_unpublished ON outbox (created_at) WHERE published_at IS NULL;

-- The notifier's record of what reached the provider: a message recorded as sent is never
-- sent again, whatever RabbitMQ redelivers.
CREATE TABLE deliveries (
    outbox_id            uuid PRIMARY KEY REFERENCES outbox (id) ON DELETE CASCADE,
    state                text NOT NULL CHECK (state IN ('sent', 'dead')),
    attempts             integer NOT NULL CHECK (attempts >= 1),
    provider_message_id  text,
    detail               text,
    finished_at          timestamptz NOT NULL DEFAULT now()
);
