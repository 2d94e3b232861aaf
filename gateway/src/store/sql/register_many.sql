-- Web registrations, each with its first SMS code and that code's message, in one statement
-- (store::registrants::register). $1: a JSON array of NewRegistration rows, no phone number
-- twice. A phone number that already has a live
-- registration is skipped, so registrant, code and SMS are written together or not at all.
-- Returns the registrations made.
WITH input AS (
    SELECT i.* FROM batch_rows($1) b, jsonb_to_record(b) AS i(
        id uuid, region_id text, phone text, email text, language text,
        birth_year integer, priority_group smallint, postcode text,
        accepted_vaccines text[], max_distance_km integer,
        code_id uuid, code_hash text, attempts_left smallint, expires_at timestamptz,
        notification jsonb)
), registrant AS (
    INSERT INTO registrants (id, region_id, status, channel, phone, email, language,
                             birth_year, priority_group, postcode, accepted_vaccines,
                             max_distance_km)
    SELECT id, region_id, 'pending_verification', 'web', phone, email, language,
           birth_year, priority_group, postcode, accepted_vaccines, max_distance_km
    FROM input
    ON CONFLICT (phone) WHERE status <> 'withdrawn' DO NOTHING
    RETURNING id
), code AS (
    INSERT INTO phone_verifications (id, registrant_id, code_hash, attempts_left, expires_at)
    SELECT i.code_id, i.id, decode(i.code_hash, 'base64'), i.attempts_left, i.expires_at
    FROM input i JOIN registrant USING (id)
    RETURNING id, registrant_id
), sms AS (
    INSERT INTO outbox (id, kind, subject_id, channel, recipient, language, payload)
    SELECT gen_random_uuid(), 'verification_code', code.id, 'sms', i.phone, i.language, i.notification
    FROM code JOIN input i ON i.id = code.registrant_id
)
SELECT id FROM registrant
