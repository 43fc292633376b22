//! End-to-end tests: real SIP over 127.0.0.1 against a running router.

#![allow(clippy::unwrap_used)]

mod admin;
mod calls;
mod console;
mod delegation;
mod diverts;
mod dns;
mod hotdesk;
mod hunt_status;
mod ipv6;
mod languages;
mod openapi;
mod plugin_api;
mod plugins;
mod registrar;
mod robustness;
mod roles;
mod schedule;
mod security;
mod softphone;
mod tls;
mod voice;
