-- A phone may hold the registrations of several people (a household, a caller booking for
-- elderly parents): each person on a phone is told apart by birth year and initials, and a
-- phone holds at most one live registration per person. An unverified registration no longer
-- holds its phone for good: it expires, erased, once its last code is long dead.
ALTER TABLE registrants
    ADD COLUMN initials text NOT NULL DEFAULT '' CHECK (char_length(initials) <= 3 AND initials = upper(initials));

ALTER TABLE registrants DROP CONSTRAINT registrants_status_check;
ALTER TABLE registrants DROP CONSTRAINT registrants_check;
ALTER TABLE registrants DROP CONSTRAINT registrants_check1;
ALTER TABLE registrants DROP CONSTRAINT registrants_check2;
ALTER TABLE registrants
    ADD CONSTRAINT registrants_status_check
        CHECK (status IN ('pending_verification', 'active', 'withdrawn', 'expired')),
    -- A live registrant has everything the allocator needs; an ended one has no personal data.
    ADD CONSTRAINT registrants_live_complete
        CHECK (status IN ('withdrawn', 'expired') OR (phone IS NOT NULL AND birth_year IS NOT NULL
               AND priority_group IS NOT NULL AND postcode IS NOT NULL AND max_distance_km IS NOT NULL
               AND cardinality(accepted_vaccines) > 0)),
    ADD CONSTRAINT registrants_ended_erased
        CHECK (status NOT IN ('withdrawn', 'expired') OR (phone IS NULL AND email IS NULL AND initials = '')),
    ADD CONSTRAINT registrants_withdrawn_when
        CHECK (status <> 'withdrawn' OR withdrawn_at IS NOT NULL),
    ADD CONSTRAINT registrants_active_verified
        CHECK ((status = 'active') = (verified_at IS NOT NULL AND booking_code_hash IS NOT NULL)
               OR status IN ('withdrawn', 'expired'));

DROP INDEX registrants_one_live_per_phone;
CREATE UNIQUE INDEX registrants_one_active_per_person
    ON registrants (phone, birth_year, initials) WHERE status = 'active';
CREATE UNIQUE INDEX registrants_one_pending_per_person
    ON registrants (phone, birth_year, initials) WHERE status = 'pending_verification';
CREATE INDEX registrants_unverified ON registrants (created_at) WHERE status = 'pending_verification';
