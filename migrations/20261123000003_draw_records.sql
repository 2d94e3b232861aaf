-- The published record of each draw, pseudonymised: who was in the pool with which inputs
-- and lottery key, which pairs were free, and what was decided. Rows are written once, in the
-- draw's own transaction, and never changed, so a manifest rebuilt from them is the draw.
-- They have no foreign keys on purpose: a draw writes a million rows in one go, per-row
-- reference checks would dominate its time, and the rows are written only in the draw's
-- transaction, next to the draws row they belong to.

CREATE TABLE draw_candidates (
    draw_id       uuid NOT NULL,
    pseudonym     bytea NOT NULL CHECK (length(pseudonym) = 16),
    group_id      smallint NOT NULL,
    age_band      text NOT NULL,
    waited_weeks  integer NOT NULL CHECK (waited_weeks >= 0),
    declines      integer NOT NULL CHECK (declines >= 0),
    -- What they may have and where they can go, shared by many: see draw_profiles.
    profile       integer NOT NULL,
    lottery_key   double precision NOT NULL,
    -- Also how a registrant finds their own entry: (draw, their pseudonym).
    PRIMARY KEY (draw_id, pseudonym)
);

-- The distinct (vaccines, centres) choices of a draw's candidates: a region has far fewer of
-- them than people, so each candidate row carries only a number.
CREATE TABLE draw_profiles (
    draw_id   uuid NOT NULL,
    profile   integer NOT NULL,
    vaccines  text[] NOT NULL,
    centres   text[] NOT NULL,
    PRIMARY KEY (draw_id, profile)
);

CREATE TABLE draw_pairs (
    draw_id           uuid NOT NULL,
    slot_pair_id      uuid NOT NULL,
    centre_id         text NOT NULL,
    vaccine           text NOT NULL,
    first_slot_at     timestamptz NOT NULL,
    second_slot_at    timestamptz,
    -- NULL when the pair was offered.
    unmatched_reason  text CHECK (unmatched_reason IN ('too_soon', 'no_one_eligible', 'out_of_reach', 'pool_served')),
    PRIMARY KEY (draw_id, slot_pair_id)
);

CREATE TABLE draw_matches (
    draw_id       uuid NOT NULL,
    position      integer NOT NULL CHECK (position >= 1),
    pseudonym     bytea NOT NULL CHECK (length(pseudonym) = 16),
    slot_pair_id  uuid NOT NULL,
    expires_at    timestamptz NOT NULL,
    reserve       smallint,
    PRIMARY KEY (draw_id, position),
    UNIQUE (draw_id, pseudonym),
    UNIQUE (draw_id, slot_pair_id)
);

-- Draws can also be seeded from a public randomness beacon round fixed in advance.
ALTER TABLE draws
    ADD COLUMN beacon_round bigint,
    ADD COLUMN beacon_randomness bytea,
    ADD CHECK ((beacon_round IS NULL) = (beacon_randomness IS NULL));

-- Wakes the allocator when pairs become free (new capacity, declines, expiries,
-- cancellations), so a burst of freed pairs is drawn without waiting for the next tick.
CREATE FUNCTION notify_pairs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('drawbridge_pairs_freed', c.region_id || ' ' || count(*))
    FROM new_rows n JOIN centres c ON c.id = n.centre_id
    WHERE n.state = 'open'
    GROUP BY c.region_id;
    RETURN NULL;
END $$;

CREATE FUNCTION notify_pairs_reopened() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('drawbridge_pairs_freed', c.region_id || ' ' || count(*))
    FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN centres c ON c.id = n.centre_id
    WHERE n.state = 'open' AND o.state <> 'open'
    GROUP BY c.region_id;
    RETURN NULL;
END $$;

CREATE TRIGGER slot_pairs_inserted AFTER INSERT ON slot_pairs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_pairs_inserted();
CREATE TRIGGER slot_pairs_reopened AFTER UPDATE ON slot_pairs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_pairs_reopened();

-- A draw writes 100,000 offers and holds 100,000 pairs in one transaction; per-row foreign-key
-- checks (a locking lookup each) made up half of such a draw's time. The references they
-- guarded cannot dangle anyway once these rows can never be deleted: withdrawal erases a
-- registrant's personal data but keeps the row, a cancelled pair or lapsed offer keeps its row.
-- So deletion is refused outright, at no cost to inserts, and the checks go.
ALTER TABLE offers DROP CONSTRAINT offers_draw_id_fkey,
                   DROP CONSTRAINT offers_slot_pair_id_fkey,
                   DROP CONSTRAINT offers_registrant_id_fkey;
ALTER TABLE slot_pairs DROP CONSTRAINT slot_pairs_offer_id_fkey;

CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rows of % are never deleted (history and published draws refer to them)', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER registrants_never_deleted BEFORE DELETE OR TRUNCATE ON registrants
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER slot_pairs_never_deleted BEFORE DELETE OR TRUNCATE ON slot_pairs
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER offers_never_deleted BEFORE DELETE OR TRUNCATE ON offers
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER draws_never_deleted BEFORE DELETE OR TRUNCATE ON draws
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();
