//! Components built against the frozen contract 0.2.0
//! (`wit/frozen/plugin-0.2.0/`). Their host functions are the same as
//! 0.3.0's, so they are served by the same code (through the generated
//! 0.2.0 types); their decisions are lifted to 0.3.0 and validated like any
//! other. 0.2.0 has no voice: such a plugin is never asked `collected`, and
//! its feature results announce nothing.

use super::bindings::{host_api as new, wit};
use super::CallState;

wasmtime::component::bindgen!({
    path: "../wit/frozen/plugin-0.2.0",
    world: "plugin",
});

use self::switchboard::plugin::host as old;
use self::switchboard::plugin::types as t;

/// The world name a 0.2.0 component is checked against.
pub const WORLD: &str = "switchboard:plugin/plugin@0.2.0";
/// The host interface 0.2.0 components import.
pub const HOST_INTERFACE: &str = "switchboard:plugin/host@0.2.0";
/// The types interface 0.2.0 components may import.
pub const TYPES_INTERFACE: &str = "switchboard:plugin/types@0.2.0";
/// The handler interface 0.2.0 components export.
pub const HANDLER_INTERFACE: &str = "switchboard:plugin/handler@0.2.0";

impl t::Host for CallState {}

fn role(r: new::Role) -> old::Role {
    match r {
        new::Role::Administrator => old::Role::Administrator,
        new::Role::DepartmentHead => old::Role::DepartmentHead,
        new::Role::User => old::Role::User,
        new::Role::RestrictedUser => old::Role::RestrictedUser,
    }
}

fn status_out(s: new::Status) -> old::Status {
    match s {
        new::Status::Available => old::Status::Available,
        new::Status::Dnd => old::Status::Dnd,
        new::Status::LoggedOut => old::Status::LoggedOut,
    }
}

fn status_in(s: old::Status) -> new::Status {
    match s {
        old::Status::Available => new::Status::Available,
        old::Status::Dnd => new::Status::Dnd,
        old::Status::LoggedOut => new::Status::LoggedOut,
    }
}

impl old::Host for CallState {
    fn find_employee(&mut self, extension: String) -> Option<old::Employee> {
        new::Host::find_employee(self, extension).map(|e| old::Employee {
            extension: e.extension,
            name: e.name,
            mobile: e.mobile,
            department: e.department,
            has_pin: e.has_pin,
            forced_login: e.forced_login,
            role: role(e.role),
        })
    }
    fn devices_of(&mut self, extension: String) -> Vec<String> {
        new::Host::devices_of(self, extension)
    }
    fn find_device(&mut self, username: String) -> Option<old::Device> {
        new::Host::find_device(self, username).map(|d| old::Device {
            username: d.username,
            owner: d.owner,
            hotdesk: d.hotdesk,
        })
    }
    fn verify_pin(&mut self, extension: String, pin: String) -> Result<(), String> {
        new::Host::verify_pin(self, extension, pin)
    }
    fn groups_of(&mut self, extension: String) -> Vec<String> {
        new::Host::groups_of(self, extension)
    }
    fn find_hunt_group(&mut self, extension: String) -> Option<old::HuntGroup> {
        new::Host::find_hunt_group(self, extension).map(|g| old::HuntGroup {
            extension: g.extension,
            name: g.name,
            members: g
                .members
                .into_iter()
                .map(|m| old::Member {
                    extension: m.extension,
                    enabled: m.enabled,
                })
                .collect(),
            no_answer_applies_to: g.no_answer_applies_to,
        })
    }
    fn presence_of(&mut self, extension: String) -> old::Presence {
        let p = new::Host::presence_of(self, extension);
        old::Presence {
            registered: p.registered,
            home_registered: p.home_registered,
            hotdesk_device: p.hotdesk_device,
            active_calls: p.active_calls,
            status: status_out(p.status),
        }
    }
    fn now_ms(&mut self) -> u64 {
        new::Host::now_ms(self)
    }
    fn time_zone(&mut self) -> String {
        new::Host::time_zone(self)
    }
    fn local_time_now(&mut self) -> old::LocalTime {
        let l = new::Host::local_time_now(self);
        old::LocalTime {
            year: l.year,
            month: l.month,
            day: l.day,
            hour: l.hour,
            minute: l.minute,
            second: l.second,
            weekday: l.weekday,
        }
    }
    fn setting(&mut self, scope: String) -> Option<String> {
        new::Host::setting(self, scope)
    }
    fn kv_get(&mut self, key: String) -> Option<String> {
        new::Host::kv_get(self, key)
    }
    fn kv_set(&mut self, key: String, value: String) -> Result<(), String> {
        new::Host::kv_set(self, key, value)
    }
    fn kv_delete(&mut self, key: String) {
        new::Host::kv_delete(self, key)
    }
    fn set_timer(&mut self, delay_ms: u64, payload: String) -> u64 {
        new::Host::set_timer(self, delay_ms, payload)
    }
    fn cancel_timer(&mut self, id: u64) {
        new::Host::cancel_timer(self, id)
    }
    fn set_status(
        &mut self,
        extension: String,
        status: old::Status,
        cause: String,
    ) -> Result<(), String> {
        new::Host::set_status(self, extension, status_in(status), cause)
    }
    fn set_membership(
        &mut self,
        group: String,
        extension: String,
        enabled: bool,
        cause: String,
    ) -> Result<(), String> {
        new::Host::set_membership(self, group, extension, enabled, cause)
    }
    fn bind_device(
        &mut self,
        device: String,
        extension: Option<String>,
        cause: String,
    ) -> Result<(), String> {
        new::Host::bind_device(self, device, extension, cause)
    }
    fn device_binding(&mut self, device: String) -> Option<String> {
        new::Host::device_binding(self, device)
    }
    fn annotate(&mut self, note: String) {
        new::Host::annotate(self, note)
    }
    fn log(&mut self, level: old::Level, message: String) {
        let level = match level {
            old::Level::Debug => new::Level::Debug,
            old::Level::Info => new::Level::Info,
            old::Level::Warn => new::Level::Warn,
            old::Level::Error => new::Level::Error,
        };
        new::Host::log(self, level, message)
    }
}

/// The 0.2.0 form of a point; `None` for points 0.2.0 does not have.
pub fn point(p: wit::DecisionPoint) -> Option<t::DecisionPoint> {
    Some(match p {
        wit::DecisionPoint::Originate => t::DecisionPoint::Originate,
        wit::DecisionPoint::Incoming => t::DecisionPoint::Incoming,
        wit::DecisionPoint::GroupMembers => t::DecisionPoint::GroupMembers,
        wit::DecisionPoint::Failure => t::DecisionPoint::Failure,
        wit::DecisionPoint::Event => t::DecisionPoint::Event,
        wit::DecisionPoint::Collected => return None,
    })
}

/// A 0.2.0 point as 0.3.0 knows it.
pub fn point_up(p: t::DecisionPoint) -> wit::DecisionPoint {
    match p {
        t::DecisionPoint::Originate => wit::DecisionPoint::Originate,
        t::DecisionPoint::Incoming => wit::DecisionPoint::Incoming,
        t::DecisionPoint::GroupMembers => wit::DecisionPoint::GroupMembers,
        t::DecisionPoint::Failure => wit::DecisionPoint::Failure,
        t::DecisionPoint::Event => wit::DecisionPoint::Event,
    }
}

fn call(c: &wit::CallInfo) -> t::CallInfo {
    t::CallInfo {
        call_id: c.call_id.clone(),
        caller: t::Party {
            id: c.caller.id.clone(),
            display_name: c.caller.display_name.clone(),
            internal: c.caller.internal,
        },
        dialed: c.dialed.clone(),
        direction: match c.direction {
            wit::Direction::Internal => t::Direction::Internal,
            wit::Direction::Inbound => t::Direction::Inbound,
            wit::Direction::Outbound => t::Direction::Outbound,
        },
        attempt: c.attempt,
        history: c.history.clone(),
        device: c.device.clone(),
        referred_by: c.referred_by.clone(),
    }
}

/// The 0.2.0 form of an input (what 0.3.0 added is left out).
pub fn input(i: &wit::PointInput) -> t::PointInput {
    t::PointInput {
        call: i.call.as_ref().map(call),
        callee: i.callee.clone(),
        failure: i.failure.as_ref().map(|f| t::FailureInfo {
            reason: match f.reason {
                wit::FailureReason::NoAnswer => t::FailureReason::NoAnswer,
                wit::FailureReason::Busy => t::FailureReason::Busy,
                wit::FailureReason::Unreachable => t::FailureReason::Unreachable,
            },
            target: f.target.clone(),
            tried: f.tried.clone(),
        }),
        group: i.group.as_ref().map(|g| t::GroupInfo {
            extension: g.extension.clone(),
            members: g.members.clone(),
        }),
        event: i.event.as_ref().map(|e| t::Event {
            kind: match e.kind {
                wit::EventKind::Registered => t::EventKind::Registered,
                wit::EventKind::Unregistered => t::EventKind::Unregistered,
                wit::EventKind::Answered => t::EventKind::Answered,
                wit::EventKind::Ended => t::EventKind::Ended,
                wit::EventKind::MissedGroupCall => t::EventKind::MissedGroupCall,
                wit::EventKind::TimerFired => t::EventKind::TimerFired,
                wit::EventKind::LoggedIn => t::EventKind::LoggedIn,
                wit::EventKind::LoggedOut => t::EventKind::LoggedOut,
            },
            subject: e.subject.clone(),
            group: e.group.clone(),
            call: e.call.as_ref().map(call),
            payload: e.payload.clone(),
        }),
    }
}

/// A 0.2.0 decision as 0.3.0 has it.
pub fn decision(d: t::Decision) -> wit::Decision {
    match d {
        t::Decision::Continue => wit::Decision::Continue,
        t::Decision::Reject(r) => wit::Decision::Reject(wit::Rejection {
            status: r.status,
            reason: r.reason,
        }),
        t::Decision::Feature(f) => wit::Decision::Feature(wit::FeatureResult {
            success: f.success,
            message: f.message,
            announce: Vec::new(),
        }),
        t::Decision::Members(m) => wit::Decision::Members(m),
        t::Decision::Route(r) => wit::Decision::Route(wit::Route {
            targets: r
                .targets
                .into_iter()
                .map(|x| wit::Target {
                    destination: match x.destination {
                        t::Destination::Extension(v) => wit::Destination::Extension(v),
                        t::Destination::Device(v) => wit::Destination::Device(v),
                        t::Destination::External(v) => wit::Destination::External(v),
                        t::Destination::Voicemail(v) => wit::Destination::Voicemail(v),
                        t::Destination::Uri(v) => wit::Destination::Uri(v),
                    },
                    delay_ms: x.delay_ms,
                    ring_ms: x.ring_ms,
                })
                .collect(),
            mode: match r.mode {
                t::RingMode::Parallel => wit::RingMode::Parallel,
                t::RingMode::Sequential => wit::RingMode::Sequential,
            },
            total_ring_ms: r.total_ring_ms,
            caller_id: r.caller_id,
            caller_name: r.caller_name,
            on_failure: match r.on_failure {
                t::OnFailure::AskAgain => wit::OnFailure::AskAgain,
                t::OnFailure::Drop => wit::OnFailure::Drop,
            },
            reason: r.reason,
            diversion: r.diversion.map(|d| wit::Diversion {
                from: d.from,
                reason: match d.reason {
                    t::DiversionReason::Unconditional => wit::DiversionReason::Unconditional,
                    t::DiversionReason::UserBusy => wit::DiversionReason::UserBusy,
                    t::DiversionReason::NoAnswer => wit::DiversionReason::NoAnswer,
                    t::DiversionReason::Unavailable => wit::DiversionReason::Unavailable,
                    t::DiversionReason::TimeOfDay => wit::DiversionReason::TimeOfDay,
                    t::DiversionReason::Away => wit::DiversionReason::Away,
                    t::DiversionReason::Deflection => wit::DiversionReason::Deflection,
                    t::DiversionReason::Unknown => wit::DiversionReason::Unknown,
                },
            }),
        }),
    }
}
