//! rostersync: keeps business applications' user directories in step with HR exports.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)]

pub mod ingest;
pub mod config;
pub mod secret;
pub mod cli;
pub mod run;
pub mod watch;
