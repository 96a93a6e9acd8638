//! Bytes to and from other hosts: the pooled outbound HTTP client, request bodies on their
//! way out, and the rustls building blocks (crypto provider, roots, PEM, client and server
//! configs).
//!
//! A leaf: it imports nothing else of credproxy, so the proxy's upstream client, the token
//! client and the TLS listener all build on the same pieces.

pub mod body;
pub mod client;
pub mod headers;
pub mod tls;

pub use body::{
    BufferedBodies, CallerBody, CallerBodyError, OutboundBody, Payload, ReadBodyError, WholeBody,
};
pub use client::{build_client, ClientSettings, HttpClient, SourceTls};
