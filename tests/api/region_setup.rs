//! A region set up by its admin: centres, postcode areas and staff imported from CSV files (in
//! the console and with the `drawbridge` commands, which run the same code), a dry run that
//! changes nothing, a file with one wrong line that changes nothing, a closed centre that
//! publishes nothing and is offered to nobody, a policy checked and published, the audit log
//! filtered; and every one of these refused to other roles, other regions and other sites.

use drawbridge_domain::Role;
use drawbridge_test_support::{spawn_app, TestApp};
use uuid::Uuid;

use crate::drawbridge;
use crate::staff_pages::Console;

const STUTTGART: &str = "stuttgart-liederhalle";

const CENTRES_FILE: &str = "id;name;address;postcode;latitude;longitude;vaccines\n\
    ulm-messe;Impfzentrum Ulm Messe;\"Böfinger Straße 50, 89073 Ulm\";89073;48,4152;9,9951;biontech moderna\n\
    tuebingen-paul-horn;Impfzentrum Tübingen;Europastraße 50, 72072 Tübingen;72072;48,5216;9,0576;\n";

const STAFF_FILE: &str = "username,role,centre\n\
    agent.ulm,callcentre_agent,\n\
    door.ulm,centre_staff,ulm-messe\n";

async fn centres(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM centres")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn accounts(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM staff")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Writes `text` to a fresh file; answers its path.
fn file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("drawbridge-setup-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Logs in over the staff API; the status.
async fn logs_in(app: &TestApp, username: &str, password: &str) -> u16 {
    app.post_json(
        "/v1/staff/sessions",
        &serde_json::json!({ "username": username, "password": password }),
    )
    .await
    .status()
    .as_u16()
}

#[tokio::test]
async fn the_cli_imports_centres_postcodes_and_staff_only_when_every_line_is_right() {
    let app = spawn_app().await;
    app.load_demo().await;
    let env = [("DRAWBRIDGE_DATABASE__URL", app.database_url())];
    let run = |args: &[&str]| drawbridge(&[&["--config", "deploy/local.toml"], args].concat(), &env);
    let before = centres(&app).await;

    let centres_file = file("centres.csv", CENTRES_FILE);
    let dry = run(&[
        "centres",
        "import",
        centres_file.to_str().unwrap(),
        "--region",
        "bw",
        "--dry-run",
    ]);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    let said: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(said["dry_run"], true);
    assert_eq!(said["rows"][0]["change"], "created", "{said}");
    assert_eq!(centres(&app).await, before, "a dry run changes nothing");

    for (wrong_line, said) in [
        (
            "aalen;Aalen;Street 1;7343;48.8;10.1;",
            "line 4: postcode \"7343\" must have five digits",
        ),
        (
            "heilbronn;Heilbronn;Street 2;74072;48.8;9.2;pfizer",
            "line 4: the policy of region bw has no vaccine \"pfizer\"",
        ),
        (
            "ulm-messe;Ulm;Street 3;89073;48.4;9.9;",
            "line 4: centre ulm-messe is named on an earlier line too",
        ),
    ] {
        let wrong = file("wrong.csv", &format!("{CENTRES_FILE}{wrong_line}\n"));
        let refused = run(&["centres", "import", wrong.to_str().unwrap(), "--region", "bw"]);
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(said), "{stderr}");
        assert_eq!(centres(&app).await, before, "one wrong line and nothing changes");
    }

    let imported = run(&[
        "centres",
        "import",
        centres_file.to_str().unwrap(),
        "--region",
        "bw",
    ]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert_eq!(centres(&app).await, before + 2);
    let (address, vaccines, latitude): (String, Option<Vec<String>>, f64) =
        sqlx::query_as("SELECT address, vaccines, latitude FROM centres WHERE id = 'ulm-messe'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(address, "Böfinger Straße 50, 89073 Ulm");
    assert_eq!(vaccines, Some(vec!["biontech".to_owned(), "moderna".to_owned()]));
    assert_eq!(latitude, 48.4152, "a decimal comma is read");
    let again = run(&[
        "centres",
        "import",
        centres_file.to_str().unwrap(),
        "--region",
        "bw",
    ]);
    let said: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(said["rows"][0]["change"], "unchanged", "{said}");
    // Another region's admin cannot take over the centre by importing its id.
    sqlx::query("INSERT INTO regions (id, name) VALUES ('by', 'Bayern')")
        .execute(&app.pool)
        .await
        .unwrap();
    let foreign = drawbridge_test_support::run_drawbridge(
        env!("CARGO_BIN_EXE_drawbridge"),
        &[
            "--config",
            "deploy/local.toml",
            "centres",
            "import",
            centres_file.to_str().unwrap(),
            "--region",
            "by",
        ],
        &env,
    );
    assert!(!foreign.status.success(), "{foreign:?}");

    let closed = run(&["centres", "close", "ulm-messe", "--region", "bw"]);
    assert!(closed.status.success(), "{closed:?}");
    let is_closed = || async {
        sqlx::query_scalar::<_, bool>("SELECT closed_at IS NOT NULL FROM centres WHERE id = 'ulm-messe'")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    assert!(is_closed().await);
    assert!(
        !run(&["centres", "open", "ulm-messe", "--region", "by"])
            .status
            .success(),
        "not by's"
    );
    assert!(run(&["centres", "open", "ulm-messe", "--region", "bw"])
        .status
        .success());
    assert!(!is_closed().await);

    let postcodes = file(
        "postcodes.csv",
        "postcode,latitude,longitude\n89073,48.40,9.99\n70173,48.7758,9.1829\n",
    );
    let counted = run(&["postcodes", "import", postcodes.to_str().unwrap()]);
    let said: serde_json::Value = serde_json::from_slice(&counted.stdout).unwrap();
    assert_eq!(
        said,
        serde_json::json!({ "dry_run": false, "created": 1, "changed": 0, "unchanged": 1 })
    );

    let before = accounts(&app).await;
    let staff = file("staff.csv", STAFF_FILE);
    let dry = run(&[
        "staff",
        "import",
        staff.to_str().unwrap(),
        "--region",
        "bw",
        "--dry-run",
    ]);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    assert_eq!(accounts(&app).await, before);
    let not_ours = file(
        "not-ours.csv",
        "username,role,centre\ndoor.x,centre_staff,ulm-messe\n",
    );
    let refused = run(&["staff", "import", not_ours.to_str().unwrap(), "--region", "by"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("line 2: there is no centre \"ulm-messe\" in region \"by\""),
        "{stderr}"
    );
    let created = run(&["staff", "import", staff.to_str().unwrap(), "--region", "bw"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let said: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let password = said["rows"][1]["row"]["password"].as_str().unwrap().to_owned();
    assert_eq!(said["rows"][1]["row"]["centre"], "ulm-messe");
    assert_eq!(
        logs_in(&app, "door.ulm", &password).await,
        201,
        "the printed password works"
    );
    let twice = run(&["staff", "import", staff.to_str().unwrap(), "--region", "bw"]);
    assert!(String::from_utf8_lossy(&twice.stderr).contains("line 2: username \"agent.ulm\" is taken"));

    let reset = run(&["staff", "reset-password", "door.ulm"]);
    let said: serde_json::Value = serde_json::from_slice(&reset.stdout).unwrap();
    assert_eq!(
        logs_in(&app, "door.ulm", &password).await,
        401,
        "the old password is gone"
    );
    assert_eq!(
        logs_in(&app, "door.ulm", said["password"].as_str().unwrap()).await,
        201
    );
    app.stop().await;
}

/// A set-up file posted to the console, as the browser's form sends it, in English.
async fn upload(console: &Console<'_>, path: &str, text: &str, dry_run: bool) -> (u16, String) {
    upload_in("en", console, path, text, dry_run).await
}

/// [`upload`] from the console in `lang`.
async fn upload_in(
    lang: &str,
    console: &Console<'_>,
    path: &str,
    text: &str,
    dry_run: bool,
) -> (u16, String) {
    let mut form = reqwest::multipart::Form::new()
        .text("csrf", console.csrf.clone())
        .part(
            "file",
            reqwest::multipart::Part::text(text.to_owned()).file_name("file.csv"),
        );
    if dry_run {
        form = form.text("dry_run", "yes");
    }
    let response = console
        .client
        .post(console.app.url(&format!("{path}?lang={lang}")))
        .header("Cookie", &console.session)
        .multipart(form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_console_imports_after_a_dry_run_and_names_every_wrong_line() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.staff_token("admin.anna", Role::RegionAdmin, "bw", None).await;
    let console = Console::sign_in(&app, "admin.anna").await;
    let before = centres(&app).await;

    let (status, page) = upload(&console, "/staff/admin/centres/import", CENTRES_FILE, true).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("An import would create 2, change 0"), "{page}");
    assert_eq!(centres(&app).await, before, "a dry run changes nothing");
    let wrong = format!("{CENTRES_FILE}aalen;Aalen;Street 1;7343;48.8;10.1;\n");
    let (status, page) = upload(&console, "/staff/admin/centres/import", &wrong, false).await;
    assert_eq!(status, 422);
    assert!(
        page.contains("Line 4: the postcode “7343” must have five digits"),
        "{page}"
    );
    let (status, page) = upload_in("de", &console, "/staff/admin/centres/import", &wrong, false).await;
    assert_eq!(status, 422);
    assert!(
        page.contains("Zeile 4: die Postleitzahl „7343“ muss fünf Ziffern haben"),
        "{page}"
    );
    assert_eq!(centres(&app).await, before);
    let (status, page) = upload(&console, "/staff/admin/centres/import", CENTRES_FILE, false).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(centres(&app).await, before + 2);

    let (status, page) = upload(&console, "/staff/admin/staff/import", STAFF_FILE, false).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("door.ulm"), "{page}");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM staff_actions WHERE action IN ('centre.save', 'staff.import')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 3, "two centres and one import");
    let (status, page) = console.get("/staff/admin/audit?action=centre.save").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("ulm-messe") && !page.contains("staff.import</td>"),
        "{page}"
    );
    let (status, _) = console.get("/staff/admin/audit?from=yesterday").await;
    assert_eq!(status, 422, "a day that cannot be read is said");
    app.stop().await;
}

#[tokio::test]
async fn a_closed_centre_publishes_nothing_and_its_appointments_are_offered_to_nobody() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.staff_token("admin.anna", Role::RegionAdmin, "bw", None).await;
    let token = app
        .staff_token("door.sam", Role::CentreStaff, "bw", Some(STUTTGART))
        .await;
    let console = Console::sign_in(&app, "admin.anna").await;
    // Near Stuttgart only: no other centre is within 30 km of 70173.
    let (person, _) = app.registrant_with_code("+491715550201").await;
    let closed = console
        .post(
            &format!("/staff/admin/centres/{STUTTGART}/closed"),
            &[("closed", "true")],
            None,
        )
        .await;
    assert_eq!(closed.status(), 303);
    let tick = app.draw().await;
    assert_eq!(app.pending_offer(person).await, None, "{tick:?}");

    let capacity = serde_json::json!({
        "vaccine": "biontech", "day": (chrono::Utc::now() + chrono::Duration::days(2)).date_naive(),
        "from": "09:00", "until": "10:00", "slot_minutes": 10, "people_per_slot": 1,
        "second_dose_after_days": 42
    });
    let publish = |key: &'static str, body: serde_json::Value| {
        app.http
            .post(app.url(&format!("/v1/centres/{STUTTGART}/capacity")))
            .bearer_auth(&token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let refused = publish("k1", capacity.clone()).await.unwrap();
    assert_eq!(refused.status(), 409);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "centre_closed", "{body}");

    let opened = console
        .post(
            &format!("/staff/admin/centres/{STUTTGART}/closed"),
            &[("closed", "false")],
            None,
        )
        .await;
    assert_eq!(opened.status(), 303);
    let mut janssen = capacity.clone();
    janssen["vaccine"] = "janssen".into();
    janssen["second_dose_after_days"] = serde_json::Value::Null;
    let not_given = publish("k2", janssen).await.unwrap();
    assert_eq!(
        not_given.status(),
        422,
        "Stuttgart gives BioNTech and Moderna only"
    );
    let body: serde_json::Value = not_given.json().await.unwrap();
    assert_eq!(body["error"]["field"], "vaccine", "{body}");
    app.draw().await;
    assert!(
        app.pending_offer(person).await.is_some(),
        "open again, its pairs are offered"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_new_policy_version_is_checked_compared_and_published_from_the_console() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.staff_token("admin.anna", Role::RegionAdmin, "bw", None).await;
    let console = Console::sign_in(&app, "admin.anna").await;
    let (status, page) = console.get("/staff/admin/policy").await;
    assert_eq!(status, 200);
    let current = drawbridge::demo::POLICY.to_owned();
    let same_version = current.replace("offer_window_minutes = 1440", "offer_window_minutes = 720");
    assert_ne!(same_version, current, "the demo policy sets offer_window_minutes");
    assert!(
        page.contains("offer_window_minutes = 1440"),
        "the current document to start from"
    );

    let console = &console;
    let check = |document: String| async move {
        let response = console
            .post("/staff/admin/policy/check", &[("document", &document)], None)
            .await;
        (response.status().as_u16(), response.text().await.unwrap())
    };
    let (status, page) = check(same_version.clone()).await;
    assert_eq!(status, 422);
    assert!(
        page.contains("a new policy needs version = 4 or higher"),
        "{page}"
    );
    let next = same_version.replacen("version = 3", "version = 4", 1);
    let (status, page) = check(next.clone()).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("+ offer_window_minutes = 720") && page.contains("− offer_window_minutes = 1440"),
        "{page}"
    );
    let other_region = next.replacen("region = \"bw\"", "region = \"by\"", 1);
    assert_eq!(check(other_region).await.0, 422);
    async fn current_version(app: &TestApp) -> serde_json::Value {
        let policy = app.get("/v1/regions/bw/policy").await;
        policy.json::<serde_json::Value>().await.unwrap()["version"].clone()
    }
    assert_eq!(current_version(&app).await, 3, "checking publishes nothing");

    let published = console
        .post("/staff/admin/policy/publish", &[("document", &next)], None)
        .await;
    assert_eq!(published.status(), 303);
    assert_eq!(current_version(&app).await, 4, "at once on this gateway");
    let (_, page) = console.get("/staff/admin/policy?from=3&to=4").await;
    assert!(page.contains("+ offer_window_minutes = 720"), "{page}");
    let (status, _) = console.get("/staff/admin/policy?from=3&to=9").await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn region_setup_is_refused_to_other_roles_other_regions_and_other_sites() {
    let app = spawn_app().await;
    app.load_demo().await;
    let other = drawbridge::demo::POLICY
        .to_owned()
        .replacen("region = \"bw\"", "region = \"by\"", 1);
    let mut tx = app.pool.begin().await.unwrap();
    drawbridge_platform::policies::publish(&mut tx, &other)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    app.staff_token("admin.anna", Role::RegionAdmin, "bw", None).await;
    app.staff_token("admin.bea", Role::RegionAdmin, "by", None).await;
    app.staff_token("agent.ali", Role::CallcentreAgent, "bw", None)
        .await;
    app.staff_token("analyst.ana", Role::Analyst, "bw", None).await;
    app.put_room(
        "bw-opening",
        &serde_json::json!({ "mode": "closed", "guards": ["bw"], "target_path": "/regions/bw/register" }),
    )
    .await;
    let pages = [
        "/staff/admin/centres",
        "/staff/admin/centres/new",
        "/staff/admin/staff",
        "/staff/admin/rooms",
        "/staff/admin/policy",
        "/staff/admin/audit",
    ];
    for username in ["agent.ali", "analyst.ana"] {
        let console = Console::sign_in(&app, username).await;
        for page in pages {
            assert_eq!(console.get(page).await.0, 403, "{username}: {page}");
        }
        let (status, _) = upload(&console, "/staff/admin/staff/import", STAFF_FILE, false).await;
        assert_eq!(status, 403, "{username} imports no staff");
    }

    let bea = Console::sign_in(&app, "admin.bea").await;
    for page in pages {
        assert_eq!(bea.get(page).await.0, 200, "{page} of her own region");
    }
    let (_, list) = bea.get("/staff/admin/centres").await;
    assert!(
        !list.contains(STUTTGART),
        "another region's centres are not listed"
    );
    let (_, accounts) = bea.get("/staff/admin/staff").await;
    assert!(!accounts.contains("agent.ali"), "nor its staff");
    let (_, rooms) = bea.get("/staff/admin/rooms").await;
    assert!(!rooms.contains("/staff/admin/rooms/bw-opening"), "nor its rooms");
    assert_eq!(bea.get(&format!("/staff/admin/centres/{STUTTGART}")).await.0, 404);
    assert_eq!(bea.get("/staff/admin/rooms/bw-opening").await.0, 404);
    let close = bea
        .post(
            &format!("/staff/admin/centres/{STUTTGART}/closed"),
            &[("closed", "true")],
            None,
        )
        .await;
    assert_eq!(close.status(), 404);
    let disable = bea.post("/staff/admin/staff/agent.ali/disable", &[], None).await;
    assert_eq!(disable.status(), 404);
    let reset = bea.post("/staff/admin/staff/agent.ali/password", &[], None).await;
    assert_eq!(reset.status(), 404);
    let room = bea
        .post(
            "/staff/admin/rooms/bw-opening",
            &[
                ("mode", "passthrough"),
                ("opens_at", "2026-12-24T08:00"),
                ("admit_per_minute", "1"),
                ("max_active", "1"),
                ("session_seconds", "60"),
                ("idle_seconds", "60"),
                ("pow_difficulty", "0"),
                ("target_path", "/"),
            ],
            None,
        )
        .await;
    assert_eq!(room.status(), 404);
    assert_eq!(app.describe_room("bw-opening").await["config"]["mode"], "closed");
    let closed: bool = sqlx::query_scalar("SELECT closed_at IS NOT NULL FROM centres WHERE id = $1")
        .bind(STUTTGART)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!closed);
    assert_eq!(logs_in(&app, "agent.ali", "a long test password").await, 201);

    // An import is a file: another kind of body is refused before anything is read.
    let anna = Console::sign_in(&app, "admin.anna").await;
    let not_a_file = anna
        .post("/staff/admin/staff/import", &[("text", STAFF_FILE)], None)
        .await;
    assert_eq!(not_a_file.status(), 415);

    // Forms from another site: no token, or the sign-in form's.
    let before = accounts_named(&app, "agent.x").await;
    for forged in ["", "not-the-token"] {
        let created = anna
            .post(
                "/staff/admin/staff",
                &[("username", "agent.x"), ("role", "callcentre_agent")],
                Some(forged),
            )
            .await;
        assert_eq!(created.status(), 403);
        let disabled = anna
            .post("/staff/admin/staff/agent.ali/disable", &[], Some(forged))
            .await;
        assert_eq!(disabled.status(), 403);
    }
    assert_eq!(accounts_named(&app, "agent.x").await, before);
    assert_eq!(logs_in(&app, "agent.ali", "a long test password").await, 201);
    let disabled = anna.post("/staff/admin/staff/agent.ali/disable", &[], None).await;
    assert_eq!(disabled.status(), 303);
    assert_eq!(logs_in(&app, "agent.ali", "a long test password").await, 401);
    app.stop().await;
}

async fn accounts_named(app: &TestApp, username: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM staff WHERE username = $1")
        .bind(username)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn must_change_password(app: &TestApp, username: &str) -> bool {
    sqlx::query_scalar("SELECT must_change_password FROM staff WHERE username = $1")
        .bind(username)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// The staff API's answer to `GET /v1/staff/me` with `token`: status and error code.
async fn me_with(app: &TestApp, token: &str) -> (u16, serde_json::Value) {
    let response = app
        .http
        .get(app.url("/v1/staff/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["error"]["code"].clone())
}

/// Posts the password form of `console`: status and page.
async fn choose(console: &Console<'_>, current: &str, new: &str, repeated: &str) -> (u16, String) {
    let response = console
        .post(
            "/staff/password",
            &[
                ("current_password", current),
                ("new_password", new),
                ("repeated_password", repeated),
            ],
            None,
        )
        .await;
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A staff API session of `username`: its token, and whether it must choose a password first.
async fn api_session(app: &TestApp, username: &str, password: &str) -> (String, bool) {
    let response = app
        .post_json(
            "/v1/staff/sessions",
            &serde_json::json!({ "username": username, "password": password }),
        )
        .await;
    assert_eq!(response.status(), 201, "{username} logs in");
    let body: serde_json::Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    (token, body["must_change_password"].as_bool().unwrap())
}

#[tokio::test]
async fn a_password_an_administrator_was_shown_is_replaced_by_its_person_before_anything_else() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.staff_token("admin.anna", Role::RegionAdmin, "bw", None).await;
    let anna = Console::sign_in(&app, "admin.anna").await;
    assert!(
        !must_change_password(&app, "admin.anna").await,
        "a password of one's own"
    );

    // Created in the console, imported, or reset: each password was shown to an administrator.
    let created = anna
        .post(
            "/staff/admin/staff",
            &[("username", "agent.neu"), ("role", "callcentre_agent")],
            None,
        )
        .await;
    assert!(created.status().is_success(), "{}", created.status());
    assert!(
        must_change_password(&app, "agent.neu").await,
        "created in the console"
    );
    let mut connection = app.pool.acquire().await.unwrap();
    let file = "username,role\nagent.ulm,callcentre_agent\n";
    drawbridge_platform::staff::import(&mut connection, "bw", file, false)
        .await
        .unwrap();
    assert!(must_change_password(&app, "agent.ulm").await, "imported");
    let (_, given) = drawbridge_platform::staff::reset_password(&mut connection, Some("bw"), "agent.neu")
        .await
        .unwrap();
    assert!(must_change_password(&app, "agent.neu").await, "reset");

    // The staff API: logging in and out work, nothing else does.
    let (token, must_change) = api_session(&app, "agent.neu", &given).await;
    assert!(must_change, "the login says so");
    assert_eq!(
        me_with(&app, &token).await,
        (403, serde_json::json!("password_change_required"))
    );
    let logout = app
        .http
        .delete(app.url("/v1/staff/sessions/current"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let (other_session, _) = api_session(&app, "agent.neu", &given).await;

    // The consoles: every page leads to the password form, which shows no other tools.
    let neu = Console::sign_in_with(&app, "agent.neu", &given).await;
    for page in ["/staff", "/staff/callers", "/staff/capacity"] {
        let response = neu.response(page).await;
        assert_eq!(response.status(), 303, "{page}");
        assert_eq!(
            response.headers()["location"].to_str().unwrap(),
            "/staff/password?lang=en",
            "{page}"
        );
    }
    let (status, form) = neu.get("/staff/password").await;
    assert_eq!(status, 200);
    assert!(
        form.contains("An administrator was shown your password"),
        "{form}"
    );
    assert!(!form.contains("/staff/callers"), "no other tools: {form}");
    let find = neu
        .post(
            "/staff/callers/find",
            &[("query", "B-1A2B-3C4D"), ("birth_year", "1950")],
            None,
        )
        .await;
    assert_eq!(find.status(), 303, "nor any form");

    // Refusals say what is wrong and change nothing.
    let (status, page) = choose(
        &neu,
        "not the password",
        "a password of my own",
        "a password of my own",
    )
    .await;
    assert_eq!(status, 401);
    assert!(page.contains("Username or password is wrong."), "{page}");
    let (status, page) = choose(&neu, &given, "too short", "too short").await;
    assert_eq!(status, 422);
    assert!(page.contains("at least 12 characters"), "{page}");
    let (status, page) = choose(&neu, &given, &given, &given).await;
    assert_eq!(status, 422);
    assert!(page.contains("must differ from the current one"), "{page}");
    let (status, page) = choose(&neu, &given, "a password of my own", "a password of my 0wn").await;
    assert_eq!(status, 422);
    assert!(page.contains("not the same as the new one"), "{page}");
    let forged = neu
        .post(
            "/staff/password",
            &[
                ("current_password", given.as_str()),
                ("new_password", "a password of my own"),
                ("repeated_password", "a password of my own"),
            ],
            Some("not-the-token"),
        )
        .await;
    assert_eq!(forged.status(), 403);
    assert!(must_change_password(&app, "agent.neu").await, "nothing changed");
    assert_eq!(logs_in(&app, "agent.neu", &given).await, 201);

    // Chosen: the consoles open, the given password and the other sessions are gone.
    let (status, _) = choose(&neu, &given, "a password of my own", "a password of my own").await;
    assert_eq!(status, 303);
    let (status, home) = neu.get("/staff?done=password").await;
    assert_eq!(status, 200);
    assert!(home.contains("Your new password is saved."), "{home}");
    assert_eq!(neu.get("/staff/callers").await.0, 200);
    assert!(!must_change_password(&app, "agent.neu").await);
    assert_eq!(me_with(&app, &other_session).await.0, 401, "other sessions end");
    assert_eq!(logs_in(&app, "agent.neu", &given).await, 401);
    let (token, must_change) = api_session(&app, "agent.neu", "a password of my own").await;
    assert!(!must_change);
    assert_eq!(me_with(&app, &token).await.0, 200);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM staff_actions a JOIN staff s ON s.id = a.staff_id
         WHERE s.username = 'agent.neu' AND a.action = 'staff.choose_password'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    app.stop().await;
}
