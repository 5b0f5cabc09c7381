//! Generates the man pages and shell completions of the .deb from the clap
//! definitions in `src/cli.rs`, so they never drift from `--help`.
//!
//! `cargo run --example gen_assets -- [OUT_DIR]` (default `target/assets`)
//! writes `OUT_DIR/man/rostersync.1` (plus one page per subcommand,
//! `rostersync-run.1`...; see `man.rs`) and `OUT_DIR/completions/{rostersync.bash,
//! _rostersync, rostersync.fish}`, and prints their paths.
//! `scripts/build-deb.sh` runs it before `cargo deb`; `scripts/man.sh` runs
//! it to read the pages without building the package.

mod man;

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;

use rostersync::cli::Cli;

fn main() -> std::io::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/assets"), PathBuf::from);
    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)?;
    for page in man::write_pages(&out.join("man"))? {
        println!("{}", page.display());
    }
    let mut command = Cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut command, "rostersync", &completions)?;
        println!("{}", path.display());
    }
    Ok(())
}
