//! The SCIM fake's rules, one test each, spoken to over HTTP as a client
//! would: what the sync tests rely on it to do as real providers do
//! (discovery, strict schemas, no filter support, versions and `If-Match`,
//! PATCH paths that select values, error bodies that echo the token).

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::fakes::scim::{ENTERPRISE, Fake, GROUP_SCHEMA, USER_SCHEMA};

const TOKEN: &str = "fake-scim-token";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct Answer {
    status: u16,
    etag: Option<String>,
    body: Value,
}

impl Answer {
    fn detail(&self) -> String {
        format!(
            "{} ({})",
            self.body["detail"].as_str().unwrap_or(""),
            self.body["scimType"].as_str().unwrap_or("")
        )
    }
}

/// One request: `token` as the bearer, `if_match` when given.
fn call_with(
    fake: &Fake,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> Answer {
    let url = format!("{}{path}", fake.url);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut request = reqwest::Client::new()
            .request(method, url)
            .header("authorization", format!("Bearer {token}"));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        if let Some(version) = if_match {
            request = request.header("if-match", version);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string());
        let text = response.text().await.unwrap();
        Answer {
            status,
            etag,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    })
}

fn call(fake: &Fake, method: Method, path: &str, body: Option<Value>) -> Answer {
    call_with(fake, TOKEN, method, path, body, None)
}

fn patch(fake: &Fake, id: &str, operations: Value) -> Answer {
    let body = json!({"schemas": [PATCH_OP], "Operations": operations});
    call(fake, Method::PATCH, &format!("/Users/{id}"), Some(body))
}

/// Ana as a client sends her, with what strict providers refuse.
fn ana() -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": "ana",
        "externalId": "A1",
        "name": {"formatted": "Ana Alves", "givenName": "Ana", "familyName": "Alves"},
        "emails": [{"value": "ana@x.fr", "type": "work"}],
        "active": true,
    })
}

fn with(mut value: Value, pointer: &str, new: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    value.pointer_mut(parent).unwrap()[key] = new;
    value
}

fn without(mut value: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    value
        .pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key);
    value
}

fn created(fake: &Fake, user: Value) -> String {
    let answer = call(fake, Method::POST, "/Users", Some(user));
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body["id"].as_str().unwrap().to_string()
}

#[test]
fn discovery_announces_the_features_and_serves_schemas_and_resource_types() {
    let fake = Fake::start(TOKEN, true);
    fake.with(|p| {
        p.filter_supported = false;
        p.etag_supported = true;
    });
    let config = call(&fake, Method::GET, "/ServiceProviderConfig", None).body;
    assert_eq!(config["patch"]["supported"], json!(true));
    assert_eq!(config["filter"]["supported"], json!(false));
    assert_eq!(config["etag"]["supported"], json!(true));

    let schemas = call(&fake, Method::GET, "/Schemas", None).body;
    let ids: Vec<&str> = schemas["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [USER_SCHEMA, ENTERPRISE, GROUP_SCHEMA]);
    let user = &schemas["Resources"][0]["attributes"];
    let user_name = user
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "userName");
    assert_eq!(user_name.unwrap()["required"], json!(true));

    let types = call(&fake, Method::GET, "/ResourceTypes", None).body;
    assert_eq!(types["Resources"][0]["endpoint"], "/Users");
    assert_eq!(
        types["Resources"][0]["schemaExtensions"][0]["schema"],
        ENTERPRISE
    );
    assert_eq!(types["Resources"][1]["schema"], GROUP_SCHEMA);
}

#[test]
fn a_strict_provider_refuses_what_its_schemas_do_not_declare() {
    let fake = Fake::strict(TOKEN, true);
    for (user, said) in [
        (
            with(ana(), "/name/honorificPrefix", json!("Mme")),
            "Extra inputs are not permitted: name.honorificPrefix (invalidSyntax)",
        ),
        (
            with(
                ana(),
                "/emails",
                json!([{"value": "ana@x.fr", "type": "work", "primary": true}]),
            ),
            "Extra inputs are not permitted: emails[0].primary (invalidSyntax)",
        ),
        (
            with(
                with(ana(), "/schemas", json!([USER_SCHEMA, ENTERPRISE])),
                &format!("/{ENTERPRISE}"),
                json!({"department": "R&D", "manager": {"value": "u-1"}}),
            ),
            &format!("Extra inputs are not permitted: {ENTERPRISE}:manager (invalidSyntax)"),
        ),
        (
            with(ana(), "/nickName2", json!("x")),
            "Extra inputs are not permitted: nickName2 (invalidSyntax)",
        ),
    ] {
        let answer = call(&fake, Method::POST, "/Users", Some(user));
        assert_eq!((answer.status, answer.detail()), (400, said.to_string()));
    }
    assert!(fake.directory().is_empty());
    // The same resources pass a lenient provider.
    let lenient = Fake::start(TOKEN, true);
    let answer = call(
        &lenient,
        Method::POST,
        "/Users",
        Some(with(ana(), "/name/honorificPrefix", json!("Mme"))),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
}

#[test]
fn a_strict_provider_requires_what_its_schemas_mark_required() {
    let fake = Fake::strict(TOKEN, true);
    let answer = call(
        &fake,
        Method::POST,
        "/Users",
        Some(without(ana(), "/name/formatted")),
    );
    assert_eq!(
        (answer.status, answer.detail()),
        (
            400,
            "Field 'formatted' is required but value is missing, null or empty: name (invalidValue)"
                .to_string()
        )
    );
    let group = json!({"schemas": [GROUP_SCHEMA], "displayName": "Sales", "externalId": "O1"});
    let answer = call(&fake, Method::POST, "/Groups", Some(group.clone()));
    assert_eq!(
        (answer.status, answer.detail()),
        (
            400,
            "Field 'members' is required but value is missing, null or empty (invalidValue)"
                .to_string()
        )
    );
    // An empty list is given.
    let group = with(group, "/members", json!([]));
    assert_eq!(
        call(&fake, Method::POST, "/Groups", Some(group)).status,
        201
    );
    let member = created(&fake, ana());
    // A PATCH that would leave the user without what is required is refused too.
    let answer = patch(
        &fake,
        &member,
        json!([{"op": "remove", "path": "name.formatted"}]),
    );
    assert_eq!(answer.status, 400, "{}", answer.body);
}

#[test]
fn without_filter_support_a_filter_is_refused_and_a_plain_list_pages() {
    let fake = Fake::start(TOKEN, true);
    fake.with(|p| {
        p.filter_supported = false;
        p.max_results = 2;
    });
    for n in 0..3 {
        created(&fake, with(ana(), "/userName", json!(format!("u{n}"))));
    }
    let answer = call(
        &fake,
        Method::GET,
        "/Users?filter=userName%20eq%20%22u1%22",
        None,
    );
    assert_eq!(
        (answer.status, answer.detail()),
        (501, "Filtering is not supported ()".to_string())
    );
    let first = call(&fake, Method::GET, "/Users?startIndex=1&count=1000", None).body;
    assert_eq!(
        (&first["totalResults"], &first["itemsPerPage"]),
        (&json!(3), &json!(2))
    );
    let second = call(&fake, Method::GET, "/Users?startIndex=3&count=1000", None).body;
    assert_eq!(second["Resources"][0]["userName"], "u2");
}

#[test]
fn versions_move_on_with_each_write_and_a_stale_if_match_gets_412() {
    let fake = Fake::start(TOKEN, true);
    fake.with(|p| p.etag_supported = true);
    let answer = call(&fake, Method::POST, "/Users", Some(ana()));
    let id = answer.body["id"].as_str().unwrap().to_string();
    let first = answer.body["meta"]["version"].as_str().unwrap().to_string();
    assert_eq!(answer.etag.as_deref(), Some(first.as_str()));
    let path = format!("/Users/{id}");
    let title = |t: &str| json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": t}]});

    let answer = call_with(
        &fake,
        TOKEN,
        Method::PATCH,
        &path,
        Some(title("A")),
        Some(&first),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let second = answer.body["meta"]["version"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    // The first version is stale now: refused, nothing changed.
    let answer = call_with(
        &fake,
        TOKEN,
        Method::PATCH,
        &path,
        Some(title("B")),
        Some(&first),
    );
    assert_eq!(
        (answer.status, answer.detail()),
        (
            412,
            "Failed to update. Resource has changed on the server ()".to_string()
        )
    );
    assert_eq!(fake.user("ana").unwrap()["title"], "A");
    // A PUT is held to it the same way; without If-Match a write goes through.
    let put = call_with(&fake, TOKEN, Method::PUT, &path, Some(ana()), Some(&first));
    assert_eq!(put.status, 412);
    assert_eq!(
        call(&fake, Method::PATCH, &path, Some(title("C"))).status,
        200
    );
    assert_eq!(fake.user("ana").unwrap()["title"], "C");
}

#[test]
fn an_edit_by_hand_lands_between_a_read_and_a_write() {
    let fake = Fake::start(TOKEN, false);
    fake.with(|p| p.etag_supported = true);
    let id = created(&fake, ana());
    let path = format!("/Users/{id}");
    let read = call(&fake, Method::GET, &path, None).body;
    let version = read["meta"]["version"].as_str().unwrap().to_string();
    fake.with(|p| p.edits_by_hand = 1);
    let answer = call_with(
        &fake,
        TOKEN,
        Method::PUT,
        &path,
        Some(read.clone()),
        Some(&version),
    );
    assert_eq!(answer.status, 412);
    let now = fake.user("ana").unwrap();
    assert_eq!(now["nickName"], "set by hand");
    assert_ne!(now["meta"]["version"], json!(version));
    // Read again, the write goes through and keeps the edit.
    let read = call(&fake, Method::GET, &path, None).body;
    let version = read["meta"]["version"].as_str().unwrap().to_string();
    let answer = call_with(&fake, TOKEN, Method::PUT, &path, Some(read), Some(&version));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(fake.user("ana").unwrap()["nickName"], "set by hand");
}

#[test]
fn a_patch_that_selects_values_keeps_the_others() {
    let fake = Fake::start(TOKEN, true);
    let both = json!([
        {"value": "ana@home.fr", "type": "home", "primary": true},
        {"value": "ana@x.fr", "type": "work"}
    ]);
    let id = created(&fake, with(ana(), "/emails", both));
    let emails = || fake.user("ana").unwrap()["emails"].clone();

    let answer = patch(
        &fake,
        &id,
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "anna@x.fr"}]),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        emails(),
        json!([
            {"value": "ana@home.fr", "type": "home", "primary": true},
            {"value": "anna@x.fr", "type": "work"}
        ])
    );
    patch(
        &fake,
        &id,
        json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
    );
    assert_eq!(
        emails(),
        json!([{"value": "ana@home.fr", "type": "home", "primary": true}])
    );
    // Nothing of that type any more: replacing it has no target, adding appends.
    let answer = patch(
        &fake,
        &id,
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a@x.fr"}]),
    );
    assert_eq!(
        (answer.status, answer.detail()),
        (
            400,
            "no value of 'emails' matches the path filter (noTarget)".to_string()
        )
    );
    patch(
        &fake,
        &id,
        json!([{"op": "add", "path": "emails", "value": [{"value": "a@x.fr", "type": "work"}]}]),
    );
    assert_eq!(emails().as_array().unwrap().len(), 2);
    // Removing what selects nothing is no error.
    let answer = patch(
        &fake,
        &id,
        json!([{"op": "remove", "path": "phoneNumbers[type eq \"work\"]"}]),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[test]
fn a_put_keeps_nothing_it_was_not_sent() {
    // RFC 7644 §3.5.1: a PUT replaces the resource; what a client does not
    // send is gone (so clients merge into what they read).
    let fake = Fake::start(TOKEN, false);
    let both =
        json!([{"value": "ana@home.fr", "type": "home"}, {"value": "ana@x.fr", "type": "work"}]);
    let id = created(&fake, with(ana(), "/emails", both));
    let answer = call(&fake, Method::PUT, &format!("/Users/{id}"), Some(ana()));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        fake.user("ana").unwrap()["emails"],
        json!([{"value": "ana@x.fr", "type": "work"}])
    );
}

#[test]
fn an_echoing_provider_repeats_the_authorization_header_in_its_errors() {
    let fake = Fake::start(TOKEN, true);
    fake.with(|p| p.echo_authorization = true);
    let answer = call_with(&fake, "wrong", Method::GET, "/Users", None, None);
    assert_eq!(
        (answer.status, answer.detail()),
        (
            401,
            "invalid bearer token (Authorization: Bearer wrong) ()".to_string()
        )
    );
    fake.with(|p| p.refused_user_names = vec!["ana".into()]);
    let answer = call(&fake, Method::POST, "/Users", Some(ana()));
    assert_eq!(answer.status, 400);
    assert!(
        answer.detail().contains(&format!("Bearer {TOKEN}")),
        "{}",
        answer.body
    );
}
