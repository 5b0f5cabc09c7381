//! Once a day, records whose activation or expiration date took effect
//! since the last day are planned again, with the prehires whose window
//! opened and the blocked accounts whose `delete_after` ran out (the day
//! is kept in `state_dir/dates.last`).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use tracing::{error, info, warn};

use super::state_health::Failed;
use super::{Shared, lifecycle, today};
use crate::config::Config;
use crate::plan::{PlanOptions, SourceInfo, SourceRules, TargetInfo};
use crate::{store, sync};

/// Where the day of the last date re-plan is kept, in the state folder.
const DATES_FILE: &str = "dates.last";

/// The day from which records' dates must be looked at again, if a re-plan
/// is due: the last re-plan was before today.
pub fn dates_due(last: Option<NaiveDate>, today: NaiveDate) -> Option<NaiveDate> {
    last.filter(|&last| last < today)
}

/// Once a day: records whose activation or expiration date took effect
/// since the last re-plan get their new desired state and actions.
pub(super) async fn replan(shared: &Arc<Shared>, config: &Config) {
    let today = today();
    let path = config.daemon.state_dir.join(DATES_FILE);
    let read = path.clone();
    let last = tokio::task::spawn_blocking(move || {
        std::fs::read_to_string(read)
            .ok()
            .and_then(|text| NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok())
    })
    .await
    .unwrap_or(None);
    if last.is_some_and(|last| last >= today) {
        return;
    }
    if let Some(since) = dates_due(last, today) {
        let targets: Vec<TargetInfo> = config.targets.iter().map(TargetInfo::from_config).collect();
        let source_rules: HashMap<String, SourceRules> = config
            .sources
            .iter()
            .map(|s| (s.name.get_ref().clone(), SourceInfo::from_config(s).rules()))
            .collect();
        let options = PlanOptions {
            today,
            now: sync::unix_now(),
            detail_limit: 0,
        };
        let replanned = store::blocking(&shared.store, move |store| {
            let dated = crate::plan::plan_dates(
                store,
                &targets,
                |source| source_rules.get(source).copied().unwrap_or_default(),
                since,
                options,
            )?;
            store.commit(&dated.commit, &[])?;
            Ok((dated.actions.len(), dated.held))
        })
        .await;
        match replanned {
            Ok((actions, held)) => {
                for held in held {
                    error!(target = held.target.as_deref().unwrap_or(""), rule = %held.rule,
                        "deletes held: the daily re-plan found {held}; none of them is deleted. \
                         Check the leavers with `rostersync show`, then raise max_delete_count \
                         and reload to let them go, or approve the next file that holds them");
                }
                info!(%since, %today, actions, "dates re-planned: records whose activation or expiration date took effect");
                if actions > 0 {
                    shared.wake_all();
                }
            }
            Err(error) if error.is_io() => {
                shared.state_failed(Failed::Store, &error.to_string());
                return;
            }
            Err(error) => {
                error!(%error, "the daily date re-plan failed; tried again later");
                return;
            }
        }
    }
    let shown = path.display().to_string();
    let written = tokio::task::spawn_blocking(move || {
        lifecycle::write_atomic(
            &path,
            format!("{today}\n").as_bytes(),
            crate::file_modes::Access::Private,
        )
    })
    .await;
    if let Ok(Err(error)) = written {
        warn!(file = %shown, %error, "cannot record the day of the date re-plan");
        shared.state_failed(Failed::Files, &format!("cannot write {shown}: {error}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_re_planned_once_a_day() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert_eq!(
            dates_due(None, day(21)),
            None,
            "first start: nothing to catch up"
        );
        assert_eq!(dates_due(Some(day(21)), day(21)), None);
        assert_eq!(dates_due(Some(day(18)), day(21)), Some(day(18)));
    }
}
