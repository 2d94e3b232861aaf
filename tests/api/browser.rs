//! The citizen's pages in a real browser: headless Chromium at a phone's 360 × 740, driven
//! over WebDriver, from the start page through registration, the offer and the pass to the
//! first dose. Every page passes axe-core without a serious or critical violation, never
//! scrolls sideways, and leaves a screenshot in `target/screenshots/`.

use std::time::Duration;

use drawbridge_domain::Role;
use drawbridge_test_support::browser::{Browser, Key, Locator};
use drawbridge_test_support::{spawn_with, Components, TestApp};
use reqwest::Method;

const STUTTGART: &str = "stuttgart-liederhalle";

/// Every language the pages speak.
const LANGUAGES: [&str; 4] = ["de", "en", "tr", "ar"];

/// The page text `key` (`section.name`) in `lang`, as the pages' text file writes it.
fn page_text(lang: &str, key: &str) -> String {
    let path = format!(
        "{}/gateway/templates/lang/{lang}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let texts: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (section, name) = key.split_once('.').unwrap();
    texts[section][name].as_str().unwrap().to_owned()
}

/// Checks the page the browser shows, named `name` in the screenshots.
async fn looks_right(browser: &Browser, name: &str) {
    let violations = browser.accessibility_violations().await;
    assert!(violations.is_empty(), "{name}: {violations:#?}");
    assert!(
        !browser.scrolls_sideways().await,
        "{name} scrolls sideways at 360 px"
    );
    browser.screenshot(name).await;
}

/// What can be checked of a page with its scripts off (axe-core is a script): it fits the
/// screen, and its screenshot is kept.
async fn looks_right_without_scripts(browser: &Browser, name: &str) {
    assert!(
        !browser.scrolls_sideways().await,
        "{name} scrolls sideways at 360 px"
    );
    browser.screenshot(name).await;
}

/// Opens `path` in every language and checks each page (`name-<lang>` in the screenshots) once
/// the element `css` selects shows.
async fn in_every_language(app: &TestApp, browser: &Browser, path: &str, css: &str, name: &str) {
    in_languages(app, browser, &LANGUAGES, path, css, name).await;
}

/// Opens `path` in each of `languages` and checks it, as [`in_every_language`] does.
async fn in_languages(
    app: &TestApp,
    browser: &Browser,
    languages: &[&str],
    path: &str,
    css: &str,
    name: &str,
) {
    for lang in languages {
        browser
            .client
            .goto(&app.url(&format!("{path}?lang={lang}")))
            .await
            .unwrap();
        text_of(browser, css).await;
        looks_right(browser, &format!("{name}-{lang}")).await;
    }
}

/// Tabs to the element `css` selects and presses `typed` there; answers the keystrokes.
async fn by_keyboard(browser: &Browser, css: &str, typed: &str) -> usize {
    let tabs = browser
        .tab_to(css)
        .await
        .unwrap_or_else(|| panic!("{css} cannot be reached by keyboard"));
    browser.press(typed).await;
    tabs + typed.chars().count()
}

/// The text of the element `css` selects, once the page shows it.
async fn text_of(browser: &Browser, css: &str) -> String {
    let found = browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await;
    if found.is_err() {
        browser.screenshot("failed").await;
    }
    found
        .unwrap_or_else(|_| panic!("no {css} on the page (target/screenshots/failed.png)"))
        .text()
        .await
        .unwrap()
}

async fn type_into(browser: &Browser, id: &str, text: &str) {
    let field = browser.client.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn submit(browser: &Browser) {
    let button = browser
        .client
        .find(Locator::Css("main form button[type=submit]"))
        .await
        .unwrap();
    button.click().await.unwrap();
}

/// Fills in the registration form's phone, group, postcode and vaccine (the rest as the
/// form already holds it, or as the test typed it).
async fn fill_in_the_rest(browser: &Browser, phone: &str) {
    type_into(browser, "phone", phone).await;
    browser
        .client
        .find(Locator::Css("#priority_group"))
        .await
        .unwrap()
        .select_by_value("3")
        .await
        .unwrap();
    type_into(browser, "postcode", "70173").await;
    browser
        .client
        .find(Locator::Css("input[value=biontech]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The six-digit code in an SMS.
fn code_in(sms: &str) -> &str {
    sms.split(|c: char| !c.is_ascii_digit())
        .find(|word| word.len() == 6)
        .unwrap_or_else(|| panic!("no code in {sms}"))
}

/// A registrant of the demo with a booking, by the first draw: their id and booking code.
async fn booked(app: &TestApp, phone: &str) -> (uuid::Uuid, drawbridge_domain::BookingCode) {
    let (registrant, code) = app.registrant_with_code(phone).await;
    app.draw().await;
    let holder = format!("BookingCode {code}");
    let (status, _) = app.call(Method::POST, "/v1/me/offer/accept", &holder, None).await;
    assert_eq!(status, 200);
    (registrant, code)
}

/// From the start page to the booking code and the status page, then from the offer's SMS to
/// the first dose, in German, English, Turkish and Arabic (right to left), with the SMS code
/// read from the SMS provider; a form sent incomplete comes back with its problems summarised
/// at the top and tied to their fields.
#[tokio::test]
async fn a_citizen_registers_in_a_browser_and_sees_their_status() {
    let app = spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        |_| {},
    )
    .await;
    app.load_demo().await;
    let browser = Browser::start(360, 740).await;
    let people = [
        ("de", "+4917155590001"),
        ("en", "+4917155590002"),
        ("tr", "+4917155590003"),
        ("ar", "+4917155590004"),
    ];
    let mut booking_codes = Vec::new();
    for (lang, phone) in people {
        booking_codes.push(register_in(&app, &browser, lang, phone).await);
    }

    // One draw offers both of them a pair: each follows the link in their SMS to the door.
    let offers: Vec<_> = people
        .iter()
        .map(|person| app.twilio.next_message_to(person.1))
        .collect();
    app.draw().await;
    let door = format!(
        "Bearer {}",
        app.staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
            .await
    );
    for ((person, offer), booking_code) in people.iter().zip(offers).zip(&booking_codes) {
        let (lang, phone) = *person;
        let offer = tokio::time::timeout(Duration::from_secs(20), offer)
            .await
            .expect("the offer SMS");
        // The messages speak the language the person registered in.
        let arabic = offer.body.chars().any(|c| ('\u{600}'..='\u{6ff}').contains(&c));
        assert_eq!(arabic, lang == "ar", "{lang}: {}", offer.body);
        let person = Person {
            lang,
            phone,
            booking_code,
        };
        to_the_door(&app, &browser, &person, &offer.body, &door).await;
    }
    browser.close().await;
    app.stop().await;
}

/// Someone registered in the browser.
struct Person<'a> {
    lang: &'a str,
    phone: &'a str,
    booking_code: &'a str,
}

/// The path (with query) of the link in an SMS, whatever public address it was sent with.
fn link_in(sms: &str) -> &str {
    let start = sms.find("http").unwrap_or_else(|| panic!("no link in {sms:?}"));
    let url = sms[start..].split_whitespace().next().unwrap();
    let after_scheme = &url[url.find("://").unwrap() + 3..];
    &after_scheme[after_scheme.find('/').unwrap()..]
}

/// From the offer's link to the pass, the first dose at the door, and the status page saying so.
async fn to_the_door(app: &TestApp, browser: &Browser, person: &Person<'_>, offer_sms: &str, door: &str) {
    let lang = person.lang;
    browser.client.goto(&app.url(link_in(offer_sms))).await.unwrap();
    text_of(browser, "main form[action*='/accept'] button").await;
    looks_right(browser, &format!("offer-{lang}")).await;
    let page = browser.client.source().await.unwrap();
    assert!(
        page.contains("openstreetmap.org/search?query=Berliner"),
        "a map link: {page}"
    );
    let time_left = page_text(lang, "offer.time_left");
    let (_, hours) = time_left.split_once("{hours}").unwrap();
    let (hours, _) = hours.split_once("{minutes}").unwrap();
    assert!(page.contains(hours), "the time left ({hours:?}): {page}");
    let confirmation = app.twilio.next_message_to(person.phone);
    let accept = browser
        .client
        .find(Locator::Css("main form[action*='/accept'] button"))
        .await
        .unwrap();
    accept.click().await.unwrap();
    text_of(browser, "main [role=status], main [role=alert]").await;
    looks_right(browser, &format!("accepted-{lang}")).await;
    open_the_pass(app, browser, confirmation).await;
    looks_right(browser, &format!("pass-{lang}")).await;

    check_in_at_the_door(app, person, door).await;

    browser
        .client
        .goto(&app.url(&format!("/me?lang={lang}")))
        .await
        .unwrap();
    sign_in_as(browser, person.booking_code).await;
    let page = browser.client.source().await.unwrap();
    assert!(
        page.contains(&page_text(lang, "booking_state.first_dose_given")),
        "{page}"
    );
    looks_right(browser, &format!("status-first-dose-{lang}")).await;
}

/// Waits for the confirmation SMS and opens the pass page it links to.
async fn open_the_pass(
    app: &TestApp,
    browser: &Browser,
    confirmation: impl std::future::Future<Output = drawbridge_test_support::twilio::Sms>,
) {
    let confirmation = tokio::time::timeout(Duration::from_secs(20), confirmation)
        .await
        .expect("the confirmation SMS");
    browser
        .client
        .goto(&app.url(link_in(&confirmation.body)))
        .await
        .unwrap();
    text_of(browser, "main img").await;
}

/// The first dose at the door, with the pass the pass page shows, on the day of the first
/// appointment: the centre's door device checks it in.
async fn check_in_at_the_door(app: &TestApp, person: &Person<'_>, door: &str) {
    let (_, me) = app
        .call(
            Method::GET,
            "/v1/me",
            &format!("BookingCode {}", person.booking_code),
            None,
        )
        .await;
    let pass = me["booking"]["checkin_pass"].as_str().unwrap().to_owned();
    sqlx::query(
        "UPDATE slot_pairs p SET first_slot_at = now() FROM bookings b JOIN registrants r ON r.id = b.registrant_id
         WHERE p.id = b.slot_pair_id AND b.state = 'booked' AND r.phone_index = $1",
    )
    .bind(app.phone_index(person.phone))
    .execute(&app.pool)
    .await
    .unwrap();
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/centres/{STUTTGART}/checkins"),
            door,
            Some(&serde_json::json!({ "pass": pass })),
        )
        .await;
    assert_eq!((status, body["dose"].as_str()), (200, Some("first")), "{body}");
}

/// Signs out whoever is signed in to `/me`, and in with `booking_code`.
async fn sign_in_as(browser: &Browser, booking_code: &str) {
    if let Ok(sign_out) = browser
        .client
        .find(Locator::Css("form[action^='/me/sign-out'] button"))
        .await
    {
        sign_out.click().await.unwrap();
    }
    text_of(browser, "label[for=booking_code]").await;
    type_into(browser, "booking_code", booking_code).await;
    submit(browser).await;
    text_of(browser, "main [role=status]").await;
}

/// Registers from the start page; answers the booking code the page showed.
async fn register_in(app: &TestApp, browser: &Browser, lang: &str, phone: &str) -> String {
    browser
        .client
        .goto(&app.url(&format!("/?lang={lang}")))
        .await
        .unwrap();
    looks_right(browser, &format!("start-{lang}")).await;
    // The published rules and the eligibility check, with its long group names, fit too.
    for page in ["policy", "check"] {
        let path = format!(
            "/regions/bw/{page}?lang={lang}&birth_year=1956&priority_group=3&postcode=70173&vaccine=biontech"
        );
        browser.client.goto(&app.url(&path)).await.unwrap();
        text_of(browser, "main h1").await;
        looks_right(browser, &format!("{page}-{lang}")).await;
    }
    browser
        .client
        .goto(&app.url(&format!("/?lang={lang}")))
        .await
        .unwrap();
    browser
        .client
        .find(Locator::LinkText(&page_text(lang, "register.start")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_of(browser, "label[for=phone]").await;
    looks_right(browser, &format!("register-{lang}")).await;

    // Sent without a phone number: the problem is summarised and tied to its field.
    type_into(browser, "birth_year", "1956").await;
    submit(browser).await;
    looks_right(browser, &format!("register-problem-{lang}")).await;
    let summary = text_of(browser, "[role=alert] a[href='#phone']").await;
    let beside = text_of(browser, "#phone_error").await;
    assert_eq!(summary, beside);
    let phone_field = browser.client.find(Locator::Id("phone")).await.unwrap();
    assert_eq!(
        phone_field.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    let described = phone_field.attr("aria-describedby").await.unwrap().unwrap();
    assert!(described.contains("phone_error"), "{described}");
    assert_eq!(
        browser
            .client
            .find(Locator::Id("birth_year"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("1956"),
        "what was entered stays"
    );

    fill_in_the_rest(browser, &phone.replace("+49", "0")).await;
    let sms = app.twilio.next_message_to(phone);
    submit(browser).await;
    let sms = tokio::time::timeout(Duration::from_secs(20), sms)
        .await
        .expect("the SMS code arrives");
    text_of(browser, "label[for=code]").await;
    looks_right(browser, &format!("code-{lang}")).await;
    let code = code_in(&sms.body);

    type_into(browser, "code", code).await;
    submit(browser).await;
    let booking_code = text_of(browser, ".booking-code").await;
    assert_eq!(booking_code.len(), 19, "{booking_code}");
    looks_right(browser, &format!("registered-{lang}")).await;

    // Signed in by the verification: the status page opens without typing the code.
    browser
        .client
        .find(Locator::Css("main a[href^='/me']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let next = text_of(browser, "main [role=status]").await;
    assert!(!next.is_empty());
    let page = browser.client.source().await.unwrap();
    assert!(page.contains(&page_text(lang, "me.choices")), "{page}");
    looks_right(browser, &format!("status-{lang}")).await;
    booking_code
}

/// A region behind a waiting room: the registration form sends a visitor without an
/// admission to the room, whose page queues them and, once admitted, takes them back to the
/// form, where the registration spends the admission without their noticing.
#[tokio::test]
async fn a_guarded_region_sends_visitors_through_its_waiting_room_to_the_form() {
    let app = spawn_with(Components::default(), |_| {}).await;
    app.load_demo().await;
    // The room opens in a minute: until then visitors wait in its pre-queue.
    let room = |opens_at: chrono::DateTime<chrono::Utc>| {
        serde_json::json!({
            "mode": "fifo", "opens_at": opens_at.to_rfc3339(), "guards": ["bw"],
            "target_path": "/regions/bw/register?lang=en",
        })
    };
    app.put_room(
        "bw-opening",
        &room(chrono::Utc::now() + chrono::Duration::minutes(1)),
    )
    .await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sent = plain
        .get(app.url("/regions/bw/register?lang=en"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 303);
    assert_eq!(sent.headers()["location"], "/rooms/bw-opening?lang=en");

    let browser = Browser::start(360, 740).await;
    browser
        .client
        .goto(&app.url("/regions/bw/register?lang=en"))
        .await
        .unwrap();
    text_of(&browser, "main [role=status]").await;
    assert_eq!(
        browser.client.current_url().await.unwrap().path(),
        "/rooms/bw-opening"
    );
    looks_right(&browser, "room-en").await;
    in_every_language(&app, &browser, "/rooms/bw-opening", "main [role=status]", "room").await;
    browser
        .client
        .goto(&app.url("/rooms/bw-opening?lang=en"))
        .await
        .unwrap();
    // It opens: the waiting page takes the visitor on to the form.
    app.put_room(
        "bw-opening",
        &room(chrono::Utc::now() - chrono::Duration::minutes(1)),
    )
    .await;
    text_of(&browser, "label[for=phone]").await;
    looks_right(&browser, "register-admitted-en").await;

    type_into(&browser, "birth_year", "1956").await;
    fill_in_the_rest(&browser, "0171 55590003").await;
    submit(&browser).await;
    text_of(&browser, "label[for=code]").await;
    browser.close().await;
    app.stop().await;
}

/// Signed in to `/me`: the choices change (a form sent without a vaccine says so), a booking is
/// cancelled and the registration withdrawn, each after a page that asks first.
#[tokio::test]
async fn a_citizen_changes_choices_cancels_and_withdraws_after_being_asked() {
    let app = spawn_with(Components::default(), |_| {}).await;
    app.load_demo().await;
    let (registrant, code) = booked(&app, "+4917155590004").await;
    let holder = format!("BookingCode {code}");

    let browser = Browser::start(360, 740).await;
    in_every_language(&app, &browser, "/me", "label[for=booking_code]", "sign-in").await;
    browser.client.goto(&app.url("/me?lang=en")).await.unwrap();
    sign_in_as(&browser, &code.to_string()).await;
    // Every page of a booked person, in every language, before anything changes.
    for page in ["me", "me/choices", "me/cancel", "me/withdraw"] {
        let name = format!("{}-booked", page.replace('/', "-"));
        in_every_language(&app, &browser, &format!("/{page}"), "main h1", &name).await;
    }
    browser.client.goto(&app.url("/me?lang=en")).await.unwrap();
    text_of(&browser, "main [role=status]").await;
    looks_right(&browser, "status-booked-en").await;

    let click = |text: &'static str| {
        let browser = &browser;
        async move {
            browser
                .client
                .find(Locator::LinkText(text))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
    };
    click("Change your choices").await;
    text_of(&browser, "label[for=max_distance_km]").await;
    looks_right(&browser, "choices-en").await;
    for ticked in browser
        .client
        .find_all(Locator::Css("input[name=vaccine]:checked"))
        .await
        .unwrap()
    {
        ticked.click().await.unwrap();
    }
    submit(&browser).await;
    text_of(&browser, "[role=alert]").await;
    looks_right(&browser, "choices-problem-en").await;
    browser
        .client
        .find(Locator::Css("input[value=moderna]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    type_into(&browser, "max_distance_km", "50").await;
    submit(&browser).await;
    text_of(&browser, "main [role=status]").await;
    let (_, me) = app.call(Method::GET, "/v1/me", &holder, None).await;
    assert_eq!(
        me["choices"]["accepted_vaccines"],
        serde_json::json!(["moderna"]),
        "{me}"
    );
    assert_eq!(me["choices"]["max_distance_km"], 50);

    click("Cancel this booking").await;
    text_of(&browser, "main form button").await;
    looks_right(&browser, "confirm-cancel-en").await;
    submit(&browser).await;
    text_of(&browser, "main [role=status]").await;
    let (_, me) = app.call(Method::GET, "/v1/me", &holder, None).await;
    assert!(me["booking"].is_null(), "{me}");

    click("Withdraw your registration").await;
    text_of(&browser, "main form button").await;
    looks_right(&browser, "confirm-withdraw-en").await;
    submit(&browser).await;
    text_of(&browser, "main a[href^='/?']").await;
    looks_right(&browser, "withdrawn-en").await;
    let (status, _) = app.call(Method::GET, "/v1/me", &holder, None).await;
    assert_eq!(status, 401);
    let state: String = sqlx::query_scalar("SELECT status FROM registrants WHERE id = $1")
        .bind(registrant)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(state, "withdrawn");
    browser.close().await;
    app.stop().await;
}

/// The whole path in Arabic at 360 × 740 with the keyboard alone and the pages' scripts off:
/// the waiting room says what to do without JavaScript (it needs it to hold a place), and
/// once let through, the form, the SMS code, the booking code, the status page, the offer and
/// the pass work as plain HTML, to the first dose and the status page saying so.
#[tokio::test]
async fn a_citizen_goes_the_whole_way_by_keyboard_without_javascript_in_arabic() {
    let app = spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        |_| {},
    )
    .await;
    app.load_demo().await;
    app.put_room(
        "bw-opening",
        &serde_json::json!({
            "mode": "fifo", "opens_at": chrono::Utc::now().to_rfc3339(), "guards": ["bw"],
            "target_path": "/regions/bw/register?lang=ar",
        }),
    )
    .await;
    let browser = Browser::start(360, 740).await;
    browser.allow_scripts(false).await;
    browser
        .client
        .goto(&app.url("/regions/bw/register?lang=ar"))
        .await
        .unwrap();
    let told = text_of(&browser, "noscript p").await;
    assert_eq!(told, page_text("ar", "room.noscript"));
    looks_right_without_scripts(&browser, "room-noscript-ar").await;

    // The room holds the place with its script; the rest of the way needs none.
    browser.allow_scripts(true).await;
    browser.client.refresh().await.unwrap();
    text_of(&browser, "label[for=phone]").await;
    browser.allow_scripts(false).await;
    browser.client.refresh().await.unwrap();
    text_of(&browser, "label[for=phone]").await;
    looks_right_without_scripts(&browser, "register-noscript-ar").await;

    // Keystrokes so far.
    let keys = std::cell::Cell::new(0);
    let key = |count: usize| keys.set(keys.get() + count);
    let enter = Key::Enter.to_string();
    key(by_keyboard(&browser, "a.skip", &enter).await);
    for (css, typed) in [
        ("#phone", "0171 55590005"),
        ("#birth_year", "1956"),
        ("#priority_group", "3"),
        ("#postcode", "70173"),
        ("input[value=biontech]", " "),
    ] {
        key(by_keyboard(&browser, css, typed).await);
    }
    let phone = "+4917155590005";
    let sms = app.twilio.next_message_to(phone);
    key(by_keyboard(&browser, "main form button[type=submit]", &enter).await);
    let sms = tokio::time::timeout(Duration::from_secs(20), sms)
        .await
        .expect("the SMS code arrives");
    text_of(&browser, "label[for=code]").await;
    looks_right_without_scripts(&browser, "code-noscript-ar").await;
    let code = code_in(&sms.body);
    key(by_keyboard(&browser, "#code", &format!("{code}{enter}")).await);
    let booking_code = text_of(&browser, ".booking-code").await;
    assert_eq!(booking_code.len(), 19);
    looks_right_without_scripts(&browser, "registered-noscript-ar").await;
    eprintln!("registered with the keyboard alone in {} keystrokes", keys.get());

    key(by_keyboard(&browser, "main a[href^='/me']", &enter).await);
    text_of(&browser, "main [role=status]").await;
    looks_right_without_scripts(&browser, "status-noscript-ar").await;

    // Drawn: the link in the SMS opens the offer, accepted with the keyboard.
    let offer = app.twilio.next_message_to(phone);
    app.draw().await;
    let offer = tokio::time::timeout(Duration::from_secs(20), offer)
        .await
        .expect("the offer SMS");
    browser.client.goto(&app.url(link_in(&offer.body))).await.unwrap();
    text_of(&browser, "main form[action*='/accept'] button").await;
    looks_right_without_scripts(&browser, "offer-noscript-ar").await;
    let confirmation = app.twilio.next_message_to(phone);
    key(by_keyboard(&browser, "main form[action*='/accept'] button", &enter).await);
    text_of(&browser, "main [role=status]").await;
    looks_right_without_scripts(&browser, "accepted-noscript-ar").await;
    open_the_pass(&app, &browser, confirmation).await;
    looks_right_without_scripts(&browser, "pass-noscript-ar").await;

    let door = format!(
        "Bearer {}",
        app.staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
            .await
    );
    let person = Person {
        lang: "ar",
        phone,
        booking_code: &booking_code,
    };
    check_in_at_the_door(&app, &person, &door).await;
    browser.client.goto(&app.url("/me?lang=ar")).await.unwrap();
    text_of(&browser, "main [role=status]").await;
    let page = browser.client.source().await.unwrap();
    assert!(
        page.contains(&page_text("ar", "booking_state.first_dose_given")),
        "{page}"
    );
    looks_right_without_scripts(&browser, "status-first-dose-noscript-ar").await;
    eprintln!(
        "from the form to the first dose with the keyboard alone in {} keystrokes",
        keys.get()
    );
    browser.close().await;
    app.stop().await;
}

/// A refusal on the status page comes back as the status page, saying why in its language:
/// a course whose first dose was given cannot be cancelled there.
#[tokio::test]
async fn the_status_page_says_why_it_cannot_cancel_a_started_course() {
    let app = spawn_with(Components::default(), |_| {}).await;
    app.load_demo().await;
    let (_, code) = booked(&app, "+4917155590007").await;
    sqlx::query("UPDATE bookings SET state = 'first_dose_given'")
        .execute(&app.pool)
        .await
        .unwrap();

    let browser = Browser::start(360, 740).await;
    browser.client.goto(&app.url("/me?lang=de")).await.unwrap();
    sign_in_as(&browser, &code.to_string()).await;
    let form = browser.client.find(Locator::Css("form[action^='/me/cancel']"));
    assert!(
        form.await.is_err(),
        "no cancel button once the course has started"
    );
    // Sent anyway (an old tab): the page says why, in German.
    browser
        .client
        .execute(
            "const f = document.createElement('form'); f.method = 'post'; f.action = '/me/cancel?lang=de'; document.body.append(f); f.submit();",
            Vec::new(),
        )
        .await
        .unwrap();
    let said = text_of(&browser, "main [role=alert]").await;
    assert!(said.contains("erste Dosis"), "{said}");
    looks_right(&browser, "status-refused-de").await;
    browser.close().await;
    app.stop().await;
}

/// The staff sign-in and home pages pass axe-core and fit 360 px in German and English; a
/// staff member signs in and out with the keyboard alone.
#[tokio::test]
async fn a_staff_member_signs_in_and_out_with_the_keyboard() {
    let app = demo_with_door_staff().await;
    let browser = Browser::start(360, 740).await;
    in_languages(
        &app,
        &browser,
        &CONSOLE_LANGUAGES,
        "/staff",
        "label[for=password]",
        "staff-sign-in",
    )
    .await;
    browser.client.goto(&app.url("/staff?lang=en")).await.unwrap();
    text_of(&browser, "label[for=password]").await;
    let enter = Key::Enter.to_string();
    let mut keys = by_keyboard(&browser, "#username", "door.stuttgart").await;
    keys += by_keyboard(&browser, "#password", &format!("a long test password{enter}")).await;
    let signed_in = text_of(&browser, "main [role=status]").await;
    assert_eq!(signed_in, "Signed in as door.stuttgart.");
    eprintln!("signed in with the keyboard alone in {keys} keystrokes");
    in_languages(
        &app,
        &browser,
        &CONSOLE_LANGUAGES,
        "/staff",
        "main [role=status]",
        "staff-home",
    )
    .await;
    by_keyboard(&browser, "nav form button[type=submit]", &enter).await;
    text_of(&browser, "label[for=password]").await;
    browser.close().await;
    app.stop().await;
}

/// The demo, with `door.stuttgart` of the Stuttgart centre's staff (the test password).
async fn demo_with_door_staff() -> TestApp {
    let app = spawn_with(Components::default(), |_| {}).await;
    app.load_demo().await;
    app.staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
        .await;
    app
}

/// The languages of the staff consoles.
const CONSOLE_LANGUAGES: [&str; 2] = ["de", "en"];

/// Signs `username` in through the sign-in page, by keyboard, in English.
async fn sign_in_to_the_console(app: &TestApp, browser: &Browser, username: &str) {
    browser.client.goto(&app.url("/staff?lang=en")).await.unwrap();
    text_of(browser, "label[for=password]").await;
    by_keyboard(browser, "#username", username).await;
    by_keyboard(
        browser,
        "#password",
        &format!("a long test password{}", Key::Enter),
    )
    .await;
    text_of(browser, "main [role=status]").await;
}

/// An agent on the phone registers a caller and a second person of the household on the same
/// phone without touching the mouse, reads the booking code back from the page, and later finds
/// the caller by that code and accepts their offer for them. Prints the keystrokes and seconds
/// of a registration; every console page passes axe-core in German and English on a tablet.
#[tokio::test]
async fn an_agent_registers_a_caller_by_keyboard_and_accepts_their_offer() {
    let app = spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        |_| {},
    )
    .await;
    app.load_demo().await;
    app.staff_token("agent.anna", Role::CallcentreAgent, "bw", None)
        .await;
    let browser = Browser::start(800, 1000).await;
    sign_in_to_the_console(&app, &browser, "agent.anna").await;
    for (path, css, name) in [
        ("/staff", "main [role=status]", "agent-home"),
        ("/staff/callers", "label[for=query]", "agent-desk"),
        ("/staff/callers/new", "label[for=phone]", "agent-register"),
        ("/staff/capacity", "main table", "agent-capacity"),
    ] {
        in_languages(&app, &browser, &CONSOLE_LANGUAGES, path, css, name).await;
    }

    // The form opens with the cursor in the phone field; Enter in the postcode sends it with
    // every vaccine, 30 km and German messages, as most callers answer.
    browser
        .client
        .goto(&app.url("/staff/callers/new?lang=en"))
        .await
        .unwrap();
    text_of(&browser, "label[for=phone]").await;
    let (tab, enter) = (Key::Tab.to_string(), Key::Enter.to_string());
    let typed = format!("0171 5553001{tab}1950{tab}{tab}2{tab}70173{enter}");
    let sms = app.twilio.next_message_to("+491715553001");
    let started = std::time::Instant::now();
    browser.press(&typed).await;
    let read_out = text_of(&browser, "#booking_code").await;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "an agent registered a caller in {} keystrokes and {seconds:.2} s (browser and WebDriver included)",
        typed.chars().count()
    );
    looks_right(&browser, "agent-registered-en").await;
    let sms = tokio::time::timeout(Duration::from_secs(20), sms)
        .await
        .expect("the booking code by SMS");
    assert!(sms.body.contains(&read_out), "{read_out} in {}", sms.body);
    let spelled = text_of(&browser, "ol.read-back").await;
    assert!(spelled.contains(" as in "), "{spelled}");

    // The household's second person: the phone and the rest are kept, the cursor waits at the
    // birth year.
    let typed = enter.clone();
    browser.press(&typed).await;
    text_of(&browser, "label[for=birth_year]").await;
    let second = format!("1952{tab}B.M.{tab}2{tab}{enter}");
    browser.press(&second).await;
    let second_code = text_of(&browser, "#booking_code").await;
    assert_ne!(second_code, read_out);
    eprintln!(
        "and the household's second person in {} keystrokes",
        typed.chars().count() + second.chars().count()
    );
    let on_phone: i64 =
        sqlx::query_scalar("SELECT count(*) FROM registrants WHERE status = 'active' AND phone_index = $1")
            .bind(app.phone_index("+491715553001"))
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(on_phone, 2);

    // A draw offers the caller a pair; they call back and read out their code.
    app.draw().await;
    browser
        .client
        .goto(&app.url("/staff/callers?lang=de"))
        .await
        .unwrap();
    text_of(&browser, "label[for=query]").await;
    browser.press(&format!("{read_out}{enter}")).await;
    text_of(&browser, "main h2").await;
    looks_right(&browser, "agent-caller-offer-de").await;
    // The caller's messages are in German here; Accept has the focus.
    browser.press(&enter).await;
    let done = text_of(&browser, "main p.yes[role=status]").await;
    assert!(done.starts_with("Gebucht"), "{done}");
    looks_right(&browser, "agent-caller-booked-de").await;
    let booked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bookings b JOIN registrants r ON r.id = b.registrant_id
         WHERE r.phone_index = $1 AND r.birth_year = 1950 AND b.state = 'booked'",
    )
    .bind(app.phone_index("+491715553001"))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(booked, 1);
    browser.close().await;
    app.stop().await;
}

/// The check-in pass of the booked person with `code`, as their status gives it; their first
/// appointment moved to now, so the door may check them in.
async fn pass_for_today(app: &TestApp, code: &drawbridge_domain::BookingCode) -> (String, String) {
    let (_, me) = app
        .call(Method::GET, "/v1/me", &format!("BookingCode {code}"), None)
        .await;
    let booking = &me["booking"];
    sqlx::query(
        "UPDATE slot_pairs p SET first_slot_at = now() FROM bookings b
         WHERE p.id = b.slot_pair_id AND b.state = 'booked' AND b.registrant_id = $1",
    )
    .bind(
        me["registration_id"]
            .as_str()
            .unwrap()
            .parse::<uuid::Uuid>()
            .unwrap(),
    )
    .execute(&app.pool)
    .await
    .unwrap();
    (
        booking["checkin_pass"].as_str().unwrap().to_owned(),
        booking["reference"].as_str().unwrap().to_owned(),
    )
}

/// Centre staff on a tablet publish capacity through the form (the vaccine's dose interval
/// checked as they type), see a booking in the day's schedule, and check people in at the door
/// with the pass's text (as a scanner types it) and with the booking reference and birth year;
/// the same pass again is refused in red. Every page passes axe-core in German and English.
#[tokio::test]
async fn centre_staff_publish_capacity_and_check_people_in_at_the_door() {
    let app = demo_with_door_staff().await;
    let browser = Browser::start(1024, 768).await;
    sign_in_to_the_console(&app, &browser, "door.stuttgart").await;
    let centre = format!("/staff/centres/{STUTTGART}");
    for (path, css, name) in [
        (centre.clone(), "main h2", "centre-day"),
        (
            format!("{centre}/publish"),
            "label[for=vaccine]",
            "centre-publish",
        ),
        (format!("{centre}/door"), "label[for=pass]", "centre-door"),
    ] {
        in_languages(&app, &browser, &CONSOLE_LANGUAGES, &path, css, name).await;
    }

    // Publishing: the form says what the vaccine needs before it is sent.
    browser
        .client
        .goto(&app.url(&format!("{centre}/publish?lang=en")))
        .await
        .unwrap();
    text_of(&browser, "label[for=vaccine]").await;
    browser
        .client
        .find(Locator::Css("#vaccine option[value=biontech]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let said = text_of(&browser, "#check").await;
    assert!(
        said.starts_with("The second dose of this vaccine must be"),
        "{said}"
    );
    type_into(&browser, "second_dose_after_days", "28").await;
    let said = text_of(&browser, "#check").await;
    assert!(
        said.ends_with("pairs of appointments will be published."),
        "{said}"
    );
    let announced: i64 = said.split(' ').next().unwrap().parse().unwrap();
    browser
        .client
        .find(Locator::Css("#capacity button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let done = text_of(&browser, "main p.yes[role=status]").await;
    assert!(done.starts_with("Capacity published"), "{done}");
    let published: i64 = sqlx::query_scalar(
        "SELECT pairs::bigint FROM capacity_batches b JOIN staff s ON s.id = b.created_by WHERE s.username = 'door.stuttgart'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(published, announced);
    looks_right(&browser, "centre-published-en").await;

    // Two people booked at the centre, both due now.
    let (_, first) = booked(&app, "+4917155570001").await;
    let (_, second) = booked(&app, "+4917155570002").await;
    let (pass, _) = pass_for_today(&app, &first).await;
    let (_, reference) = pass_for_today(&app, &second).await;
    browser
        .client
        .goto(&app.url(&format!("{centre}?lang=en")))
        .await
        .unwrap();
    let totals = text_of(&browser, "main h2 + p").await;
    assert!(totals.contains("2 booked, 0 checked in"), "{totals}");

    // The door: the scanner types the pass into the focused field and presses Enter.
    browser
        .client
        .goto(&app.url(&format!("{centre}/door?lang=en")))
        .await
        .unwrap();
    text_of(&browser, "label[for=pass]").await;
    let enter = Key::Enter.to_string();
    browser.press(&format!("{pass}{enter}")).await;
    let admitted = text_of(&browser, "#answer.admitted .headline").await;
    assert!(admitted.ends_with("Admit: first dose"), "{admitted}");
    looks_right(&browser, "centre-door-admitted-en").await;
    browser.press(&format!("{pass}{enter}")).await;
    let refused = text_of(&browser, "#answer.refused").await;
    // Its first dose given, the pass next opens the door for the second appointment.
    assert!(
        refused.contains("Do not admit") && refused.contains("Too early"),
        "{refused}"
    );
    looks_right(&browser, "centre-door-refused-en").await;
    // No pass at hand: the reference and the birth year.
    by_keyboard(&browser, "#reference", &reference).await;
    by_keyboard(&browser, "#birth_year", &format!("1950{enter}")).await;
    let admitted = text_of(&browser, "#answer.admitted .headline").await;
    assert!(admitted.ends_with("Admit: first dose"), "{admitted}");

    browser
        .client
        .goto(&app.url(&format!("{centre}?lang=en")))
        .await
        .unwrap();
    let totals = text_of(&browser, "main h2 + p").await;
    assert!(totals.contains("2 booked, 2 checked in"), "{totals}");
    browser.close().await;
    app.stop().await;
}

/// Two door devices lose their connection: each checks passes on the device with the published
/// keys, refuses a forged pass and a pass used twice on it, and once connected again sends its
/// check-ins; the one whose pass the other door had already sent is flagged.
#[tokio::test]
async fn doors_check_passes_offline_and_flag_a_pass_used_at_two_doors() {
    let app = demo_with_door_staff().await;
    let (_, code) = booked(&app, "+4917155570003").await;
    let (pass, reference) = pass_for_today(&app, &code).await;
    let door = format!("/staff/centres/{STUTTGART}/door?lang=en");
    let mut doors = Vec::new();
    for _ in 0..2 {
        let browser = Browser::start(1024, 768).await;
        sign_in_to_the_console(&app, &browser, "door.stuttgart").await;
        browser.client.goto(&app.url(&door)).await.unwrap();
        text_of(&browser, "label[for=pass]").await;
        // The keys are kept on the device once fetched.
        let kept = browser
            .client
            .execute("return localStorage.getItem('drawbridge-pass-keys')", Vec::new())
            .await
            .unwrap();
        assert!(kept.as_str().unwrap_or_default().contains("Ed25519"), "{kept}");
        browser.set_offline(true).await;
        doors.push(browser);
    }
    let enter = Key::Enter.to_string();
    // An altered pass: one character early in its signature changed (the last one may only
    // carry padding bits).
    let at = pass.rfind('.').unwrap() + 5;
    let changed = if &pass[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{changed}{}", &pass[..at], &pass[at + 1..]);
    let (one, other) = (&doors[0], &doors[1]);
    one.press(&format!("{forged}{enter}")).await;
    let refused = text_of(one, "#answer.refused").await;
    assert!(refused.contains("not a valid pass"), "{refused}");
    for browser in &doors {
        browser.press(&format!("{pass}{enter}")).await;
        let admitted = text_of(browser, "#answer.admitted").await;
        assert!(
            admitted.contains("No connection") && admitted.contains(&reference),
            "{admitted}"
        );
    }
    one.press(&format!("{pass}{enter}")).await;
    let twice = text_of(one, "#answer.refused").await;
    assert!(
        twice.contains("used twice") && twice.contains(&reference),
        "{twice}"
    );
    looks_right(one, "centre-door-offline-twice-en").await;
    let given: i64 = sqlx::query_scalar("SELECT count(*) FROM bookings WHERE first_dose_at IS NOT NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(given, 0, "nothing reached the server while offline");

    one.set_offline(false).await;
    let synced = text_of(one, "#answer.admitted").await;
    assert!(synced.contains("were sent"), "{synced}");
    other.set_offline(false).await;
    let flagged = text_of(other, "#answer.refused").await;
    assert!(
        flagged.contains("used twice") && flagged.contains(&reference),
        "{flagged}"
    );
    let given: i64 = sqlx::query_scalar("SELECT count(*) FROM bookings WHERE first_dose_at IS NOT NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(given, 1);
    for browser in doors {
        browser.close().await;
    }
    app.stop().await;
}

/// Clicks the element `css` selects.
async fn click(browser: &Browser, css: &str) {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("no {css} on the page"))
        .click()
        .await
        .unwrap();
}

/// The status line of the page that comes after a click, once it starts with `start` (the
/// page before may still show its own for a moment).
async fn status_once(browser: &Browser, start: &str) -> String {
    for _ in 0..100 {
        if let Ok(found) = browser.client.find(Locator::Css("main p.yes[role=status]")).await {
            if let Ok(text) = found.text().await {
                if text.starts_with(start) {
                    return text;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.screenshot("failed").await;
    panic!("no status starting {start:?} (target/screenshots/failed.png)");
}

/// Chooses `path` in the file field `id`, as a person picking a file does.
async fn choose_file(browser: &Browser, id: &str, path: &std::path::Path) {
    let field = browser.client.find(Locator::Id(id)).await.unwrap();
    field.send_keys(path.to_str().unwrap()).await.unwrap();
}

/// A region admin imports centres from a CSV file after a dry run, imports staff (whose
/// printed passwords work, until their person chooses their own, which is the first thing the
/// console asks of them), and schedules a waiting room's opening; every page of the admin's
/// console and the password form pass axe-core in German and English on a tablet.
#[tokio::test]
async fn a_region_admin_imports_centres_and_staff_and_schedules_a_room() {
    let app = spawn_with(Components::default(), |_| {}).await;
    app.load_demo().await;
    app.staff_token("admin.anna", Role::RegionAdmin, "bw", None).await;
    let browser = Browser::start(1024, 768).await;
    sign_in_to_the_console(&app, &browser, "admin.anna").await;
    for (path, css, name) in [
        ("/staff/admin/centres", "#centres", "admin-centres"),
        ("/staff/admin/centres/new", "label[for=id]", "admin-centre-new"),
        (
            "/staff/admin/centres/stuttgart-liederhalle",
            "label[for=name]",
            "admin-centre",
        ),
        ("/staff/admin/staff", "#accounts", "admin-staff"),
        ("/staff/admin/rooms", "#rooms", "admin-rooms"),
        ("/staff/admin/policy", "#versions", "admin-policy"),
        ("/staff/admin/audit", "#audit", "admin-audit"),
    ] {
        in_languages(&app, &browser, &CONSOLE_LANGUAGES, path, css, name).await;
    }
    let dir = std::env::temp_dir().join(format!("drawbridge-admin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();

    // Centres: a dry run first, then the same file imported from its page.
    let centres = dir.join("centres.csv");
    std::fs::write(
        &centres,
        "id,name,address,postcode,latitude,longitude,vaccines\n\
         ulm-messe,Impfzentrum Ulm Messe,\"Böfinger Straße 50, 89073 Ulm\",89073,48.4152,9.9951,biontech moderna\n\
         tuebingen-paul-horn,Impfzentrum Tübingen,\"Europastraße 50, 72072 Tübingen\",72072,48.5216,9.0576,\n",
    )
    .unwrap();
    browser
        .client
        .goto(&app.url("/staff/admin/centres?lang=en"))
        .await
        .unwrap();
    text_of(&browser, "#centres").await;
    choose_file(&browser, "centres-file", &centres).await;
    click(&browser, "form[action^='/staff/admin/centres/import'] button").await;
    status_once(
        &browser,
        "Every line is right. An import would create 2, change 0",
    )
    .await;
    looks_right(&browser, "admin-import-dry-run-en").await;
    let known: i64 = sqlx::query_scalar("SELECT count(*) FROM centres WHERE id = 'ulm-messe'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(known, 0, "a dry run changes nothing");
    click(&browser, "#import-now").await;
    status_once(&browser, "Imported: 2 created").await;
    browser
        .client
        .goto(&app.url("/staff/admin/centres?lang=en"))
        .await
        .unwrap();
    let listed = text_of(&browser, "#centres").await;
    assert!(listed.contains("Impfzentrum Ulm Messe"), "{listed}");

    // Staff: imported at once (dry run unticked); each password is shown once, and works.
    let staff = dir.join("staff.csv");
    std::fs::write(
        &staff,
        "username,role,centre\nagent.ulm,callcentre_agent,\ndoor.ulm,centre_staff,ulm-messe\n",
    )
    .unwrap();
    browser
        .client
        .goto(&app.url("/staff/admin/staff?lang=en"))
        .await
        .unwrap();
    text_of(&browser, "#accounts").await;
    choose_file(&browser, "staff-file", &staff).await;
    click(
        &browser,
        "form[action^='/staff/admin/staff/import'] input[name=dry_run]",
    )
    .await;
    click(&browser, "form[action^='/staff/admin/staff/import'] button").await;
    status_once(&browser, "Imported: 2 created").await;
    looks_right(&browser, "admin-staff-imported-en").await;
    let row = text_of(&browser, "#imported tbody tr:nth-child(2)").await;
    let password = row.split_whitespace().last().unwrap().to_owned();
    assert!(row.contains("door.ulm") && password.len() == 19, "{row}");
    let session = app
        .post_json(
            "/v1/staff/sessions",
            &serde_json::json!({ "username": "door.ulm", "password": password }),
        )
        .await;
    assert_eq!(session.status(), 201, "the password shown works");

    // A waiting room in front of the region's registration, opening on Christmas Eve at 8.
    browser
        .client
        .goto(&app.url("/staff/admin/rooms?lang=en"))
        .await
        .unwrap();
    text_of(&browser, "#rooms").await;
    let enter = Key::Enter.to_string();
    by_keyboard(&browser, "#name", &format!("bw-opening{enter}")).await;
    text_of(&browser, "label[for=opens_at]").await;
    click(&browser, "#mode option[value=fifo]").await;
    browser
        .client
        .execute(
            "document.getElementById('opens_at').value = arguments[0]",
            vec![serde_json::json!("2026-12-24T08:00")],
        )
        .await
        .unwrap();
    type_into(&browser, "admit_per_minute", "120").await;
    click(&browser, "#room button[type=submit]").await;
    status_once(&browser, "The waiting room was created.").await;
    let room = app.describe_room("bw-opening").await;
    assert_eq!(room["config"]["mode"], "fifo", "{room}");
    assert_eq!(room["config"]["admit_per_minute"], 120);
    assert_eq!(
        room["config"]["opens_at"], "2026-12-24T07:00:00Z",
        "Berlin's 8 o'clock"
    );
    assert_eq!(room["config"]["guards"], serde_json::json!(["bw"]));
    in_languages(
        &app,
        &browser,
        &CONSOLE_LANGUAGES,
        "/staff/admin/rooms/bw-opening",
        "#counters",
        "admin-room",
    )
    .await;

    // The password shown for door.ulm opens one page only: choosing their own.
    click(&browser, "form[action^='/staff/sign-out'] button").await;
    text_of(&browser, "label[for=password]").await;
    by_keyboard(&browser, "#username", "door.ulm").await;
    by_keyboard(&browser, "#password", &format!("{password}{enter}")).await;
    text_of(&browser, "label[for=new_password]").await;
    in_languages(
        &app,
        &browser,
        &CONSOLE_LANGUAGES,
        "/staff/password",
        "label[for=new_password]",
        "staff-password",
    )
    .await;
    browser
        .client
        .goto(&app.url("/staff/password?lang=en"))
        .await
        .unwrap();
    text_of(&browser, "label[for=new_password]").await;
    by_keyboard(&browser, "#current_password", &password).await;
    by_keyboard(&browser, "#new_password", "door ulm's own password").await;
    by_keyboard(
        &browser,
        "#repeated_password",
        &format!("door ulm's own password{enter}"),
    )
    .await;
    status_once(&browser, "Your new password is saved.").await;
    looks_right(&browser, "staff-password-chosen-en").await;
    std::fs::remove_dir_all(dir).unwrap();
    browser.close().await;
    app.stop().await;
}

/// An analyst on a tablet opens the region's draws and a draw's page: its replay verdict, its
/// bias tests and its offer rates as charts, each with a table of the same figures. The manifest
/// they download is the JSON `/v1/draws/{id}/manifest` publishes. Every page, the list of
/// simulation reports too, passes axe-core in German and English.
#[tokio::test]
async fn an_analyst_downloads_a_manifest_and_sees_the_audit_charts() {
    let reports = crate::simulation_reports(&[("bw", "small-county")]);
    let folder = reports.clone();
    let app = spawn_with(Components::default(), move |settings| {
        settings.gateway.simulation_reports = Some(folder);
    })
    .await;
    app.load_demo().await;
    app.staff_token("analyst.anna", Role::Analyst, "bw", None).await;
    let (draw, _) = app.a_draw_of_six().await;
    let browser = Browser::start(1024, 768).await;
    sign_in_to_the_console(&app, &browser, "analyst.anna").await;
    let page = format!("/staff/draws/{draw}");
    for (path, css, name) in [
        ("/staff/draws", "main table a", "analyst-draws"),
        (page.as_str(), "svg.chart", "analyst-draw"),
        ("/staff/simulations", "main section a", "analyst-simulations"),
    ] {
        in_languages(&app, &browser, &CONSOLE_LANGUAGES, path, css, name).await;
    }

    // From the list to the draw, as an analyst would.
    browser
        .client
        .goto(&app.url("/staff/draws?lang=en"))
        .await
        .unwrap();
    browser
        .client
        .find(Locator::Css(&format!("main a[href^='/staff/draws/{draw}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let verdict = text_of(&browser, "#verdict").await;
    assert!(verdict.starts_with("Replays exactly"), "{verdict}");
    let charts = browser
        .client
        .find_all(Locator::Css("svg.chart[role=img]"))
        .await
        .unwrap();
    let mut titles = Vec::new();
    for chart in &charts {
        titles.push(
            chart
                .find(Locator::Css("title"))
                .await
                .unwrap()
                .html(true)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        titles,
        [
            "Offer rate by priority group",
            "Offer rate by age band",
            "Offer rate by week of registration",
            "Offer rate by channel"
        ]
    );
    let channels = text_of(&browser, "section[aria-labelledby=by-channel] table").await;
    assert!(
        channels.contains("callcentre 3") && channels.contains("web 3"),
        "{channels}"
    );

    browser
        .client
        .find(Locator::Id("manifest"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let downloaded = browser.downloaded(&format!("drawbridge-draw-{draw}.json")).await;
    let downloaded: serde_json::Value = serde_json::from_slice(&downloaded).unwrap();
    let published: serde_json::Value = app
        .get(&format!("/v1/draws/{draw}/manifest"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(downloaded, published);
    assert_eq!(downloaded["candidates"].as_array().unwrap().len(), 6);
    browser.close().await;
    app.stop().await;
    let _ = std::fs::remove_dir_all(&reports);
}
