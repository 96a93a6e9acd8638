//! credproxy: a reverse proxy that adds upstream credentials to the requests it forwards.
//!
//! The request path, module by module: [`caller`] → [`proxy::route`] →
//! [`proxy::headers`] → [`auth`] → [`proxy::client`], over a [`store`] of immutable
//! [`live`] snapshots built from validated [`config`] specs. See `DESIGN.md` for the
//! contract and the README for the layers.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod caller;
pub mod cli;
pub mod config;
pub mod digest;
pub mod files;
pub mod jws;
pub mod live;
pub mod metrics;
pub mod otel;
pub mod path_pattern;
pub mod problem;
pub mod proxy;
pub mod secret;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod watch;
