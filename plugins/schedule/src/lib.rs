//! Call reception, weekly schedules and absences (seed 002), written
//! against the WIT contract only.
//!
//! Per employee (scope `employee:<ext>`):
//!
//! ```json
//! {"reception": "all", "mobile_delay_s": 5, "ring_s": 20,
//!  "no_answer": "voicemail",
//!  "week": {"mon": [["09:00", "13:00"], ["14:00", "18:00"]], "tue": [["09:00", "18:00"]]},
//!  "out_of_hours": {"employee": "2004"},
//!  "absences": [{"kind": "vacation", "from": "2026-12-21", "to": "2027-01-03",
//!                "redirect": "department"}]}
//! ```
//!
//! - `reception`: `desk` (their registered phones: desk phone and
//!   softphone; the default), `mobile` (their personal mobile through the
//!   trunk), or `all` (both; the mobile after `mobile_delay_s`).
//! - `ring_s` and `no_answer`: how long they are rung and what happens
//!   then: `drop`, `voicemail`, `department` (their department's hunt
//!   group) or `{"employee": "<ext>"}`. Without `no_answer` the next
//!   plugin (diverts) decides.
//! - `week`: working hours in the tenant's time zone, several ranges a day;
//!   a day that is not listed is a day off; no `week` means always at work.
//!   Outside it they are taken out of hunt groups and direct calls go to
//!   `out_of_hours` (default `voicemail`).
//! - `absences`: vacation, sick leave or other, from and to dates
//!   (inclusive, tenant's local dates) with their own `redirect`. An absence
//!   ends by itself after its last day. Overlapping absences are refused.
//!
//! Order: an absence comes before working hours, which come before
//! reception. In the default chain this plugin runs after delegation and
//! before diverts, so an absence or out-of-hours redirect wins over a
//! forward-always divert, and an employee whose reception is `mobile` or
//! `all` rings as this plugin says (diverts still apply when that fails).

use serde_json::Value;
use switchboard_plugin::host;
use switchboard_plugin::*;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const KINDS: [&str; 3] = ["vacation", "sick_leave", "other"];
const MOBILE_DELAY_MAX_S: u64 = 120;
const RING_MIN_S: u64 = 5;
const RING_MAX_S: u64 = 600;

/// Where a call goes instead.
#[derive(Debug, Clone, PartialEq)]
enum Redirect {
    Drop,
    Voicemail,
    Department,
    Employee(String),
}

fn parse_redirect(field: &str, v: &Value) -> Result<Redirect, String> {
    match v {
        Value::String(s) if s == "drop" => Ok(Redirect::Drop),
        Value::String(s) if s == "voicemail" => Ok(Redirect::Voicemail),
        Value::String(s) if s == "department" => Ok(Redirect::Department),
        Value::Object(m) if m.len() == 1 && m.get("employee").is_some_and(Value::is_string) => Ok(
            Redirect::Employee(m["employee"].as_str().unwrap_or_default().to_owned()),
        ),
        _ => Err(format!(
            "{field}: use \"drop\", \"voicemail\", \"department\" or {{\"employee\": \"<ext>\"}}"
        )),
    }
}

fn settings_of(ext: &str) -> Option<Value> {
    serde_json::from_str(&host::setting(&format!("employee:{ext}"))?).ok()
}

/// "09:30" -> 570; "24:00" is the end of the day.
fn minutes(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some(h * 60 + m)
}

/// "2026-12-01" as a comparable number, if it is a date.
fn date(s: &str) -> Option<u32> {
    let mut p = s.split('-');
    let (y, m, d) = (p.next()?, p.next()?, p.next()?);
    if p.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (u32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then_some(y * 10_000 + m * 100 + d)
}

struct Now {
    date: u32,
    weekday: usize,
    minute: u32,
}

fn now() -> Now {
    let t = host::local_time_now();
    Now {
        date: t.year * 10_000 + u32::from(t.month) * 100 + u32::from(t.day),
        weekday: usize::from(t.weekday.clamp(1, 7)) - 1,
        minute: u32::from(t.hour) * 60 + u32::from(t.minute),
    }
}

/// The absence in force today, if any: (kind, redirect).
fn absence(s: &Value, now: &Now) -> Option<(String, Redirect)> {
    s["absences"].as_array()?.iter().find_map(|a| {
        let (from, to) = (date(a["from"].as_str()?)?, date(a["to"].as_str()?)?);
        if !(from..=to).contains(&now.date) {
            return None;
        }
        let r = parse_redirect("redirect", &a["redirect"]).unwrap_or(Redirect::Voicemail);
        Some((a["kind"].as_str().unwrap_or("other").to_owned(), r))
    })
}

fn at_work(s: &Value, now: &Now) -> bool {
    let Some(week) = s.get("week").filter(|w| w.is_object()) else {
        return true;
    };
    week[DAYS[now.weekday]].as_array().is_some_and(|ranges| {
        ranges.iter().any(|r| {
            match (
                r[0].as_str().and_then(minutes),
                r[1].as_str().and_then(minutes),
            ) {
                (Some(a), Some(b)) => (a..b).contains(&now.minute),
                _ => false,
            }
        })
    })
}

fn route(
    targets: Vec<Target>,
    total_ms: u32,
    reason: String,
    diversion: Option<Diversion>,
) -> Decision {
    Decision::Route(Route {
        targets,
        mode: RingMode::Parallel,
        total_ring_ms: total_ms,
        caller_id: None,
        caller_name: None,
        on_failure: OnFailure::AskAgain,
        reason: Some(reason),
        diversion,
    })
}

fn target(destination: Destination) -> Target {
    Target::now(destination)
}

fn redirect(ext: &str, r: &Redirect, why: DiversionReason, history: String) -> Decision {
    let destination = match r {
        Redirect::Drop => return Decision::reject(480, "Temporarily Unavailable"),
        Redirect::Voicemail => Destination::Voicemail(ext.to_owned()),
        Redirect::Employee(x) => Destination::Extension(x.clone()),
        Redirect::Department => match host::find_employee(ext).and_then(|e| e.department) {
            Some(d) => Destination::Extension(d),
            None => Destination::Voicemail(ext.to_owned()),
        },
    };
    route(
        vec![target(destination)],
        0,
        history,
        Some(Diversion {
            from: ext.to_owned(),
            reason: why,
        }),
    )
}

fn incoming(ext: &str) -> Decision {
    let Some(s) = settings_of(ext) else {
        return Decision::Continue;
    };
    let now = now();
    if let Some((kind, r)) = absence(&s, &now) {
        let why = format!("absent: {}", kind.replace('_', " "));
        return redirect(ext, &r, DiversionReason::Away, why);
    }
    if !at_work(&s, &now) {
        let r = parse_redirect("out_of_hours", &s["out_of_hours"]).unwrap_or(Redirect::Voicemail);
        return redirect(ext, &r, DiversionReason::TimeOfDay, "out of hours".into());
    }
    let reception = s["reception"].as_str().unwrap_or("desk");
    let ring_ms = s["ring_s"].as_u64().map(|r| (r * 1000) as u32).unwrap_or(0);
    if reception == "desk" && ring_ms == 0 {
        return Decision::Continue;
    }
    let mobile = host::find_employee(ext).and_then(|e| e.mobile);
    let delay_ms = (s["mobile_delay_s"].as_u64().unwrap_or(0) * 1000) as u32;
    let mut targets = Vec::new();
    if reception != "mobile" || mobile.is_none() {
        targets.push(Target {
            destination: Destination::Extension(ext.to_owned()),
            delay_ms: 0,
            ring_ms,
        });
    }
    if let (true, Some(m)) = (reception != "desk", mobile) {
        targets.push(Target {
            destination: Destination::External(m),
            delay_ms: if reception == "all" { delay_ms } else { 0 },
            ring_ms,
        });
    }
    let total = if ring_ms == 0 {
        0
    } else {
        ring_ms + targets.iter().map(|t| t.delay_ms).max().unwrap_or(0)
    };
    route(targets, total, format!("reception: {reception}"), None)
}

fn failure(call: &CallInfo, f: &FailureInfo) -> Decision {
    if f.reason != FailureReason::NoAnswer {
        return Decision::Continue;
    }
    let ext = f.target.as_str();
    let Some(s) = settings_of(ext) else {
        return Decision::Continue;
    };
    let Ok(r) = parse_redirect("no_answer", &s["no_answer"]) else {
        return Decision::Continue;
    };
    if let Redirect::Employee(x) = &r {
        if call.history.contains(x) || &call.dialed == x {
            return Decision::Continue;
        }
    }
    let history = format!(
        "not answered: {}",
        match &r {
            Redirect::Drop => "dropped".to_owned(),
            Redirect::Voicemail => "voicemail".to_owned(),
            Redirect::Department => "department".to_owned(),
            Redirect::Employee(x) => x.clone(),
        }
    );
    redirect(ext, &r, DiversionReason::NoAnswer, history)
}

fn group_members(g: &GroupInfo) -> Decision {
    let now = now();
    let kept: Vec<String> = g
        .members
        .iter()
        .filter(|m| settings_of(m).is_none_or(|s| absence(&s, &now).is_none() && at_work(&s, &now)))
        .cloned()
        .collect();
    if kept.len() == g.members.len() {
        Decision::Continue
    } else {
        Decision::Members(kept)
    }
}

fn check_seconds(v: &Value, field: &str, min: u64, max: u64) -> Result<(), String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(x) => match x.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(format!("{field}: must be {min} to {max} seconds")),
        },
    }
}

fn check_redirect(field: &str, v: Option<&Value>, me: &str, has_dept: bool) -> Result<(), String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(());
    };
    match parse_redirect(field, v)? {
        Redirect::Employee(x) if x == me => Err(format!("{field}.employee: not yourself")),
        Redirect::Employee(x) if host::find_employee(&x).is_none() => Err(format!(
            "{field}.employee: no employee {x} in this organisation"
        )),
        Redirect::Department if !has_dept => Err(format!("{field}: {me} has no department")),
        _ => Ok(()),
    }
}

fn validate(scope: &str, json: &str) -> Result<(), String> {
    let Some(ext) = scope.strip_prefix("employee:") else {
        return Err(format!("scope {scope}: use employee:<extension>"));
    };
    let Some(me) = host::find_employee(ext) else {
        return Err(format!("scope {scope}: no employee {ext}"));
    };
    let has_dept = me.department.is_some();
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let Some(map) = v.as_object() else {
        return Err("settings must be a JSON object".into());
    };
    let allowed = [
        "reception",
        "mobile_delay_s",
        "ring_s",
        "no_answer",
        "week",
        "out_of_hours",
        "absences",
    ];
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "{k}: unknown setting (allowed: {})",
            allowed.join(", ")
        ));
    }
    match v.get("reception") {
        None => {}
        Some(Value::String(r)) if r == "desk" => {}
        Some(Value::String(r)) if (r == "mobile" || r == "all") && me.mobile.is_none() => {
            return Err(format!("reception: {ext} has no mobile number"));
        }
        Some(Value::String(r)) if r == "mobile" || r == "all" => {}
        Some(_) => return Err("reception: must be desk, mobile or all".into()),
    }
    check_seconds(&v, "mobile_delay_s", 0, MOBILE_DELAY_MAX_S)?;
    check_seconds(&v, "ring_s", RING_MIN_S, RING_MAX_S)?;
    check_redirect("no_answer", v.get("no_answer"), ext, has_dept)?;
    check_redirect("out_of_hours", v.get("out_of_hours"), ext, has_dept)?;
    if let Some(week) = v.get("week") {
        let Some(week) = week.as_object() else {
            return Err("week: must be an object of days".into());
        };
        for (day, ranges) in week {
            if !DAYS.contains(&day.as_str()) {
                return Err(format!("week.{day}: days are {}", DAYS.join(", ")));
            }
            let Some(ranges) = ranges.as_array() else {
                return Err(format!(
                    "week.{day}: must be a list of [\"HH:MM\", \"HH:MM\"]"
                ));
            };
            for r in ranges {
                let ok = r.as_array().is_some_and(|p| p.len() == 2)
                    && matches!(
                        (r[0].as_str().and_then(minutes), r[1].as_str().and_then(minutes)),
                        (Some(a), Some(b)) if a < b
                    );
                if !ok {
                    return Err(format!(
                        "week.{day}: {r} is not a range like [\"09:00\", \"17:00\"]"
                    ));
                }
            }
        }
    }
    if let Some(abs) = v.get("absences") {
        let Some(abs) = abs.as_array() else {
            return Err("absences: must be a list".into());
        };
        let mut spans: Vec<(u32, u32)> = Vec::new();
        for (i, a) in abs.iter().enumerate() {
            let field = format!("absences[{i}]");
            let kind = a["kind"].as_str().unwrap_or_default();
            if !KINDS.contains(&kind) {
                return Err(format!("{field}.kind: must be {}", KINDS.join(", ")));
            }
            let (Some(from), Some(to)) = (
                a["from"].as_str().and_then(date),
                a["to"].as_str().and_then(date),
            ) else {
                return Err(format!(
                    "{field}: from and to must be dates like 2026-12-01"
                ));
            };
            if from > to {
                return Err(format!("{field}: from is after to"));
            }
            if let Some(j) = spans.iter().position(|(f, t)| from <= *t && *f <= to) {
                return Err(format!("{field}: overlaps absences[{j}]"));
            }
            spans.push((from, to));
            check_redirect(
                &format!("{field}.redirect"),
                a.get("redirect"),
                ext,
                has_dept,
            )?;
        }
    }
    Ok(())
}

struct Schedule;

impl Plugin for Schedule {
    fn points() -> Vec<DecisionPoint> {
        vec![
            DecisionPoint::Incoming,
            DecisionPoint::GroupMembers,
            DecisionPoint::Failure,
        ]
    }

    fn decide(point: DecisionPoint, input: PointInput) -> Decision {
        match point {
            DecisionPoint::Incoming => match input.callee {
                Some(c) if host::find_employee(&c).is_some() => incoming(&c),
                _ => Decision::Continue,
            },
            DecisionPoint::GroupMembers => input
                .group
                .as_ref()
                .map(group_members)
                .unwrap_or(Decision::Continue),
            DecisionPoint::Failure => match (input.call, input.failure) {
                (Some(c), Some(f)) => failure(&c, &f),
                _ => Decision::Continue,
            },
            _ => Decision::Continue,
        }
    }

    fn validate_settings(scope: String, json: String) -> Result<(), String> {
        validate(&scope, &json)
    }
}

export_plugin!(Schedule);
