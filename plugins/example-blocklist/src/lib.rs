//! Example tenant plugin: incoming calls from a caller on the blocked list
//! are declined with 603. Settings (scope `tenant`):
//!
//! ```json
//! {"blocked": ["441234567890", "2003"]}
//! ```
//!
//! Build: `cargo build --release --target wasm32-wasip2 -p example-blocklist`
//! in `plugins/`, then upload `target/wasm32-wasip2/release/example_blocklist.wasm`.

wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

use exports::switchboard::plugin::handler::Guest;
use switchboard::plugin::host;
use switchboard::plugin::types::{Decision, DecisionPoint, PointInput, Rejection};

struct Blocklist;

fn blocked_list(json: &str) -> Result<Vec<String>, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let list = v
        .get("blocked")
        .and_then(|b| b.as_array())
        .ok_or("`blocked` must be a list of numbers")?;
    list.iter()
        .map(|x| {
            x.as_str()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_owned)
                .ok_or_else(|| format!("`blocked` entry {x} is not a string of digits"))
        })
        .collect()
}

impl Guest for Blocklist {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Incoming]
    }

    fn decide(_point: DecisionPoint, input: PointInput) -> Decision {
        let Some(call) = input.call else {
            return Decision::Continue;
        };
        let blocked = host::setting("tenant")
            .and_then(|s| blocked_list(&s).ok())
            .unwrap_or_default();
        if blocked.iter().any(|b| *b == call.caller.id) {
            host::annotate("blocked caller");
            return Decision::Reject(Rejection {
                status: 603,
                reason: "Decline".into(),
            });
        }
        Decision::Continue
    }

    fn validate_settings(scope: String, json: String) -> Result<(), String> {
        if scope != "tenant" {
            return Err(format!("only the `tenant` scope is used, not `{scope}`"));
        }
        blocked_list(&json).map(|_| ())
    }
}

export!(Blocklist);
