#!/usr/bin/env bash
# How many verified registrations per second PostgreSQL alone sustains on this machine: the
# statements of one registration (register with code and SMS, read the code as the phone would,
# verify), replayed by pgbench with prepared statements and no HTTP, gateway or client in the
# way. It is the ceiling for `cargo bench --bench flows_throughput`, whose gateway and client
# share the same cores. The SQL mirrors `REGISTER_WITH_CODE` (gateway/src/registrations.rs) and
# `VERIFY` (gateway/src/verification.rs) with the parameters written in; keep them in step.
#
#   benches/postgres_ceiling.sh          # CLIENTS="8 32" DURATION=10 by default
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-"8 32"}
DURATION=${DURATION:-10}
BIN=${BIN:-target/release/drawbridge}
DB="drawbridge_ceiling_$(date +%s)"
WORK=$(mktemp -d)
[ -x "$BIN" ] || cargo build --release --locked --bin drawbridge

cleanup() { dropdb -h 127.0.0.1 -U postgres --if-exists "$DB"; rm -rf "$WORK"; }
trap cleanup EXIT
createdb -h 127.0.0.1 -U postgres "$DB"
export DRAWBRIDGE_DATABASE__URL="postgres://postgres@127.0.0.1:5432/$DB"
"$BIN" --config deploy/local.toml migrate >/dev/null
"$BIN" --config deploy/local.toml demo >/dev/null 2>&1

cat >"$WORK/flow.sql" <<'SQL'
\set n random(1, 8999999999999)
WITH registrant AS (INSERT INTO registrants (id, region_id, status, channel, phone, email, language, birth_year, priority_group, postcode, accepted_vaccines, max_distance_km, booking_code_hash, verified_at)
  VALUES (gen_random_uuid(), 'bw', 'pending_verification', 'web', '+4' || lpad(:n::text, 13, '0'), NULL, 'de', 1950, 2, '70173', '{biontech,moderna}', 50, NULL, NULL) RETURNING id),
code AS (INSERT INTO phone_verifications (id, registrant_id, code_hash, attempts_left, expires_at)
  SELECT gen_random_uuid(), registrant.id, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea, 5, now() + interval '10 minutes' FROM registrant RETURNING id),
sms AS (INSERT INTO outbox (id, kind, subject_id, channel, recipient, language, payload)
  SELECT gen_random_uuid(), 'verification_code', s.subject, m.channel, m.recipient, s.language, '{"code":"123456","valid_minutes":10}'::jsonb
  FROM (SELECT code.id AS subject, '+49151'::text AS phone, NULL::text AS email, 'de'::text AS language FROM code) s, LATERAL (VALUES ('sms', s.phone), ('email', s.email)) AS m(channel, recipient)
  WHERE m.recipient IS NOT NULL)
SELECT id FROM registrant \gset
SELECT payload->>'code' AS code FROM outbox WHERE kind = 'verification_code' AND channel = 'sms' AND subject_id = (SELECT id FROM phone_verifications WHERE registrant_id = :id::uuid) \gset
WITH registration AS (
    SELECT id, status FROM registrants WHERE id = :id::uuid FOR UPDATE
), code AS (
    SELECT id, code_hash, attempts_left, expires_at FROM phone_verifications
    WHERE id = (SELECT id FROM phone_verifications
                WHERE registrant_id = (SELECT id FROM registration)
                ORDER BY created_at DESC LIMIT 1)
    FOR UPDATE
), checked AS MATERIALIZED (
    SELECT r.id, r.status, c.id AS code_id,
           c.id IS NOT NULL AND c.attempts_left > 0 AND c.expires_at > now() AS live,
           c.code_hash = '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea AS matches
    FROM registration r LEFT JOIN code c ON true
), answered AS (
    UPDATE phone_verifications p
    SET attempts_left = p.attempts_left - CASE WHEN c.matches THEN 0 ELSE 1 END,
        verified_at = CASE WHEN c.matches THEN now() ELSE p.verified_at END
    FROM checked c
    WHERE p.id = c.code_id AND c.status = 'pending_verification' AND c.live
    RETURNING p.registrant_id, c.matches, p.attempts_left
), activated AS (
    UPDATE registrants SET status = 'active', verified_at = now(), booking_code_hash = sha256(convert_to(:id, 'UTF8'))
    WHERE id = (SELECT registrant_id FROM answered WHERE matches)
    RETURNING id AS subject, phone, email, language
), sent AS (INSERT INTO outbox (id, kind, subject_id, channel, recipient, language, payload)
  SELECT gen_random_uuid(), 'booking_code', s.subject, m.channel, m.recipient, s.language, '{"booking_code":"ABCD-EFGH-JKLM","status_url":"http://x/me"}'::jsonb
  FROM activated s, LATERAL (VALUES ('sms', s.phone), ('email', s.email)) AS m(channel, recipient)
  WHERE m.recipient IS NOT NULL)
SELECT status, code_id IS NOT NULL AS has_code, live, coalesce(matches, false) AS matches,
       (SELECT attempts_left FROM answered WHERE NOT matches) AS attempts_left
FROM checked;
SQL

echo "pgbench -M prepared -T $DURATION, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for clients in $CLIENTS; do
    pgbench -h 127.0.0.1 -U postgres -n -M prepared -c "$clients" -j 2 -T "$DURATION" -f "$WORK/flow.sql" "$DB" 2>&1 \
        | awk -v c="$clients" '/^tps/ { printf "%s clients: %.0f verified registrations/s\n", c, $3 } /error|abort/'
done
