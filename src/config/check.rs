//! Semantic checks of a parsed config: everything serde cannot say.

mod lifecycle;
mod notify;

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::{
    CheckLevel, Config, ConfigProblem, FormatKind, KeyField, SourceConfig, TargetConfig,
    TargetKind, line_col, parse_delimiter,
};
use crate::connectors::{Place, Settings};
use crate::ingest::decode::EncodingChoice;
use crate::ingest::record::{Field, FieldName, RecordKind};
use crate::ingest::values::DateFormat;
use crate::secret::{SecretError, check_not_world_readable};

struct Checker<'a> {
    text: &'a str,
    problems: Vec<ConfigProblem>,
    warnings: Vec<ConfigProblem>,
}

impl Checker<'_> {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let problem = self.located(span, message);
        self.problems.push(problem);
    }

    fn warn(&mut self, span: Range<usize>, message: impl Into<String>) {
        let warning = self.located(span, message);
        self.warnings.push(warning);
    }

    fn located(&self, span: Range<usize>, message: impl Into<String>) -> ConfigProblem {
        let (line, column) = line_col(self.text, span.start);
        ConfigProblem {
            line,
            column,
            message: message.into(),
        }
    }
}

/// What the checks found: problems refuse the config, warnings do not.
pub struct Checked {
    pub problems: Vec<ConfigProblem>,
    pub warnings: Vec<ConfigProblem>,
}

pub fn check(config: &Config, text: &str, level: CheckLevel) -> Checked {
    let mut checker = Checker {
        text,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let c = &mut checker;
    if config.sources.is_empty() {
        c.at(
            0..0,
            "no [[source]] is defined: rostersync has nothing to read",
        );
    }
    check_safety(c, config);
    if level == CheckLevel::Full {
        check_dir(c, 0..0, "daemon.state_dir", &config.daemon.state_dir);
        check_dir(c, 0..0, "daemon.log_dir", &config.daemon.log_dir);
        if config.daemon.log_keep == 0 {
            c.at(0..0, "daemon.log_keep must be at least 1");
        }
        let rescan = &config.daemon.rescan;
        if rescan.get_ref().0.is_zero() {
            c.at(
                rescan.span(),
                "daemon.rescan must be above 0 (how often the inboxes are scanned without an event)",
            );
        }
        if config.targets.is_empty() {
            c.at(
                0..0,
                "no [[target]] is defined: rostersync has nowhere to push",
            );
        }
        if let Some(metrics) = &config.daemon.metrics {
            check_metrics(c, metrics);
        }
    }
    unique_names(c, "source", config.sources.iter().map(|s| &s.name));
    unique_names(c, "target", config.targets.iter().map(|t| &t.name));

    let target_names: HashSet<&str> = config
        .targets
        .iter()
        .map(|t| t.name.get_ref().as_str())
        .collect();
    let mut inboxes: HashMap<&Path, &str> = HashMap::new();
    for source in &config.sources {
        check_source(c, source, &target_names, level);
        let name = source.name.get_ref().as_str();
        if let Some(other) = inboxes.insert(source.inbox.get_ref(), name) {
            c.at(
                source.inbox.span(),
                format!("inbox is also the inbox of source {other:?}: each source needs its own"),
            );
        }
    }
    if level == CheckLevel::Full {
        for target in &config.targets {
            check_target(c, target);
        }
        for destination in &config.notify {
            notify::check_notify(c, destination);
        }
    }
    Checked {
        problems: checker.problems,
        warnings: checker.warnings,
    }
}

/// `[daemon] metrics`: an address to listen on; served without
/// authentication, so anywhere but this machine is worth a word.
fn check_metrics(c: &mut Checker<'_>, metrics: &Spanned<String>) {
    match metrics.get_ref().parse::<std::net::SocketAddr>() {
        Ok(address) if !address.ip().is_loopback() => c.warn(
            metrics.span(),
            format!(
                "daemon.metrics {address} is not this machine only: anyone who reaches it reads the metrics (names of sources and targets, counts); prefer 127.0.0.1 behind a proxy"
            ),
        ),
        Ok(_) => {}
        Err(_) => c.at(
            metrics.span(),
            format!(
                "daemon.metrics {:?} is not an address to listen on: IP:PORT, e.g. \"127.0.0.1:9464\"",
                metrics.get_ref()
            ),
        ),
    }
}

fn check_safety(c: &mut Checker<'_>, config: &Config) {
    let safety = &config.safety;
    for (name, value) in [
        ("max_block_percent", &safety.max_block_percent),
        ("max_shrink_percent", &safety.max_shrink_percent),
        ("max_change_percent", &safety.max_change_percent),
    ] {
        let v = *value.get_ref();
        if !(0.0..=100.0).contains(&v) {
            c.at(
                value.span(),
                format!("safety.{name} is {v}; it is a percentage, 0 to 100"),
            );
        }
    }
}

/// Names end up in file names, store keys and log lines: keep them plain.
fn unique_names<'a>(
    c: &mut Checker<'_>,
    what: &str,
    names: impl Iterator<Item = &'a Spanned<String>>,
) {
    let mut seen = HashSet::new();
    for name in names {
        let text = name.get_ref();
        let plain = !text.is_empty()
            && text
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch));
        if !plain {
            c.at(
                name.span(),
                format!("{what} name {text:?} must be letters, digits, '-', '_' or '.'"),
            );
        }
        if !seen.insert(text.as_str()) {
            c.at(name.span(), format!("{what} name {text:?} is used twice"));
        }
    }
}

fn check_source(
    c: &mut Checker<'_>,
    source: &SourceConfig,
    targets: &HashSet<&str>,
    level: CheckLevel,
) {
    let name = source.name.get_ref();
    if level == CheckLevel::Full {
        check_dir(c, source.inbox.span(), "inbox", source.inbox.get_ref());
        if !source.inbox.get_ref().exists() {
            c.warn(
                source.inbox.span(),
                format!(
                    "inbox {} does not exist yet: the daemon creates it when it starts, but HR must drop its files there; is the path right?",
                    source.inbox.get_ref().display()
                ),
            );
        }
        if source.targets.get_ref().is_empty() {
            c.at(
                source.targets.span(),
                format!("source {name:?} has no targets"),
            );
        }
        let mut seen = HashSet::new();
        for target in source.targets.get_ref() {
            let t = target.get_ref().as_str();
            if !targets.contains(t) {
                c.at(
                    target.span(),
                    format!("source {name:?} names target {t:?}, which is not defined"),
                );
            } else if !seen.insert(t) {
                c.at(target.span(), format!("target {t:?} is listed twice"));
            }
        }
    }

    if source.kind == RecordKind::Orgs && *source.key.get_ref() == KeyField::Login {
        c.at(
            source.key.span(),
            "organisations are keyed by ext_id; key = \"login\" is for users",
        );
    }
    if let Some(encoding) = &source.encoding
        && EncodingChoice::from_label(encoding.get_ref()).is_none()
    {
        c.at(
                encoding.span(),
                format!(
                    "encoding {:?} is not known; use auto, utf-8, windows-1252, iso-8859-15, shift_jis, utf-16le or utf-16be",
                    encoding.get_ref()
                ),
            );
    }
    if let Some(delimiter) = &source.delimiter
        && let Err(message) = parse_delimiter(delimiter.get_ref())
    {
        c.at(delimiter.span(), message);
    }
    if let Some(date_format) = &source.date_format
        && DateFormat::new(date_format.get_ref()).is_none()
    {
        c.at(
            date_format.span(),
            format!(
                "date_format {:?} cannot print and read back a date; use e.g. \"%Y/%m/%d\"",
                date_format.get_ref()
            ),
        );
    }
    check_columns(c, source);
}

fn check_columns(c: &mut Checker<'_>, source: &SourceConfig) {
    let custom = *source.format.get_ref() == FormatKind::Custom;
    let Some(columns) = &source.columns else {
        if custom {
            c.at(
                source.format.span(),
                "format = \"custom\" needs a [source.columns] table",
            );
        }
        return;
    };
    if !custom {
        c.at(
            columns.span(),
            "[source.columns] is only read with format = \"custom\"",
        );
        return;
    }
    let mut headers = HashMap::new();
    for (field, header) in columns.get_ref() {
        match FieldName::parse(field) {
            None => c.at(
                columns.span(),
                format!("[source.columns]: {field:?} is not a canonical field (or custom.NAME)"),
            ),
            Some(FieldName::Known(known)) if !known.applies_to(source.kind) => c.at(
                columns.span(),
                format!(
                    "[source.columns]: {field} is not a field of {}",
                    source.kind
                ),
            ),
            Some(_) => {}
        }
        if header.trim().is_empty() {
            c.at(
                columns.span(),
                format!("[source.columns]: {field} has an empty header"),
            );
        }
        if let Some(other) = headers.insert(header.trim().to_lowercase(), field) {
            c.at(
                columns.span(),
                format!("[source.columns]: {field} and {other} read the same header {header:?}"),
            );
        }
    }
    let key: Field = source.key.get_ref().field();
    if !columns.get_ref().contains_key(key.name()) {
        c.at(
            columns.span(),
            format!("[source.columns] must map the key, {key}"),
        );
    }
}

/// Why a folder cannot be written. A read-only file system is most likely
/// the service's sandbox: said in the daemon's words (`sandbox::hint`).
fn not_writable(what: &str, path: &Path, error: rustix::io::Errno) -> String {
    let hint = crate::sandbox::hint(&std::io::Error::from(error));
    if hint.is_empty() {
        format!("{what} {} is not writable by this user", path.display())
    } else {
        format!("{what} {} cannot be written{hint}", path.display())
    }
}

/// The folder exists, or its nearest existing ancestor lets us create it.
fn check_dir(c: &mut Checker<'_>, span: Range<usize>, what: &str, path: &Path) {
    let mut existing = path;
    while !existing.exists() {
        match existing.parent() {
            Some(parent) if parent.as_os_str().is_empty() => existing = Path::new("."),
            Some(parent) => existing = parent,
            None => break,
        }
    }
    if existing == path {
        if !path.is_dir() {
            c.at(
                span,
                format!("{what} {} exists but is not a folder", path.display()),
            );
        } else if let Err(error) = rustix::fs::access(path, rustix::fs::Access::WRITE_OK) {
            c.at(span, not_writable(what, path, error));
        }
    } else {
        let writable = if existing.is_dir() {
            rustix::fs::access(existing, rustix::fs::Access::WRITE_OK)
        } else {
            Err(rustix::io::Errno::NOTDIR)
        };
        if let Err(error) = writable {
            let hint = crate::sandbox::hint(&std::io::Error::from(error));
            c.at(
                span,
                format!(
                    "{what} {} does not exist and cannot be created ({} is not a writable folder){hint}",
                    path.display(),
                    existing.display()
                ),
            );
        }
    }
}

fn check_target(c: &mut Checker<'_>, target: &TargetConfig) {
    let name = target.name.get_ref();
    let kind = target.kind;
    let here = target.name.span();
    let settings = kind.settings();
    // Kinds that take a setting, to name in a refusal ("dir is for wbt-file targets").
    let takers = |takes: &dyn Fn(&Settings) -> bool| {
        let names: Vec<&str> = TargetKind::ALL
            .iter()
            .copied()
            .filter(|other| takes(&other.settings()))
            .map(TargetKind::name)
            .collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => names.join(""),
        }
    };
    match settings.place {
        Place::Dir => {
            match &target.dir {
                Some(dir) => check_dir(c, dir.span(), "dir", dir.get_ref()),
                None => c.at(here.clone(), format!("target {name:?} ({kind}) needs dir")),
            }
            if let Some(url) = &target.url {
                c.at(
                    url.span(),
                    format!("a {kind} target writes files: it takes dir, not url"),
                );
            }
        }
        Place::Url => {
            match &target.url {
                Some(url) => check_url(c, url),
                None => c.at(here.clone(), format!("target {name:?} ({kind}) needs url")),
            }
            if let Some(dir) = &target.dir {
                let takers = takers(&|s| s.place == Place::Dir);
                c.at(
                    dir.span(),
                    format!("dir is for {takers} targets; {kind} takes url"),
                );
            }
        }
    }

    let token_keys = [
        target.token_env.as_ref().map(|s| s.span()),
        target.token_file.as_ref().map(|s| s.span()),
        target.token_credential.as_ref().map(|s| s.span()),
    ];
    let password_keys = [
        target.password_env.as_ref().map(|s| s.span()),
        target.password_file.as_ref().map(|s| s.span()),
        target.password_credential.as_ref().map(|s| s.span()),
    ];
    let (wants_token, wants_password) = (settings.token, settings.password);
    one_secret(c, &here, name, "token", &token_keys, wants_token, kind);
    one_secret(
        c,
        &here,
        name,
        "password",
        &password_keys,
        wants_password,
        kind,
    );
    match (&target.user, wants_password) {
        (None, true) => c.at(here.clone(), format!("target {name:?} ({kind}) needs user")),
        (Some(user), false) => c.at(user.span(), format!("{kind} targets take no user")),
        _ => {}
    }
    for (key, span) in [
        ("company", target.company.as_ref().map(Spanned::span)),
        (
            "dormant_column",
            target.dormant_column.as_ref().map(Spanned::span),
        ),
        (
            "neutralise_formulas",
            target.neutralise_formulas.as_ref().map(Spanned::span),
        ),
    ] {
        if let Some(span) = span
            && !settings.own_keys.contains(&key)
        {
            let takers = takers(&|s| s.own_keys.contains(&key));
            c.at(
                span,
                format!("{key} is for {takers} targets; {kind} takes none"),
            );
        }
    }
    for (span, message) in kind.check_config(target) {
        c.at(span, message);
    }
    check_match(c, target);
    check_scope(c, target);
    lifecycle::check_delete(c, target);
    for (file, what) in [
        (&target.token_file, "token_file"),
        (&target.password_file, "password_file"),
    ] {
        if let Some(file) = file {
            check_secret_file(c, file, what);
        }
    }
    for (env, what) in [
        (&target.token_env, "token_env"),
        (&target.password_env, "password_env"),
    ] {
        if let Some(env) = env
            && std::env::var_os(env.get_ref()).is_none()
        {
            c.at(
                env.span(),
                format!("{what}: environment variable {} is not set", env.get_ref()),
            );
        }
    }
    if let Some(ca) = &target.ca_file
        && let Err(error) = crate::connectors::http::ca_certificates(ca.get_ref())
    {
        c.at(ca.span(), error.to_string());
    }
    if let Some(encoding) = &target.encoding {
        let allowed = settings.encodings;
        if !allowed.contains(&encoding.get_ref().to_lowercase().as_str()) {
            c.at(
                encoding.span(),
                format!(
                    "encoding {:?} is not one {kind} targets take ({})",
                    encoding.get_ref(),
                    allowed.join(", ")
                ),
            );
        }
    }
    for (value, what) in [
        (&target.batch_size, "batch_size"),
        (&target.concurrency, "concurrency"),
    ] {
        if *value.get_ref() == 0 {
            c.at(value.span(), format!("{what} must be at least 1"));
        }
    }
    if let Some(rate) = &target.rate_per_sec {
        let r = *rate.get_ref();
        if r.is_nan() || r <= 0.0 {
            c.at(
                rate.span(),
                "rate_per_sec must be above 0 (leave it out for no limit)",
            );
        }
    }
    if target.timeout.0.is_zero() {
        c.at(
            here.clone(),
            format!("target {name:?}: timeout must be above 0"),
        );
    }
    if target.retry.initial > target.retry.max_interval {
        c.at(
            here.clone(),
            format!("target {name:?}: retry.initial is longer than retry.max_interval"),
        );
    }
    for (target_field, canonical) in target.fields.get_ref() {
        if canonical.is_empty() {
            continue; // drops a default mapping
        }
        if crate::mapping::is_template(canonical) {
            if let Some(error) = crate::mapping::FieldTemplate::compile(canonical).error() {
                c.at(
                    target.fields.span(),
                    format!("target {name:?}: [target.fields] {target_field}: the template does not compile, at {error}"),
                );
            }
            continue;
        }
        match FieldName::parse(canonical) {
            None => c.at(
                target.fields.span(),
                format!("[target.fields]: {target_field} = {canonical:?} is not a canonical field (or custom.NAME, or \"\" to drop it)"),
            ),
            Some(field) if !crate::projection::is_projectable(&field) => c.at(
                target.fields.span(),
                format!("[target.fields]: {canonical} cannot be mapped (passwords go on create only; disabled is block/unblock)"),
            ),
            Some(_) => {}
        }
    }
}

/// `[target.scope]`: every expression compiles.
fn check_scope(c: &mut Checker<'_>, target: &TargetConfig) {
    let Some(scope) = &target.scope else {
        return;
    };
    let name = target.name.get_ref();
    let (_, problems) = crate::mapping::Scope::compile(scope.get_ref());
    for problem in problems {
        let list = match problem.list {
            "include" => &scope.get_ref().include,
            _ => &scope.get_ref().exclude,
        };
        let span = list
            .get(problem.index)
            .map_or_else(|| scope.span(), |expression| expression.span());
        c.at(
            span,
            format!(
                "target {name:?}: [target.scope] {}[{}] does not compile, at {}",
                problem.list, problem.index, problem.error
            ),
        );
    }
}

/// `match`: fields the kind can find accounts by, each once, mapped by the
/// target; refused on the kinds that upsert by their own key.
fn check_match(c: &mut Checker<'_>, target: &TargetConfig) {
    let Some(matching) = &target.matching else {
        return;
    };
    let kind = target.kind;
    let takes = kind.match_fields();
    let names = |fields: &[Field]| {
        fields
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if takes.is_empty() {
        let takers: Vec<&str> = TargetKind::ALL
            .iter()
            .filter(|other| !other.match_fields().is_empty())
            .map(|other| other.name())
            .collect();
        c.at(
            matching.span(),
            format!(
                "match does not apply to {kind} targets: they create or update the account \
                 that holds the record's own key, so there is no account to look for \
                 (match is for {} targets)",
                takers.join(", ")
            ),
        );
        return;
    }
    let projector =
        crate::projection::Projector::new(kind.default_fields(), target.fields.get_ref());
    let mut seen = HashSet::new();
    for rule in matching.get_ref() {
        let name = rule.get_ref();
        match Field::from_name(name) {
            None => c.at(
                rule.span(),
                format!("match: {name:?} is not a canonical field; {kind} targets find accounts by {}", names(takes)),
            ),
            Some(field) if !takes.contains(&field) => c.at(
                rule.span(),
                format!("match: {kind} targets cannot find accounts by {name}, only by {}", names(takes)),
            ),
            Some(field) if projector.target_field(RecordKind::Users, field).is_none() => c.at(
                rule.span(),
                format!("match: {name} is not mapped for this target ([target.fields]), so accounts cannot be found by it"),
            ),
            Some(_) if !seen.insert(name.as_str()) => {
                c.at(rule.span(), format!("match: {name} is listed twice"));
            }
            Some(_) => {}
        }
    }
}

fn one_secret(
    c: &mut Checker<'_>,
    here: &Range<usize>,
    name: &str,
    what: &str,
    keys: &[Option<Range<usize>>],
    wanted: bool,
    kind: TargetKind,
) {
    let given: Vec<&Range<usize>> = keys.iter().flatten().collect();
    match (given.len(), wanted) {
        (0, true) => c.at(
            here.clone(),
            format!("target {name:?} ({kind}) needs a {what}: {what}_env, {what}_file or {what}_credential"),
        ),
        (0, false) | (1, true) => {}
        (_, false) => c.at(given[0].clone(), format!("{kind} targets take no {what}")),
        (_, true) => c.at(
            given[1].clone(),
            format!("give the {what} one way only: {what}_env, {what}_file or {what}_credential"),
        ),
    }
}

fn check_secret_file(c: &mut Checker<'_>, file: &Spanned<std::path::PathBuf>, what: &str) {
    match check_not_world_readable(file.get_ref()) {
        Ok(()) => {}
        Err(SecretError::ReadableByOthers { mode, .. }) => c.at(
            file.span(),
            format!(
                "{what} {} is readable by others (mode {mode:o}): chmod o-rwx it",
                file.get_ref().display()
            ),
        ),
        Err(error) => c.at(file.span(), format!("{what}: {error}")),
    }
}

/// A URL to this machine: plain http does not leave it.
fn loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn check_url(c: &mut Checker<'_>, url: &Spanned<String>) {
    match url::Url::parse(url.get_ref()) {
        Ok(parsed) if matches!(parsed.scheme(), "https" | "http") && parsed.has_host() => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                c.at(
                    url.span(),
                    "url must not carry credentials; use user and password_* keys",
                );
            }
            if parsed.scheme() == "http" && !loopback(&parsed) {
                c.at(
                    url.span(),
                    format!(
                        "url {:?} is plain http: the target's credentials would cross the network unencrypted; use https:// (plain http is for 127.0.0.1, ::1 and localhost only)",
                        url.get_ref()
                    ),
                );
            }
        }
        Ok(_) => c.at(
            url.span(),
            format!("url {:?} must be http:// or https://", url.get_ref()),
        ),
        Err(error) => c.at(
            url.span(),
            format!("url {:?} is not a URL: {error}", url.get_ref()),
        ),
    }
}
