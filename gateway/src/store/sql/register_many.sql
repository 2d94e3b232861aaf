-- Web registrations, each with its first SMS code and that code's message, in one statement
-- (store::registrants::register). $1: a JSON array of NewRegistration rows, no phone number
-- twice. Each row is answered with what became of it:
--
-- - `replayed` or `key_reused`: its Idempotency-Key was sent before, with the same request
--   (the same digest) or another one; answered from the code that request sent, nothing written.
-- - `unverified` or `verified`: the phone already has a live registration, whose id is
--   answered; nothing written. The use case sends an unverified one a new code (its hash is
--   keyed with that registration's id, which only this statement finds out).
-- - `made`: registrant, code (with the request's key) and SMS written together.
-- - `raced`: the phone's registration was being written by another statement at the same
--   moment, so the insert found it taken without this statement's snapshot showing it; run
--   the request again. (A key taken that way fails the statement: the unique index.)
WITH input AS (
    SELECT i.* FROM batch_rows($1) b, jsonb_to_record(b) AS i(
        id uuid, region_id text, phone text, email text, language text,
        birth_year integer, priority_group smallint, postcode text,
        accepted_vaccines text[], max_distance_km integer,
        code_id uuid, code_hash text, attempts_left smallint, expires_at timestamptz,
        notification jsonb, idempotency_key text, request_digest text)
), earlier AS (
    SELECT i.id, v.registrant_id, v.expires_at,
           CASE WHEN v.request_digest = decode(i.request_digest, 'base64') THEN 'replayed'
                ELSE 'key_reused' END AS outcome
    FROM input i JOIN phone_verifications v ON v.idempotency_key = i.idempotency_key
), live AS (
    SELECT i.id, r.id AS registrant_id,
           CASE WHEN r.status = 'active' THEN 'verified' ELSE 'unverified' END AS outcome
    FROM input i JOIN registrants r ON r.phone = i.phone AND r.status <> 'withdrawn'
    WHERE i.id NOT IN (SELECT id FROM earlier)
), registrant AS (
    INSERT INTO registrants (id, region_id, status, channel, phone, email, language,
                             birth_year, priority_group, postcode, accepted_vaccines,
                             max_distance_km)
    SELECT id, region_id, 'pending_verification', 'web', phone, email, language,
           birth_year, priority_group, postcode, accepted_vaccines, max_distance_km
    FROM input
    WHERE id NOT IN (SELECT id FROM earlier UNION ALL SELECT id FROM live)
    ON CONFLICT (phone) WHERE status <> 'withdrawn' DO NOTHING
    RETURNING id
), code AS (
    INSERT INTO phone_verifications (id, registrant_id, code_hash, attempts_left, expires_at,
                                     idempotency_key, request_digest)
    SELECT i.code_id, i.id, decode(i.code_hash, 'base64'), i.attempts_left, i.expires_at,
           i.idempotency_key, decode(i.request_digest, 'base64')
    FROM input i JOIN registrant USING (id)
    RETURNING id, registrant_id
), sms AS (
    INSERT INTO outbox (id, kind, subject_id, channel, recipient, language, payload)
    SELECT gen_random_uuid(), 'verification_code', code.id, 'sms', i.phone, i.language, i.notification
    FROM code JOIN input i ON i.id = code.registrant_id
)
SELECT i.id,
       coalesce(e.outcome, l.outcome, CASE WHEN r.id IS NULL THEN 'raced' ELSE 'made' END) AS outcome,
       coalesce(e.registrant_id, l.registrant_id, r.id) AS registrant_id,
       e.expires_at AS code_expires_at
FROM input i LEFT JOIN earlier e USING (id) LEFT JOIN live l USING (id)
     LEFT JOIN registrant r USING (id)
