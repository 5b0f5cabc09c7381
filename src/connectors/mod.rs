//! Connectors: one per target kind, each an implementation of [`Connector`]
//! in a file (or folder) of its own, registered with one line in the
//! `registry!` list below, the one place that names the kinds. Each
//! connector reads top to bottom as its settings, the pure request building
//! and reply parsing, then the thin part that sends.

#[macro_use]
mod registry;

pub mod adopt;
pub mod error;
pub mod http;

// The registry: one line per kind (`module::Connector => Variant`), in the
// order `rostersync check` lists them. It declares the kind's module and
// makes it a `TargetKind` and an `AnyConnector`.
registry! {
    collaborator::Collaborator => Collaborator,
    maarch::Maarch => Maarch,
    gestimum::Gestimum => Gestimum,
    pleasanter::Pleasanter => Pleasanter,
    scim::Scim => Scim,
    wbt_file::WbtFile => WbtFile,
    #[cfg(test)]
    scripted::Scripted => Scripted,
}

use std::future::Future;
use std::ops::Range;

pub use error::{CheckError, RecordError, Refusal, ReplyError, SettingsError, UnknownEncoding};

use crate::config::TargetConfig;
use crate::ingest::record::Field;
use crate::model::{ActionKind, Candidate, RecordKey};
use crate::projection::{DefaultFields, Fields, ProjectionHash};
use crate::retry::Failure;

/// One record to send, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushItem {
    pub key: RecordKey,
    pub action: ActionKind,
    /// Whether the record must be active at the target once this is applied.
    pub active: bool,
    /// The desired projection: what the target must hold, and its hash.
    pub fields: Fields,
    pub hash: ProjectionHash,
    /// What the target last confirmed holding, if anything (for APIs that
    /// take differences, such as group memberships).
    pub acked_fields: Option<Fields>,
    /// The target's own id for the record, when it gave one.
    pub target_id: Option<String>,
}

/// What a push returned: one outcome per item, in order, and a reason to stop
/// pushing to this target at all, if the target showed it must not get more.
#[derive(Debug, Clone, Default)]
pub struct PushReply {
    pub outcomes: Vec<Outcome>,
    pub halt: Option<String>,
}

/// What became of one record of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The target holds it; with the target's own id when it has one.
    Acked {
        target_id: Option<String>,
    },
    Failed(Failure),
    /// The target already holds several accounts that could be the
    /// record's: none was taken, nothing was created, until a person sorts
    /// them out there.
    Ambiguous(Vec<Candidate>),
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("target {target}: {error}")]
    Settings {
        target: String,
        error: SettingsError,
    },
}

/// A target kind's connector: everything rostersync knows of the kind, in
/// its one file. A new kind implements this and adds one line to
/// [`registry`]; nothing else in `src/` names kinds.
pub trait Connector: Sized + Send + Sync + 'static {
    /// The kind's name: `kind = "..."` in the config, and in messages.
    const KIND: &'static str;

    /// What its targets are configured with; `rostersync check` holds every
    /// target of the kind to it (the rules themselves are in `config::check`).
    const SETTINGS: Settings;

    /// Its default mappings (README, *Targets*), which `[target.fields]` overrides.
    fn default_fields() -> DefaultFields;

    /// The canonical fields it can find an account the target already
    /// holds by, before creating one (`match` takes them); none for a kind
    /// that creates or updates the account holding the record's own key.
    const MATCH_FIELDS: &'static [Field] = &[];

    /// Whether its API can remove an account: a `delete_after` on a kind
    /// that cannot is refused by `check`. Such a kind's `push` gets
    /// [`ActionKind::Delete`] items only from a config `check` refused,
    /// and treats them as blocks.
    const DELETES: bool = false;

    /// Config rules of its own, beyond [`Connector::SETTINGS`]: each problem
    /// with the byte range of the config text it is about.
    fn check_config(target: &TargetConfig) -> Vec<SettingProblem> {
        let _ = target;
        Vec::new()
    }

    /// The connector of a target, secrets loaded, ready to push.
    fn from_config(target: &TargetConfig) -> Result<Self, SettingsError>;

    /// How many records one request (or file) carries at most.
    fn batch_size(&self) -> usize;

    /// Sends records; one outcome per item, in the same order.
    fn push(&self, items: &[PushItem]) -> impl Future<Output = PushReply> + Send;

    /// [`Connector::push`], for kinds that adopt accounts ([`adopt`]):
    /// `holders` says which accounts of the target other records hold.
    fn push_with(
        &self,
        items: &[PushItem],
        holders: &dyn adopt::Holders,
    ) -> impl Future<Output = PushReply> + Send {
        let _ = holders;
        self.push(items)
    }

    /// Reaches the target and tries its credentials (`check --online`).
    fn check(&self) -> impl Future<Output = Result<(), CheckError>> + Send;

    /// Why nothing can be sent to the target right now, whatever the
    /// record (it refused rostersync's credentials, or rostersync does not
    /// trust its certificate): the push then stops for the whole target
    /// instead of parking each record. Kinds that speak HTTP ask their
    /// [`http::Http`].
    fn refusal(&self) -> Option<Refusal> {
        None
    }

    /// What the kind judges a batch from (its HTTP reply, mostly);
    /// [`std::convert::Infallible`] for a kind that has no batch verdict
    /// (one record per sequence of requests, each reply read where it is sent).
    type Reply;

    /// What a reply to a request carrying `sent` says of those records:
    /// a pure function, the part of the kind most of its tests exercise.
    fn verdict(&self, sent: &[&PushItem], reply: &Self::Reply) -> Verdict;
}

/// A problem in a target's config: the byte range of the config text it is
/// about, and what is wrong.
pub type SettingProblem = (Range<usize>, String);

/// Where a kind pushes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// An API: `url` is required, `dir` refused.
    Url,
    /// A folder: `dir` is required, `url` refused.
    Dir,
}

/// The settings a kind's targets take, beyond those every target takes.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub place: Place,
    /// A token (`token_env`, `token_file` or `token_credential`), required.
    pub token: bool,
    /// `user` and its password (`password_env`, ...), both required.
    pub password: bool,
    /// The `encoding` values it takes, in lowercase (none: no `encoding`).
    pub encodings: &'static [&'static str],
    /// Keys only this kind takes (`company`): refused on the others.
    pub own_keys: &'static [&'static str],
}

/// What one request over a part of a batch came to.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// The same outcome for every record of the part.
    All(Outcome),
    /// The target took some and not others (counts short, a refused record):
    /// send each half on its own.
    Split,
    /// This outcome for the part, then nothing more to this target.
    Halt(Outcome, String),
}

/// Sends a batch of `len` records through `send` (given the part's index
/// range), splitting a part judged [`Verdict::Split`] into halves until the
/// records the target refuses are found alone. The caller decides what a part
/// of one record comes to (a single-record endpoint, or a refusal): a split
/// of one record counts as refused. Parts left unsent by a halt fail
/// transiently. Returns one outcome per record, and the halt reason if any.
pub async fn bisect<F, Fut>(len: usize, mut send: F) -> (Vec<Outcome>, Option<String>)
where
    F: FnMut(Range<usize>) -> Fut,
    Fut: Future<Output = Verdict>,
{
    let mut outcomes: Vec<Option<Outcome>> = vec![None; len];
    let mut halt = None;
    let mut pending: Vec<Range<usize>> = Vec::new();
    if len > 0 {
        pending.push(0..len);
    }
    while let Some(part) = pending.pop() {
        let verdict = match send(part.clone()).await {
            Verdict::Split if part.len() == 1 => {
                Verdict::All(Outcome::Failed(Failure::Permanent {
                    reason: "the target did not take this record".into(),
                }))
            }
            verdict => verdict,
        };
        match verdict {
            Verdict::All(outcome) => outcomes[part].fill(Some(outcome)),
            Verdict::Split => {
                let middle = part.start + part.len() / 2;
                pending.push(middle..part.end);
                pending.push(part.start..middle);
            }
            Verdict::Halt(outcome, reason) => {
                outcomes[part].fill(Some(outcome));
                halt = Some(reason);
                break;
            }
        }
    }
    let outcomes = outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or(Outcome::Failed(Failure::Transient {
                reason: "not sent: pushing to this target stopped".into(),
                retry_after: None,
            }))
        })
        .collect();
    (outcomes, halt)
}

/// User `E1` of `target`, as the connectors' unit tests push it.
#[cfg(test)]
pub(crate) fn test_user(
    target: &str,
    action: ActionKind,
    active: bool,
    fields: &[(&str, &str)],
) -> PushItem {
    PushItem {
        key: RecordKey {
            target: target.into(),
            kind: crate::ingest::record::RecordKind::Users,
            key: "E1".into(),
        },
        action,
        active,
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        hash: ProjectionHash([0; 16]),
        acked_fields: None,
        target_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked() -> Outcome {
        Outcome::Acked { target_id: None }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_is_split_until_the_refused_record_is_alone() {
        // Record 5 of 8 is refused: any part holding it is split.
        let mut sent = Vec::new();
        let (outcomes, halt) = bisect(8, |part| {
            sent.push(part.clone());
            async move {
                if part.contains(&5) {
                    if part.len() == 1 {
                        Verdict::All(Outcome::Failed(Failure::Permanent {
                            reason: "refused".into(),
                        }))
                    } else {
                        Verdict::Split
                    }
                } else {
                    Verdict::All(acked())
                }
            }
        })
        .await;
        assert_eq!(halt, None);
        assert_eq!(sent, [0..8, 0..4, 4..8, 4..6, 4..5, 5..6, 6..8]);
        for (i, outcome) in outcomes.iter().enumerate() {
            assert_eq!(*outcome == acked(), i != 5, "{i}: {outcome:?}");
        }
        // A split of a single record is a refusal, never a loop.
        let (outcomes, _) = bisect(1, |_| async { Verdict::Split }).await;
        assert!(matches!(
            outcomes[0],
            Outcome::Failed(Failure::Permanent { .. })
        ));
        assert!(bisect(0, |_| async { Verdict::Split }).await.0.is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_halt_stops_sending_and_leaves_the_rest_transient() {
        let mut calls = 0;
        let (outcomes, halt) = bisect(4, |part| {
            calls += 1;
            async move {
                if part.len() == 4 {
                    Verdict::Split
                } else {
                    Verdict::Halt(acked(), "stop".into())
                }
            }
        })
        .await;
        assert_eq!(calls, 2);
        assert_eq!(halt.as_deref(), Some("stop"));
        assert_eq!(outcomes[..2], [acked(), acked()]);
        assert!(
            outcomes[2..]
                .iter()
                .all(|o| matches!(o, Outcome::Failed(Failure::Transient { .. })))
        );
    }
}
