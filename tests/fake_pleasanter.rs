//! The Pleasanter fake's rules, one test each, spoken to over HTTP as a
//! client would: what the sync tests rely on it to do as the real server does.

mod support;

use serde_json::{Value, json};
use support::fakes::pleasanter::{Fake, Language};

const KEY: &str = "fake-key";

/// An answer: status, `Location` if any, and the body as JSON (`Null` if it is none).
struct Answer {
    status: u16,
    location: Option<String>,
    body: Value,
}

impl Answer {
    fn message(&self) -> &str {
        self.body["Message"].as_str().unwrap_or("")
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    Answer {
        status,
        location,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// Imports `csv` (bytes as given) with `key` and `encoding`.
async fn import_bytes(fake: &Fake, key: &str, encoding: &str, csv: Vec<u8>) -> Answer {
    let parameters = json!({"ApiVersion": 1.1, "ApiKey": key, "Encoding": encoding});
    let form = reqwest::multipart::Form::new()
        .text("parameters", parameters.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv).file_name("users.csv"),
        );
    let response = client()
        .post(format!("{}/api/users/import", fake.url))
        .multipart(form)
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn import(fake: &Fake, csv: &str) -> Answer {
    import_bytes(fake, KEY, "UTF-8", csv.as_bytes().to_vec()).await
}

async fn post(fake: &Fake, path: String, body: Value) -> Answer {
    let response = client()
        .post(format!("{}{path}", fake.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    answer(response).await
}

fn logins(fake: &Fake) -> Vec<String> {
    fake.directory().into_keys().collect()
}

fn column(fake: &Fake, login: &str, name: &str) -> Option<String> {
    fake.directory()
        .get(login)
        .and_then(|u| u.columns.get(name).cloned())
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_are_the_labels_in_the_key_owners_language() {
    let fake = Fake::start(KEY);
    let english =
        "Login ID,Name,User code,Email address,Department code\nana,Alves,E1,ana@x.fr,D1\n";
    assert_eq!(import(&fake, english).await.status, 200);
    let ana = &fake.directory()["ana"];
    assert_eq!(
        ana.columns,
        [
            ("DeptCode", "D1"),
            ("MailAddress", "ana@x.fr"),
            ("Name", "Alves"),
            ("UserCode", "E1")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into()
    );

    // A Japanese key owner: the Japanese labels, and the English ones are no labels.
    fake.with(|t| t.language = Language::Japanese);
    let answer = import(
        &fake,
        "ログインID,名前,メールアドレス\nyamada,山田,yamada@x.jp\n",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        column(&fake, "yamada", "MailAddress").as_deref(),
        Some("yamada@x.jp")
    );
    let answer = import(&fake, english).await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.message(),
        "The required column is not included. Column:ログインID"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_that_is_no_label_is_dropped_without_a_word() {
    let fake = Fake::start(KEY);
    let answer = import(&fake, "Login ID,Name,Mail address\nana,Alves,ana@x.fr\n").await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.message(),
        ": 1 entries have been added and 0 entries updated."
    );
    assert_eq!(column(&fake, "ana", "Name").as_deref(), Some("Alves"));
    assert_eq!(column(&fake, "ana", "MailAddress"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_id_and_name_are_required_headers_an_empty_name_is_not_refused() {
    let fake = Fake::start(KEY);
    for (csv, missing) in [
        ("Name\nAlves\n", "Login ID"),
        ("Login ID,User code\nana,E1\n", "Name"),
    ] {
        let answer = import(&fake, csv).await;
        assert_eq!(answer.status, 500);
        assert_eq!(
            answer.message(),
            format!("The required column is not included. Column:{missing}")
        );
    }
    assert!(logins(&fake).is_empty());
    assert_eq!(import(&fake, "Login ID,Name\nana,\n").await.status, 200);
    assert_eq!(logins(&fake), ["ana"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_only_file_asks_for_a_file() {
    let fake = Fake::start(KEY);
    let answer = import(&fake, "Login ID,Name\n").await;
    assert_eq!(
        (answer.status, answer.message()),
        (500, "Please select a file.")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_changed_row_counts_as_updated() {
    let fake = Fake::start(KEY);
    let csv = "Login ID,Name,User code\nana,Alves,E1\nben,Blanc,E2\n";
    let message = |added: u64, updated: u64| {
        format!(": {added} entries have been added and {updated} entries updated.")
    };
    assert_eq!(import(&fake, csv).await.message(), message(2, 0));
    // The same rows again: unchanged, in neither total.
    assert_eq!(import(&fake, csv).await.message(), message(0, 0));
    let changed = "Login ID,Name,User code\nana,Alves,E1\nben,Blanc,E9\n";
    assert_eq!(import(&fake, changed).await.message(), message(0, 1));

    fake.with(|t| t.language = Language::Japanese);
    let answer = import(&fake, "ログインID,名前\ncleo,Colin\n").await;
    assert_eq!(answer.message(), ": 1 件追加し、0 件更新しました。");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_error_is_a_500_and_the_rows_before_it_stay() {
    let fake = Fake::start(KEY);
    fake.with(|t| t.other_tenants = vec!["ben".into()]);
    let answer = import(&fake, "Login ID,Name\nana,Alves\nben,Blanc\ncleo,Colin\n").await;
    assert_eq!(
        (answer.status, answer.message()),
        (500, "This login ID is already in use.")
    );
    assert_eq!(logins(&fake), ["ana"], "ana committed, cleo never read");

    let answer = import(
        &fake,
        "Login ID,Name,Email address\ncleo,Colin,cleo@x.fr\ndan,Dias,dan.x.fr\n",
    )
    .await;
    assert_eq!(
        (answer.status, answer.message()),
        (500, "Invalid email address.[dan.x.fr]")
    );
    assert_eq!(logins(&fake), ["ana", "cleo"]);
    // Stricter than the HR files' check: ASCII only.
    let answer = import(
        &fake,
        "Login ID,Name,Email address\nelodie,Élodie,élodie@x.fr\n",
    )
    .await;
    assert_eq!(
        (answer.status, answer.message()),
        (500, "Invalid email address.[élodie@x.fr]")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_longer_than_its_column_redirects_to_the_error_page() {
    let fake = Fake::start(KEY);
    // At the limit: taken. One over, in any limited column: an exception.
    let at_limit = format!(
        "Login ID,Name,User code\n{},Alves,{}\n",
        "a".repeat(256),
        "1".repeat(32)
    );
    assert_eq!(import(&fake, &at_limit).await.status, 200);
    for (column, value) in [
        ("Login ID", "a".repeat(257)),
        ("Name", "n".repeat(129)),
        ("User code", "1".repeat(33)),
        ("Email address", format!("{}@x.fr", "m".repeat(2044))),
    ] {
        let csv = match column {
            "Login ID" => format!("Login ID,Name\nben,Blanc\n{value},Colin\n"),
            "Name" => format!("Login ID,Name\nben,Blanc\ncleo,{value}\n"),
            _ => format!("Login ID,Name,{column}\nben,Blanc,\ncleo,Colin,{value}\n"),
        };
        let answer = import(&fake, &csv).await;
        assert_eq!(answer.status, 302, "{column}");
        assert_eq!(answer.location.as_deref(), Some("/errors"), "{column}");
    }
    assert!(
        logins(&fake).contains(&"ben".to_string()),
        "the row before stays"
    );
    assert!(!logins(&fake).contains(&"cleo".to_string()));
    // Characters are counted as .NET does, in UTF-16 units: 𠮷 is two.
    let answer = import(&fake, &format!("Login ID,Name\ndan,{}\n", "𠮷".repeat(65))).await;
    assert_eq!(answer.status, 302);
    // Any other server exception, the same way.
    fake.with(|t| t.exception_logins = vec!["eve".into()]);
    let answer = import(&fake, "Login ID,Name\neve,Eyre\n").await;
    assert_eq!(
        (answer.status, answer.location.as_deref()),
        (302, Some("/errors"))
    );
    // The page it leads to is an HTML 500.
    let page = client()
        .get(format!("{}/errors", fake.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 500);
    assert_eq!(fake.hits("errors"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn disabled_is_importable() {
    let fake = Fake::start(KEY);
    let answer = import(&fake, "Login ID,Name,Disabled\nana,Alves,1\nben,Blanc,0\n").await;
    assert_eq!(answer.status, 200);
    let directory = fake.directory();
    assert!(directory["ana"].disabled && !directory["ben"].disabled);
    assert_eq!(
        import(
            &fake,
            "Login ID,Name,Disabled\nana,Alves,0\nben,Blanc,true\n"
        )
        .await
        .message(),
        ": 0 entries have been added and 2 entries updated."
    );
    let directory = fake.directory();
    assert!(!directory["ana"].disabled && directory["ben"].disabled);
}

#[tokio::test(flavor = "multi_thread")]
async fn users_get_matches_login_partially_unless_an_exact_match_is_asked() {
    let fake = Fake::start(KEY);
    fake.with(|t| {
        for login in ["ana", "banana", "anabel"] {
            t.add(login, &[("Name", login)], false);
        }
    });
    let get = |exact: bool| {
        let mut view = json!({"ColumnFilterHash": {"LoginId": "ana"}});
        if exact {
            view["ColumnFilterSearchTypes"] = json!({"LoginId": "ExactMatch"});
        }
        post(
            &fake,
            "/api/users/get".into(),
            json!({"ApiVersion": 1.1, "ApiKey": KEY, "View": view}),
        )
    };
    let found = |answer: &Answer| -> Vec<String> {
        answer.body["Response"]["Data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["LoginId"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(found(&get(false).await), ["ana", "anabel", "banana"]);
    let exact = get(true).await;
    assert_eq!(found(&exact), ["ana"]);
    assert!(exact.body["Response"]["Data"][0]["UserId"].is_u64());
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_exact_name_shift_jis_reads_shift_jis() {
    let fake = Fake::start(KEY);
    let csv = "ログインID,名前\nyamada,山田\n";
    let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(csv);
    fake.with(|t| t.language = Language::Japanese);
    let answer = import_bytes(&fake, KEY, "Shift-JIS", bytes.to_vec()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(column(&fake, "yamada", "Name").as_deref(), Some("山田"));
    // Any other spelling is UTF-8, bad bytes replaced without a word: the
    // header is no label any more, and a value is garbled, not refused.
    let answer = import_bytes(&fake, KEY, "Shift_JIS", bytes.to_vec()).await;
    assert_eq!(
        (answer.status, answer.message()),
        (
            500,
            "The required column is not included. Column:ログインID"
        )
    );
    let mut csv = "ログインID,名前\n".as_bytes().to_vec();
    csv.extend_from_slice(&encoding_rs::SHIFT_JIS.encode("sato,佐藤\n").0);
    let answer = import_bytes(&fake, KEY, "utf-8", csv).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let garbled = column(&fake, "sato", "Name").unwrap_or_default();
    assert!(garbled.contains('\u{FFFD}'), "{garbled:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_key_is_401_and_a_key_of_no_tenant_manager_403() {
    let fake = Fake::start(KEY);
    let csv = b"Login ID,Name\nana,Alves\n".to_vec();
    let answer = import_bytes(&fake, "wrong", "UTF-8", csv.clone()).await;
    assert_eq!(
        (answer.status, answer.message()),
        (401, "Unable to authorize.")
    );
    fake.with(|t| t.manager = false);
    assert_eq!(import_bytes(&fake, KEY, "UTF-8", csv).await.status, 403);
    let id = fake.with(|t| t.add("ana", &[("Name", "Alves")], false));
    let answer = post(
        &fake,
        format!("/api/users/{id}/update"),
        json!({"ApiVersion": 1.1, "ApiKey": KEY, "Disabled": true}),
    )
    .await;
    assert_eq!(
        (answer.status, answer.message()),
        (500, "You don't have permission to change \" Disabled \".")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn update_takes_any_field_and_renames_a_login() {
    let fake = Fake::start(KEY);
    let id = fake.with(|t| t.add("ana", &[("Name", "Alves")], false));
    fake.with(|t| t.add("ben", &[("Name", "Blanc")], false));
    let update = |id: u64, body: Value| {
        let mut body = body;
        body["ApiVersion"] = json!(1.1);
        body["ApiKey"] = json!(KEY);
        post(&fake, format!("/api/users/{id}/update"), body)
    };
    let answer = update(
        id,
        json!({"LoginId": "ana.alves", "Disabled": true, "Name": "Alves A."}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let directory = fake.directory();
    assert_eq!(directory.keys().collect::<Vec<_>>(), ["ana.alves", "ben"]);
    assert!(directory["ana.alves"].disabled);
    assert_eq!(directory["ana.alves"].columns["Name"], "Alves A.");
    let taken = update(id, json!({"LoginId": "ben"})).await;
    assert_eq!(
        (taken.status, taken.message()),
        (500, "This login ID is already in use.")
    );
    assert_eq!(update(999, json!({"Name": "x"})).await.status, 404);
}
