//! Generates the man pages and shell completions of the .deb from the clap
//! definitions in `src/cli.rs`, so they never drift from `--help`.
//!
//! `cargo run --example gen_assets -- [OUT_DIR]` (default `target/assets`)
//! writes `OUT_DIR/man/rostersync.1` (plus one page per subcommand,
//! `rostersync-run.1`...) and `OUT_DIR/completions/{rostersync.bash,
//! _rostersync, rostersync.fish}`. `scripts/build-deb.sh` runs it before
//! `cargo deb`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;

use rostersync::cli::Cli;

/// Sections the generated page lacks: where things are, and what the exit
/// codes mean (README, *Commands and the daemon*), in roff.
const EXTRA_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Done.
.TP
\fB1\fR
Failure: a file refused, records parked, a target unreachable.
.TP
\fB2\fR
Bad usage or an invalid config (every problem is printed as FILE:LINE:COLUMN: message).
.TP
\fB3\fR
Held by a safety rule: release it with \fBrostersync approve\fR.
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
.SH "SEE ALSO"
\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBsystemd.exec\fR(5), \fI/usr/share/doc/rostersync/README.md\fR
"#;

fn main() -> std::io::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/assets"), PathBuf::from);
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;

    // One page per subcommand (rostersync-run.1, ...), then the main page
    // written again with the extra sections.
    clap_mangen::generate_to(Cli::command(), &man)?;
    write_main_page(&man.join("rostersync.1"))?;

    let mut command = Cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut command, "rostersync", &completions)?;
        println!("{}", path.display());
    }
    for entry in std::fs::read_dir(&man)? {
        println!("{}", entry?.path().display());
    }
    Ok(())
}

fn write_main_page(path: &Path) -> std::io::Result<()> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let page = Man::new(command);
    let mut text = Vec::new();
    page.render_title(&mut text)?;
    page.render_name_section(&mut text)?;
    page.render_synopsis_section(&mut text)?;
    page.render_description_section(&mut text)?;
    page.render_options_section(&mut text)?;
    page.render_subcommands_section(&mut text)?;
    text.write_all(EXTRA_SECTIONS.as_bytes())?;
    page.render_version_section(&mut text)?;
    std::fs::write(path, text)
}
