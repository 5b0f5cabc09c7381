//! rostersync against a real SCIM 2.0 server: python-scim's `scim2-server`
//! (PyPI), which each test starts as a child on a free loopback port. It
//! enforces what strict providers do (undeclared attributes refused,
//! required ones, 501 for features it does not announce, ETags with 412,
//! pages capped at `maxResults`), so these tests check the fake's
//! assumptions as much as the connector.
//!
//! The server is found through `ROSTERSYNC_SCIM2_SERVER` (the path of its
//! `scim2-server` command), else `scim2-server` on the PATH; `.ci/run`
//! installs it. Without it each test says why and passes, unless
//! `ROSTERSYNC_REQUIRE_SCIM2_SERVER` is set (as `.ci/run` sets it).

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use support::fakes::scim::schema;
use support::{Harness, Served, Source, Target};

const TOKEN: &str = "real-scim-t0ken-5150";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const USERS_HEADER: &str =
    "uid;login;firstname;secondname;email;position;department;manager_uid;status";

/// The server's command, if this machine has one.
fn server_command() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ROSTERSYNC_SCIM2_SERVER") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("scim2-server"))
        .find(|path| path.is_file())
}

/// The server's command, or `None` after saying loudly why the test does
/// not run (a failure where the server is required).
fn server_or_skip(test: &str) -> Option<PathBuf> {
    let found = server_command();
    if found.is_none() {
        let why = "no scim2-server: set ROSTERSYNC_SCIM2_SERVER to its command, or \
                   `pip install scim2-server` (.ci/run installs it)";
        assert!(
            std::env::var_os("ROSTERSYNC_REQUIRE_SCIM2_SERVER").is_none(),
            "{test}: {why}"
        );
        // Past the test harness's capture, so that it shows in every run.
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    }
    found
}

/// How the server is started: what its `/ServiceProviderConfig` announces,
/// and the schemas it serves (its RFC 7643 defaults when `None`).
struct Setup {
    patch: bool,
    filter: bool,
    schemas: Option<(Vec<Value>, Vec<Value>)>,
}

/// A running scim2-server, stopped when dropped.
struct RealServer {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Served for RealServer {
    fn base_url(&self) -> Option<&str> {
        Some(&self.url)
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl RealServer {
    fn start(command: &Path, setup: Setup) -> RealServer {
        let dir = tempfile::tempdir().unwrap();
        let config = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": setup.patch},
            "bulk": {"supported": true, "maxOperations": 1000, "maxPayloadSize": 4194304},
            "filter": {"supported": setup.filter, "maxResults": 1000},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": true},
            "authenticationSchemes": [{"type": "oauthbearertoken", "name": "bearer_token",
                "description": "HTTP Bearer Token"}],
        });
        write_json(&dir.path().join("config.json"), &config);
        let port = free_port();
        let mut server = Command::new(command);
        server
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
            .args(["--bearer-token", TOKEN])
            .arg("--service-provider-config")
            .arg(dir.path().join("config.json"));
        if let Some((schemas, types)) = &setup.schemas {
            write_json(&dir.path().join("schemas.json"), &json!(schemas));
            write_json(&dir.path().join("types.json"), &json!(types));
            server
                .arg("--schema")
                .arg(dir.path().join("schemas.json"))
                .arg("--resource-type")
                .arg(dir.path().join("types.json"));
        }
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = server
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", command.display()));
        let mut server = RealServer {
            child,
            url: format!("http://127.0.0.1:{port}/v2"),
            dir,
            client: reqwest::Client::new(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        server.wait_ready();
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("scim2-server ended ({status}):\n{}", self.log());
            }
            let ready = self.runtime.block_on(async {
                let url = format!("{}/ServiceProviderConfig", self.url);
                let sent = self.client.get(url).bearer_auth(TOKEN).send().await;
                sent.is_ok_and(|r| r.status().is_success())
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "scim2-server never answered:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One request as an administrator's tool would send it: (status, body).
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.runtime.block_on(async {
            let mut request = self
                .client
                .request(method, format!("{}{path}", self.url))
                .bearer_auth(TOKEN);
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/scim+json")
                    .body(body.to_string());
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }

    /// Users made at the provider by hand, a thousand per bulk request.
    fn add_users(&self, users: Vec<Value>) {
        for chunk in users.chunks(1000) {
            let operations: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, user)| json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"), "data": user}))
                .collect();
            let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                              "Operations": operations});
            let (status, body) = self.call(reqwest::Method::POST, "/Bulk", Some(bulk));
            assert_eq!(status, 200, "{body}");
            for answer in body["Operations"].as_array().unwrap() {
                assert_eq!(answer["status"], "201", "{answer}");
            }
        }
    }

    /// Every user by userName, read page by page as the server caps them.
    fn users(&self) -> BTreeMap<String, Map<String, Value>> {
        let mut users = BTreeMap::new();
        let mut start = 1;
        loop {
            let path = format!("/Users?startIndex={start}&count=5000");
            let (status, page) = self.call(reqwest::Method::GET, &path, None);
            assert_eq!(status, 200, "{page}");
            let resources = page["Resources"].as_array().cloned().unwrap_or_default();
            assert!(resources.len() <= 1000, "the page cap is 1,000");
            for user in &resources {
                let name = user["userName"].as_str().unwrap().to_lowercase();
                let twice = users.insert(name.clone(), user.as_object().unwrap().clone());
                assert!(twice.is_none(), "two users are named {name}");
            }
            start += resources.len();
            if resources.is_empty() || start > page["totalResults"].as_u64().unwrap() as usize {
                return users;
            }
        }
    }
}

/// What the tests compare of a user: (externalId, given, family, work
/// e-mail, other e-mails, title, department, manager's userName, active).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    external_id: String,
    given: String,
    family: String,
    work: String,
    others: Vec<String>,
    title: String,
    department: String,
    manager: String,
    active: bool,
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("").to_string()
}

fn seen(users: &BTreeMap<String, Map<String, Value>>) -> BTreeMap<String, Seen> {
    let name_of: BTreeMap<String, String> = users
        .iter()
        .map(|(name, u)| (text(&u["id"]), name.clone()))
        .collect();
    users
        .iter()
        .map(|(name, u)| {
            let emails = u
                .get("emails")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let of_type = |work: bool| -> Vec<String> {
                emails
                    .iter()
                    .filter(|e| (e["type"] == "work") == work)
                    .map(|e| text(&e["value"]))
                    .collect()
            };
            let enterprise = u.get(ENTERPRISE).cloned().unwrap_or(Value::Null);
            let manager_id = text(&enterprise["manager"]["value"]);
            let user = Seen {
                external_id: text(&u["externalId"]),
                given: text(&u["name"]["givenName"]),
                family: text(&u["name"]["familyName"]),
                work: of_type(true).join(","),
                others: of_type(false),
                title: text(&u["title"]),
                department: text(&enterprise["department"]),
                manager: name_of.get(&manager_id).cloned().unwrap_or(manager_id),
                active: u.get("active") == Some(&json!(true)),
            };
            (name.clone(), user)
        })
        .collect()
}

/// A person of HR's file.
#[derive(Debug, Clone)]
struct Person {
    n: usize,
    email: String,
    title: String,
    manager: Option<usize>,
    blocked: bool,
}

impl Person {
    fn new(n: usize, managers: usize) -> Person {
        Person {
            n,
            email: format!("user{n}@x.fr"),
            title: format!("Title {}", n % 5),
            manager: (n > managers).then_some(1 + n % managers),
            blocked: false,
        }
    }

    fn row(&self) -> String {
        let manager = self.manager.map(|m| format!("E{m}")).unwrap_or_default();
        format!(
            "E{n};user{n};Given{n};Family{n};{};{};Dept {};{manager};{}",
            self.email,
            self.title,
            self.n % 7,
            u8::from(self.blocked),
            n = self.n
        )
    }

    /// As the server should hold them; `others` the addresses it held itself.
    fn seen(&self, managers_declared: bool, others: &[String]) -> Seen {
        let n = self.n;
        Seen {
            external_id: format!("E{n}"),
            given: format!("Given{n}"),
            family: format!("Family{n}"),
            work: self.email.clone(),
            others: others.to_vec(),
            title: self.title.clone(),
            department: format!("Dept {}", n % 7),
            manager: match self.manager {
                Some(m) if managers_declared => format!("user{m}"),
                _ => String::new(),
            },
            active: !self.blocked,
        }
    }
}

/// A user made by hand at the provider: login `user{n}`, no externalId, a
/// home address besides an old work one.
fn hand_made(n: usize, strict: bool) -> Value {
    let mut user = json!({
        "schemas": [USER_SCHEMA],
        "userName": format!("user{n}"),
        "name": {"formatted": format!("U. {n}"), "givenName": "U."},
        "emails": [{"value": format!("home{n}@example.net"), "type": "home"},
                   {"value": format!("old{n}@x.fr"), "type": "work"}],
        "active": true,
    });
    if !strict {
        user["emails"][0]["primary"] = json!(true);
    }
    user
}

fn harness(server: RealServer) -> support::Run<RealServer> {
    let idp = Target::scim("idp")
        .token_env("IDP_TOKEN", TOKEN)
        .set("concurrency", 4)
        .set("timeout", "10s")
        .retry("10ms", "100ms", "30s");
    support::Run(
        Harness::builder()
            .fake(server)
            .safety("max_block_percent", 50.0)
            .safety("max_shrink_percent", 50.0)
            .source(
                Source::users("users", "inbox")
                    .set("format", "collaborator")
                    .targets(&["idp"]),
            )
            .target(idp)
            .build(),
    )
}

fn sync(run: &mut support::Run<RealServer>, people: &[Person]) {
    let rows: Vec<String> = people.iter().map(Person::row).collect();
    let started = Instant::now();
    let (code, out, err) = run.sync_rows("inbox", "users", USERS_HEADER, &rows);
    assert_eq!(
        code,
        0,
        "{out}\n{}\nserver:\n{}",
        tail(&err),
        tail(&run.fake.log())
    );
    eprintln!(
        "synced {} people in {:.1?}",
        people.len(),
        started.elapsed()
    );
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn expected(
    people: &[Person],
    managers_declared: bool,
    others: &BTreeMap<usize, Vec<String>>,
) -> BTreeMap<String, Seen> {
    people
        .iter()
        .map(|p| {
            let kept = others.get(&p.n).cloned().unwrap_or_default();
            (format!("user{}", p.n), p.seen(managers_declared, &kept))
        })
        .collect()
}

/// Updates, blocks and unblocks after the first import, checked each time.
fn later_changes(
    run: &mut support::Run<RealServer>,
    people: &mut [Person],
    managers_declared: bool,
    others: &BTreeMap<usize, Vec<String>>,
) {
    let changed: Vec<usize> = (0..people.len()).step_by(people.len() / 10 + 1).collect();
    for &i in &changed {
        people[i].email = format!("new{}@x.fr", people[i].n);
        people[i].title = "Moved".into();
    }
    let blocked: Vec<usize> = (3..people.len()).step_by(people.len() / 8 + 1).collect();
    for &i in &blocked {
        people[i].blocked = true;
    }
    sync(run, people);
    assert_eq!(
        seen(&run.fake.users()),
        expected(people, managers_declared, others)
    );
    for &i in &blocked {
        people[i].blocked = false;
    }
    sync(run, people);
    assert_eq!(
        seen(&run.fake.users()),
        expected(people, managers_declared, others)
    );
}

#[test]
fn a_strict_real_server_reaches_the_expected_directory_with_the_default_mapping() {
    let Some(command) = server_or_skip(
        "a_strict_real_server_reaches_the_expected_directory_with_the_default_mapping",
    ) else {
        return;
    };
    // The fake's strict schemas, served by the real server: what the fake
    // assumes of strict providers is what this server enforces.
    let schemas = vec![
        schema::strict_user_schema(),
        schema::enterprise_schema(false),
        schema::group_schema(false),
    ];
    let setup = Setup {
        patch: true,
        filter: true,
        schemas: Some((schemas, schema::resource_types(true))),
    };
    let server = RealServer::start(&command, setup);
    // Two accounts made by hand: adopted, their home addresses kept.
    server.add_users(vec![hand_made(3, true), hand_made(7, true)]);
    let mut run = harness(server);
    let mut people: Vec<Person> = (1..=30).map(|n| Person::new(n, 4)).collect();
    sync(&mut run, &people);
    let others = BTreeMap::from([
        (3, vec!["home3@example.net".to_string()]),
        (7, vec!["home7@example.net".to_string()]),
    ]);
    assert_eq!(seen(&run.fake.users()), expected(&people, false, &others));
    let formatted = &run.fake.users()["user12"]["name"]["formatted"];
    assert_eq!(formatted, "Given12 Family12");
    later_changes(&mut run, &mut people, false, &others);
}

#[test]
fn a_real_server_without_filters_or_patch_takes_a_first_import_past_its_page_cap() {
    let Some(command) = server_or_skip(
        "a_real_server_without_filters_or_patch_takes_a_first_import_past_its_page_cap",
    ) else {
        return;
    };
    let setup = Setup {
        patch: false,
        filter: false,
        schemas: None,
    };
    let server = RealServer::start(&command, setup);
    // 1,020 of the 1,050 people already hold an account made by hand: the
    // lookups read one scan of more than a page (the server's cap is 1,000).
    let hand: Vec<usize> = (31..=1050).collect();
    server.add_users(hand.iter().map(|&n| hand_made(n, false)).collect());
    let mut run = harness(server);
    let mut people: Vec<Person> = (1..=1050).map(|n| Person::new(n, 30)).collect();
    sync(&mut run, &people);
    let others: BTreeMap<usize, Vec<String>> = hand
        .iter()
        .map(|&n| (n, vec![format!("home{n}@example.net")]))
        .collect();
    let users = run.fake.users();
    assert_eq!(users.len(), 1050, "no account made twice");
    assert_eq!(seen(&users), expected(&people, true, &others));
    later_changes(&mut run, &mut people, true, &others);
}

/// `delete_after` against the real server: leavers blocked, then deleted
/// (`DELETE /Users/{id}`) by the first file once blocked for the delay; a
/// leaver who comes back then is created anew.
#[test]
fn a_real_server_deletes_leavers_after_the_delay() {
    let Some(command) = server_or_skip("a_real_server_deletes_leavers_after_the_delay") else {
        return;
    };
    let setup = Setup {
        patch: true,
        filter: true,
        schemas: None,
    };
    let server = RealServer::start(&command, setup);
    let mut run = harness(server);
    run.rewrite_config(|config| {
        config.replace("name = \"idp\"", "name = \"idp\"\ndelete_after = \"30d\"")
    });
    let mut people: Vec<Person> = (1..=10).map(|n| Person::new(n, 4)).collect();
    sync(&mut run, &people);
    assert_eq!(run.fake.users().len(), 10);
    for person in &mut people[7..] {
        person.blocked = true;
    }
    sync(&mut run, &people);
    let users = run.fake.users();
    assert_eq!(users.len(), 10, "blocked, not deleted");
    assert_eq!(users["user9"]["active"], false);

    let day = chrono::Local::now().date_naive() + chrono::Days::new(30);
    run.set_secret("ROSTERSYNC_TEST_TODAY", &day.format("%Y-%m-%d").to_string());
    let staying: Vec<Person> = people[..9].to_vec();
    sync(&mut run, &staying);
    let users = run.fake.users();
    let mut names: Vec<&String> = users.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "user1", "user2", "user3", "user4", "user5", "user6", "user7"
        ],
        "the three leavers deleted"
    );
    // User 8 comes back: a new account.
    let mut back = staying;
    back[7].blocked = false;
    sync(&mut run, &back);
    let users = run.fake.users();
    assert_eq!(users.len(), 8);
    assert_eq!(users["user8"]["active"], true);
}
