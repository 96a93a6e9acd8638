//! The integration tests, one binary for all: every module links the proxy and its
//! dependencies once, which keeps a clean build's disk and link time to a single test
//! executable instead of one per file. Each module is a topic; `support` holds the shared
//! fakes and clients. Filter by module as usual: `cargo test --test integration tls::`.

mod support;

mod admin;
mod aws;
mod binary;
mod callers;
mod github_app;
mod hardening;
mod identity;
mod interop;
mod jwt_callers;
mod limits;
mod oauth2;
mod observability;
mod own_upstream;
mod proxy;
mod reload;
mod status_page;
mod streaming;
mod tls;
mod tracing;
