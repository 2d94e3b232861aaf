-- Web registrations, each with its first SMS code and that code's message, in one statement
-- (store::registrants::register). $1: a JSON array of NewRegistration rows, no phone number
-- twice, each phone and email sealed and the phone's blind index (base64); $2: the verified registrations one phone may hold; $3: the codes one phone may be
-- sent in $4 hours. A phone holds the registrations of several people, told apart by birth
-- year and initials. Each row is answered with what became of it:
--
-- - `replayed` or `key_reused`: its Idempotency-Key was sent before, with the same request
--   (the same digest) or another one; answered from the code that request sent, nothing written.
-- - `unverified`: the person's registration on this phone waits for its code, and is answered;
--   nothing written. The use case sends it a new code (its hash is keyed with that
--   registration's id, which only this statement finds out).
-- - `busy`: the phone was sent as many codes as it may be in the window; nothing written.
-- - `verified` or `full`: the person is registered on this phone already, or the phone holds
--   as many people as it may. A registration is written all the same, without a code, so the
--   answer looks like any other; the use case sends the phone a notice instead of a code.
-- - `made`: registrant, code (with the request's key) and SMS written together.
-- - `raced`: the person's registration was being written by another statement at the same
--   moment, so the insert found it taken without this statement's snapshot showing it; run
--   the request again. (A key taken that way fails the statement: the unique index.)
WITH input AS (
    SELECT i.id, i.region_id, decode(i.phone, 'base64') AS phone,
           decode(i.phone_index, 'base64') AS phone_index, decode(i.email, 'base64') AS email,
           i.language, i.birth_year, i.initials, i.priority_group, i.postcode,
           i.accepted_vaccines, i.max_distance_km, i.code_id, i.code_hash, i.attempts_left,
           i.expires_at, i.notification, i.idempotency_key, i.request_digest
    FROM batch_rows($1) b, jsonb_to_record(b) AS i(
        id uuid, region_id text, phone text, phone_index text, email text, language text,
        birth_year integer, initials text, priority_group smallint, postcode text,
        accepted_vaccines text[], max_distance_km integer,
        code_id uuid, code_hash text, attempts_left smallint, expires_at timestamptz,
        notification jsonb, idempotency_key text, request_digest text)
), earlier AS (
    SELECT i.id, v.registrant_id, v.expires_at,
           CASE WHEN v.request_digest = decode(i.request_digest, 'base64') THEN 'replayed'
                ELSE 'key_reused' END AS outcome
    FROM input i JOIN phone_verifications v ON v.idempotency_key = i.idempotency_key
), holds AS (
    SELECT i.id,
           (SELECT r.id FROM registrants r
            WHERE (r.phone_index, r.birth_year, r.initials) = (i.phone_index, i.birth_year, i.initials)
              AND r.status = 'pending_verification') AS pending,
           EXISTS (SELECT 1 FROM registrants r
                   WHERE (r.phone_index, r.birth_year, r.initials) = (i.phone_index, i.birth_year, i.initials)
                     AND r.status = 'active') AS registered,
           (SELECT count(*) FROM registrants r WHERE r.phone_index = i.phone_index AND r.status = 'active')
               AS people,
           (SELECT count(*) FROM registrants r JOIN phone_verifications v ON v.registrant_id = r.id
            WHERE r.phone_index = i.phone_index AND v.created_at > now() - make_interval(hours => $4)) AS codes
    FROM input i
    WHERE i.id NOT IN (SELECT id FROM earlier)
), live AS (
    SELECT id, pending AS registrant_id,
           CASE WHEN pending IS NOT NULL THEN 'unverified'
                WHEN codes >= $3 THEN 'busy'
                WHEN registered THEN 'verified'
                WHEN people >= $2 THEN 'full'
                ELSE 'made' END AS outcome
    FROM holds
), registrant AS (
    INSERT INTO registrants (id, region_id, status, channel, phone, phone_index, email, language,
                             birth_year, initials, priority_group, postcode, accepted_vaccines,
                             max_distance_km)
    SELECT id, region_id, 'pending_verification', 'web', phone, phone_index, email, language,
           birth_year, initials, priority_group, postcode, accepted_vaccines, max_distance_km
    FROM input JOIN live USING (id)
    WHERE live.outcome IN ('made', 'verified', 'full')
    ON CONFLICT (phone_index, birth_year, initials) WHERE status = 'pending_verification' DO NOTHING
    RETURNING id
), code AS (
    INSERT INTO phone_verifications (id, registrant_id, code_hash, attempts_left, expires_at,
                                     idempotency_key, request_digest)
    SELECT i.code_id, i.id, decode(i.code_hash, 'base64'), i.attempts_left, i.expires_at,
           i.idempotency_key, decode(i.request_digest, 'base64')
    FROM input i JOIN registrant USING (id) JOIN live l USING (id)
    WHERE l.outcome = 'made'
    RETURNING id, registrant_id
), sms AS (
    INSERT INTO outbox (id, kind, subject_id, channel, recipient, recipient_of, language, payload)
    SELECT gen_random_uuid(), 'verification_code', code.id, 'sms', i.phone, i.id, i.language, i.notification
    FROM code JOIN input i ON i.id = code.registrant_id
)
SELECT i.id,
       coalesce(e.outcome,
                CASE WHEN l.outcome IN ('unverified', 'busy') THEN l.outcome
                     WHEN r.id IS NULL THEN 'raced'
                     ELSE l.outcome END) AS outcome,
       coalesce(e.registrant_id, l.registrant_id, r.id) AS registrant_id,
       e.expires_at AS code_expires_at
FROM input i LEFT JOIN earlier e USING (id) LEFT JOIN live l USING (id)
     LEFT JOIN registrant r USING (id)
