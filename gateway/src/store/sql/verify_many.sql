-- Verification of many registrations in one statement (store::verifications::verify). $1: a
-- JSON array of Guess rows, no two for the same registration. It locks the registrations,
-- then their newest codes, each in id order so that concurrent batches cannot deadlock;
-- guesses for the same registration in different batches queue on those locks, and each sees
-- the tries the ones before it used up. A right code marks the code used, activates the
-- registrant and queues the booking code by SMS and (if given) email; a wrong one uses up a
-- try. Both answers are one UPDATE of the code: each data-modifying step costs its own
-- executor set-up (the table and its indexes), and two of them were a tenth of a verified
-- registration.
--
-- The submitted code is compared as its keyed hash: equal hashes are equal codes, and how long
-- the comparison takes says nothing about a code without the key.
WITH input AS (
    SELECT i.* FROM batch_rows($1) b, jsonb_to_record(b)
        AS i(id uuid, code_hash text, booking_code_hash text, notification jsonb)
), registration AS (
    SELECT id, status FROM registrants WHERE id IN (SELECT id FROM input) ORDER BY id FOR UPDATE
), code AS (
    SELECT id, registrant_id, code_hash, attempts_left, expires_at FROM phone_verifications
    WHERE id IN (SELECT (SELECT newest.id FROM phone_verifications newest
                         WHERE newest.registrant_id = r.id
                         ORDER BY newest.created_at DESC LIMIT 1)
                 FROM registration r)
    ORDER BY id FOR UPDATE
), checked AS MATERIALIZED (
    SELECT i.id, r.status, c.id AS code_id,
           c.id IS NOT NULL AND c.attempts_left > 0 AND c.expires_at > now() AS live,
           c.code_hash = decode(i.code_hash, 'base64') AS matches,
           i.booking_code_hash, i.notification
    FROM input i LEFT JOIN registration r ON r.id = i.id LEFT JOIN code c ON c.registrant_id = i.id
), answered AS (
    UPDATE phone_verifications p
    SET attempts_left = p.attempts_left - CASE WHEN c.matches THEN 0 ELSE 1 END,
        verified_at = CASE WHEN c.matches THEN now() ELSE p.verified_at END
    FROM checked c
    WHERE p.id = c.code_id AND c.status = 'pending_verification' AND c.live
    RETURNING p.registrant_id, c.matches, p.attempts_left
), activated AS (
    UPDATE registrants r
    SET status = 'active', verified_at = now(), booking_code_hash = decode(c.booking_code_hash, 'base64')
    FROM checked c
    WHERE r.id = c.id AND r.id IN (SELECT registrant_id FROM answered WHERE matches)
    RETURNING r.id AS subject, r.phone, r.email, r.language, c.notification
), sent AS (
    INSERT INTO outbox (id, kind, subject_id, channel, recipient, recipient_of, language, payload)
    SELECT gen_random_uuid(), s.notification->>'kind', s.subject, m.channel, m.recipient, s.subject,
           s.language, s.notification
    FROM activated s, LATERAL (VALUES ('sms', s.phone), ('email', s.email)) AS m(channel, recipient)
    WHERE m.recipient IS NOT NULL
)
SELECT c.id, c.status, c.code_id IS NOT NULL AS has_code, c.live,
       coalesce(c.matches, false) AS matches, a.attempts_left
FROM checked c LEFT JOIN answered a ON a.registrant_id = c.id AND NOT a.matches
