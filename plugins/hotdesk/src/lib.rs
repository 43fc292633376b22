//! Hotdesking (seeds 000 and 004), written against the WIT contract only.
//!
//! A phone registered with a hotdesk device account (the tenant's hotdesk
//! range, default 5400-5499, owned by nobody) belongs to nobody until
//! someone logs in at it:
//!
//! - `*88*<extension>*<PIN>` (a trailing `#` is allowed) logs the employee
//!   in with their voicemail PIN. The phone gets `200 Logged in as 2001
//!   Alice`, or `403` with the reason (`Wrong PIN`, `Unknown extension`,
//!   `Not a hotdesk phone`, `Too many wrong PINs, try later`). The host
//!   locks an extension for 10 minutes after 5 wrong PINs.
//! - `*88` alone (seed 000) is the spoken login: the router answers and
//!   asks for the account number, then the PIN, each ended by `#`; a wrong
//!   PIN may be tried again twice in the same call; the caller hears
//!   "You are logged in as 2 0 0 3" (or why not) and the router hangs up.
//!   The same host checks and lock apply.
//! - `*89` logs out whoever is logged in at the phone, and says so when
//!   the phone offered audio.
//!
//! While logged in, the host rings the device for the employee and presents
//! its calls as theirs. Logins made over HTTP reach this plugin as
//! `logged-in` events, so the timeouts below apply to them too.
//!
//! Automatic log-out:
//! - idle timeout (seed 004): employees with a PIN and forced login, whose
//!   `idle_period_s` (1-99999, off when absent) is set, are logged out after
//!   that long without call activity. Answered calls, hang-ups and calls
//!   they make count; ringing does not. A timer that fires during a call
//!   waits for the next period.
//! - remote hot-desker: when an employee logged in here loses their home
//!   (their own account and the devices they own all unregister), they are
//!   logged out after `remote_logout_s` (default 86400 = 24 h) unless home
//!   comes back first.
//!
//! Settings:
//! - scope `tenant`: `{"remote_logout_s": 86400}` (1-604800).
//! - scope `employee:<ext>`: `{"idle_period_s": 600}` (1-99999, or null).
//!
//! The PIN is never logged: log lines name the extension and device only.

use serde_json::{json, Value};
use switchboard_plugin::host;
use switchboard_plugin::*;

/// Default `remote_logout_s`: 24 hours (seed 004).
const REMOTE_LOGOUT_DEFAULT_S: u64 = 24 * 3600;
/// Longest `remote_logout_s`: the host's timer limit (7 days).
const REMOTE_LOGOUT_MAX_S: u64 = 7 * 24 * 3600;
/// Login Idle Period bounds (seed 004).
const IDLE_MIN_S: u64 = 1;
const IDLE_MAX_S: u64 = 99_999;

struct Hotdesk;

fn feature(success: bool, message: &str) -> Decision {
    Decision::feature(success, message.chars().take(64).collect::<String>())
}

fn login_key(ext: &str) -> String {
    format!("login:{ext}")
}

/// The plugin's record of a login: device, generation (login time, to tell
/// a stale timer from the current login's), last call activity, and the
/// timers armed for it.
fn load_login(ext: &str) -> Option<Value> {
    host::kv_get(&login_key(ext)).and_then(|s| serde_json::from_str(&s).ok())
}

fn save_login(ext: &str, v: &Value) {
    if let Err(e) = host::kv_set(&login_key(ext), &v.to_string()) {
        error!("login of {ext} not saved: {e}");
    }
}

fn forget_login(ext: &str) {
    if let Some(v) = load_login(ext) {
        for t in ["idle_timer", "remote_timer"] {
            if let Some(id) = v[t].as_u64() {
                host::cancel_timer(id);
            }
        }
    }
    host::kv_delete(&login_key(ext));
}

fn employee_setting(ext: &str) -> Value {
    host::setting(&format!("employee:{ext}"))
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
}

/// The idle period that applies to an employee, in seconds: only with a
/// PIN, forced login and a period set.
fn idle_period_s(ext: &str) -> Option<u64> {
    let e = host::find_employee(ext)?;
    if !(e.has_pin && e.forced_login) {
        return None;
    }
    employee_setting(ext)["idle_period_s"].as_u64()
}

fn remote_logout_s() -> u64 {
    host::setting("tenant")
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v["remote_logout_s"].as_u64())
        .unwrap_or(REMOTE_LOGOUT_DEFAULT_S)
}

fn arm_idle(ext: &str, login: &mut Value, after_ms: u64) {
    if let Some(id) = login["idle_timer"].as_u64() {
        host::cancel_timer(id);
    }
    let gen = login["gen"].as_u64().unwrap_or(0);
    let id = host::set_timer(after_ms, &format!("idle {ext} {gen}"));
    login["idle_timer"] = json!(id);
}

/// `*88*2001*1234` -> ("2001", "1234").
fn parse_login(rest: &str) -> Option<(&str, &str)> {
    let rest = rest.strip_prefix('*')?;
    let (ext, pin) = rest.split_once('*')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit());
    (digits(ext) && digits(pin)).then_some((ext, pin))
}

fn hotdesk_device(call: &CallInfo) -> Option<String> {
    let dev = call.device.as_deref()?;
    host::find_device(dev)
        .filter(|d| d.hotdesk)
        .map(|d| d.username)
}

/// PIN tries in one spoken login (the host's lock counts them all).
const SPOKEN_PIN_TRIES: u32 = 3;
/// Account numbers asked for in one spoken login.
const SPOKEN_ACCOUNT_TRIES: u32 = 2;
/// How long the spoken login waits for each digit.
const ENTRY_TIMEOUT_MS: u32 = 6000;

fn ask_account(tries: u32, first: Prompt) -> Decision {
    Collect::digits(
        vec![first, Prompt::say("enter-account")],
        16,
        format!("account:{tries}"),
    )
    .waiting(ENTRY_TIMEOUT_MS)
    .ask()
}

fn ask_pin(ext: &str, tries: u32, first: Option<Prompt>) -> Decision {
    let mut prompts: Vec<Prompt> = first.into_iter().collect();
    prompts.push(Prompt::say("enter-pin"));
    Collect::digits(prompts, 16, format!("pin:{tries}:{ext}"))
        .waiting(ENTRY_TIMEOUT_MS)
        .ask()
}

fn saying(success: bool, message: &str, prompts: Vec<Prompt>) -> Decision {
    Decision::feature_saying(success, message.chars().take(64).collect::<String>(), prompts)
}

/// `*88` alone: the first question.
fn spoken_login(call: &CallInfo) -> Decision {
    if hotdesk_device(call).is_none() {
        return feature(false, "Not a hotdesk phone");
    }
    Collect::digits(vec![Prompt::say("enter-account")], 16, "account:1")
        .waiting(ENTRY_TIMEOUT_MS)
        .ask()
}

/// An answer in the spoken login: `context` says which question it was.
fn spoken_answer(call: &CallInfo, got: &CollectedDigits) -> Decision {
    let Some(device) = hotdesk_device(call) else {
        return saying(false, "Not a hotdesk phone", vec![Prompt::say("not-hotdesk")]);
    };
    let digits = got.digits.as_str();
    let bye = |message: &str, why: &str| {
        saying(false, message, vec![Prompt::say(why), Prompt::say("goodbye")])
    };
    if let Some(tries) = got.context.strip_prefix("account:") {
        let tries: u32 = tries.parse().unwrap_or(SPOKEN_ACCOUNT_TRIES);
        if digits.is_empty() || host::find_employee(digits).is_none() {
            return if tries < SPOKEN_ACCOUNT_TRIES {
                ask_account(tries + 1, Prompt::say("try-again"))
            } else {
                bye("Unknown extension", "try-again")
            };
        }
        return ask_pin(digits, 1, None);
    }
    let Some((tries, ext)) = got
        .context
        .strip_prefix("pin:")
        .and_then(|r| r.split_once(':'))
    else {
        return Decision::Continue;
    };
    let tries: u32 = tries.parse().unwrap_or(SPOKEN_PIN_TRIES);
    if digits.is_empty() {
        return if tries < SPOKEN_PIN_TRIES {
            ask_pin(ext, tries + 1, Some(Prompt::say("try-again")))
        } else {
            bye("No PIN entered", "try-again")
        };
    }
    if let Err(e) = host::verify_pin(ext, digits) {
        info!("spoken hotdesk login of {ext} at {device} refused: {e}");
        return match e.as_str() {
            "locked" => saying(false, "Too many wrong PINs, try later", vec![Prompt::say("locked")]),
            "wrong PIN" if tries < SPOKEN_PIN_TRIES => {
                ask_pin(ext, tries + 1, Some(Prompt::say("wrong-pin")))
            }
            "wrong PIN" => bye("Wrong PIN", "wrong-pin"),
            _ => bye("No login code set", "try-again"),
        };
    }
    match host::bind_device(&device, Some(ext), "*88") {
        Ok(()) => {
            info!("{ext} logged in at {device} by voice");
            let name = host::find_employee(ext).map(|e| e.name).unwrap_or_default();
            saying(
                true,
                &format!("Logged in as {ext} {name}"),
                vec![Prompt::say("logged-in-as"), Prompt::read(ext)],
            )
        }
        Err(e) => saying(false, &e, vec![Prompt::say("try-again")]),
    }
}

fn login(call: &CallInfo, rest: &str) -> Decision {
    let Some(device) = hotdesk_device(call) else {
        return feature(false, "Not a hotdesk phone");
    };
    let Some((ext, pin)) = parse_login(rest) else {
        return feature(false, "Dial *88*extension*PIN");
    };
    if let Err(e) = host::verify_pin(ext, pin) {
        info!("hotdesk login of {ext} at {device} refused: {e}");
        return match e.as_str() {
            "unknown extension" => feature(false, "Unknown extension"),
            "locked" => feature(false, "Too many wrong PINs, try later"),
            "no PIN set" => feature(false, "No login code set"),
            _ => feature(false, "Wrong PIN"),
        };
    }
    match host::bind_device(&device, Some(ext), "*88") {
        Ok(()) => {
            info!("{ext} logged in at {device}");
            let name = host::find_employee(ext).map(|e| e.name).unwrap_or_default();
            feature(true, &format!("Logged in as {ext} {name}"))
        }
        Err(e) => feature(false, &e),
    }
}

fn logout(call: &CallInfo) -> Decision {
    let Some(device) = hotdesk_device(call) else {
        return feature(false, "Not a hotdesk phone");
    };
    let Some(ext) = host::device_binding(&device) else {
        return feature(false, "Nobody logged in");
    };
    match host::bind_device(&device, None, "*89") {
        Ok(()) => saying(
            true,
            &format!("Logged out {ext}"),
            vec![Prompt::say("logged-out")],
        ),
        Err(e) => feature(false, &e),
    }
}

/// Call activity of a logged-in employee: the idle period restarts.
fn activity(ext: &str) {
    if let Some(mut login) = load_login(ext) {
        login["last"] = json!(host::now_ms());
        save_login(ext, &login);
    }
}

fn on_logged_in(ext: &str, device: &str) {
    forget_login(ext);
    let now = host::now_ms();
    let mut login = json!({"device": device, "gen": now, "last": now});
    if let Some(period) = idle_period_s(ext) {
        arm_idle(ext, &mut login, period * 1000);
    }
    save_login(ext, &login);
}

fn on_logged_out(ext: &str, device: &str) {
    if load_login(ext).is_some_and(|l| l["device"] == device) {
        forget_login(ext);
    }
}

/// The employee whose home an account is: their own extension, or the owner
/// of a device account.
fn home_owner(account: &str) -> Option<String> {
    if host::find_employee(account).is_some() {
        return Some(account.to_owned());
    }
    host::find_device(account).and_then(|d| d.owner)
}

fn on_unregistered(account: &str) {
    let Some(ext) = home_owner(account) else {
        return;
    };
    let Some(mut login) = load_login(&ext) else {
        return;
    };
    if login["remote_timer"].is_u64() || host::presence_of(&ext).home_registered {
        return;
    }
    let gen = login["gen"].as_u64().unwrap_or(0);
    let id = host::set_timer(remote_logout_s() * 1000, &format!("remote {ext} {gen}"));
    login["remote_timer"] = json!(id);
    save_login(&ext, &login);
    info!(
        "home of {ext} unreachable; logout in {} s",
        remote_logout_s()
    );
}

fn on_registered(account: &str) {
    let Some(ext) = home_owner(account) else {
        return;
    };
    let Some(mut login) = load_login(&ext) else {
        return;
    };
    if let Some(id) = login["remote_timer"].as_u64() {
        host::cancel_timer(id);
        login["remote_timer"] = Value::Null;
        save_login(&ext, &login);
    }
}

fn on_timer(payload: &str) {
    let mut parts = payload.split(' ');
    let (Some(kind), Some(ext), Some(gen)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let Some(mut login) = load_login(ext) else {
        return;
    };
    if login["gen"].as_u64().map(|g| g.to_string()).as_deref() != Some(gen) {
        return; // a timer of an earlier login
    }
    let Some(device) = login["device"].as_str().map(str::to_owned) else {
        return;
    };
    if host::device_binding(&device).as_deref() != Some(ext) {
        forget_login(ext);
        return;
    }
    match kind {
        "idle" => {
            login["idle_timer"] = Value::Null;
            let Some(period_ms) = idle_period_s(ext).map(|s| s * 1000) else {
                save_login(ext, &login);
                return;
            };
            let now = host::now_ms();
            let last = login["last"].as_u64().unwrap_or(now);
            if host::presence_of(ext).active_calls > 0 {
                arm_idle(ext, &mut login, period_ms);
                save_login(ext, &login);
            } else if now.saturating_sub(last) + 20 >= period_ms {
                if let Err(e) = host::bind_device(&device, None, "idle timeout") {
                    warn!("idle logout of {ext}: {e}");
                }
            } else {
                arm_idle(ext, &mut login, last + period_ms - now);
                save_login(ext, &login);
            }
        }
        "remote" => {
            login["remote_timer"] = Value::Null;
            if host::presence_of(ext).home_registered {
                save_login(ext, &login);
            } else if let Err(e) = host::bind_device(&device, None, "home unreachable") {
                warn!("remote logout of {ext}: {e}");
            }
        }
        _ => {}
    }
}

fn check_integer(v: &Value, field: &str, min: u64, max: u64, nullable: bool) -> Result<(), String> {
    match v.get(field) {
        None => Ok(()),
        Some(Value::Null) if nullable => Ok(()),
        Some(x) => match x.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(format!(
                "{field}: must be a whole number of seconds from {min} to {max}"
            )),
        },
    }
}

fn only_fields(v: &Value, allowed: &[&str]) -> Result<(), String> {
    let Some(map) = v.as_object() else {
        return Err("settings must be a JSON object".into());
    };
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "{k}: unknown setting (allowed: {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

impl Plugin for Hotdesk {
    fn points() -> Vec<DecisionPoint> {
        vec![
            DecisionPoint::Originate,
            DecisionPoint::Event,
            DecisionPoint::Collected,
        ]
    }

    fn decide(point: DecisionPoint, input: PointInput) -> Decision {
        match point {
            DecisionPoint::Originate => {
                let Some(call) = input.call else {
                    return Decision::Continue;
                };
                let dialed = call.dialed.trim_end_matches('#');
                if dialed == "*88" {
                    return spoken_login(&call);
                }
                if let Some(rest) = dialed.strip_prefix("*88") {
                    return login(&call, rest);
                }
                if dialed == "*89" {
                    return logout(&call);
                }
                if call.device.is_some() && call.caller.internal {
                    activity(&call.caller.id);
                }
                Decision::Continue
            }
            DecisionPoint::Event => {
                let Some(ev) = input.event else {
                    return Decision::Continue;
                };
                let subject = ev.subject.as_deref().unwrap_or_default();
                let payload = ev.payload.as_deref().unwrap_or_default();
                match ev.kind {
                    EventKind::LoggedIn => on_logged_in(subject, payload),
                    EventKind::LoggedOut => on_logged_out(subject, payload),
                    EventKind::Answered | EventKind::Ended => activity(subject),
                    EventKind::Registered => on_registered(subject),
                    EventKind::Unregistered => on_unregistered(subject),
                    EventKind::TimerFired => on_timer(payload),
                    EventKind::MissedGroupCall => {}
                }
                Decision::Continue
            }
            DecisionPoint::Collected => match (input.call, input.collected) {
                (Some(call), Some(got)) => spoken_answer(&call, &got),
                _ => Decision::Continue,
            },
            _ => Decision::Continue,
        }
    }

    fn validate_settings(scope: String, json: String) -> Result<(), String> {
        let v: Value = serde_json::from_str(&json).map_err(|e| format!("not JSON: {e}"))?;
        if scope == "tenant" {
            only_fields(&v, &["remote_logout_s"])?;
            check_integer(&v, "remote_logout_s", 1, REMOTE_LOGOUT_MAX_S, false)
        } else if scope.strip_prefix("employee:").is_some() {
            only_fields(&v, &["idle_period_s"])?;
            check_integer(&v, "idle_period_s", IDLE_MIN_S, IDLE_MAX_S, true)
        } else {
            Err(format!("scope {scope}: use tenant or employee:<extension>"))
        }
    }
}

export_plugin!(Hotdesk);
