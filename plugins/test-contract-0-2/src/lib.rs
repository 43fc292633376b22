//! Built against `wit/frozen/plugin-0.2.0`, the contract as it was before
//! voice: a call to an extension is refused with 486 and a reason naming
//! the callee as the host's directory has them, so a test sees both the
//! decision and a host function served to an old component.
wit_bindgen::generate!({ path: "../../wit/frozen/plugin-0.2.0", world: "plugin" });

use exports::switchboard::plugin::handler::Guest;
use switchboard::plugin::host;
use switchboard::plugin::types::*;

struct P;

impl Guest for P {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Incoming]
    }
    fn decide(_p: DecisionPoint, input: PointInput) -> Decision {
        let Some(callee) = input.callee else {
            return Decision::Continue;
        };
        let name = host::find_employee(&callee)
            .map(|e| e.name)
            .unwrap_or_else(|| "nobody".into());
        Decision::Reject(Rejection {
            status: 486,
            reason: format!("Old Contract {name}"),
        })
    }
    fn validate_settings(_s: String, _j: String) -> Result<(), String> {
        Ok(())
    }
}

export!(P);
