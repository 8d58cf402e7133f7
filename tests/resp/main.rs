//! The RESP server end to end, one test binary: the wire protocol and errors ([`server`]),
//! queries ([`query`]), `MULTI`/`EXEC` ([`transaction`]), triggers and pub/sub ([`trigger`]), privacy commands ([`privacy`]), and
//! `redis-cli` / `redis-benchmark` against it ([`cli`]).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod privacy;
mod query;
mod server;
mod transaction;
mod trigger;
