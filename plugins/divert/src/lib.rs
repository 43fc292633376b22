//! Four-way call diverts (seed 001), written against the WIT contract only.
//!
//! Per employee, four independent triggers, each `off`, to `voicemail`, to
//! another extension of the tenant, or to an external number in
//! international digits (`441234567890`):
//!
//! - `always`: nothing rings, the call goes straight to the target;
//! - `no_answer`: after the ring time (`no_answer_ring_s`, default 300 s);
//! - `busy`: the phone answered busy, or they are already on a call when
//!   the tenant counts that as busy, or their status is logged off or DND
//!   (seed 004's Logged Off treats personal calls as busy);
//! - `unreachable`: no registration, or the phone does not respond.
//!
//! Settings, scope `employee:<ext>`:
//! ```json
//! {"always": "off", "no_answer": "voicemail", "busy": {"extension": "2002"},
//!  "unreachable": {"number": "441234567890"}, "no_answer_ring_s": 20}
//! ```
//! External numbers are a toll-fraud risk: a divert may go to the
//! employee's own mobile, or to a number starting with one of the prefixes
//! the tenant allows (scope `tenant`: `{"number_prefixes": ["44", "331"]}`;
//! none by default), checked when the divert is set and again when a call
//! takes it. Who may set what is the admin API's business (seed 002: Users
//! and Restricted users only their own mobile; administrators any number
//! the tenant allows).
//!
//! Diverted calls carry a `Diversion` header (the host adds it from the
//! route's `diversion`) and call history says `diverted: busy` etc.
//! Loops end: a divert to an extension the call has already been routed to
//! (or that was dialed) is not taken, a chain of forward-always settings is
//! followed at most 5 hops, and the host refuses a sixth diversion. The call
//! then ends at the last target with its failure.

use serde_json::Value;
use switchboard_plugin::host;
use switchboard_plugin::*;

/// Seed 001: "rings for more than the default time (300 seconds)".
const NO_ANSWER_DEFAULT_S: u64 = 300;
const NO_ANSWER_MIN_S: u64 = 5;
const NO_ANSWER_MAX_S: u64 = 600;
/// Forward-always settings followed in a row before giving up.
const MAX_CHAIN: usize = 5;

/// Where a trigger sends the call.
#[derive(Clone, Debug, PartialEq)]
enum DivertTo {
    Voicemail,
    Extension(String),
    Number(String),
}

#[derive(Clone, Copy)]
enum Trigger {
    Always,
    NoAnswer,
    Busy,
    Unreachable,
}

impl Trigger {
    fn key(self) -> &'static str {
        match self {
            Trigger::Always => "always",
            Trigger::NoAnswer => "no_answer",
            Trigger::Busy => "busy",
            Trigger::Unreachable => "unreachable",
        }
    }

    fn reason(self) -> DiversionReason {
        match self {
            Trigger::Always => DiversionReason::Unconditional,
            Trigger::NoAnswer => DiversionReason::NoAnswer,
            Trigger::Busy => DiversionReason::UserBusy,
            Trigger::Unreachable => DiversionReason::Unavailable,
        }
    }

    fn history(self) -> &'static str {
        match self {
            Trigger::Always => "diverted: always",
            Trigger::NoAnswer => "diverted: no answer",
            Trigger::Busy => "diverted: busy",
            Trigger::Unreachable => "diverted: unreachable",
        }
    }
}

const TRIGGERS: [Trigger; 4] = [
    Trigger::Always,
    Trigger::NoAnswer,
    Trigger::Busy,
    Trigger::Unreachable,
];

fn is_international(n: &str) -> bool {
    (6..=15).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0')
}

/// Parses one trigger's value; `Ok(None)` is off.
fn parse_target(field: &str, v: &Value) -> Result<Option<DivertTo>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s == "off" => Ok(None),
        Value::String(s) if s == "voicemail" => Ok(Some(DivertTo::Voicemail)),
        Value::Object(m) if m.len() == 1 => {
            if let Some(x) = m.get("extension") {
                let x = x.as_str().unwrap_or_default();
                if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{field}.extension: `{x}` is not an extension"));
                }
                Ok(Some(DivertTo::Extension(x.to_owned())))
            } else if let Some(n) = m.get("number") {
                let n = n.as_str().unwrap_or_default();
                if !is_international(n) {
                    return Err(format!(
                        "{field}.number: `{n}` must be international digits like 441234567890"
                    ));
                }
                Ok(Some(DivertTo::Number(n.to_owned())))
            } else {
                Err(format!("{field}: use \"off\", \"voicemail\", {{\"extension\": ...}} or {{\"number\": ...}}"))
            }
        }
        _ => Err(format!(
            "{field}: use \"off\", \"voicemail\", {{\"extension\": ...}} or {{\"number\": ...}}"
        )),
    }
}

fn settings_of(ext: &str) -> Value {
    host::setting(&format!("employee:{ext}"))
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
}

fn target_of(ext: &str, trigger: Trigger) -> Option<DivertTo> {
    let s = settings_of(ext);
    let t = parse_target(trigger.key(), &s[trigger.key()])
        .ok()
        .flatten()?;
    if let DivertTo::Number(n) = &t {
        let mobile = host::find_employee(ext).and_then(|e| e.mobile);
        if !number_allowed(mobile.as_deref(), n) {
            warn!("divert of {ext} to {n} not taken: the tenant no longer allows it");
            return None;
        }
    }
    Some(t)
}

/// Most prefixes a tenant may list.
const MAX_PREFIXES: usize = 100;

/// The number prefixes the tenant allows diverts to.
fn allowed_prefixes() -> Vec<String> {
    host::setting("tenant")
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| {
            v.get("number_prefixes").and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The toll-fraud guard: the employee's own mobile, or a prefix the tenant
/// allows.
fn number_allowed(mobile: Option<&str>, n: &str) -> bool {
    mobile == Some(n) || allowed_prefixes().iter().any(|p| n.starts_with(p.as_str()))
}

fn validate_tenant(v: &Value) -> Result<(), String> {
    let Some(map) = v.as_object() else {
        return Err("settings must be a JSON object".into());
    };
    if let Some(k) = map.keys().find(|k| k.as_str() != "number_prefixes") {
        return Err(format!("{k}: unknown setting (allowed: number_prefixes)"));
    }
    let Some(list) = map.get("number_prefixes") else {
        return Ok(());
    };
    let Some(list) = list.as_array() else {
        return Err("number_prefixes: must be a list of digit strings".into());
    };
    if list.len() > MAX_PREFIXES {
        return Err(format!("number_prefixes: at most {MAX_PREFIXES}"));
    }
    for p in list {
        let p = p.as_str().unwrap_or_default();
        if p.is_empty()
            || p.len() > 15
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.starts_with('0')
        {
            return Err(format!(
                "number_prefixes: `{p}` must be 1 to 15 digits of an international number, like 44"
            ));
        }
    }
    Ok(())
}

fn destination(t: &DivertTo, diverting: &str) -> Destination {
    match t {
        DivertTo::Voicemail => Destination::Voicemail(diverting.to_owned()),
        DivertTo::Extension(x) => Destination::Extension(x.clone()),
        DivertTo::Number(n) => Destination::External(n.clone()),
    }
}

fn route(t: &DivertTo, from: &str, trigger: Trigger) -> Decision {
    Route::to(destination(t, from))
        .because(trigger.history())
        .diverted_from(from, trigger.reason())
        .into()
}

/// Extensions this call has been to (or was for): diverting there again
/// would loop.
fn visited(call: &CallInfo) -> Vec<String> {
    let mut v = call.history.clone();
    v.push(call.dialed.clone());
    v
}

fn incoming(call: &CallInfo, callee: &str) -> Decision {
    if host::find_employee(callee).is_none() {
        return Decision::Continue;
    }
    let mut seen = visited(call);
    seen.push(callee.to_owned());
    // Forward always: follow the chain of forward-always settings, stopping
    // before a loop or after MAX_CHAIN hops.
    let mut from = callee.to_owned();
    let mut target = None;
    for _ in 0..MAX_CHAIN {
        let Some(t) = target_of(&from, Trigger::Always) else {
            break;
        };
        match &t {
            DivertTo::Extension(x) if seen.contains(x) => break,
            DivertTo::Extension(x) => {
                seen.push(x.clone());
                target = Some((t.clone(), from.clone()));
                from = x.clone();
            }
            _ => {
                target = Some((t, from.clone()));
                break;
            }
        }
    }
    if let Some((t, from)) = target {
        return route(&t, &from, Trigger::Always);
    }
    // A no-answer divert rings the callee for its own ring time first.
    if target_of(callee, Trigger::NoAnswer).is_some() {
        let ring_s = settings_of(callee)["no_answer_ring_s"]
            .as_u64()
            .unwrap_or(NO_ANSWER_DEFAULT_S);
        let ring_ms = (ring_s * 1000).min(u64::from(u32::MAX)) as u32;
        return Route::ringing(vec![
            Target::now(Destination::Extension(callee.to_owned())).ringing_for(ring_ms)
        ])
        .for_at_most(ring_ms)
        .into();
    }
    Decision::Continue
}

fn failure(call: &CallInfo, f: &FailureInfo) -> Decision {
    let who = f.target.as_str();
    if host::find_employee(who).is_none() {
        return Decision::Continue;
    }
    let trigger = match f.reason {
        FailureReason::NoAnswer => Trigger::NoAnswer,
        FailureReason::Busy => Trigger::Busy,
        FailureReason::Unreachable => Trigger::Unreachable,
    };
    let Some(t) = target_of(who, trigger) else {
        return Decision::Continue;
    };
    if let DivertTo::Extension(x) = &t {
        if x == who || visited(call).contains(x) {
            info!("divert of {who} to {x} not taken: the call was there already");
            return Decision::Continue;
        }
    }
    route(&t, who, trigger)
}

fn validate(scope: &str, json: &str) -> Result<(), String> {
    if scope == "tenant" {
        let v: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
        return validate_tenant(&v);
    }
    let Some(ext) = scope.strip_prefix("employee:") else {
        return Err(format!("scope {scope}: use tenant or employee:<extension>"));
    };
    let Some(me) = host::find_employee(ext) else {
        return Err(format!("scope {scope}: no employee {ext}"));
    };
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let Some(map) = v.as_object() else {
        return Err("settings must be a JSON object".into());
    };
    let allowed = [
        "always",
        "no_answer",
        "busy",
        "unreachable",
        "no_answer_ring_s",
    ];
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "{k}: unknown setting (allowed: {})",
            allowed.join(", ")
        ));
    }
    for trigger in TRIGGERS {
        let field = trigger.key();
        match parse_target(field, &v[field])? {
            Some(DivertTo::Extension(x)) => {
                if x == ext {
                    return Err(format!("{field}.extension: cannot divert to yourself"));
                }
                if host::find_employee(&x).is_none() && host::find_hunt_group(&x).is_none() {
                    return Err(format!(
                        "{field}.extension: no extension {x} in this organisation"
                    ));
                }
            }
            Some(DivertTo::Number(n)) => {
                if !number_allowed(me.mobile.as_deref(), &n) {
                    return Err(format!(
                        "{field}.number: `{n}` is not the employee's mobile and starts with \
                         no prefix the tenant allows (the divert plugin's tenant setting \
                         number_prefixes)"
                    ));
                }
            }
            _ => {}
        }
    }
    match v.get("no_answer_ring_s") {
        None | Some(Value::Null) => Ok(()),
        Some(x) => match x.as_u64() {
            Some(n) if (NO_ANSWER_MIN_S..=NO_ANSWER_MAX_S).contains(&n) => Ok(()),
            _ => Err(format!(
                "no_answer_ring_s: must be {NO_ANSWER_MIN_S} to {NO_ANSWER_MAX_S} seconds"
            )),
        },
    }
}

struct Divert;

impl Plugin for Divert {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Incoming, DecisionPoint::Failure]
    }

    fn decide(point: DecisionPoint, input: PointInput) -> Decision {
        let Some(call) = input.call else {
            return Decision::Continue;
        };
        match (point, input.callee, input.failure) {
            (DecisionPoint::Incoming, Some(callee), _) => incoming(&call, &callee),
            (DecisionPoint::Failure, _, Some(f)) => failure(&call, &f),
            _ => Decision::Continue,
        }
    }

    fn validate_settings(scope: String, json: String) -> Result<(), String> {
        validate(&scope, &json)
    }
}

export_plugin!(Divert);
