#!/usr/bin/env bash
# Full allocator tick against real Postgres: N waiting registrants, N/10 free slot pairs.
# Loads a fresh database, then times `drawbridge allocator --once` (production build): expiry
# sweep, seed commitment, reading the pool, eligibility and distances, the draw, writing the
# record (COPY of every candidate), offers, pair states and offer messages, in one transaction.
#
#   benches/allocator_tick.sh [N]        (default N = 1000000)
#
# Prints the tick's own figures (JSON), wall time and peak resident memory of the process.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
PAIRS=$((N / 10))
DB=drawbridge_bench_tick
URL="postgres://postgres@127.0.0.1:5432/$DB"
psql() { command psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -q "$@"; }

cargo build --profile production --locked --quiet --bin drawbridge
BIN=${CARGO_TARGET_DIR:-target}/production/drawbridge
export DRAWBRIDGE_DATABASE__URL="$URL" DRAWBRIDGE_ALLOCATOR__LISTEN=127.0.0.1:0 RUST_LOG=warn,drawbridge_allocator=info
psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
$BIN --config deploy/local.toml demo
echo "loading $N registrants and $PAIRS slot pairs ..."
psql -d "$DB" <<SQL
-- The demo's week of pairs is replaced (deletion is refused in normal operation).
ALTER TABLE slot_pairs DISABLE TRIGGER slot_pairs_never_deleted;
DELETE FROM slot_pairs;
ALTER TABLE slot_pairs ENABLE TRIGGER slot_pairs_never_deleted;
-- Pairs over four weeks at the three demo centres, each with the vaccines it offers.
INSERT INTO slot_pairs (id, centre_id, vaccine, first_slot_at, second_slot_at)
SELECT gen_random_uuid(), c.id, c.vaccine, t.first_at,
       CASE WHEN c.vaccine = 'janssen' THEN NULL ELSE t.first_at + interval '42 days' END
FROM generate_series(0, $PAIRS - 1) AS i
CROSS JOIN LATERAL (SELECT (ARRAY['stuttgart-liederhalle','stuttgart-liederhalle','karlsruhe-schwarzwaldhalle',
                                  'karlsruhe-schwarzwaldhalle','mannheim-maimarkt','mannheim-maimarkt','mannheim-maimarkt'])[1 + i % 7] AS id,
                           (ARRAY['biontech','moderna','biontech','astrazeneca','moderna','astrazeneca','janssen'])[1 + i % 7] AS vaccine) c
CROSS JOIN LATERAL (SELECT date_trunc('hour', now()) + interval '1 day' + (i / 7 % 4032) * interval '10 minutes' AS first_at) t;
-- Registrants in all groups, ages and postcodes of the demo, with varied choices and reach.
INSERT INTO registrants (id, region_id, status, channel, phone, email, birth_year, priority_group, postcode,
                         accepted_vaccines, max_distance_km, verified_at, booking_code_hash, created_at)
SELECT gen_random_uuid(), 'bw', 'active', CASE WHEN i % 5 = 0 THEN 'callcentre' ELSE 'web' END,
       '+49152' || lpad(i::text, 8, '0'), CASE WHEN i % 3 = 0 THEN 'p' || i || '@example.de' END,
       1930 + i % 75, 1 + i % 4,
       (ARRAY['70173','70174','76133','76137','68159','68163','69117','72070'])[1 + i % 8],
       (ARRAY['{biontech,moderna}','{biontech}','{biontech,moderna,astrazeneca,janssen}','{moderna,janssen}'])[1 + i / 8 % 4]::text[],
       (ARRAY[20, 50, 100, 200])[1 + i / 32 % 4],
       now() - (i % 20) * interval '1 week', sha256(('bench ' || i)::bytea),
       now() - (i % 20) * interval '1 week'
FROM generate_series(1, $N) AS i;
VACUUM ANALYZE;
SQL
echo "tick:"
/usr/bin/time -f "wall %e s, peak RSS %M KiB" $BIN --config deploy/local.toml allocator --once --region bw \
  | grep -E '"(pool|ineligible|free_pairs|offers|duration_ms|too_soon|no_one_eligible|out_of_reach|pool_served)"'
# Baseline in the same run: the bare Postgres work any tick of this size must do, as plain
# SQL in one rolled-back transaction: read the pool with the allocator's query, write one
# narrow row per candidate, one row per offer and per held pair, one outbox row per message.
echo "bare Postgres floor (same database, same sizes):"
psql -d "$DB" <<SQL | grep -E '^Time' | awk '{ total += $2 } END { printf "  %.2f s in %d statements\n", total / 1000, NR }'
\\timing on
BEGIN;
SELECT count(*) FROM registrants r WHERE r.region_id = 'bw' AND r.status = 'active'
  AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.registrant_id = r.id AND o.state = 'pending')
  AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.registrant_id = r.id AND b.state <> 'cancelled');
INSERT INTO draw_candidates (draw_id, pseudonym, group_id, age_band, waited_weeks, declines, profile, lottery_key)
SELECT '00000000-0000-0000-0000-000000000001', substr(sha256(i::text::bytea), 1, 16), 1 + i % 4, '60-69', 0, 0, i % 128, -random()
FROM generate_series(1, $N) AS i;
INSERT INTO offers (id, draw_id, slot_pair_id, registrant_id, state, offered_at, expires_at)
SELECT gen_random_uuid(), NULL, gen_random_uuid(), gen_random_uuid(), 'pending', now(), now() + interval '1 day'
FROM generate_series(1, $PAIRS);
UPDATE slot_pairs SET created_at = created_at WHERE id IN (SELECT id FROM slot_pairs LIMIT $PAIRS);
INSERT INTO outbox (id, kind, subject_id, channel, recipient, language, payload)
SELECT gen_random_uuid(), 'offer', gen_random_uuid(), 'sms', '+4917100000000', 'de',
       ('{"kind":"offer","appointment":{"centre_name":"Impfzentrum Stuttgart Liederhalle","centre_address":"Berliner Platz 1-3, 70174 Stuttgart","vaccine_name":"Comirnaty (BioNTech/Pfizer)","first_at":"2026-11-24T08:00:00Z","second_at":"2027-01-05T08:00:00Z","timezone":"Europe/Berlin"},"expires_at":"2026-11-24T08:00:00Z","accept_url":"http://127.0.0.1:8080/offers/x?token=' || repeat('x', 220) || '"}')::jsonb
FROM generate_series(1, $PAIRS * 4 / 3);
ROLLBACK;
SQL
psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
