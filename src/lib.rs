//! rostersync: keeps business applications' user directories in step with HR exports.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

pub mod cli;
pub mod config;
pub mod ingest;
pub mod run;
pub mod secret;
pub mod watch;
pub mod projection;
pub mod store;
