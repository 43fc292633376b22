//! Switchboard: a programmable SIP call router.
//!
//! Modules in reading order: configuration and storage first, then the SIP
//! wire layer, transactions, the registrar and the proxy that routes calls,
//! then call history and the HTTP admin API.

pub mod config;
pub mod credentials;
pub mod directory;
pub mod store;
