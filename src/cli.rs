//! The command line (README, *Commands and the daemon*). Kept in the library so that
//! packaging can generate the man page and completions from it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "rostersync",
    version,
    about = "Keeps application user directories in step with HR exports"
)]
pub struct Cli {
    /// The config file [default: $ROSTERSYNC_CONFIG, else /etc/rostersync/config.toml]
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground: watch the inboxes and process each finished file
    Run,
    /// Check the config file: prints "ok" or every problem with its line and column (exit 2)
    Check {
        /// Also reach each target and try its credentials (exit 1 when one fails)
        #[arg(long)]
        online: bool,
        /// With --online: also send a test message to each [[notify]] destination
        #[arg(long, requires = "online")]
        notify: bool,
    },
    /// Parse and check an HR file without the store: the verdict and every problem by line
    /// (exit 0 valid, 1 not)
    Validate {
        /// The CSV file to check
        file: PathBuf,
        /// Read the file with this source's settings (format, encoding, key...); without it,
        /// the file is read as a WBT export, users or organisations by its header
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
    },
    /// Dry run: what FILE would do, per target and action, against the current state;
    /// changes nothing (exit 3 when a safety rule would hold it)
    Plan {
        /// The CSV file to plan
        file: PathBuf,
        /// The source the file belongs to [default: the source whose inbox holds it,
        /// or the only source]
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
        /// Print the whole plan as JSON (the shape of the .report.json files)
        #[arg(long)]
        json: bool,
        /// Show only this record's actions per target (its external id, or its login for a
        /// source keyed by login)
        #[arg(long, value_name = "EXT_ID")]
        person: Option<String>,
    },
    /// One file through the whole flow (check, plan, safety, commit, push), then a
    /// report; exit 0 when every record was applied, 1 when some were parked or the
    /// file was refused, 3 when a safety rule held it
    Sync {
        /// The CSV file to apply
        file: PathBuf,
        /// The source the file belongs to [default: the source whose inbox holds it,
        /// or the only source]
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
        /// Print the report as JSON (the shape of the .report.json files)
        #[arg(long)]
        json: bool,
    },
    /// What the daemon is doing: last file per source, outbox, parked records and last
    /// error per target (asks the running daemon, else reads status.json)
    Status {
        /// Print status.json as it is
        #[arg(long)]
        json: bool,
    },
    /// What each target has acknowledged for a person or organisation, and when
    Show {
        /// The record's key (its external id, or its login for a source keyed by login)
        external_id: String,
    },
    /// Release a held file: plan it again against the current state and apply it, unless it
    /// now blocks more than the held plan did (exit 3, held again with the new figures)
    Approve {
        /// The file in a source's held/ folder
        held_file: PathBuf,
        /// Approve it even though a newer file of its source was accepted
        /// since it was held (its data then replaces the newer file's)
        #[arg(long)]
        force_older: bool,
    },
    /// Send one person's (or organisation's) desired state now, ahead of whatever else
    /// waits (an urgent leaver): through the running daemon, else directly (exit 1 when a
    /// target did not confirm it, 2 when no target holds it)
    Push {
        /// The record's key (its external id, or its login for a source keyed by login)
        external_id: String,
        /// Only to this target
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
    },
    /// Push parked records again
    Retry {
        /// Only this target's
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
    },
    /// Drop what the store keeps for a target removed from the config (its records, what
    /// waits, its parked records) and say what was dropped; refused (exit 2) while the
    /// config still has it
    ForgetTarget {
        /// The target's name, as it was in the config
        name: String,
    },
}

/// Exit codes shared by every command (README, *Commands and the daemon*).
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const HELD: i32 = 3;
}
