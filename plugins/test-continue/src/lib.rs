//! Does what a typical plugin does per call (a settings lookup and a
//! directory lookup) and continues: the benchmark's unit of work.
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
    fn decide(_p: DecisionPoint, input: PointInput) -> Decision {
        let _ = std::hint::black_box(host::setting("tenant"));
        if let Some(callee) = input.callee {
            let _ = std::hint::black_box(host::find_employee(&callee));
        }
        Decision::Continue
    }
    fn validate_settings(_s: String, _j: String) -> Result<(), String> {
        Ok(())
    }
}

export!(P);
