//! Continues at once: what asking a plugin costs before it does anything
//! (the criterion bench compares it with the same plugin in JavaScript and
//! Python, `plugins/examples/*/empty.*`).

use switchboard_plugin::{export_plugin, Decision, DecisionPoint, Plugin, PointInput};

struct Empty;

impl Plugin for Empty {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Incoming]
    }
    fn decide(_point: DecisionPoint, _input: PointInput) -> Decision {
        Decision::Continue
    }
    fn validate_settings(_scope: String, _json: String) -> Result<(), String> {
        Ok(())
    }
}

export_plugin!(Empty);
