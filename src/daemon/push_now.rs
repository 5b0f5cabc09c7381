//! `rostersync push EXT_ID [--target NAME]`: one person's (or organisation's)
//! desired state sent now, ahead of whatever waits, for an urgent leaver.
//! In the daemon for the control socket; without one on the store directly.

use std::fmt::Write;
use std::sync::Arc;

use super::ops::Answer;
use crate::cli::exit;
use crate::config::Config;
use crate::ingest::record::RecordKind;
use crate::push::{PushTarget, PushedOne, push_one};
use crate::store::{RecordKey, Store};

/// Pushes `id` to every target holding it (or only `target`), one line per
/// target and kind: exit 0 when each was confirmed or had nothing waiting,
/// 1 when one was parked or failed, 2 when no target holds it.
pub async fn push_person(
    config: &Config,
    store: &Arc<Store>,
    id: &str,
    target: Option<&str>,
) -> Answer {
    if let Some(name) = target
        && !config.targets.iter().any(|t| t.name.get_ref() == name)
    {
        return Answer::new(
            exit::USAGE,
            format!(
                "no target named {:?} in the config\n",
                crate::escape::text(name)
            ),
        );
    }
    let shown = crate::escape::text(id);
    let mut out = String::new();
    let (mut found, mut failed) = (false, false);
    let targets = config
        .targets
        .iter()
        .filter(|t| target.is_none_or(|name| t.name.get_ref() == name));
    for target in targets {
        let name = target.name.get_ref();
        for kind in [RecordKind::Users, RecordKind::Orgs] {
            let key = RecordKey {
                target: name.clone(),
                kind,
                key: id.to_string(),
            };
            let known = {
                let key = key.clone();
                crate::store::blocking(store, move |store| store.entry(&key)).await
            };
            match known {
                Ok(Some(_)) => {}
                Ok(None) => continue,
                Err(error) => {
                    failed = true;
                    let _ = writeln!(out, "{name} {kind} {shown}: {error}");
                    continue;
                }
            }
            found = true;
            let pushed = match PushTarget::from_config(target) {
                Ok(pusher) => push_one(store, &pusher, &key, crate::sync::unix_now)
                    .await
                    .map_err(|error| error.to_string()),
                Err(error) => Err(error.to_string()),
            };
            let line = match pushed {
                Ok(PushedOne::Done(action)) => format!("{action} sent and confirmed"),
                Ok(PushedOne::NothingWaits) => {
                    "nothing waits: the target holds its desired state".to_string()
                }
                Ok(PushedOne::AlreadyParked(reason)) => {
                    failed = true;
                    format!("parked, not sent: {reason} (`rostersync retry` sends it again)")
                }
                Ok(PushedOne::CutShort) => {
                    failed = true;
                    "not sent: its source's last commit was cut short and waits for its file"
                        .to_string()
                }
                Ok(PushedOne::Parked(reason)) => {
                    failed = true;
                    format!("refused, parked: {reason}")
                }
                Ok(PushedOne::Failed(reason)) => {
                    failed = true;
                    format!("not confirmed: {reason}; it stays queued")
                }
                Err(reason) => {
                    failed = true;
                    format!("not sent: {reason}")
                }
            };
            let _ = writeln!(out, "{name} {kind} {shown}: {line}");
        }
    }
    if !found {
        let _ = writeln!(out, "{shown}: no target holds a record with this key");
        return Answer::new(exit::USAGE, out);
    }
    Answer::new(if failed { exit::FAILURE } else { exit::OK }, out)
}
