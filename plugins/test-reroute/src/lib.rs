//! Routes every incoming call to the extension in its settings
//! (`{"to": "2003"}`), annotating the call.
wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

use exports::switchboard::plugin::handler::Guest;
#[allow(unused_imports)]
use switchboard::plugin::host;
#[allow(unused_imports)]
use switchboard::plugin::types::*;

struct P;

fn target() -> Option<String> {
    let s = host::setting("tenant")?;
    let v: serde_json::Value = serde_json::from_str(&s).ok()?;
    v.get("to")?.as_str().map(str::to_owned)
}

impl Guest for P {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Incoming]
    }
    fn decide(_p: DecisionPoint, _i: PointInput) -> Decision {
        let Some(to) = target() else {
            return Decision::Continue;
        };
        Decision::Route(Route {
            targets: vec![Target {
                destination: Destination::Extension(to),
                delay_ms: 0,
                ring_ms: 0,
            }],
            mode: RingMode::Parallel,
            total_ring_ms: 0,
            caller_id: None,
            caller_name: None,
            on_failure: OnFailure::Drop,
            reason: Some("rerouted".into()),
            diversion: None,
        })
    }
    fn validate_settings(_s: String, json: String) -> Result<(), String> {
        let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        match v.get("to").and_then(|t| t.as_str()) {
            Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
            _ => Err("`to` must be an extension".into()),
        }
    }
}

export!(P);
