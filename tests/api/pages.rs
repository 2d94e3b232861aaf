//! The server-rendered pages: values escaped by the template engine, and the stylesheet and
//! script as static files under content-hashed names that browsers may keep.

use drawbridge_test_support::{citizen_pages, spawn_app};
use serde_json::{json, Value};

/// The first `/static/...` URL in `page` whose file name starts with `name.`.
fn linked(page: &str, name: &str) -> String {
    let start = page
        .find(&format!("\"/static/{name}."))
        .unwrap_or_else(|| panic!("{name} linked in {page}"))
        + 1;
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

#[tokio::test]
async fn a_value_with_a_script_tag_is_shown_escaped() {
    let app = spawn_app().await;
    app.load_demo().await;
    let page = app
        .get("/regions/bw/check?lang=en&birth_year=1956&priority_group=3&postcode=%3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E")
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("value=\"&lt;script&gt;alert(&quot;x&quot;)&lt;&#x2f;script&gt;\""),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("&amp;lt;"), "escaped twice: {html}");
    assert!(html.contains("role=\"alert\""), "{html}");
    app.stop().await;
}

#[tokio::test]
async fn a_page_shows_the_first_language_of_its_link_and_german_for_one_we_do_not_have() {
    let app = spawn_app().await;
    app.load_demo().await;
    for (query, language) in [
        ("lang=en&lang=de", "en"),
        ("lang=fr", "de"),
        ("lang=en&utm_source=sms", "en"),
    ] {
        for path in ["/", "/regions/bw/policy", "/me"] {
            let page = app.get(&format!("{path}?{query}")).await;
            assert_eq!(page.status(), 200, "{path}?{query}");
            let html = page.text().await.unwrap();
            assert!(
                html.contains(&format!("<html lang=\"{language}\" dir=\"ltr\">")),
                "{path}?{query}: {html}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_check_page_says_when_a_number_cannot_be_read() {
    let app = spawn_app().await;
    app.load_demo().await;
    for query in [
        "birth_year=19x6&priority_group=3&postcode=70173",
        "birth_year=1956&priority_group=three&postcode=70173",
    ] {
        let page = app.get(&format!("/regions/bw/check?lang=en&{query}")).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("role=\"alert\""), "{query}: {html}");
    }
    // An empty answer is one not given yet: the form, without an error.
    let page = app
        .get("/regions/bw/check?lang=en&birth_year=&priority_group=&postcode=")
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("role=\"alert\""), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn the_waiting_page_links_its_script_and_stylesheet_as_immutable_static_files() {
    let app = spawn_app().await;
    let opens_at = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() - 60, 0)
        .unwrap()
        .to_rfc3339();
    app.put_room(
        "pages",
        &json!({ "mode": "fifo", "opens_at": opens_at, "pow_difficulty": 4 }),
    )
    .await;
    let page = app.get("/rooms/pages?lang=en").await.text().await.unwrap();
    assert!(
        page.contains("data-room=\"pages\"") && page.contains("data-difficulty=\"4\""),
        "{page}"
    );
    assert!(
        page.contains("data-text-queued=\"You are in the queue.\""),
        "{page}"
    );

    let script = linked(&page, "waiting-room");
    let response = app.get(&script).await;
    assert_eq!(response.status(), 200, "{script}");
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable");
    let body = response.text().await.unwrap();
    for code in [
        "/v1/rooms/${room}/join",
        "/v1/rooms/${room}/status",
        "crypto.subtle.digest",
        "poll_after_seconds",
        "target_path",
        "page.difficulty",
    ] {
        assert!(body.contains(code), "{code}");
    }

    let stylesheet = linked(&page, "site");
    let response = app.get(&stylesheet).await;
    assert_eq!(response.status(), 200, "{stylesheet}");
    assert_eq!(response.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_static_file_under_a_wrong_hash_is_not_found() {
    let app = spawn_app().await;
    app.load_demo().await;
    let page = app.get("/").await.text().await.unwrap();
    let stylesheet = linked(&page, "site");
    assert_eq!(app.get(&stylesheet).await.status(), 200);
    for wrong in [
        "/static/site.000000000000.css",
        "/static/site.css",
        "/static/nothing.js",
    ] {
        let response = app.get(wrong).await;
        assert_eq!(response.status(), 404, "{wrong}");
        // Never kept: the right file may appear under this name with the next release.
        assert_eq!(response.headers()["cache-control"], "no-store", "{wrong}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{wrong}: {body}");
    }
    app.stop().await;
}

/// The registration pages answer every refusal as a page in the person's language, with what
/// they entered kept: an unknown region, a landline, a wrong SMS code (with the tries left)
/// and a new code asked for too soon.
#[tokio::test]
async fn the_registration_pages_explain_each_refusal_in_the_page_language() {
    let app = spawn_app().await;
    app.load_demo().await;
    assert_eq!(app.get("/regions/atlantis/register?lang=de").await.status(), 404);

    let fields = |phone: &str| {
        vec![
            ("phone", phone.to_owned()),
            ("birth_year", "1956".to_owned()),
            ("priority_group", "3".to_owned()),
            ("postcode", "70173".to_owned()),
            ("vaccine", "biontech".to_owned()),
            ("vaccine", "moderna".to_owned()),
            ("max_distance_km", "30".to_owned()),
        ]
    };
    let post =
        |path: &str, form: Vec<(&'static str, String)>| app.http.post(app.url(path)).form(&form).send();
    let landline = post("/regions/bw/register?lang=de", fields("0711 1234567"))
        .await
        .unwrap();
    assert_eq!(landline.status(), 422);
    let page = landline.text().await.unwrap();
    assert!(page.contains("Festnetz- und Servicenummern"), "{page}");
    assert!(
        page.contains(r#"id="phone_error""#) && page.contains(r#"value="0711 1234567""#),
        "{page}"
    );
    assert!(page.contains(r#"value="moderna" checked"#), "{page}");

    let registered = post("/regions/bw/register?lang=de", fields("0171 5559000"))
        .await
        .unwrap();
    assert_eq!(registered.status(), 200, "303 to the code page, followed");
    let code_page = registered.url().path().to_owned();
    assert!(
        code_page.starts_with("/registrations/") && code_page.ends_with("/code"),
        "{code_page}"
    );
    let wrong = post(
        &format!("{code_page}?lang=de"),
        vec![("code", "000000".to_owned())],
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), 422);
    assert!(wrong.text().await.unwrap().contains("Sie haben noch 4 Versuche"));
    let resend = code_page.replace("/code", "/resend");
    let too_soon = post(&format!("{resend}?lang=en"), Vec::new()).await.unwrap();
    assert_eq!(too_soon.status(), 429);
    assert!(too_soon.text().await.unwrap().contains("Please wait a minute"));
    app.stop().await;
}

/// Each citizen page weighs under 50 KB with the stylesheet and scripts it links, before any
/// image: light enough for a slow mobile connection.
#[tokio::test]
async fn every_citizen_page_weighs_under_50_kb() {
    let app = spawn_app().await;
    app.load_demo().await;
    let code_page = app.register_on_the_form("0171 5559901").await;
    let opened = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    app.put_room("weighed", &json!({ "mode": "fifo", "opens_at": opened }))
        .await;
    let mut pages = citizen_pages(&code_page);
    pages.push("/rooms/weighed?lang=de".to_owned());
    for page in pages {
        let weight = app.page_weight(&page).await;
        assert!(weight < 50 * 1024, "{page} weighs {weight} bytes");
    }
    app.stop().await;
}

/// The language a page says it is in (`<html lang="..">`).
async fn language_of(page: reqwest::Response) -> String {
    let html = page.text().await.unwrap();
    let start = html.find("<html lang=\"").unwrap() + 12;
    html[start..start + 2].to_owned()
}

/// A page's language comes from its link, else from the language the person chose before
/// (remembered in a cookie by the page they chose it on), else from the browser's
/// `Accept-Language`, else German.
#[tokio::test]
async fn a_page_speaks_the_language_chosen_before_or_the_browsers() {
    let app = spawn_app().await;
    app.load_demo().await;
    let page = |accept: Option<&'static str>, cookie: Option<String>, path: &'static str| {
        let mut request = app.http.get(app.url(path));
        if let Some(accept) = accept {
            request = request.header("Accept-Language", accept);
        }
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        request.send()
    };
    let english_browser = Some("en-GB,en;q=0.9,de;q=0.8");
    assert_eq!(
        language_of(page(english_browser, None, "/me").await.unwrap()).await,
        "en"
    );
    assert_eq!(
        language_of(page(Some("fr-FR, ar;q=0.5"), None, "/me").await.unwrap()).await,
        "ar"
    );
    assert_eq!(
        language_of(page(Some("fr-FR, it"), None, "/me").await.unwrap()).await,
        "de"
    );

    // Chosen on a page with the switch: remembered, and it beats the browser's.
    let chosen = page(english_browser, None, "/?lang=de").await.unwrap();
    let remembered = chosen.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(remembered.starts_with("drawbridge_lang=de;"), "{remembered}");
    assert!(
        remembered.contains("HttpOnly") && remembered.contains("SameSite=Lax"),
        "{remembered}"
    );
    let cookie = Some("drawbridge_lang=de".to_owned());
    assert_eq!(
        language_of(page(english_browser, cookie.clone(), "/me").await.unwrap()).await,
        "de"
    );
    // The link's own language still comes first; JSON answers set nothing.
    assert_eq!(
        language_of(page(None, cookie, "/regions/bw/policy?lang=en").await.unwrap()).await,
        "en"
    );
    let api = page(None, None, "/v1/regions?lang=en").await.unwrap();
    assert!(api.headers().get("set-cookie").is_none());
    app.stop().await;
}
