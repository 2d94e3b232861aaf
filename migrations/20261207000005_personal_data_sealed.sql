-- Phone numbers and email addresses sealed at rest (domain/src/personal_data.rs): a registrant
-- keeps them as XChaCha20-Poly1305 ciphertexts bound to their row, and a phone is found by its
-- keyed hash (`phone_index`, the blind index), never by its text. A message keeps its recipient
-- as the registration's ciphertext, with the id it is bound to (`recipient_of`).
--
-- A migration holds no key, so a value stored before stays its text, as bytes, which reads
-- as before until `drawbridge keys rotate` seals it and writes its index (docs/operations.md);
-- until then a phone stored before is not found by its index. A message stored before is bound
-- to its own row when sealed.
ALTER TABLE registrants DROP CONSTRAINT registrants_phone_check;
ALTER TABLE registrants DROP CONSTRAINT registrants_email_check;
DROP INDEX registrants_one_active_per_person;
DROP INDEX registrants_one_pending_per_person;
ALTER TABLE registrants
    ALTER COLUMN phone TYPE bytea USING convert_to(phone, 'UTF8'),
    ALTER COLUMN email TYPE bytea USING convert_to(email, 'UTF8'),
    ADD COLUMN phone_index bytea CHECK (length(phone_index) = 32),
    DROP CONSTRAINT registrants_ended_erased,
    ADD CONSTRAINT registrants_ended_erased
        CHECK (status NOT IN ('withdrawn', 'expired')
               OR (phone IS NULL AND phone_index IS NULL AND email IS NULL AND initials = ''));
CREATE UNIQUE INDEX registrants_one_active_per_person
    ON registrants (phone_index, birth_year, initials) WHERE status = 'active';
CREATE UNIQUE INDEX registrants_one_pending_per_person
    ON registrants (phone_index, birth_year, initials) WHERE status = 'pending_verification';

-- An erased recipient is empty.
ALTER TABLE outbox
    ALTER COLUMN recipient TYPE bytea
        USING CASE WHEN recipient = 'erased' THEN ''::bytea ELSE convert_to(recipient, 'UTF8') END,
    ADD COLUMN recipient_of uuid;
UPDATE outbox SET recipient_of = id;
ALTER TABLE outbox ALTER COLUMN recipient_of SET NOT NULL;
