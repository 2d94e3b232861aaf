//! `/staff`, the consoles' door: signing in and out with a session cookie only this site's
//! forms can use (CSRF tokens), the same login limits and audit trail as the staff API.

use drawbridge_domain::Role;
use drawbridge_test_support::{spawn_app, spawn_with, Components};

/// The `Set-Cookie` header that sets `name`, whole.
pub(crate) fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The `name=value` part of a `Set-Cookie` header.
pub(crate) fn pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap()
}

/// The hidden CSRF field's value in a page.
pub(crate) fn csrf_in(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn staff_sign_in_and_out_on_pages_only_through_this_sites_forms() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.staff_token("agent.anna", Role::CallcentreAgent, "bw", None)
        .await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = browser.get(app.url("/staff?lang=en")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let csrf_cookie = set_cookie(&form, "drawbridge_staff_csrf").expect("a CSRF cookie");
    assert!(
        csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"),
        "{csrf_cookie}"
    );
    let csrf = csrf_in(&form.text().await.unwrap());
    let sign_in = |cookie: Option<String>, fields: Vec<(&'static str, String)>| {
        let mut request = browser.post(app.url("/staff/sign-in?lang=en")).form(&fields);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        request.send()
    };
    let fields = |password: &str, csrf: &str| {
        vec![
            ("username", "agent.anna".to_owned()),
            ("password", password.to_owned()),
            ("csrf", csrf.to_owned()),
        ]
    };
    let cookie = Some(pair(&csrf_cookie).to_owned());

    // Posted from another site: it has the form's fields but not the cookie.
    let forged = sign_in(None, fields("a long test password", &csrf))
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(set_cookie(&forged, "drawbridge_staff").is_none());
    assert!(forged
        .text()
        .await
        .unwrap()
        .contains("did not come from this site"));

    let wrong = sign_in(cookie.clone(), fields("not the password", &csrf))
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let page = wrong.text().await.unwrap();
    assert!(page.contains("role=\"alert\"") && page.contains("Username or password is wrong."));
    assert!(
        page.contains(r#"value="agent.anna""#),
        "the username stays: {page}"
    );

    let signed_in = sign_in(cookie, fields("a long test password", &csrf))
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/staff?lang=en");
    let session = set_cookie(&signed_in, "drawbridge_staff").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/staff", "Max-Age="] {
        assert!(session.contains(attribute), "{attribute}: {session}");
    }
    let session = pair(&session).to_owned();
    let home = browser
        .get(app.url("/staff?lang=en"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    let home = home.text().await.unwrap();
    assert!(home.contains("Signed in as agent.anna."), "{home}");
    assert!(
        home.contains("Hotline") && home.contains("Session ends"),
        "{home}"
    );
    let form_token = csrf_in(&home);

    let sign_out = |csrf: String| {
        browser
            .post(app.url("/staff/sign-out?lang=en"))
            .header("Cookie", &session)
            .form(&[("csrf", csrf)])
            .send()
    };
    let forged = sign_out(csrf.clone()).await.unwrap();
    assert_eq!(forged.status(), 403, "the sign-in token is not the session's");
    let signed_out = sign_out(form_token).await.unwrap();
    assert_eq!(signed_out.status(), 303);
    let removed = set_cookie(&signed_out, "drawbridge_staff").expect("the cookie is removed");
    assert!(removed.contains("Max-Age=0"), "{removed}");
    let after = browser
        .get(app.url("/staff?lang=en"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert!(
        after.text().await.unwrap().contains(r#"name="password""#),
        "the session ended"
    );

    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT a.action FROM staff_actions a JOIN staff s ON s.id = a.staff_id
         WHERE s.username = 'agent.anna' ORDER BY a.id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, ["session.start", "session.start", "session.end"]);
    app.stop().await;
}

/// A browser signed in to the consoles through the pages, in English.
pub(crate) struct Console<'a> {
    pub(crate) app: &'a drawbridge_test_support::TestApp,
    pub(crate) client: reqwest::Client,
    pub(crate) session: String,
    pub(crate) csrf: String,
}

impl<'a> Console<'a> {
    /// Signs `username` (with the test password) in through the sign-in form.
    pub(crate) async fn sign_in(app: &'a drawbridge_test_support::TestApp, username: &str) -> Console<'a> {
        Console::sign_in_with(app, username, "a long test password").await
    }

    /// Signs `username` in with `password` through the sign-in form. The forms' token comes
    /// from the password form, which every session may open.
    pub(crate) async fn sign_in_with(
        app: &'a drawbridge_test_support::TestApp,
        username: &str,
        password: &str,
    ) -> Console<'a> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = client.get(app.url("/staff?lang=en")).send().await.unwrap();
        let csrf_cookie = pair(&set_cookie(&form, "drawbridge_staff_csrf").unwrap()).to_owned();
        let csrf = csrf_in(&form.text().await.unwrap());
        let signed_in = client
            .post(app.url("/staff/sign-in?lang=en"))
            .header("Cookie", csrf_cookie)
            .form(&[("username", username), ("password", password), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), 303, "{username} signs in");
        let session = pair(&set_cookie(&signed_in, "drawbridge_staff").unwrap()).to_owned();
        let mut console = Console {
            app,
            client,
            session,
            csrf: String::new(),
        };
        console.csrf = csrf_in(&console.get("/staff/password").await.1);
        console
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let response = self.response(path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// The answer to `GET path`, headers and all.
    pub(crate) async fn response(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.app.url(&in_english(path)))
            .header("Cookie", &self.session)
            .send()
            .await
            .unwrap()
    }

    /// Posts `fields` to `path`, with the session's CSRF token unless `csrf` says another.
    pub(crate) async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        csrf: Option<&str>,
    ) -> reqwest::Response {
        let mut fields = fields.to_vec();
        fields.push(("csrf", csrf.unwrap_or(&self.csrf)));
        self.client
            .post(self.app.url(&in_english(path)))
            .header("Cookie", &self.session)
            .form(&fields)
            .send()
            .await
            .unwrap()
    }
}

/// `path` (with or without a query) in English.
pub(crate) fn in_english(path: &str) -> String {
    let joint = if path.contains('?') { '&' } else { '?' };
    format!("{path}{joint}lang=en")
}

/// A caller's registration as an agent types it.
const CALLER: [(&str, &str); 7] = [
    ("phone", "0171 5551234"),
    ("birth_year", "1950"),
    ("priority_group", "2"),
    ("postcode", "70173"),
    ("vaccine", "biontech"),
    ("max_distance_km", "30"),
    ("language", "tr"),
];

async fn registrants(app: &drawbridge_test_support::TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM registrants WHERE status = 'active'")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Every form of the call-centre console needs the session's own CSRF token: a form posted
/// from another site (no token, or the sign-in form's) changes nothing.
#[tokio::test]
async fn the_agent_console_refuses_forms_from_other_sites() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.staff_token("agent.anna", Role::CallcentreAgent, "bw", None)
        .await;
    let console = Console::sign_in(&app, "agent.anna").await;
    let before = registrants(&app).await;
    for forged in ["", "not-the-token"] {
        let refused = console
            .post("/staff/callers/register", &CALLER, Some(forged))
            .await;
        assert_eq!(refused.status(), 403);
        let page = refused.text().await.unwrap();
        assert!(page.contains("not sent from this site"), "{page}");
    }
    assert_eq!(registrants(&app).await, before, "nothing registered");

    let registered = console.post("/staff/callers/register", &CALLER, None).await;
    assert_eq!(registered.status(), 201);
    let page = registered.text().await.unwrap();
    assert!(page.contains("read the booking code out"), "{page}");
    assert_eq!(registrants(&app).await, before + 1);
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM registrants ORDER BY created_at DESC LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let withdraw = format!("/staff/callers/{id}/withdraw");
    let forged = console.post(&withdraw, &[("confirmed", "yes")], Some("")).await;
    assert_eq!(forged.status(), 403);
    // Not confirmed with the caller: refused and said, nothing erased.
    let unconfirmed = console.post(&withdraw, &[], None).await;
    assert_eq!(unconfirmed.status(), 422);
    assert!(unconfirmed.text().await.unwrap().contains("Please tick the box"));
    assert_eq!(registrants(&app).await, before + 1);
    let withdrawn = console.post(&withdraw, &[("confirmed", "yes")], None).await;
    assert_eq!(withdrawn.status(), 303);
    assert_eq!(
        withdrawn.headers()["location"],
        "/staff/callers?done=withdrawn&lang=en"
    );
    assert_eq!(registrants(&app).await, before);
    app.stop().await;
}

/// An agent sees and acts for callers of their own region only: another region's caller is
/// refused by id and by booking code, and the open capacity is their region's.
#[tokio::test]
async fn an_agent_sees_only_their_own_region() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.staff_token("agent.anna", Role::CallcentreAgent, "bw", None)
        .await;
    app.staff_token("agent.otto", Role::CallcentreAgent, "elsewhere", None)
        .await;
    let (id, code) = app.registrant_with_code("+4917155512345").await;
    let anna = Console::sign_in(&app, "agent.anna").await;
    let otto = Console::sign_in(&app, "agent.otto").await;

    let (status, page) = anna.get(&format!("/staff/callers/{id}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Pseudonym in the draws"), "{page}");
    let (status, page) = otto.get(&format!("/staff/callers/{id}")).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("another region"), "{page}");
    assert!(!page.contains("1950") && !page.contains("Pseudonym"), "{page}");
    let found = otto
        .post("/staff/callers/find", &[("query", &code.to_string())], None)
        .await;
    assert_eq!(found.status(), 403);
    let found = anna
        .post("/staff/callers/find", &[("query", &code.to_string())], None)
        .await;
    assert_eq!(found.status(), 303);
    assert_eq!(
        found.headers()["location"],
        format!("/staff/callers/{id}?lang=en")
    );

    let (_, theirs) = anna.get("/staff/capacity").await;
    let (_, others) = otto.get("/staff/capacity").await;
    assert!(theirs.contains("Liederhalle"), "{theirs}");
    assert!(!others.contains("Liederhalle"), "{others}");
    assert!(others.contains("No appointments are published"), "{others}");

    // A mistyped code and a reference without its birth year are said at the field.
    let typo = anna
        .post("/staff/callers/find", &[("query", "K7Q2-M9XD-4HTB-R8WM")], None)
        .await;
    assert_eq!(typo.status(), 422);
    assert!(typo.text().await.unwrap().contains("id=\"query_error\""));
    let no_year = anna
        .post("/staff/callers/find", &[("query", "B-1A2B-3C4D")], None)
        .await;
    assert_eq!(no_year.status(), 422);
    assert!(no_year.text().await.unwrap().contains("birth_year_error"));
    app.stop().await;
}

/// Centre staff run their own centre only, a region admin any centre of their region: every
/// other centre's page, form and door answers 403 and shows nothing of it; the console's forms
/// need the session's CSRF token.
#[tokio::test]
async fn centre_staff_see_only_their_own_centre() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (stuttgart, karlsruhe) = ("stuttgart-liederhalle", "karlsruhe-schwarzwaldhalle");
    app.staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(stuttgart))
        .await;
    app.staff_token("admin.elsewhere", Role::RegionAdmin, "elsewhere", None)
        .await;
    let door = Console::sign_in(&app, "door.stuttgart").await;
    let stranger = Console::sign_in(&app, "admin.elsewhere").await;

    let (status, own) = door.get(&format!("/staff/centres/{stuttgart}")).await;
    assert_eq!(status, 200, "{own}");
    for path in ["", "/publish", "/door"] {
        let (status, page) = door.get(&format!("/staff/centres/{karlsruhe}{path}")).await;
        assert_eq!(status, 403, "{path}: {page}");
        let (status, page) = stranger.get(&format!("/staff/centres/{stuttgart}{path}")).await;
        assert_eq!(status, 403, "{path}: {page}");
        assert!(!page.contains("Liederhalle"), "{page}");
    }
    let (_, list) = door.get("/staff/centres").await;
    assert!(list.is_empty(), "centre staff are sent to their centre");
    let (_, list) = stranger.get("/staff/centres").await;
    assert!(
        !list.contains("Liederhalle") && list.contains("no centres"),
        "{list}"
    );

    // The same checks for forms: another centre's door refuses; a form without the session's
    // token changes nothing.
    let checkin = door
        .post(
            &format!("/staff/centres/{karlsruhe}/door"),
            &[("pass", "x")],
            None,
        )
        .await;
    assert_eq!(checkin.status(), 403);
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM capacity_batches")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let day = (chrono::Utc::now() + chrono::Duration::days(2))
        .date_naive()
        .to_string();
    let capacity = [
        ("key", "a-key"),
        ("vaccine", "biontech"),
        ("day", day.as_str()),
        ("from", "09:00"),
        ("until", "10:00"),
        ("slot_minutes", "10"),
        ("people_per_slot", "1"),
        ("second_dose_after_days", "28"),
    ];
    let forged = door
        .post(
            &format!("/staff/centres/{stuttgart}/publish"),
            &capacity,
            Some(""),
        )
        .await;
    assert_eq!(forged.status(), 403);
    let published = door
        .post(&format!("/staff/centres/{stuttgart}/publish"), &capacity, None)
        .await;
    assert_eq!(published.status(), 303);
    // Sent twice (its key): published once.
    let again = door
        .post(&format!("/staff/centres/{stuttgart}/publish"), &capacity, None)
        .await;
    assert_eq!(again.status(), 303);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM capacity_batches")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(after, before + 1);

    // An interval outside the vaccine's window is said at its field.
    let mut wrong = capacity;
    wrong[0] = ("key", "another-key");
    wrong[7] = ("second_dose_after_days", "3");
    let refused = door
        .post(&format!("/staff/centres/{stuttgart}/publish"), &wrong, None)
        .await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(page.contains("id=\"second_dose_after_days_error\""), "{page}");
    app.stop().await;
}

/// Analysts and region admins read their own region's draws only: every page and export of the
/// analysts' console answers 403 to another region's analyst and to agents and centre staff,
/// shows them nothing of the draw, and the exports hold no personal data, only pseudonyms and
/// counts.
#[tokio::test]
async fn analysts_read_only_their_own_regions_draws_and_no_personal_data() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.staff_token("analyst.anna", Role::Analyst, "bw", None).await;
    app.staff_token("admin.bw", Role::RegionAdmin, "bw", None).await;
    app.staff_token("analyst.otto", Role::Analyst, "elsewhere", None)
        .await;
    app.staff_token("agent.anna", Role::CallcentreAgent, "bw", None)
        .await;
    app.staff_token(
        "door.stuttgart",
        Role::CentreStaff,
        "bw",
        Some("stuttgart-liederhalle"),
    )
    .await;
    let (draw, people) = app.a_draw_of_six().await;
    let pages = [
        format!("/staff/draws/{draw}"),
        format!("/staff/draws/{draw}/manifest"),
        format!("/staff/draws/{draw}/offer-rates"),
    ];

    let anna = Console::sign_in(&app, "analyst.anna").await;
    let (status, list) = anna.get("/staff/draws").await;
    assert_eq!(status, 200, "{list}");
    assert!(list.contains(&format!("/staff/draws/{draw}?")), "{list}");
    let (status, page) = anna.get(&pages[0]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Replays exactly"), "{page}");
    assert_eq!(page.matches("<svg viewBox=\"0 0 600 ").count(), 4, "{page}");
    for by in ["priority_group", "age_band", "registration_week", "channel"] {
        assert!(
            page.contains(&format!("aria-labelledby=\"chart-{by}-title chart-{by}-desc\"")),
            "{by}: {page}"
        );
    }
    let manifest = anna.response(&pages[1]).await;
    assert_eq!(manifest.status(), 200);
    assert_eq!(
        manifest.headers()["content-disposition"],
        format!("attachment; filename=\"drawbridge-draw-{draw}.json\"")
    );
    let manifest = manifest.text().await.unwrap();
    let published = app
        .get(&format!("/v1/draws/{draw}/manifest"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(manifest, published, "the console's manifest is the published one");
    let mut exports = vec![manifest];
    for path in ["/staff/draws/export", pages[2].as_str()] {
        let export = anna.response(path).await;
        assert_eq!(export.status(), 200, "{path}");
        assert_eq!(export.headers()["content-type"], "text/csv; charset=utf-8");
        let disposition = export.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(disposition.starts_with("attachment; filename="), "{disposition}");
        exports.push(export.text().await.unwrap());
    }
    assert!(exports[1].contains(&draw.to_string()), "{}", exports[1]);
    let rates = &exports[2];
    for line in [
        "priority_group,1,6,6,1.0",
        "age_band,40-49,3,3,1.0",
        "age_band,70-79,3,3,1.0",
        "channel,callcentre,3,3,1.0",
        "channel,web,3,3,1.0",
    ] {
        assert!(rates.contains(&format!("{draw},{line}\n")), "{line}: {rates}");
    }
    assert_eq!(
        rates
            .lines()
            .filter(|l| l.contains(",registration_week,"))
            .count(),
        2,
        "{rates}"
    );
    exports.push(page);
    exports.push(list);
    let mut personal: Vec<String> = vec!["person@example.de".into()];
    for (i, (id, code)) in people.iter().enumerate() {
        personal.push(id.to_string());
        personal.push(id.simple().to_string());
        personal.push(code.to_string());
        personal.push(format!("+491715556{i:03}"));
        personal.push(format!("1715556{i:03}"));
    }
    for export in &exports {
        for data in &personal {
            assert!(!export.contains(data.as_str()), "{data} in {export}");
        }
    }

    // A region admin of the region reads it too.
    let admin = Console::sign_in(&app, "admin.bw").await;
    assert_eq!(admin.get(&pages[0]).await.0, 200);

    // Another region's analyst: the list and its CSV are of their region, without this draw;
    // the draw's pages and exports are refused.
    let otto = Console::sign_in(&app, "analyst.otto").await;
    for path in ["/staff/draws", "/staff/draws/export"] {
        let (status, theirs) = otto.get(path).await;
        assert_eq!(status, 200, "{path}: {theirs}");
        assert!(!theirs.contains(&draw.to_string()), "{path}: {theirs}");
    }
    for path in &pages {
        let (status, refused) = otto.get(path).await;
        assert_eq!(status, 403, "{path}: {refused}");
        assert!(refused.contains("another region"), "{path}: {refused}");
        assert!(
            !refused.contains("Replays") && !refused.contains("seed"),
            "{refused}"
        );
    }
    // Agents and centre staff read no analyses at all, not even their region's.
    for username in ["agent.anna", "door.stuttgart"] {
        let other_role = Console::sign_in(&app, username).await;
        for path in ["/staff/draws", "/staff/draws/export"]
            .into_iter()
            .chain(pages.iter().map(String::as_str))
        {
            let (status, refused) = other_role.get(path).await;
            assert_eq!(status, 403, "{username} {path}: {refused}");
            assert!(!refused.contains(&draw.to_string()), "{refused}");
        }
        let (_, home) = other_role.get("/staff").await;
        assert!(!home.contains("/staff/draws"), "no way in from the menu: {home}");
    }
    let (_, home) = anna.get("/staff").await;
    assert!(home.contains("/staff/draws?lang=en"), "{home}");
    app.stop().await;
}

/// A region's simulation reports are for its analysts and region admins: the list shows the
/// region's reports (here real ones, of the shipped small-county scenario), their page opens
/// sandboxed and their tables download; another region's report, a name that would leave the
/// folder and other files are not found, and agents are refused.
#[tokio::test]
async fn analysts_open_their_own_regions_simulation_reports_only() {
    let reports = crate::simulation_reports(&[("bw", "small-county"), ("elsewhere", "secret-county")]);
    let folder = reports.clone();
    let app = spawn_with(Components::default(), move |settings| {
        settings.gateway.simulation_reports = Some(folder);
    })
    .await;
    app.staff_token("analyst.anna", Role::Analyst, "bw", None).await;
    app.staff_token("analyst.otto", Role::Analyst, "elsewhere", None)
        .await;
    app.staff_token("agent.anna", Role::CallcentreAgent, "bw", None)
        .await;
    let anna = Console::sign_in(&app, "analyst.anna").await;
    let (status, list) = anna.get("/staff/simulations").await;
    assert_eq!(status, 200, "{list}");
    assert!(
        list.contains("A county opens group 3 on Monday")
            && list.contains("/staff/simulations/small-county/report.html?lang=en")
            && list.contains("/staff/simulations/small-county/groups.csv?lang=en"),
        "{list}"
    );
    assert!(!list.contains("secret-county"), "{list}");

    let page = anna.response("/staff/simulations/small-county/report.html").await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("sandbox") && !policy.contains("script-src"),
        "{policy}"
    );
    assert!(page.text().await.unwrap().contains("<svg"));
    let table = anna.response("/staff/simulations/small-county/groups.csv").await;
    assert_eq!(table.status(), 200);
    assert_eq!(table.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        table.headers()["content-disposition"],
        "attachment; filename=\"small-county-groups.csv\""
    );
    assert!(table.text().await.unwrap().starts_with("seed,day,date,group,"));
    for path in [
        "/staff/simulations/secret-county/report.html",
        "/staff/simulations/%2E%2E/summary.json",
        "/staff/simulations/small-county/groups.parquet",
        "/staff/simulations/small-county/..%2F..%2Felsewhere%2Fsecret-county%2Fsummary.json",
        "/staff/simulations/..%2Felsewhere%2Fsecret-county/summary.json",
    ] {
        let (status, page) = anna.get(path).await;
        assert_eq!(status, 404, "{path}: {page}");
        assert!(!page.contains("secret"), "{path}: {page}");
    }

    let otto = Console::sign_in(&app, "analyst.otto").await;
    let (_, theirs) = otto.get("/staff/simulations").await;
    assert!(
        theirs.contains("secret-county") && !theirs.contains("small-county"),
        "{theirs}"
    );
    let (status, _) = otto.get("/staff/simulations/small-county/report.html").await;
    assert_eq!(status, 404);

    let agent = Console::sign_in(&app, "agent.anna").await;
    for path in [
        "/staff/simulations",
        "/staff/simulations/small-county/report.html",
    ] {
        let (status, page) = agent.get(path).await;
        assert_eq!(status, 403, "{path}: {page}");
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(&reports);
}
