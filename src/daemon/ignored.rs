//! Inbox entries the daemon will not take (links, folders, pipes...): each
//! is named once in the log, when first seen, and listed in `status` with
//! its reason for as long as it is there, so that no drop waits unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use tracing::warn;

use super::Shared;
use super::status::IgnoredEntry;
use crate::escape;
use crate::watch::Unfit;

/// What the scans found unfit so far, per source.
#[derive(Debug, Default)]
pub(super) struct Ignored {
    seen: BTreeMap<String, BTreeMap<PathBuf, Unfit>>,
}

impl Ignored {
    /// Takes in what a scan of one source's inbox found unfit; returns the
    /// entries not seen (or seen otherwise) before, and whether the list
    /// changed.
    fn observe(
        &mut self,
        source: &str,
        unfit: Vec<(PathBuf, Unfit)>,
    ) -> (Vec<(PathBuf, Unfit)>, bool) {
        let now: BTreeMap<PathBuf, Unfit> = unfit.into_iter().collect();
        let before = self.seen.remove(source).unwrap_or_default();
        let new: Vec<(PathBuf, Unfit)> = now
            .iter()
            .filter(|(path, unfit)| before.get(*path) != Some(unfit))
            .map(|(path, unfit)| (path.clone(), *unfit))
            .collect();
        let changed = before != now;
        if !now.is_empty() {
            self.seen.insert(source.to_string(), now);
        }
        (new, changed)
    }

    /// Forgets the sources no longer configured.
    pub(super) fn retain(&mut self, sources: &BTreeSet<String>) {
        self.seen.retain(|name, _| sources.contains(name));
    }

    /// Logs each entry new in a source's inbox and updates its status.
    pub(super) fn report(&mut self, shared: &Shared, source: &str, unfit: Vec<(PathBuf, Unfit)>) {
        let (new, changed) = self.observe(source, unfit);
        for (path, unfit) in &new {
            warn!(source = %source, entry = %escape::path(path), reason = %unfit,
                "an inbox entry that is not taken");
        }
        if !changed {
            return;
        }
        let listed: Vec<IgnoredEntry> = self
            .seen
            .get(source)
            .into_iter()
            .flatten()
            .map(|(path, unfit)| IgnoredEntry {
                name: escape::file_name(path),
                reason: unfit.to_string(),
            })
            .collect();
        shared.with_status(|status| {
            status
                .sources
                .entry(source.to_string())
                .or_default()
                .ignored = listed;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_new_once_until_it_goes_or_changes() {
        let mut ignored = Ignored::default();
        let link = (PathBuf::from("in/l.csv"), Unfit::Symlink);
        let folder = (PathBuf::from("in/x.csv"), Unfit::Folder);
        let (new, changed) = ignored.observe("hr", vec![link.clone()]);
        assert_eq!((new, changed), (vec![link.clone()], true));
        // Every rescan: nothing new, nothing changed.
        assert_eq!(ignored.observe("hr", vec![link.clone()]), (vec![], false));
        let (new, changed) = ignored.observe("hr", vec![link.clone(), folder.clone()]);
        assert_eq!((new, changed), (vec![folder.clone()], true));
        // Another source's scan leaves this one's alone.
        assert_eq!(ignored.observe("crm", vec![]), (vec![], false));
        // Gone, then back: named again.
        assert_eq!(ignored.observe("hr", vec![folder.clone()]), (vec![], true));
        assert_eq!(
            ignored.observe("hr", vec![link.clone(), folder]).0,
            vec![link.clone()]
        );
        // A folder replaced by a link under the same name is news too.
        let relinked = (PathBuf::from("in/x.csv"), Unfit::Symlink);
        assert_eq!(
            ignored.observe("hr", vec![link, relinked.clone()]).0,
            vec![relinked]
        );
        ignored.retain(&BTreeSet::new());
        assert!(ignored.seen.is_empty());
    }
}
