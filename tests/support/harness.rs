//! The end-to-end harness: a temp folder with a config written from a
//! builder (daemon and safety settings, sources, targets of any kind), the
//! target's fake server, its secrets (environment variables, token files),
//! and the runs of the real binary in that folder: one-shot commands (`sync`,
//! `plan`, `check`, `status`, ...) and `run` as a daemon child with helpers
//! that wait for what it does.
//!
//! ```ignore
//! let mut h = Harness::builder()
//!     .fake(scim::Fake::start(TOKEN, true))
//!     .safety("max_block_percent", 50.0)
//!     .source(Source::users("users", "inbox").targets(&["idp"]))
//!     .target(Target::scim("idp").token_env("IDP_TOKEN", TOKEN).fast())
//!     .sync_log("trace")
//!     .build();                              // the target's url is the fake's
//! let (code, out, err) = h.sync_file(&h.write("inbox/u.csv", "..."));
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::fakes;

/// The token of the daemon tests' Collaborator target (`LMS_TOKEN`).
pub const TOKEN: &str = "cbr-s3cr3t-t0ken-42";

/// The binary under test; `ROSTERSYNC_BIN` points elsewhere when a shared
/// target folder may hold another build's binary.
pub fn binary() -> PathBuf {
    std::env::var_os("ROSTERSYNC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| assert_cmd::cargo::cargo_bin("rostersync"))
}

// ---------------------------------------------------------------------------
// The config, as TOML text.

/// A value as the config writes it.
pub trait Toml {
    fn toml(&self) -> String;
}

impl Toml for &str {
    fn toml(&self) -> String {
        toml::Value::String(self.to_string()).to_string()
    }
}

impl Toml for String {
    fn toml(&self) -> String {
        self.as_str().toml()
    }
}

impl Toml for bool {
    fn toml(&self) -> String {
        self.to_string()
    }
}

impl Toml for f64 {
    fn toml(&self) -> String {
        toml::Value::Float(*self).to_string()
    }
}

macro_rules! integer_toml {
    ($($t:ty),*) => {$(
        impl Toml for $t {
            fn toml(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
integer_toml!(i32, i64, u32, u64, usize);

impl Toml for &[&str] {
    fn toml(&self) -> String {
        let items: Vec<String> = self.iter().map(|s| s.toml()).collect();
        format!("[{}]", items.join(", "))
    }
}

/// TOML written as given: an inline table, say.
pub struct Raw(pub String);

impl Toml for Raw {
    fn toml(&self) -> String {
        self.0.clone()
    }
}

fn key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { name.to_string() } else { name.toml() }
}

/// The keys of one table, in the order first set; setting a key again
/// replaces its value in place.
#[derive(Clone, Default)]
pub struct Table(Vec<(String, String)>);

impl Table {
    pub fn set(&mut self, name: &str, value: impl Toml) {
        let value = value.toml();
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| k != name);
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn render(&self, header: &str, out: &mut String) {
        if self.0.is_empty() && !header.starts_with("[[") {
            return;
        }
        out.push_str(header);
        out.push('\n');
        for (name, value) in &self.0 {
            out.push_str(&format!("{} = {value}\n", key(name)));
        }
    }
}

/// One `[[source]]`: its keys, and `[source.columns]` for a custom format.
#[derive(Clone)]
pub struct Source {
    pub name: String,
    pub keys: Table,
    pub columns: Table,
}

impl Source {
    pub fn new(name: &str, kind: &str, inbox: &str) -> Source {
        let mut keys = Table::default();
        keys.set("name", name);
        keys.set("kind", kind);
        keys.set("inbox", inbox);
        Source {
            name: name.into(),
            keys,
            columns: Table::default(),
        }
    }

    pub fn users(name: &str, inbox: &str) -> Source {
        Source::new(name, "users", inbox)
    }

    pub fn orgs(name: &str, inbox: &str) -> Source {
        Source::new(name, "orgs", inbox)
    }

    pub fn set(mut self, name: &str, value: impl Toml) -> Source {
        self.keys.set(name, value);
        self
    }

    pub fn targets(self, targets: &[&str]) -> Source {
        self.set("targets", targets)
    }

    /// `[source.columns]`: canonical field = the file's header.
    pub fn column(mut self, canonical: &str, header: &str) -> Source {
        self.columns.set(canonical, header);
        self
    }

    pub fn inbox(&self) -> String {
        let quoted = self.keys.get("inbox").expect("a source has an inbox");
        toml::from_str::<toml::Table>(&format!("v = {quoted}")).unwrap()["v"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The `[[source]]` block, e.g. to add to a running daemon's config.
    pub fn toml(&self) -> String {
        let mut out = String::new();
        self.keys.render("[[source]]", &mut out);
        self.columns.render("[source.columns]", &mut out);
        out
    }
}

/// A secret a target reads: from the environment, or from a file the
/// harness writes (mode 0600) in its folder.
#[derive(Clone)]
enum Secret {
    Env(String, String),
    File(String, String),
}

/// One `[[target]]`: its keys, `[target.fields]`, and the secrets it reads.
#[derive(Clone)]
pub struct Target {
    pub name: String,
    pub keys: Table,
    pub fields: Table,
    secrets: Vec<Secret>,
}

impl Target {
    /// An HTTP target's `url` is its harness's fake's, unless set.
    pub fn new(name: &str, kind: &str) -> Target {
        let mut keys = Table::default();
        keys.set("name", name);
        keys.set("kind", kind);
        Target {
            name: name.into(),
            keys,
            fields: Table::default(),
            secrets: Vec::new(),
        }
    }

    pub fn collaborator(name: &str) -> Target {
        Target::new(name, "collaborator")
    }

    pub fn maarch(name: &str) -> Target {
        Target::new(name, "maarch")
    }

    pub fn gestimum(name: &str) -> Target {
        Target::new(name, "gestimum")
    }

    pub fn pleasanter(name: &str) -> Target {
        Target::new(name, "pleasanter")
    }

    pub fn scim(name: &str) -> Target {
        Target::new(name, "scim")
    }

    pub fn wbt_file(name: &str, dir: &str) -> Target {
        Target::new(name, "wbt-file").set("dir", dir)
    }

    pub fn set(mut self, name: &str, value: impl Toml) -> Target {
        self.keys.set(name, value);
        self
    }

    pub fn url(self, url: &str) -> Target {
        self.set("url", url)
    }

    /// `retry = { initial, max_interval, max_elapsed }`.
    pub fn retry(self, initial: &str, max_interval: &str, max_elapsed: &str) -> Target {
        let retry = format!(
            "{{ initial = {}, max_interval = {}, max_elapsed = {} }}",
            initial.toml(),
            max_interval.toml(),
            max_elapsed.toml()
        );
        self.set("retry", Raw(retry))
    }

    /// What the tests against a fake use: a 2 s timeout and retries within
    /// milliseconds, given up after 10 s.
    pub fn fast(self) -> Target {
        self.set("timeout", "2s").retry("1ms", "5ms", "10s")
    }

    /// `[target.fields]`: target field = canonical field ("" drops one).
    pub fn field(mut self, target_field: &str, canonical: &str) -> Target {
        self.fields.set(target_field, canonical);
        self
    }

    pub fn user(self, user: &str) -> Target {
        self.set("user", user)
    }

    /// `token_env = VARIABLE`, the variable set to `value` for every run.
    pub fn token_env(self, variable: &str, value: &str) -> Target {
        self.secret_env("token_env", variable, value)
    }

    /// `token_file = PATH`, the file written with `value`.
    pub fn token_file(self, path: &str, value: &str) -> Target {
        self.secret_file("token_file", path, value)
    }

    pub fn password_env(self, variable: &str, value: &str) -> Target {
        self.secret_env("password_env", variable, value)
    }

    pub fn password_file(self, path: &str, value: &str) -> Target {
        self.secret_file("password_file", path, value)
    }

    fn secret_env(mut self, key: &str, variable: &str, value: &str) -> Target {
        self.secrets
            .push(Secret::Env(variable.into(), value.into()));
        self.set(key, variable)
    }

    fn secret_file(mut self, key: &str, path: &str, value: &str) -> Target {
        self.secrets.push(Secret::File(path.into(), value.into()));
        self.set(key, path)
    }

    /// The `[[target]]` block.
    pub fn toml(&self) -> String {
        let mut out = String::new();
        self.keys.render("[[target]]", &mut out);
        self.fields.render("[target.fields]", &mut out);
        out
    }
}

/// A fake server whose URL the targets without one get.
pub trait Served {
    fn base_url(&self) -> Option<&str>;
}

impl Served for () {
    fn base_url(&self) -> Option<&str> {
        None
    }
}

impl<S> Served for fakes::Server<S> {
    fn base_url(&self) -> Option<&str> {
        Some(&self.url)
    }
}

/// Builds a [`Harness`]: `[daemon]` starts with `state_dir = "state"` and
/// `log_dir = "log"`; every source's inbox is created.
pub struct Builder<F = ()> {
    fake: F,
    pub daemon: Table,
    pub safety: Table,
    pub sources: Vec<Source>,
    pub targets: Vec<Target>,
    /// `[[notify]]` tables.
    pub notify: Vec<Table>,
    sync_log: Option<String>,
    never_shows: Vec<String>,
}

impl<F: Served> Builder<F> {
    /// The target's fake server, kept by the harness (`harness.fake`).
    pub fn fake<G: Served>(self, fake: G) -> Builder<G> {
        Builder {
            fake,
            daemon: self.daemon,
            safety: self.safety,
            sources: self.sources,
            targets: self.targets,
            notify: self.notify,
            sync_log: self.sync_log,
            never_shows: self.never_shows,
        }
    }

    pub fn daemon(mut self, name: &str, value: impl Toml) -> Self {
        self.daemon.set(name, value);
        self
    }

    pub fn safety(mut self, name: &str, value: impl Toml) -> Self {
        self.safety.set(name, value);
        self
    }

    pub fn source(mut self, source: Source) -> Self {
        self.sources.push(source);
        self
    }

    pub fn target(mut self, target: Target) -> Self {
        self.targets.push(target);
        self
    }

    /// A `[[notify]]` with these keys.
    pub fn notify(mut self, keys: Table) -> Self {
        self.notify.push(keys);
        self
    }

    /// Changes a source added before (by name).
    pub fn edit_source(mut self, name: &str, edit: impl FnOnce(Source) -> Source) -> Self {
        let at = self.sources.iter().position(|s| s.name == name);
        let at = at.unwrap_or_else(|| panic!("no source {name}"));
        self.sources[at] = edit(self.sources[at].clone());
        self
    }

    /// Changes a target added before (by name).
    pub fn edit_target(mut self, name: &str, edit: impl FnOnce(Target) -> Target) -> Self {
        let at = self.targets.iter().position(|t| t.name == name);
        let at = at.unwrap_or_else(|| panic!("no target {name}"));
        self.targets[at] = edit(self.targets[at].clone());
        self
    }

    /// `ROSTERSYNC_LOG` for [`Harness::sync_file`] (at "trace", its check that
    /// no secret shows covers every log line).
    pub fn sync_log(mut self, level: &str) -> Self {
        self.sync_log = Some(level.into());
        self
    }

    /// A value [`Harness::sync_file`] checks never shows, besides the secrets
    /// of the moment (the right one while a test hands out a wrong one).
    pub fn never_shows(mut self, value: &str) -> Self {
        self.never_shows.push(value.into());
        self
    }

    /// The config text, the fake's URL given to the targets without one.
    pub fn config(&self) -> String {
        let mut out = String::new();
        self.daemon.render("[daemon]", &mut out);
        if !self.safety.0.is_empty() {
            out.push('\n');
            self.safety.render("[safety]", &mut out);
        }
        for source in &self.sources {
            out.push('\n');
            out.push_str(&source.toml());
        }
        for target in &self.targets {
            let mut target = target.clone();
            if target.keys.get("url").is_none() && target.keys.get("kind") != Some("\"wbt-file\"") {
                let url = self.fake.base_url().unwrap_or_else(|| {
                    panic!(
                        "target {} has no url and no fake to take it from",
                        target.name
                    )
                });
                target = target.url(url);
            }
            out.push('\n');
            out.push_str(&target.toml());
        }
        for notify in &self.notify {
            out.push('\n');
            notify.render("[[notify]]", &mut out);
        }
        out
    }

    /// Writes the folder: config.toml, the inboxes, the secret files.
    pub fn build(self) -> Harness<F> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), self.config()).unwrap();
        for source in &self.sources {
            std::fs::create_dir_all(dir.path().join(source.inbox())).unwrap();
        }
        let mut env = Vec::new();
        for secret in self.targets.iter().flat_map(|t| &t.secrets) {
            match secret {
                Secret::Env(variable, value) => env.push((variable.clone(), value.clone())),
                Secret::File(path, value) => write_secret(&dir.path().join(path), value),
            }
        }
        Harness {
            dir,
            fake: self.fake,
            env,
            never_shows: self.never_shows,
            sync_log: self.sync_log,
            files: 0,
        }
    }
}

fn write_secret(path: &Path, value: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, value).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

// ---------------------------------------------------------------------------
// The harness.

/// A test file's harness with that file's own helpers, added in an
/// `impl Run<ItsFake>` block (a `type Run = support::Run<Fake>;` there).
pub struct Run<F>(pub Harness<F>);

impl<F> std::ops::Deref for Run<F> {
    type Target = Harness<F>;
    fn deref(&self) -> &Harness<F> {
        &self.0
    }
}

impl<F> std::ops::DerefMut for Run<F> {
    fn deref_mut(&mut self) -> &mut Harness<F> {
        &mut self.0
    }
}

/// A temp folder with its config.toml, the fake, the secrets, and the runs
/// of the real binary there (`-c config.toml`, in the folder).
pub struct Harness<F = ()> {
    pub dir: tempfile::TempDir,
    pub fake: F,
    /// The secrets in the environment of every run: (variable, value).
    env: Vec<(String, String)>,
    never_shows: Vec<String>,
    sync_log: Option<String>,
    files: u32,
}

impl Harness {
    pub fn builder() -> Builder {
        let mut daemon = Table::default();
        daemon.set("state_dir", "state");
        daemon.set("log_dir", "log");
        Builder {
            fake: (),
            daemon,
            safety: Table::default(),
            sources: Vec::new(),
            targets: Vec::new(),
            notify: Vec::new(),
            sync_log: None,
            never_shows: Vec::new(),
        }
    }

    /// An empty temp folder, no config: for a test that writes its own.
    pub fn bare() -> Harness {
        Harness {
            dir: tempfile::tempdir().unwrap(),
            fake: (),
            env: Vec::new(),
            never_shows: Vec::new(),
            sync_log: None,
            files: 0,
        }
    }
}

impl<F> Harness<F> {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes a file (its folder created if need be); returns its path.
    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Drops a file the way a careful exporter does: written under a
    /// temporary name, then renamed. Returns its path.
    pub fn drop_file(&self, relative: &str, text: &str) -> PathBuf {
        let temporary = self.write(&format!("{relative}.part"), text);
        let path = self.path(relative);
        std::fs::rename(temporary, &path).unwrap();
        path
    }

    /// `FOLDER/STEMn.csv`, n counting the harness's numbered files from 1.
    pub fn numbered(&mut self, folder: &str, stem: &str) -> String {
        self.files += 1;
        format!("{folder}/{stem}{}.csv", self.files)
    }

    /// Writes `header` and `rows` as the next numbered file of `folder`
    /// and syncs it: (exit code, stdout, stderr).
    pub fn sync_rows(
        &mut self,
        folder: &str,
        stem: &str,
        header: &str,
        rows: &[impl AsRef<str>],
    ) -> (i32, String, String) {
        let name = self.numbered(folder, stem);
        let path = self.write(&name, &csv(header, rows));
        self.sync_file(&path)
    }

    /// Sets (or changes) a secret of every run's environment.
    pub fn set_secret(&mut self, variable: &str, value: &str) {
        match self.env.iter_mut().find(|(v, _)| v == variable) {
            Some(entry) => entry.1 = value.into(),
            None => self.env.push((variable.into(), value.into())),
        }
    }

    /// Writes a secret file (mode 0600).
    pub fn secret_file(&self, relative: &str, value: &str) {
        write_secret(&self.path(relative), value);
    }

    pub fn config(&self) -> String {
        std::fs::read_to_string(self.path("config.toml")).unwrap()
    }

    /// Rewrites config.toml (a running daemon sees it on SIGHUP).
    pub fn rewrite_config(&self, edit: impl FnOnce(String) -> String) {
        std::fs::write(self.path("config.toml"), edit(self.config())).unwrap();
    }

    /// The binary in the folder, the secrets in its environment.
    pub fn command(&self) -> Command {
        let mut command = Command::new(binary());
        command
            .current_dir(self.root())
            .env_remove("ROSTERSYNC_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// `rostersync ARGS -c config.toml`: (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with(args, &[])
    }

    /// [`Harness::run`] with more environment variables.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let output = self
            .command()
            .args(args)
            .args(["-c", "config.toml"])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `rostersync sync -c config.toml FILE`, at the builder's `sync_log`
    /// level: (exit code, stdout, stderr). Fails the test if a secret (or a
    /// `never_shows` value) shows in either output, or if the process was
    /// killed by a signal (with the end of what it wrote).
    pub fn sync_file(&self, file: &Path) -> (i32, String, String) {
        let mut command = self.command();
        command.args(["sync", "-c", "config.toml"]).arg(file);
        if let Some(level) = &self.sync_log {
            command.env("ROSTERSYNC_LOG", level);
        }
        let output = command.output().unwrap();
        let out = String::from_utf8(output.stdout).unwrap();
        let err = String::from_utf8(output.stderr).unwrap();
        for (variable, value) in &self.env {
            assert!(
                !out.contains(value.as_str()) && !err.contains(value.as_str()),
                "the secret in {variable} leaked into the output"
            );
        }
        for value in &self.never_shows {
            assert!(
                !out.contains(value.as_str()) && !err.contains(value.as_str()),
                "a secret ({} characters) leaked into the output",
                value.len()
            );
        }
        let Some(code) = output.status.code() else {
            let tail: Vec<&str> = err.lines().rev().take(40).collect();
            panic!(
                "rostersync was killed: {:?}\n{}",
                output.status,
                tail.join("\n")
            );
        };
        (code, out, err)
    }

    /// The connector of a target, built in this process from config.toml
    /// (secrets read as `check` reads them).
    pub fn connector(&self, target: &str) -> rostersync::connectors::AnyConnector {
        let config = rostersync::config::load(
            &self.path("config.toml"),
            rostersync::config::CheckLevel::Full,
        )
        .unwrap_or_else(|error| panic!("{error:?}"));
        let target = config
            .targets
            .iter()
            .find(|t| t.name.get_ref() == target)
            .unwrap_or_else(|| panic!("no target {target}"));
        rostersync::connectors::AnyConnector::from_config(target).unwrap()
    }

    /// Starts `rostersync run -c config.toml` and waits until it watches.
    pub fn start(&self) -> Daemon {
        let daemon = self.spawn();
        daemon.wait_log("watching the inboxes", Duration::from_secs(20));
        daemon
    }

    /// Starts it without waiting.
    pub fn spawn(&self) -> Daemon {
        self.spawn_with(&[])
    }

    /// Starts it without waiting, with more environment variables.
    pub fn spawn_with(&self, env: &[(&str, &str)]) -> Daemon {
        self.spawn_custom(|command| {
            command.envs(env.iter().copied());
        })
    }

    /// Starts it without waiting, its command changed by `customise` last
    /// (its environment, say: a service manager's variables).
    pub fn spawn_custom(&self, customise: impl FnOnce(&mut Command)) -> Daemon {
        Daemon::spawn(self, customise)
    }

    /// The files archived in an inbox: neither their reports and actions
    /// files nor the hidden temporary files of atomic writes
    /// (`.NAME.PID.tmp`), which a report being rewritten shows for a moment
    /// and a SIGKILL in mid-write leaves.
    pub fn archived(&self, inbox: &str) -> Vec<String> {
        files(&self.path(inbox).join("archive"))
            .into_iter()
            .filter(|n| {
                !n.ends_with(".report.json")
                    && !n.ends_with(".actions.jsonl")
                    && !n.starts_with('.')
            })
            .collect()
    }

    /// The files archived in an inbox when every one's report is complete.
    pub fn complete(&self, inbox: &str) -> Option<Vec<String>> {
        let archived = self.archived(inbox);
        let archive = self.path(inbox).join("archive");
        archived
            .iter()
            .all(|name| {
                std::fs::read(archive.join(format!("{name}.report.json")))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .is_some_and(|r| r["complete"] == true)
            })
            .then_some(archived)
    }

    /// Waits until at least `n` files are archived in `inbox`, their
    /// reports complete; returns the archived files.
    pub fn wait_archived(&self, daemon: &Daemon, inbox: &str, n: usize) -> Vec<String> {
        wait_until(
            Duration::from_secs(20),
            || self.complete(inbox).is_some_and(|a| a.len() >= n),
            || {
                format!(
                    "{n} complete archived files expected, got {:?}\n{}",
                    self.archived(inbox),
                    daemon.log()
                )
            },
        );
        self.archived(inbox)
    }
}

// ---------------------------------------------------------------------------
// The daemon child.

/// `rostersync run` in a harness's folder, its stderr in `daemon-N.stderr`.
pub struct Daemon {
    pub child: Child,
    pub dir: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn spawn<F>(harness: &Harness<F>, customise: impl FnOnce(&mut Command)) -> Daemon {
        let dir = harness.root();
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
        let mut command = harness.command();
        command
            .args(["run", "-c", "config.toml"])
            .env("ROSTERSYNC_LOG", "debug")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        customise(&mut command);
        let child = command.spawn().unwrap();
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

// ---------------------------------------------------------------------------
// Files.

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

/// A CSV text: the header line, then one line per row.
pub fn csv(header: &str, rows: &[impl AsRef<str>]) -> String {
    let mut text = format!("{header}\n");
    for row in rows {
        text.push_str(row.as_ref());
        text.push('\n');
    }
    text
}

/// The header of [`users_file`].
pub const USERS_HEADER: &str =
    "user_extid;user_lname;user_fname;user_login;user_email;user_disable";

/// A WBT users file.
pub fn users_file(rows: &[String]) -> String {
    csv(USERS_HEADER, rows)
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
