//! A fake Implem Pleasanter tenant that behaves as the real server does
//! (read from its source, 1.3.48 to 1.5.3), not as its API pages suggest:
//! - `POST /api/users/import`, `multipart/form-data` with `parameters` (JSON:
//!   `ApiVersion`, `ApiKey`, `Encoding`) and the CSV as `file`. Only the exact
//!   `Encoding` `Shift-JIS` reads Shift_JIS; anything else is read as UTF-8,
//!   bad bytes replaced without a word. The key's owner must be a tenant
//!   manager (403), a wrong key is 401 `Unable to authorize.`.
//! - The headers are the column labels in the key owner's language (English
//!   or Japanese here); a header that is no label is dropped silently.
//!   `Login ID` and `Name` must be there; a header-only file is
//!   `Please select a file.`.
//! - Each row is committed on its own: a record error answers 500 with a
//!   JSON message, the rows before it kept; a value longer than its column
//!   raises an exception answered as 302 to `/errors`. A row counts as
//!   updated only when something changed: an unchanged row counts in
//!   neither total. `Disabled` is importable (`1` / `true`).
//! - `POST /api/users/get`: a `View.ColumnFilterHash` column (`LoginId`,
//!   `UserCode`...) is a partial match unless its `ColumnFilterSearchTypes`
//!   is `ExactMatch`; the users come with their `UserCode` (never their
//!   mail addresses, which the real API does not select).
//! - `POST /api/users/{id}/update`: any user field, by its API name;
//!   `Disabled` needs a tenant manager.
//!
//! Transient faults, latency and cut-short replies come from the kernel's `Faults`.
// A row's error is the HTTP answer itself.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::kernel::admit;
use super::{Kernel, Refusal, Server};

/// The language of the API key's owner: the import's labels and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    English,
    Japanese,
}

/// A user column the import knows: its API name, its labels, and the
/// longest value its database column takes (in UTF-16 units, as .NET counts).
pub struct Column {
    pub name: &'static str,
    pub english: &'static str,
    pub japanese: &'static str,
    pub limit: Option<usize>,
}

impl Column {
    pub fn label(&self, language: Language) -> &'static str {
        match language {
            Language::English => self.english,
            Language::Japanese => self.japanese,
        }
    }
}

const fn column(
    name: &'static str,
    english: &'static str,
    japanese: &'static str,
    limit: Option<usize>,
) -> Column {
    Column {
        name,
        english,
        japanese,
        limit,
    }
}

pub const LOGIN_ID: &str = "LoginId";
const DISABLED: &str = "Disabled";

/// The columns of a user import.
pub const COLUMNS: &[Column] = &[
    column(LOGIN_ID, "Login ID", "ログインID", Some(256)),
    column("Name", "Name", "名前", Some(128)),
    column("UserCode", "User code", "ユーザコード", Some(32)),
    column("MailAddress", "Email address", "メールアドレス", Some(2048)),
    column("DeptCode", "Department code", "組織コード", None),
    column(DISABLED, "Disabled", "無効", None),
    column("Body", "Body", "説明", None),
    column("Comments", "Comments", "コメント", None),
];

/// The column a header names in `language`, if it is a label at all.
fn labelled(language: Language, header: &str) -> Option<&'static Column> {
    COLUMNS.iter().find(|c| c.label(language) == header)
}

/// A user as the tenant keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    /// API column name → value, the login and `Disabled` aside; no empty values.
    pub columns: BTreeMap<String, String>,
    pub disabled: bool,
}

/// What `directory()` shows of a user: its columns and whether it is disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub columns: BTreeMap<String, String>,
    pub disabled: bool,
}

pub struct Tenant {
    /// Login → user.
    pub users: BTreeMap<String, User>,
    next_id: u64,
    /// The API key owner's language.
    pub language: Language,
    /// Whether the key's owner is a tenant manager: without it the import
    /// answers 403 and `Disabled` cannot be updated.
    pub manager: bool,
    /// Logins held by other tenants (a Login ID is unique across all).
    pub other_tenants: Vec<String>,
    /// Users per page of `/api/users/get` (200 at most).
    pub page_size: usize,
    /// The `Encoding` parameter of each import received.
    pub encodings: Vec<String>,
    /// Rows received by imports in all, replays included.
    pub rows_received: u64,
    /// Logins whose row raises a server exception (as a value too long for
    /// a column whose limit the client does not know would).
    pub exception_logins: Vec<String>,
    /// Holds each import's reply this long once its rows are committed (a
    /// reply that comes too late: its sender killed or timed out meanwhile).
    pub late_reply_ms: u64,
    /// The logins of the users deleted (`/api/users/{id}/delete`), in order.
    pub deleted: Vec<String>,
}

impl Default for Tenant {
    fn default() -> Self {
        Tenant {
            users: BTreeMap::new(),
            next_id: 1,
            language: Language::English,
            manager: true,
            other_tenants: Vec::new(),
            page_size: 200,
            encodings: Vec::new(),
            rows_received: 0,
            exception_logins: Vec::new(),
            late_reply_ms: 0,
            deleted: Vec::new(),
        }
    }
}

impl Tenant {
    /// The login of the user whose `UserId` is `id`.
    fn login_of(&self, id: &str) -> Option<String> {
        self.users
            .iter()
            .find(|(_, u)| id.parse() == Ok(u.id))
            .map(|(login, _)| login.clone())
    }

    /// Adds a user as if made in Pleasanter by hand; returns its id.
    pub fn add(&mut self, login: &str, columns: &[(&str, &str)], disabled: bool) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let columns = columns
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.users.insert(
            login.to_string(),
            User {
                id,
                columns,
                disabled,
            },
        );
        id
    }
}

/// The tenant; its requests are counted per endpoint ("import", "get",
/// "update", and "errors" for a client that follows the error redirect).
pub type Fake = Server<Tenant>;

type Shared = Arc<Kernel<Tenant>>;

/// How the tenant words the kernel's refusals.
fn refusal(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthorised => pleasanter(StatusCode::UNAUTHORIZED, "Unable to authorize."),
        Refusal::TooManyRequests => (
            StatusCode::TOO_MANY_REQUESTS,
            "{\"StatusCode\":429,\"Message\":\"Too many requests.\"}",
        )
            .into_response(),
        Refusal::Unavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
        }
    }
}

impl Fake {
    /// `key`: the API key every request must carry in its body.
    pub fn start(key: &str) -> Fake {
        let kernel = Kernel::new(Tenant::default(), Some(key.to_string()), refusal);
        Server::launch(kernel, |kernel| {
            Router::new()
                .route("/api/users/import", post(import))
                .route("/api/users/get", post(get_users))
                .route("/api/users/{id}/update", post(update))
                .route("/api/users/{id}/delete", post(delete))
                .route("/errors", get(errors))
                .with_state(kernel)
        })
    }

    /// Login → what the tenant holds of the user.
    pub fn directory(&self) -> BTreeMap<String, Entry> {
        self.with(|t| {
            t.users
                .iter()
                .map(|(login, user)| {
                    (
                        login.clone(),
                        Entry {
                            columns: user.columns.clone(),
                            disabled: user.disabled,
                        },
                    )
                })
                .collect()
        })
    }
}

fn pleasanter(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"Id": 0, "StatusCode": status.as_u16(), "Message": message})),
    )
        .into_response()
}

/// A server exception: a redirect to the error page, as ASP.NET's error handling answers.
fn exception() -> Response {
    (StatusCode::FOUND, [(header::LOCATION, "/errors")]).into_response()
}

/// The error page the redirect leads to: HTML, status 500.
async fn errors(State(kernel): State<Shared>) -> Response {
    *kernel.lock().hits.entry("errors".into()).or_default() += 1;
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><body><h1>An error has occurred.</h1></body></html>",
    )
        .into_response()
}

/// The parts of a `multipart/form-data` body: name → bytes.
fn multipart(headers: &HeaderMap, body: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Content-Type")?;
    if !content_type.starts_with("multipart/form-data") {
        return Err(format!(
            "Content-Type {content_type} is not multipart/form-data"
        ));
    }
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .ok_or("no boundary")?
        .trim_matches('"');
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = BTreeMap::new();
    let mut rest = body;
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let start = find(rest, &delimiter).ok_or("no first boundary")?;
    rest = &rest[start + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            break; // the closing delimiter
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("a boundary without CRLF")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("a part without headers")?;
        let head = std::str::from_utf8(&rest[..head_end]).map_err(|_| "part headers not UTF-8")?;
        let content = &rest[head_end + 4..];
        let mut end_delimiter = b"\r\n".to_vec();
        end_delimiter.extend_from_slice(&delimiter);
        let end = find(content, &end_delimiter).ok_or("a part without an end")?;
        let name = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .and_then(|l| l.split(';').find_map(|p| p.trim().strip_prefix("name=")))
            .map(|n| n.trim_matches('"').to_string())
            .ok_or("a part without a name")?;
        parts.insert(name, content[..end].to_vec());
        rest = &content[end + end_delimiter.len()..];
    }
    Ok(parts)
}

/// The CSV text of an import: only the exact `Shift-JIS` reads Shift_JIS,
/// anything else UTF-8; bad bytes become U+FFFD, no error.
fn decode(encoding: &str, file: &[u8]) -> String {
    if encoding == "Shift-JIS" {
        encoding_rs::SHIFT_JIS
            .decode_without_bom_handling(file)
            .0
            .into_owned()
    } else {
        String::from_utf8_lossy(file).into_owned()
    }
}

/// What an import's rows came to, or the answer that stopped it.
struct Counts {
    added: u64,
    updated: u64,
}

async fn import(State(kernel): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let parts = match multipart(&headers, &body) {
        Ok(parts) => parts,
        Err(why) => {
            kernel.number();
            return pleasanter(StatusCode::BAD_REQUEST, &format!("Bad request: {why}"));
        }
    };
    let parameters: Value = parts
        .get("parameters")
        .and_then(|p| serde_json::from_slice(p).ok())
        .unwrap_or(Value::Null);
    let key = parameters.get("ApiKey").and_then(Value::as_str);
    let admitted = admit!(kernel, "import", key);
    let (manager, language, late_reply_ms) = {
        let tenant = kernel.lock();
        (tenant.manager, tenant.language, tenant.late_reply_ms)
    };
    if !manager {
        return pleasanter(
            StatusCode::FORBIDDEN,
            "You do not have permission to perform this operation.",
        );
    }
    if parameters.get("ApiVersion").and_then(Value::as_f64) != Some(1.1) {
        return pleasanter(StatusCode::BAD_REQUEST, "ApiVersion must be 1.1.");
    }
    let encoding = parameters
        .get("Encoding")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let select_a_file = match language {
        Language::English => "Please select a file.",
        Language::Japanese => "ファイルを選択してください。",
    };
    let Some(file) = parts.get("file") else {
        return pleasanter(StatusCode::INTERNAL_SERVER_ERROR, select_a_file);
    };
    let text = decode(&encoding, file);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(_) => return pleasanter(StatusCode::INTERNAL_SERVER_ERROR, select_a_file),
    };
    let mut rows = Vec::new();
    for row in reader.records() {
        match row {
            Ok(row) => rows.push(row.iter().map(str::to_string).collect::<Vec<_>>()),
            Err(error) => {
                return pleasanter(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}"));
            }
        }
    }
    if rows.is_empty() {
        return pleasanter(StatusCode::INTERNAL_SERVER_ERROR, select_a_file);
    }
    let outcome = {
        let mut tenant = kernel.lock();
        tenant.encodings.push(encoding);
        tenant.rows_received += rows.len() as u64;
        import_rows(&mut tenant, &header, &rows)
    };
    if late_reply_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(late_reply_ms)).await;
    }
    let counts = match outcome {
        Ok(counts) => counts,
        Err(answer) => return answer,
    };
    if admitted.malformed() {
        return (StatusCode::OK, "{\"Id\":0,\"StatusCode\":200,\"Mess").into_response();
    }
    let (mut added, mut updated) = (counts.added, counts.updated);
    if admitted.wrong_counts() {
        added = added.saturating_sub(1);
        updated = updated.saturating_sub(1);
    }
    let message = match language {
        Language::English => {
            format!(": {added} entries have been added and {updated} entries updated.")
        }
        Language::Japanese => format!(": {added} 件追加し、{updated} 件更新しました。"),
    };
    pleasanter(StatusCode::OK, &message)
}

/// Row by row, each committed on its own: the first that fails stops the
/// import with its answer, the rows before it kept.
fn import_rows(
    tenant: &mut Tenant,
    header: &[String],
    rows: &[Vec<String>],
) -> Result<Counts, Response> {
    let language = tenant.language;
    // A header that is no label is dropped, without a word.
    let columns: Vec<Option<&'static Column>> =
        header.iter().map(|h| labelled(language, h)).collect();
    for required in [LOGIN_ID, "Name"] {
        if !columns.iter().flatten().any(|c| c.name == required) {
            let label = COLUMNS
                .iter()
                .find(|c| c.name == required)
                .map_or("", |c| c.label(language));
            return Err(pleasanter(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("The required column is not included. Column:{label}"),
            ));
        }
    }
    let mut counts = Counts {
        added: 0,
        updated: 0,
    };
    for (i, row) in rows.iter().enumerate() {
        let values: Vec<(&'static Column, &str)> = columns
            .iter()
            .zip(row)
            .filter_map(|(column, value)| column.map(|c| (c, value.as_str())))
            .collect();
        match import_row(tenant, i + 1, &values)? {
            Change::Added => counts.added += 1,
            Change::Updated => counts.updated += 1,
            Change::None => {}
        }
    }
    Ok(counts)
}

enum Change {
    Added,
    Updated,
    None,
}

fn import_row(
    tenant: &mut Tenant,
    line: usize,
    values: &[(&'static Column, &str)],
) -> Result<Change, Response> {
    let refuse = |message: String| pleasanter(StatusCode::INTERNAL_SERVER_ERROR, &message);
    let login = values
        .iter()
        .find(|(c, _)| c.name == LOGIN_ID)
        .map_or("", |(_, v)| *v)
        .to_string();
    if login.is_empty() {
        // Our own wording: the connector never sends an empty login.
        return Err(refuse(format!("Line{line}:Login ID is empty.")));
    }
    if tenant.other_tenants.contains(&login) {
        return Err(refuse("This login ID is already in use.".into()));
    }
    if tenant.exception_logins.contains(&login) {
        return Err(exception());
    }
    for (column, value) in values {
        if column
            .limit
            .is_some_and(|limit| value.encode_utf16().count() > limit)
        {
            return Err(exception());
        }
        if column.name == "MailAddress" && !value.is_empty() && !is_mail_address(value) {
            return Err(refuse(format!("Invalid email address.[{value}]")));
        }
    }
    let fresh = !tenant.users.contains_key(&login);
    if fresh {
        tenant.add(&login, &[], false);
    }
    let Some(user) = tenant.users.get_mut(&login) else {
        return Err(refuse("The user vanished.".into()));
    };
    let before = user.clone();
    for (column, value) in values {
        match column.name {
            LOGIN_ID => {}
            DISABLED => user.disabled = is_true(value),
            name if value.is_empty() => {
                user.columns.remove(name);
            }
            name => {
                user.columns.insert(name.to_string(), value.to_string());
            }
        }
    }
    Ok(if fresh {
        Change::Added
    } else if *user != before {
        Change::Updated
    } else {
        Change::None
    })
}

/// Pleasanter's reading of a boolean cell.
fn is_true(value: &str) -> bool {
    value == "1" || value.eq_ignore_ascii_case("true")
}

/// An assumption: Pleasanter checks addresses with an ASCII pattern (its
/// parameters can change it), stricter than the HR files' check.
fn is_mail_address(value: &str) -> bool {
    let local_char = |c: char| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c);
    let label = |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.chars().all(local_char)
                && domain.contains('.')
                && domain.split('.').all(label)
        }
        None => false,
    }
}

async fn get_users(State(kernel): State<Shared>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    admit!(kernel, "get", request.get("ApiKey").and_then(Value::as_str));
    let offset = request.get("Offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    // Column → (value, exact): a view filter is a partial LIKE unless an
    // exact match is asked for.
    let filters: Vec<(String, String, bool)> = request
        .pointer("/View/ColumnFilterHash")
        .and_then(Value::as_object)
        .map(|hash| {
            hash.iter()
                .filter_map(|(column, value)| {
                    let exact = request
                        .pointer(&format!("/View/ColumnFilterSearchTypes/{column}"))
                        .and_then(Value::as_str)
                        == Some("ExactMatch");
                    Some((column.clone(), value.as_str()?.to_string(), exact))
                })
                .collect()
        })
        .unwrap_or_default();
    let matches = |login: &str, user: &User| {
        filters.iter().all(|(column, wanted, exact)| {
            let held = match column.as_str() {
                LOGIN_ID => login,
                other => user.columns.get(other).map_or("", String::as_str),
            };
            if *exact {
                held == wanted
            } else {
                held.contains(wanted.as_str())
            }
        })
    };
    let tenant = kernel.lock();
    let page_size = tenant.page_size.min(200);
    let matching: Vec<(&String, &User)> =
        tenant.users.iter().filter(|(l, u)| matches(l, u)).collect();
    let data: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(page_size)
        .map(|(login, user)| {
            json!({
                "UserId": user.id,
                "LoginId": login,
                "Name": user.columns.get("Name").cloned().unwrap_or_default(),
                "UserCode": user.columns.get("UserCode").cloned().unwrap_or_default(),
                "Disabled": user.disabled,
            })
        })
        .collect();
    axum::Json(json!({
        "StatusCode": 200,
        "Response": {
            "Offset": offset,
            "PageSize": page_size,
            "TotalCount": matching.len(),
            "Data": data,
        }
    }))
    .into_response()
}

/// The API version every request of the users API must say: 1.1.
fn wrong_api_version(request: &Value) -> Option<Response> {
    (request.get("ApiVersion").and_then(Value::as_f64) != Some(1.1))
        .then(|| pleasanter(StatusCode::BAD_REQUEST, "ApiVersion must be 1.1."))
}

/// `POST /api/users/{id}/delete`: a tenant manager's key deletes the user
/// for good; 404 for an id the tenant does not hold.
async fn delete(State(kernel): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    admit!(
        kernel,
        "delete",
        request.get("ApiKey").and_then(Value::as_str)
    );
    if let Some(refused) = wrong_api_version(&request) {
        return refused;
    }
    let mut tenant = kernel.lock();
    if !tenant.manager {
        return pleasanter(
            StatusCode::FORBIDDEN,
            "You do not have permission to perform this operation.",
        );
    }
    let Some(login) = tenant.login_of(&id) else {
        return pleasanter(StatusCode::NOT_FOUND, "The user was not found.");
    };
    tenant.users.remove(&login);
    tenant.deleted.push(login);
    let id: u64 = id.parse().unwrap_or_default();
    (
        StatusCode::OK,
        axum::Json(json!({"Id": id, "StatusCode": 200, "Message": "The user has been deleted."})),
    )
        .into_response()
}

async fn update(State(kernel): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    admit!(
        kernel,
        "update",
        request.get("ApiKey").and_then(Value::as_str)
    );
    if let Some(refused) = wrong_api_version(&request) {
        return refused;
    }
    let mut tenant = kernel.lock();
    let Some(login) = tenant.login_of(&id) else {
        return pleasanter(StatusCode::NOT_FOUND, "The user was not found.");
    };
    if request.get(DISABLED).is_some() && !tenant.manager {
        return pleasanter(
            StatusCode::INTERNAL_SERVER_ERROR,
            "You don't have permission to change \" Disabled \".",
        );
    }
    let renamed = request
        .get(LOGIN_ID)
        .and_then(Value::as_str)
        .filter(|l| *l != login);
    if let Some(new) = renamed
        && (tenant.users.contains_key(new) || tenant.other_tenants.iter().any(|l| l == new))
    {
        return pleasanter(
            StatusCode::INTERNAL_SERVER_ERROR,
            "This login ID is already in use.",
        );
    }
    let Some(mut user) = tenant.users.remove(&login) else {
        return pleasanter(StatusCode::NOT_FOUND, "The user was not found.");
    };
    if let Some(disabled) = request.get(DISABLED).and_then(Value::as_bool) {
        user.disabled = disabled;
    }
    for column in COLUMNS
        .iter()
        .filter(|c| ![LOGIN_ID, DISABLED].contains(&c.name))
    {
        match request.get(column.name).and_then(Value::as_str) {
            Some("") => {
                user.columns.remove(column.name);
            }
            Some(value) => {
                user.columns
                    .insert(column.name.to_string(), value.to_string());
            }
            None => {}
        }
    }
    let id = user.id;
    tenant
        .users
        .insert(renamed.unwrap_or(&login).to_string(), user);
    (
        StatusCode::OK,
        axum::Json(json!({"Id": id, "StatusCode": 200, "Message": "The user has been updated."})),
    )
        .into_response()
}
