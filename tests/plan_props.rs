//! Property tests of planning against a real store: acknowledged plans
//! converge, and a plan never depends on the order of the file's rows.

mod support;

use proptest::prelude::*;
use rostersync::ingest::Mode;
use rostersync::ingest::record::RecordKind;
use support::{World, lines, source};

const HEADER: &str = "user_extid;user_lname;user_fname;user_login;user_email;user_manager_extid;user_disable;user_activation_date;user_expiration_date\n";

/// A user row from small pools, so that files overlap and change in every way.
fn row() -> impl Strategy<Value = (u8, String)> {
    (
        0u8..12,
        prop::sample::select(vec!["Alves", "Blanc", "Colin"]),
        prop::sample::select(vec!["a@x.fr", "b@x.fr", ""]),
        prop::option::of(0u8..12),
        any::<bool>(),
        prop::sample::select(vec!["", "2026/01/01", "2026/12/24"]),
        prop::sample::select(vec!["", "2026/11/20", "2027/06/30"]),
    )
        .prop_map(|(id, name, email, manager, disabled, activation, expiration)| {
            let manager = manager.map(|m| format!("E{m}")).unwrap_or_default();
            (
                id,
                format!(
                    "E{id};{name};Pré{id};login{id};{email};{manager};{};{activation};{expiration}",
                    u8::from(disabled)
                ),
            )
        })
}

/// A file: rows with distinct ids (a file with duplicates is refused earlier).
fn file() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(row(), 1..12).prop_map(|rows| {
        let mut seen = std::collections::HashSet::new();
        rows.into_iter()
            .filter(|(id, _)| seen.insert(*id))
            .map(|(_, row)| row)
            .collect()
    })
}

fn text(rows: &[String]) -> String {
    let mut text = HEADER.to_string();
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn acknowledged_plans_leave_nothing_to_do(
        files in prop::collection::vec(file(), 1..4),
        delta in any::<bool>(),
    ) {
        let mut world = World::new();
        world.relax_safety();
        let mode = if delta { Mode::Delta } else { Mode::Full };
        let hr = source("hr", RecordKind::Users, mode);
        for rows in &files {
            world.sync(&hr, &text(rows));
            let again = world.sync(&hr, &text(rows));
            prop_assert!(lines(&again).is_empty(), "{:?}", lines(&again));
        }
    }

    #[test]
    fn row_order_never_changes_the_plan(
        before in file(),
        rows in file(),
        seed in any::<u64>(),
    ) {
        let mut world = World::new();
        world.relax_safety();
        let hr = source("hr", RecordKind::Users, Mode::Full);
        world.sync(&hr, &text(&before));
        let mut shuffled = rows.clone();
        // A deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let one = world.plan(&hr, &text(&rows)).plan;
        let other = world.plan(&hr, &text(&shuffled)).plan;
        prop_assert_eq!(lines(&one), lines(&other));
        prop_assert_eq!(&one.held, &other.held);
    }
}
