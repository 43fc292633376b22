//! A Switchboard plugin: calls from the tenant's VIP callers ring the
//! dialed extension with `VIP` before the caller's name, so the phone shows
//! who matters. Settings (scope `tenant`):
//!
//! ```json
//! {"vip": ["441234567890", "2003"]}
//! ```
//!
//! Start from here: change the points you handle, the settings type and
//! `decide`. `switchboard plugin test` runs `tests/*.json` against the
//! built component without a router.

use serde::Deserialize;
use switchboard_plugin::settings::{self, Scope};
use switchboard_plugin::{
    export_plugin, info, Decision, DecisionPoint, Destination, Plugin, PointInput, Route,
};

/// The tenant's settings. Unknown keys are refused, so a misspelt key is
/// an error the administrator sees, not a setting silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Callers (extensions or international numbers) shown as VIPs.
    vip: Vec<String>,
}

struct Vip;

impl Plugin for Vip {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Incoming]
    }

    fn decide(_point: DecisionPoint, input: PointInput) -> Decision {
        let (Some(call), Some(callee)) = (input.call, input.callee) else {
            return Decision::Continue;
        };
        let vip = settings::tenant::<Settings>().map(|s| s.vip).unwrap_or_default();
        if !vip.contains(&call.caller.id) {
            return Decision::Continue;
        }
        info!("VIP call from {} to {callee}", call.caller.id);
        let name = call.caller.display_name.unwrap_or(call.caller.id);
        Route::to(Destination::Extension(callee))
            .showing_name(format!("VIP {name}"))
            .because("VIP caller")
            .into()
    }

    fn validate_settings(scope: String, json: String) -> Result<(), String> {
        match Scope::parse(&scope)? {
            Scope::Tenant => settings::parse::<Settings>(&json).map(|_| ()),
            Scope::Employee(_) => Err(format!("only the `tenant` scope is used, not `{scope}`")),
        }
    }
}

export_plugin!(Vip);
