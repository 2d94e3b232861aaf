//! The simulator draws as the allocator does: a pool of registrants and slot pairs put into
//! Postgres and drawn by the allocator's tick with a known seed gets exactly the offers that the
//! simulator's draw gives on the same pool and seed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use drawbridge_allocator::BeaconValue;
use drawbridge_domain::allocation::draw::{DrawInput, FreePair, Pseudonym, Seed};
use drawbridge_domain::allocation::geo::Place;
use drawbridge_domain::allocation::waiting::{self, Waiting};
use drawbridge_domain::{Person, Policy};
use drawbridge_simulations::engine::production_draw;
use drawbridge_test_support::{spawn_app, TestApp};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// 1,200 verified registrants of region `bw` who differ in everything the draw reads: group,
/// birth year (so age rules and bands), home, accepted vaccines, travel distance and time
/// waited (up to 12 weeks).
async fn insert_varied_registrants(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO registrants (id, region_id, status, channel, phone, birth_year, priority_group,
                                  postcode, accepted_vaccines, max_distance_km, verified_at, booking_code_hash)
         SELECT gen_random_uuid(), 'bw', 'active', 'web', convert_to('+49160' || lpad(i::text, 8, '0'), 'UTF8'),
                1935 + (i * 7) % 70, 1 + i % 4,
                (ARRAY['70173', '70174', '76133', '76137', '68159', '68163', '69117', '72070'])[1 + i % 8],
                (ARRAY['{biontech}', '{biontech,moderna}', '{moderna,astrazeneca}',
                       '{astrazeneca,janssen}', '{biontech,moderna,astrazeneca,janssen}'])[1 + (i / 8) % 5]::text[],
                (ARRAY[10, 30, 60])[1 + (i / 40) % 3],
                now() - make_interval(hours => (i * 37) % 2016), sha256(('simulated ' || i)::bytea)
         FROM generate_series(1, 1200) AS i",
    )
    .execute(pool)
    .await
    .unwrap();
}

#[derive(sqlx::FromRow)]
struct Registrant {
    id: Uuid,
    birth_year: i32,
    priority_group: i16,
    postcode: String,
    accepted_vaccines: Vec<String>,
    max_distance_km: i32,
    verified_at: DateTime<Utc>,
}

/// The pool as the simulator enters it into a draw: every active registrant through the
/// domain's eligibility and travel rules (`waiting::candidate`, `waiting::reachable`) as the
/// simulation engine applies them to its people, and every pair still ahead that was open.
async fn simulated_input(app: &TestApp, policy: &Policy, drawn_at: DateTime<Utc>) -> DrawInput {
    let pool = &app.pool;
    let (timezone,): (String,) = sqlx::query_as("SELECT timezone FROM regions WHERE id = 'bw'")
        .fetch_one(pool)
        .await
        .unwrap();
    let today = drawn_at
        .with_timezone(&timezone.parse::<Tz>().unwrap())
        .date_naive();
    let place = |(latitude, longitude): (f64, f64)| Place { latitude, longitude };
    let centres: Vec<(String, f64, f64)> =
        sqlx::query_as("SELECT id, latitude, longitude FROM centres WHERE region_id = 'bw'")
            .fetch_all(pool)
            .await
            .unwrap();
    let areas: HashMap<String, Place> =
        sqlx::query_as("SELECT postcode, latitude, longitude FROM postcode_areas")
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(postcode, lat, lon): (String, f64, f64)| (postcode, place((lat, lon))))
            .collect();
    let registrants: Vec<Registrant> = sqlx::query_as(
        "SELECT id, birth_year, priority_group, postcode, accepted_vaccines, max_distance_km, verified_at
         FROM registrants WHERE region_id = 'bw' AND status = 'active'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let candidates = registrants
        .into_iter()
        .filter_map(|r| {
            let reach = waiting::reachable(
                areas[&r.postcode],
                centres
                    .iter()
                    .map(|(c, lat, lon)| (c.as_str(), place((*lat, *lon)))),
                f64::from(r.max_distance_km),
            );
            let person = Person {
                birth_year: r.birth_year,
                priority_group: r.priority_group as u8,
                postcode: r.postcode,
                accepted_vaccines: r.accepted_vaccines,
            };
            let waiting = Waiting {
                pseudonym: Pseudonym::of(&app.hash_key(), r.id.as_bytes()),
                verified_at: r.verified_at,
                declines: 0,
                ahead: false,
                centres: reach,
            };
            waiting::candidate(policy, &person, waiting, drawn_at, today)
        })
        .collect();
    let pairs = sqlx::query_as(
        "SELECT p.id, p.centre_id, p.vaccine, p.first_slot_at, p.second_slot_at
         FROM slot_pairs p JOIN centres c ON c.id = p.centre_id
         WHERE c.region_id = 'bw' AND p.state <> 'cancelled' AND p.first_slot_at > $1",
    )
    .bind(drawn_at)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, centre, vaccine, first_at, second_at)| FreePair {
        id,
        centre,
        vaccine,
        first_at,
        second_at,
    })
    .collect();
    DrawInput {
        drawn_at,
        pairs,
        candidates,
    }
}

#[tokio::test]
async fn a_simulated_draw_and_the_allocators_real_draw_on_the_same_pool_and_seed_give_the_same_offers() {
    let app = spawn_app().await;
    app.load_demo().await;
    // A tenth of the demo's week of pairs stays open, so that the lottery decides who gets one.
    sqlx::query("UPDATE slot_pairs SET state = 'cancelled' WHERE abs(hashtext(id::text)) % 10 <> 0")
        .execute(&app.pool)
        .await
        .unwrap();
    insert_varied_registrants(&app.pool).await;
    let beacon = BeaconValue {
        round: 24,
        randomness: b"the simulator and the allocator draw alike".to_vec(),
    };

    let allocator = drawbridge_allocator::connect(&app.settings, CancellationToken::new())
        .await
        .unwrap();
    let tick = allocator
        .tick_regions(Some("bw"), Some(&beacon))
        .await
        .unwrap()
        .remove(0);
    let figures = tick.draw.expect("a draw ran");
    let allocated: Vec<(Uuid, Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT o.registrant_id, o.slot_pair_id, o.expires_at
         FROM offers o JOIN draw_matches m ON m.draw_id = o.draw_id AND m.slot_pair_id = o.slot_pair_id
         WHERE o.draw_id = $1 ORDER BY m.position",
    )
    .bind(figures.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();

    let policy = Policy::from_toml(drawbridge::demo::POLICY).unwrap();
    let input = simulated_input(&app, &policy, figures.drawn_at).await;
    assert_eq!(input.candidates.len(), figures.pool, "the same pool");
    assert_eq!(input.pairs.len(), figures.free_pairs, "the same pairs");
    let seed = Seed::from_beacon(&beacon.randomness);
    let (simulated, _) = production_draw(&policy, &seed, &input, false).unwrap();
    let registrant: HashMap<Pseudonym, Uuid> = sqlx::query_as::<_, (Uuid,)>("SELECT id FROM registrants")
        .fetch_all(&app.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(id,)| (Pseudonym::of(&app.hash_key(), id.as_bytes()), id))
        .collect();
    let simulated: Vec<(Uuid, Uuid, DateTime<Utc>)> = simulated
        .matches
        .iter()
        .map(|m| (registrant[&m.pseudonym], m.pair, m.expires_at))
        .collect();

    // Scarce enough that the lottery order decided: most of the pool waited in vain.
    assert!(allocated.len() > 150, "{} offers", allocated.len());
    assert!(figures.pool > 2 * allocated.len(), "{} waiting", figures.pool);
    assert_eq!(simulated, allocated, "the same offers, in the same order");
}
