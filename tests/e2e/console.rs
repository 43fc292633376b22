//! The web console: its session and security over plain HTTP, and the
//! tasks of issue 14 done by a person in a real browser (headless
//! Chromium through chromedriver), with calls over real SIP. Screenshots
//! of the pages land in `target/console-screenshots/`.

use std::time::Duration;

use serde_json::json;
use switchboard_e2e::browser::Browser;
use switchboard_e2e::{password, Phone, Proto, TestRouter, DOMAIN};

const T: Duration = Duration::from_secs(4);
const SHORT: Duration = Duration::from_millis(600);

/// A router whose employee 2001 is an administrator.
async fn router() -> TestRouter {
    let r = TestRouter::start().await;
    r.patch_employee("2001", json!({"role": "administrator"}))
        .await;
    r
}

fn base(r: &TestRouter) -> String {
    format!("http://{}", r.running.http_addr)
}

async fn browser(r: &TestRouter) -> Option<Browser> {
    Browser::start(&base(r)).await
}

/// Logs in over HTTP as the console does; the response.
async fn console_login(r: &TestRouter, ext: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/console/session", base(r)))
        .json(&json!({"domain": DOMAIN, "login": ext, "password": password(ext)}))
        .send()
        .await
        .unwrap()
}

/// The session cookie (`sb_session=...`) and CSRF value of a login.
async fn cookie_and_csrf(r: &TestRouter, ext: &str) -> (String, String) {
    let resp = console_login(r, ext).await;
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = resp.json().await.unwrap();
    (cookie, body["csrf"].as_str().unwrap().to_owned())
}

// ---- session and security over HTTP ----------------------------------

#[tokio::test]
async fn the_console_is_served_at_the_root_of_the_admin_listener() {
    let r = router().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = client.get(format!("{}/", base(&r))).send().await.unwrap();
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], "/console/");
    let page = client
        .get(format!("{}/console/", base(&r)))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/console/app.js"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no outside links: {html}"
    );
}

#[tokio::test]
async fn console_responses_forbid_inline_scripts_and_framing() {
    let r = router().await;
    for path in ["/console/", "/console/app.js", "/console/app.css"] {
        let resp = reqwest::get(format!("{}{path}", base(&r))).await.unwrap();
        let csp = resp.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn a_console_login_puts_the_session_in_an_httponly_strict_cookie_and_not_in_the_body() {
    let r = router().await;
    let resp = console_login(&r, "2001").await;
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("sb_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP here: {cookie}");
    let body: serde_json::Value = resp.json().await.unwrap();
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("sb_session=");
    assert!(!body.to_string().contains(token), "{body}");
    assert_eq!(body["role"], "administrator");
    assert_eq!(body["extension"], "2001");
}

#[tokio::test]
async fn the_session_cookie_is_marked_secure_when_the_console_is_served_over_https() {
    let r = TestRouter::start_with(|c| c.http.secure_cookies = true).await;
    let resp = console_login(&r, "2002").await;
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn a_wrong_console_password_sets_no_cookie() {
    let r = router().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/console/session", base(&r)))
        .json(&json!({"domain": DOMAIN, "login": "2001", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn a_write_with_the_session_cookie_needs_the_csrf_header() {
    let r = router().await;
    let (cookie, csrf) = cookie_and_csrf(&r, "2001").await;
    let client = reqwest::Client::new();
    let url = format!(
        "{}/api/v1/tenants/1/employees/{}",
        base(&r),
        r.employee_id("2003")
    );
    let forged = client
        .patch(&url)
        .header("cookie", &cookie)
        .json(&json!({"name": "Forged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let body: serde_json::Value = forged.json().await.unwrap();
    assert_eq!(body["field"], "X-CSRF-Token");
    let wrong = client
        .patch(&url)
        .header("cookie", &cookie)
        .header("x-csrf-token", "0".repeat(64))
        .json(&json!({"name": "Forged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let ok = client
        .patch(&url)
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "Carol Console"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let (_, e) = r
        .api(
            "GET",
            &format!("/tenants/1/employees/{}", r.employee_id("2003")),
            None,
        )
        .await;
    assert_eq!(e["name"], "Carol Console");
}

#[tokio::test]
async fn reads_with_the_session_cookie_follow_the_roles_of_the_api() {
    let r = router().await;
    let (cookie, _) = cookie_and_csrf(&r, "2002").await;
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("{}/api/v1{path}", base(&r)))
            .header("cookie", &cookie)
            .send()
    };
    assert_eq!(
        get("/tenants/1/extensions/2002/diverts")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(get("/tenants/1/api-tokens").await.unwrap().status(), 403);
    assert_eq!(
        get("/tenants/1/extensions/2003/diverts")
            .await
            .unwrap()
            .status(),
        403
    );
}

#[tokio::test]
async fn logging_out_of_the_console_revokes_the_session_on_the_server() {
    let r = router().await;
    let (cookie, csrf) = cookie_and_csrf(&r, "2001").await;
    let client = reqwest::Client::new();
    let out = client
        .delete(format!("{}/console/session", base(&r)))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    // The old cookie, replayed, no longer works anywhere.
    let replay = client
        .get(format!("{}/api/v1/tenants/1/employees", base(&r)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
    let session = client
        .get(format!("{}/console/session", base(&r)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), 401);
}

#[tokio::test]
async fn a_console_login_from_another_site_is_refused() {
    let r = router().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/console/session", base(&r)))
        .header("origin", "https://evil.example")
        .json(&json!({"domain": DOMAIN, "login": "2001", "password": password("2001")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("set-cookie").is_none());
    let form = reqwest::Client::new()
        .post(format!("{}/console/session", base(&r)))
        .header("content-type", "text/plain")
        .body(json!({"domain": DOMAIN, "login": "2001", "password": password("2001")}).to_string())
        .send()
        .await
        .unwrap();
    assert_ne!(form.status(), 200, "a body a plain form could post");
    assert!(form.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn the_console_session_answer_is_never_cached() {
    let r = router().await;
    let (cookie, _) = cookie_and_csrf(&r, "2002").await;
    let resp = reqwest::Client::new()
        .get(format!("{}/console/session", base(&r)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(resp.headers().contains_key("content-security-policy"));
}

#[tokio::test]
async fn logging_out_without_the_csrf_header_is_refused_and_the_session_lives() {
    let r = router().await;
    let (cookie, _) = cookie_and_csrf(&r, "2002").await;
    let client = reqwest::Client::new();
    let out = client
        .delete(format!("{}/console/session", base(&r)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 403);
    let still = client
        .get(format!("{}/console/session", base(&r)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200);
}

#[tokio::test]
async fn two_session_cookies_in_one_request_authenticate_nobody() {
    let r = router().await;
    let (mine, _) = cookie_and_csrf(&r, "2002").await;
    let (planted, _) = cookie_and_csrf(&r, "2003").await;
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/tenants/1/extensions/2002/diverts",
            base(&r)
        ))
        .header("cookie", format!("{planted}; {mine}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn an_api_token_in_the_session_cookie_is_refused() {
    let r = router().await;
    let (status, created) = r
        .api(
            "POST",
            "/tenants/1/api-tokens",
            Some(
                json!({"label": "script", "employee_id": r.employee_id("2001")})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap();
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/tenants/1/employees", base(&r)))
        .header("cookie", format!("sb_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn a_live_update_stream_ends_when_its_session_is_revoked() {
    let r = router().await;
    let (cookie, csrf) = cookie_and_csrf(&r, "2001").await;
    let client = reqwest::Client::new();
    let mut stream = client
        .get(format!("{}/console/events", base(&r)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let out = client
        .delete(format!("{}/console/session", base(&r)))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    // The session is checked again every 15 s; the stream then ends.
    let ended = tokio::time::timeout(Duration::from_secs(25), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its session");
    assert!(wait_for_metric(&r, "switchboard_console_streams 0").await);
}

#[tokio::test]
async fn one_employee_cannot_hold_every_live_update_stream() {
    let r = router().await;
    let (cookie, _) = cookie_and_csrf(&r, "2002").await;
    let client = reqwest::Client::new();
    let mut open = Vec::new();
    for _ in 0..switchboard::web::STREAMS_PER_EMPLOYEE {
        let s = client
            .get(format!("{}/console/events", base(&r)))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(s.status(), 200);
        open.push(s);
    }
    let one_more = client
        .get(format!("{}/console/events", base(&r)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(one_more.status(), 503);
    // Someone else still gets one.
    let (other, _) = cookie_and_csrf(&r, "2003").await;
    let theirs = client
        .get(format!("{}/console/events", base(&r)))
        .header("cookie", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 200);
}

#[tokio::test]
async fn the_live_update_stream_needs_a_session_and_is_counted() {
    let r = router().await;
    let anonymous = reqwest::get(format!("{}/console/events", base(&r)))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let (cookie, _) = cookie_and_csrf(&r, "2001").await;
    let mut stream = reqwest::Client::new()
        .get(format!("{}/console/events", base(&r)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let first = tokio::time::timeout(T, stream.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&first);
    assert!(text.contains("event: snapshot"), "{text}");
    assert!(text.contains("\"presence\""), "{text}");
    assert!(r.metrics().await.contains("switchboard_console_streams 1"));
    drop(stream);
    assert!(wait_for_metric(&r, "switchboard_console_streams 0").await);
}

#[tokio::test]
async fn live_update_streams_beyond_the_configured_limit_are_refused() {
    let r = TestRouter::start_with(|c| c.http.max_console_streams = 1).await;
    let (cookie, _) = cookie_and_csrf(&r, "2002").await;
    let client = reqwest::Client::new();
    let open = || {
        client
            .get(format!("{}/console/events", base(&r)))
            .header("cookie", &cookie)
            .send()
    };
    let first = open().await.unwrap();
    assert_eq!(first.status(), 200);
    let second = open().await.unwrap();
    assert_eq!(second.status(), 503);
}

async fn wait_for_metric(r: &TestRouter, line: &str) -> bool {
    for _ in 0..40 {
        if r.metrics().await.contains(line) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

// ---- tasks in a real browser ------------------------------------------

#[tokio::test]
async fn an_administrator_logs_in_and_every_page_renders() {
    let r = router().await;
    let Some(b) = browser(&r).await else {
        return;
    };
    b.log_in("2001", &password("2001")).await;
    let cookies = b.cookies().await;
    let session = cookies
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sb_session")
        .expect("session cookie");
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    // No script of the page can read the token.
    assert_eq!(b.script("return document.cookie", json!([])).await, "");
    for (path, name, heading) in [
        ("#/company", "company-settings", "Company settings"),
        ("#/employees", "employees", "Employees"),
        ("#/devices", "devices", "Devices"),
        ("#/groups", "hunt-groups", "Hunt groups"),
        ("#/plugins", "plugins", "Plugins"),
        ("#/calls", "call-history", "Call history"),
        ("#/live", "live-calls", "Live calls and presence"),
        ("#/audit", "audit-log", "Audit log"),
        ("#/tokens", "api-tokens", "API tokens"),
        ("#/me/diverts", "my-diverts", "My diverts"),
        ("#/me/schedule", "my-schedule", "My reception and schedule"),
        ("#/me/delegation", "my-delegation", "My delegation"),
        ("#/me/hotdesk", "hotdesk", "Hotdesk"),
        ("#/me/status", "my-status", "My status"),
        ("#/me/calls", "my-calls", "My calls"),
    ] {
        b.open(&format!("/console/{path}")).await;
        let h1 = b.text("main h1").await;
        assert_eq!(h1, heading, "{path}");
        // A page that failed to load says so in its place.
        let failed = b
            .script(
                "return document.querySelector('main > p.form-error') !== null",
                json!([]),
            )
            .await;
        assert_eq!(failed, false, "{path}: {}", b.body_text().await);
        b.screenshot(name).await;
    }
}

#[tokio::test]
async fn the_console_is_usable_at_phone_width() {
    let r = router().await;
    let Some(b) = browser(&r).await else {
        return;
    };
    b.resize(390, 844).await;
    b.log_in("2002", &password("2002")).await;
    b.open("/console/#/me/diverts").await;
    b.find("select[name=always]").await;
    let overflow = b
        .script(
            "return document.documentElement.scrollWidth > window.innerWidth + 1",
            json!([]),
        )
        .await;
    let wide = b
        .script(
            "return [...document.querySelectorAll('body *')]\
               .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)\
               .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))",
            json!([]),
        )
        .await;
    assert_eq!(
        overflow, false,
        "the page scrolls sideways at 390 px: {wide}"
    );
    b.screenshot("phone-width-my-diverts").await;
}

#[tokio::test]
async fn a_user_diverts_to_their_mobile_in_the_console_and_the_call_follows_it() {
    let r = router().await;
    r.chain(&["divert"]).await;
    let mut trunk = Phone::new(r.sip(), "trunk", "unused", Proto::Udp).await;
    r.patch_tenant(json!({"trunk_uri": format!("sip:{}", trunk.local)}))
        .await;
    r.patch_employee("2002", json!({"mobile": "441234567890"}))
        .await;
    let Some(b) = browser(&r).await else {
        return;
    };
    b.log_in("2002", &password("2002")).await;
    b.open("/console/#/me/diverts").await;
    // Seed 002: a user is offered nothing but their own mobile.
    let offered = b.text("select[name=always]").await;
    assert!(!offered.contains("An extension"), "{offered}");
    b.select("select[name=always]", "number").await;
    b.click_button("Save diverts").await;
    assert!(
        b.wait_for_text("Diverts saved").await,
        "{}",
        b.body_text().await
    );
    b.screenshot("my-diverts").await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    alice.call("2002").await;
    let inv = trunk
        .expect_invite(T)
        .await
        .expect("diverted to the mobile");
    assert!(inv.first.contains("441234567890"), "{}", inv.first);
    assert!(bob.expect_invite(SHORT).await.is_none());
}

#[tokio::test]
async fn a_plugin_error_is_shown_next_to_the_field_and_nothing_is_saved() {
    let r = router().await;
    r.chain(&["divert"]).await;
    let Some(b) = browser(&r).await else {
        return;
    };
    b.log_in("2001", &password("2001")).await;
    b.open("/console/#/me/diverts").await;
    b.select("select[name=always]", "number").await;
    // Not the administrator's mobile, and the tenant allows no prefixes.
    b.fill("input[name='always.target']", "19005550100").await;
    b.click_button("Save diverts").await;
    let shown = b.text("[data-field=always] .error").await;
    assert!(!shown.is_empty(), "{}", b.body_text().await);
    b.screenshot("my-diverts-error").await;
    let (_, stored) = r
        .api("GET", "/tenants/1/extensions/2001/diverts", None)
        .await;
    assert_eq!(stored["settings"], json!({}));
}

#[tokio::test]
async fn a_user_is_not_offered_admin_pages_and_the_api_refuses_them() {
    let r = router().await;
    let Some(b) = browser(&r).await else {
        return;
    };
    b.log_in("2002", &password("2002")).await;
    let nav = b.text("#nav").await;
    assert!(nav.contains("My diverts"), "{nav}");
    assert!(
        !nav.contains("Employees") && !nav.contains("Plugins"),
        "{nav}"
    );
    b.open("/console/#/employees").await;
    assert_eq!(b.text("main h1").await, "Not allowed");
    b.screenshot("user-not-allowed").await;
    // Going around the page does not help: the API refuses the session.
    let status = b
        .script_async(
            "const done = arguments[arguments.length - 1];\
             fetch('/api/v1/tenants/1/employees', {credentials: 'same-origin'}).then(r => done(r.status));",
            json!([]),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_administrator_disabling_divert_in_the_console_stops_diverts_over_sip() {
    let r = router().await;
    r.chain(&["divert"]).await;
    let (status, body) = r
        .settings(
            "divert",
            "employee:2002",
            json!({"always": {"extension": "2004"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    let first = alice.call("2002").await;
    assert!(dave.expect_invite(T).await.is_some(), "diverted before");
    alice.cancel(&first).await;
    let Some(b) = browser(&r).await else {
        return;
    };
    b.log_in("2001", &password("2001")).await;
    b.open("/console/#/plugins").await;
    b.click_button("Disable divert").await;
    assert!(
        b.wait_for_text("Enable divert").await,
        "{}",
        b.body_text().await
    );
    b.screenshot("plugins-divert-disabled").await;
    let (_, view) = r.api("GET", "/tenants/1/plugins", None).await;
    assert_eq!(view["chain"][0]["enabled"], false, "{view}");
    dave.recv(SHORT).await; // the CANCEL of the first call
    let mut carol = r.phone("2003", Proto::Udp).await;
    let second = carol.call("2002").await;
    assert!(bob.expect_invite(T).await.is_some(), "rings 2002 now");
    let diverted = dave
        .recv_until(SHORT, |m| {
            m.method() == Some("INVITE") && m.header("Call-ID") == Some(second.call_id.as_str())
        })
        .await;
    assert!(diverted.is_none(), "not diverted any more");
}

#[tokio::test]
async fn an_administrator_uploads_a_plugin_in_the_console() {
    let r = router().await;
    let Some(b) = browser(&r).await else {
        return;
    };
    let wasm = r.dir.path().join("blocklist.wasm");
    std::fs::write(
        &wasm,
        switchboard::plugins::builtin::get("example-blocklist").unwrap(),
    )
    .unwrap();
    b.log_in("2001", &password("2001")).await;
    b.open("/console/#/plugins").await;
    b.fill("form input[name=name]", "my-blocklist").await;
    b.fill("input[type=file]", &wasm.display().to_string())
        .await;
    b.click_button("Upload").await;
    assert!(
        b.wait_for_text("Uploaded my-blocklist version 1").await,
        "{}",
        b.body_text().await
    );
    b.click_button("Add my-blocklist").await;
    assert!(b.wait_for_text("Disable my-blocklist").await);
    b.screenshot("plugins-uploaded").await;
    let (_, view) = r.api("GET", "/tenants/1/plugins", None).await;
    assert!(view["chain"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "my-blocklist" && c["enabled"] == true));
}

#[tokio::test]
async fn an_employee_activates_a_hotdesk_phone_in_the_console() {
    let r = router().await;
    r.add_device("5401").await;
    let Some(b) = browser(&r).await else {
        return;
    };
    b.log_in("2003", &password("2003")).await;
    b.open("/console/#/me/hotdesk").await;
    b.fill("input[name=device]", "5401").await;
    b.click_button("Activate").await;
    assert!(
        b.wait_for_text("Log out of 5401").await,
        "{}",
        b.body_text().await
    );
    b.screenshot("hotdesk-active").await;
    let (_, logins) = r.api("GET", "/tenants/1/hotdesk", None).await;
    assert_eq!(
        logins["items"],
        json!([{"device": "5401", "extension": "2003"}])
    );
    b.click_button("Log out of 5401").await;
    assert!(b.wait_for_text("Not logged in at any desk phone.").await);
    let (_, logins) = r.api("GET", "/tenants/1/hotdesk", None).await;
    assert_eq!(logins["items"], json!([]));
}

#[tokio::test]
async fn a_live_call_appears_in_the_console_without_reloading() {
    let r = router().await;
    let Some(b) = browser(&r).await else {
        return;
    };
    b.log_in("2001", &password("2001")).await;
    b.open("/console/#/live").await;
    assert!(b.wait_for_text("No calls in progress.").await);
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    let call = bob.call("2003").await;
    let inv = carol.expect_invite(T).await.unwrap();
    let ok = bob.answered_by(&call, &mut carol, &inv).await;
    let mut seen = false;
    for _ in 0..50 {
        let live = b.text("#live-calls").await;
        if live.contains("2002") && live.contains("2003") {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "{}", b.body_text().await);
    b.screenshot("live-call").await;
    bob.hang_up(&call, &ok, &mut carol).await;
    assert!(b.wait_for_text("No calls in progress.").await);
    // The call is in the history, with its hour in the chart.
    b.open("/console/#/calls").await;
    assert!(b.wait_for_text("Calls per hour by outcome").await);
    b.find("svg.chart rect").await;
    b.screenshot("call-history-with-a-call").await;
}

#[tokio::test]
async fn logging_out_in_the_browser_ends_the_session() {
    let r = router().await;
    let Some(b) = browser(&r).await else {
        return;
    };
    b.log_in("2002", &password("2002")).await;
    b.click("#logout").await;
    assert!(b.wait_for_text("Logged out.").await);
    b.open("/console/#/me/diverts").await;
    b.find("form.login").await;
    b.screenshot("login").await;
}

#[tokio::test]
async fn an_administrator_changes_a_hunt_group_in_the_console() {
    let r = router().await;
    let Some(b) = browser(&r).await else {
        return;
    };
    b.log_in("2001", &password("2001")).await;
    b.open("/console/#/groups").await;
    b.select("section select[name=strategy]", "sequential")
        .await;
    b.fill("section input[name=member_ring_secs]", "12").await;
    b.click_button("Save Group 2100").await;
    assert!(
        b.wait_for_text("Saved Group 2100").await,
        "{}",
        b.body_text().await
    );
    b.screenshot("hunt-groups-saved").await;
    let (_, groups) = r.api("GET", "/tenants/1/hunt-groups", None).await;
    let g = &groups["items"][0];
    assert_eq!(g["extension"], "2100");
    assert_eq!(g["strategy"], "sequential");
    assert_eq!(g["member_ring_secs"], 12);
}

#[tokio::test]
async fn a_department_head_sets_working_hours_and_a_vacation_in_the_console() {
    let r = router().await;
    r.chain(&["schedule"]).await;
    // Seed 002: schedules are for department heads and administrators.
    r.patch_employee("2003", json!({"role": "department_head"}))
        .await;
    let Some(b) = browser(&r).await else {
        return;
    };
    b.log_in("2003", &password("2003")).await;
    b.open("/console/#/me/schedule").await;
    // Time fields take typing in the browser's locale; setting their value
    // is what a person's picking amounts to.
    b.find("input[name='week.mon.0.0']").await;
    b.script(
        "for (const [n, v] of [['week.mon.0.0','09:00'],['week.mon.0.1','17:30'],\
                               ['from','2027-07-01'],['to','2027-07-14']]) \
           document.querySelector(`input[name='${n}']`).value = v;",
        json!([]),
    )
    .await;
    b.select("select[name=kind]", "vacation").await;
    b.click_button("Add (then save the schedule)").await;
    assert!(b.wait_for_text("2027-07-14").await);
    b.click_button("Save schedule").await;
    assert!(
        b.wait_for_text("Schedule saved").await,
        "{}",
        b.body_text().await
    );
    b.screenshot("my-schedule-saved").await;
    let (_, stored) = r
        .api("GET", "/tenants/1/extensions/2003/schedule", None)
        .await;
    let s = &stored["settings"];
    assert_eq!(s["week"], json!({"mon": [["09:00", "17:30"]]}), "{s}");
    assert_eq!(s["absences"][0]["kind"], "vacation", "{s}");
    assert_eq!(s["absences"][0]["from"], "2027-07-01", "{s}");
}

#[tokio::test]
async fn a_user_sees_their_schedule_but_is_not_offered_to_change_it() {
    let r = router().await;
    let Some(b) = browser(&r).await else {
        return;
    };
    b.log_in("2002", &password("2002")).await;
    b.open("/console/#/me/schedule").await;
    assert!(
        b.wait_for_text("may see these settings but not change them")
            .await
    );
    let disabled = b
        .script(
            "return document.querySelector(\"select[name=reception]\").disabled",
            json!([]),
        )
        .await;
    assert_eq!(disabled, true);
}
