use std::time::Duration;

use switchboard_e2e::{password, Phone, Proto, TestRouter, DOMAIN};

#[tokio::test]
async fn register_with_digest_gets_200_listing_the_contact() {
    let r = TestRouter::start().await;
    let mut p = Phone::new(r.sip(), "2001", &password("2001"), Proto::Udp).await;
    let resp = p.register(600).await;
    assert_eq!(resp.status(), Some(200), "{}", resp.raw);
    let contact = resp.header("Contact").unwrap();
    assert!(contact.contains(&p.local.to_string()), "{contact}");
    assert!(
        contact.contains("expires=600") || contact.contains("expires=599"),
        "{contact}"
    );
}

#[tokio::test]
async fn register_with_a_wrong_password_is_refused() {
    let r = TestRouter::start().await;
    let mut p = Phone::new(r.sip(), "2001", "not-the-password", Proto::Udp).await;
    assert_eq!(p.register(600).await.status(), Some(403));
    assert!(!r
        .running
        .router()
        .registrar()
        .location()
        .is_registered(1, "2001"));
}

#[tokio::test]
async fn expiry_below_the_minimum_gets_423_with_min_expires() {
    let r = TestRouter::start().await;
    let mut p = Phone::new(r.sip(), "2001", &password("2001"), Proto::Udp).await;
    let resp = p.register(10).await;
    assert_eq!(resp.status(), Some(423));
    assert_eq!(resp.header("Min-Expires"), Some("60"));
}

#[tokio::test]
async fn several_contacts_per_aor_and_wildcard_unregister() {
    let r = TestRouter::start().await;
    let mut a = r.phone("2001", Proto::Udp).await;
    let mut b = Phone::new(r.sip(), "2001", &password("2001"), Proto::Tcp).await;
    let resp = b.register(600).await;
    assert_eq!(resp.headers_all("Contact").count(), 2, "{}", resp.raw);
    let resp = a.register_contact(0, "*").await;
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.headers_all("Contact").count(), 0, "{}", resp.raw);
    assert!(!r
        .running
        .router()
        .registrar()
        .location()
        .is_registered(1, "2001"));
}

#[tokio::test]
async fn registrations_survive_a_restart() {
    let r = TestRouter::start().await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let TestRouter {
        running,
        dir,
        database_url,
        ..
    } = r;
    running.shutdown().await;
    let mut config = switchboard_e2e::test_config(&database_url);
    config.sip.default_domain = Some(switchboard_e2e::DOMAIN.into());
    let running = switchboard::run(config).await.unwrap();
    assert!(running
        .router()
        .registrar()
        .location()
        .is_registered(1, "2002"));
    // A call through the new instance reaches the phone registered before.
    let mut alice = Phone::new(running.sip_addr, "2001", &password("2001"), Proto::Udp).await;
    assert_eq!(alice.register(600).await.status(), Some(200));
    alice.call("2002").await;
    assert!(bob.expect_invite(Duration::from_secs(3)).await.is_some());
    drop(dir);
}

#[tokio::test]
async fn challenges_offer_md5_alone_by_default() {
    let r = TestRouter::start().await;
    let mut p = Phone::new(r.sip(), "2001", &password("2001"), Proto::Udp).await;
    assert_eq!(offered_algorithms(&mut p).await, ["MD5"]);
}

#[tokio::test]
async fn register_with_a_sha256_digest_is_accepted() {
    let r = TestRouter::start_with(|c| {
        c.registrar.digest_algorithms = vec!["SHA-256".into(), "MD5".into()];
    })
    .await;
    let mut p = Phone::new(r.sip(), "2001", &password("2001"), Proto::Udp).await;
    p.prefer_sha256();
    assert_eq!(p.register(600).await.status(), Some(200));
}

#[tokio::test]
async fn expired_bindings_stop_receiving_calls() {
    let r = TestRouter::start_with(|c| c.registrar.min_expires = 1).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = Phone::new(r.sip(), "2002", &password("2002"), Proto::Udp).await;
    assert_eq!(bob.register(1).await.status(), Some(200));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    alice.call("2002").await;
    assert_eq!(
        alice
            .final_response(Duration::from_secs(3))
            .await
            .unwrap()
            .status(),
        Some(480)
    );
}

#[tokio::test]
async fn a_tenant_can_offer_sha256_first() {
    let r = TestRouter::start().await;
    r.patch_tenant(serde_json::json!({"digest_algorithms": ["SHA-256", "MD5"]}))
        .await;
    let mut p = Phone::new(r.sip(), "2001", &password("2001"), Proto::Udp).await;
    assert_eq!(offered_algorithms(&mut p).await, ["SHA-256", "MD5"]);
    p.prefer_sha256();
    assert_eq!(p.register(600).await.status(), Some(200));
}

#[tokio::test]
async fn an_unknown_digest_algorithm_is_refused_naming_the_field() {
    let r = TestRouter::start().await;
    let (status, body) = r
        .api(
            "PATCH",
            "/tenants/1",
            Some(
                serde_json::json!({"digest_algorithms": ["SHA-512"]})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "digest_algorithms", "{body}");
}

/// The algorithms the challenge to an OPTIONS from `p` offers, in order.
async fn offered_algorithms(p: &mut Phone) -> Vec<String> {
    let text = p.request_text("OPTIONS", "2002", None);
    p.send_raw(&text).await;
    let resp = p.final_response(Duration::from_secs(3)).await.unwrap();
    resp.headers_all("Proxy-Authenticate")
        .map(|c| {
            c.split("algorithm=")
                .nth(1)
                .and_then(|a| a.split(',').next())
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .collect()
}

/// Sets the device account 2902's fields; the answer's status and body.
async fn patch_softphone(r: &TestRouter, patch: serde_json::Value) -> (u16, serde_json::Value) {
    let id = softphone_device_id(r).await;
    r.api(
        "PATCH",
        &format!("/tenants/1/devices/{id}"),
        Some(patch.to_string().into_bytes()),
    )
    .await
}

/// The device account 2902's id in the test tenant.
async fn softphone_device_id(r: &TestRouter) -> i64 {
    let (status, body) = r.api("GET", "/tenants/1/devices", None).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|d| d["username"] == "2902"))
        .and_then(|d| d["id"].as_i64())
        .expect("device 2902")
}

#[tokio::test]
async fn a_device_account_can_offer_only_sha256_while_its_tenant_offers_md5() {
    let r = TestRouter::start().await;
    let (status, body) =
        patch_softphone(&r, serde_json::json!({"digest_algorithms": ["SHA-256"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["digest_algorithms"], serde_json::json!(["SHA-256"]));
    let mut device = Phone::new(r.sip(), "2902", &password("2902"), Proto::Udp).await;
    assert_eq!(offered_algorithms(&mut device).await, ["SHA-256"]);
    device.prefer_sha256();
    assert_eq!(device.register(600).await.status(), Some(200));

    let mut other = Phone::new(r.sip(), "2001", &password("2001"), Proto::Udp).await;
    assert_eq!(offered_algorithms(&mut other).await, ["MD5"]);
}

#[tokio::test]
async fn a_device_accounts_unknown_digest_algorithm_is_refused_naming_the_field() {
    let r = TestRouter::start().await;
    let (status, body) =
        patch_softphone(&r, serde_json::json!({"digest_algorithms": ["MD5", "md5"]})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "digest_algorithms", "{body}");
}

#[tokio::test]
async fn a_device_account_limited_to_sha256_does_not_take_an_md5_answer() {
    let r = TestRouter::start().await;
    let (status, body) =
        patch_softphone(&r, serde_json::json!({"digest_algorithms": ["SHA-256"]})).await;
    assert_eq!(status, 200, "{body}");
    let mut device = Phone::new(r.sip(), "2902", &password("2902"), Proto::Udp).await;
    let contact = device.contact();
    let text = device.register_text(600, None, &contact);
    device.send_raw(&text).await;
    let challenge = device.final_response(Duration::from_secs(3)).await.unwrap();
    assert_eq!(challenge.status(), Some(401));
    // A right MD5 answer to the challenge's nonce, which offered SHA-256.
    let md5 = challenge
        .header("WWW-Authenticate")
        .unwrap()
        .replace("algorithm=SHA-256", "algorithm=MD5");
    let auth = device.digest(&md5, "REGISTER", &format!("sip:{DOMAIN}"));
    let text = device.register_text(600, Some(&auth), &contact);
    device.send_raw(&text).await;
    let resp = device.final_response(Duration::from_secs(3)).await.unwrap();
    assert_eq!(resp.status(), Some(401), "challenged again: {}", resp.raw);
}
