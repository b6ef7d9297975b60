//! The audit log: who changed what, kept per account.
//!
//! An entry is written into the audit of every account a change touches — the caller's own, and the owner of
//! every zone, scope, rule, VPC, link end or key the change writes — so a VPC owner sees what a linked account did
//! to its VPCs and a zone owner sees its VPCs leave when a link goes. Refused attempts on an account's resources
//! are written there too. Keys lead with the account (`audit/<account>/<ms>-<event>`), so a tenant's read scans its
//! own entries only; the operator's read scans them all and shows each event once.

use std::collections::BTreeSet;

use serde::Serialize;

use super::docs;
use super::docs::AuditDoc;
use super::fold::ControlState;
use super::keys;
use super::{Actor, ControlError, ControlPlane, Ctx};
use crate::control::store::{Compare, Op, Store, TxnOutcome};
use crate::model::state::Uid;

/// The account part of an audit key for entries that concern no account (operator housekeeping).
pub(crate) const NO_ACCOUNT: &str = "-";

/// What is written for one audited event: the same entry under each account it concerns.
pub(crate) struct Event<'a> {
    pub actor: &'a Actor,
    /// The actor as people see it (`Actor::principal`).
    pub principal: &'a str,
    pub remote: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    /// For a refused attempt: its status and message.
    pub refused: Option<(u16, &'a str)>,
}

impl Event<'_> {
    /// The store writes that record the event under every account of `accounts` (and, when that is empty, under
    /// [`NO_ACCOUNT`]).
    pub(crate) fn ops(&self, accounts: &BTreeSet<Uid>, time_ms: u64) -> Result<Vec<Op>, ControlError> {
        let event = super::auth::random_hex(6)?;
        let actor_account = match self.actor {
            Actor::Tenant(t) => t.account.0.clone(),
            Actor::Operator => String::new(),
        };
        let mut under: Vec<&str> = accounts.iter().map(|a| a.0.as_str()).collect();
        if under.is_empty() {
            under.push(NO_ACCOUNT);
        }
        Ok(under
            .into_iter()
            .map(|account| {
                let doc = AuditDoc {
                    time_ms,
                    account: account.to_string(),
                    principal: self.principal.to_string(),
                    action: self.action.to_string(),
                    target: self.target.to_string(),
                    remote: self.remote.to_string(),
                    event: event.clone(),
                    actor_account: actor_account.clone(),
                    status: self.refused.map(|(status, _)| status),
                    message: self.refused.map(|(_, message)| message.to_string()).unwrap_or_default(),
                };
                Op::Put { key: keys::audit(account, time_ms, &event), value: docs::encode(&doc) }
            })
            .collect())
    }
}

/// Every account whose resources the writes touch: the owners of the zones, scopes, records, rules, VPCs, users
/// and keys written, both ends of a link, and the blocking account of a block. Owners are looked up before and
/// after the change, so a removal is attributed too.
pub(crate) fn affected_accounts(ops: &[Op], before: &ControlState, after: &ControlState) -> BTreeSet<Uid> {
    let mut accounts = BTreeSet::new();
    let zone_owner = |id: &str| {
        [before, after].iter().find_map(|c| c.state.zones.get(id).map(|z| z.account.clone())).or_else(|| {
            // A zone id is `<owner uid>/<name>`.
            id.split_once('/').map(|(uid, _)| Uid(uid.to_string()))
        })
    };
    for op in ops {
        let key = match op {
            Op::Put { key, .. } | Op::Delete { key } => key.as_str(),
            Op::DeletePrefix { prefix } => prefix.as_str(),
        };
        let mut parts = key.split('/');
        let kind = parts.next().unwrap_or_default();
        let first = parts.next().map(keys::unesc).unwrap_or_default();
        let second = parts.next().map(keys::unesc).unwrap_or_default();
        let owner: Vec<Option<Uid>> = match kind {
            "zone" | "scope" | "record" => vec![zone_owner(&first)],
            "rule" => {
                vec![[before, after].iter().find_map(|c| c.state.rules.get(first.as_ref()).map(|r| r.account.clone()))]
            }
            "vpc" => {
                vec![[before, after].iter().find_map(|c| c.state.vpcs.get(first.as_ref()).map(|v| v.account.clone()))]
            }
            "key" => {
                vec![[before, after].iter().find_map(|c| c.keys.get(first.as_ref()).map(|k| Uid(k.account.clone())))]
            }
            "account" | "user" | "block" => vec![Some(Uid(first.to_string()))],
            "link" => vec![Some(Uid(first.to_string())), Some(Uid(second.to_string()))],
            _ => Vec::new(),
        };
        accounts.extend(owner.into_iter().flatten().filter(|uid| !uid.0.is_empty()));
    }
    accounts
}

/// Records a refused attempt (403, 404, 409, 422 on a change) in the audit of the caller's account and of the
/// account whose resource it named. Best effort: a store failure is logged, never the caller's error.
pub(crate) fn record_refusal(plane: &ControlPlane, event: &Event, owners: BTreeSet<Uid>) {
    let control = plane.current();
    let mut accounts: BTreeSet<Uid> =
        owners.into_iter().filter(|uid| control.state.accounts.contains_key(uid)).collect();
    if let Actor::Tenant(t) = event.actor {
        accounts.insert(t.account.clone());
    }
    let ops = match event.ops(&accounts, super::unix_millis()) {
        Ok(ops) => ops,
        Err(e) => return tracing::warn!(error = %e, "a refused attempt was not audited"),
    };
    if let Err(e) = plane.commit_internal(&ops) {
        tracing::warn!(error = format!("{e:#}"), "a refused attempt was not audited");
    }
}

/// The audit log between two Unix times, oldest first, at most `limit` entries: the caller's account's (a tenant),
/// or every account's with each event once (the operator).
/// An account's audit, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AuditLog {
    pub entries: Vec<AuditEntry>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AuditEntry {
    pub time_ms: u64,
    pub principal: String,
    pub action: String,
    pub target: String,
    pub remote: String,
    /// A refused attempt: its status and message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refused>,
    /// The account the entry concerns (the operator's view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Refused {
    pub status: u16,
    pub message: String,
}

pub(crate) fn read(
    plane: &ControlPlane,
    ctx: &Ctx,
    from: u64,
    to: u64,
    limit: usize,
) -> Result<AuditLog, ControlError> {
    let (from_ms, to_ms) = (from.saturating_mul(1000), to.saturating_add(1).saturating_mul(1000));
    let docs: Vec<AuditDoc> = match ctx.actor {
        Actor::Tenant(t) => {
            let me = t.require_read()?;
            let start = format!("{}{}/{from_ms:016}", keys::AUDIT, keys::esc(&me.0));
            let end = format!("{}{}/{to_ms:016}", keys::AUDIT, keys::esc(&me.0));
            let entries = plane.store().range(&start, &end, limit).map_err(super::store_error)?;
            entries.iter().filter_map(|e| docs::decode::<AuditDoc>(&e.value).ok()).collect()
        }
        Actor::Operator => {
            let (entries, _) = plane.store().list(keys::AUDIT).map_err(super::store_error)?;
            let mut docs: Vec<AuditDoc> = entries
                .iter()
                .filter_map(|e| docs::decode::<AuditDoc>(&e.value).ok())
                .filter(|d| (from_ms..to_ms).contains(&d.time_ms))
                .collect();
            docs.sort_by(|a, b| a.time_ms.cmp(&b.time_ms).then_with(|| a.event.cmp(&b.event)));
            docs.dedup_by(|a, b| !a.event.is_empty() && a.event == b.event);
            docs.truncate(limit);
            docs
        }
    };
    let operator = matches!(ctx.actor, Actor::Operator);
    let entries = docs
        .into_iter()
        .map(|d| AuditEntry {
            refused: d.status.map(|status| Refused { status, message: d.message.clone() }),
            account: (operator && d.account != NO_ACCOUNT).then(|| d.account.clone()),
            time_ms: d.time_ms,
            principal: d.principal,
            action: d.action,
            target: d.target,
            remote: d.remote,
        })
        .collect();
    Ok(AuditLog { entries })
}

/// Moves audit entries and usage buckets written by earlier versions (`audit/<ms>-<id>`, `usage/<minute>/<node>`,
/// not keyed by account) to the per-account layout, a few at a time, each move guarded so that nodes migrating at
/// once never duplicate an entry. Returns how many documents moved.
pub(crate) fn migrate_legacy(store: &dyn Store) -> anyhow::Result<usize> {
    let mut moved = 0;
    let (audit, _) = store.list(keys::AUDIT)?;
    let (usage, _) = store.list(keys::USAGE)?;
    let mut batch: Vec<(crate::control::store::Entry, Vec<Op>)> = Vec::new();
    for entry in audit.into_iter().filter(|e| e.key[keys::AUDIT.len()..].split('/').count() == 1) {
        let Ok(mut doc) = docs::decode::<AuditDoc>(&entry.value) else { continue };
        let account = if doc.account.is_empty() { NO_ACCOUNT.to_string() } else { doc.account.clone() };
        let event = entry.key.rsplit('-').next().unwrap_or("legacy").to_string();
        doc.account.clone_from(&account);
        doc.event.clone_from(&event);
        let put = Op::Put { key: keys::audit(&account, doc.time_ms, &event), value: docs::encode(&doc) };
        batch.push((entry, vec![put]));
    }
    for entry in usage.into_iter().filter(|e| e.key[keys::USAGE.len()..].split('/').count() == 2) {
        let Ok(doc) = docs::decode::<super::usage::UsageDoc>(&entry.value) else { continue };
        batch.push((entry, super::usage::split_legacy(&doc)));
    }
    for chunk in batch.chunks(32) {
        let compares: Vec<Compare> =
            chunk.iter().map(|(e, _)| Compare { key: e.key.clone(), mod_revision: e.mod_revision }).collect();
        let mut ops: Vec<Op> = chunk.iter().flat_map(|(_, puts)| puts.iter().cloned()).collect();
        ops.extend(chunk.iter().map(|(e, _)| Op::Delete { key: e.key.clone() }));
        if let TxnOutcome::Committed { .. } = store.txn(&compares, &ops)? {
            moved += chunk.len();
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::control::auth::Tenant;
    use crate::control::docs::AccountDoc;
    use crate::control::store::sqlite::SqliteStore;
    use crate::model::state::Policy;

    fn plane() -> ControlPlane {
        let server = crate::testing::state("", None).served;
        ControlPlane::open(Arc::new(SqliteStore::open_in_memory().expect("store")), server, vec![7; 32]).expect("plane")
    }

    fn tenant(uid: &str) -> Actor {
        Actor::Tenant(Tenant { account: Uid(uid.into()), user: None, policies: vec![Policy::DnsFullAccess] })
    }

    fn caller(actor: Actor) -> crate::control::Caller {
        crate::control::Caller { actor, remote: "test".into(), if_match: None, idempotency: None }
    }

    /// Entries are keyed by account: a tenant's read is a range over its own keys, and the operator's changes to
    /// an account are in that account's audit.
    #[test]
    fn entries_are_kept_under_each_account_they_concern() {
        let plane = plane();
        for uid in ["1", "2"] {
            let doc = AccountDoc {
                uid: uid.into(),
                name: format!("a{uid}"),
                email: format!("r@a{uid}.example"),
                site: "intl".into(),
            };
            plane
                .execute(&crate::control::Caller::operator(), |c, ctx| {
                    crate::control::ops::inventory::put_account(c, ctx, doc.clone())
                })
                .expect("account");
        }
        let zone = crate::control::ops::tenant::NewZone {
            name: "corp.internal.".into(),
            scope: vec![],
            records: vec![],
            fallback: None,
        };
        plane
            .execute(&caller(tenant("1")), |c, ctx| crate::control::ops::tenant::create_zone(c, ctx, zone.clone()))
            .expect("zone");
        let (mine, _) = plane.store().list("audit/1/").expect("list");
        let mut actions: Vec<String> =
            mine.iter().filter_map(|e| docs::decode::<AuditDoc>(&e.value).ok()).map(|d| d.action).collect();
        // Two entries of one millisecond sort by their random event ids.
        actions.sort();
        assert_eq!(actions, ["account.put", "zone.create"], "the operator's change to account 1 and its own");
        let (theirs, _) = plane.store().list("audit/2/").expect("list");
        assert_eq!(theirs.len(), 1, "account 2 sees only its own account.put");
        let theirs =
            plane.read(&tenant("2"), |_, ctx| super::read(&plane, ctx, 0, u64::MAX / 2000, 100)).expect("read");
        assert_eq!(theirs.entries.len(), 1);
        let all =
            plane.read(&Actor::Operator, |_, ctx| super::read(&plane, ctx, 0, u64::MAX / 2000, 100)).expect("read");
        assert_eq!(all.entries.len(), 3, "the operator sees each event once");
    }

    /// A store written before entries were keyed by account is moved over once, nothing lost, nothing doubled.
    #[test]
    fn legacy_entries_move_to_the_per_account_layout() {
        let store = SqliteStore::open_in_memory().expect("store");
        let legacy = AuditDoc {
            time_ms: 1_000,
            account: "1".into(),
            principal: "root@acme".into(),
            action: "zone.create".into(),
            target: "1/x.".into(),
            remote: "r".into(),
            event: String::new(),
            actor_account: String::new(),
            status: None,
            message: String::new(),
        };
        let usage = crate::control::usage::UsageDoc {
            minute: 5,
            node: "n".into(),
            lines: ["1", "2"]
                .iter()
                .map(|owner| crate::control::usage::UsageLine {
                    owner: owner.to_string(),
                    consumer: "3".into(),
                    vpc: "v".into(),
                    zone: "z".into(),
                    kind: Default::default(),
                    queries: 4,
                })
                .collect(),
        };
        let ops = [
            Op::Put { key: "audit/0000000000001000-abcd".into(), value: docs::encode(&legacy) },
            Op::Put { key: "usage/000000000005/n".into(), value: docs::encode(&usage) },
        ];
        store.txn(&[], &ops).expect("legacy");
        assert_eq!(migrate_legacy(&store).expect("migrate"), 2);
        assert_eq!(migrate_legacy(&store).expect("again"), 0, "once");
        let (audit, _) = store.list("audit/").expect("list");
        assert_eq!(audit.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["audit/1/0000000000001000-abcd"]);
        let (usage, _) = store.list("usage/").expect("list");
        assert_eq!(
            usage.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
            ["usage/1/000000000005/n", "usage/2/000000000005/n"]
        );
    }
}
