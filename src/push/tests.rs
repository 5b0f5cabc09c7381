//! The push engine in-process: a real store in a temp dir, records
//! committed to a target's outbox, then `drain` against the scripted kind,
//! under paused time (sleeps end at once, and timings are exact).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::{self, CheckLevel};
use crate::connectors::scripted::{Answer, Request, Script};

/// A scripted target `name`, with `settings` (TOML lines) and a retry budget
/// of `initial = 1s, max_interval = 10s, max_elapsed = 60s` unless given.
fn target(name: &str, settings: &str) -> TargetConfig {
    let retry = if settings.contains("retry") {
        ""
    } else {
        "retry = { initial = \"1s\", max_interval = \"10s\", max_elapsed = \"60s\" }\n"
    };
    let text = format!(
        "[[source]]\nname = \"hr\"\nkind = \"users\"\ninbox = \"in\"\ntargets = [\"{name}\"]\n\
         [[target]]\nname = \"{name}\"\nkind = \"scripted\"\n{retry}{settings}\n"
    );
    let mut config = config::parse(&text, Path::new("."), CheckLevel::SourcesOnly)
        .unwrap_or_else(|problems| panic!("{problems:?}"));
    config.targets.remove(0)
}

/// A store in a temp dir with users `E1`..`En` waiting to be created at `target`.
fn store_with_users(target_name: &str, n: usize) -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rows: Vec<(String, String, String)> = (1..=n)
        .map(|i| (format!("E{i}"), format!("user{i}"), format!("user{i}@x.fr")))
        .collect();
    let rows: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    let info = crate::plan::TargetInfo::from_config(&target(target_name, ""));
    crate::testing::commit(&store, &[info], &crate::testing::users(&rows), "u.csv");
    (dir, Arc::new(store))
}

fn now() -> i64 {
    1_790_000_000
}

fn key(target: &str, key: &str) -> RecordKey {
    RecordKey {
        target: target.into(),
        kind: RecordKind::Users,
        key: key.into(),
    }
}

fn acked() -> Answer {
    Answer::All(Outcome::Acked { target_id: None })
}

fn transient(retry_after: Option<Duration>) -> Answer {
    Answer::All(Outcome::Failed(Failure::Transient {
        reason: "HTTP 503".into(),
        retry_after,
    }))
}

/// Answers from a list, one per request, the last one from then on.
fn in_turn(answers: Vec<Answer>) -> impl Fn(&[&PushItem]) -> Answer + Send + Sync {
    let next = std::sync::atomic::AtomicUsize::new(0);
    move |_| {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        answers[i.min(answers.len() - 1)].clone()
    }
}

/// The gaps between successive requests.
fn gaps(requests: &[Request]) -> Vec<Duration> {
    requests.windows(2).map(|w| w[1].at - w[0].at).collect()
}

async fn drain_target(store: &Arc<Store>, target: &TargetConfig) -> Drained {
    let pusher = PushTarget::from_config(target).unwrap();
    drain(store, &pusher, now, &DrainControl::unattended())
        .await
        .unwrap()
}

/// The records the target confirmed, as the store has them, checked
/// against the drain's count.
fn done(store: &Store, target: &str, drained: &Drained) -> Vec<String> {
    let mut keys: Vec<String> = store
        .stored_entries(target, RecordKind::Users)
        .map(Result::unwrap)
        .filter(|(_, stored)| stored.queued.is_none() && stored.entry.acked.is_some())
        .map(|(key, _)| key)
        .collect();
    keys.sort();
    assert_eq!(drained.done, keys.len() as u64, "{drained:?}");
    keys
}

#[tokio::test(start_paused = true)]
async fn transient_failures_back_off_exponentially_with_jitter() {
    let name = "backoff";
    let script = Script::new(in_turn(vec![
        transient(None),
        transient(None),
        transient(None),
        transient(None),
        acked(),
    ]))
    .set_for(name);
    let (_dir, store) = store_with_users(name, 1);
    let drained = drain_target(&store, &target(name, "")).await;
    assert_eq!(done(&store, name, &drained), ["E1"]);
    assert!(
        store
            .entry(&key(name, "E1"))
            .unwrap()
            .unwrap()
            .acked
            .is_some()
    );
    // initial 1s, times 1.5 each time, each delay within ±50 % of it.
    let gaps = gaps(&script.requests());
    assert_eq!(gaps.len(), 4, "{gaps:?}");
    let mut interval = 1.0_f64;
    let mut jittered = false;
    for gap in &gaps {
        let gap = gap.as_secs_f64();
        assert!(
            gap >= interval * 0.5 - 1e-3 && gap <= interval * 1.5 + 1e-3,
            "{gap} for {interval}: {gaps:?}"
        );
        jittered |= (gap - interval).abs() > 1e-6;
        interval = (interval * 1.5).min(10.0);
    }
    assert!(jittered, "no jitter: {gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn a_record_still_failing_when_max_elapsed_ran_out_is_parked_as_transient() {
    let name = "budget";
    let script = Script::new(|_| transient(None)).set_for(name);
    let (_dir, store) = store_with_users(name, 1);
    let started = tokio::time::Instant::now();
    let drained = drain_target(
        &store,
        &target(
            name,
            "retry = { initial = \"1s\", max_interval = \"4s\", max_elapsed = \"30s\" }",
        ),
    )
    .await;
    // Delays stay under max_interval (with its jitter) and stop by max_elapsed.
    assert!(
        gaps(&script.requests())
            .iter()
            .all(|gap| *gap <= Duration::from_secs(6))
    );
    assert!(
        started.elapsed() <= Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let parked = store.parked_item(&key(name, "E1")).unwrap().unwrap();
    assert!(parked.transient);
    assert_eq!(
        parked.reason,
        "still failing when the retry budget ran out: HTTP 503"
    );
    assert_eq!((drained.done, drained.parked), (0, 1));
    assert_eq!(
        drained.last_parked.as_deref(),
        Some("users E1: still failing when the retry budget ran out: HTTP 503")
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_up_to_max_interval() {
    let name = "retry-after";
    let script = Script::new(in_turn(vec![
        transient(Some(Duration::from_secs(5))),
        transient(Some(Duration::from_secs(3600))),
        acked(),
    ]))
    .set_for(name);
    let (_dir, store) = store_with_users(name, 1);
    let drained = drain_target(&store, &target(name, "")).await;
    assert_eq!(done(&store, name, &drained), ["E1"]);
    // 5 s asked and longer than the backoff: 5 s. An hour asked: max_interval, 10 s.
    assert_eq!(
        gaps(&script.requests()),
        [Duration::from_secs(5), Duration::from_secs(10)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_holds_back_every_record_not_only_the_one_it_answered() {
    let name = "retry-after-all";
    let script = Script::new(in_turn(vec![
        transient(Some(Duration::from_secs(5))),
        acked(),
    ]))
    .set_for(name);
    let (_dir, store) = store_with_users(name, 3);
    let drained = drain_target(&store, &target(name, "batch_size = 1\nconcurrency = 1")).await;
    assert_eq!(done(&store, name, &drained), ["E1", "E2", "E3"]);
    // The first request is asked to wait 5 s: nothing else goes before.
    let requests = script.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(
        gaps(&requests),
        [Duration::from_secs(5), Duration::ZERO, Duration::ZERO]
    );
}

#[tokio::test(start_paused = true)]
async fn no_more_requests_are_in_flight_than_concurrency() {
    let name = "concurrency";
    let script = Script::new(|_| acked())
        .with_latency(Duration::from_millis(100))
        .set_for(name);
    let (_dir, store) = store_with_users(name, 20);
    let started = tokio::time::Instant::now();
    let drained = drain_target(&store, &target(name, "batch_size = 1\nconcurrency = 3")).await;
    assert_eq!(done(&store, name, &drained).len(), 20);
    assert_eq!(script.requests().len(), 20);
    assert_eq!(script.most_in_flight(), 3);
    // Seven rounds of at most three requests, 100 ms each.
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(store.outbox_len(name), 0);
}

#[tokio::test(start_paused = true)]
async fn requests_are_evenly_spaced_under_rate_per_sec() {
    let name = "rate";
    let script = Script::new(|_| acked()).set_for(name);
    let (_dir, store) = store_with_users(name, 8);
    let drained = drain_target(
        &store,
        &target(name, "batch_size = 1\nconcurrency = 4\nrate_per_sec = 10.0"),
    )
    .await;
    assert_eq!(done(&store, name, &drained).len(), 8);
    // 10 per second, four senders: one every 100 ms, never two at once.
    let gaps = gaps(&script.requests());
    assert_eq!(gaps.len(), 7);
    assert!(
        gaps.iter().all(|gap| *gap == Duration::from_millis(100)),
        "{gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_batch_is_split_down_to_the_refused_record() {
    let name = "split";
    let script = Script::new(|records| {
        if !records.iter().any(|r| r.key.key == "E6") {
            acked()
        } else if records.len() == 1 {
            Answer::All(Outcome::Failed(Failure::Permanent {
                reason: "HTTP 400: bad e-mail".into(),
            }))
        } else {
            Answer::Split
        }
    })
    .set_for(name);
    let (_dir, store) = store_with_users(name, 8);
    let drained = drain_target(&store, &target(name, "batch_size = 8")).await;
    let sizes: Vec<usize> = script.requests().iter().map(|r| r.keys.len()).collect();
    assert_eq!(sizes, [8, 4, 4, 2, 1, 1, 2], "{:?}", script.requests());
    assert_eq!(
        done(&store, name, &drained),
        ["E1", "E2", "E3", "E4", "E5", "E7", "E8"]
    );
    let parked = store.parked_item(&key(name, "E6")).unwrap().unwrap();
    assert_eq!(parked.reason, "HTTP 400: bad e-mail");
    assert!(!parked.transient);
    for other in ["E1", "E5", "E7", "E8"] {
        assert!(
            store
                .entry(&key(name, other))
                .unwrap()
                .unwrap()
                .acked
                .is_some()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_short_reply_fails_the_records_it_left_out() {
    // The first reply speaks of one record of three: the two others are not
    // acknowledged, and not sent again at once either, but retried after a
    // backoff delay, alone.
    let name = "short";
    let script = Script::new(in_turn(vec![Answer::Short(1), acked()])).set_for(name);
    let (_dir, store) = store_with_users(name, 3);
    let drained = drain_target(&store, &target(name, "batch_size = 3")).await;
    let requests = script.requests();
    let keys: Vec<&[String]> = requests.iter().map(|r| &r.keys[..]).collect();
    assert_eq!(
        keys,
        [&["E1", "E2", "E3"][..], &["E2", "E3"][..]],
        "{requests:?}"
    );
    assert!(
        gaps(&requests)[0] >= Duration::from_millis(500),
        "sent again without a pause: {requests:?}"
    );
    assert_eq!(done(&store, name, &drained), ["E1", "E2", "E3"]);
}

#[tokio::test(start_paused = true)]
async fn a_target_that_always_answers_short_gets_the_left_out_records_parked() {
    let name = "always-short";
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let script = Script::new(move |records| {
        // Without the rule, the engine would send again forever: stop it.
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 100 {
            return Answer::Halt(acked_outcome(), "looping".into());
        }
        // Never a word about the last record.
        Answer::Short(records.len() - 1)
    })
    .set_for(name);
    let (_dir, store) = store_with_users(name, 2);
    let drained = drain_target(&store, &target(name, "batch_size = 2")).await;
    assert_eq!(drained.stopped, None);
    assert!(script.requests().len() < 100, "{}", script.requests().len());
    let parked = store.parked_item(&key(name, "E2")).unwrap().unwrap();
    assert!(parked.transient);
    assert!(
        parked
            .reason
            .contains("the target's reply said nothing of this record"),
        "{}",
        parked.reason
    );
    // E1 was in every reply: acknowledged the first time.
    assert!(
        store
            .entry(&key(name, "E1"))
            .unwrap()
            .unwrap()
            .acked
            .is_some()
    );
}

fn acked_outcome() -> Outcome {
    Outcome::Acked { target_id: None }
}

#[tokio::test(start_paused = true)]
async fn records_of_a_commit_cut_short_wait_until_it_is_whole() {
    let name = "cut-short";
    let script = Script::new(|_| acked()).set_for(name);
    let (_dir, store) = store_with_users(name, 3);
    store.mark_commit_pending("hr").unwrap();
    let drained = drain_target(&store, &target(name, "")).await;
    assert_eq!(script.requests().len(), 0, "{:?}", script.requests());
    assert_eq!(drained, Drained::default());
    assert_eq!(store.outbox_len(name), 3);
}

#[tokio::test(start_paused = true)]
async fn a_record_the_target_holds_several_accounts_for_is_parked_with_them() {
    let name = "ambiguous";
    let candidates = vec![
        Candidate {
            id: "u-7".into(),
            login: "user1".into(),
            matched_by: vec!["login".into()],
        },
        Candidate {
            id: "u-9".into(),
            login: "u.one".into(),
            matched_by: vec!["email".into()],
        },
    ];
    let answer = candidates.clone();
    let _script = Script::new(move |items: &[&PushItem]| {
        if items.iter().any(|item| item.key.key == "E1") {
            Answer::All(Outcome::Ambiguous(answer.clone()))
        } else {
            acked()
        }
    })
    .set_for(name);
    let (_dir, store) = store_with_users(name, 2);
    let drained = drain_target(&store, &target(name, "batch_size = 1")).await;
    assert_eq!(done(&store, name, &drained), ["E2"]);
    assert_eq!(drained.parked, 1);
    let parked = store.parked_item(&key(name, "E1")).unwrap().unwrap();
    assert!(!parked.transient);
    assert!(
        parked.reason.starts_with(
            "ambiguous: 2 accounts at the target could be this person's: \
             u-7 (login \"user1\", by login), u-9 (login \"u.one\", by email); \
             none was taken and nothing was created"
        ),
        "{}",
        parked.reason
    );
    assert!(parked.reason.ends_with("then run `rostersync retry`"));
    assert_eq!(store.candidates(&key(name, "E1")).unwrap(), candidates);
}

#[tokio::test]
async fn an_account_is_held_by_the_record_the_store_says_or_the_first_to_claim_it() {
    use crate::connectors::adopt::Holders;
    let name = "holders";
    let (_dir, store) = store_with_users(name, 3);
    let entry = store.entry(&key(name, "E1")).unwrap().unwrap();
    let acked = Acked {
        hash: entry.desired.hash,
        active: true,
        target_id: Some("u-1".into()),
        at: now(),
    };
    store
        .acknowledge(&key(name, "E1"), &acked, &Fields::new())
        .unwrap();
    let holders = holders::DrainHolders::new(Arc::clone(&store));
    let ask = |k: &'static str, id: &'static str| {
        let holders = &holders;
        async move { holders.holder(&key(name, k), id).await.unwrap() }
    };
    assert_eq!(ask("E2", "u-1").await.as_deref(), Some("E1"));
    assert_eq!(ask("E1", "u-1").await, None, "its own account");
    assert_eq!(ask("E2", "u-5").await, None);
    let claim = |k: &'static str, id: &'static str| {
        let holders = &holders;
        async move { holders.claim(&key(name, k), id).await.unwrap() }
    };
    assert_eq!(claim("E2", "u-1").await.as_deref(), Some("E1"));
    assert_eq!(claim("E2", "u-5").await, None);
    assert_eq!(claim("E3", "u-5").await.as_deref(), Some("E2"));
    assert_eq!(ask("E3", "u-5").await.as_deref(), Some("E2"));
    assert_eq!(
        claim("E2", "u-5").await,
        None,
        "claimed again by its claimer"
    );
}

/// A delete queued for a target that no longer has `delete_after` (taken
/// away by a reload) is not sent: it waits for the next plan to take it back.
#[tokio::test(start_paused = true)]
async fn a_queued_delete_is_not_sent_without_delete_after() {
    let name = "nodelete";
    let script = Script::new(|_| acked()).set_for(name);
    let (_dir, store) = store_with_users(name, 2);
    let config = target(name, "");
    drain_target(&store, &config).await;
    let sent = script.requests().len();
    let entry = store.entry(&key(name, "E1")).unwrap().unwrap();
    let desired = crate::model::Desired {
        active: false,
        present: false,
        ..entry.desired
    };
    let commit = crate::store::Commit {
        targets: vec![crate::store::TargetWrites {
            target: name.into(),
            kind: RecordKind::Users,
            source: None,
            writes: vec![crate::store::EntryWrite {
                key: "E1".into(),
                desired,
                outbox: crate::store::OutboxChange::Put(crate::store::OutboxItem {
                    action: ActionKind::Delete,
                    queued_at: now(),
                }),
                acked_fields: None,
                in_snapshot: false,
            }],
        }],
        ..crate::store::Commit::default()
    };
    store.commit(&commit, &[]).unwrap();
    let drained = drain_target(&store, &config).await;
    assert_eq!(drained.done, 0, "{drained:?}");
    assert_eq!(script.requests().len(), sent, "nothing sent");
    assert_eq!(
        store
            .outbox_item(&key(name, "E1"))
            .unwrap()
            .map(|q| q.action),
        Some(ActionKind::Delete),
        "still waiting"
    );
}
