//! `/staff`, the consoles' door: signing in and out with a session cookie only this site's
//! forms can use (CSRF tokens), the same login limits and audit trail as the staff API.

use drawbridge_domain::Role;
use drawbridge_test_support::spawn_app;

/// The `Set-Cookie` header that sets `name`, whole.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The `name=value` part of a `Set-Cookie` header.
fn pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap()
}

/// The hidden CSRF field's value in a page.
fn csrf_in(html: &str) -> String {
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
