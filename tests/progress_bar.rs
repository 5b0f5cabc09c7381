//! Long work shown to a person: `rostersync sync` on a terminal draws a
//! progress bar (records done of the total, the rate), and off a terminal
//! (a pipe, the journal) draws none. The terminal is a real pseudo-terminal
//! from util-linux's `script`.

mod support;

use std::process::Command;

use support::*;

fn harness() -> Harness {
    let h = Harness::builder()
        .source(Source::users("users", "inbox").targets(&["files"]))
        .target(Target::wbt_file("files", "out"))
        .build();
    std::fs::create_dir_all(h.path("out")).unwrap();
    let people: Vec<String> = (1..=20_000).map(|n| user(n, false)).collect();
    h.write("users.csv", &users_file(&people));
    h
}

fn sync_args(h: &Harness) -> Vec<String> {
    vec![
        binary().to_string_lossy().into_owned(),
        "sync".into(),
        "--source".into(),
        "users".into(),
        h.path("users.csv").to_string_lossy().into_owned(),
        "-c".into(),
        h.path("config.toml").to_string_lossy().into_owned(),
    ]
}

#[test]
fn a_sync_on_a_terminal_draws_a_bar_and_off_one_none() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no `script` (util-linux) to make a terminal");
        return;
    }
    let h = harness();
    let typescript = h.path("typescript");
    let command = format!("{} >/dev/null", sync_args(&h).join(" "));
    let status = Command::new("script")
        .args(["-qec", &command])
        .arg(&typescript)
        .current_dir(h.root())
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let drawn = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    assert!(
        drawn.contains("/20,000 records (") && drawn.contains("/s, "),
        "no bar: {drawn}"
    );

    // Again with stderr a pipe: no bar, no escape code.
    let again = harness();
    let args = sync_args(&again);
    let output = Command::new(&args[0])
        .args(&args[1..])
        .current_dir(again.root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        !err.contains("records (") && !err.contains('\u{1b}'),
        "{err}"
    );
}
