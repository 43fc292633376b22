//! The decision-point pipeline as the proxy sees it: plain Rust types, no
//! wasmtime and no sockets. [`crate::plugins::PluginHost`] turns these into
//! WIT values, runs the tenant's chain, and validates what comes back.

use std::time::Duration;

use crate::directory::Extension;

/// When the router asks plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Point {
    /// A registered device dials anything.
    Originate,
    /// A call for an extension, before anything rings.
    Incoming,
    /// A hunt group call picks members.
    GroupMembers,
    /// An attempt ended without an answer.
    Failure,
    /// Something happened.
    Event,
    /// The caller answered a plugin's [`Collect`]: only that plugin is
    /// asked.
    Collected,
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// Rang out.
    NoAnswer,
    /// Busy.
    Busy,
    /// Nothing reachable.
    Unreachable,
}

/// Direction of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Extension to extension.
    Internal,
    /// From outside.
    Inbound,
    /// To an external number.
    Outbound,
}

/// A party.
#[derive(Debug, Clone)]
pub struct PartyView {
    /// Extension or number.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Whether it is an extension of the tenant.
    pub internal: bool,
}

/// The call a decision is about.
#[derive(Debug, Clone)]
pub struct CallView {
    /// Router's call id.
    pub call_id: String,
    /// Caller.
    pub caller: PartyView,
    /// What was dialed.
    pub dialed: String,
    /// Direction.
    pub direction: Direction,
    /// Failure-point round.
    pub attempt: u32,
    /// Extensions already routed to.
    pub history: Vec<String>,
    /// The device account the call comes from, when it is one.
    pub device: Option<String>,
    /// The extension in the Referred-By header (a transfer's INVITE).
    pub referred_by: Option<String>,
    /// The history id of the call the transfer's REFER was relayed in.
    pub transferred_from: Option<String>,
}

/// Kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A device registered.
    Registered,
    /// A device's registration went away.
    Unregistered,
    /// A call was answered.
    Answered,
    /// An answered call ended.
    Ended,
    /// A hunt group member missed a group call.
    MissedGroupCall,
    /// A plugin's timer fired.
    TimerFired,
    /// An employee was logged in at a hotdesk device.
    LoggedIn,
    /// An employee was logged out of a hotdesk device.
    LoggedOut,
}

/// What plugins are asked with.
#[derive(Debug, Clone)]
pub enum Input {
    /// See [`Point::Originate`].
    Originate {
        /// The call.
        call: CallView,
    },
    /// See [`Point::Incoming`].
    Incoming {
        /// The call.
        call: CallView,
        /// Called extension.
        callee: String,
    },
    /// See [`Point::GroupMembers`].
    GroupMembers {
        /// The call.
        call: CallView,
        /// The group's extension.
        group: String,
        /// Enabled members in order.
        members: Vec<String>,
    },
    /// See [`Point::Failure`].
    Failure {
        /// The call.
        call: CallView,
        /// Why.
        reason: FailureReason,
        /// For whom.
        target: String,
        /// What rang.
        tried: Vec<String>,
    },
    /// See [`Point::Event`].
    Event {
        /// What.
        kind: EventKind,
        /// Extension concerned.
        subject: Option<String>,
        /// Group concerned.
        group: Option<String>,
        /// Call concerned.
        call: Option<CallView>,
        /// Timer payload.
        payload: Option<String>,
    },
    /// Digits the caller entered in answer to a [`Collect`].
    Collected {
        /// The call.
        call: CallView,
        /// The asking plugin's context, given back.
        context: String,
        /// What was entered (`0`-`9`, `*`, and `#` unless it ended the entry).
        digits: String,
        /// How the entry ended.
        ended_by: EntryEnd,
    },
}

/// How an entry of digits ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryEnd {
    /// `#` was pressed.
    Terminator,
    /// The number of digits asked for came.
    MaxDigits,
    /// No further digit came in time.
    Timeout,
}

/// The router's recordings, by the names plugins use (a tenant may upload
/// its own under these names).
pub const RECORDINGS: &[&str] = &[
    "enter-account",
    "enter-pin",
    "logged-in-as",
    "logged-out",
    "wrong-pin",
    "not-hotdesk",
    "locked",
    "status-set",
    "try-again",
    "goodbye",
];

/// Something said to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// One of [`RECORDINGS`].
    Recording(&'static str),
    /// Digits `0`-`9`, read one by one (at most [`MAX_READ_DIGITS`]).
    Digits(String),
    /// Silence (at most [`MAX_PAUSE`]).
    Pause(Duration),
}

/// Prompts per question or announcement, at most.
pub const MAX_PROMPTS: usize = 16;
/// Digits read out by one prompt, at most.
pub const MAX_READ_DIGITS: usize = 32;
/// The longest pause.
pub const MAX_PAUSE: Duration = Duration::from_secs(5);
/// Questions per call, at most.
pub const MAX_QUESTIONS: u32 = 16;
/// A context given back with the digits, at most (bytes).
pub const MAX_CONTEXT: usize = 256;

/// A question to the caller: say the prompts, collect digits.
#[derive(Debug, Clone)]
pub struct Collect {
    /// Said first.
    pub prompts: Vec<Prompt>,
    /// Digits wanted (1-32).
    pub max_digits: u8,
    /// Whether `#` ends the entry.
    pub hash_ends: bool,
    /// Wait for each digit (1-60 s).
    pub timeout: Duration,
    /// Given back at [`Point::Collected`].
    pub context: String,
}

impl Input {
    /// The point this input is for.
    pub fn point(&self) -> Point {
        match self {
            Input::Originate { .. } => Point::Originate,
            Input::Incoming { .. } => Point::Incoming,
            Input::GroupMembers { .. } => Point::GroupMembers,
            Input::Failure { .. } => Point::Failure,
            Input::Event { .. } => Point::Event,
            Input::Collected { .. } => Point::Collected,
        }
    }

    /// The call id, for logs.
    pub fn call_id(&self) -> &str {
        match self {
            Input::Originate { call }
            | Input::Incoming { call, .. }
            | Input::GroupMembers { call, .. }
            | Input::Failure { call, .. }
            | Input::Collected { call, .. } => &call.call_id,
            Input::Event { call, .. } => call.as_ref().map(|c| c.call_id.as_str()).unwrap_or(""),
        }
    }
}

/// Where a routed target rings (validated against the tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// Employee, device account or hunt group.
    Extension(Extension),
    /// One device account.
    Device(Extension),
    /// International digits, via the trunk.
    External(String),
    /// The tenant's voicemail for this extension.
    Voicemail(Extension),
    /// A `sip:` URI.
    Uri(String),
}

/// One routed target.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// Where.
    pub dest: Dest,
    /// Wait before ringing.
    pub delay: Duration,
    /// Ring time; `None` = host default.
    pub ring: Option<Duration>,
}

/// Ring mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Together.
    Parallel,
    /// In turn.
    Sequential,
}

/// After a routed attempt fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Ask the failure point again.
    AskAgain,
    /// Give the caller the failure.
    Drop,
}

/// Why a call was diverted (RFC 5806 `reason` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiversionReason {
    /// Forward always.
    Unconditional,
    /// Busy.
    UserBusy,
    /// No answer.
    NoAnswer,
    /// Unreachable.
    Unavailable,
    /// Outside working hours.
    TimeOfDay,
    /// Absent.
    Away,
    /// Delegation.
    Deflection,
    /// Other.
    Unknown,
}

impl DiversionReason {
    /// The `reason` parameter value of a Diversion header.
    pub fn as_str(self) -> &'static str {
        match self {
            DiversionReason::Unconditional => "unconditional",
            DiversionReason::UserBusy => "user-busy",
            DiversionReason::NoAnswer => "no-answer",
            DiversionReason::Unavailable => "unavailable",
            DiversionReason::TimeOfDay => "time-of-day",
            DiversionReason::Away => "away",
            DiversionReason::Deflection => "deflection",
            DiversionReason::Unknown => "unknown",
        }
    }
}

/// A diversion of a call away from an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diversion {
    /// The extension the call was for.
    pub from: Extension,
    /// Why.
    pub reason: DiversionReason,
}

/// Most diversions one call may go through (RFC 5806 `counter`).
pub const MAX_DIVERSIONS: usize = 5;

/// A validated route decision.
#[derive(Debug, Clone)]
pub struct RouteDecision {
    /// At most [`MAX_TARGETS`].
    pub targets: Vec<TargetSpec>,
    /// Ring mode.
    pub mode: Mode,
    /// Total ring time; `None` = host default.
    pub total_ring: Option<Duration>,
    /// Caller ID to present.
    pub caller_id: Option<String>,
    /// Display name to present.
    pub caller_name: Option<String>,
    /// What happens on failure.
    pub on_failure: OnFailure,
    /// Why (history).
    pub reason: Option<String>,
    /// The diversion this route makes, if it diverts.
    pub diversion: Option<Diversion>,
}

/// Most targets one decision may name.
pub const MAX_TARGETS: usize = 16;

/// A validated decision.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Host default.
    Continue,
    /// Ring these.
    Route(RouteDecision),
    /// Refuse with a status (400-699) and reason.
    Reject {
        /// Status.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// Answer a feature code.
    Feature {
        /// Worked?
        success: bool,
        /// Display text.
        message: String,
        /// Said before hanging up when the call has audio.
        announce: Vec<Prompt>,
    },
    /// Members to offer a group call to, in order.
    Members(Vec<String>),
    /// Answer with audio and ask for digits.
    Collect(Collect),
}

/// A decision and what came with it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The first non-continue decision of the chain, or continue.
    pub decision: Decision,
    /// The plugin that decided.
    pub decided_by: Option<String>,
    /// History notes added by the plugins that ran.
    pub annotations: Vec<String>,
}

impl Verdict {
    /// Nobody decided.
    pub fn none() -> Verdict {
        Verdict {
            decision: Decision::Continue,
            decided_by: None,
            annotations: Vec::new(),
        }
    }
}
