//! A test bench for plugin authors: runs one component against scripted
//! decision inputs without a router. No SIP, no sockets: the plugin runtime
//! itself ([`PluginHost`]) over a scratch SQLite file holding the script's
//! tenant, so a plugin meets exactly the host functions, limits, decision
//! checks and fault reasons it meets in production. What only a running
//! router knows (who is registered, who is on a call) comes from the
//! script.
//!
//! A script is JSON:
//!
//! ```json
//! {
//!   "tenant": {"time_zone": "Europe/London"},
//!   "clock": "2026-12-07T09:30:00Z",
//!   "employees": [{"extension": "2001", "name": "Alice", "mobile": "447700900001"}],
//!   "devices": [{"username": "5401"}],
//!   "hunt_groups": [{"extension": "2100", "name": "Sales", "members": ["2001"]}],
//!   "presence": {"2001": {"registered": true, "active_calls": 0}},
//!   "settings": {"tenant": {"blocked": ["2003"]}},
//!   "steps": [
//!     {"name": "a blocked caller is declined",
//!      "point": "incoming", "call": {"caller": "2003", "dialed": "2001"}, "callee": "2001",
//!      "expect": {"reject": {"status": 603}}}
//!   ]
//! }
//! ```
//!
//! `employees`, `devices` and `hunt_groups` take the admin API's fields
//! (passwords default; a device's `owner` and a group's `members` are
//! extensions). `expect` matches the decision as JSON: every key it gives
//! must be there with that value (objects recursively, lists exactly), so
//! a step states only what it is about. `"fault": "..."` expects a fault
//! whose reason contains that text. `advance_s` moves the tenant clock
//! before the step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{PluginConfig, PluginError, PluginHost, Presence};
use crate::directory::provision::{self, NewDevice, NewEmployee, NewHuntGroup, NewTenant};
use crate::directory::{Directory, Entry, TenantDirectory};
use crate::pipeline::{
    CallView, Decision, Dest, Direction, EventKind, FailureReason, Input, Mode, OnFailure,
    PartyView,
};
use crate::store::Store;

/// Why a script could not be run (as opposed to a step not matching).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The script is not what the harness reads; names the field.
    #[error("script: {0}")]
    Script(String),
    /// The plugin was refused at upload or refused the script's settings.
    #[error("plugin: {0}")]
    Plugin(#[from] PluginError),
    /// Setting up the scratch tenant failed.
    #[error("setup: {0}")]
    Setup(String),
}

fn script_err(what: impl std::fmt::Display) -> HarnessError {
    HarnessError::Script(what.to_string())
}

/// A whole script.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// The tenant's settings (the admin API's tenant fields but domain and
    /// name, which default).
    #[serde(default)]
    pub tenant: ScriptTenant,
    /// The tenant clock at the first step (RFC 3339); default now.
    #[serde(default)]
    pub clock: Option<String>,
    /// Employees, as the admin API creates them.
    #[serde(default)]
    pub employees: Vec<Value>,
    /// Device accounts; `owner` is an employee's extension.
    #[serde(default)]
    pub devices: Vec<Value>,
    /// Hunt groups; `members` are extensions in ring order.
    #[serde(default)]
    pub hunt_groups: Vec<Value>,
    /// Who is registered and on calls, by extension.
    #[serde(default)]
    pub presence: HashMap<String, ScriptPresence>,
    /// The plugin's settings by scope (`tenant`, `employee:2001`), each
    /// checked by the plugin's `validate-settings` as an upload would be.
    #[serde(default)]
    pub settings: serde_json::Map<String, Value>,
    /// The decisions to ask for, in order; state the plugin keeps (its
    /// key-value store, statuses, hotdesk bindings) carries over.
    pub steps: Vec<Step>,
}

/// The script's tenant.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptTenant {
    /// IANA time zone; default UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Trunk URI, for routes to numbers.
    #[serde(default)]
    pub trunk_uri: Option<String>,
    /// Voicemail URI, for routes to voicemail.
    #[serde(default)]
    pub voicemail_uri: Option<String>,
    /// Whether an employee on a call counts as busy; default true.
    #[serde(default)]
    pub busy_on_active_call: Option<bool>,
}

/// What a running router would know about an extension.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptPresence {
    /// Registered at all (own account, devices, hotdesk).
    #[serde(default)]
    pub registered: bool,
    /// Registered from their own account or devices; default as
    /// `registered`.
    #[serde(default)]
    pub home_registered: Option<bool>,
    /// Answered calls in progress.
    #[serde(default)]
    pub active_calls: u32,
}

/// One decision to ask for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// What the step shows, for the report.
    #[serde(default)]
    pub name: Option<String>,
    /// Seconds to move the tenant clock forward first.
    #[serde(default)]
    pub advance_s: u64,
    /// `originate`, `incoming`, `group-members`, `failure`, `event` or
    /// `collected`.
    pub point: String,
    /// The call (every point but some events).
    #[serde(default)]
    pub call: Option<ScriptCall>,
    /// `incoming`: the called extension; default the dialed one.
    #[serde(default)]
    pub callee: Option<String>,
    /// `group-members`: the group's extension.
    #[serde(default)]
    pub group: Option<String>,
    /// `group-members`: enabled members in order; default the group's.
    #[serde(default)]
    pub members: Option<Vec<String>>,
    /// `failure`: `no-answer`, `busy` or `unreachable`.
    #[serde(default)]
    pub reason: Option<String>,
    /// `failure`: for whom; default the dialed extension.
    #[serde(default)]
    pub target: Option<String>,
    /// `failure`: what rang.
    #[serde(default)]
    pub tried: Vec<String>,
    /// `event`: its kind (`registered`, `answered`, `timer-fired`, ...).
    #[serde(default)]
    pub kind: Option<String>,
    /// `event`: the extension concerned.
    #[serde(default)]
    pub subject: Option<String>,
    /// `event`: a timer's payload.
    #[serde(default)]
    pub payload: Option<String>,
    /// `collected`: the context the plugin's `collect` gave.
    #[serde(default)]
    pub context: Option<String>,
    /// `collected`: what the caller entered.
    #[serde(default)]
    pub digits: Option<String>,
    /// `collected`: `terminator` (default), `max-digits` or `timeout`.
    #[serde(default)]
    pub ended_by: Option<String>,
    /// What the decision must look like (see the module docs).
    #[serde(default)]
    pub expect: Option<Value>,
}

/// A call as a step gives it; everything but `caller` and `dialed` defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptCall {
    /// Caller's extension or number.
    pub caller: String,
    /// Caller's display name.
    #[serde(default)]
    pub caller_name: Option<String>,
    /// What was dialed.
    pub dialed: String,
    /// `internal`, `inbound` or `outbound`; default internal when the
    /// caller is an extension of the tenant, else inbound.
    #[serde(default)]
    pub direction: Option<String>,
    /// Failure rounds so far.
    #[serde(default)]
    pub attempt: u32,
    /// Extensions already routed to.
    #[serde(default)]
    pub history: Vec<String>,
    /// The device account calling, when it is one.
    #[serde(default)]
    pub device: Option<String>,
    /// A verified transferor.
    #[serde(default)]
    pub referred_by: Option<String>,
    /// The call the transfer came out of.
    #[serde(default)]
    pub transferred_from: Option<String>,
    /// The call's id; default `call-<step>`.
    #[serde(default)]
    pub call_id: Option<String>,
}

/// What one step did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    /// The step's name, or its number.
    pub name: String,
    /// The decision as JSON (`"continue"`, `{"route": ...}`, ...).
    pub decision: Value,
    /// History notes the plugin added.
    pub annotations: Vec<String>,
    /// The fault's reason, when the plugin faulted.
    pub fault: Option<String>,
    /// Why the step did not match its `expect`, if it did not.
    pub mismatch: Option<String>,
}

impl StepReport {
    /// Whether the step matched what it expected (or expected nothing).
    pub fn passed(&self) -> bool {
        self.mismatch.is_none()
    }
}

/// Presence as the script says.
#[derive(Debug, Default)]
struct ScriptedPresence(HashMap<String, ScriptPresence>);

impl Presence for ScriptedPresence {
    fn is_registered(&self, _: i64, ext: &str) -> bool {
        self.0.get(ext).is_some_and(|p| p.registered)
    }
    fn home_registered(&self, _: i64, ext: &str) -> bool {
        self.0
            .get(ext)
            .is_some_and(|p| p.home_registered.unwrap_or(p.registered))
    }
    fn active_calls(&self, _: i64, ext: &str) -> u32 {
        self.0.get(ext).map_or(0, |p| p.active_calls)
    }
}

/// Name the plugin under test has in the scratch tenant.
const UNDER_TEST: &str = "under-test";

/// A plugin loaded into a scratch tenant, ready to be asked.
pub struct Harness {
    host: Arc<PluginHost>,
    directory: Arc<Directory>,
    tenant_id: i64,
    // Holds the scratch database until the harness is dropped.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("tenant_id", &self.tenant_id)
            .finish()
    }
}

impl Harness {
    /// Parses a script.
    pub fn parse(json: &str) -> Result<Script, HarnessError> {
        serde_json::from_str(json).map_err(script_err)
    }

    /// Sets up the script's tenant and loads `wasm` into it as its only
    /// plugin, with the script's settings (each validated by the plugin).
    /// `config` gives the sandbox limits (the router's defaults when
    /// `None`).
    pub async fn new(
        wasm: &[u8],
        script: &Script,
        config: Option<PluginConfig>,
    ) -> Result<Harness, HarnessError> {
        let dir = tempfile::tempdir().map_err(|e| HarnessError::Setup(e.to_string()))?;
        let url = format!("sqlite://{}", dir.path().join("harness.db").display());
        let store = Store::open(&url)
            .await
            .map_err(|e| HarnessError::Setup(e.to_string()))?;
        let directory = Arc::new(
            Directory::load(store.clone(), None)
                .await
                .map_err(|e| HarnessError::Setup(e.to_string()))?,
        );
        let t = &script.tenant;
        let tenant_id = provision::create_tenant(
            &store,
            &NewTenant {
                domain: "harness.test".into(),
                name: "Plugin test".into(),
                time_zone: t.time_zone.clone(),
                trunk_uri: t.trunk_uri.clone(),
                voicemail_uri: t.voicemail_uri.clone(),
                hotdesk_first: None,
                hotdesk_last: None,
                busy_on_active_call: t.busy_on_active_call.unwrap_or(true),
            },
        )
        .await
        .map_err(|e| script_err(format!("tenant: {e}")))?;
        populate(&store, &directory, script).await?;
        let config = config.unwrap_or_else(|| PluginConfig {
            cache_dir: Some(std::env::temp_dir().join("switchboard-harness-cache")),
            ..PluginConfig::default()
        });
        let presence = Arc::new(ScriptedPresence(script.presence.clone()));
        let host = PluginHost::start(config, store, directory.clone(), presence).await?;
        host.store_plugin(UNDER_TEST, wasm, Some(tenant_id)).await?;
        let tenant = directory
            .snapshot()
            .by_id(tenant_id)
            .cloned()
            .ok_or_else(|| HarnessError::Setup("the scratch tenant vanished".into()))?;
        for (scope, doc) in &script.settings {
            host.set_settings(&tenant, UNDER_TEST, scope, &doc.to_string())
                .await
                .map_err(|e| script_err(format!("settings.{scope}: {e}")))?;
        }
        host.set_chain(tenant_id, &[(UNDER_TEST.to_owned(), true)])
            .await?;
        if let Some(clock) = &script.clock {
            let at = chrono::DateTime::parse_from_rfc3339(clock)
                .map_err(|e| script_err(format!("clock: `{clock}` is not RFC 3339: {e}")))?;
            host.state().set_clock(at.timestamp_millis());
        }
        Ok(Harness {
            host,
            directory,
            tenant_id,
            _dir: dir,
        })
    }

    /// Runs every step of `script` in order.
    pub fn run(&self, script: &Script) -> Result<Vec<StepReport>, HarnessError> {
        script
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| self.step(i + 1, step))
            .collect()
    }

    /// Asks the plugin one step's decision and checks it.
    pub fn step(&self, number: usize, step: &Step) -> Result<StepReport, HarnessError> {
        let tenant = self.tenant()?;
        let name = step
            .name
            .clone()
            .unwrap_or_else(|| format!("step {number}"));
        if step.advance_s > 0 {
            self.host
                .state()
                .advance_clock(Duration::from_secs(step.advance_s));
        }
        let input = input(&tenant, number, step).map_err(|e| script_err(format!("{name}: {e}")))?;
        let faults_before = self.host.recent_faults(self.tenant_id, UNDER_TEST).len();
        let verdict = self.host.decide(&tenant, &input);
        let faults = self.host.recent_faults(self.tenant_id, UNDER_TEST);
        let fault = (faults.len() > faults_before)
            .then(|| faults.last().map(|f| f.reason.clone()))
            .flatten();
        let decision = decision_json(&verdict.decision);
        let mismatch = step
            .expect
            .as_ref()
            .and_then(|want| check(want, &decision, fault.as_deref()));
        Ok(StepReport {
            name,
            decision,
            annotations: verdict.annotations,
            fault,
            mismatch,
        })
    }

    /// What the plugin keeps in its key-value store now.
    pub fn kv(&self) -> Vec<(String, String)> {
        self.host.state().kv_all(self.tenant_id, UNDER_TEST)
    }

    /// Instances of the plugin ready for its next decision.
    pub fn ready_instances(&self) -> usize {
        self.host.idle_instances(self.tenant_id, UNDER_TEST)
    }

    /// The runtime under test, for what the script format does not cover.
    pub fn host(&self) -> &Arc<PluginHost> {
        &self.host
    }

    fn tenant(&self) -> Result<Arc<TenantDirectory>, HarnessError> {
        self.directory
            .snapshot()
            .by_id(self.tenant_id)
            .cloned()
            .ok_or_else(|| HarnessError::Setup("the scratch tenant vanished".into()))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.host.stop();
    }
}

/// Creates the script's employees, devices and hunt groups.
async fn populate(
    store: &Store,
    directory: &Directory,
    script: &Script,
) -> Result<(), HarnessError> {
    let reload = || async {
        directory
            .reload()
            .await
            .map_err(|e| HarnessError::Setup(e.to_string()))?;
        directory
            .tenant_for("harness.test")
            .ok_or_else(|| HarnessError::Setup("the scratch tenant vanished".into()))
    };
    let mut t = reload().await?;
    for (i, e) in script.employees.iter().enumerate() {
        let mut e = e.clone();
        if let Some(m) = e.as_object_mut() {
            m.entry("password").or_insert(json!("harness-password"));
        }
        let new: NewEmployee = serde_json::from_value(e)
            .map_err(|err| script_err(format!("employees[{i}]: {err}")))?;
        provision::create_employee(store, &t, &new)
            .await
            .map_err(|err| script_err(format!("employees[{i}]: {err}")))?;
        t = reload().await?;
    }
    let id_of = |t: &TenantDirectory, field: &str, ext: &Value| -> Result<i64, HarnessError> {
        let ext = ext.as_str().unwrap_or_default();
        t.employee_by_extension(ext)
            .map(|e| e.id)
            .ok_or_else(|| script_err(format!("{field}: no employee has extension `{ext}`")))
    };
    for (i, d) in script.devices.iter().enumerate() {
        let mut d = d.clone();
        if let Some(m) = d.as_object_mut() {
            m.entry("password").or_insert(json!("harness-password"));
            if let Some(owner) = m.remove("owner") {
                let id = id_of(&t, &format!("devices[{i}].owner"), &owner)?;
                m.insert("employee_id".into(), json!(id));
            }
        }
        let new: NewDevice =
            serde_json::from_value(d).map_err(|err| script_err(format!("devices[{i}]: {err}")))?;
        provision::create_device(store, &t, &new)
            .await
            .map_err(|err| script_err(format!("devices[{i}]: {err}")))?;
        t = reload().await?;
    }
    for (i, g) in script.hunt_groups.iter().enumerate() {
        let mut g = g.clone();
        if let Some(m) = g.as_object_mut() {
            if let Some(Value::Array(members)) = m.remove("members") {
                let ids = members
                    .iter()
                    .enumerate()
                    .map(|(j, x)| id_of(&t, &format!("hunt_groups[{i}].members[{j}]"), x))
                    .collect::<Result<Vec<i64>, _>>()?;
                m.insert("members".into(), json!(ids));
            }
        }
        let new: NewHuntGroup = serde_json::from_value(g)
            .map_err(|err| script_err(format!("hunt_groups[{i}]: {err}")))?;
        provision::create_hunt_group(store, &t, &new)
            .await
            .map_err(|err| script_err(format!("hunt_groups[{i}]: {err}")))?;
        t = reload().await?;
    }
    Ok(())
}

/// The pipeline input a step describes.
fn input(tenant: &TenantDirectory, number: usize, s: &Step) -> Result<Input, String> {
    let call = match &s.call {
        Some(c) => Some(CallView {
            call_id: c
                .call_id
                .clone()
                .unwrap_or_else(|| format!("call-{number}")),
            caller: PartyView {
                id: c.caller.clone(),
                name: c.caller_name.clone(),
                internal: tenant.resolve(&c.caller).is_some(),
            },
            dialed: c.dialed.clone(),
            direction: match c.direction.as_deref() {
                None if tenant.resolve(&c.caller).is_some() => Direction::Internal,
                None => Direction::Inbound,
                Some("internal") => Direction::Internal,
                Some("inbound") => Direction::Inbound,
                Some("outbound") => Direction::Outbound,
                Some(other) => {
                    return Err(format!(
                        "call.direction: `{other}` is not internal, inbound or outbound"
                    ))
                }
            },
            attempt: c.attempt,
            history: c.history.clone(),
            device: c.device.clone(),
            referred_by: c.referred_by.clone(),
            transferred_from: c.transferred_from.clone(),
        }),
        None => None,
    };
    let need_call = || {
        call.clone()
            .ok_or_else(|| format!("point `{}` needs a call", s.point))
    };
    Ok(match s.point.as_str() {
        "originate" => Input::Originate { call: need_call()? },
        "incoming" => {
            let call = need_call()?;
            let callee = s.callee.clone().unwrap_or_else(|| call.dialed.clone());
            Input::Incoming { call, callee }
        }
        "group-members" => {
            let call = need_call()?;
            let group = s.group.clone().unwrap_or_else(|| call.dialed.clone());
            let members = match &s.members {
                Some(m) => m.clone(),
                None => enabled_members(tenant, &group)
                    .ok_or_else(|| format!("group: `{group}` is not a hunt group"))?,
            };
            Input::GroupMembers {
                call,
                group,
                members,
            }
        }
        "failure" => {
            let call = need_call()?;
            let reason = match s.reason.as_deref() {
                Some("no-answer") | None => FailureReason::NoAnswer,
                Some("busy") => FailureReason::Busy,
                Some("unreachable") => FailureReason::Unreachable,
                Some(other) => {
                    return Err(format!(
                        "reason: `{other}` is not no-answer, busy or unreachable"
                    ))
                }
            };
            let target = s.target.clone().unwrap_or_else(|| call.dialed.clone());
            Input::Failure {
                call,
                reason,
                target,
                tried: s.tried.clone(),
            }
        }
        "event" => {
            let kind = match s.kind.as_deref().unwrap_or_default() {
                "registered" => EventKind::Registered,
                "unregistered" => EventKind::Unregistered,
                "answered" => EventKind::Answered,
                "ended" => EventKind::Ended,
                "missed-group-call" => EventKind::MissedGroupCall,
                "timer-fired" => EventKind::TimerFired,
                "logged-in" => EventKind::LoggedIn,
                "logged-out" => EventKind::LoggedOut,
                other => return Err(format!("kind: `{other}` is not an event kind")),
            };
            Input::Event {
                kind,
                subject: s.subject.clone(),
                group: s.group.clone(),
                call,
                payload: s.payload.clone(),
            }
        }
        "collected" => {
            let ended_by = match s.ended_by.as_deref().unwrap_or("terminator") {
                "terminator" => crate::pipeline::EntryEnd::Terminator,
                "max-digits" => crate::pipeline::EntryEnd::MaxDigits,
                "timeout" => crate::pipeline::EntryEnd::Timeout,
                other => {
                    return Err(format!(
                        "ended_by: `{other}` is not terminator, max-digits or timeout"
                    ))
                }
            };
            Input::Collected {
                call: need_call()?,
                context: s.context.clone().unwrap_or_default(),
                digits: s.digits.clone().unwrap_or_default(),
                ended_by,
            }
        }
        other => {
            return Err(format!(
                "point: `{other}` is not originate, incoming, group-members, failure, event or collected"
            ))
        }
    })
}

/// A hunt group's enabled members in ring order, as the router offers them.
fn enabled_members(tenant: &TenantDirectory, group: &str) -> Option<Vec<String>> {
    let Some(Entry::Group(id)) = tenant.resolve(group) else {
        return None;
    };
    let g = tenant.groups.get(&id)?;
    Some(
        g.members
            .iter()
            .filter(|m| m.enabled)
            .filter_map(|m| tenant.employees.get(&m.employee_id))
            .map(|e| e.extension.to_string())
            .collect(),
    )
}

/// Prompts as `expect` spells them: `{"recording": "enter-pin"}`,
/// `{"digits": "2003"}`, `{"pause": 500}`.
fn prompts_json(list: &[crate::pipeline::Prompt]) -> Value {
    use crate::pipeline::Prompt;
    list.iter()
        .map(|p| match p {
            Prompt::Recording(r) => json!({ "recording": r }),
            Prompt::Digits(d) => json!({ "digits": d }),
            Prompt::Pause(d) => json!({ "pause": d.as_millis() as u64 }),
        })
        .collect()
}

/// A decision as the reports and `expect` spell it: WIT names, kebab-case.
pub fn decision_json(d: &Decision) -> Value {
    match d {
        Decision::Continue => json!("continue"),
        Decision::Reject { status, reason } => {
            json!({"reject": {"status": status, "reason": reason}})
        }
        Decision::Feature {
            success,
            message,
            announce,
        } => {
            json!({"feature": {"success": success, "message": message, "announce": prompts_json(announce)}})
        }
        Decision::Collect(c) => json!({"collect": {
            "prompts": prompts_json(&c.prompts),
            "max-digits": c.max_digits,
            "hash-ends": c.hash_ends,
            "timeout-ms": c.timeout.as_millis() as u64,
            "context": c.context,
        }}),
        Decision::Members(m) => json!({ "members": m }),
        Decision::Route(r) => {
            let targets: Vec<Value> = r
                .targets
                .iter()
                .map(|t| {
                    let (kind, to) = match &t.dest {
                        Dest::Extension(x) => ("extension", x.to_string()),
                        Dest::Device(x) => ("device", x.to_string()),
                        Dest::External(n) => ("external", n.clone()),
                        Dest::Voicemail(x) => ("voicemail", x.to_string()),
                        Dest::Uri(u) => ("uri", u.clone()),
                    };
                    json!({
                        kind: to,
                        "delay-ms": t.delay.as_millis() as u64,
                        "ring-ms": t.ring.map_or(0, |r| r.as_millis() as u64),
                    })
                })
                .collect();
            json!({"route": {
                "targets": targets,
                "mode": match r.mode { Mode::Parallel => "parallel", Mode::Sequential => "sequential" },
                "total-ring-ms": r.total_ring.map_or(0, |d| d.as_millis() as u64),
                "caller-id": r.caller_id,
                "caller-name": r.caller_name,
                "on-failure": match r.on_failure { OnFailure::AskAgain => "ask-again", OnFailure::Drop => "drop" },
                "reason": r.reason,
                "diversion": r.diversion.as_ref().map(|d| json!({"from": d.from.to_string(), "reason": d.reason.as_str()})),
            }})
        }
    }
}

/// Why `got` does not match `want`, or `None` when it does.
fn check(want: &Value, got: &Value, fault: Option<&str>) -> Option<String> {
    if let Some(text) = want.get("fault") {
        let text = text.as_str().unwrap_or_default();
        return match fault {
            Some(f) if f.contains(text) => None,
            Some(f) => Some(format!(
                "expected a fault with `{text}`, got the fault `{f}`"
            )),
            None => Some(format!("expected a fault with `{text}`, got {got}")),
        };
    }
    if let Some(f) = fault {
        return Some(format!("the plugin faulted: {f}"));
    }
    matches(want, got, "decision").err()
}

fn matches(want: &Value, got: &Value, path: &str) -> Result<(), String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let here = format!("{path}.{k}");
                match g.get(k) {
                    Some(gv) => matches(wv, gv, &here)?,
                    None => return Err(format!("{here}: expected {wv}, got nothing (in {got})")),
                }
            }
            Ok(())
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => w
            .iter()
            .zip(g)
            .enumerate()
            .try_for_each(|(i, (wv, gv))| matches(wv, gv, &format!("{path}[{i}]"))),
        _ if want == got => Ok(()),
        _ => Err(format!("{path}: expected {want}, got {got}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_states_only_what_it_is_about() {
        let got = json!({"reject": {"status": 603, "reason": "Decline"}});
        assert!(matches(&json!({"reject": {"status": 603}}), &got, "decision").is_ok());
        let e = matches(&json!({"reject": {"status": 486}}), &got, "decision").unwrap_err();
        assert_eq!(e, "decision.reject.status: expected 486, got 603");
    }

    #[test]
    fn lists_in_expect_match_whole() {
        let got = json!({"members": ["2002", "2003"]});
        assert!(matches(&json!({"members": ["2002"]}), &got, "d").is_err());
        assert!(matches(&json!({"members": ["2002", "2003"]}), &got, "d").is_ok());
    }

    #[test]
    fn a_fault_fails_a_step_that_expected_a_decision() {
        let why = check(&json!("continue"), &json!("continue"), Some("panicked: x"));
        assert_eq!(why.as_deref(), Some("the plugin faulted: panicked: x"));
    }
}
