-- A web registration's Idempotency-Key, kept with the SMS code that request sent: the same key
-- again is answered from that code (the same registration and expiry) and sends nothing; the
-- request's keyed digest tells a retry from a different request reusing the key. Withdrawal
-- clears both.
ALTER TABLE phone_verifications
    ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    ADD COLUMN request_digest bytea CHECK (length(request_digest) = 32),
    ADD CHECK ((idempotency_key IS NULL) = (request_digest IS NULL));
CREATE UNIQUE INDEX phone_verifications_idempotency_key ON phone_verifications (idempotency_key);
