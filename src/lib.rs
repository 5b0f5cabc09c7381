//! rostersync: keeps business applications' user directories in step with HR exports.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

pub mod cli;
pub mod config;
pub mod connectors;
pub mod csv_safe;
pub mod daemon;
pub mod diff;
pub mod error_text;
pub mod escape;
pub mod field_changes;
pub mod file_modes;
#[doc(hidden)]
pub mod fuzzing;
pub mod ingest;
pub mod journal;
pub mod mapping;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod plan;
pub mod plan_output;
pub mod progress;
pub mod projection;
pub mod push;
pub mod report;
pub mod retry;
pub mod safety;
pub mod sandbox;
pub mod secret;
pub mod store;
pub mod sync;
#[cfg(test)]
mod testing;
pub mod watch;
