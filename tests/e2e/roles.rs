//! The admin API as a product: logins, tokens, the role matrix of seed 002
//! across two tenants, history per role, the audit log, the OpenAPI
//! document checked against the real routes.

use serde_json::json;
use switchboard_e2e::{password, TestRouter, DOMAIN};

fn body(v: serde_json::Value) -> Option<Vec<u8>> {
    Some(v.to_string().into_bytes())
}

/// Tenant 1 with 2001 administrator, 2002 department head, 2003 user, 2004
/// restricted user (2002-2004 in department 2100); tenant 2 with 3001.
async fn setup() -> TestRouter {
    let r = TestRouter::start().await;
    let dept = r
        .running
        .directory()
        .tenant_for(DOMAIN)
        .unwrap()
        .groups
        .values()
        .find(|g| g.extension.as_str() == "2100")
        .unwrap()
        .id;
    for (ext, role) in [
        ("2001", "administrator"),
        ("2002", "department_head"),
        ("2003", "user"),
        ("2004", "restricted_user"),
    ] {
        let mut patch = json!({"role": role, "mobile": format!("4420700{ext}")});
        if ext != "2001" {
            patch["department_id"] = json!(dept);
        }
        r.patch_employee(ext, patch).await;
    }
    let (status, t2) = r
        .api(
            "POST",
            "/tenants",
            body(json!({"domain": "other.example", "name": "Other"})),
        )
        .await;
    assert_eq!(status, 201, "{t2}");
    let (status, e) = r
        .api(
            "POST",
            "/tenants/2/employees",
            body(json!({"name": "Olga", "password": "olga-secret-pw", "extension": "3001", "role": "administrator"})),
        )
        .await;
    assert_eq!(status, 201, "{e}");
    r
}

#[tokio::test]
async fn login_returns_an_expiring_token_that_names_the_employee() {
    let r = setup().await;
    let (status, resp) = r
        .api_as(
            "",
            "POST",
            "/login",
            body(json!({"domain": DOMAIN, "login": "2003", "password": password("2003")})),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    let expires = resp["expires_at"].as_i64().unwrap();
    let now = switchboard::store::now_ms();
    assert!((now + 7 * 3_600_000..=now + 8 * 3_600_000 + 1000).contains(&expires));
    let (status, me) = r
        .api_as(resp["token"].as_str().unwrap(), "GET", "/me", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(me["extension"], "2003");
    assert_eq!(me["role"], "user");
}

#[tokio::test]
async fn a_wrong_password_is_refused() {
    let r = setup().await;
    let (status, resp) = r
        .api_as(
            "",
            "POST",
            "/login",
            body(json!({"domain": DOMAIN, "login": "2003", "password": "nope-nope"})),
        )
        .await;
    assert_eq!(status, 401, "{resp}");
    let (status, _) = r.api_as("not-a-token", "GET", "/me", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn repeated_failed_logins_are_rate_limited_per_account() {
    let r = setup().await;
    let wrong = json!({"domain": DOMAIN, "login": "2003", "password": "wrong-pw"});
    for _ in 0..5 {
        assert_eq!(
            r.api_as("", "POST", "/login", body(wrong.clone())).await.0,
            401
        );
    }
    let right = json!({"domain": DOMAIN, "login": "2003", "password": password("2003")});
    let (status, resp) = r.api_as("", "POST", "/login", body(right)).await;
    assert_eq!(status, 429, "{resp}");
    // Another account from the same source is not locked out yet.
    let other = json!({"domain": DOMAIN, "login": "2002", "password": password("2002")});
    assert_eq!(r.api_as("", "POST", "/login", body(other)).await.0, 200);
}

#[tokio::test]
async fn repeated_failed_logins_are_rate_limited_per_source() {
    let r = setup().await;
    for i in 0..20 {
        let wrong = json!({"domain": DOMAIN, "login": format!("nobody{i}"), "password": "x"});
        assert_eq!(r.api_as("", "POST", "/login", body(wrong)).await.0, 401);
    }
    let right = json!({"domain": DOMAIN, "login": "2002", "password": password("2002")});
    assert_eq!(r.api_as("", "POST", "/login", body(right)).await.0, 429);
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let r = setup().await;
    let token = r.login("2003").await;
    assert_eq!(r.api_as(&token, "POST", "/logout", None).await.0, 204);
    assert_eq!(r.api_as(&token, "GET", "/me", None).await.0, 401);
}

#[tokio::test]
async fn an_api_token_works_until_revoked() {
    let r = setup().await;
    let admin = r.login("2001").await;
    let (status, t) = r
        .api_as(
            &admin,
            "POST",
            "/tenants/1/api-tokens",
            body(json!({"label": "provisioning"})),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let token = t["token"].as_str().unwrap();
    assert_eq!(
        r.api_as(token, "GET", "/tenants/1/employees", None).await.0,
        200
    );
    let (_, list) = r.api_as(&admin, "GET", "/tenants/1/api-tokens", None).await;
    assert!(
        !list.to_string().contains(token),
        "secrets are never listed"
    );
    let path = format!("/tenants/1/api-tokens/{}", t["id"]);
    assert_eq!(r.api_as(&admin, "DELETE", &path, None).await.0, 204);
    assert_eq!(
        r.api_as(token, "GET", "/tenants/1/employees", None).await.0,
        401
    );
}

/// (method, path, body, expected status for admin, head, user, restricted).
type Row = (
    &'static str,
    &'static str,
    Option<serde_json::Value>,
    [u16; 4],
);

#[tokio::test]
async fn each_role_can_do_what_seed_002_says_and_nothing_more() {
    let r = setup().await;
    let tokens = [
        r.login("2001").await,
        r.login("2002").await,
        r.login("2003").await,
        r.login("2004").await,
    ];
    let rows: Vec<Row> = vec![
        ("GET", "/tenants", None, [403, 403, 403, 403]),
        ("GET", "/tenants/1", None, [200, 200, 200, 200]),
        (
            "PATCH",
            "/tenants/1",
            Some(json!({"name": "Test Ltd"})),
            [200, 403, 403, 403],
        ),
        ("GET", "/tenants/1/employees", None, [200, 403, 403, 403]),
        ("GET", "/tenants/1/devices", None, [200, 403, 403, 403]),
        (
            "GET",
            "/tenants/1/registrations",
            None,
            [200, 403, 403, 403],
        ),
        ("GET", "/tenants/1/plugins", None, [200, 403, 403, 403]),
        (
            "PUT",
            "/tenants/1/plugin-chain",
            Some(json!({"chain": []})),
            [200, 403, 403, 403],
        ),
        ("GET", "/tenants/1/audit", None, [200, 403, 403, 403]),
        ("GET", "/tenants/1/calls", None, [200, 200, 200, 200]),
        (
            "GET",
            "/tenants/1/presence/2001",
            None,
            [200, 403, 403, 403],
        ),
        (
            "GET",
            "/tenants/1/presence/2004",
            None,
            [200, 403, 403, 200],
        ),
        (
            "GET",
            "/tenants/1/extensions/2003/diverts",
            None,
            [200, 403, 200, 403],
        ),
        // Users: forwarding to their own mobile only.
        (
            "PUT",
            "/tenants/1/extensions/2003/diverts",
            Some(json!({"busy": {"number": "44207002003"}})),
            [200, 403, 200, 403],
        ),
        (
            "PUT",
            "/tenants/1/extensions/2003/diverts",
            Some(json!({"busy": {"extension": "2001"}})),
            [200, 403, 403, 403],
        ),
        (
            "PUT",
            "/tenants/1/extensions/2004/diverts",
            Some(json!({"always": {"number": "44207002004"}})),
            [200, 403, 403, 200],
        ),
        // Department heads manage their own personal settings, not others'.
        (
            "PUT",
            "/tenants/1/extensions/2002/schedule",
            Some(json!({"week": {}})),
            [200, 200, 403, 403],
        ),
        (
            "PUT",
            "/tenants/1/extensions/2003/schedule",
            Some(json!({"week": {}})),
            [200, 403, 403, 403],
        ),
        (
            "PUT",
            "/tenants/1/extensions/2003/status-on-no-answer",
            Some(json!({"status_on_no_answer": "busy_wrap_up"})),
            [200, 403, 403, 403],
        ),
        // Another tenant does not exist for them.
        ("GET", "/tenants/2", None, [404, 404, 404, 404]),
        ("GET", "/tenants/2/employees", None, [404, 404, 404, 404]),
        ("GET", "/tenants/2/calls", None, [404, 404, 404, 404]),
        ("DELETE", "/tenants/1", None, [403, 403, 403, 403]),
    ];
    for (method, path, b, expected) in rows {
        for (i, token) in tokens.iter().enumerate() {
            let (status, resp) = r
                .api_as(
                    token,
                    method,
                    path,
                    b.as_ref().map(|v| v.to_string().into_bytes()),
                )
                .await;
            assert_eq!(
                status, expected[i],
                "{method} {path} as role #{i} (admin, head, user, restricted): {resp}"
            );
        }
    }
}

#[tokio::test]
async fn the_other_tenants_administrator_sees_nothing_of_this_one() {
    let r = setup().await;
    let body = json!({"domain": "other.example", "login": "3001", "password": "olga-secret-pw"});
    let (status, resp) = r
        .api_as("", "POST", "/login", Some(body.to_string().into_bytes()))
        .await;
    assert_eq!(status, 200, "{resp}");
    let olga = resp["token"].as_str().unwrap();
    for path in [
        "/tenants/1",
        "/tenants/1/employees",
        "/tenants/1/calls",
        "/tenants/1/plugins",
    ] {
        assert_eq!(r.api_as(olga, "GET", path, None).await.0, 404, "{path}");
    }
    assert_eq!(
        r.api_as(olga, "GET", "/tenants/2/employees", None).await.0,
        200
    );
}

async fn add_call(r: &TestRouter, id: &str, caller: &str, callee: &str, direction: &str) {
    sqlx::query(
        "INSERT INTO calls (id, tenant_id, sip_call_id, caller, callee, direction, started_at, outcome) \
         VALUES ($1, 1, $2, $3, $4, $5, $6, 'answered')",
    )
    .bind(id)
    .bind(id)
    .bind(caller)
    .bind(callee)
    .bind(direction)
    .bind(switchboard::store::now_ms())
    .execute(r.running.store().pool())
    .await
    .unwrap();
}

async fn visible(r: &TestRouter, token: &str) -> Vec<String> {
    let (status, calls) = r.api_as(token, "GET", "/tenants/1/calls", None).await;
    assert_eq!(status, 200, "{calls}");
    let mut ids: Vec<String> = calls["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn call_history_is_visible_per_role() {
    let r = setup().await;
    add_call(&r, "c1", "2001", "2002", "internal").await;
    add_call(&r, "c2", "441234567890", "2003", "inbound").await;
    add_call(&r, "c3", "2004", "441234567890", "outbound").await;
    add_call(&r, "c4", "441234567890", "2001", "inbound").await;
    let admin = r.login("2001").await;
    let head = r.login("2002").await;
    let user = r.login("2003").await;
    let restricted = r.login("2004").await;
    assert_eq!(visible(&r, &admin).await, ["c1", "c2", "c3", "c4"]);
    assert_eq!(
        visible(&r, &head).await,
        ["c1", "c2", "c3"],
        "their department"
    );
    assert_eq!(
        visible(&r, &user).await,
        ["c2", "c3"],
        "department, no internal calls"
    );
    assert_eq!(
        visible(&r, &restricted).await,
        ["c3"],
        "only their own external calls"
    );
    // The tenant's role settings widen heads and users to the company.
    r.patch_tenant(json!({"head_history_scope": "company", "user_history_scope": "company"}))
        .await;
    assert_eq!(visible(&r, &head).await, ["c1", "c2", "c3", "c4"]);
    assert_eq!(visible(&r, &user).await, ["c2", "c3", "c4"]);
    assert_eq!(
        r.api_as(&restricted, "GET", "/tenants/1/calls/c2", None)
            .await
            .0,
        404
    );
    assert_eq!(
        r.api_as(&restricted, "GET", "/tenants/1/calls/c3", None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn the_audit_log_records_who_changed_what() {
    let r = setup().await;
    let admin = r.login("2001").await;
    let path = format!("/tenants/1/employees/{}", r.employee_id("2003"));
    let (status, _) = r
        .api_as(&admin, "PATCH", &path, body(json!({"position": "Sales"})))
        .await;
    assert_eq!(status, 200);
    let (_, audit) = r.api_as(&admin, "GET", "/tenants/1/audit", None).await;
    let last = &audit["items"][0];
    assert_eq!(last["actor"], "employee 2001 (Administrator)");
    assert_eq!(last["method"], "PATCH");
    assert_eq!(last["path"], format!("/api/v1{path}"));
    assert!(last["at"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let r = setup().await;
    let (status, doc) = r.api_as("", "GET", "/openapi.json", None).await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 30, "{} paths", paths.len());
    let client = reqwest::Client::new();
    let base = format!("http://{}", r.running.http_addr);
    for (path, item) in paths {
        // Tenant 999 does not exist: handlers answer with a JSON 404,
        // unrouted requests with an empty one (or 405).
        let concrete = path
            .replace("{tid}", "999")
            .replace("{id}", "999")
            .replace("{ext}", "2001")
            .replace("{device}", "5401")
            .replace("{group}", "2100")
            .replace("{name}", "example-blocklist")
            .replace("{scope}", "tenant");
        let documented: Vec<String> = item.as_object().unwrap().keys().cloned().collect();
        for method in ["get", "post", "put", "patch", "delete"] {
            let resp = client
                .request(
                    reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    format!("{base}{concrete}"),
                )
                .bearer_auth("test-admin-token")
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            if documented.contains(&method.to_owned()) {
                assert!(
                    status != 405 && !(status == 404 && text.is_empty()),
                    "{method} {path} is documented but not routed ({status})"
                );
            } else {
                assert_eq!(status, 405, "{method} {path} is routed but not documented");
            }
        }
    }
}

#[tokio::test]
async fn statistics_count_what_the_role_may_see() {
    let r = setup().await;
    add_call(&r, "c1", "2001", "2002", "internal").await;
    add_call(&r, "c2", "441234567890", "2003", "inbound").await;
    add_call(&r, "c3", "2004", "441234567890", "outbound").await;
    add_call(&r, "c4", "441234567890", "2001", "inbound").await;
    let total = |v: &serde_json::Value| v["total"].as_i64().unwrap();
    let (_, all) = r
        .api_as(&r.login("2001").await, "GET", "/tenants/1/stats", None)
        .await;
    assert_eq!(total(&all), 4, "{all}");
    assert_eq!(all["by_direction"]["inbound"], 2);
    assert_eq!(all["by_outcome"]["answered"], 4);
    let (_, head) = r
        .api_as(&r.login("2002").await, "GET", "/tenants/1/stats", None)
        .await;
    assert_eq!(total(&head), 3, "{head}");
    let (_, user) = r
        .api_as(&r.login("2003").await, "GET", "/tenants/1/stats", None)
        .await;
    assert_eq!(total(&user), 2, "{user}");
    let restricted = r.login("2004").await;
    assert_eq!(
        r.api_as(&restricted, "GET", "/tenants/1/stats", None)
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn a_new_password_ends_the_old_sessions() {
    let r = setup().await;
    let session = r.login("2003").await;
    let path = format!("/tenants/1/employees/{}", r.employee_id("2003"));
    let (status, _) = r
        .api("PATCH", &path, body(json!({"password": "a-new-secret"})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(r.api_as(&session, "GET", "/me", None).await.0, 401);
}

#[tokio::test]
async fn spellings_of_a_domain_share_one_failure_counter() {
    let r = setup().await;
    let upper = DOMAIN.to_ascii_uppercase();
    let dotted = format!("{DOMAIN}.");
    for domain in [
        DOMAIN,
        upper.as_str(),
        dotted.as_str(),
        "  Test.Example. ",
        DOMAIN,
    ] {
        let wrong = json!({"domain": domain, "login": "2003", "password": "wrong-pw"});
        assert_eq!(
            r.api_as("", "POST", "/login", body(wrong)).await.0,
            401,
            "{domain}"
        );
    }
    let right = json!({"domain": upper, "login": "2003", "password": password("2003")});
    assert_eq!(r.api_as("", "POST", "/login", body(right)).await.0, 429);
}

#[tokio::test]
async fn parallel_wrong_passwords_get_no_more_checks_than_the_limit() {
    let r = std::sync::Arc::new(setup().await);
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let wrong = json!({"domain": DOMAIN, "login": "2003", "password": "wrong-pw"});
            r.api_as("", "POST", "/login", body(wrong)).await.0
        }));
    }
    let mut checked = 0;
    for t in tasks {
        match t.await.unwrap() {
            401 => checked += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(checked, 5, "password checks made");
    let right = json!({"domain": DOMAIN, "login": "2003", "password": password("2003")});
    assert_eq!(r.api_as("", "POST", "/login", body(right)).await.0, 429);
}

#[tokio::test]
async fn wrong_bearer_tokens_are_limited_per_source() {
    let r = setup().await;
    for i in 0..30 {
        let (status, _) = r
            .api_as(&format!("guess-{i}"), "GET", "/tenants/1/employees", None)
            .await;
        assert_eq!(status, 401);
    }
    let (status, _) = r.api("GET", "/tenants/1/employees", None).await;
    assert_eq!(
        status, 429,
        "even a good token waits once the source is over"
    );
}
