//! Boss-secretary delegation (seed 003), written against the WIT contract
//! only.
//!
//! A boss lists up to 5 delegates of the same tenant. A call for the boss
//! rings the delegates instead: all together for `total_ring_s` (ring all),
//! or one after another for `per_user_ring_s` each, always starting from
//! the first (sequential). If nobody answers the call is dropped: neither
//! the boss's nor the delegates' no-answer/busy/unreachable flows run
//! (the route says `drop`, so the failure point is never asked), and the
//! delegates' working hours are ignored (their schedules are not asked).
//! A delegate's phone shows the caller's number with the name
//! `<caller> for <boss>` and gets a `Diversion` header naming the boss;
//! call history marks the call `delegated` for the boss.
//!
//! Restrictions (settings are refused otherwise): at most 5 delegates, all
//! employees of the tenant, not the boss; a delegate cannot have delegates
//! and a boss cannot be someone's delegate; members of a hunt group can
//! neither delegate nor be delegates.
//!
//! The secretary:
//! - calls out as the boss by dialing `*47` before the number (`*472001`,
//!   `*47441234567890`) when they are the delegate of one boss, or
//!   `*47*<boss>*<number>` when of several. The callee sees the boss's
//!   number and name, and call history records the call as the boss's.
//! - transfers a call back to the boss with `##20`: a blind transfer whose
//!   INVITE (Referred-By the secretary) goes to `##20` reaches the boss of
//!   the delegated call being transferred (the call the REFER was sent in,
//!   among the secretary's last 8 answered delegated calls; else the one
//!   answered last), without being delegated again. Dialing `##20`
//!   directly calls the boss of the call answered last.
//!
//! Settings, scope `employee:<boss>`:
//! `{"delegates": ["2003", "2004"], "mode": "ring_all", "total_ring_s": 30,
//! "per_user_ring_s": 15}`. An empty list turns delegation off.

use serde_json::{json, Value};
use switchboard_plugin::host;
use switchboard_plugin::*;

/// Seed 003: "The total limit for Delegate numbers are 5 numbers."
const MAX_DELEGATES: usize = 5;
const TOTAL_RING_DEFAULT_S: u64 = 30;
const PER_USER_RING_DEFAULT_S: u64 = 15;
const RING_MIN_S: u64 = 5;
const RING_MAX_S: u64 = 300;
/// Prefix for calling out with the boss's caller ID.
const ON_BEHALF_PREFIX: &str = "*47";
/// Transfer back to the boss.
const BACK_TO_BOSS: &str = "##20";

struct Delegation;

struct Config {
    delegates: Vec<String>,
    sequential: bool,
    total_ring_s: u64,
    per_user_ring_s: u64,
}

fn config_from(v: &Value) -> Config {
    Config {
        delegates: v["delegates"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        sequential: v["mode"].as_str() == Some("sequential"),
        total_ring_s: v["total_ring_s"].as_u64().unwrap_or(TOTAL_RING_DEFAULT_S),
        per_user_ring_s: v["per_user_ring_s"]
            .as_u64()
            .unwrap_or(PER_USER_RING_DEFAULT_S),
    }
}

fn config_of(boss: &str) -> Option<Config> {
    let v: Value = serde_json::from_str(&host::setting(&format!("employee:{boss}"))?).ok()?;
    let c = config_from(&v);
    (!c.delegates.is_empty()).then_some(c)
}

/// Bosses an employee is the delegate of (kept by `validate-settings`).
fn bosses_of(ext: &str) -> Vec<String> {
    host::kv_get(&format!("delegate-of:{ext}"))
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn set_bosses_of(ext: &str, bosses: &[String]) {
    let key = format!("delegate-of:{ext}");
    if bosses.is_empty() {
        host::kv_delete(&key);
    } else if let Err(e) = host::kv_set(&key, &json!(bosses).to_string()) {
        error!("delegate index of {ext}: {e}");
    }
}

fn incoming(call: &CallInfo, boss: &str) -> Decision {
    let Some(c) = config_of(boss) else {
        return Decision::Continue;
    };
    // The secretary calling the boss, or a call sent back with ##20, rings
    // the boss.
    if c.delegates.contains(&call.caller.id) {
        return Decision::Continue;
    }
    let total_ms;
    let targets: Vec<Target> = if c.sequential {
        total_ms = c.per_user_ring_s * 1000 * c.delegates.len() as u64;
        c.delegates
            .iter()
            .map(|d| Target {
                destination: Destination::Extension(d.clone()),
                delay_ms: 0,
                ring_ms: (c.per_user_ring_s * 1000) as u32,
            })
            .collect()
    } else {
        total_ms = c.total_ring_s * 1000;
        c.delegates
            .iter()
            .map(|d| Target {
                destination: Destination::Extension(d.clone()),
                delay_ms: 0,
                ring_ms: total_ms as u32,
            })
            .collect()
    };
    let caller = call
        .caller
        .display_name
        .clone()
        .unwrap_or_else(|| call.caller.id.clone());
    let boss_name = host::find_employee(boss)
        .map(|e| e.name)
        .unwrap_or_else(|| boss.to_owned());
    Decision::Route(Route {
        targets,
        mode: if c.sequential {
            RingMode::Sequential
        } else {
            RingMode::Parallel
        },
        total_ring_ms: total_ms as u32,
        caller_id: None,
        caller_name: Some(format!("{caller} for {boss_name}")),
        on_failure: OnFailure::Drop,
        reason: Some("delegated".into()),
        diversion: Some(Diversion {
            from: boss.to_owned(),
            reason: DiversionReason::Deflection,
        }),
    })
}

fn single(destination: Destination, reason: &str) -> Route {
    Route::to(destination).because(reason)
}

fn is_international(n: &str) -> bool {
    (6..=15).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0')
}

fn reject(status: u16, reason: &str) -> Decision {
    Decision::reject(status, reason)
}

/// `*47<number>` or `*47*<boss>*<number>`: a call as the boss.
fn on_behalf(secretary: &str, rest: &str) -> Decision {
    let bosses = bosses_of(secretary);
    let (boss, number) = match rest.strip_prefix('*').and_then(|r| r.split_once('*')) {
        Some((b, n)) => (b.to_owned(), n),
        None if bosses.len() == 1 => (bosses[0].clone(), rest),
        None if bosses.is_empty() => return reject(403, "Not a delegate"),
        None => return reject(403, "Dial *47*boss*number"),
    };
    if !bosses.contains(&boss)
        || config_of(&boss).is_none_or(|c| !c.delegates.iter().any(|d| d == secretary))
    {
        return reject(403, "Not a delegate of this boss");
    }
    let destination =
        if host::find_employee(number).is_some() || host::find_hunt_group(number).is_some() {
            Destination::Extension(number.to_owned())
        } else if is_international(number) {
            Destination::External(number.to_owned())
        } else {
            return reject(404, "Not Found");
        };
    let mut r = single(destination, &format!("on behalf of {boss}"));
    r.caller_name = host::find_employee(&boss).map(|e| e.name);
    r.caller_id = Some(boss);
    Decision::Route(r)
}

/// Answered delegated calls remembered per secretary, for `##20`.
const ANSWERED_KEPT: usize = 8;

fn answered_calls(secretary: &str) -> Vec<(String, String)> {
    host::kv_get(&format!("answered-calls:{secretary}"))
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default()
}

/// `##20`: back to the boss of the call being transferred (the one the
/// REFER came from), else of the delegated call the secretary answered
/// last (or their only boss).
fn back_to_boss(secretary: &str, transferred_from: Option<&str>) -> Decision {
    let of_that_call = transferred_from.and_then(|id| {
        answered_calls(secretary)
            .into_iter()
            .find(|(call, _)| call == id)
            .map(|(_, boss)| boss)
    });
    let boss = of_that_call.or_else(|| host::kv_get(&format!("answered:{secretary}"))).or_else(|| {
        let b = bosses_of(secretary);
        (b.len() == 1).then(|| b[0].clone())
    });
    match boss {
        Some(boss) => Decision::Route(single(
            Destination::Extension(boss),
            "transferred back to the boss",
        )),
        None => reject(404, "No boss to transfer to"),
    }
}

fn originate(call: &CallInfo) -> Decision {
    if call.dialed == BACK_TO_BOSS {
        let secretary = call.referred_by.as_deref().unwrap_or(&call.caller.id);
        return back_to_boss(secretary, call.transferred_from.as_deref());
    }
    if let Some(rest) = call.dialed.strip_prefix(ON_BEHALF_PREFIX) {
        if call.caller.internal {
            return on_behalf(&call.caller.id, rest);
        }
    }
    Decision::Continue
}

/// Remembers which boss's call a secretary answered, for `##20`.
fn answered(secretary: &str, call: Option<&CallInfo>) {
    let Some(call) = call else {
        return;
    };
    let boss = call.dialed.as_str();
    if config_of(boss).is_some_and(|c| c.delegates.iter().any(|d| d == secretary)) {
        if let Err(e) = host::kv_set(&format!("answered:{secretary}"), boss) {
            warn!("answered call of {secretary}: {e}");
        }
        let mut calls = answered_calls(secretary);
        calls.retain(|(id, _)| *id != call.call_id);
        calls.push((call.call_id.clone(), boss.to_owned()));
        let drop = calls.len().saturating_sub(ANSWERED_KEPT);
        calls.drain(..drop);
        if let Err(e) = host::kv_set(
            &format!("answered-calls:{secretary}"),
            &serde_json::to_string(&calls).unwrap_or_default(),
        ) {
            warn!("answered calls of {secretary}: {e}");
        }
    }
}

fn check_ring(v: &Value, field: &str) -> Result<(), String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(x) => match x.as_u64() {
            Some(n) if (RING_MIN_S..=RING_MAX_S).contains(&n) => Ok(()),
            _ => Err(format!(
                "{field}: must be {RING_MIN_S} to {RING_MAX_S} seconds"
            )),
        },
    }
}

fn validate(scope: &str, json: &str) -> Result<(), String> {
    let Some(boss) = scope.strip_prefix("employee:") else {
        return Err(format!("scope {scope}: use employee:<extension>"));
    };
    if host::find_employee(boss).is_none() {
        return Err(format!("scope {scope}: no employee {boss}"));
    }
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let Some(map) = v.as_object() else {
        return Err("settings must be a JSON object".into());
    };
    let allowed = ["delegates", "mode", "total_ring_s", "per_user_ring_s"];
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "{k}: unknown setting (allowed: {})",
            allowed.join(", ")
        ));
    }
    match v.get("mode").and_then(Value::as_str) {
        None | Some("ring_all") | Some("sequential") => {}
        Some(m) => return Err(format!("mode: `{m}` is not ring_all or sequential")),
    }
    if v.get("mode").is_some_and(|m| !m.is_string()) {
        return Err("mode: must be ring_all or sequential".into());
    }
    check_ring(&v, "total_ring_s")?;
    check_ring(&v, "per_user_ring_s")?;
    if v.get("delegates")
        .is_some_and(|d| !d.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
    {
        return Err("delegates: must be a list of extensions".into());
    }
    let new = config_from(&v).delegates;
    if new.len() > MAX_DELEGATES {
        return Err(format!(
            "delegates: at most {MAX_DELEGATES}, not {}",
            new.len()
        ));
    }
    if !new.is_empty() {
        if let Some(g) = host::groups_of(boss).first() {
            return Err(format!(
                "delegates: {boss} is a member of hunt group {g} and cannot delegate"
            ));
        }
        if let Some(b) = bosses_of(boss).first() {
            return Err(format!(
                "delegates: {boss} is a delegate of {b} and cannot have delegates"
            ));
        }
    }
    for (i, d) in new.iter().enumerate() {
        if new[..i].contains(d) {
            return Err(format!("delegates: {d} is listed twice"));
        }
        if d == boss {
            return Err("delegates: a boss cannot be their own delegate".into());
        }
        if host::find_employee(d).is_none() {
            return Err(format!("delegates: no employee {d} in this organisation"));
        }
        if let Some(g) = host::groups_of(d).first() {
            return Err(format!(
                "delegates: {d} is a member of hunt group {g} and cannot be a delegate"
            ));
        }
        if config_of(d).is_some() {
            return Err(format!("delegates: {d} has delegates and cannot be one"));
        }
    }
    // Valid: keep the delegate -> bosses index in step, so that the other
    // side of each restriction can be checked later.
    let old = config_of(boss).map(|c| c.delegates).unwrap_or_default();
    for d in old.iter().filter(|d| !new.contains(d)) {
        let mut b = bosses_of(d);
        b.retain(|x| x != boss);
        set_bosses_of(d, &b);
    }
    for d in &new {
        let mut b = bosses_of(d);
        if !b.iter().any(|x| x == boss) {
            b.push(boss.to_owned());
            set_bosses_of(d, &b);
        }
    }
    Ok(())
}

impl Plugin for Delegation {
    fn points() -> Vec<DecisionPoint> {
        vec![
            DecisionPoint::Originate,
            DecisionPoint::Incoming,
            DecisionPoint::Event,
        ]
    }

    fn decide(point: DecisionPoint, input: PointInput) -> Decision {
        match point {
            DecisionPoint::Originate => input
                .call
                .as_ref()
                .map(originate)
                .unwrap_or(Decision::Continue),
            DecisionPoint::Incoming => match (input.call, input.callee) {
                (Some(call), Some(callee)) => incoming(&call, &callee),
                _ => Decision::Continue,
            },
            DecisionPoint::Event => {
                if let Some(ev) = input.event {
                    if let (EventKind::Answered, Some(who)) = (ev.kind, ev.subject.as_deref()) {
                        answered(who, ev.call.as_ref());
                    }
                }
                Decision::Continue
            }
            _ => Decision::Continue,
        }
    }

    fn validate_settings(scope: String, json: String) -> Result<(), String> {
        validate(&scope, &json)
    }
}

export_plugin!(Delegation);
