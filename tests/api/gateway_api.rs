//! The gateway's public endpoints against real Postgres and Redis: operations endpoints, the
//! published policy, eligibility with reasons, and every way a registration can be refused.

use drawbridge_test_support::{registration, spawn_app, TestApp};
use serde_json::{json, Value};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(
        ready,
        json!({ "status": "ready", "dependencies": { "postgres": "ok", "redis": "ok" } })
    );
    assert_eq!(app.get("/v1/regions/nowhere/policy").await.status(), 404);
    assert_eq!(app.get("/no/such/page").await.status(), 404);
    // A path that takes other methods says so.
    for (method, path) in [
        (reqwest::Method::DELETE, "/v1/regions"),
        (reqwest::Method::GET, "/v1/staff/sessions"),
        (reqwest::Method::PUT, "/v1/rooms/any/join"),
    ] {
        let response = app.http.request(method, app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 405, "{path}");
        assert!(response.headers().contains_key("allow"), "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed", "{path}: {body}");
    }
    let metrics = app.metrics(&app.address).await;
    // Counted by route pattern, not by raw path, so ids in paths do not make new series.
    for series in [
        r#"drawbridge_gateway_http_requests_total{method="GET",route="/readyz",status="200"} 1"#,
        r#"drawbridge_gateway_http_requests_total{method="GET",route="/v1/regions/{region}/policy",status="404"} 1"#,
        r#"drawbridge_gateway_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_documented_path_is_served() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.put_room("demo-room", &json!({})).await;
    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 11);
    for (path, operations) in paths {
        let path = path
            .replace("{region}", "bw")
            .replace("{room}", "demo-room")
            .replace("{centre}", "stuttgart-liederhalle")
            // A caller's pages take a UUID only.
            .replace(
                "/staff/callers/{id}",
                "/staff/callers/00000000-0000-0000-0000-000000000000",
            )
            // So do a draw's.
            .replace(
                "/staff/draws/{id}",
                "/staff/draws/00000000-0000-0000-0000-000000000000",
            )
            .replace("{report}", "a-report")
            .replace("{file}", "report.html");
        for method in operations.as_object().unwrap().keys() {
            let response = match method.as_str() {
                "get" => app.get(&path).await,
                "post" => app.post_json(&path, &json!({})).await,
                "put" => app
                    .http
                    .put(app.url(&path))
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap(),
                "patch" => app
                    .http
                    .patch(app.url(&path))
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap(),
                "delete" => app.http.delete(app.url(&path)).send().await.unwrap(),
                other => panic!("undocumented method {other}"),
            };
            // An empty POST body is refused by the route itself, never by the 404 fallback.
            assert_ne!(
                response.status(),
                404,
                "{method} {path} is documented but not served"
            );
        }
    }
    let unknown = app.get("/v1/nothing-here").await;
    assert_eq!(unknown.status(), 404);
    let error: Value = unknown.json().await.unwrap();
    assert_eq!(error["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn the_policy_is_published_with_version_and_digest() {
    let app = spawn_app().await;
    app.load_demo().await;
    let policy: Value = app.get("/v1/regions/bw/policy").await.json().await.unwrap();
    assert_eq!(policy["region"], "bw");
    assert_eq!(policy["version"], 3);
    assert_eq!(policy["digest"].as_str().unwrap().len(), 64);
    let codes: Vec<&str> = policy["policy"]["vaccines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["biontech", "moderna", "astrazeneca", "janssen"]);
    let page = app.get("/regions/bw/policy?lang=en").await.text().await.unwrap();
    assert!(page.contains("Vaxzevria") && page.contains(policy["digest"].as_str().unwrap()));
    let regions: Value = app.get("/v1/regions").await.json().await.unwrap();
    assert_eq!(regions["regions"][0]["id"], "bw");
    assert_eq!(app.get("/v1/regions/atlantis/policy").await.status(), 404);
    app.stop().await;
}

/// The policy names each group in every language, and each page and answer uses the name in
/// its own language; Arabic pages run right to left.
#[tokio::test]
async fn pages_name_the_priority_groups_in_their_language() {
    let app = spawn_app().await;
    app.load_demo().await;
    let names = [
        ("de", "Höchste Priorität", "ltr"),
        ("en", "Highest priority", "ltr"),
        ("tr", "En yüksek öncelik", "ltr"),
        ("ar", "الأولوية القصوى", "rtl"),
    ];
    for page in ["/regions/bw/policy", "/regions/bw/check"] {
        for (lang, name, dir) in names {
            let html = app
                .get(&format!("{page}?lang={lang}"))
                .await
                .text()
                .await
                .unwrap();
            assert!(
                html.contains(&format!(r#"<html lang="{lang}" dir="{dir}">"#)),
                "{page} {lang}: {html}"
            );
            for (other, other_name, _) in names {
                assert_eq!(html.contains(other_name), other == lang, "{page} {lang}: {html}");
            }
            assert!(html.contains(name));
        }
    }
    let policy: Value = app.get("/v1/regions/bw/policy").await.json().await.unwrap();
    let name = &policy["policy"]["groups"][0]["name"];
    for (lang, text, _) in names {
        assert!(name[lang].as_str().unwrap().starts_with(text), "{name}");
    }
    let regions: Value = app.get("/v1/regions").await.json().await.unwrap();
    assert_eq!(regions["regions"][0]["name"]["en"], "Baden-Württemberg");
    app.stop().await;
}

/// The hidden rule of 2021: people aged 60+ were silently never offered mRNA vaccines. Here a
/// 65-year-old who accepts only mRNA vaccines is eligible for them, and told why, rule by rule.
#[tokio::test]
async fn a_65_year_old_accepting_only_mrna_is_eligible_for_mrna_and_told_why() {
    let app = spawn_app().await;
    app.load_demo().await;
    let body = json!({
        "birth_year": 1956, "priority_group": 3, "postcode": "70173",
        "accepted_vaccines": ["biontech", "moderna"], "on": "2021-05-03"
    });
    let response = app.post_json("/v1/regions/bw/eligibility", &body).await;
    assert_eq!(response.status(), 200);
    let evaluation: Value = response.json().await.unwrap();
    let decision = |code: &str| {
        evaluation["vaccines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["vaccine"] == code)
            .unwrap()
            .clone()
    };
    for mrna in ["biontech", "moderna"] {
        let d = decision(mrna);
        assert_eq!(d["eligible"], true, "{d}");
        assert!(d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["passed"] == true
                && !r["en"].as_str().unwrap().is_empty()
                && !r["de"].as_str().unwrap().is_empty()));
    }
    for vector in ["astrazeneca", "janssen"] {
        let d = decision(vector);
        assert_eq!(d["eligible"], false);
        let failed: Vec<&str> = d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["passed"] == false)
            .map(|r| r["rule"].as_str().unwrap())
            .collect();
        assert_eq!(
            failed,
            ["accepted"],
            "refused only because the person does not accept it"
        );
    }
    // The same evaluation as a page.
    let page = app.get("/regions/bw/check?lang=en&birth_year=1956&priority_group=3&postcode=70173&vaccine=biontech&vaccine=moderna").await.text().await.unwrap();
    assert!(page.contains("Why, rule by rule"), "{page}");
    // Nothing was stored.
    let (registrants,): (i64,) = sqlx::query_as("SELECT count(*) FROM registrants")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(registrants, 0);
    app.stop().await;
}

async fn refused(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app.post_json("/v1/regions/bw/registrations", &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn bad_registrations_get_a_clear_error_and_store_nothing() {
    let app = spawn_app().await;
    app.load_demo().await;
    let with = |key: &str, value: Value| {
        let mut body = registration("0171 7654321");
        body[key] = value;
        body
    };
    let cases = [
        (with("phone", json!("call me maybe")), 422, Some("phone")),
        (with("phone", json!("0171")), 422, Some("phone")),
        (with("email", json!("anna@")), 422, Some("email")),
        (with("birth_year", json!(1850)), 422, Some("birth_year")),
        (with("priority_group", json!(9)), 422, Some("priority_group")),
        (with("postcode", json!("1234")), 422, Some("postcode")),
        (with("postcode", json!("10115")), 422, Some("postcode")), // Berlin is not in bw
        (
            with("accepted_vaccines", json!([])),
            422,
            Some("accepted_vaccines"),
        ),
        (
            with("accepted_vaccines", json!(["sputnik"])),
            422,
            Some("accepted_vaccines"),
        ),
        (with("max_distance_km", json!(0)), 422, Some("max_distance_km")),
        (with("language", json!("fr")), 400, None),
        (with("nickname", json!("anna")), 400, None),
        (json!({ "phone": "0171 7654321" }), 400, None),
    ];
    for (body, status, field) in cases {
        let (got, error) = refused(&app, body.clone()).await;
        assert_eq!(got, status, "{body} -> {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.len() > 10, "a message a person can act on: {error}");
        match field {
            Some(field) => {
                assert_eq!(error["error"]["field"], field, "{error}");
                assert_eq!(error["error"]["code"], "invalid_field");
            }
            None => assert_eq!(error["error"]["code"], "malformed_request", "{error}"),
        }
    }
    let not_json = app
        .http
        .post(app.url("/v1/regions/bw/registrations"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let (unknown_region, _) = {
        let response = app
            .post_json(
                "/v1/regions/atlantis/registrations",
                &registration("0171 7654321"),
            )
            .await;
        (response.status().as_u16(), ())
    };
    assert_eq!(unknown_region, 404);
    let (rows,): (i64,) =
        sqlx::query_as("SELECT (SELECT count(*) FROM registrants) + (SELECT count(*) FROM outbox)")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows, 0, "refused requests store nothing");
    app.stop().await;
}

#[tokio::test]
async fn one_live_registration_per_person_on_a_phone_number() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (first, _) = refused(&app, registration("0171 1111111")).await;
    assert_eq!(first, 202);
    // The same number written another way is the same number: its registration, whose code
    // went out moments ago.
    let (second, error) = refused(&app, registration("+49 171 111 1111")).await;
    assert_eq!(second, 429);
    assert_eq!(error["error"]["code"], "too_many_requests");
    let (registrants, rows): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM registrants), (SELECT count(*) FROM outbox)")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((registrants, rows), (1, 1), "one registration, one SMS");
    app.stop().await;
}

#[tokio::test]
async fn a_nul_character_anywhere_is_refused_at_the_edge_naming_the_field() {
    let app = spawn_app().await;
    app.load_demo().await;
    let mut registration_body = registration("0171 7654399");
    registration_body["email"] = json!("anna\u{0}@example.de");
    let posts = [
        (
            "/v1/staff/sessions",
            json!({ "username": "agent\u{0}.bw", "password": "a long test password" }),
            "username",
        ),
        ("/v1/regions/bw/registrations", registration_body, "email"),
        (
            "/v1/regions/bw/eligibility",
            json!({ "birth_year": 1950, "priority_group": 1, "postcode": "70173",
                    "accepted_vaccines": ["bio\u{0}ntech"] }),
            "accepted_vaccines[0]",
        ),
    ];
    let mut answers = Vec::new();
    for (path, body, field) in posts {
        answers.push((app.post_json(path, &body).await, field));
    }
    let form = app
        .http
        .post(app.url(&format!("/offers/{}/accept", uuid::Uuid::new_v4())))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=ab%00c")
        .send()
        .await
        .unwrap();
    answers.push((form, "token"));
    for (path, field) in [
        ("/v1/regions/%00/policy", "region"),
        ("/regions/b%00w/check?lang=en", "region"),
        ("/v1/rooms/r%00/status", "room"),
        ("/v1/draws?region=b%00w", "region"),
    ] {
        answers.push((app.get(path).await, field));
    }
    for (response, field) in answers {
        assert_eq!(response.status(), 422, "{field}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_field", "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("NUL"));
    }
    // A backslash followed by `u0000` is text like any other, and so is `%00` in JSON.
    let mut body = registration("0171 7654398");
    body["postcode"] = json!("7%001");
    let (status, body) = refused(&app, body).await;
    assert_eq!((status, &body["error"]["field"]), (422, &json!("postcode")));
    assert!(
        !body["error"]["message"].as_str().unwrap().contains("NUL"),
        "{body}"
    );
    let response = app
        .post_json(
            "/v1/staff/sessions",
            &json!({ "username": "agent\\u0000.bw", "password": "a long test password" }),
        )
        .await;
    assert_eq!(response.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_for_operations_only() {
    let app = spawn_app().await;
    for authorization in [None, Some("Bearer not-the-token")] {
        let mut request = app.http.get(app.url("/metrics"));
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "metrics_token_required", "{body}");
    }
    assert!(app
        .metrics(&app.address)
        .await
        .contains("drawbridge_gateway_http_requests_total"));
    app.stop().await;

    // Without a token configured, the gateway (which the internet reaches) has no metrics.
    let app = drawbridge_test_support::spawn_with(Default::default(), |settings| {
        settings.telemetry.metrics_token = String::new().into();
    })
    .await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn pages_cannot_be_framed_or_leak_their_address_and_personal_answers_are_never_stored() {
    let app = spawn_app().await;
    app.load_demo().await;
    let page = app.get("/regions/bw/check").await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "frame-ancestors 'none'",
        "default-src 'none'",
        "script-src 'self'",
        "form-action 'self'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");

    // Answers with credentials or personal data: never kept by a browser or proxy.
    let registered = app
        .post_json("/v1/regions/bw/registrations", &registration("+49 171 5557 0001"))
        .await;
    assert_eq!(registered.headers()["cache-control"], "no-store");
    let id = registered.json::<Value>().await.unwrap()["registration_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let verify = app
        .post_json(
            &format!("/v1/registrations/{id}/verify"),
            &json!({ "code": "000000" }),
        )
        .await;
    let me = app.get("/v1/me").await;
    let login = app
        .post_json(
            "/v1/staff/sessions",
            &json!({ "username": "nobody", "password": "wrong password" }),
        )
        .await;
    let lookup = app
        .post_json(
            "/v1/callcentre/lookup",
            &json!({ "booking_code": "K7Q2-M9XD-4HTB-R8WN" }),
        )
        .await;
    for response in [&verify, &me, &login, &lookup] {
        assert_eq!(
            response.headers()["cache-control"],
            "no-store",
            "{}",
            response.url()
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }

    // Static files say otherwise themselves: kept for good, as their names change with them.
    let html = page.text().await.unwrap();
    let stylesheet = html
        .split('"')
        .find(|part| part.starts_with("/static/site."))
        .expect("the page links its stylesheet");
    let css = app.get(stylesheet).await;
    assert!(css.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    app.stop().await;
}

#[tokio::test]
async fn errors_raised_around_the_handlers_come_in_the_documented_shape() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.put_room("demo-room", &json!({})).await;
    let offer = "/offers/00000000-0000-4000-8000-000000000000/accept";
    let huge = "x".repeat(300 * 1024);
    let requests = [
        // A form route sent JSON, and one sent a body too large; the room join and the rooms
        // admin sent bodies too large.
        (
            app.http.post(app.url(offer)).json(&json!({ "token": "t" })),
            415,
            "unsupported_media_type",
        ),
        (
            app.http
                .post(app.url(offer))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(format!("token={huge}")),
            413,
            "payload_too_large",
        ),
        (
            app.http
                .post(app.url("/v1/rooms/demo-room/join"))
                .body(huge.clone()),
            413,
            "payload_too_large",
        ),
        (
            app.http
                .put(app.url("/v1/admin/rooms/demo-room"))
                .bearer_auth(drawbridge_test_support::ADMIN_TOKEN)
                .body(huge.clone()),
            413,
            "payload_too_large",
        ),
    ];
    for (request, status, code) in requests {
        let response = request.send().await.unwrap();
        let what = format!("{} {}", response.url(), response.status());
        assert_eq!(response.status(), status, "{what}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{what}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.ends_with('.')),
            "{body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_json_route_answers_a_body_of_another_type_with_415_and_one_too_large_with_413() {
    let app = spawn_app().await;
    let login = app.url("/v1/staff/sessions");
    let huge = json!({ "username": "x".repeat(20 * 1024), "password": "p" });
    let requests = [
        (app.http.post(&login), 415, "unsupported_media_type"),
        (
            app.http
                .post(&login)
                .header("Content-Type", "text/plain")
                .body(r#"{"username": "a", "password": "b"}"#),
            415,
            "unsupported_media_type",
        ),
        (app.http.post(&login).json(&huge), 413, "payload_too_large"),
    ];
    for (request, status, code) in requests {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_json_body_is_an_object_where_a_whole_float_is_an_integer() {
    let app = spawn_app().await;
    app.load_demo().await;
    // JSON Schema, and so openapi.json, counts 1956.0 as an integer.
    let question = json!({ "birth_year": 1956.0, "priority_group": 3.0, "postcode": "70173",
                           "accepted_vaccines": ["biontech"] });
    let response = app.post_json("/v1/regions/bw/eligibility", &question).await;
    assert_eq!(response.status(), 200);
    let half = json!({ "birth_year": 1956.5, "priority_group": 3, "postcode": "70173",
                       "accepted_vaccines": ["biontech"] });
    let response = app.post_json("/v1/regions/bw/eligibility", &half).await;
    assert_eq!(response.status(), 400);
    // The same fields as an array are not the object the operation takes.
    let fields = json!([1956, 3, "70173", ["biontech"]]);
    let response = app.post_json("/v1/regions/bw/eligibility", &fields).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "malformed_request", "{body}");
    // The rooms admin reads its body the same way.
    let response = app
        .http
        .put(app.url("/v1/admin/rooms/whole"))
        .bearer_auth(drawbridge_test_support::ADMIN_TOKEN)
        .json(&json!({ "idle_seconds": 90.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn one_rule_per_field_everywhere() {
    let app = spawn_app().await;
    app.load_demo().await;
    // The eligibility check refuses a vaccine the region does not have, as registering does.
    let response = app
        .post_json(
            "/v1/regions/bw/eligibility",
            &json!({ "birth_year": 1950, "priority_group": 1, "postcode": "70173",
                     "accepted_vaccines": ["sputnik"] }),
        )
        .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "accepted_vaccines", "{body}");

    // Capacity for a day gone by, or a year typed wrong, is refused naming the day.
    let staff = app
        .staff_token(
            "door.stuttgart",
            drawbridge_domain::Role::CentreStaff,
            "bw",
            Some("stuttgart-liederhalle"),
        )
        .await;
    for day in ["1900-01-01", "9999-12-31"] {
        let response = app
            .http
            .post(app.url("/v1/centres/stuttgart-liederhalle/capacity"))
            .bearer_auth(&staff)
            .header("Idempotency-Key", format!("capacity-{day}"))
            .json(
                &json!({ "vaccine": "biontech", "day": day, "from": "09:00:00", "until": "10:00:00",
                           "slot_minutes": 15, "people_per_slot": 1, "second_dose_after_days": 21 }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{day}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["field"], "day", "{day}: {body}");
    }
    let pairs: i64 = sqlx::query_scalar("SELECT count(*) FROM capacity_batches")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(pairs, 0, "nothing published");
    app.stop().await;
}
