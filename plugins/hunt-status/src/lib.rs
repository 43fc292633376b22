//! Hunt-group status on no answer (seed 004), written against the WIT
//! contract only.
//!
//! When a member with a login code (voicemail PIN) and forced login lets a
//! hunt group call ring out, and the group's "applies to" setting counts
//! that call (`any-calls`, or `external-incoming` for calls from outside;
//! `none` counts nothing), the member's status changes as their
//! `status_on_no_answer` setting says:
//!
//! - `logged_in` (default): no change.
//! - `busy_wrap_up`: their membership of that group is disabled; other
//!   groups and personal calls still reach them. It is not a timer: it
//!   stays until they dial `*90` or an admin enables it over HTTP.
//! - `busy_not_available`: do not disturb, no calls at all.
//! - `logged_off`: cannot make or take calls; group calls skip them,
//!   personal calls treat them as busy (so a busy divert applies).
//!
//! A member whose phone rang while someone else answered, or when the
//! caller hung up, did not miss the call: the host does not report it.
//!
//! `*90` from the member's phone ("I'm back") makes them available again
//! ("Your status is set", when the phone offered audio)
//! and re-enables every membership this plugin disabled. The host records
//! every change with its time and cause.
//!
//! Settings, scope `employee:<ext>`:
//! `{"status_on_no_answer": "busy_wrap_up"}`.

use serde_json::Value;
use switchboard_plugin::host::{self, Status};
use switchboard_plugin::*;

/// What a missed group call changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnNoAnswer {
    LoggedIn,
    BusyWrapUp,
    BusyNotAvailable,
    LoggedOff,
}

impl OnNoAnswer {
    const ALL: [(&'static str, OnNoAnswer); 4] = [
        ("logged_in", OnNoAnswer::LoggedIn),
        ("busy_wrap_up", OnNoAnswer::BusyWrapUp),
        ("busy_not_available", OnNoAnswer::BusyNotAvailable),
        ("logged_off", OnNoAnswer::LoggedOff),
    ];

    fn parse(s: &str) -> Option<OnNoAnswer> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
    }
}

struct HuntStatus;

fn wrapped_key(ext: &str) -> String {
    format!("wrap-up:{ext}")
}

fn wrapped_groups(ext: &str) -> Vec<String> {
    host::kv_get(&wrapped_key(ext))
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn setting_of(ext: &str) -> OnNoAnswer {
    host::setting(&format!("employee:{ext}"))
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| {
            v["status_on_no_answer"]
                .as_str()
                .and_then(OnNoAnswer::parse)
        })
        .unwrap_or(OnNoAnswer::LoggedIn)
}

fn counts(group: &host::HuntGroup, call: Option<&CallInfo>) -> bool {
    match group.no_answer_applies_to.as_str() {
        "any-calls" => true,
        "external-incoming" => call.is_some_and(|c| c.direction == Direction::Inbound),
        _ => false,
    }
}

fn missed(member: &str, group_ext: &str, call: Option<&CallInfo>) {
    let Some(e) = host::find_employee(member) else {
        return;
    };
    if !(e.has_pin && e.forced_login) {
        return;
    }
    let Some(group) = host::find_hunt_group(group_ext) else {
        return;
    };
    if !counts(&group, call) || host::presence_of(member).status != Status::Available {
        return;
    }
    let cause = format!("missed a call of {group_ext}");
    let result = match setting_of(member) {
        OnNoAnswer::LoggedIn => return,
        OnNoAnswer::BusyWrapUp => {
            let r =
                host::set_membership(group_ext, member, false, &format!("{cause}: busy wrap-up"));
            if r.is_ok() {
                let mut groups = wrapped_groups(member);
                if !groups.iter().any(|g| g == group_ext) {
                    groups.push(group_ext.to_owned());
                }
                let json = serde_json::to_string(&groups).unwrap_or_default();
                if let Err(e) = host::kv_set(&wrapped_key(member), &json) {
                    error!("wrap-up of {member} not saved: {e}");
                }
            }
            r
        }
        OnNoAnswer::BusyNotAvailable => {
            host::set_status(member, Status::Dnd, &format!("{cause}: busy not available"))
        }
        OnNoAnswer::LoggedOff => {
            host::set_status(member, Status::LoggedOut, &format!("{cause}: logged off"))
        }
    };
    match result {
        Ok(()) => info!("{member} {cause}; status changed"),
        Err(e) => warn!("{member} {cause}; no change: {e}"),
    }
}

fn back(caller: &str) -> Decision {
    if host::find_employee(caller).is_none() {
        return feature(false, "Not an employee");
    }
    if let Err(e) = host::set_status(caller, Status::Available, "*90") {
        return feature(false, &e);
    }
    for g in wrapped_groups(caller) {
        if let Err(e) = host::set_membership(&g, caller, true, "*90") {
            warn!("re-enabling {caller} in {g}: {e}");
        }
    }
    host::kv_delete(&wrapped_key(caller));
    Decision::feature_saying(true, "Available", vec![Prompt::say("status-set")])
}

fn feature(success: bool, message: &str) -> Decision {
    Decision::feature(success, message.chars().take(64).collect::<String>())
}

impl Plugin for HuntStatus {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Originate, DecisionPoint::Event]
    }

    fn decide(point: DecisionPoint, input: PointInput) -> Decision {
        match point {
            DecisionPoint::Originate => match input.call {
                Some(c) if c.dialed.trim_end_matches('#') == "*90" && c.caller.internal => {
                    back(&c.caller.id)
                }
                _ => Decision::Continue,
            },
            DecisionPoint::Event => {
                if let Some(ev) = input.event {
                    if let (EventKind::MissedGroupCall, Some(member), Some(group)) =
                        (ev.kind, ev.subject.as_deref(), ev.group.as_deref())
                    {
                        missed(member, group, ev.call.as_ref());
                    }
                }
                Decision::Continue
            }
            _ => Decision::Continue,
        }
    }

    fn validate_settings(scope: String, json: String) -> Result<(), String> {
        let v: Value = serde_json::from_str(&json).map_err(|e| format!("not JSON: {e}"))?;
        if scope.strip_prefix("employee:").is_none() {
            return Err(format!("scope {scope}: use employee:<extension>"));
        }
        let Some(map) = v.as_object() else {
            return Err("settings must be a JSON object".into());
        };
        if let Some(k) = map.keys().find(|k| *k != "status_on_no_answer") {
            return Err(format!(
                "{k}: unknown setting (allowed: status_on_no_answer)"
            ));
        }
        match map.get("status_on_no_answer") {
            None => Ok(()),
            Some(Value::String(s)) if OnNoAnswer::parse(s).is_some() => Ok(()),
            Some(_) => Err(format!(
                "status_on_no_answer: must be one of {}",
                OnNoAnswer::ALL.map(|(n, _)| n).join(", ")
            )),
        }
    }
}

export_plugin!(HuntStatus);
