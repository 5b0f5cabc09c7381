//! The configuration file: its schema (README, *Configure*; every key in `config.example.toml`), parsing with
//! line and column on every problem, and the semantic checks of [`check`].

mod check;
mod duration;
mod gather;
pub mod size;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// A target's `kind`: the registry of connectors defines them.
pub use crate::connectors::TargetKind;
pub use duration::HumanDuration;
pub use size::ByteSize;

use crate::csv_safe::Formulas;
use crate::ingest::columns::Format;
use crate::ingest::decode::EncodingChoice;
use crate::ingest::record::{Field, RecordKind};
use crate::ingest::values::DateFormat;
use crate::ingest::{Mode, SourceSpec};
use crate::secret::SecretSource;

/// Where the config is looked for when `-c` is not given.
pub const DEFAULT_PATH: &str = "/etc/rostersync/config.toml";
pub const PATH_ENV: &str = "ROSTERSYNC_CONFIG";

/// `-c`, else `$ROSTERSYNC_CONFIG`, else `/etc/rostersync/config.toml`.
pub fn locate(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(PATH_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub daemon: DaemonConfig,
    #[serde(default)]
    pub safety: SafetyConfig,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    #[serde(default, rename = "target")]
    pub targets: Vec<TargetConfig>,
    /// `[[notify]]`: where what an operator must act on is sent.
    #[serde(default)]
    pub notify: Vec<NotifyConfig>,
    /// What `check` found worth saying that does not stop the config
    /// (an inbox that does not exist yet): printed by `check`, logged at start.
    #[serde(skip)]
    pub warnings: Vec<ConfigProblem>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Holds the sled database and the control socket.
    pub state_dir: PathBuf,
    /// Holds the rolling logs and `status.json`.
    pub log_dir: PathBuf,
    pub log_format: LogFormat,
    /// Log files are rolled daily; how many to keep.
    pub log_keep: u32,
    /// Once asked to stop (SIGTERM, SIGINT), how long requests in flight
    /// may take to finish before they are cut (sent again on the next start).
    pub grace: HumanDuration,
    /// The inboxes are scanned this often even without an event (events
    /// can be missed: a share remounted, a watch limit reached). Above 0.
    pub rescan: Spanned<HumanDuration>,
    /// How many actions per target and action a `.report.json` lists; the
    /// rest are in `.actions.jsonl` beside it.
    pub report_actions: usize,
    /// `host:port` where Prometheus scrapes `/metrics` (and `/healthz`,
    /// `/readyz`); absent: no metrics server.
    pub metrics: Option<Spanned<String>>,
}

impl DaemonConfig {
    /// The metrics server's address, when set and valid (`check` refuses
    /// one that is not).
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref()?.get_ref().parse().ok()
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            state_dir: PathBuf::from("/var/lib/rostersync"),
            log_dir: PathBuf::from("/var/log/rostersync"),
            log_format: LogFormat::Text,
            log_keep: 14,
            grace: HumanDuration(std::time::Duration::from_secs(5)),
            rescan: Spanned::new(0..0, HumanDuration(std::time::Duration::from_secs(10))),
            report_actions: 1_000,
            metrics: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The rules that hold a plan instead of applying it (README, *How changes are worked out*: Safety).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafetyConfig {
    pub max_block_percent: Spanned<f64>,
    pub max_block_count: u64,
    pub max_shrink_percent: Spanned<f64>,
    pub min_rows: u64,
    /// Per field: a file changing it for more than this share of the
    /// source's records is held (`0`: off).
    pub max_change_percent: Spanned<f64>,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            max_block_percent: Spanned::new(0..0, 10.0),
            max_block_count: 500,
            max_shrink_percent: Spanned::new(0..0, 30.0),
            min_rows: 1,
            max_change_percent: Spanned::new(0..0, 50.0),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: Spanned<String>,
    pub kind: RecordKind,
    pub inbox: Spanned<PathBuf>,
    #[serde(default = "default_mode")]
    pub mode: Mode,
    #[serde(default = "default_key")]
    pub key: Spanned<KeyField>,
    /// Above 0, valid rows go on and up to this many invalid rows are reported.
    #[serde(default)]
    pub max_invalid_rows: usize,
    #[serde(default = "default_format")]
    pub format: Spanned<FormatKind>,
    /// `[source.columns]`: canonical field = header (with `format = "custom"`).
    pub columns: Option<Spanned<BTreeMap<String, String>>>,
    pub encoding: Option<Spanned<String>>,
    pub delimiter: Option<Spanned<String>>,
    pub date_format: Option<Spanned<String>>,
    /// Create a new record that is already disabled?
    #[serde(default)]
    pub create_disabled: bool,
    /// A record starting within this time is created now, blocked, and
    /// unblocked on its day (README, *Accounts before the first day*).
    pub prehire: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub ready: Ready,
    #[serde(default = "default_settle")]
    pub settle: HumanDuration,
    /// Poll instead of inotify (network shares deliver no events).
    #[serde(default)]
    pub poll: bool,
    /// A bigger file is refused before it is read.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
    pub targets: Spanned<Vec<Spanned<String>>>,
}

fn default_mode() -> Mode {
    Mode::Full
}

fn default_format() -> Spanned<FormatKind> {
    Spanned::new(0..0, FormatKind::Wbt)
}

fn default_fields() -> Spanned<BTreeMap<String, String>> {
    Spanned::new(0..0, BTreeMap::new())
}

fn default_key() -> Spanned<KeyField> {
    Spanned::new(0..0, KeyField::ExtId)
}

/// What `max_file_size` is when not set, and what `validate` without
/// `--source` applies.
pub const DEFAULT_MAX_FILE_SIZE: ByteSize = ByteSize::GIB;

fn default_max_file_size() -> ByteSize {
    DEFAULT_MAX_FILE_SIZE
}

fn default_settle() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(2))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyField {
    ExtId,
    Login,
}

impl KeyField {
    pub fn field(self) -> Field {
        match self {
            KeyField::ExtId => Field::ExtId,
            KeyField::Login => Field::Login,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatKind {
    #[default]
    Wbt,
    Collaborator,
    Custom,
}

/// When a file in the inbox counts as complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ready {
    /// Size and mtime unchanged for `settle`.
    #[default]
    Stable,
    /// `NAME.done` or `NAME.ok` exists.
    Marker,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub name: Spanned<String>,
    pub kind: TargetKind,
    pub url: Option<Spanned<String>>,
    /// `wbt-file`: the folder WBT Manager imports from.
    pub dir: Option<Spanned<PathBuf>>,
    /// `wbt-file`, `pleasanter`: the encoding of the files written or sent.
    pub encoding: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    pub token_file: Option<Spanned<PathBuf>>,
    pub token_credential: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    /// `gestimum`: the company file (`societe.fichier`) users are imported into.
    pub company: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<PathBuf>>,
    pub password_credential: Option<Spanned<String>>,
    /// A private CA to trust, in PEM.
    pub ca_file: Option<Spanned<PathBuf>>,
    #[serde(default = "default_batch_size")]
    pub batch_size: Spanned<usize>,
    #[serde(default = "default_concurrency")]
    pub concurrency: Spanned<usize>,
    pub rate_per_sec: Option<Spanned<f64>>,
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    #[serde(default)]
    pub retry: RetryConfig,
    /// Target field = canonical field; overrides the kind's defaults.
    #[serde(default = "default_fields")]
    pub fields: Spanned<BTreeMap<String, String>>,
    /// `gestimum`: the import column that carries the dormant flag (`1`
    /// blocked, `0` active); default `USR_DORT`.
    pub dormant_column: Option<Spanned<String>>,
    /// `wbt-file`, `pleasanter`, `gestimum`: whether CSV values a
    /// spreadsheet would evaluate are written as text (`csv_safe`); default on.
    pub neutralise_formulas: Option<Spanned<bool>>,
    /// `scim`, `maarch`, `pleasanter`: the canonical fields by which an
    /// account the target already holds is found before one is created, in
    /// order ([`DEFAULT_MATCH`] when absent; `[]`: none is looked for).
    #[serde(rename = "match")]
    pub matching: Option<Spanned<Vec<Spanned<String>>>>,
    /// An account blocked at least this long is deleted, where the kind
    /// can delete (README, *Deleting leavers*); absent: never.
    pub delete_after: Option<Spanned<HumanDuration>>,
    /// A plan (a file's, or the daily re-plan) that would delete more
    /// accounts than this at the target is held.
    #[serde(default = "default_max_delete_count")]
    pub max_delete_count: Spanned<u64>,
    /// Which records the target holds (README, *Scope*); absent: all.
    pub scope: Option<Spanned<ScopeConfig>>,
}

fn default_max_delete_count() -> Spanned<u64> {
    Spanned::new(0..0, 50)
}

impl SourceConfig {
    /// `prehire` in whole days (rounded down: never sooner than asked); 0 when absent.
    pub fn prehire_days(&self) -> u32 {
        self.prehire.as_ref().map_or(0, |prehire| {
            (prehire.get_ref().0.as_secs() / 86_400).min(u64::from(u32::MAX)) as u32
        })
    }
}

impl TargetConfig {
    /// `delete_after` in whole days (rounded up: never sooner than asked).
    pub fn delete_after_days(&self) -> Option<u32> {
        self.delete_after.as_ref().map(|after| {
            let seconds = after.get_ref().0.as_secs();
            seconds.div_ceil(86_400).min(u64::from(u32::MAX)) as u32
        })
    }
}

/// `[target.scope]`: expressions over the canonical fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfig {
    /// A record is in scope when it matches any of these (or there are none)…
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// …and none of these.
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    #[serde(default)]
    pub out_of_scope: OutOfScope,
}

/// What becomes of a record the target held once it is out of scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutOfScope {
    /// Blocked, as a leaver (and counted so by the safety rules); never created.
    #[default]
    Block,
    /// Left as the target holds it: no create, update or block.
    Ignore,
}

/// One `[[notify]]`: a webhook or an e-mail address list, the events it
/// takes and how often it may be sent a message (README, *Notifications*).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub kind: Spanned<NotifyKind>,
    #[serde(default = "default_events")]
    pub events: Spanned<Vec<Spanned<EventKind>>>,
    /// Events of one kind (and source or target) within this time of the
    /// last message about them go together in the next one.
    #[serde(default = "default_quarter_hour")]
    pub min_interval: Spanned<HumanDuration>,
    /// `target_down`: a target failing with no success for this long.
    #[serde(default = "default_quarter_hour")]
    pub down_after: Spanned<HumanDuration>,
    /// Each attempt to deliver a message.
    #[serde(default = "default_notify_timeout")]
    pub timeout: Spanned<HumanDuration>,
    /// How a failed delivery is tried again, as a target's `retry`.
    #[serde(default)]
    pub retry: RetryConfig,
    /// `webhook`: where the JSON body is POSTed.
    pub url: Option<Spanned<String>>,
    /// `webhook`: the key of the body's HMAC-SHA256 signature.
    pub secret_env: Option<Spanned<String>>,
    pub secret_file: Option<Spanned<PathBuf>>,
    pub secret_credential: Option<Spanned<String>>,
    /// `email`: the SMTP server, `host:port`.
    pub smtp: Option<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<Vec<Spanned<String>>>>,
    /// `email`: `starttls` (default), `tls` (implicit, port 465) or `none`
    /// (the server on this machine only).
    pub tls: Option<Spanned<SmtpTls>>,
    pub user: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<PathBuf>>,
    pub password_credential: Option<Spanned<String>>,
}

pub use crate::notify::EventKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    Webhook,
    Email,
}

impl std::fmt::Display for NotifyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotifyKind::Webhook => "webhook",
            NotifyKind::Email => "email",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    #[default]
    Starttls,
    Tls,
    None,
}

fn default_events() -> Spanned<Vec<Spanned<EventKind>>> {
    let events = EventKind::DEFAULT
        .iter()
        .map(|kind| Spanned::new(0..0, *kind))
        .collect();
    Spanned::new(0..0, events)
}

fn default_quarter_hour() -> Spanned<HumanDuration> {
    Spanned::new(0..0, HumanDuration(std::time::Duration::from_secs(15 * 60)))
}

fn default_notify_timeout() -> Spanned<HumanDuration> {
    Spanned::new(0..0, HumanDuration(std::time::Duration::from_secs(30)))
}

impl NotifyConfig {
    /// The webhook's signing key, if the config says where to find one.
    pub fn secret_source(&self) -> Option<SecretSource> {
        secret_source(&self.secret_env, &self.secret_file, &self.secret_credential)
    }

    /// The SMTP password of `user`, if the config says where to find one.
    pub fn password_source(&self) -> Option<SecretSource> {
        secret_source(
            &self.password_env,
            &self.password_file,
            &self.password_credential,
        )
    }

    pub fn takes(&self, event: EventKind) -> bool {
        self.events.get_ref().iter().any(|e| *e.get_ref() == event)
    }

    /// How logs and `check --online --notify` name it: its kind and where
    /// it goes (a URL's scheme, host and port only: a URL may carry a token).
    pub fn shown(&self) -> String {
        match self.kind.get_ref() {
            NotifyKind::Webhook => {
                let url = self
                    .url
                    .as_ref()
                    .map(|u| u.get_ref().as_str())
                    .unwrap_or("");
                let shown = url::Url::parse(url)
                    .map(|u| {
                        let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
                        format!("{}://{}{port}", u.scheme(), u.host_str().unwrap_or(""))
                    })
                    .unwrap_or_else(|_| "its url".into());
                format!("webhook {shown}")
            }
            NotifyKind::Email => format!(
                "email via {}",
                self.smtp
                    .as_ref()
                    .map(|s| s.get_ref().as_str())
                    .unwrap_or("")
            ),
        }
    }
}

/// The `match` of a target that names none.
pub const DEFAULT_MATCH: [Field; 3] = [Field::ExtId, Field::Login, Field::Email];

fn default_batch_size() -> Spanned<usize> {
    Spanned::new(0..0, 500)
}

fn default_concurrency() -> Spanned<usize> {
    Spanned::new(0..0, 4)
}

fn default_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub initial: HumanDuration,
    pub max_interval: HumanDuration,
    pub max_elapsed: HumanDuration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        use std::time::Duration;
        RetryConfig {
            initial: HumanDuration(Duration::from_secs(1)),
            max_interval: HumanDuration(Duration::from_secs(5 * 60)),
            max_elapsed: HumanDuration(Duration::from_secs(60 * 60)),
        }
    }
}

impl TargetConfig {
    /// How the target's CSV writes values a spreadsheet would evaluate.
    pub fn formulas(&self) -> Formulas {
        match self.neutralise_formulas.as_ref().map(|on| *on.get_ref()) {
            Some(false) => Formulas::Keep,
            Some(true) | None => Formulas::Neutralise,
        }
    }

    /// The fields accounts the target already holds are found by, in
    /// order: its `match` (names that are no field left out: `check`
    /// refuses them), or [`DEFAULT_MATCH`].
    pub fn match_fields(&self) -> Vec<Field> {
        match &self.matching {
            None => DEFAULT_MATCH.to_vec(),
            Some(names) => names
                .get_ref()
                .iter()
                .filter_map(|name| Field::from_name(name.get_ref()))
                .collect(),
        }
    }

    /// The API token, if the config says where to find one.
    pub fn token_source(&self) -> Option<SecretSource> {
        secret_source(&self.token_env, &self.token_file, &self.token_credential)
    }

    /// The password of `user`, if the config says where to find one.
    pub fn password_source(&self) -> Option<SecretSource> {
        secret_source(
            &self.password_env,
            &self.password_file,
            &self.password_credential,
        )
    }
}

fn secret_source(
    env: &Option<Spanned<String>>,
    file: &Option<Spanned<PathBuf>>,
    credential: &Option<Spanned<String>>,
) -> Option<SecretSource> {
    env.as_ref()
        .map(|e| SecretSource::Env(e.get_ref().clone()))
        .or_else(|| {
            file.as_ref()
                .map(|f| SecretSource::File(f.get_ref().clone()))
        })
        .or_else(|| {
            credential
                .as_ref()
                .map(|c| SecretSource::Credential(c.get_ref().clone()))
        })
}

impl SourceConfig {
    /// How ingest reads this source's files. Fails with a message for a
    /// setting the config check would also refuse.
    pub fn spec(&self) -> Result<SourceSpec, SpecError> {
        let format = match self.format.get_ref() {
            FormatKind::Wbt => Format::Wbt,
            FormatKind::Collaborator => Format::Collaborator,
            FormatKind::Custom => Format::Custom(
                self.columns
                    .as_ref()
                    .map(|c| c.get_ref().clone())
                    .unwrap_or_default(),
            ),
        };
        let encoding_label = self.encoding.as_ref().map_or("auto", |e| e.get_ref());
        let encoding = EncodingChoice::from_label(encoding_label)
            .ok_or_else(|| SpecError::Encoding(encoding_label.to_string()))?;
        let delimiter = match self.delimiter.as_ref().map(|d| d.get_ref().as_str()) {
            None => None,
            Some(text) => parse_delimiter(text).map_err(SpecError::Delimiter)?,
        };
        let date_text = self
            .date_format
            .as_ref()
            .map_or(format.default_date_format(), |d| d.get_ref());
        let dates = DateFormat::new(date_text)
            .ok_or_else(|| SpecError::DateFormat(date_text.to_string()))?;
        Ok(SourceSpec {
            kind: self.kind,
            mode: self.mode,
            key: self.key.get_ref().field(),
            format,
            encoding,
            delimiter,
            dates,
            max_invalid_rows: self.max_invalid_rows,
        })
    }
}

/// A source setting that ingest cannot use (the config check refuses it
/// too, with its line and column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("unknown encoding {0:?}")]
    Encoding(String),
    /// What [`parse_delimiter`] says of it.
    #[error("{0}")]
    Delimiter(String),
    #[error("date_format {0:?} cannot read a date")]
    DateFormat(String),
}

/// `auto`, one of `;` `,` `|`, or a tab (`"\t"` or `tab`).
pub fn parse_delimiter(text: &str) -> Result<Option<u8>, String> {
    match text {
        "auto" => Ok(None),
        "tab" | "\t" => Ok(Some(b'\t')),
        ";" | "," | "|" => Ok(Some(text.as_bytes()[0])),
        _ => Err(format!(
            "delimiter {text:?} is not auto, \";\", \",\", \"|\" or \"tab\""
        )),
    }
}

/// A problem in the config file, located in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // `error`, not `source`: the message says it already, a chain would repeat it.
    #[error("cannot read config {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}", render(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

/// `FILE:LINE:COLUMN: warning: message`, as `check` prints a warning.
pub fn render_warning(path: &Path, warning: &ConfigProblem) -> String {
    format!(
        "{}:{}:{}: warning: {}",
        path.display(),
        warning.line,
        warning.column,
        warning.message
    )
}

fn render(path: &Path, problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}:{}:{}: {}", path.display(), p.line, p.column, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How far the checks go: `check` and the daemon verify secrets can be read;
/// `validate` only needs a source's reading settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckLevel {
    Full,
    SourcesOnly,
}

/// Reads, parses and checks a config file. Relative paths in it are taken
/// from the config file's own folder.
pub fn load(path: &Path, level: CheckLevel) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let base = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parse(&text, base, level).map_err(|problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
}

/// Parses and checks config text; relative paths are resolved against `base`.
pub fn parse(text: &str, base: &Path, level: CheckLevel) -> Result<Config, Vec<ConfigProblem>> {
    let (config, mut problems) = gather::deserialize::<Config>(text);
    let Some(mut config) = config else {
        return Err(problems);
    };
    config.resolve_paths(base);
    let checked = check::check(&config, text, level);
    problems.extend(checked.problems);
    problems.sort_by_key(|p| (p.line, p.column));
    config.warnings = checked.warnings;
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

impl Config {
    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.daemon.state_dir);
        resolve(&mut self.daemon.log_dir);
        for source in &mut self.sources {
            resolve(source.inbox.get_mut());
        }
        for notify in &mut self.notify {
            for path in [&mut notify.secret_file, &mut notify.password_file]
                .into_iter()
                .flatten()
            {
                resolve(path.get_mut());
            }
        }
        for target in &mut self.targets {
            for path in [
                &mut target.dir,
                &mut target.token_file,
                &mut target.password_file,
                &mut target.ca_file,
            ]
            .into_iter()
            .flatten()
            {
                resolve(path.get_mut());
            }
        }
    }

    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name.get_ref() == name)
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (u64, u64) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.bytes().filter(|&b| b == b'\n').count() as u64 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() as u64 + 1;
    (line, column)
}
