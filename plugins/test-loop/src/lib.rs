//! Never returns from a decision.
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
    #[allow(clippy::empty_loop)]
    fn decide(_p: DecisionPoint, _i: PointInput) -> Decision {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    fn validate_settings(_s: String, _j: String) -> Result<(), String> {
        loop {}
    }
}

export!(P);
