//! `*88*<ext>` from a device binds it to that employee; `*89` releases it.
//! Exercises the `bind-device` import (the hotdesk plugin does the real job).

wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

use exports::switchboard::plugin::handler::Guest;
use switchboard::plugin::host;
use switchboard::plugin::types::*;

struct P;

fn feature(success: bool, message: &str) -> Decision {
    Decision::Feature(FeatureResult {
        success,
        message: message.into(),
        announce: Vec::new(),
    })
}

impl Guest for P {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Originate]
    }
    fn decide(_p: DecisionPoint, input: PointInput) -> Decision {
        let Some(call) = input.call else {
            return Decision::Continue;
        };
        if let Some(ext) = call.dialed.strip_prefix("*88*") {
            return match host::bind_device(&call.caller.id, Some(ext), "test login") {
                Ok(()) => feature(true, "Logged In"),
                Err(e) => feature(false, &e),
            };
        }
        if call.dialed == "*89" {
            return match host::bind_device(&call.caller.id, None, "test logout") {
                Ok(()) => feature(true, "Logged Out"),
                Err(e) => feature(false, &e),
            };
        }
        Decision::Continue
    }
    fn validate_settings(_s: String, _j: String) -> Result<(), String> {
        Ok(())
    }
}

export!(P);
