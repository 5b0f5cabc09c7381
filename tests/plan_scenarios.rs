//! Scenarios: sequences of files through plan, commit and acknowledgement,
//! against a real sled store, with the exact plans expected.

mod support;

use rostersync::ingest::Mode;
use rostersync::ingest::record::RecordKind;
use rostersync::plan::SourceRules;
use support::{World, counts, day, lines, source};

const HEADER: &str = "user_extid;user_lname;user_fname;user_login;user_email;org_extid;user_manager_extid;user_disable;user_activation_date;user_expiration_date\n";

fn users(rows: &[&str]) -> String {
    let mut text = HEADER.to_string();
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text
}

const ANA: &str = "E1;Alves;Ana;ana;ana@x.fr;HQ;;0;;";
const BEN: &str = "E2;Blanc;Ben;ben;ben@x.fr;HQ;E1;0;;";
const CLE: &str = "E3;Colin;Cléo;cleo;cleo@x.fr;HQ;E1;0;;";

#[test]
fn first_import_creates_everything_then_the_same_file_does_nothing() {
    let mut world = World::new();
    let hr = source("hr", RecordKind::Users, Mode::Full);
    let file = users(&[BEN, ANA, CLE]);
    let plan = world.sync(&hr, &file);
    assert_eq!(
        lines(&plan),
        [
            // The manager (E1) before the people reporting to them.
            "erp create E1 USR_NAME:∅→ana",
            "erp create E2 USR_NAME:∅→ben",
            "erp create E3 USR_NAME:∅→cleo",
            "lms create E1 email:∅→ana@x.fr firstname:∅→Ana login:∅→ana secondname:∅→Alves structure_uid:∅→HQ uid:∅→E1",
            "lms create E2 email:∅→ben@x.fr firstname:∅→Ben login:∅→ben manager_uid:∅→E1 secondname:∅→Blanc structure_uid:∅→HQ uid:∅→E2",
            "lms create E3 email:∅→cleo@x.fr firstname:∅→Cléo login:∅→cleo manager_uid:∅→E1 secondname:∅→Colin structure_uid:∅→HQ uid:∅→E3",
        ]
    );
    assert!(plan.held.is_none());
    let again = world.sync(&hr, &file);
    assert!(lines(&again).is_empty(), "{:?}", lines(&again));
    assert_eq!(counts(&again)["lms"], (0, 0, 0, 0));
}

#[test]
fn an_email_change_updates_only_targets_that_map_email() {
    let mut world = World::new();
    let hr = source("hr", RecordKind::Users, Mode::Full);
    world.sync(&hr, &users(&[ANA, BEN, CLE]));
    let plan = world.sync(
        &hr,
        &users(&[ANA, &BEN.replace("ben@x.fr", "benoit@x.fr"), CLE]),
    );
    assert_eq!(lines(&plan), ["lms update E2 email:ben@x.fr→benoit@x.fr"]);
    assert_eq!(counts(&plan)["erp"], (0, 0, 0, 0));
}

#[test]
fn a_leaver_is_blocked_by_a_full_source_and_left_alone_by_a_delta_one() {
    let mut world = World::new();
    let hr = source("hr", RecordKind::Users, Mode::Full);
    world.sync(&hr, &users(&[ANA, BEN, CLE]));
    world.relax_safety();
    let plan = world.sync(&hr, &users(&[ANA, BEN]));
    assert_eq!(lines(&plan), ["erp block E3", "lms block E3"]);

    let mut world = World::new();
    let delta = source("changes", RecordKind::Users, Mode::Delta);
    world.sync(&delta, &users(&[ANA, BEN, CLE]));
    let plan = world.sync(&delta, &users(&[ANA]));
    assert!(lines(&plan).is_empty(), "{:?}", lines(&plan));
}

#[test]
fn a_rehire_is_unblocked_with_its_updates() {
    let mut world = World::new();
    world.relax_safety();
    let hr = source("hr", RecordKind::Users, Mode::Full);
    world.sync(&hr, &users(&[ANA, BEN, CLE]));
    world.sync(&hr, &users(&[ANA, BEN]));
    let back = CLE.replace("cleo@x.fr", "cleo.colin@x.fr");
    let plan = world.sync(&hr, &users(&[ANA, BEN, &back]));
    assert_eq!(
        lines(&plan),
        [
            "erp unblock E3",
            "lms unblock E3 email:cleo@x.fr→cleo.colin@x.fr"
        ]
    );
}

#[test]
fn the_disabled_flag_blocks_and_unblocks() {
    let mut world = World::new();
    world.relax_safety();
    let hr = source("hr", RecordKind::Users, Mode::Full);
    world.sync(&hr, &users(&[ANA, BEN, CLE]));
    let disabled = BEN.replace(";E1;0;;", ";E1;1;;");
    let plan = world.sync(&hr, &users(&[ANA, &disabled, CLE]));
    assert_eq!(lines(&plan), ["erp block E2", "lms block E2"]);
    let plan = world.sync(&hr, &users(&[ANA, BEN, CLE]));
    assert_eq!(lines(&plan), ["erp unblock E2", "lms unblock E2"]);
}

#[test]
fn a_new_record_already_disabled_is_created_only_when_asked() {
    let mut world = World::new();
    let disabled = BEN.replace(";E1;0;;", ";E1;1;;");
    let hr = source("hr", RecordKind::Users, Mode::Full);
    let plan = world.sync(&hr, &users(&[ANA, &disabled]));
    assert_eq!(counts(&plan)["lms"], (1, 0, 0, 0));

    let mut world = World::new();
    let mut hr = source("hr", RecordKind::Users, Mode::Full);
    hr.create_disabled = true;
    let plan = world.sync(&hr, &users(&[ANA, &disabled]));
    assert_eq!(counts(&plan)["lms"], (2, 0, 0, 0));
    // Created disabled: no block follows.
    let plan = world.sync(&hr, &users(&[ANA, &disabled]));
    assert!(lines(&plan).is_empty(), "{:?}", lines(&plan));
}

#[test]
fn a_future_activation_date_waits_and_a_passed_expiration_blocks() {
    let mut world = World::new();
    world.relax_safety();
    let hr = source("hr", RecordKind::Users, Mode::Full);
    // Starts on 2026-12-01: not created yet.
    let starter = "E4;Dias;Dina;dina;dina@x.fr;HQ;E1;0;2026/12/01;";
    let plan = world.sync(&hr, &users(&[ANA, BEN, starter]));
    assert_eq!(counts(&plan)["lms"], (2, 0, 0, 0));
    assert!(!lines(&plan).iter().any(|l| l.contains("E4")));

    // Ben's contract ended yesterday.
    let ended = BEN.replace(";E1;0;;", ";E1;0;;2026/11/20");
    let plan = world.sync(&hr, &users(&[ANA, &ended, starter]));
    assert_eq!(lines(&plan), ["erp block E2", "lms block E2"]);

    // On the first of December the same file creates Dina.
    world.today = day(2026, 12, 1);
    let plan = world.sync(&hr, &users(&[ANA, &ended, starter]));
    assert_eq!(counts(&plan)["lms"], (1, 0, 0, 0));
    assert_eq!(counts(&plan)["erp"], (1, 0, 0, 0));
}

#[test]
fn an_organisation_moved_to_another_parent_is_updated_where_organisations_are_kept() {
    let mut world = World::new();
    let orgs = source("orgs", RecordKind::Orgs, Mode::Full);
    let file = |it_parent: &str| {
        format!(
            "org_label;org_extid;org_parentextid\nIT;IT;{it_parent}\nSiège;HQ;\nOps;OPS;HQ\nDev;DEV;IT\n"
        )
    };
    let plan = world.sync(&orgs, &file("HQ"));
    // Parents before children, whatever the file's order; erp keeps no organisations.
    assert_eq!(
        lines(&plan),
        [
            "lms create HQ title:∅→Siège uid:∅→HQ",
            "lms create IT parent_uid:∅→HQ title:∅→IT uid:∅→IT",
            "lms create OPS parent_uid:∅→HQ title:∅→Ops uid:∅→OPS",
            "lms create DEV parent_uid:∅→IT title:∅→Dev uid:∅→DEV",
        ]
    );
    let plan = world.sync(&orgs, &file("OPS"));
    assert_eq!(lines(&plan), ["lms update IT parent_uid:HQ→OPS"]);
}

#[test]
fn managers_who_manage_each_other_are_linked_in_a_second_pass() {
    let mut world = World::new();
    let hr = source("hr", RecordKind::Users, Mode::Full);
    let x = "X;Xu;Xi;xi;xi@x.fr;HQ;Y;0;;";
    let y = "Y;Yo;Yan;yan;yan@x.fr;HQ;X;0;;";
    let plan = world.sync(&hr, &users(&[x, y]));
    let lms: Vec<String> = lines(&plan)
        .into_iter()
        .filter(|l| l.starts_with("lms"))
        .collect();
    assert_eq!(lms.len(), 2);
    assert!(
        lms[0].starts_with("lms create X ") && lms[0].ends_with("(deferred: manager_ext_id)"),
        "{lms:?}"
    );
    assert!(lms[1].starts_with("lms create Y "), "{lms:?}");
}

#[test]
fn a_file_with_a_tenth_of_the_rows_is_held_and_changes_nothing() {
    let mut world = World::new();
    let hr = source("hr", RecordKind::Users, Mode::Full);
    let rows: Vec<String> = (0..50)
        .map(|i| format!("U{i:02};Nom{i};Pré{i};login{i};u{i}@x.fr;HQ;;0;;"))
        .collect();
    let all: Vec<&str> = rows.iter().map(String::as_str).collect();
    world.sync(&hr, &users(&all));
    let planned = world.plan(&hr, &users(&all[..5]));
    let held = planned.plan.held.clone().unwrap();
    assert_eq!(
        (held.rule.as_str(), held.value, held.limit),
        ("max_shrink_percent", 90.0, 30.0)
    );
    assert_eq!(counts(&planned.plan)["lms"], (0, 0, 45, 0));
    // Held: nothing was written, so the full file again is a no-op.
    let plan = world.sync(&hr, &users(&all));
    assert!(lines(&plan).is_empty());
}

#[test]
fn mass_blocks_are_held_by_the_block_rules() {
    let mut world = World::new();
    world.safety.max_shrink_percent = toml::Spanned::new(0..0, 100.0);
    let hr = source("hr", RecordKind::Users, Mode::Full);
    let rows: Vec<String> = (0..20)
        .map(|i| format!("U{i:02};Nom{i};Pré{i};login{i};u{i}@x.fr;HQ;;0;;"))
        .collect();
    let all: Vec<&str> = rows.iter().map(String::as_str).collect();
    world.sync(&hr, &users(&all));
    let planned = world.plan(&hr, &users(&all[..17]));
    let held = planned.plan.held.unwrap();
    assert_eq!(
        (held.rule.as_str(), held.value, held.limit),
        ("max_block_percent", 15.0, 10.0)
    );
    assert_eq!(held.target.as_deref(), Some("lms"));
}

#[test]
fn the_daily_replan_creates_starters_and_blocks_leavers_without_a_new_file() {
    let mut world = World::new();
    world.relax_safety();
    let hr = source("hr", RecordKind::Users, Mode::Full);
    let starter = "E4;Dias;Dina;dina;dina@x.fr;HQ;E1;0;2026/12/01;";
    let leaving = BEN.replace(";E1;0;;", ";E1;0;;2026/11/30");
    world.sync(&hr, &users(&[ANA, &leaving, starter]));

    let since = day(2026, 11, 21);
    let lms = |key: &str| {
        rostersync::plan::date_changes(
            &world.store,
            "lms",
            RecordKind::Users,
            since,
            day(2026, 12, 1),
        )
        .unwrap()
        .contains(&key.to_string())
    };
    assert!(lms("E2") && lms("E4") && !lms("E1"));

    let mut options = world.options();
    options.today = day(2026, 12, 1);
    let dated = rostersync::plan::plan_dates(
        &world.store,
        &world.targets,
        |_| SourceRules::default(),
        since,
        options,
    )
    .unwrap();
    let (actions, commit) = (dated.actions, dated.commit);
    let summary: Vec<String> = actions
        .iter()
        .map(|(target, a)| format!("{target} {} {}", a.action, a.ext_id))
        .collect();
    assert_eq!(
        summary,
        [
            "lms block E2",
            "lms create E4",
            "erp block E2",
            "erp create E4"
        ]
    );
    world.store.commit(&commit, &[]).unwrap();
    world.ack_all();
    // Nothing changes between the 2nd and the 31st of December.
    let actions = rostersync::plan::plan_dates(
        &world.store,
        &world.targets,
        |_| SourceRules::default(),
        day(2026, 12, 1),
        rostersync::plan::PlanOptions {
            today: day(2026, 12, 31),
            ..options
        },
    )
    .unwrap()
    .actions;
    assert!(actions.is_empty());
}

/// `prehire = "14d"`: a starter further ahead waits; the day its window
/// opens the daily re-plan creates it blocked, and on its first day it is
/// unblocked; without prehire it is created on its day only.
#[test]
fn a_prehire_is_created_blocked_when_its_window_opens_and_unblocked_on_its_day() {
    let mut world = World::new();
    world.relax_safety();
    let mut hr = source("hr", RecordKind::Users, Mode::Full);
    hr.prehire_days = 14;
    let rules = SourceRules {
        create_disabled: false,
        prehire_days: 14,
    };
    // Starts on 2026-12-10: 19 days ahead on the 21st of November.
    let starter = "E4;Dias;Dina;dina;dina@x.fr;HQ;;0;2026/12/10;";
    let plan = world.sync(&hr, &users(&[ANA, starter]));
    assert_eq!(counts(&plan)["lms"], (1, 0, 0, 0));
    assert_eq!(plan.targets["lms"].not_created, 1, "it waits");

    let replan = |world: &World, since, today| {
        let options = rostersync::plan::PlanOptions {
            today,
            ..world.options()
        };
        let dated =
            rostersync::plan::plan_dates(&world.store, &world.targets, |_| rules, since, options)
                .unwrap();
        world.store.commit(&dated.commit, &[]).unwrap();
        world.ack_all();
        let mut summary: Vec<String> = dated
            .actions
            .iter()
            .map(|(target, a)| format!("{target} {} {}", a.action, a.ext_id))
            .collect();
        summary.sort();
        summary
    };
    assert!(
        replan(&world, day(2026, 11, 21), day(2026, 11, 25)).is_empty(),
        "15 days ahead: still waiting"
    );
    assert_eq!(
        replan(&world, day(2026, 11, 25), day(2026, 11, 26)),
        ["erp create E4", "lms create E4"],
        "14 days ahead: created"
    );
    let key = rostersync::store::RecordKey {
        target: "lms".into(),
        kind: RecordKind::Users,
        key: "E4".into(),
    };
    let acked = world.store.entry(&key).unwrap().unwrap().acked.unwrap();
    assert!(!acked.active, "created blocked");
    assert!(replan(&world, day(2026, 11, 26), day(2026, 12, 9)).is_empty());
    assert_eq!(
        replan(&world, day(2026, 12, 9), day(2026, 12, 10)),
        ["erp unblock E4", "lms unblock E4"],
        "its first day"
    );
    assert!(
        world
            .store
            .entry(&key)
            .unwrap()
            .unwrap()
            .acked
            .unwrap()
            .active
    );
}

#[test]
fn swapped_name_columns_are_held_by_max_change_percent_and_a_tenth_rewritten_passes() {
    let mut world = World::new();
    let hr = source("hr", RecordKind::Users, Mode::Full);
    let row = |i: usize, last: &str, first: &str, domain: &str| {
        format!("U{i:02};{last};{first};login{i};u{i}@{domain};HQ;;0;;")
    };
    let rows: Vec<String> = (0..20)
        .map(|i| row(i, &format!("Nom{i}"), &format!("Pré{i}"), "x.fr"))
        .collect();
    let all: Vec<&str> = rows.iter().map(String::as_str).collect();
    world.sync(&hr, &users(&all));

    // The export put user_fname's values under user_lname and back.
    let swapped: Vec<String> = (0..20)
        .map(|i| row(i, &format!("Pré{i}"), &format!("Nom{i}"), "x.fr"))
        .collect();
    let swapped: Vec<&str> = swapped.iter().map(String::as_str).collect();
    let planned = world.plan(&hr, &users(&swapped));
    let held = planned.plan.held.clone().unwrap();
    assert_eq!(
        (
            held.rule.as_str(),
            held.field.as_deref(),
            held.value,
            held.limit
        ),
        ("max_change_percent", Some("first_name"), 100.0, 50.0)
    );
    assert_eq!(
        held.to_string(),
        "the file changes first_name for 100.0% of the source's records, max_change_percent is 50; \
         e.g. U00: \"Pré0\" → \"Nom0\"; U01: \"Pré1\" → \"Nom1\"; U02: \"Pré2\" → \"Nom2\""
    );
    let also: Vec<(&str, Option<&str>, f64)> = planned
        .plan
        .held_also
        .iter()
        .map(|h| (h.rule.as_str(), h.field.as_deref(), h.value))
        .collect();
    assert_eq!(also, [("max_change_percent", Some("last_name"), 100.0)]);
    assert_eq!(counts(&planned.plan)["lms"], (0, 20, 0, 0));
    // Held: nothing was written, so the first file again is a no-op.
    assert!(lines(&world.sync(&hr, &users(&all))).is_empty());

    // Two people of twenty (10 %) moved to another e-mail domain: not held.
    let moved: Vec<String> = (0..20)
        .map(|i| {
            let domain = if i < 2 { "y.fr" } else { "x.fr" };
            row(i, &format!("Nom{i}"), &format!("Pré{i}"), domain)
        })
        .collect();
    let moved: Vec<&str> = moved.iter().map(String::as_str).collect();
    let plan = world.sync(&hr, &users(&moved));
    assert_eq!(
        lines(&plan),
        [
            "lms update U00 email:u0@x.fr→u0@y.fr",
            "lms update U01 email:u1@x.fr→u1@y.fr"
        ]
    );
}
