//! The one place that runs `bindgen!` on `wit/`, and the conversions between
//! the generated types and [`crate::pipeline`]'s.

use std::time::Duration;

use crate::directory::{is_international_number, Entry, Extension, TenantDirectory};
use crate::pipeline::{self as p, Decision, Dest, Mode, OnFailure, RouteDecision, TargetSpec};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
});

pub use self::switchboard::plugin::host as host_api;
pub use self::switchboard::plugin::types as wit;

impl From<p::Point> for wit::DecisionPoint {
    fn from(v: p::Point) -> Self {
        match v {
            p::Point::Originate => wit::DecisionPoint::Originate,
            p::Point::Incoming => wit::DecisionPoint::Incoming,
            p::Point::GroupMembers => wit::DecisionPoint::GroupMembers,
            p::Point::Failure => wit::DecisionPoint::Failure,
            p::Point::Event => wit::DecisionPoint::Event,
            p::Point::Collected => wit::DecisionPoint::Collected,
        }
    }
}

impl From<wit::DecisionPoint> for p::Point {
    fn from(v: wit::DecisionPoint) -> Self {
        match v {
            wit::DecisionPoint::Originate => p::Point::Originate,
            wit::DecisionPoint::Incoming => p::Point::Incoming,
            wit::DecisionPoint::GroupMembers => p::Point::GroupMembers,
            wit::DecisionPoint::Failure => p::Point::Failure,
            wit::DecisionPoint::Event => p::Point::Event,
            wit::DecisionPoint::Collected => p::Point::Collected,
        }
    }
}

pub(super) fn call(c: &p::CallView) -> wit::CallInfo {
    wit::CallInfo {
        call_id: c.call_id.clone(),
        caller: wit::Party {
            id: c.caller.id.clone(),
            display_name: c.caller.name.clone(),
            internal: c.caller.internal,
        },
        dialed: c.dialed.clone(),
        direction: match c.direction {
            p::Direction::Internal => wit::Direction::Internal,
            p::Direction::Inbound => wit::Direction::Inbound,
            p::Direction::Outbound => wit::Direction::Outbound,
        },
        attempt: c.attempt,
        history: c.history.clone(),
        device: c.device.clone(),
        referred_by: c.referred_by.clone(),
        transferred_from: c.transferred_from.clone(),
    }
}

/// The WIT form of an input.
pub fn input(i: &p::Input) -> wit::PointInput {
    let mut out = wit::PointInput {
        call: None,
        callee: None,
        failure: None,
        group: None,
        event: None,
        collected: None,
    };
    match i {
        p::Input::Originate { call: c } => out.call = Some(call(c)),
        p::Input::Incoming { call: c, callee } => {
            out.call = Some(call(c));
            out.callee = Some(callee.clone());
        }
        p::Input::GroupMembers {
            call: c,
            group,
            members,
        } => {
            out.call = Some(call(c));
            out.group = Some(wit::GroupInfo {
                extension: group.clone(),
                members: members.clone(),
            });
        }
        p::Input::Failure {
            call: c,
            reason,
            target,
            tried,
        } => {
            out.call = Some(call(c));
            out.failure = Some(wit::FailureInfo {
                reason: match reason {
                    p::FailureReason::NoAnswer => wit::FailureReason::NoAnswer,
                    p::FailureReason::Busy => wit::FailureReason::Busy,
                    p::FailureReason::Unreachable => wit::FailureReason::Unreachable,
                },
                target: target.clone(),
                tried: tried.clone(),
            });
        }
        p::Input::Event {
            kind,
            subject,
            group,
            call: c,
            payload,
        } => {
            out.event = Some(wit::Event {
                kind: match kind {
                    p::EventKind::Registered => wit::EventKind::Registered,
                    p::EventKind::Unregistered => wit::EventKind::Unregistered,
                    p::EventKind::Answered => wit::EventKind::Answered,
                    p::EventKind::Ended => wit::EventKind::Ended,
                    p::EventKind::MissedGroupCall => wit::EventKind::MissedGroupCall,
                    p::EventKind::TimerFired => wit::EventKind::TimerFired,
                    p::EventKind::LoggedIn => wit::EventKind::LoggedIn,
                    p::EventKind::LoggedOut => wit::EventKind::LoggedOut,
                },
                subject: subject.clone(),
                group: group.clone(),
                call: c.as_ref().map(call),
                payload: payload.clone(),
            });
        }
        p::Input::Collected {
            call: c,
            context,
            digits,
            ended_by,
        } => {
            out.call = Some(call(c));
            out.collected = Some(wit::CollectedDigits {
                context: context.clone(),
                digits: digits.clone(),
                ended_by: match ended_by {
                    p::EntryEnd::Terminator => wit::EntryEnd::Terminator,
                    p::EntryEnd::MaxDigits => wit::EntryEnd::MaxDigits,
                    p::EntryEnd::Timeout => wit::EntryEnd::Timeout,
                },
            });
        }
    }
    out
}

fn prompts(list: Vec<wit::Prompt>) -> Result<Vec<p::Prompt>, String> {
    if list.len() > p::MAX_PROMPTS {
        return Err(format!(
            "at most {} prompts, not {}",
            p::MAX_PROMPTS,
            list.len()
        ));
    }
    list.into_iter()
        .map(|x| match x {
            wit::Prompt::Recording(name) => p::RECORDINGS
                .iter()
                .find(|r| **r == name)
                .map(|r| p::Prompt::Recording(r))
                .ok_or_else(|| format!("prompt `{}`: no such recording", clean_reason(&name))),
            wit::Prompt::Digits(d) => {
                if d.is_empty()
                    || d.len() > p::MAX_READ_DIGITS
                    || !d.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(format!(
                        "prompt digits `{}`: 1 to {} digits 0-9",
                        clean_reason(&d),
                        p::MAX_READ_DIGITS
                    ));
                }
                Ok(p::Prompt::Digits(d))
            }
            wit::Prompt::Pause(ms) => {
                let d = Duration::from_millis(u64::from(ms));
                if d > p::MAX_PAUSE {
                    return Err(format!("pause of {ms} ms is over 5000"));
                }
                Ok(p::Prompt::Pause(d))
            }
        })
        .collect()
}

fn ms(v: u32) -> Option<Duration> {
    (v > 0).then(|| Duration::from_millis(u64::from(v)))
}

fn known_extension(dir: &TenantDirectory, s: &str, what: &str) -> Result<Extension, String> {
    let e = Extension::parse(s).map_err(|r| format!("{what}: {r}"))?;
    dir.resolve(s)
        .ok_or_else(|| format!("{what}: unknown extension `{s}`"))?;
    Ok(e)
}

/// Checks a decision against the point and the tenant; the error is why it
/// is invalid.
pub fn decision(
    point: p::Point,
    d: wit::Decision,
    dir: &TenantDirectory,
    group_members: Option<&[String]>,
) -> Result<Decision, String> {
    use p::Point::*;
    let allowed = matches!(
        (&d, point),
        (wit::Decision::Continue, _)
            | (
                wit::Decision::Route(_) | wit::Decision::Reject(_),
                Originate | Incoming | Failure
            )
            | (
                wit::Decision::Feature(_) | wit::Decision::Collect(_),
                Originate | Collected
            )
            | (wit::Decision::Members(_), GroupMembers)
    );
    if !allowed {
        return Err(format!("decision not allowed at the {point:?} point"));
    }
    Ok(match d {
        wit::Decision::Continue => Decision::Continue,
        wit::Decision::Reject(r) => {
            if !(400..=699).contains(&r.status) {
                return Err(format!("reject status {} is not 400-699", r.status));
            }
            Decision::Reject {
                status: r.status,
                reason: clean_reason(&r.reason),
            }
        }
        wit::Decision::Feature(f) => Decision::Feature {
            success: f.success,
            message: clean_reason(&f.message),
            announce: prompts(f.announce)?,
        },
        wit::Decision::Collect(c) => {
            if !(1..=32).contains(&c.max_digits) {
                return Err(format!("collect max-digits {} is not 1-32", c.max_digits));
            }
            let timeout = match c.timeout_ms {
                0 => Duration::from_secs(10),
                1000..=60000 => Duration::from_millis(u64::from(c.timeout_ms)),
                t => return Err(format!("collect timeout-ms {t} is not 1000-60000")),
            };
            if c.context.len() > p::MAX_CONTEXT {
                return Err(format!(
                    "collect context of {} bytes is over {}",
                    c.context.len(),
                    p::MAX_CONTEXT
                ));
            }
            Decision::Collect(p::Collect {
                prompts: prompts(c.prompts)?,
                max_digits: c.max_digits,
                hash_ends: c.hash_ends,
                timeout,
                context: c.context,
            })
        }
        wit::Decision::Members(m) => {
            let allowed = group_members.unwrap_or(&[]);
            if let Some(x) = m.iter().find(|x| !allowed.contains(x)) {
                return Err(format!("`{x}` is not a member of the group"));
            }
            Decision::Members(m)
        }
        wit::Decision::Route(r) => {
            if r.targets.is_empty() || r.targets.len() > p::MAX_TARGETS {
                return Err(format!(
                    "a route needs 1 to {} targets, not {}",
                    p::MAX_TARGETS,
                    r.targets.len()
                ));
            }
            let mut targets = Vec::with_capacity(r.targets.len());
            for t in r.targets {
                let dest = match t.destination {
                    wit::Destination::Extension(x) => {
                        Dest::Extension(known_extension(dir, &x, "extension")?)
                    }
                    wit::Destination::Device(x) => {
                        let e = known_extension(dir, &x, "device")?;
                        if !matches!(dir.resolve(&x), Some(Entry::Device(_))) {
                            return Err(format!("`{x}` is not a device account"));
                        }
                        Dest::Device(e)
                    }
                    wit::Destination::Voicemail(x) => {
                        Dest::Voicemail(known_extension(dir, &x, "voicemail")?)
                    }
                    wit::Destination::External(n) => {
                        if !is_international_number(&n) {
                            return Err(format!("`{n}` is not an international number"));
                        }
                        Dest::External(n)
                    }
                    wit::Destination::Uri(u) => {
                        let ok = u.starts_with("sip:") && rsip::Uri::try_from(u.as_str()).is_ok();
                        if !ok {
                            return Err(format!("`{u}` is not a sip: URI"));
                        }
                        Dest::Uri(u)
                    }
                };
                targets.push(TargetSpec {
                    dest,
                    delay: Duration::from_millis(u64::from(t.delay_ms)),
                    ring: ms(t.ring_ms),
                });
            }
            if let Some(id) = &r.caller_id {
                if id.is_empty()
                    || id.len() > 32
                    || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+')
                {
                    return Err(format!("caller id `{id}` is not a number or extension"));
                }
            }
            Decision::Route(RouteDecision {
                targets,
                mode: match r.mode {
                    wit::RingMode::Parallel => Mode::Parallel,
                    wit::RingMode::Sequential => Mode::Sequential,
                },
                total_ring: ms(r.total_ring_ms),
                caller_id: r.caller_id,
                caller_name: r.caller_name.map(|n| clean_reason(&n)),
                on_failure: match r.on_failure {
                    wit::OnFailure::AskAgain => OnFailure::AskAgain,
                    wit::OnFailure::Drop => OnFailure::Drop,
                },
                reason: r.reason.map(|n| clean_reason(&n)),
                diversion: match r.diversion {
                    None => None,
                    Some(d) => Some(p::Diversion {
                        from: known_extension(dir, &d.from, "diversion from")?,
                        reason: match d.reason {
                            wit::DiversionReason::Unconditional => {
                                p::DiversionReason::Unconditional
                            }
                            wit::DiversionReason::UserBusy => p::DiversionReason::UserBusy,
                            wit::DiversionReason::NoAnswer => p::DiversionReason::NoAnswer,
                            wit::DiversionReason::Unavailable => p::DiversionReason::Unavailable,
                            wit::DiversionReason::TimeOfDay => p::DiversionReason::TimeOfDay,
                            wit::DiversionReason::Away => p::DiversionReason::Away,
                            wit::DiversionReason::Deflection => p::DiversionReason::Deflection,
                            wit::DiversionReason::Unknown => p::DiversionReason::Unknown,
                        },
                    }),
                },
            })
        }
    })
}

/// Text that is safe in a SIP reason phrase or display name.
fn clean_reason(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .take(64)
        .collect()
}
