//! Example tenant plugin: incoming calls from a caller on the blocked list
//! are declined with 603. Settings (scope `tenant`):
//!
//! ```json
//! {"blocked": ["441234567890", "2003"]}
//! ```
//!
//! Build: `cargo build --release --target wasm32-wasip2 -p example-blocklist`
//! in `plugins/`, then upload `target/wasm32-wasip2/release/example_blocklist.wasm`.
//! `plugins/templates/rust` is the same plugin as a project of its own.

use serde::Deserialize;
use switchboard_plugin::settings::{self, Scope};
use switchboard_plugin::{export_plugin, host, Decision, DecisionPoint, Plugin, PointInput};

/// The tenant's settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Callers to decline: extensions or international numbers.
    blocked: Vec<Number>,
}

/// A string of digits.
#[derive(Deserialize, PartialEq)]
#[serde(try_from = "String")]
struct Number(String);

impl TryFrom<String> for Number {
    type Error = String;
    fn try_from(s: String) -> Result<Number, String> {
        if !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Number(s))
        } else {
            Err(format!("`{s}` is not a string of digits"))
        }
    }
}

struct Blocklist;

impl Plugin for Blocklist {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Incoming]
    }

    fn decide(_point: DecisionPoint, input: PointInput) -> Decision {
        let Some(call) = input.call else {
            return Decision::Continue;
        };
        let blocked = settings::tenant::<Settings>()
            .map(|s| s.blocked)
            .unwrap_or_default();
        if blocked.iter().any(|b| b.0 == call.caller.id) {
            host::annotate("blocked caller");
            return Decision::reject(603, "Decline");
        }
        Decision::Continue
    }

    fn validate_settings(scope: String, json: String) -> Result<(), String> {
        match Scope::parse(&scope)? {
            Scope::Tenant => settings::parse::<Settings>(&json).map(|_| ()),
            Scope::Employee(_) => Err(format!("only the `tenant` scope is used, not `{scope}`")),
        }
    }
}

export_plugin!(Blocklist);
