//! The invariants of DESIGN.md that the database itself holds, checked against real Postgres:
//! whatever the code does, these writes must be refused.

use drawbridge_test_support::spawn_app;
use sqlx::PgPool;
use uuid::Uuid;

async fn registrant(pool: &PgPool, phone: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO registrants (id, region_id, status, channel, phone, birth_year, priority_group, postcode,
                                  accepted_vaccines, max_distance_km, verified_at, booking_code_hash)
         VALUES ($1, 'bw', 'active', 'web', $2, 1956, 3, '70173', '{biontech}', 30, now(), $3)",
    )
    .bind(id)
    .bind(phone.as_bytes())
    .bind(Uuid::new_v4().as_bytes().repeat(2))
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn open_pair(pool: &PgPool) -> Uuid {
    let (id,): (Uuid,) =
        sqlx::query_as("SELECT id FROM slot_pairs WHERE state = 'open' ORDER BY random() LIMIT 1")
            .fetch_one(pool)
            .await
            .unwrap();
    id
}

async fn offer(pool: &PgPool, pair: Uuid, registrant: Uuid) -> Result<Uuid, String> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO offers (id, slot_pair_id, registrant_id, state, expires_at)
         VALUES ($1, $2, $3, 'pending', now() + interval '1 day')",
    )
    .bind(id)
    .bind(pair)
    .bind(registrant)
    .execute(pool)
    .await
    .map(|_| id)
    .map_err(|e| {
        e.as_database_error()
            .and_then(|d| d.constraint().map(str::to_owned))
            .unwrap_or_else(|| e.to_string())
    })
}

#[tokio::test]
async fn one_pending_offer_per_pair_and_per_registrant() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (anna, ben) = (
        registrant(&app.pool, "+491710000010").await,
        registrant(&app.pool, "+491710000011").await,
    );
    let (pair, other_pair) = (open_pair(&app.pool).await, open_pair(&app.pool).await);
    assert_ne!(pair, other_pair);
    offer(&app.pool, pair, anna).await.unwrap();
    assert_eq!(
        offer(&app.pool, pair, ben).await.unwrap_err(),
        "offers_one_pending_per_pair"
    );
    assert_eq!(
        offer(&app.pool, other_pair, anna).await.unwrap_err(),
        "offers_one_pending_per_registrant"
    );
    offer(&app.pool, other_pair, ben).await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_pair_holds_one_offer_or_one_booking_and_its_state_says_which() {
    let app = spawn_app().await;
    app.load_demo().await;
    let anna = registrant(&app.pool, "+491710000020").await;
    let pair = open_pair(&app.pool).await;
    let offer_id = offer(&app.pool, pair, anna).await.unwrap();
    let set = |sql: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query(sql)
                .bind(pair)
                .bind(offer_id)
                .execute(&pool)
                .await
                .map(drop)
        }
    };
    // Offered without naming the offer, or naming it while still open: refused.
    assert!(
        set("UPDATE slot_pairs SET state = 'offered' WHERE id = $1 AND $2::uuid IS NOT NULL")
            .await
            .is_err()
    );
    assert!(set("UPDATE slot_pairs SET offer_id = $2 WHERE id = $1")
        .await
        .is_err());
    set("UPDATE slot_pairs SET state = 'offered', offer_id = $2 WHERE id = $1")
        .await
        .unwrap();
    // A booking cannot be attached while the offer holds the pair.
    sqlx::query("UPDATE offers SET state = 'accepted', answered_at = now() WHERE id = $1")
        .bind(offer_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let booking = Uuid::new_v4();
    sqlx::query("INSERT INTO bookings (id, offer_id, slot_pair_id, registrant_id, state) VALUES ($1, $2, $3, $4, 'booked')")
        .bind(booking)
        .bind(offer_id)
        .bind(pair)
        .bind(anna)
        .execute(&app.pool)
        .await
        .unwrap();
    let both = sqlx::query("UPDATE slot_pairs SET state = 'booked', booking_id = $2 WHERE id = $1")
        .bind(pair)
        .bind(booking)
        .execute(&app.pool)
        .await;
    assert!(
        both.is_err(),
        "a pair cannot point at an offer and a booking at once"
    );
    sqlx::query("UPDATE slot_pairs SET state = 'booked', booking_id = $2, offer_id = NULL WHERE id = $1")
        .bind(pair)
        .bind(booking)
        .execute(&app.pool)
        .await
        .unwrap();
    app.stop().await;
}

#[tokio::test]
async fn one_notification_per_subject_kind_and_channel() {
    let app = spawn_app().await;
    let subject = Uuid::new_v4();
    let insert = |channel: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO outbox (id, kind, subject_id, channel, recipient, recipient_of, language, payload)
                 VALUES ($1, 'offer', $2, $3, '+491710000030', $2, 'de', '{}')",
            )
            .bind(Uuid::new_v4())
            .bind(subject)
            .bind(channel)
            .execute(&pool)
            .await
        }
    };
    insert("sms").await.unwrap();
    insert("email").await.unwrap();
    assert!(
        insert("sms").await.is_err(),
        "a second SMS for the same offer is refused"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_withdrawn_registrant_keeps_no_personal_data() {
    let app = spawn_app().await;
    app.load_demo().await;
    let anna = registrant(&app.pool, "+491710000040").await;
    let keep_phone =
        sqlx::query("UPDATE registrants SET status = 'withdrawn', withdrawn_at = now() WHERE id = $1")
            .bind(anna)
            .execute(&app.pool)
            .await;
    assert!(keep_phone.is_err(), "withdrawal must erase the phone number");
    sqlx::query("UPDATE registrants SET status = 'withdrawn', withdrawn_at = now(), phone = NULL, email = NULL WHERE id = $1")
        .bind(anna)
        .execute(&app.pool)
        .await
        .unwrap();
    // The number is free for a new registration.
    registrant(&app.pool, "+491710000040").await;
    app.stop().await;
}

#[tokio::test]
async fn history_rows_are_never_deleted() {
    let app = spawn_app().await;
    app.load_demo().await;
    let anna = registrant(&app.pool, "+491710000030").await;
    offer(&app.pool, open_pair(&app.pool).await, anna).await.unwrap();
    for table in ["registrants", "slot_pairs", "offers", "draws"] {
        for statement in [
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table} CASCADE"),
        ] {
            let error = sqlx::query(&statement).execute(&app.pool).await.unwrap_err();
            assert!(
                error.to_string().contains("are never deleted"),
                "{statement}: {error}"
            );
        }
    }
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM offers")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 1);
    app.stop().await;
}
