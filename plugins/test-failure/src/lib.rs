//! At the failure point, records the reason and what was tried in its store
//! and routes once to the extension in its settings (`{"to": "2004"}`).
wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

use exports::switchboard::plugin::handler::Guest;
#[allow(unused_imports)]
use switchboard::plugin::host;
#[allow(unused_imports)]
use switchboard::plugin::types::*;

struct P;

impl Guest for P {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Failure]
    }
    fn decide(_p: DecisionPoint, input: PointInput) -> Decision {
        let (Some(f), Some(call)) = (input.failure, input.call) else {
            return Decision::Continue;
        };
        let reason = match f.reason {
            FailureReason::NoAnswer => "no-answer",
            FailureReason::Busy => "busy",
            FailureReason::Unreachable => "unreachable",
        };
        let _ = host::kv_set(
            "last",
            &format!("{reason} {} tried={}", f.target, f.tried.join(",")),
        );
        if call.attempt > 0 {
            return Decision::Continue;
        }
        let to = host::setting("tenant")
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v.get("to").and_then(|t| t.as_str()).map(str::to_owned));
        let Some(to) = to else {
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
            reason: Some(format!("diverted: {reason}")),
            diversion: None,
        })
    }
    fn validate_settings(_s: String, _j: String) -> Result<(), String> {
        Ok(())
    }
}

export!(P);
