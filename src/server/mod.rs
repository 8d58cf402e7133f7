//! The Redis-protocol front end: how Persona talks to `redis-cli`, `redis-py`, the Rust `redis`
//! crate and `redis-benchmark`.
//!
//! [`frame`] is the wire format (RESP2 and RESP3): the [`frame::Frame`] value, reading client
//! commands ([`frame::parse_request`], [`frame::RequestDecoder`]), reading any frame
//! ([`frame::parse_frame`]) and writing replies ([`frame::Frame::encode`]). It does no I/O.
#![warn(missing_docs)]

pub mod frame;

mod encode;
mod request;

#[cfg(test)]
mod frame_props;
#[cfg(test)]
mod frame_tests;
