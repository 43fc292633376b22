//! Imports an interface the router does not provide: the upload must be
//! refused, naming it, instead of faulting on every call.
wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package acme:probe;
        interface extra {
            ping: func() -> u32;
        }
        world probe {
            include switchboard:plugin/plugin@0.3.0;
            import extra;
        }
    ",
    world: "acme:probe/probe",
    generate_all,
});

use exports::switchboard::plugin::handler::Guest;
use switchboard::plugin::types::*;

struct P;

impl Guest for P {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Incoming]
    }
    fn decide(_p: DecisionPoint, _i: PointInput) -> Decision {
        // Used, so the import stays in the component.
        if acme::probe::extra::ping() == 0 {
            return Decision::Continue;
        }
        Decision::Continue
    }
    fn validate_settings(_s: String, _j: String) -> Result<(), String> {
        Ok(())
    }
}

export!(P);
