//! Stateful fakes of the target APIs: real HTTP servers on loopback that keep
//! users and organisations, enforce each API's rules, and inject faults on
//! demand. Each runs on its own thread and runtime, so tests that drive the
//! real binary can use them as they would a vendor's server.
//!
//! `kernel.rs` holds what they all share (the server, the state under one
//! lock with the faults and per-route counts, the request numbering, the
//! credential check, latency and transient failures); each product's file
//! holds only its API; `tls.rs` puts HTTPS (a private CA made at test time)
//! in front of any of them. `examples/bench_push.rs` includes this module too.
#![allow(dead_code)]

mod kernel;

pub mod collaborator;
pub mod gestimum;
pub mod maarch;
pub mod pleasanter;
pub mod scim;
pub mod tls;

// The kernel's API, for the fakes, the tests and the benchmarks (each uses a part).
#[allow(unused_imports)]
pub use kernel::{
    Admitted, Burst, Counter, Fault, Faults, Kernel, Ledger, Refusal, RetryAfter, Server, Switch,
    delay, delays, header, roll, serve,
};
