//! The allocator against real Postgres: draws end to end with their published manifests,
//! expiry and re-offer, one allocator per region at a time, and a crash test that kills the
//! allocator process mid-draw again and again.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use drawbridge_allocator::{Allocator, DrawFigures, RegionTick, LOCK_CLASS};
use drawbridge_domain::allocation::draw::Manifest;
use drawbridge_platform::draws;
use drawbridge_platform::outbox::Notification;
use drawbridge_test_support::{eventually, metric, spawn_app, spawn_with, Components, TestApp};
use serde_json::Value;
use sqlx::{Connection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::drawbridge;

async fn allocator(app: &TestApp) -> Allocator {
    drawbridge_allocator::connect(&app.settings, CancellationToken::new())
        .await
        .expect("allocator starts")
}

async fn draw(allocator: &Allocator) -> RegionTick {
    let mut ticks = allocator.tick_regions(Some("bw"), None).await.expect("tick runs");
    assert_eq!(ticks.len(), 1);
    ticks.remove(0)
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(pool).await.unwrap();
    n
}

async fn manifest(app: &TestApp, id: Uuid) -> Manifest {
    draws::manifest(&app.pool, id)
        .await
        .unwrap()
        .expect("the draw exists")
}

/// The invariants of DESIGN.md that span tables (the single-table ones are constraints), and
/// invariant 4: every completed draw replays exactly.
async fn assert_invariants(pool: &PgPool) {
    let checks = [
        (
            "an offered pair must point at its pending offer",
            "SELECT count(*) FROM slot_pairs p WHERE p.state = 'offered' AND NOT EXISTS
               (SELECT 1 FROM offers o WHERE o.id = p.offer_id AND o.slot_pair_id = p.id AND o.state = 'pending')",
        ),
        (
            "a pending offer's pair must point back at it",
            "SELECT count(*) FROM offers o JOIN slot_pairs p ON p.id = o.slot_pair_id
             WHERE o.state = 'pending' AND p.offer_id IS DISTINCT FROM o.id",
        ),
        (
            "every offer has exactly one SMS in the outbox",
            "SELECT count(*) FROM offers o WHERE (SELECT count(*) FROM outbox b
               WHERE b.kind = 'offer' AND b.subject_id = o.id AND b.channel = 'sms') <> 1",
        ),
        (
            "every offer of a draw is in its published matches",
            "SELECT count(*) FROM offers o WHERE o.draw_id IS NOT NULL AND NOT EXISTS
               (SELECT 1 FROM draw_matches m WHERE m.draw_id = o.draw_id AND m.slot_pair_id = o.slot_pair_id)",
        ),
        (
            "every published match became an offer",
            "SELECT count(*) FROM draw_matches m WHERE NOT EXISTS
               (SELECT 1 FROM offers o WHERE o.draw_id = m.draw_id AND o.slot_pair_id = m.slot_pair_id)",
        ),
        (
            "a draw that did not complete left nothing behind",
            "SELECT count(*) FROM draws d WHERE d.state <> 'completed' AND (
               EXISTS (SELECT 1 FROM draw_candidates c WHERE c.draw_id = d.id)
               OR EXISTS (SELECT 1 FROM draw_pairs p WHERE p.draw_id = d.id)
               OR EXISTS (SELECT 1 FROM offers o WHERE o.draw_id = d.id))",
        ),
    ];
    for (what, sql) in checks {
        assert_eq!(count(pool, sql).await, 0, "{what}");
    }
    let completed: Vec<(Uuid,)> = sqlx::query_as("SELECT id FROM draws WHERE state = 'completed'")
        .fetch_all(pool)
        .await
        .unwrap();
    for (id,) in completed {
        let manifest = draws::manifest(pool, id).await.unwrap().unwrap();
        let replay = manifest.replay();
        assert!(
            replay.reproduced(),
            "draw {id} does not replay: {:?}",
            replay.problems
        );
    }
}

#[tokio::test]
async fn a_draw_offers_pairs_announces_them_and_publishes_a_manifest_that_replays() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.insert_registrants(0, 400).await;
    // Quotes, a backslash and line breaks travel through the bulk write of the messages intact.
    let address = "Berliner Platz 1\\3, \"Eingang\tOst\"\r\n70174 Stuttgart";
    sqlx::query("UPDATE centres SET address = $1 WHERE id = 'stuttgart-liederhalle'")
        .bind(address)
        .execute(&app.pool)
        .await
        .unwrap();
    let allocator = allocator(&app).await;

    let tick = draw(&allocator).await;
    let figures = tick.draw.expect("a draw ran");
    assert!(tick.ticked);
    assert_eq!(figures.pool, 400);
    // Everyone can reach Stuttgart, which has 1,512 BioNTech and Moderna pairs this week.
    assert_eq!(figures.offers, 400);
    assert_eq!(figures.free_pairs, 5292);
    assert_eq!(figures.unmatched.values().sum::<usize>(), 5292 - 400);
    // Karlsruhe and Mannheim are over 50 km away; nobody accepts AstraZeneca or Janssen.
    assert_eq!(figures.unmatched.get("out_of_reach"), Some(&1512));
    assert_eq!(figures.unmatched.get("no_one_eligible"), Some(&2268));
    assert_eq!(figures.unmatched.get("pool_served"), Some(&(1512 - 400)));
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM offers WHERE state = 'pending'").await,
        400
    );
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM slot_pairs WHERE state = 'offered'"
        )
        .await,
        400
    );
    // One SMS per offer and an email for the tenth who gave an address.
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM outbox WHERE kind = 'offer' AND channel = 'sms'"
        )
        .await,
        400
    );
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM outbox WHERE kind = 'offer' AND channel = 'email'"
        )
        .await,
        40
    );
    let (payload,): (Value,) = sqlx::query_as("SELECT payload FROM outbox WHERE kind = 'offer' LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        payload["appointment"]["centre_name"],
        "Impfzentrum Stuttgart Liederhalle"
    );
    assert_eq!(payload["appointment"]["centre_address"], address);
    assert!(
        payload["accept_url"].as_str().unwrap().contains("/offers/"),
        "{payload}"
    );

    // The first offers go to the earliest appointments.
    let earliest_offered: (i64,) = sqlx::query_as(
        "SELECT count(*) FROM slot_pairs p WHERE p.state = 'open' AND p.centre_id = 'stuttgart-liederhalle'
         AND p.first_slot_at < (SELECT max(q.first_slot_at) FROM slot_pairs q WHERE q.state = 'offered')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(earliest_offered.0, 0, "no earlier Stuttgart pair was passed over");

    // The record is public: listed, summarised, and a manifest that replays.
    let listed: Value = app.get("/v1/draws?region=bw").await.json().await.unwrap();
    assert_eq!(listed["draws"][0]["id"], figures.id.to_string());
    assert_eq!(listed["draws"][0]["state"], "completed");
    assert_eq!(listed["draws"][0]["figures"]["offers"], 400);
    let response = app.get(&format!("/v1/draws/{}/manifest", figures.id)).await;
    assert_eq!(response.status(), 200);
    let published: Manifest = response.json().await.unwrap();
    assert!(published.replay().reproduced(), "{:?}", published.replay());
    assert_eq!(published.matches.len(), 400);
    assert_eq!(published.candidates.len(), 400);
    // Pseudonymised: no phone numbers or ids of registrants anywhere in it.
    let text = serde_json::to_string(&published).unwrap();
    assert!(!text.contains("+49171"));
    let (someone,): (Uuid,) = sqlx::query_as("SELECT id FROM registrants LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!text.contains(&someone.to_string()));

    // A second tick finds nobody waiting: no draw, no record, nothing changed.
    let again = draw(&allocator).await;
    assert!(again.ticked && again.draw.is_none());
    assert_eq!(again.free_pairs, 5292 - 400);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM draws").await, 1);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM offers").await, 400);
    assert_invariants(&app.pool).await;
    app.stop().await;
}

#[tokio::test]
async fn the_draw_endpoints_answer_unknown_and_unfinished_draws_clearly() {
    let app = spawn_app().await;
    app.load_demo().await;
    let unknown = Uuid::new_v4();
    for path in [
        format!("/v1/draws/{unknown}"),
        format!("/v1/draws/{unknown}/manifest"),
    ] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
    assert_eq!(app.get("/v1/draws/not-a-uuid").await.status(), 400);
    let response = app.get("/v1/draws?limit=1000").await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "limit");
    // A draw that died after committing its seed: its commitment is public, its seed is not.
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO draws (id, region_id, policy_version, state, seed_commitment)
         VALUES ($1, 'bw', 3, 'committed', sha256('x'))",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let response = app.get(&format!("/v1/draws/{id}/manifest")).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "draw_not_completed");
    let summary: Value = app.get(&format!("/v1/draws/{id}")).await.json().await.unwrap();
    assert_eq!(summary["seed"], Value::Null);
    assert_eq!(summary["seed_commitment"].as_str().unwrap().len(), 64);
    app.stop().await;
}

#[tokio::test]
async fn lapsed_offers_free_their_pairs_and_the_registrants_are_drawn_again() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.insert_registrants(0, 30).await;
    let allocator = allocator(&app).await;
    let first = draw(&allocator).await.draw.unwrap();
    assert_eq!(first.offers, 30);
    // Ten offers run out unanswered.
    sqlx::query(
        "UPDATE offers SET offered_at = now() - interval '2 days', expires_at = now() - interval '1 hour'
         WHERE id IN (SELECT id FROM offers ORDER BY id LIMIT 10)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let tick = draw(&allocator).await;
    assert_eq!(tick.expired, 10);
    let second = tick.draw.unwrap();
    assert_eq!((second.pool, second.offers), (10, 10));
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM offers WHERE state = 'expired'").await,
        10
    );
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM offers WHERE state = 'pending'").await,
        30
    );
    // The lapse counts against them in the published inputs, as the policy may weigh it.
    let republished = manifest(&app, second.id).await;
    assert!(republished.candidates.iter().all(|c| c.candidate.declines == 1));
    assert_invariants(&app.pool).await;
    app.stop().await;
}

#[tokio::test]
async fn offers_about_to_lapse_are_reminded_once_per_channel_at_the_current_address() {
    let app = spawn_app().await;
    app.load_demo().await;
    // Registrants 10 to 19: number 10 has an email address as well as a phone.
    app.insert_registrants(10, 10).await;
    let allocator = allocator(&app).await;
    let first = draw(&allocator).await;
    assert_eq!(first.draw.unwrap().offers, 10);
    // 24 hours to answer, reminders at 3 hours left (deploy/policies/bw.toml): none yet.
    assert_eq!(first.reminded, 0);
    let offer_of = |phone: &str| {
        format!("SELECT o.id FROM offers o JOIN registrants r ON r.id = o.registrant_id WHERE r.phone = '{phone}'")
    };
    // Two hours left for numbers 10 and 11 after a full day's window; number 12's offer had
    // only two and a half hours in all, so its offer message was reminder enough.
    sqlx::query(&format!(
        "UPDATE offers SET offered_at = now() - interval '22 hours', expires_at = now() + interval '2 hours'
         WHERE id IN ({}) OR id IN ({})",
        offer_of("+4917100000010"),
        offer_of("+4917100000011")
    ))
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(&format!(
        "UPDATE offers SET offered_at = now() - interval '30 minutes', expires_at = now() + interval '2 hours'
         WHERE id IN ({})",
        offer_of("+4917100000012")
    ))
    .execute(&app.pool)
    .await
    .unwrap();
    // Number 11 has a new phone since the offer went out.
    sqlx::query("UPDATE registrants SET phone = '+4917600000011' WHERE phone = '+4917100000011'")
        .execute(&app.pool)
        .await
        .unwrap();
    let tick = draw(&allocator).await;
    assert_eq!(tick.reminded, 3, "an SMS for 10 and 11 and an email for 10");
    let reminders: Vec<(String, Vec<u8>, Uuid, Value, Value)> = sqlx::query_as(
        "SELECT r.channel, r.recipient, r.recipient_of, r.payload, o.payload FROM outbox r
         JOIN outbox o ON o.kind = 'offer' AND o.subject_id = r.subject_id AND o.channel = r.channel
         WHERE r.kind = 'offer_expiring'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut recipients: Vec<(String, String)> = reminders
        .iter()
        .map(|(channel, sealed, of, _, _)| (channel.clone(), app.recipient(channel, sealed, *of)))
        .collect();
    recipients.sort();
    let recipients: Vec<(&str, &str)> = recipients.iter().map(|(c, r)| (c.as_str(), r.as_str())).collect();
    assert_eq!(
        recipients,
        [
            ("email", "person10@example.de"),
            ("sms", "+4917100000010"),
            ("sms", "+4917600000011")
        ]
    );
    for (_, _, _, reminder, offer) in &reminders {
        // The notifier reads it as a reminder, with its own template.
        let notification: Notification = serde_json::from_value(reminder.clone()).expect("a notification");
        assert_eq!(notification.kind(), "offer_expiring");
        // A link to the same offer (one of its own: the offer message's is erased once sent)
        // and the same appointment, so the reminder can be answered as is.
        let page = |message: &Value| {
            message["accept_url"]
                .as_str()
                .unwrap()
                .split_once("?token=")
                .unwrap()
                .0
                .to_owned()
        };
        assert_eq!(page(reminder), page(offer));
        assert_ne!(reminder["accept_url"], offer["accept_url"]);
        assert_eq!(reminder["appointment"], offer["appointment"]);
    }
    // Once per offer and channel, whichever tick comes next.
    assert_eq!(draw(&allocator).await.reminded, 0);
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM outbox WHERE kind = 'offer_expiring'"
        )
        .await,
        3
    );
    app.stop().await;
}

#[tokio::test]
async fn only_one_allocator_draws_a_region_and_another_takes_over_when_it_dies() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.insert_registrants(0, 50).await;
    let (first, second) = (allocator(&app).await, allocator(&app).await);

    // Another allocator is mid-draw: it holds the region's lock on its own connection.
    let mut other = sqlx::PgConnection::connect(app.database_url()).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1, hashtext('bw'))")
        .bind(LOCK_CLASS)
        .execute(&mut other)
        .await
        .unwrap();
    let skipped = draw(&first).await;
    assert!(!skipped.ticked);
    assert!(skipped.draw.is_none());
    assert_eq!(count(&app.pool, "SELECT count(*) FROM draws").await, 0);
    // It dies: its connection, and with it the lock, is gone.
    drop(other);
    let taken_over = eventually_draws(&second).await;
    assert_eq!(taken_over.draw.unwrap().offers, 50);

    // Two allocators ticking at once, with people arriving: draws never overlap in time.
    let arrivals = async {
        for batch in 1..=5 {
            app.insert_registrants(batch * 1000, 100).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    };
    let ticking = |allocator: &'static Allocator| async move {
        for _ in 0..8 {
            allocator.tick_regions(Some("bw"), None).await.unwrap();
        }
    };
    let (first, second): (&'static Allocator, &'static Allocator) =
        (Box::leak(Box::new(first)), Box::leak(Box::new(second)));
    tokio::join!(arrivals, ticking(first), ticking(second));
    draw(first).await;
    let overlapping = count(
        &app.pool,
        "SELECT count(*) FROM draws a JOIN draws b ON a.id < b.id AND a.region_id = b.region_id
         WHERE a.state = 'completed' AND b.state = 'completed'
           AND a.started_at < b.completed_at AND b.started_at < a.completed_at",
    )
    .await;
    assert_eq!(overlapping, 0);
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM offers WHERE state = 'pending'").await,
        550
    );
    assert_invariants(&app.pool).await;
    app.stop().await;
}

/// The lock is released when the server notices the dead connection, which takes a moment.
async fn eventually_draws(allocator: &Allocator) -> RegionTick {
    for _ in 0..50 {
        let tick = draw(allocator).await;
        if tick.ticked {
            return tick;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the region's lock was never released");
}

fn allocator_process(app: &TestApp, once: bool) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_drawbridge"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--config", "deploy/local.toml", "allocator"])
        .env("DRAWBRIDGE_DATABASE__URL", app.database_url())
        .env("DRAWBRIDGE_ALLOCATOR__LISTEN", "127.0.0.1:0")
        .env("DRAWBRIDGE_ALLOCATOR__TICK_SECONDS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if once {
        command.args(["--once", "--region", "bw"]);
    }
    command.spawn().expect("the allocator binary starts")
}

/// Invariants 1 to 4 under crashes: SIGKILL the allocator process at random moments, many
/// times, with new people arriving and offers lapsing in between; every draw is then either
/// whole or absent, and every completed one replays.
#[tokio::test]
async fn killing_the_allocator_mid_draw_leaves_whole_draws_or_none() {
    let app = spawn_app().await;
    app.load_demo().await;
    let completed = || count(&app.pool, "SELECT count(*) FROM draws WHERE state = 'completed'");
    let (mut killed_mid_draw, mut rounds) = (0, 0);
    while rounds < 30 && (killed_mid_draw < 3 || completed().await < 3) {
        rounds += 1;
        app.insert_registrants(rounds * 100_000, 1_500).await;
        // Lapse every offer so each draw has pairs to give.
        sqlx::query(
            "UPDATE offers SET offered_at = now() - interval '2 days', expires_at = now() - interval '1 hour'
             WHERE state = 'pending'",
        )
        .execute(&app.pool)
        .await
        .unwrap();
        let before = completed().await;
        let mut process = allocator_process(&app, false);
        if rounds % 2 == 0 {
            // Let one draw complete; the kill then lands wherever the next tick is.
            for _ in 0..600 {
                if completed().await > before {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100 + (rounds as u64 * 7919) % 1200)).await;
        process.kill().expect("SIGKILL");
        process.wait().unwrap();
        killed_mid_draw += count(&app.pool, "SELECT count(*) FROM draws WHERE state = 'committed'").await;
        // The next allocator marks a dead draw failed under the lock; do it here too so the
        // count above sees only this round's.
        sqlx::query("UPDATE draws SET state = 'failed' WHERE state = 'committed'")
            .execute(&app.pool)
            .await
            .unwrap();
    }
    let status = allocator_process(&app, true).wait().unwrap();
    assert!(status.success(), "a clean draw after all the crashes");
    let completed = completed().await;
    eprintln!("{rounds} rounds: {killed_mid_draw} draws killed mid-way, {completed} completed");
    assert!(killed_mid_draw >= 1, "no kill landed mid-draw in {rounds} rounds");
    assert!(completed >= 3);
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM draws WHERE state = 'committed'").await,
        0
    );
    assert_invariants(&app.pool).await;
    app.stop().await;
}

/// Publishes version 4 of the example policy, with groups 3 and 4 sharing a tier at weights 1
/// and 3, so that the audit's weight test has something to test.
async fn publish_shared_tier_policy(app: &TestApp) {
    let document = drawbridge::demo::POLICY
        .replace("version = 3", "version = 4")
        .replace("tier = 4\nweight = 1.0", "tier = 3\nweight = 3.0");
    assert_ne!(document, drawbridge::demo::POLICY);
    let mut tx = app.pool.begin().await.unwrap();
    drawbridge_platform::policies::publish(&mut tx, &document)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// An app with the demo, groups 3 and 4 sharing a tier, and one draw of 4000 registrants:
/// enough for every bias test.
async fn one_draw_of_4000_in_shared_tiers() -> (TestApp, DrawFigures) {
    let app = spawn_app().await;
    app.load_demo().await;
    publish_shared_tier_policy(&app).await;
    app.insert_registrants(0, 4000).await;
    let allocator = allocator(&app).await;
    let figures = draw(&allocator).await.draw.unwrap();
    (app, figures)
}

/// Someone swaps two winners' pairs in a published record.
fn swap_first_two_winners(manifest: &mut Manifest) {
    let (a, b) = (manifest.matches[0].pair, manifest.matches[1].pair);
    manifest.matches[0].pair = b;
    manifest.matches[1].pair = a;
}

#[tokio::test]
async fn recorded_draws_pass_the_audit_and_replay_from_the_command_line() {
    let (app, figures) = one_draw_of_4000_in_shared_tiers().await;

    let audits = drawbridge::audit::run(&app.pool, &app.hash_key(), Some("bw"), 10)
        .await
        .unwrap();
    assert_eq!(audits.len(), 1);
    let audit = &audits[0];
    assert!(audit.passed(), "{audit:#?}");
    let names: Vec<&str> = audit.tests.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "offer chances follow the group weights",
            "registration time does not matter beyond the weights",
            "database row order does not matter",
            "lottery numbers are uniform"
        ]
    );
    // With the wrong key nothing links, and the audit says so instead of passing vacuously.
    let unlinked = drawbridge::audit::run(&app.pool, &[9; 32], Some("bw"), 10)
        .await
        .unwrap();
    assert!(!unlinked[0].passed());
    assert!(
        unlinked[0].problems[0].contains("hash_key"),
        "{:?}",
        unlinked[0].problems
    );

    // `drawbridge replay` on the published manifest, as anyone would download it.
    let dir = std::env::temp_dir().join(format!("drawbridge-replay-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("manifest.json");
    let mut published = manifest(&app, figures.id).await;
    std::fs::write(&file, serde_json::to_vec(&published).unwrap()).unwrap();
    let ok = drawbridge(&["replay", file.to_str().unwrap()], &[]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("reproduced exactly"));
    // Someone swaps two winners' pairs in the published record: caught.
    swap_first_two_winners(&mut published);
    std::fs::write(&file, serde_json::to_vec(&published).unwrap()).unwrap();
    let tampered = drawbridge(&["replay", file.to_str().unwrap()], &[]);
    assert!(!tampered.status.success());
    let stderr = String::from_utf8_lossy(&tampered.stderr);
    assert!(
        stderr.contains("does NOT reproduce") && stderr.contains("outputs digest"),
        "{stderr}"
    );
    std::fs::write(&file, "{ not json").unwrap();
    let garbage = drawbridge(&["replay", file.to_str().unwrap()], &[]);
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("is not a draw manifest"));

    // A manipulated record in the database fails the audit command.
    sqlx::query("UPDATE draw_candidates SET lottery_key = lottery_key / 2 WHERE group_id = 3")
        .execute(&app.pool)
        .await
        .unwrap();
    let audit = drawbridge(
        &["--config", "deploy/local.toml", "audit", "--region", "bw"],
        &[("DRAWBRIDGE_DATABASE__URL", app.database_url())],
    );
    assert!(!audit.status.success());
    assert!(String::from_utf8_lossy(&audit.stderr).contains("1 of 1 audited draws failed"));
    std::fs::remove_dir_all(dir).unwrap();
    app.stop().await;
}

/// Freed pairs do not wait for the next tick: the slot-pair triggers announce them and the
/// running allocator draws the region as soon as `allocator.draw_when_freed` are free.
#[tokio::test]
async fn freed_pairs_are_drawn_before_the_next_tick() {
    let app = spawn_with(
        Components {
            notifier: false,
            allocator: true,
        },
        |settings| {
            settings.allocator.tick_seconds = 3600;
            settings.allocator.draw_when_freed = 5;
        },
    )
    .await;
    app.load_demo().await;
    // The demo's week of capacity is announced too; with nobody registered yet that early
    // draw finds nothing to do. Let it pass before people arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    app.insert_registrants(0, 20).await;
    // No tick is due for an hour, so nothing is offered yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&app.pool, "SELECT count(*) FROM offers").await, 0);
    // A centre publishes five new pairs.
    sqlx::query(
        "INSERT INTO slot_pairs (id, centre_id, vaccine, first_slot_at, second_slot_at)
         SELECT gen_random_uuid(), 'stuttgart-liederhalle', 'biontech', now() + interval '2 days' + i * interval '10 minutes',
                now() + interval '30 days'
         FROM generate_series(1, 5) AS i",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let offers = eventually(Duration::from_secs(15), || async {
        let n = count(&app.pool, "SELECT count(*) FROM offers WHERE state = 'pending'").await;
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(offers, Some(20), "an early draw offered everyone a pair");
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM draws WHERE state = 'completed'").await,
        1
    );
    app.stop().await;
}

/// Ticks with open pairs but nobody waiting who could take one (too young for every vaccine,
/// or accepting only vaccines no centre within reach has) write no draw: the draw tables
/// refuse DELETE, so every empty draw would stay for good. The skipped ticks are counted, and
/// the first tick after someone could take a pair draws and offers it.
#[tokio::test]
async fn ticks_nobody_could_get_a_pair_from_write_no_draw_and_are_counted() {
    let app = spawn_with(
        Components {
            notifier: false,
            allocator: true,
        },
        |settings| settings.allocator.tick_seconds = 1,
    )
    .await;
    app.load_demo().await;
    let metrics_at = app.allocator_address.clone().unwrap();
    // A child (no vaccine is for under-16s), and someone in Stuttgart who accepts only
    // AstraZeneca and travels 5 km: AstraZeneca is in Karlsruhe and Mannheim, over 60 km away.
    let far = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO registrants (id, region_id, status, channel, phone, birth_year, priority_group,
                                  postcode, accepted_vaccines, max_distance_km, verified_at, booking_code_hash)
         VALUES (gen_random_uuid(), 'bw', 'active', 'web', '+4917100000001', 2015, 1, '70173', '{biontech}', 50,
                 now(), sha256('child'::bytea)),
                ($1, 'bw', 'active', 'web', '+4917100000002', 1950, 1, '70173', '{astrazeneca}', 5,
                 now(), sha256('far'::bytea))",
    )
    .bind(far)
    .execute(&app.pool)
    .await
    .unwrap();
    let ticks = |text: &str| metric(text, "drawbridge_allocator_ticks_total");
    let since = ticks(&app.metrics(&metrics_at).await);
    let text = eventually(Duration::from_secs(20), || async {
        let text = app.metrics(&metrics_at).await;
        (ticks(&text) >= since + 3.0).then_some(text)
    })
    .await
    .expect("the allocator ticks every second");
    for table in ["draws", "draw_candidates", "draw_pairs", "draw_profiles"] {
        let rows = count(&app.pool, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(rows, 0, "{table} has rows after ticks that could offer nothing");
    }
    let skipped = metric(
        &text,
        "drawbridge_allocator_draws_skipped_total{reason=\"no_possible_match\",region=\"bw\"}",
    );
    assert!(skipped >= 3.0, "{skipped} skipped ticks counted:\n{text}");

    // They agree to travel: the next tick draws and offers them an AstraZeneca pair.
    sqlx::query("UPDATE registrants SET max_distance_km = 200 WHERE id = $1")
        .bind(far)
        .execute(&app.pool)
        .await
        .unwrap();
    let offer = eventually(Duration::from_secs(20), || app.pending_offer(far)).await;
    assert!(offer.is_some(), "the next tick offered them a pair");
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM draws WHERE state = 'completed'").await,
        1
    );
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM draw_candidates").await,
        1,
        "the child is not in the pool, the one who travels is"
    );
    app.stop().await;
}

/// Runs `drawbridge audit` with `args` against the app's database and hash key.
fn audit_command(app: &TestApp, args: &[&str]) -> std::process::Output {
    let env = drawbridge_test_support::settings_env(&app.settings);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    drawbridge(
        &[&["--config", "deploy/local.toml", "audit"], args].concat(),
        &env,
    )
}

/// A pool of three is too small for any bias test: the audit says, test by test, that it did
/// not test and why, and does not exit as if all had passed.
#[tokio::test]
async fn an_audit_of_pools_too_small_to_test_says_not_tested_instead_of_passed() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.insert_registrants(0, 3).await;
    let allocator = allocator(&app).await;
    assert_eq!(draw(&allocator).await.draw.unwrap().offers, 3);

    let audit = audit_command(&app, &["--region", "bw"]);
    let stderr = String::from_utf8_lossy(&audit.stderr);
    assert!(!stderr.contains("pass"), "{stderr}");
    assert!(stderr.contains("replays exactly"), "{stderr}");
    for test in [
        "offer chances follow the group weights: too few candidates",
        "registration time does not matter beyond the weights: too few candidates",
        "database row order does not matter: too few candidates",
        "lottery numbers are uniform: too few candidates: needs 50 (5 per bin of 10), the pool has 3",
    ] {
        assert!(
            stderr.contains(&format!("not tested: {test}")),
            "{test}\n{stderr}"
        );
    }
    assert!(stderr.contains("nothing was tested for bias"), "{stderr}");
    assert_eq!(audit.status.code(), Some(3), "{stderr}");
    let printed: Value = serde_json::from_slice(&audit.stdout).unwrap();
    let verdicts: Vec<&str> = printed[0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["not_tested"; 4]);
    app.stop().await;
}

/// Anyone can audit the published manifests alone: no database, configuration or hash key.
/// The tests a manifest allows run; the two that need registration times say why they did not.
#[tokio::test]
async fn published_manifests_are_audited_without_the_database() {
    let (app, figures) = one_draw_of_4000_in_shared_tiers().await;
    let dir = std::env::temp_dir().join(format!("drawbridge-manifests-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let served = app
        .get(&format!("/v1/draws/{}/manifest", figures.id))
        .await
        .bytes()
        .await
        .unwrap();
    std::fs::write(dir.join(format!("{}.json", figures.id)), &served).unwrap();
    let dir_arg = dir.to_str().unwrap();

    let audit = drawbridge(&["audit", "--manifests", dir_arg], &[]);
    let stderr = String::from_utf8_lossy(&audit.stderr);
    assert!(audit.status.success(), "{stderr}");
    assert!(
        stderr.contains("passed: offer chances follow the group weights"),
        "{stderr}"
    );
    assert!(stderr.contains("passed: lottery numbers are uniform"), "{stderr}");
    assert!(
        stderr.contains("not tested: registration time does not matter beyond the weights: needs each candidate's registration"),
        "{stderr}"
    );
    assert!(stderr.contains("2 passed, 2 not tested"), "{stderr}");
    let printed: Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert_eq!(printed[0]["draw"], figures.id.to_string());
    assert_eq!(printed[0]["pool"], 4000);

    // A winner's pair swapped in the published file: the audit of the files fails.
    let mut manifest: Manifest = serde_json::from_slice(&served).unwrap();
    swap_first_two_winners(&mut manifest);
    std::fs::write(
        dir.join(format!("{}.json", figures.id)),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let tampered = drawbridge(&["audit", "--manifests", dir_arg], &[]);
    assert_eq!(tampered.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&tampered.stderr).contains("does NOT reproduce"));
    std::fs::remove_dir_all(dir).unwrap();
    app.stop().await;
}
