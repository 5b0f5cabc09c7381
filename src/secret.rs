//! Secrets: tokens and passwords, read from the environment, a file or a
//! systemd credential, and never printed.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret value. `Debug` and `Display` print `***`; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with the secret replaced by `***`, in the forms a server
    /// echoes it in: as is; JSON-escaped (PHP's `\/`, and `\uXXXX` for
    /// non-ASCII characters or for `< > & '` as other encoders write them,
    /// in either case); HTML-escaped (`&amp;`, `&quot;`, `&#39;`...);
    /// URL-encoded (`%XX`, in either case, and a form's `+` for a space);
    /// and base64 (standard and URL-safe, padded or not). A base64 run of
    /// `text` that decodes to something holding the secret (`Basic
    /// user:password`) goes whole, also when the run itself is JSON-escaped
    /// or URL-encoded (`\/`, `%2B`, `%3D`...); where such a run is glued to
    /// other text, the part of it that encodes only the secret goes (the one
    /// or two characters at each end that mix it with its neighbours stay).
    /// Base64 forms shorter than 4 characters, and parts of an encoding
    /// shorter than 8, are left: they could be anything.
    pub fn scrub(&self, text: &str) -> String {
        let secret = self.0.as_str();
        if secret.is_empty() {
            return text.to_string();
        }
        let mut text = scrub_base64_runs(text, secret.as_bytes());
        let mut forms = scrub_forms(secret);
        // The longest first, so that no form is left half replaced.
        forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
        for form in &forms {
            if text.contains(form.as_str()) {
                text = text.replace(form.as_str(), "***");
            }
        }
        text
    }
}

/// The forms of a secret [`Secret::scrub`] replaces, beyond base64 runs.
fn scrub_forms(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

    let mut forms = vec![secret.to_string()];
    forms.extend(json_forms(secret));
    forms.extend(html_forms(secret));
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    forms.push(form.replace('+', "%20"));
    forms.push(form);
    for upper in [true, false] {
        forms.push(percent_encode(secret.as_bytes(), upper));
    }
    let bytes = secret.as_bytes();
    let mut encoded = Vec::new();
    let mut partial = Vec::new();
    for engine in [&STANDARD, &URL_SAFE] {
        encoded.push(engine.encode(bytes));
    }
    // Within a longer encoding, the secret starts at any offset modulo 3:
    // the groups of three bytes wholly its own encode the same whatever
    // surrounds them.
    for skip in 0..3 {
        if let Some(rest) = bytes.get(skip..) {
            let whole = &rest[..rest.len() / 3 * 3];
            for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                partial.push(engine.encode(whole));
            }
        }
        if skip == 0 {
            for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                encoded.push(engine.encode(bytes));
            }
        }
    }
    forms.extend(encoded.into_iter().filter(|form| form.len() >= 4));
    // A part of a short secret's encoding could be part of anything.
    forms.extend(partial.into_iter().filter(|form| form.len() >= 8));
    forms.retain(|form| !form.is_empty());
    forms.sort();
    forms.dedup();
    forms
}

/// The secret as JSON encoders write it inside a string: serde's escapes,
/// with `/` escaped or not (PHP escapes it), with `\uXXXX` (UTF-16 units,
/// in either case) for non-ASCII characters (Python's default) and for
/// `< > &` (Go's) or `< > & '` (PHP's `JSON_HEX_*`), or for both.
fn json_forms(secret: &str) -> Vec<String> {
    let mut forms = Vec::new();
    for slash in [false, true] {
        for non_ascii in [false, true] {
            for html in ["", "<>&", "<>&'"] {
                for upper in [false, true] {
                    forms.push(json_escape(secret, slash, non_ascii, html, upper));
                }
            }
        }
    }
    forms
}

fn json_escape(secret: &str, slash: bool, non_ascii: bool, html: &str, upper: bool) -> String {
    let mut out = String::with_capacity(secret.len() * 2);
    for c in secret.chars() {
        let as_unit = (non_ascii && !c.is_ascii()) || html.contains(c);
        match c {
            _ if as_unit => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    if upper {
                        out.push_str(&format!("\\u{unit:04X}"));
                    } else {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
            '/' if slash => out.push_str("\\/"),
            _ => match serde_json::to_string(&c) {
                Ok(json) => out.push_str(&json[1..json.len() - 1]),
                Err(_) => out.push(c),
            },
        }
    }
    out
}

/// The secret HTML-escaped, as an error page shows it: named entities for
/// `& < > "`, and `'` as `&#39;` or `&#x27;` (`"` as `&#34;` with the latter).
fn html_forms(secret: &str) -> Vec<String> {
    let escape = |quote: &str, apostrophe: &str| {
        let mut out = String::with_capacity(secret.len());
        for c in secret.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str(quote),
                '\'' => out.push_str(apostrophe),
                _ => out.push(c),
            }
        }
        out
    };
    vec![escape("&quot;", "&#39;"), escape("&#34;", "&#x27;")]
}

/// Every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`) as `%XX`.
fn percent_encode(bytes: &[u8], upper: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else if upper {
            out.push_str(&format!("%{byte:02X}"));
        } else {
            out.push_str(&format!("%{byte:02x}"));
        }
    }
    out
}

/// `text` with every base64 run (of either alphabet, `=` padding allowed,
/// JSON-escaped or URL-encoded: see [`run_unit`]) that decodes to bytes
/// holding `secret` replaced by `***`.
fn scrub_base64_runs(text: &str, secret: &[u8]) -> String {
    use base64::Engine as _;
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let engines = [
        GeneralPurpose::new(&alphabet::STANDARD, config),
        GeneralPurpose::new(&alphabet::URL_SAFE, config),
    ];
    let holds_secret = |run: &str| {
        engines.iter().any(|engine| {
            engine
                .decode(run)
                .is_ok_and(|decoded| decoded.windows(secret.len()).any(|w| w == secret))
        })
    };
    let mut out = String::with_capacity(text.len());
    let (mut at, mut copied) = (0, 0);
    while let Some(rest) = text.get(at..).filter(|rest| !rest.is_empty()) {
        if run_unit(rest, false).is_none() {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let start = at;
        let mut run = String::new();
        while let Some((c, len)) = text.get(at..).and_then(|rest| run_unit(rest, false)) {
            run.push(c);
            at += len;
        }
        // At most two padding characters.
        for _ in 0..2 {
            let Some((c, len)) = text.get(at..).and_then(|rest| run_unit(rest, true)) else {
                break;
            };
            run.push(c);
            at += len;
        }
        if run.len() >= 4 && holds_secret(&run) {
            out.push_str(&text[copied..start]);
            out.push_str("***");
            copied = at;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The base64 character `text` starts with (`padding`: the `=` only) and
/// how many bytes it takes there: itself, or escaped as JSON (`\/`,
/// `\u002b`) or URL-encoded (`%2B`), as an echoed `Basic` header can be.
fn run_unit(text: &str, padding: bool) -> Option<(char, usize)> {
    let first = text.chars().next()?;
    let plain = if padding {
        first == '='
    } else {
        first.is_ascii_alphanumeric() || "+/-_".contains(first)
    };
    if plain {
        return Some((first, 1));
    }
    let escapes: &[(&str, char)] = if padding {
        &[("%3d", '='), ("\\u003d", '=')]
    } else {
        &[
            ("\\/", '/'),
            ("%2b", '+'),
            ("%2f", '/'),
            ("\\u002b", '+'),
            ("\\u002f", '/'),
        ]
    };
    escapes.iter().find_map(|(escape, c)| {
        text.get(..escape.len())
            .filter(|start| start.eq_ignore_ascii_case(escape))
            .map(|_| (*c, escape.len()))
    })
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a secret comes from. Holds names and paths only, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
    /// A systemd credential, read from `$CREDENTIALS_DIRECTORY/NAME`.
    Credential(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("environment variable {0} is not valid UTF-8")]
    EnvNotUnicode(String),
    #[error("cannot read secret file {}: {error}", path.display())]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("secret file {} is readable by others (mode {mode:o}): chmod o-rwx it", path.display())]
    ReadableByOthers { path: PathBuf, mode: u32 },
    #[error("secret file {} is not valid UTF-8", path.display())]
    NotUnicode { path: PathBuf },
    #[error("secret file {} is empty", path.display())]
    Empty { path: PathBuf },
    #[error("credential {0} needs $CREDENTIALS_DIRECTORY (set by systemd's LoadCredential=)")]
    NoCredentialsDirectory(String),
}

/// What only a restart of the service can bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GivenAtStart {
    /// A credential: systemd reads `LoadCredential=` when the service starts.
    Credential,
    /// An environment variable: the service's environment is set at start.
    Environment,
}

impl SecretError {
    /// When the secret is missing from what systemd handed over at start,
    /// which a reload cannot change.
    pub fn given_at_start(&self) -> Option<GivenAtStart> {
        let in_credentials = |path: &Path| {
            std::env::var_os("CREDENTIALS_DIRECTORY").is_some_and(|dir| path.starts_with(dir))
        };
        match self {
            SecretError::NoCredentialsDirectory(_) => Some(GivenAtStart::Credential),
            SecretError::EnvMissing(_) | SecretError::EnvNotUnicode(_) => {
                Some(GivenAtStart::Environment)
            }
            SecretError::Unreadable { path, .. }
            | SecretError::NotUnicode { path }
            | SecretError::Empty { path }
                if in_credentials(path) =>
            {
                Some(GivenAtStart::Credential)
            }
            _ => None,
        }
    }
}

impl SecretSource {
    pub fn load(&self) -> Result<Secret, SecretError> {
        match self {
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(Secret(value)),
                Ok(_) | Err(std::env::VarError::NotPresent) => {
                    Err(SecretError::EnvMissing(name.clone()))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(SecretError::EnvNotUnicode(name.clone()))
                }
            },
            SecretSource::File(path) => read_secret_file(path, true),
            SecretSource::Credential(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .ok_or_else(|| SecretError::NoCredentialsDirectory(name.clone()))?;
                // systemd owns that directory and its modes; no permission rule to apply.
                read_secret_file(&Path::new(&dir).join(name), false)
            }
        }
    }
}

/// Mode check first, so a world-readable secret is refused before it is read.
fn read_secret_file(path: &Path, check_mode: bool) -> Result<Secret, SecretError> {
    let unreadable = |error| SecretError::Unreadable {
        path: path.to_path_buf(),
        error,
    };
    if check_mode {
        check_not_world_readable(path)?;
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    let text = String::from_utf8(bytes).map_err(|_| SecretError::NotUnicode {
        path: path.to_path_buf(),
    })?;
    let value = text.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return Err(SecretError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret(value.to_string()))
}

pub fn check_not_world_readable(path: &Path) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).map_err(|error| SecretError::Unreadable {
        path: path.to_path_buf(),
        error,
    })?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o004 != 0 {
        return Err(SecretError::ReadableByOthers {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn what_systemd_hands_over_at_start_needs_a_restart() {
        let credential = SecretError::NoCredentialsDirectory("lms-token".into());
        assert_eq!(credential.given_at_start(), Some(GivenAtStart::Credential));
        let env = SecretError::EnvMissing("LMS_TOKEN".into());
        assert_eq!(env.given_at_start(), Some(GivenAtStart::Environment));
        // A token_file is read again on reload. (No CREDENTIALS_DIRECTORY
        // in the tests' environment.)
        let file = SecretError::Empty {
            path: PathBuf::from("/etc/rostersync/lms-token"),
        };
        assert_eq!(file.given_at_start(), None);
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(***)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn scrub_removes_the_raw_and_json_escaped_forms() {
        // A password in Gestimum's JSON body.
        let password = Secret::new("p\"w;1");
        assert_eq!(
            password.scrub(r#"bad body {"mot_passe":"p\"w;1"} or p"w;1"#),
            r#"bad body {"mot_passe":"***"} or ***"#
        );
        assert_eq!(Secret::new("").scrub("nothing"), "nothing");
        // An API key repeated in an error.
        assert_eq!(
            Secret::new("k3y-s3cret").scrub("HTTP 400: bad ApiKey k3y-s3cret"),
            "HTTP 400: bad ApiKey ***"
        );
        let backslash = Secret::new(r"a\b");
        assert_eq!(backslash.scrub(r#"{"k":"a\\b"}"#), r#"{"k":"***"}"#);
    }

    #[test]
    fn scrub_removes_the_url_encoded_forms() {
        let secret = Secret::new("p@ss w/rd&1");
        for (text, scrubbed) in [
            ("?password=p%40ss+w%2Frd%261&x=1", "?password=***&x=1"),
            ("?password=p%40ss%20w%2Frd%261", "?password=***"),
            ("/login/p%40ss%20w%2frd%261/", "/login/***/"),
        ] {
            assert_eq!(secret.scrub(text), scrubbed, "{text}");
        }
    }

    #[test]
    fn scrub_removes_the_base64_forms() {
        // Standard and URL-safe, padded or not.
        let secret = Secret::new(">>>???!");
        for (text, scrubbed) in [
            ("Bearer Pj4+Pz8/IQ==", "Bearer ***"),
            ("Bearer Pj4+Pz8/IQ", "Bearer ***"),
            ("token=Pj4-Pz8_IQ&x", "token=***&x"),
            (r#"{"t":"Pj4-Pz8_IQ=="}"#, r#"{"t":"***"}"#),
        ] {
            assert_eq!(secret.scrub(text), scrubbed, "{text}");
        }
        // `Basic user:password` (RFC 7617's example): the whole credential.
        let password = Secret::new("open sesame");
        assert_eq!(
            password.scrub("Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            "Authorization: Basic ***"
        );
        // Glued to other text, the run no longer decodes: the groups that
        // encode only the password go ("pen sesam"), the edges stay.
        assert_eq!(
            password.scrub("xQWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            "xQWxhZGRpbjpv***ZQ=="
        );
        // Runs that do not hold the secret stay, whatever they decode to.
        assert_eq!(
            password.scrub("HTTP 401 QWxhZGRpbjpvcGVu"),
            "HTTP 401 QWxhZGRpbjpvcGVu"
        );
    }

    #[test]
    fn scrub_covers_php_escapes_and_spares_short_base64_parts() {
        let secret = Secret::new("a/b-token");
        assert_eq!(
            secret.scrub(r#"{"header":"Bearer a\/b-token"}"#),
            r#"{"header":"Bearer ***"}"#
        );
        // Of "pass", whole base64 groups hold only "pas" (`cGFz`): four
        // characters that also begin the encoding of "pasta".
        let short = Secret::new("pass");
        assert_eq!(short.scrub("cGFzdGE="), "cGFzdGE=");
        assert_eq!(short.scrub("Basic cGFzcw=="), "Basic ***");
    }

    #[test]
    fn scrub_removes_base64_runs_that_are_json_escaped_or_url_encoded() {
        // `Basic base64("rest:Wh0?~>>x")`, its `/`, `+` and `=` escaped as a
        // PHP page, a Go encoder or a URL would.
        let password = Secret::new("Wh0?~>>x");
        for (text, scrubbed) in [
            (
                r#"{"h":"Basic cmVzdDpXaDA\/fj4+eA=="}"#,
                r#"{"h":"Basic ***"}"#,
            ),
            (
                r#"{"h":"Basic cmVzdDpXaDA\u002ffj4\u002BeA\u003d\u003d"}"#,
                r#"{"h":"Basic ***"}"#,
            ),
            ("?auth=cmVzdDpXaDA%2Ffj4%2beA%3D%3D&x=1", "?auth=***&x=1"),
        ] {
            assert_eq!(password.scrub(text), scrubbed, "{text}");
        }
    }

    #[test]
    fn scrub_removes_unicode_and_html_escapes() {
        let secret = Secret::new("mot<de>passé&'1");
        for (text, scrubbed) in [
            // Python's json.dumps: non-ASCII as \uXXXX.
            (r#"{"pw":"mot<de>pass\u00e9&'1"}"#, r#"{"pw":"***"}"#),
            // Go's encoding/json: < > & as \u003c..., non-ASCII as is.
            (
                r#"{"pw":"mot\u003cde\u003epassé\u0026'1"}"#,
                r#"{"pw":"***"}"#,
            ),
            // Both, upper-case hex.
            (
                r#"{"pw":"mot\u003Cde\u003Epass\u00E9\u0026\u00271"}"#,
                r#"{"pw":"***"}"#,
            ),
            // An HTML error page.
            ("<td>mot&lt;de&gt;passé&amp;&#39;1</td>", "<td>***</td>"),
            ("<td>mot&lt;de&gt;passé&amp;&#x27;1</td>", "<td>***</td>"),
        ] {
            assert_eq!(secret.scrub(text), scrubbed, "{text}");
        }
        // Outside the Basic Multilingual Plane: a surrogate pair.
        let emoji = Secret::new("k\u{1F511}ey");
        assert_eq!(emoji.scrub(r#""k\ud83d\udd11ey""#), r#""***""#);
    }

    #[test]
    fn file_secret_is_trimmed_and_mode_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc123\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let source = SecretSource::File(path.clone());
        assert_eq!(source.load().unwrap().expose(), "abc123");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = source.load().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("readable by others"), "{message}");
        assert!(!message.contains("abc123"));
    }

    #[test]
    fn missing_env_names_the_variable_only() {
        let error = SecretSource::Env("ROSTERSYNC_TEST_SURELY_UNSET".into())
            .load()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable ROSTERSYNC_TEST_SURELY_UNSET is not set"
        );
    }
}
