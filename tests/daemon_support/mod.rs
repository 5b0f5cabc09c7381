//! Driving the real `rostersync run` binary in a temp folder: start it,
//! wait for what it does, signal it, and ask it through the real commands.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "cbr-s3cr3t-t0ken-42";

pub struct Daemon {
    pub child: Child,
    pub dir: PathBuf,
    log: PathBuf,
}

/// The binary under test; `ROSTERSYNC_BIN` points elsewhere when a shared
/// target folder may hold another build's binary.
pub fn binary() -> PathBuf {
    std::env::var_os("ROSTERSYNC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| assert_cmd::cargo::cargo_bin("rostersync"))
}

impl Daemon {
    /// Starts `rostersync run -c config.toml` in `dir` and waits until it watches.
    pub fn start(dir: &Path) -> Daemon {
        let daemon = Daemon::spawn(dir);
        daemon.wait_log("watching the inboxes", Duration::from_secs(20));
        daemon
    }

    /// Starts it without waiting.
    pub fn spawn(dir: &Path) -> Daemon {
        Daemon::spawn_with(dir, &[])
    }

    /// Starts it without waiting, with more environment variables.
    pub fn spawn_with(dir: &Path, env: &[(&str, &str)]) -> Daemon {
        let runs = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("daemon-")
            })
            .count();
        let log = dir.join(format!("daemon-{runs}.stderr"));
        let child = Command::new(binary())
            .current_dir(dir)
            .args(["run", "-c", "config.toml"])
            .env("LMS_TOKEN", TOKEN)
            .env("ROSTERSYNC_LOG", "debug")
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child,
            dir: dir.to_path_buf(),
            log,
        }
    }

    pub fn log(&self) -> String {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn wait_log(&self, text: &str, timeout: Duration) {
        let log = || self.log();
        wait_until(
            timeout,
            || log().contains(text),
            || format!("the daemon never logged {text:?}:\n{}", log()),
        );
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.signal("TERM");
        let status = wait_exit(&mut self.child, Duration::from_secs(20));
        (status, self.log())
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the daemon did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool, why: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Runs a rostersync command in `dir`: (exit code, stdout, stderr).
pub fn command(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binary())
        .current_dir(dir)
        .args(args)
        .args(["-c", "config.toml"])
        .env("LMS_TOKEN", TOKEN)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Files of a folder (names), sorted; empty if it does not exist.
pub fn files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A WBT users file.
pub fn users_file(rows: &[String]) -> String {
    let mut text =
        String::from("user_extid;user_lname;user_fname;user_login;user_email;user_disable\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text
}

/// A user row: `E{n};Name{n};First{n};login{n};login{n}@x.fr;{disabled}`.
pub fn user(n: usize, disabled: bool) -> String {
    format!(
        "E{n};Name{n};First{n};login{n};login{n}@x.fr;{}",
        u8::from(disabled)
    )
}

/// The report beside an archived file, once written.
pub fn report(path: &Path) -> serde_json::Value {
    let mut name = path.as_os_str().to_owned();
    name.push(".report.json");
    serde_json::from_slice(&std::fs::read(PathBuf::from(name)).unwrap()).unwrap()
}
