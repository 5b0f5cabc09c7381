//! The man pages: `rostersync(1)` and one page per command
//! (`rostersync-run(1)`...). NAME, SYNOPSIS, OPTIONS and the command list
//! come from the clap definitions (`src/cli.rs`), so they never drift from
//! `--help`; what `--help` has no room for is written here in roff: each
//! page's DESCRIPTION (clap's would repeat NAME), its EXIT STATUS, and for
//! `run` its SIGNALS, LOGS, ENVIRONMENT and FILES. Every footer names the
//! version. `tests/man_pages.rs` reads them.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::Man;

use rostersync::cli::Cli;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a page has besides what clap gives, in roff.
struct Written {
    description: &'static str,
    exit_status: &'static str,
    /// Further sections, each starting with `.SH`.
    more: &'static str,
}

/// Writes every page into `dir` (created); returns their paths.
pub fn write_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut written = Vec::new();
    for command in root.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = command.get_name().to_string();
        let Some(text) = page_text(&name) else {
            return Err(std::io::Error::other(format!(
                "examples/gen_assets/man.rs has no text for the command {name}"
            )));
        };
        let path = dir.join(format!("rostersync-{name}.1"));
        write_page(&path, command.clone(), &text, false)?;
        written.push(path);
    }
    let path = dir.join("rostersync.1");
    write_page(&path, root, &MAIN, true)?;
    written.push(path);
    Ok(written)
}

fn write_page(
    path: &Path,
    command: clap::Command,
    text: &Written,
    main: bool,
) -> std::io::Result<()> {
    let title = command
        .get_display_name()
        .unwrap_or(command.get_name())
        .to_string();
    let page = Man::new(command);
    // Written here, not by clap_mangen: its empty date is left out of the
    // line, which moves the source (the version) into the date's place and
    // the manual's name into the source's.
    let mut out =
        format!(".TH {title} 1 \"\" \"rostersync {VERSION}\" \"rostersync manual\"\n").into_bytes();
    page.render_name_section(&mut out)?;
    page.render_synopsis_section(&mut out)?;
    writeln!(out, ".SH DESCRIPTION\n{}", text.description.trim())?;
    page.render_options_section(&mut out)?;
    if main {
        page.render_subcommands_section(&mut out)?;
    }
    writeln!(out, ".SH \"EXIT STATUS\"\n{}", text.exit_status.trim())?;
    if !text.more.trim().is_empty() {
        writeln!(out, "{}", text.more.trim())?;
    }
    let see_also = if main {
        r"\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBsystemd.exec\fR(5), \fI/usr/share/doc/rostersync/README.md\fR"
    } else {
        r"\fBrostersync\fR(1), \fI/usr/share/doc/rostersync/README.md\fR"
    };
    writeln!(out, ".SH \"SEE ALSO\"\n{see_also}")?;
    std::fs::write(path, out)
}

fn page_text(command: &str) -> Option<Written> {
    Some(match command {
        "run" => RUN,
        "check" => CHECK,
        "validate" => VALIDATE,
        "plan" => PLAN,
        "sync" => SYNC,
        "status" => STATUS,
        "show" => SHOW,
        "approve" => APPROVE,
        "push" => PUSH,
        "retry" => RETRY,
        "forget-target" => FORGET_TARGET,
        _ => return None,
    })
}

const MAIN: Written = Written {
    description: r#"
rostersync keeps business applications' user directories in step with HR.
HR exports users and organisations as CSV files into drop folders (the
sources' inboxes); rostersync notices each finished file, checks it, works
out per target what changed since the last file (create, update, block,
unblock) and pushes exactly those changes to each application's API,
retrying until each target has them.
.PP
It runs as the systemd service \fIrostersync.service\fR
(\fBrostersync\-run\fR(1)). The other commands check the config and HR's
files, show what the daemon does, and act on held files and parked records;
while the daemon runs they ask it through its control socket.
"#,
    exit_status: r#"
.TP
\fB0\fR
Done.
.TP
\fB1\fR
Failure: a file refused, records parked, a target unreachable.
.TP
\fB2\fR
Bad usage, or a config that cannot be read or is invalid (every problem is printed as FILE:LINE:COLUMN: message).
.TP
\fB3\fR
Held by a safety rule: release it with \fBrostersync approve\fR.
.PP
Each command's page says which apply to it.
"#,
    more: r#"
.SH ENVIRONMENT
.TP
\fBROSTERSYNC_CONFIG\fR
The config file when \fB\-c\fR is not given.
.TP
\fBROSTERSYNC_LOG\fR
The log level or filter (default \fBinfo\fR; e.g. \fBdebug\fR, \fBrostersync=trace\fR).
.TP
\fBCREDENTIALS_DIRECTORY\fR
Set by systemd's \fBLoadCredential=\fR: where \fBtoken_credential\fR and \fBpassword_credential\fR are read.
.TP
\fBJOURNAL_STREAM\fR
Set by systemd when stderr is the journal: each log line then carries its priority (see \fBrostersync\-run\fR(1)).
.SH FILES
.TP
\fI/etc/rostersync/config.toml\fR
The config (every key is documented in \fI/usr/share/doc/rostersync/config.example.toml\fR).
.TP
\fI/etc/rostersync/credentials/\fR
Tokens and passwords handed to the service with \fBLoadCredential=\fR.
.TP
\fI/var/lib/rostersync/\fR
The state (\fBstate_dir\fR): the sled database and \fIcontrol.sock\fR, through which the commands ask the running daemon.
.TP
\fI/var/log/rostersync/\fR
Daily logs \fIrostersync.YYYY\-MM\-DD.log\fR and \fIstatus.json\fR (\fBlog_dir\fR).
.TP
\fI/srv/rostersync/\fR
The default drop root: each source's inbox, with \fIarchive/\fR (files and their \fI.report.json\fR), \fIrejected/\fR (with \fI.errors.txt\fR) and \fIheld/\fR (with \fI.plan.txt\fR).
"#,
};

const RUN: Written = Written {
    description: r#"
The daemon, in the foreground, for systemd's \fIrostersync.service\fR
(\fBType=notify\fR: \fBREADY=1\fR once it watches, \fBSTATUS=\fR one line
such as "3 file(s) today, outbox 12, parked 1", with "HELD N" while a
file waits in a \fIheld/\fR folder, \fBWATCHDOG=1\fR when
\fBWatchdogSec=\fR is set).
.PP
It watches each source's inbox (inotify, and a rescan every
\fB[daemon] rescan\fR; \fBpoll = true\fR for network shares), takes each
complete file (unchanged for \fBsettle\fR, or with its \fINAME.done\fR
marker) oldest first, plans it against what each target acknowledged,
holds it when a safety rule says so, commits it, and moves it to
\fIarchive/\fR with its \fI.report.json\fR (\fIrejected/\fR or \fIheld/\fR
otherwise). One worker per target pushes what waits, retrying transient
failures. Files that arrived while it was down are taken on start; a stop
at any moment loses nothing.
"#,
    exit_status: r#"
.TP
\fB0\fR
Stopped by SIGTERM or SIGINT.
.TP
\fB1\fR
It could not start or go on: the store is held by another rostersync, a folder cannot be created.
.TP
\fB2\fR
The config cannot be read or is invalid: every problem is printed as FILE:LINE:COLUMN: message.
"#,
    more: r#"
.SH SIGNALS
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop taking files, give requests in flight \fB[daemon] grace\fR (5 s) to
finish, then cut them (they are sent again at the next start), flush the
store and \fIstatus.json\fR, exit 0. Keep the unit's \fBTimeoutStopSec=\fR
above \fBgrace\fR.
.TP
\fBSIGHUP\fR
Read the config again. An invalid one is refused, its problems in the log,
and the running one stays. A target waiting to retry is tried again at once
with the new config (a fixed \fBurl\fR is used at the next attempt);
requests in flight finish first. \fB[daemon]\fR settings change only with a
restart, and so do credentials (\fBLoadCredential=\fR) and the
environment, which systemd hands over at start. \fBsystemctl reload
rostersync\fR runs \fBrostersync check\fR first (the unit's
\fBExecReload=\fR): a broken config fails the reload and the daemon is not
signalled.
.SH LOGS
Logs go to stderr and to \fIlog_dir\fR\fB/rostersync.YYYY\-MM\-DD.log\fR
(\fI/var/log/rostersync/\fR for the package), rolled daily, \fBlog_keep\fR
files kept, plain text or one JSON object per line with
\fBlog_format = "json"\fR. One \fBfile processed\fR line per file (its
source, outcome, counts and where it went), one \fBpushed\fR line per drain
of a target. Secrets never appear in logs.
.PP
On a terminal stderr is coloured; anywhere else (a file, a pipe) it holds
no escape codes. Under systemd, where \fBJOURNAL_STREAM\fR names stderr,
each line starts with its level as the journal's priority (sd\-daemon(3):
\fB<3>\fR error, \fB<4>\fR warning, \fB<6>\fR info, \fB<7>\fR debug) and
without a timestamp of its own: \fBjournalctl \-u rostersync \-p err\fR
shows the errors.
.PP
\fBROSTERSYNC_LOG\fR sets the level or a filter (default \fBinfo\fR).
\fBdebug\fR adds a line at each step of a file (seen, settling, ready,
read, ingested, planned, committed, moved) and per HTTP request (method,
path without its query, status, milliseconds; never a header or a body).
The embedded database's lines (\fBsled\fR) stay at \fBwarn\fR unless the
filter names it.
.SH ENVIRONMENT
.TP
\fBROSTERSYNC_LOG\fR
The log level or filter, e.g. \fBdebug\fR, \fBrostersync=debug,reqwest=info\fR.
.TP
\fBROSTERSYNC_CONFIG\fR
The config file when \fB\-c\fR is not given.
.TP
\fBJOURNAL_STREAM\fR
Set by systemd: the device and inode of stderr when it is the journal.
.TP
\fBCREDENTIALS_DIRECTORY\fR
Set by systemd's \fBLoadCredential=\fR: where credentials are read.
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR
Set by systemd: where \fBREADY=1\fR, \fBSTATUS=\fR and \fBWATCHDOG=1\fR go, and how often.
.TP
\fBNO_COLOR\fR
Set and not empty: no colour even on a terminal.
.SH FILES
.TP
\fIstate_dir\fR\fB/db/\fR, \fB/commits/\fR, \fB/dates.last\fR
The store, the plans written down before their commit, the day of the last date re\-plan.
.TP
\fIstate_dir\fR\fB/control.sock\fR
The control socket the other commands ask (owner only).
.TP
\fIlog_dir\fR\fB/status.json\fR
What \fBrostersync status\fR shows, written about every second when something changed.
"#,
};

const CHECK: Written = Written {
    description: r#"
Reads the config file and checks all of it: unknown keys, types, durations,
names, each target's settings, the inbox and output folders (they exist or
can be created, and are writable), secret files and their modes,
environment variables. Prints \fBok\fR, or every problem as
FILE:LINE:COLUMN: message, all of them in one run (for a TOML syntax
error, that one alone). A target URL in plain \fBhttp://\fR is refused
unless it is this machine: its credentials would cross the network
unencrypted. What stops nothing is printed before \fBok\fR as
FILE:LINE:COLUMN: warning: message, such as an inbox that does not exist
yet. A folder on a read-only file system is named as most likely the
service's sandbox, with its fix (\fBReadWritePaths=\fR).
.PP
With \fB\-\-online\fR it then reaches each target with its credentials and
prints one line per target (\fBtarget lms (collaborator): ok\fR, or
where it was asked and why not: \fBtarget lms (collaborator) at
https://lms.example.org: REASON\fR, never a user, password or query).
The unit's \fBExecReload=\fR runs \fBrostersync check\fR before it
signals the daemon.
"#,
    exit_status: r#"
.TP
\fB0\fR
The config is valid (and with \fB\-\-online\fR, every target answered).
.TP
\fB1\fR
With \fB\-\-online\fR: a target could not be reached or refused its credentials.
.TP
\fB2\fR
The config cannot be read or is invalid.
"#,
    more: "",
};

const VALIDATE: Written = Written {
    description: r#"
Reads an HR export the way the daemon will (encoding, delimiter, header,
every row) and prints every problem as FILE:LINE:COLUMN: message, then the
verdict. It needs no store and changes nothing: HR can run it before
dropping a file. Without \fB\-\-source\fR the file is read as a WBT export,
users or organisations told apart by its header, every setting on
\fBauto\fR.
"#,
    exit_status: r#"
.TP
\fB0\fR
The file would be accepted.
.TP
\fB1\fR
It would be refused, or cannot be read.
.TP
\fB2\fR
Bad usage: no such source, an invalid config.
"#,
    more: "",
};

const PLAN: Written = Written {
    description: r#"
A dry run: reads FILE with its source's settings (the source whose inbox
holds it, the only source, or \fB\-\-source\fR), compares it with what each
target has acknowledged, and prints per target the counts of creates,
updates, blocks and unblocks and the first ten of each with their changed
fields, the rows that need no action (unchanged, or new but inactive and
not created), and every safety rule a held plan breaks; \fB\-\-json\fR prints every action, in the shape of the
\fI.report.json\fR files. It changes nothing and creates no state; while
the daemon runs it asks the daemon.
"#,
    exit_status: r#"
.TP
\fB0\fR
Planned.
.TP
\fB1\fR
The file would be refused.
.TP
\fB2\fR
Bad usage: no such source, an invalid config.
.TP
\fB3\fR
A safety rule would hold it.
"#,
    more: "",
};

const SYNC: Written = Written {
    description: r#"
One file through the whole flow without the daemon: check, plan, safety
rules, commit, push to each target, then the report (\fB\-\-json\fR: in
the shape of the \fI.report.json\fR files). Targets new to the file's
source first get the source's last file, as the daemon does on start.
"#,
    exit_status: r#"
.TP
\fB0\fR
Every record was applied.
.TP
\fB1\fR
Some records were parked, or the file was refused.
.TP
\fB2\fR
Bad usage or an invalid config.
.TP
\fB3\fR
Held by a safety rule: release it with \fBrostersync approve\fR.
"#,
    more: "",
};

const STATUS: Written = Written {
    description: r#"
Per source: the last file, its outcome and where it went, and the inbox
entries it does not take; per target: what waits in its outbox, its parked
records (and how many are ambiguous), its last error and last successful
push; the files of the day. Every file waiting in a source's \fIheld/\fR
is listed until it is approved or moved away. A restarted daemon keeps
the files of the day, each source's last file and each target's last
push. It asks the running daemon; without one it reads \fIlog_dir\fR\fB/status.json\fR as the daemon last wrote it.
\fB\-\-json\fR prints \fIstatus.json\fR's shape, for monitoring.
"#,
    exit_status: r#"
.TP
\fB0\fR
Shown.
.TP
\fB1\fR
No daemon runs and none has written \fIstatus.json\fR yet.
"#,
    more: "",
};

const SHOW: Written = Written {
    description: r#"
For one person or organisation, by its key (its external id, or its login
for a source keyed by login): what each target acknowledged (active or
blocked, when, its id there, the fields), what is still to push, and why a
record is parked, with the accounts an ambiguous record could be.
"#,
    exit_status: r#"
.TP
\fB0\fR
Shown.
.TP
\fB1\fR
No target knows the record.
"#,
    more: "",
};

const APPROVE: Written = Written {
    description: r#"
Releases a file a safety rule held (in its source's \fIheld/\fR folder):
plans it again against the current state and applies it if it blocks no
more than the held plan did; otherwise it stays held with the new figures.
A file older than one its source accepted since is refused unless
\fB\-\-force\-older\fR. It asks the running daemon, which holds the
targets' secrets, so the shell needs none. Without a daemon it commits and
files the file itself, and pushes too, as \fBsync\fR does, when the shell
has the secrets (else it says so, and the daemon pushes when it starts).
"#,
    exit_status: r#"
.TP
\fB0\fR
Applied.
.TP
\fB1\fR
It could not be applied (unreadable, refused), or records were parked while pushing.
.TP
\fB2\fR
Bad usage: not a held file, or older than a file accepted since (without \fB\-\-force\-older\fR).
.TP
\fB3\fR
Held again, with the new figures.
"#,
    more: "",
};

const PUSH: Written = Written {
    description: r#"
Sends one person's (or organisation's) desired state to its targets now,
ahead of whatever else waits: for an urgent leaver, without waiting for a
long import to drain. Through the running daemon, which holds the targets'
secrets; without one, it opens the store and pushes directly, as
\fBrostersync\-sync\fR(1) does. \fB\-\-target\fR sends it to that target only.
A parked record is not sent: \fBrostersync\-retry\fR(1) releases those.
"#,
    exit_status: r#"
.TP
\fB0\fR
Every target confirmed it, or nothing waited for it.
.TP
\fB1\fR
A target did not confirm it (the reason is printed; it stays to push).
.TP
\fB2\fR
No target holds the record, or no such target in the config.
"#,
    more: "",
};

const RETRY: Written = Written {
    description: r#"
Releases the parked records of every target (or of \fB\-\-target\fR's)
for another try and says how many: the running daemon pushes them at
once; without one they go at its next start.
"#,
    exit_status: r#"
.TP
\fB0\fR
Released.
.TP
\fB2\fR
No such target in the config.
"#,
    more: "",
};

const FORGET_TARGET: Written = Written {
    description: r#"
Drops what the store keeps for a target removed from the config (its
records, what waits for it, its parked records) and says what it dropped.
A target removed from the config keeps its state, with a warning at each
start, until this is run.
"#,
    exit_status: r#"
.TP
\fB0\fR
Dropped, or the store held nothing for it.
.TP
\fB2\fR
The config (or the running daemon's) still has the target.
"#,
    more: "",
};
