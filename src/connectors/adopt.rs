//! Adopting the accounts a target already holds. On a first deployment the
//! target is rarely empty: before creating an account, a kind that can look
//! accounts up finds the one the target already has for the person, by the
//! target's `match` rules, in order (each compares a canonical field with
//! the target's field for it, without case where the target compares so).
//!
//! - No account found: the record is created.
//! - Exactly one: it is **adopted**: its id becomes the record's target id,
//!   and it is brought to the desired state.
//! - Several (one rule finds two, or rules point to different accounts):
//!   the record is parked as ambiguous with them, nothing is created, until
//!   a person sorts them out at the target and runs `rostersync retry`.
//!
//! An account another record holds is never taken: the push engine answers
//! who holds an id ([`Holders`]: the store, and what this drain claimed),
//! and an account carrying another person's external id is someone else's.
//! Such accounts are left out; when one of them holds the very login the
//! record would be created with, the record is parked instead (the target
//! would refuse the create, or, for an upsert, overwrite that account).
//!
//! The connectors do the lookups; what they found is decided here.

use futures_util::future::BoxFuture;

use crate::config::TargetConfig;
use crate::ingest::record::{Field, RecordKind};
use crate::model::{Candidate, RecordKey};
use crate::projection::Projector;
use crate::retry::Failure;

/// Which record holds an account of a target. The push engine answers from
/// the store and from what the current drain claimed, so that two records
/// sent side by side never take the same account.
pub trait Holders: Send + Sync {
    /// The key of the record other than `key` that holds the account `id`
    /// of `key`'s target, if one does.
    fn holder<'a>(
        &'a self,
        key: &'a RecordKey,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>>;

    /// [`Holders::holder`], and when nobody else holds it, the account is
    /// claimed for `key`: no other record can take it from then on.
    fn claim<'a>(
        &'a self,
        key: &'a RecordKey,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>>;

    /// Which drain of the target this is: what a connector read of the
    /// accounts there (a list, an index) serves one drain, and is read
    /// again in the next (accounts are made by hand in between, duplicates
    /// removed before `rostersync retry`).
    fn drain(&self) -> u64;
}

/// Nobody holds anything: for a push without a store (unit tests).
pub struct Nobody;

impl Holders for Nobody {
    fn holder<'a>(
        &'a self,
        _: &'a RecordKey,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async { Ok(None) })
    }

    fn claim<'a>(
        &'a self,
        _: &'a RecordKey,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async { Ok(None) })
    }

    fn drain(&self) -> u64 {
        0
    }
}

/// One `match` rule as a target applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub field: Field,
    /// The target's field for it, as the projection names it.
    pub target_field: String,
}

/// The rules of a target: its `match` fields (or the default ones) that
/// its kind can find accounts by (`takes`) and its mapping maps, in order.
pub fn rules(target: &TargetConfig, projector: &Projector, takes: &[Field]) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    for field in target.match_fields() {
        if !takes.contains(&field) || rules.iter().any(|rule| rule.field == field) {
            continue;
        }
        if let Some(name) = projector.target_field(RecordKind::Users, field) {
            rules.push(Rule {
                field,
                target_field: name.to_string(),
            });
        }
    }
    rules
}

/// An account a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The target's id for it.
    pub id: String,
    pub login: String,
    /// Its value of the target field that holds the external id, when the
    /// target maps one and the account has it.
    pub ext_id: Option<String>,
}

/// The accounts the rules found for a record, each once, with the rules
/// that found it, in the order found.
#[derive(Debug, Default)]
pub struct Found {
    accounts: Vec<(Account, Vec<Field>)>,
}

impl Found {
    /// What `rule` found.
    pub fn add(&mut self, rule: Field, accounts: impl IntoIterator<Item = Account>) {
        for account in accounts {
            match self.accounts.iter_mut().find(|(a, _)| a.id == account.id) {
                Some((_, rules)) if !rules.contains(&rule) => rules.push(rule),
                Some(_) => {}
                None => self.accounts.push((account, vec![rule])),
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

/// What to do with a record the target may already hold an account for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// No account is the record's: create one.
    Create,
    /// This one is (claimed for the record): bring it to the desired state.
    Adopt(Account),
    /// Several could be: none is taken.
    Ambiguous(Vec<Candidate>),
    /// The accounts found are other people's, and one of them holds the
    /// login the record would be created with: why, and what to do.
    Refused(String),
}

/// An account found that is someone else's, and why.
struct Taken {
    account: Account,
    rules: Vec<Field>,
    why: String,
}

/// Decides what `found` means for the record `key` (whose external id, as
/// the target holds it, is `ext_id`), asking `holders` who holds each
/// account, and claims the account adopted.
pub async fn decide(
    key: &RecordKey,
    ext_id: Option<&str>,
    found: Found,
    holders: &dyn Holders,
) -> Result<Adoption, Failure> {
    let mut free: Vec<(Account, Vec<Field>)> = Vec::new();
    let mut taken: Vec<Taken> = Vec::new();
    for (account, rules) in found.accounts {
        match held_by_other(key, ext_id, &account, holders).await? {
            Some(why) => taken.push(Taken {
                account,
                rules,
                why,
            }),
            None => free.push((account, rules)),
        }
    }
    loop {
        match free.len() {
            0 => return Ok(refused_or_create(&taken)),
            1 => {
                let (account, rules) = free.remove(0);
                match holders
                    .claim(key, &account.id)
                    .await
                    .map_err(store_failure)?
                {
                    None => return Ok(Adoption::Adopt(account)),
                    // Taken by a record sent alongside since it was asked.
                    Some(other) => taken.push(Taken {
                        account,
                        rules,
                        why: format!("held by {other}"),
                    }),
                }
            }
            _ => return Ok(Adoption::Ambiguous(free.iter().map(candidate).collect())),
        }
    }
}

/// Why `account` is someone else's, if it is.
async fn held_by_other(
    key: &RecordKey,
    ext_id: Option<&str>,
    account: &Account,
    holders: &dyn Holders,
) -> Result<Option<String>, Failure> {
    if let Some(other) = holders
        .holder(key, &account.id)
        .await
        .map_err(store_failure)?
    {
        return Ok(Some(format!("held by {other}")));
    }
    Ok(match (account.ext_id.as_deref(), ext_id) {
        (Some(theirs), Some(mine)) if !theirs.is_empty() && theirs != mine => Some(format!(
            "it carries the external id {theirs:?} of another person"
        )),
        _ => None,
    })
}

fn refused_or_create(taken: &[Taken]) -> Adoption {
    match taken.iter().find(|t| t.rules.contains(&Field::Login)) {
        Some(t) => Adoption::Refused(format!(
            "login {:?} is held at the target by account {}, which is not this person's ({}): \
             free the login there or correct it in the file, then run `rostersync retry`",
            t.account.login, t.account.id, t.why
        )),
        None => {
            for t in taken {
                tracing::info!(account = %t.account.id, why = %t.why, "an account found is someone else's: not taken");
            }
            Adoption::Create
        }
    }
}

fn candidate((account, rules): &(Account, Vec<Field>)) -> Candidate {
    Candidate {
        id: account.id.clone(),
        login: account.login.clone(),
        matched_by: rules.iter().map(|rule| rule.name().to_string()).collect(),
    }
}

/// The store could not say who holds an account: tried again later.
fn store_failure(reason: String) -> Failure {
    Failure::Transient {
        reason: format!("cannot tell which record holds an account of the target: {reason}"),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests;
