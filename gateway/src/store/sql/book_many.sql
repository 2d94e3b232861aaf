-- Bookings, offers, pairs, the confirmations' messages and (when staff act) the audit entries
-- of many acceptances in one statement (store::offers::accept). $1: a JSON array of Acceptance
-- rows, no two for the same offer, each with the registrant's phone and email as stored
-- (sealed, in base64). It takes an offer only while it is pending, unexpired and
-- the registrant's, locking it before its pair as every other writer does; a concurrent answer
-- waits for that lock and then finds the offer answered, so it books nothing. An offer taken
-- whose pair is not held for it leaves its booking without a pair, which the schema refuses:
-- the statement fails, changes nothing, and each acceptance runs again alone, so only that one
-- fails. Returns the bookings made.
WITH input AS (
    SELECT i.* FROM batch_rows($1) b, jsonb_to_record(b) AS i(
        booking uuid, offer uuid, slot_pair uuid, registrant uuid, phone text,
        email text, language text, notification jsonb, staff uuid, staff_region text)
), offer AS (
    UPDATE offers o SET state = 'accepted', answered_at = now()
    FROM input i
    WHERE o.id = i.offer AND o.registrant_id = i.registrant AND o.state = 'pending'
      AND o.expires_at > now()
    RETURNING o.id, i.booking, i.slot_pair
), pair AS (
    UPDATE slot_pairs p SET state = 'booked', offer_id = NULL, booking_id = o.booking
    FROM offer o
    WHERE p.id = o.slot_pair AND p.state = 'offered' AND p.offer_id = o.id
    RETURNING p.id, p.booking_id
), booking AS (
    INSERT INTO bookings (id, offer_id, slot_pair_id, registrant_id, state)
    SELECT o.booking, o.id, pair.id, i.registrant, 'booked'
    FROM offer o JOIN input i ON i.offer = o.id LEFT JOIN pair ON pair.booking_id = o.booking
    RETURNING id
), booked AS (
    SELECT i.* FROM booking JOIN input i ON i.booking = booking.id
), confirmation AS (
    INSERT INTO outbox (id, kind, subject_id, channel, recipient, recipient_of, language, payload)
    SELECT gen_random_uuid(), s.notification->>'kind', s.booking, m.channel, decode(m.recipient, 'base64'),
           s.registrant, s.language, s.notification
    FROM booked s, LATERAL (VALUES ('sms', s.phone), ('email', s.email)) AS m(channel, recipient)
    WHERE m.recipient IS NOT NULL
), audited AS (
    INSERT INTO staff_actions (staff_id, action, region_id, subject_id, detail)
    SELECT staff, 'offer.accept', staff_region, registrant,
           jsonb_build_object('offer', offer, 'booking', booking)
    FROM booked WHERE staff IS NOT NULL
)
SELECT id FROM booking
