//! The SDK for Switchboard plugins written in Rust.
//!
//! It owns the bindings of the plugin contract (`wit/`, package
//! `switchboard:plugin@0.3.0`), so a plugin needs no `wit-bindgen` of its
//! own and cannot pick a version that disagrees with the router:
//!
//! ```ignore
//! use switchboard_plugin::{export_plugin, settings, Decision, DecisionPoint, Plugin, PointInput};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings { blocked: Vec<String> }
//!
//! struct Blocklist;
//!
//! impl Plugin for Blocklist {
//!     fn points() -> Vec<DecisionPoint> { vec![DecisionPoint::Incoming] }
//!     fn decide(_: DecisionPoint, input: PointInput) -> Decision {
//!         let blocked = settings::tenant::<Settings>().map(|s| s.blocked).unwrap_or_default();
//!         match input.call {
//!             Some(c) if blocked.contains(&c.caller.id) => Decision::reject(603, "Decline"),
//!             _ => Decision::Continue,
//!         }
//!     }
//!     fn validate_settings(scope: String, json: String) -> Result<(), String> {
//!         settings::validate::<Settings>(&scope, &json, &[settings::Scope::Tenant])
//!     }
//! }
//!
//! export_plugin!(Blocklist);
//! ```
//!
//! - [`Plugin`] is the contract's `handler` interface; [`export_plugin!`]
//!   exports a type implementing it.
//! - [`host`] is everything the router offers (directory, presence, clock,
//!   settings, key-value store, timers, statuses, hotdesk bindings).
//! - [`settings`] reads settings into your own `serde` types, with errors
//!   written `path: reason` so the admin API reports them on that field.
//! - [`Route`], [`Target`] and [`Decision`] have constructors for the
//!   common decisions; [`info!`] and friends write to the router's log.
//! - A panic's message becomes the fault's reason (the router reads it from
//!   stderr), so `expect("...")` with a good message is a fine way to fail.

mod decide;
pub mod log;
pub mod settings;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "switchboard_plugin::bindings",
    });
}

/// The contract's `handler` interface: implement it and export the type
/// with [`export_plugin!`].
pub use bindings::exports::switchboard::plugin::handler::Guest as Plugin;
/// What the router offers a plugin: every function is scoped to the tenant
/// whose call is being decided and to the calling plugin.
pub use bindings::switchboard::plugin::host;
/// The contract's data types (inputs and decisions).
pub use bindings::switchboard::plugin::types::*;

/// The version of the contract this SDK binds.
pub const CONTRACT: &str = "switchboard:plugin@0.3.0";

/// Exports a type implementing [`Plugin`] as the component's `handler`.
/// Use it once, at the crate root of a `cdylib` built for `wasm32-wasip2`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ident) => {
        $crate::bindings::export!($plugin with_types_in $crate::bindings);
    };
}
