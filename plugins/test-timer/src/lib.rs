//! Sets a timer for every incoming call (100 ms, or the number of ms in its
//! `delay` settings) and records, when it fires, the payload under the key
//! `fired` of its store.
wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

use exports::switchboard::plugin::handler::Guest;
#[allow(unused_imports)]
use switchboard::plugin::host;
#[allow(unused_imports)]
use switchboard::plugin::types::*;

struct P;

impl Guest for P {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Incoming, DecisionPoint::Event]
    }
    fn decide(p: DecisionPoint, input: PointInput) -> Decision {
        match p {
            DecisionPoint::Incoming => {
                if let Some(call) = input.call {
                    let delay = host::setting("delay")
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .unwrap_or(100);
                    host::set_timer(delay, &call.dialed);
                }
            }
            DecisionPoint::Event => {
                if let Some(ev) = input.event {
                    if ev.kind == EventKind::TimerFired {
                        let _ = host::kv_set("fired", &ev.payload.unwrap_or_default());
                    }
                }
            }
            _ => {}
        }
        Decision::Continue
    }
    fn validate_settings(_s: String, _j: String) -> Result<(), String> {
        Ok(())
    }
}

export!(P);
