//! The demo's authorization in a real browser (headless Chromium over WebDriver, as in
//! `browser`): the documents panel under the gateway's RBAC rules, and the billing page
//! behind MFA with its step-up page.
//!
//! In the order a person would click: Bob (`viewer`) sees Acme's documents and fails to
//! delete one (the panel shows the gateway's 403); Alice (`documents_admin`) deletes it,
//! opens the billing page, is sent to the step-up page, verifies, and lands back on the
//! billing page with its content; on the machine card, a fresh M2M token reads the
//! machines-only reports until Alice cuts the client off. Screenshots go to
//! `target/browser-test/authz-*.png`; `docs/demo-authz.png` is a copy of
//! `authz-02-bob-refused.png`, `docs/demo-machine.png` of `authz-07-machine-cut-off.png`.

use std::time::Instant;

use serde_json::Value as Json;

use super::browser::{Browser, Chromedriver, Demo, ONE_AT_A_TIME, chromium_or_skip, shots_dir};

/// Waits until the documents panel has loaded its list.
async fn documents_loaded(browser: &Browser) {
    browser
        .wait_true(
            "the documents are listed",
            "return document.querySelector('#document-list').dataset.loaded === 'true'",
        )
        .await;
}

/// Whether the panel lists the document `id`.
async fn lists(browser: &Browser, id: &str) -> bool {
    let script = format!("return document.querySelector('[data-document=\"{id}\"]') !== null");
    browser.js(&script).await == Json::Bool(true)
}

/// Clicks the delete button of document `id` and waits for the panel's outcome (`refused`
/// or `deleted`); returns the status line.
async fn delete(browser: &Browser, id: &str, outcome: &str) -> String {
    browser
        .click(&format!("button[data-delete=\"{id}\"]"))
        .await;
    let script = format!(
        "return document.querySelector('#documents-status').dataset.outcome === '{outcome}'"
    );
    browser
        .wait_true(&format!("the delete is {outcome}"), &script)
        .await;
    browser.text("#documents-status").await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_in_a_browser_refuses_a_reader_a_delete_and_steps_an_admin_up_for_billing() {
    // If this broke, a person clicking through the demo would see the gateway's RBAC fail: a
    // reader deleting documents (or an unreadable refusal), an admin unable to delete, or
    // the billing page not sending them to the step-up page, or not letting them in after it.
    if !chromium_or_skip() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let shots = shots_dir();
    let demo = Demo::start();
    let driver = Chromedriver::start();
    let base = demo.base.as_str();

    let bob = Browser::open(&driver, "bob-authz", &shots).await;
    reader_is_refused_a_delete(&bob, base).await;
    bob.close().await;

    let alice = Browser::open(&driver, "alice-authz", &shots).await;
    alice.sign_in(base, "Alice").await;
    documents_loaded(&alice).await;
    let status = delete(&alice, "doc-1", "deleted").await;
    assert!(status.contains("Q3 roadmap"), "{status}");
    assert!(
        !lists(&alice, "doc-1").await,
        "the deleted document is still listed"
    );
    alice.shot("authz-03-alice-deleted").await;
    a_machine_is_served_then_cut_off(&alice).await;
    billing_asks_for_a_second_factor(&alice, base).await;
    alice.close().await;
    eprintln!(
        "browser authz test: {:.1} s, screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
}

/// Bob (`viewer`) sees Acme's documents; his delete is refused by the gateway, and the
/// panel says why.
async fn reader_is_refused_a_delete(bob: &Browser, base: &str) {
    bob.sign_in(base, "Bob").await;
    documents_loaded(bob).await;
    for id in ["doc-1", "doc-2", "doc-3", "doc-4"] {
        assert!(lists(bob, id).await, "{id} is not listed");
    }
    assert!(bob.text("#document-list").await.contains("Q3 roadmap"));
    bob.shot("authz-01-bob-documents").await;
    let status = delete(bob, "doc-1", "refused").await;
    assert!(
        status.contains("403 insufficient_permission")
            && status.contains("session_authorization_error"),
        "{status}"
    );
    assert!(
        lists(bob, "doc-1").await,
        "a refused delete removed the row"
    );
    // The whole page, for docs/demo-authz.png.
    bob.resize(1280, 1150).await;
    bob.js("window.scrollTo(0, 0)").await;
    bob.shot("authz-02-bob-refused").await;
}

/// The machine card: a fresh M2M token from Stytch reads the machines-only reports; Alice
/// cuts the client off and the same token is refused; Stytch mints no new one.
async fn a_machine_is_served_then_cut_off(alice: &Browser) {
    let machine_status = |code: &str| format!("return document.body.dataset.machine === '{code}'");
    alice.click("#machine-call").await;
    alice
        .wait_true("the machine's call answered 200", &machine_status("200"))
        .await;
    let curl = alice.text("#machine-curl").await;
    assert!(
        curl.starts_with("curl -H 'Authorization: Bearer ey") && curl.ends_with("/api/reports"),
        "{curl}"
    );
    let answer = alice.text("#machine-answer").await;
    let client = alice.text("#machine-client").await;
    assert!(
        answer.contains("HTTP 200") && answer.contains(&client) && answer.contains("Churn"),
        "{answer}"
    );
    alice
        .js("document.querySelector('#machine').scrollIntoView()")
        .await;
    alice.shot("authz-06-machine-served").await;
    alice.click("#machine-cut").await;
    alice
        .wait_true("the token from before is refused", &machine_status("401"))
        .await;
    let status = alice.text("#machine-status").await;
    assert!(
        status.contains("cut off (200)") && status.contains("401"),
        "{status}"
    );
    alice.click("#machine-call").await;
    alice
        .wait_true(
            "Stytch refuses a new token",
            "return document.querySelector('#machine-status').textContent.includes('token endpoint')",
        )
        .await;
    alice
        .js("document.querySelector('#machine').scrollIntoView()")
        .await;
    alice.shot("authz-07-machine-cut-off").await;
}

/// The billing page sends a one-factor session to the step-up page; verifying there brings
/// the browser back to the billing page, which now loads.
async fn billing_asks_for_a_second_factor(browser: &Browser, base: &str) {
    browser.goto(&format!("{base}/billing")).await;
    browser.wait_state("step-up").await;
    let path = browser
        .js("return location.pathname + location.search")
        .await;
    assert_eq!(path, Json::from("/step-up?return_to=%2Fbilling"));
    assert_eq!(browser.text("#return-to").await, "/billing");
    browser.shot("authz-04-step-up-page").await;
    browser.click("#verify").await;
    browser.wait_state("billing").await;
    let path = browser.js("return location.pathname").await;
    assert_eq!(path, Json::from("/billing"));
    assert!(browser.text("#billing-ok").await.contains("second factor"));
    assert!(browser.text("#invoices").await.contains("INV-1042"));
    browser.shot("authz-05-billing-after-step-up").await;
}
