//! credproxy: a reverse proxy that adds upstream credentials to the requests it forwards.
//!
//! The request path, module by module: [`proxy::route`] → [`proxy::headers`] →
//! [`auth`] → [`proxy::client`], over a config [`store`] of immutable [`config`]
//! snapshots. See `DESIGN.md` for the contract.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod caller;
pub mod cli;
pub mod config;
pub mod metrics;
pub mod proxy;
pub mod secret;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod watch;
