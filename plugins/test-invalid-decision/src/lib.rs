//! Answers with a SIP status no SIP stack accepts.
wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

use exports::switchboard::plugin::handler::Guest;
#[allow(unused_imports)]
use switchboard::plugin::host;
#[allow(unused_imports)]
use switchboard::plugin::types::*;

struct P;

impl Guest for P {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Incoming]
    }
    fn decide(_p: DecisionPoint, _i: PointInput) -> Decision {
        Decision::Reject(Rejection {
            status: 42,
            reason: "nonsense".into(),
        })
    }
    fn validate_settings(_s: String, _j: String) -> Result<(), String> {
        Ok(())
    }
}

export!(P);
