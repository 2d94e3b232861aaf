//! Check-in passes a door checks offline: signed with Ed25519, checked with the public keys
//! the gateway publishes and nothing else, by any JOSE library or `drawbridge pass verify`.

use chrono::Utc;
use drawbridge_domain::{CheckinPass, PassKeyring, PassSigningKey, PublicPassKeys, Role};
use drawbridge_test_support::{spawn_app, TestApp};
use reqwest::Method;
use uuid::Uuid;

use crate::drawbridge;

const STUTTGART: &str = "stuttgart-liederhalle";

/// A registrant of the demo with a booking: the pass their status shows.
async fn pass_of_a_booked_person(app: &TestApp, phone: &str) -> String {
    let (_, code) = app.registrant_with_code(phone).await;
    app.draw().await;
    let holder = format!("BookingCode {code}");
    let (status, _) = app.call(Method::POST, "/v1/me/offer/accept", &holder, None).await;
    assert_eq!(status, 200);
    let (_, me) = app.call(Method::GET, "/v1/me", &holder, None).await;
    me["booking"]["checkin_pass"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_pass_checks_offline_with_the_published_keys_alone() {
    let app = spawn_app().await;
    app.load_demo().await;
    let pass = pass_of_a_booked_person(&app, "+4917155591001").await;

    let published = app.get("/.well-known/jwks.json").await;
    assert_eq!(published.status(), 200);
    assert_eq!(published.headers()["cache-control"], "public, max-age=3600");
    let jwks = published.text().await.unwrap();
    let seed = app.settings.secrets.pass_keys[0].seed.clone();
    assert!(
        !jwks.contains(drawbridge_platform::config::ExposeSecret::expose_secret(&seed)),
        "no private key is published: {jwks}"
    );
    let keys = PublicPassKeys::from_jwk_set(&jwks).unwrap();
    let checked = CheckinPass::verify(&keys, &pass, Utc::now()).unwrap();
    assert_eq!(checked.centre, STUTTGART);

    // As a door runs it: the key file and the pass, no configuration and no services.
    let dir = std::env::temp_dir().join(format!("drawbridge-passes-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jwks.json");
    std::fs::write(&file, &jwks).unwrap();
    let keys_arg = file.to_str().unwrap();
    let valid = drawbridge(&["pass", "verify", &pass, "--keys", keys_arg], &[]);
    let said = String::from_utf8_lossy(&valid.stdout);
    assert!(valid.status.success(), "{valid:?}");
    assert!(
        said.contains(&checked.booking.to_string()) && said.contains(STUTTGART),
        "{said}"
    );

    // Altered: the payload of another booking under the same signature.
    let mut parts: Vec<&str> = pass.split('.').collect();
    let other = pass_of_a_booked_person(&app, "+4917155591002").await;
    parts[1] = other.split('.').nth(1).unwrap();
    let altered = parts.join(".");
    let refused = drawbridge(&["pass", "verify", &altered, "--keys", keys_arg], &[]);
    assert!(!refused.status.success(), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("NOT valid") && stderr.contains("altered or forged"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_door_refuses_a_pass_of_a_key_it_does_not_publish() {
    let app = spawn_app().await;
    app.load_demo().await;
    let genuine = pass_of_a_booked_person(&app, "+4917155591003").await;
    let claims = CheckinPass::verify(
        &PublicPassKeys::from_jwk_set(&app.get("/.well-known/jwks.json").await.text().await.unwrap())
            .unwrap(),
        &genuine,
        Utc::now(),
    )
    .unwrap();
    let door = format!(
        "Bearer {}",
        app.staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
            .await
    );
    // A retired key (no longer listed) and a forger's key under the listed key's id.
    let listed_id = app.settings.secrets.pass_keys[0].id.clone();
    for (id, refusal) in [
        ("retired-2026-01", "no longer in use"),
        (listed_id.as_str(), "altered or forged"),
    ] {
        let signer = PassKeyring::new(vec![PassSigningKey {
            id: id.into(),
            seed: [9; 32],
        }])
        .unwrap();
        let forged = claims.sign(&signer, Utc::now());
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/v1/centres/{STUTTGART}/checkins"),
                &door,
                Some(&serde_json::json!({ "pass": forged })),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["field"], "pass", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(refusal), "{message}");
    }
    app.stop().await;
}
