//! The citizen's pages in a real browser: headless Chromium at a phone's 360 × 740, driven
//! over WebDriver. Every page passes axe-core without a serious or critical violation, never
//! scrolls sideways, and leaves a screenshot in `target/screenshots/`.

use std::time::Duration;

use drawbridge_test_support::browser::{Browser, Locator};
use drawbridge_test_support::{spawn_with, Components, TestApp};

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

/// From the start page to the booking code and the status page, in German and in English,
/// with the SMS code read from the SMS provider; a form sent incomplete comes back with its
/// problems summarised at the top and tied to their fields.
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
    for (lang, phone, register, status) in [
        ("de", "+4917155590001", "Registrieren", "Ihre Angaben"),
        ("en", "+4917155590002", "Register", "Your details"),
    ] {
        register_in(&app, &browser, lang, phone, register, status).await;
    }
    browser.close().await;
    app.stop().await;
}

async fn register_in(
    app: &TestApp,
    browser: &Browser,
    lang: &str,
    phone: &str,
    register: &str,
    status: &str,
) {
    browser
        .client
        .goto(&app.url(&format!("/?lang={lang}")))
        .await
        .unwrap();
    looks_right(browser, &format!("start-{lang}")).await;
    browser
        .client
        .find(Locator::LinkText(register))
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

    type_into(browser, "phone", &phone.replace("+49", "0")).await;
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
    let sms = app.twilio.next_message_to(phone);
    submit(browser).await;
    let sms = tokio::time::timeout(Duration::from_secs(20), sms)
        .await
        .expect("the SMS code arrives");
    text_of(browser, "label[for=code]").await;
    looks_right(browser, &format!("code-{lang}")).await;
    let code = sms
        .body
        .split(|c: char| !c.is_ascii_digit())
        .find(|word| word.len() == 6)
        .unwrap_or_else(|| panic!("no code in {}", sms.body));

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
    assert!(page.contains(status), "{page}");
    looks_right(browser, &format!("status-{lang}")).await;
}
