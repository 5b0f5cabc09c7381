//! A fake Implem Pleasanter tenant: the CSV user import (`multipart/form-data`
//! with `parameters` and `file`, UTF-8 or Shift-JIS, an upsert by login with a
//! localised message), `/api/users/get` (paged, filtered loosely on LoginId the
//! way a view filter matches) and `/api/users/{id}/update` with `Disabled`.
//! The API key is checked in every body; only the column names the tenant
//! knows are taken (an unknown header is a 400); faults come from `Faults`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::kernel::admit;
use super::{Kernel, Refusal, Server};

/// A user as the tenant keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    /// Column display name → value, the login column aside.
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
    /// Answer the import in Japanese ("N 件追加し、M 件更新しました。").
    pub japanese: bool,
    /// The column display names the import takes; the first is the login,
    /// the second the (required) display name.
    pub columns: Vec<String>,
    /// Logins the tenant refuses (the whole import answers 400).
    pub refused_logins: Vec<String>,
    /// Users per page of `/api/users/get`.
    pub page_size: usize,
    /// The `Encoding` parameter of each import received.
    pub encodings: Vec<String>,
}

pub fn english_columns() -> Vec<String> {
    [
        "Login ID",
        "Name",
        "User code",
        "Mail address",
        "Department code",
        "Department",
        "Comment",
        "Language",
        "Time zone",
        "Description",
    ]
    .map(String::from)
    .to_vec()
}

pub fn japanese_columns() -> Vec<String> {
    [
        "ログインID",
        "名前",
        "ユーザコード",
        "メールアドレス",
        "組織コード",
        "組織",
        "説明",
    ]
    .map(String::from)
    .to_vec()
}

impl Default for Tenant {
    fn default() -> Self {
        Tenant {
            users: BTreeMap::new(),
            next_id: 1,
            japanese: false,
            columns: english_columns(),
            refused_logins: Vec::new(),
            page_size: 200,
            encodings: Vec::new(),
        }
    }
}

/// The tenant; its requests are counted per endpoint ("import", "get", "update").
pub type Fake = Server<Tenant>;

type Shared = Arc<Kernel<Tenant>>;

/// How the tenant words the kernel's refusals.
fn refusal(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthorised => pleasanter(StatusCode::UNAUTHORIZED, "Authentication failed."),
        Refusal::TooManyRequests => (
            StatusCode::TOO_MANY_REQUESTS,
            "{\"StatusCode\":429,\"Message\":\"Too many requests.\"}",
        )
            .into_response(),
        Refusal::Unavailable => pleasanter(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is in maintenance.",
        ),
    }
}

impl Fake {
    /// `key`: the API key every request must carry in its body.
    pub fn start(key: &str) -> Fake {
        let kernel = Kernel::new(Tenant::default(), Some(key.to_string()), refusal);
        Server::launch(kernel, |kernel| {
            Router::new()
                .route("/api/users/import", post(import))
                .route("/api/users/get", post(get))
                .route("/api/users/{id}/update", post(update))
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
    if parameters.get("ApiVersion").and_then(Value::as_f64) != Some(1.1) {
        return pleasanter(StatusCode::BAD_REQUEST, "ApiVersion must be 1.1.");
    }
    let encoding = parameters
        .get("Encoding")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(file) = parts.get("file") else {
        return pleasanter(StatusCode::BAD_REQUEST, "No file.");
    };
    let text = match encoding.as_str() {
        "UTF-8" => std::str::from_utf8(file).ok().map(str::to_string),
        "Shift-JIS" => encoding_rs::SHIFT_JIS
            .decode_without_bom_handling_and_without_replacement(file)
            .map(|t| t.into_owned()),
        _ => {
            return pleasanter(
                StatusCode::BAD_REQUEST,
                "Encoding must be UTF-8 or Shift-JIS.",
            );
        }
    };
    let Some(text) = text else {
        return pleasanter(
            StatusCode::BAD_REQUEST,
            &format!("The file is not {encoding}."),
        );
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(_) => return pleasanter(StatusCode::BAD_REQUEST, "Unreadable CSV header."),
    };
    let mut rows = Vec::new();
    for row in reader.records() {
        match row {
            Ok(row) => rows.push(row.iter().map(str::to_string).collect::<Vec<_>>()),
            Err(error) => {
                return pleasanter(StatusCode::BAD_REQUEST, &format!("Unreadable CSV: {error}"));
            }
        }
    }
    let counts = {
        let mut tenant = kernel.lock();
        tenant.encodings.push(encoding);
        match upsert(&mut tenant, &header, &rows) {
            Ok(counts) => counts,
            Err(message) => return pleasanter(StatusCode::BAD_REQUEST, &message),
        }
    };
    if admitted.malformed() {
        return (StatusCode::OK, "{\"Id\":0,\"StatusCode\":200,\"Mess").into_response();
    }
    let (mut added, mut updated) = (counts.added, counts.updated);
    // Short counts, on batches only: a single record's are always right.
    if rows.len() > 1 && admitted.wrong_counts() {
        if added > 0 {
            added -= 1;
        } else {
            updated = updated.saturating_sub(1);
        }
    }
    let japanese = kernel.lock().japanese;
    let message = if japanese {
        format!("{added} 件追加し、{updated} 件更新しました。")
    } else {
        format!("{added} items added and {updated} items updated.")
    };
    pleasanter(StatusCode::OK, &message)
}

/// Checks the whole file, then applies it (all or nothing, as Pleasanter's import).
fn upsert(tenant: &mut Tenant, header: &[String], rows: &[Vec<String>]) -> Result<Counts, String> {
    for name in header {
        if !tenant.columns.contains(name) {
            return Err(format!("Unknown column: {name}."));
        }
    }
    let login_column = tenant.columns[0].clone();
    let name_column = tenant.columns[1].clone();
    let Some(login_at) = header.iter().position(|h| *h == login_column) else {
        return Err(format!("{login_column} is required."));
    };
    let name_at = header.iter().position(|h| *h == name_column);
    for (i, row) in rows.iter().enumerate() {
        let line = i + 2;
        if row.len() != header.len() {
            return Err(format!("Row {line}: the number of columns is wrong."));
        }
        let login = &row[login_at];
        if login.is_empty() {
            return Err(format!("Row {line}: {login_column} is required."));
        }
        if tenant.refused_logins.contains(login) {
            return Err(format!("Row {line}: {login} cannot be used."));
        }
        let named = name_at.is_some_and(|at| !row[at].is_empty());
        if !tenant.users.contains_key(login) && !named {
            return Err(format!("Row {line}: {name_column} is required."));
        }
    }
    let mut counts = Counts {
        added: 0,
        updated: 0,
    };
    for row in rows {
        let login = row[login_at].clone();
        let user = match tenant.users.get_mut(&login) {
            Some(user) => {
                counts.updated += 1;
                user
            }
            None => {
                counts.added += 1;
                let id = tenant.next_id;
                tenant.next_id += 1;
                tenant.users.entry(login).or_insert(User {
                    id,
                    columns: BTreeMap::new(),
                    disabled: false,
                })
            }
        };
        for (name, value) in header.iter().zip(row) {
            if *name == login_column {
                continue;
            }
            if value.is_empty() {
                user.columns.remove(name);
            } else {
                user.columns.insert(name.clone(), value.clone());
            }
        }
    }
    Ok(counts)
}

async fn get(State(kernel): State<Shared>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    admit!(kernel, "get", request.get("ApiKey").and_then(Value::as_str));
    let offset = request.get("Offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    // A view filter matches loosely: "ana" finds "banana" too.
    let filter = request
        .pointer("/View/ColumnFilterHash/LoginId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let tenant = kernel.lock();
    let matching: Vec<(&String, &User)> = tenant
        .users
        .iter()
        .filter(|(login, _)| filter.as_ref().is_none_or(|f| login.contains(f.as_str())))
        .collect();
    let data: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(tenant.page_size)
        .map(|(login, user)| {
            json!({
                "UserId": user.id,
                "LoginId": login,
                "Name": user.columns.get(&tenant.columns[1]).cloned().unwrap_or_default(),
                "Disabled": user.disabled,
            })
        })
        .collect();
    axum::Json(json!({
        "StatusCode": 200,
        "Response": {
            "Offset": offset,
            "PageSize": tenant.page_size,
            "TotalCount": matching.len(),
            "Data": data,
        }
    }))
    .into_response()
}

async fn update(State(kernel): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    admit!(
        kernel,
        "update",
        request.get("ApiKey").and_then(Value::as_str)
    );
    if request.get("ApiVersion").and_then(Value::as_f64) != Some(1.1) {
        return pleasanter(StatusCode::BAD_REQUEST, "ApiVersion must be 1.1.");
    }
    let Some(disabled) = request.get("Disabled").and_then(Value::as_bool) else {
        return pleasanter(StatusCode::BAD_REQUEST, "Disabled must be true or false.");
    };
    let mut tenant = kernel.lock();
    let Some(user) = tenant.users.values_mut().find(|u| id.parse() == Ok(u.id)) else {
        return pleasanter(StatusCode::NOT_FOUND, "The user was not found.");
    };
    user.disabled = disabled;
    let id = user.id;
    (
        StatusCode::OK,
        axum::Json(json!({"Id": id, "StatusCode": 200, "Message": "The user has been updated."})),
    )
        .into_response()
}
