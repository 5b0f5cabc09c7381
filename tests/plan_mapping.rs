//! `[target.scope]` and templates through plan, commit and acknowledgement,
//! against a real sled store, with the exact plans expected: "lms" keeps
//! only staff mail addresses (scope), "erp" everyone.

mod support;

use rostersync::config::{OutOfScope, ScopeConfig};
use rostersync::ingest::Mode;
use rostersync::ingest::record::RecordKind;
use rostersync::mapping::Scope;
use support::{World, counts, lines, source};

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
const BEN: &str = "E2;Blanc;Ben;ben;ben@x.fr;HQ;;0;;";
/// A contractor: out of lms's scope.
const CLE: &str = "E3;Colin;Cléo;cleo;cleo@ext.fr;HQ;;0;;";

/// "lms" holds the people whose address is not a contractor's.
fn world(out_of_scope: &str) -> World {
    let mut world = World::new();
    let config: ScopeConfig = toml::from_str(&format!(
        "exclude = ['email is endingwith(\"@ext.fr\")']\nout_of_scope = \"{out_of_scope}\"\n"
    ))
    .unwrap();
    let (scope, problems) = Scope::compile(&config);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        scope.out_of_scope,
        if out_of_scope == "block" {
            OutOfScope::Block
        } else {
            OutOfScope::Ignore
        }
    );
    let lms = world.targets.iter_mut().find(|t| t.name == "lms").unwrap();
    lms.scope = Some(scope);
    world
}

fn lms_lines(plan: &rostersync::plan::Plan) -> Vec<String> {
    lines(plan)
        .into_iter()
        .filter(|line| line.starts_with("lms "))
        .map(|line| line.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn out_of_scope_is_never_created_even_with_create_disabled_and_leaving_it_blocks() {
    let mut world = world("block");
    let mut hr = source("hr", RecordKind::Users, Mode::Full);
    hr.create_disabled = true;
    let plan = world.sync(&hr, &users(&[ANA, BEN, CLE]));
    assert_eq!(lms_lines(&plan), ["lms create E1", "lms create E2"]);
    assert_eq!(plan.targets["lms"].not_created, 1);
    assert_eq!(counts(&plan)["erp"], (3, 0, 0, 0));

    // Ben becomes a contractor: blocked at lms only, as a leaver (the block
    // carries his new address, as a disabled record's block does).
    world.relax_safety();
    let ben_contractor = BEN.replace("ben@x.fr", "ben@ext.fr");
    let plan = world.sync(&hr, &users(&[ANA, &ben_contractor, CLE]));
    assert_eq!(
        lines(&plan).iter().filter(|l| l.starts_with("lms")).count(),
        1
    );
    assert_eq!(lms_lines(&plan), ["lms block E2"]);
    assert_eq!(counts(&plan)["lms"], (0, 0, 1, 0));
    assert_eq!(counts(&plan)["erp"], (0, 0, 0, 0), "erp maps no e-mail");

    // The same file again: nothing (he stays blocked, not blocked again).
    let plan = world.sync(&hr, &users(&[ANA, &ben_contractor, CLE]));
    assert_eq!(counts(&plan)["lms"], (0, 0, 0, 0));
    assert_eq!(plan.targets["lms"].unchanged, 2);

    // Back on staff: unblocked.
    let plan = world.sync(&hr, &users(&[ANA, BEN, CLE]));
    assert_eq!(lms_lines(&plan), ["lms unblock E2"]);
}

#[test]
fn leaving_scope_counts_for_the_mass_block_rule() {
    let mut world = world("block");
    let hr = source("hr", RecordKind::Users, Mode::Full);
    world.sync(&hr, &users(&[ANA, BEN]));
    // Both leave lms's scope at once: 100% of its active records blocked.
    let planned = world.plan(
        &hr,
        &users(&[
            &ANA.replace("x.fr", "ext.fr"),
            &BEN.replace("x.fr", "ext.fr"),
        ]),
    );
    assert_eq!(counts(&planned.plan)["lms"], (0, 0, 2, 0));
    let held = planned.plan.held.as_ref().expect("held");
    assert_eq!(held.rule, "max_block_percent", "{held:?}");
}

#[test]
fn ignore_leaves_the_target_alone() {
    let mut world = world("ignore");
    let hr = source("hr", RecordKind::Users, Mode::Full);
    let plan = world.sync(&hr, &users(&[ANA, BEN, CLE]));
    assert_eq!(lms_lines(&plan), ["lms create E1", "lms create E2"]);
    // Ben becomes a contractor and changes name: lms hears nothing of it.
    let plan = world.sync(
        &hr,
        &users(&[ANA, "E2;Brun;Ben;ben;ben@ext.fr;HQ;;0;;", CLE]),
    );
    assert!(lms_lines(&plan).is_empty(), "{:?}", lines(&plan));
    assert_eq!(counts(&plan)["lms"], (0, 0, 0, 0));
    assert_eq!(counts(&plan)["erp"], (0, 0, 0, 0));
}

#[test]
fn a_create_still_waiting_is_taken_back_when_its_record_leaves_scope() {
    let mut world = world("block");
    let mut hr = source("hr", RecordKind::Users, Mode::Full);
    hr.create_disabled = true;
    world.sync(&hr, &users(&[ANA, BEN]));
    // Dan is new; his create waits (the target has not confirmed it)...
    let dan = "E4;Dias;Dan;dan;dan@x.fr;HQ;;0;;";
    let planned = world.plan(&hr, &users(&[ANA, BEN, dan]));
    assert_eq!(lms_lines(&planned.plan), ["lms create E4"]);
    world.commit(&planned);
    // ...when he turns out to be a contractor: not created, even with
    // create_disabled, and nothing waits for him any more.
    let planned = world.plan(&hr, &users(&[ANA, BEN, &dan.replace("x.fr", "ext.fr")]));
    assert!(
        lms_lines(&planned.plan).is_empty(),
        "{:?}",
        lines(&planned.plan)
    );
    world.commit(&planned);
    let key = rostersync::model::RecordKey {
        target: "lms".into(),
        kind: RecordKind::Users,
        key: "E4".into(),
    };
    let stored = world.store.reader().stored(&key).unwrap().unwrap();
    assert_eq!(stored.queued, None);
}

/// The keys parked at lms.
fn parked(world: &World) -> Vec<String> {
    world
        .store
        .parked("lms", RecordKind::Users)
        .map(|item| item.unwrap().0)
        .collect()
}

#[test]
fn a_template_failing_on_a_record_parks_it_until_a_file_maps_it_or_drops_it() {
    let mut world = World::new();
    let overrides = std::collections::BTreeMap::from([(
        "email".to_string(),
        "{{ first_name | lower }}.{{ last_name | lower }}@corp.example".to_string(),
    )]);
    let lms = world.targets.iter_mut().find(|t| t.name == "lms").unwrap();
    lms.projector = rostersync::projection::Projector::new(
        rostersync::config::TargetKind::Collaborator.default_fields(),
        &overrides,
    );
    let hr = source("hr", RecordKind::Users, Mode::Full);
    let ben_unnamed = "E2;;Ben;ben;ben@x.fr;HQ;;0;;";
    let plan = world.sync(&hr, &users(&[ANA, ben_unnamed]));
    assert_eq!(lms_lines(&plan), ["lms create E1", "lms create E2"]);
    let lms = &plan.targets["lms"];
    assert_eq!((lms.create, lms.parked, lms.not_created), (1, 1, 0));
    let ben = lms.actions.iter().find(|a| a.ext_id == "E2").unwrap();
    assert_eq!(
        ben.reason.as_deref(),
        Some(
            r#"mapping: target "lms", [target.fields] email, record "E2": no value for last_name (`| default("...")` gives one)"#
        )
    );
    assert_eq!(counts(&plan)["erp"], (2, 0, 0, 0), "erp has no template");
    assert_eq!(parked(&world), ["E2"]);

    // Named: created with his address, and released by the commit itself.
    let planned = world.plan(&hr, &users(&[ANA, BEN]));
    world.commit(&planned);
    assert!(parked(&world).is_empty());
    world.ack_all();
    let plan = planned.plan;
    assert_eq!(
        lines(&plan)
            .into_iter()
            .filter(|l| l.starts_with("lms"))
            .collect::<Vec<_>>(),
        [
            "lms create E2 email:∅→ben.blanc@corp.example firstname:∅→Ben login:∅→ben secondname:∅→Blanc structure_uid:∅→HQ uid:∅→E2"
        ]
    );

    // Unnamed again, and moved to R1: parked, and no update goes out for him.
    let plan = world.sync(&hr, &users(&[ANA, "E2;;Ben;ben;ben@x.fr;R1;;0;;"]));
    assert_eq!(counts(&plan)["lms"], (0, 0, 0, 0));
    assert_eq!(plan.targets["lms"].parked, 1);
    assert_eq!(parked(&world), ["E2"]);

    // Named again: his update carries the move lms never had, though the
    // file before held it already.
    let plan = world.sync(&hr, &users(&[ANA, "E2;Blanc;Ben;ben;ben@x.fr;R1;;0;;"]));
    assert_eq!(
        lines(&plan)
            .into_iter()
            .filter(|l| l.starts_with("lms"))
            .collect::<Vec<_>>(),
        ["lms update E2 structure_uid:HQ→R1"]
    );

    // Unnamed once more: parked.
    let plan = world.sync(&hr, &users(&[ANA, ben_unnamed]));
    assert_eq!(plan.targets["lms"].parked, 1);

    // He leaves: his block is not held back by the template (checked
    // before the acknowledgement, which would release him anyway).
    world.relax_safety();
    let planned = world.plan(&hr, &users(&[ANA]));
    assert_eq!(lms_lines(&planned.plan), ["lms block E2"]);
    world.commit(&planned);
    assert!(parked(&world).is_empty());
}
