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
    for lang in LANGUAGES {
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
         WHERE p.id = b.slot_pair_id AND b.state = 'booked' AND r.phone = $1",
    )
    .bind(person.phone)
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

/// The staff sign-in and home pages pass axe-core and fit 360 px in every language; a staff
/// member signs in and out with the keyboard alone.
#[tokio::test]
async fn a_staff_member_signs_in_and_out_with_the_keyboard() {
    let app = spawn_with(Components::default(), |_| {}).await;
    app.load_demo().await;
    app.staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
        .await;
    let browser = Browser::start(360, 740).await;
    in_every_language(&app, &browser, "/staff", "label[for=password]", "staff-sign-in").await;
    browser.client.goto(&app.url("/staff?lang=en")).await.unwrap();
    text_of(&browser, "label[for=password]").await;
    let enter = Key::Enter.to_string();
    let mut keys = by_keyboard(&browser, "#username", "door.stuttgart").await;
    keys += by_keyboard(&browser, "#password", &format!("a long test password{enter}")).await;
    let signed_in = text_of(&browser, "main [role=status]").await;
    assert_eq!(signed_in, "Signed in as door.stuttgart.");
    eprintln!("signed in with the keyboard alone in {keys} keystrokes");
    in_every_language(&app, &browser, "/staff", "main [role=status]", "staff-home").await;
    by_keyboard(&browser, "main form button[type=submit]", &enter).await;
    text_of(&browser, "label[for=password]").await;
    browser.close().await;
    app.stop().await;
}
