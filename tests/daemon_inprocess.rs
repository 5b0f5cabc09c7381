//! The daemon driven in-process through `daemon::serve`: its stop signal is
//! a future the test completes and its reloads a stream the test feeds, so
//! a test needs no child process and no signals.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rostersync::config::{self, CheckLevel};
use rostersync::daemon::{self, lifecycle};
use support::{Harness, Source, Target};

const USERS: &str = "user_extid;user_lname;user_fname;user_login;user_email\n\
E1;Durand;Paul;pdurand;paul.durand@example.org\n\
E2;Moreau;Luc;lmoreau;luc.moreau@example.org\n";

fn files_in(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_in_process_until_its_stop_future_completes() {
    let dir = Harness::builder()
        .daemon("grace", "1s")
        .source(
            Source::users("hr", "inbox")
                .set("settle", "100ms")
                .targets(&["wbt"]),
        )
        .target(Target::wbt_file("wbt", "wbt-out"))
        .build();
    let config_path = dir.path("config.toml");
    let config = config::load(&config_path, CheckLevel::Full).unwrap();
    lifecycle::prepare_folders(&config).unwrap();
    std::fs::write(dir.path("inbox/users.csv"), USERS).unwrap();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (reload, reloads) = tokio::sync::mpsc::unbounded_channel::<()>();
    let reloads = futures_util::stream::unfold(reloads, |mut rx| async move {
        rx.recv().await.map(|()| ((), rx))
    })
    .boxed();
    let daemon = tokio::spawn(daemon::serve(
        config_path.clone(),
        config,
        async move {
            let _ = stopped.await;
        },
        reloads,
    ));

    let archive = dir.path("inbox/archive");
    wait_for("the file to be archived with its report", || {
        files_in(&archive)
            .iter()
            .any(|n| n.ends_with("_users.csv.report.json"))
    })
    .await;
    let out = dir.path("wbt-out");
    wait_for("the WBT users file", || {
        files_in(&out).iter().any(|n| n.starts_with("users_"))
    })
    .await;

    // A reload through the stream is taken while running.
    reload.send(()).unwrap();
    let status_path = dir.path("log/status.json");
    let status = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&status_path).unwrap_or_default())
            .unwrap_or(serde_json::Value::Null)
    };
    wait_for("status.json to show the archived file", || {
        status()["sources"]["hr"]["outcome"] == "archived"
    })
    .await;
    assert_eq!(status()["running"], true);

    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("serve returns once its stop future completes")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(status()["running"], false, "status.json says it stopped");
    assert!(
        !dir.path("state/control.sock").exists(),
        "the control socket is removed on stop"
    );
    assert!(
        files_in(&dir.path("inbox")) == ["archive", "held", "rejected"],
        "{:?}",
        files_in(&dir.path("inbox"))
    );
}
