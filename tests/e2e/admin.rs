use std::time::Duration;

use serde_json::{json, Value};
use switchboard_e2e::{Proto, TestRouter};

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(r: &TestRouter) -> Api {
        Api {
            base: format!("http://{}/api/v1", r.running.http_addr),
            client: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth("test-admin-token");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

#[tokio::test]
async fn requests_without_the_admin_token_get_401() {
    let r = TestRouter::start().await;
    let resp = reqwest::get(format!("http://{}/api/v1/tenants", r.running.http_addr))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let health = reqwest::get(format!("http://{}/healthz", r.running.http_addr))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn creating_an_employee_without_extension_assigns_the_next_free_one() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let (status, body) = api
        .post(
            "/tenants/1/employees",
            json!({"name": "Eve", "password": "eve-secret"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["extension"], "2000");
    assert!(body.get("ha1_md5").is_none() && body.get("voicemail_pin").is_none());
}

#[tokio::test]
async fn emergency_number_as_extension_is_refused_naming_the_field() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let (status, body) = api
        .post(
            "/tenants/1/employees",
            json!({"name": "Eve", "password": "eve-secret", "extension": "112"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "extension");
    assert!(body["error"].as_str().unwrap().contains("emergency"));
}

#[tokio::test]
async fn an_extension_in_the_hotdesk_range_is_refused_for_a_person() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let (status, body) = api
        .post(
            "/tenants/1/employees",
            json!({"name": "Eve", "password": "eve-secret", "extension": "5410"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "extension");
}

#[tokio::test]
async fn unknown_json_field_gets_400_naming_it() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let (status, body) = api
        .post(
            "/tenants/1/employees",
            json!({"name": "Eve", "password": "eve-secret", "shoe_size": 9}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "shoe_size");
}

#[tokio::test]
async fn a_tenant_cannot_read_another_tenants_employee() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let (status, other) = api
        .post(
            "/tenants",
            json!({"domain": "other.example", "name": "Other"}),
        )
        .await;
    assert_eq!(status, 201, "{other}");
    let tid = other["id"].as_i64().unwrap();
    let (_, emp) = api.get("/tenants/1/employees").await;
    let first_id = emp["items"][0]["id"].as_i64().unwrap();
    let (status, _) = api
        .get(&format!("/tenants/{tid}/employees/{first_id}"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/tenants/{tid}/employees/{first_id}"),
            None,
        )
        .await;
    assert_eq!(status, 404, "deleting across tenants must not work");
}

#[tokio::test]
async fn duplicate_domain_is_a_conflict() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let (status, body) = api
        .post(
            "/tenants",
            json!({"domain": switchboard_e2e::DOMAIN, "name": "Again"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["field"], "domain");
}

#[tokio::test]
async fn replacing_hunt_group_members_changes_who_rings() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let (_, groups) = api.get("/tenants/1/hunt-groups").await;
    let g = groups["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["extension"] == "2100")
        .unwrap()
        .clone();
    let (_, emps) = api.get("/tenants/1/employees").await;
    let id_2002 = emps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["extension"] == "2002")
        .unwrap()["id"]
        .clone();
    let (status, body) = api
        .call(
            reqwest::Method::PUT,
            &format!("/tenants/1/hunt-groups/{}/members", g["id"]),
            Some(json!({"members": [{"employee_id": id_2002}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    alice.call("2100").await;
    assert!(bob.expect_invite(Duration::from_secs(3)).await.is_some());
    assert!(carol
        .expect_invite(Duration::from_millis(500))
        .await
        .is_none());
}

#[tokio::test]
async fn a_hunt_group_patch_changes_only_what_it_names() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let (_, groups) = api.get("/tenants/1/hunt-groups").await;
    let g = groups["items"][0].clone();
    let (status, body) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/tenants/1/hunt-groups/{}", g["id"]),
            Some(json!({"strategy": "rotary", "total_ring_secs": 45})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["strategy"], "rotary");
    assert_eq!(body["total_ring_secs"], 45);
    assert_eq!(body["name"], g["name"]);
    assert_eq!(body["member_ring_secs"], g["member_ring_secs"]);
    assert_eq!(body["members"], g["members"]);
}

#[tokio::test]
async fn a_hunt_group_patch_out_of_range_names_the_field_and_changes_nothing() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let (_, groups) = api.get("/tenants/1/hunt-groups").await;
    let g = groups["items"][0].clone();
    let (status, body) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/tenants/1/hunt-groups/{}", g["id"]),
            Some(json!({"name": "Renamed", "member_ring_secs": 2})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "member_ring_secs");
    let (_, after) = api
        .get(&format!("/tenants/1/hunt-groups/{}", g["id"]))
        .await;
    assert_eq!(after, g);
}

#[tokio::test]
async fn an_employee_patch_with_a_null_department_clears_it() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let (_, groups) = api.get("/tenants/1/hunt-groups").await;
    let dep = groups["items"][0]["id"].clone();
    let path = format!("/tenants/1/employees/{}", r.employee_id("2003"));
    let (status, body) = api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"department_id": dep})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["department_id"], dep);
    let (_, body) = api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"name": "Carol"})),
        )
        .await;
    assert_eq!(body["department_id"], dep, "absent leaves it");
    let (status, body) = api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"department_id": null})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["department_id"], serde_json::Value::Null);
}

#[tokio::test]
async fn an_administrator_moves_the_hotdesk_range() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let (status, body) = api
        .call(
            reqwest::Method::PATCH,
            "/tenants/1",
            Some(json!({"hotdesk_first": 5600, "hotdesk_last": 5699})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hotdesk_range"], json!({"start": 5600, "end": 5699}));
    r.add_device("5601").await;
}

#[tokio::test]
async fn a_hotdesk_range_over_an_employee_is_refused_and_nothing_changes() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let (status, body) = api
        .call(
            reqwest::Method::PATCH,
            "/tenants/1",
            Some(json!({"name": "Renamed", "hotdesk_first": 2000, "hotdesk_last": 2099})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "hotdesk_first");
    assert!(body["error"].as_str().unwrap().contains("200"), "{body}");
    let (_, t) = api.get("/tenants/1").await;
    assert_eq!(t["name"], "Test");
    assert_eq!(t["hotdesk_range"], json!({"start": 5400, "end": 5499}));
}

#[tokio::test]
async fn a_hotdesk_range_that_leaves_a_hotdesk_phone_outside_is_refused() {
    let r = TestRouter::start().await;
    r.add_device("5401").await;
    let api = Api::new(&r);
    let (status, body) = api
        .call(
            reqwest::Method::PATCH,
            "/tenants/1",
            Some(json!({"hotdesk_first": 5450, "hotdesk_last": 5499})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "hotdesk_last");
    assert!(body["error"].as_str().unwrap().contains("5401"), "{body}");
}

#[tokio::test]
async fn call_history_over_http_shows_an_answered_call_with_its_legs() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    alice.call("2002").await;
    let inv = bob.expect_invite(Duration::from_secs(3)).await.unwrap();
    bob.respond(&inv, 200, "OK", "b").await;
    alice
        .recv_until(Duration::from_secs(3), |m| m.status() == Some(200))
        .await
        .unwrap();
    alice.call("2004").await; // unregistered: unreachable
    alice.final_response(Duration::from_secs(3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = api.get("/tenants/1/calls?extension=2002").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1);
    let call = &body["items"][0];
    assert_eq!(call["outcome"], "answered");
    assert_eq!(call["caller"], "2001");
    assert_eq!(call["answered_by"], "2002");
    assert_eq!(call["legs"][0]["outcome"], "answered");
    let (_, body) = api.get("/tenants/1/calls?outcome=unreachable").await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["items"][0]["callee"], "2004");
}

#[tokio::test]
async fn registrations_are_listed_per_tenant() {
    let r = TestRouter::start().await;
    let api = Api::new(&r);
    let _alice = r.phone("2001", Proto::Tcp).await;
    let (status, body) = api.get("/tenants/1/registrations").await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 1);
    assert_eq!(body["items"][0]["aor"], "2001");
    assert_eq!(body["items"][0]["transport"], "TCP");
}

#[tokio::test]
async fn demo_seed_creates_the_demo_tenant_once() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = switchboard_e2e::test_database(dir.path()).await;
    let mut config = switchboard_e2e::test_config(&database_url);
    config.seed_demo = true;
    let first = switchboard::run(config.clone()).await.unwrap();
    let demo = first.demo.clone().expect("seeded on first start");
    assert_eq!(demo.domain, "demo.switchboard.test");
    assert!(demo.accounts.iter().any(|(ext, _, _)| ext == "5401"));
    first.shutdown().await;
    let second = switchboard::run(config).await.unwrap();
    assert!(second.demo.is_none(), "not seeded again");
    let snap = second.directory().snapshot();
    let t = snap.by_domain("demo.switchboard.test").unwrap();
    assert_eq!(t.employees.len(), 4);
    assert_eq!(t.devices.len(), 2);
    assert_eq!(t.groups.len(), 1);
}

#[tokio::test]
async fn metrics_count_sip_messages_by_method_and_status_and_time_plugin_calls() {
    let r = TestRouter::start().await;
    r.chain(&["divert"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    alice.call("2002").await;
    let inv = bob.expect_invite(Duration::from_secs(4)).await.unwrap();
    bob.respond(&inv, 486, "Busy Here", "b").await;
    alice.final_response(Duration::from_secs(4)).await.unwrap();
    let text = r.metrics().await;
    for line in [
        "switchboard_sip_requests_total{direction=\"in\",method=\"INVITE\"}",
        "switchboard_sip_requests_total{direction=\"in\",method=\"REGISTER\"}",
        "switchboard_sip_requests_total{direction=\"out\",method=\"INVITE\"}",
        "switchboard_sip_responses_total{direction=\"out\",status=\"407\"}",
        "switchboard_sip_responses_total{direction=\"in\",status=\"486\"}",
        "switchboard_plugin_call_duration_seconds_bucket{plugin=\"divert\",version=\"1\",owner=\"builtin\",le=\"+Inf\"}",
        "switchboard_plugin_call_duration_seconds_count{plugin=\"divert\",version=\"1\",owner=\"builtin\"}",
    ] {
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .unwrap_or_else(|| panic!("{line} missing from\n{text}"));
        assert!(value.trim().parse::<f64>().unwrap() >= 1.0, "{line}{value}");
    }
}

#[tokio::test]
async fn live_calls_show_answered_calls_in_progress() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(Duration::from_secs(4)).await.unwrap();
    bob.respond(&inv, 200, "OK", "b").await;
    let ok = alice
        .recv_until(Duration::from_secs(4), |m| m.status() == Some(200))
        .await
        .unwrap();
    let (status, live) = r.api("GET", "/tenants/1/live-calls", None).await;
    assert_eq!(status, 200);
    assert_eq!(live["total"], 1, "{live}");
    assert_eq!(live["items"][0]["parties"], json!(["2001", "2002"]));
    alice.in_dialog(&call, &ok, "BYE", 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, live) = r.api("GET", "/tenants/1/live-calls", None).await;
    assert_eq!(live["total"], 0, "{live}");
}

/// Runs the admin requests at once; returns their statuses.
async fn at_once(r: &std::sync::Arc<TestRouter>, reqs: Vec<(&'static str, Value)>) -> Vec<u16> {
    let mut tasks = Vec::new();
    for (path, body) in reqs {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            r.api("POST", path, Some(body.to_string().into_bytes()))
                .await
                .0
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();
    statuses
}

#[tokio::test]
async fn concurrent_creates_of_one_extension_give_one_201_and_409s() {
    let r = std::sync::Arc::new(TestRouter::start().await);
    let reqs = (0..8)
        .map(|i| {
            (
                "/tenants/1/employees",
                json!({"name": format!("Racer {i}"), "login": format!("racer{i}"),
                       "password": "racer-secret", "extension": "2500"}),
            )
        })
        .collect();
    let statuses = at_once(&r, reqs).await;
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409, 409, 409]);
}

#[tokio::test]
async fn an_employee_and_a_device_created_at_once_cannot_share_a_number() {
    let r = std::sync::Arc::new(TestRouter::start().await);
    for n in 0..5 {
        let number = format!("26{n:02}");
        let reqs = vec![
            (
                "/tenants/1/employees",
                json!({"name": "Twin", "login": format!("twin{n}"),
                       "password": "twin-secret", "extension": number}),
            ),
            (
                "/tenants/1/devices",
                json!({"username": number, "password": "twin-secret"}),
            ),
        ];
        assert_eq!(at_once(&r, reqs).await, vec![201, 409], "number {number}");
    }
}

/// The Prometheus text format, read strictly: every sample belongs to a
/// family declared by `# TYPE` before it, names are legal, counters end in
/// `_total`, histograms have buckets with `le`, `_sum` and `_count`, values
/// are numbers.
#[tokio::test]
async fn metrics_follow_the_prometheus_exposition_format_and_naming() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    alice.call("2002").await;
    let _ = alice.final_response(Duration::from_secs(3)).await;
    let body = r.metrics().await;
    let legal = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut families: std::collections::HashMap<String, String> = Default::default();
    let mut samples = 0;
    for line in body.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let (name, kind) = decl.split_once(' ').expect("TYPE name kind");
            assert!(legal(name), "family name {name}");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "{kind} of {name}"
            );
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} ends in _total");
            }
            assert!(
                families.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{name} declared twice"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample: series value");
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "value of {line}"
        );
        let name = series.split('{').next().unwrap();
        assert!(legal(name), "sample name {name}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(
                    labels.starts_with('{') && labels.ends_with('}'),
                    "labels of {line}"
                );
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| families.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            families.contains_key(family),
            "{name} has no # TYPE before it"
        );
        if name.ends_with("_bucket") {
            assert!(series.contains("le=\""), "bucket without le: {line}");
        }
        samples += 1;
    }
    assert!(samples > 10, "{body}");
}
