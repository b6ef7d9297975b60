//! The write path: plan → stage → lock → trial and validation → one store transaction → memory updated →
//! snapshot published. Every acknowledged change is in the store before it is served.
//!
//! Every key a plan writes is guarded: the commit applies only if the key is still at the revision the plan read,
//! so two nodes that change the same document at once never lose one of the changes. When a guard (not the
//! caller's own If-Match) fails, the state is brought up to date and the operation planned again.

use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::store::{Change, Compare, Op, TxnOutcome};
use super::{
    audit, keys, precedence, stage, unix_millis, unix_now, Caller, ControlError, ControlPlane, ControlState, Ctx, Plan,
};
use crate::model::compile::Compiler;
use crate::model::state::Changes;
use crate::model::validate;

/// How many times a write is planned again after another node changed what it read.
const PLAN_ATTEMPTS: usize = 8;
/// How many times a change with an idempotency key is sent again after the store could not tell its outcome.
const UNKNOWN_RETRIES: usize = 2;

/// How long a write waits for the feed to bring its own commit before reading the history itself.
pub(super) const FEED_WAIT: Duration = Duration::from_secs(2);

/// One try of a write.
enum Attempt {
    Done(Value, Box<Plan>),
    /// A guarded key changed since the state the plan read; the state must reach `revision` first.
    Stale {
        revision: u64,
    },
}

/// A plan tried on a copy of the state: the state it makes, what changed, and the compares its commit needs.
struct Trial {
    next: ControlState,
    changed: Changes,
    compares: Vec<Compare>,
    guards: Vec<Compare>,
}

impl ControlPlane {
    /// Plans, validates, commits and publishes one change. Returns the response with the commit revision.
    pub fn execute(
        &self,
        caller: &Caller,
        op: impl Fn(&ControlState, &Ctx) -> Result<Plan, ControlError>,
    ) -> Result<(Value, Plan), ControlError> {
        let mut unknown = 0;
        for _ in 0..PLAN_ATTEMPTS {
            let attempt = match self.try_execute(caller, &op) {
                // With an idempotency key, sending the change again is safe: its commit compares the key's absence,
                // so if the first commit went in, this one conflicts and is answered with the first outcome. The
                // store has stopped preferring the member that did not answer, so the retry goes elsewhere.
                Err(e)
                    if e.code() == "outcome_unknown" && caller.idempotency.is_some() && unknown < UNKNOWN_RETRIES =>
                {
                    unknown += 1;
                    tracing::info!(error = %e, "outcome unknown: sending the change again under its idempotency key");
                    continue;
                }
                Err(e) if e.code() == "outcome_unknown" => {
                    tracing::warn!(error = %e, tries = unknown + 1, "outcome unknown: the client must send it again");
                    return Err(e);
                }
                other => other?,
            };
            match attempt {
                Attempt::Done(response, plan) => {
                    if !plan.collect.is_empty() {
                        // A bulk change replaced a generation of records: its history is the bulk of the store's
                        // growth, so it goes now rather than at the next periodic compaction.
                        if let Err(e) = self.compact_history() {
                            tracing::warn!(error = format!("{e:#}"), "compacting the store's history failed");
                        }
                    }
                    return Ok((response, *plan));
                }
                Attempt::Stale { revision } => {
                    // Another node changed what this plan read: wait until its change is here, then plan again.
                    if !self.wait_applied(revision, FEED_WAIT) {
                        self.catch_up()?;
                    }
                }
            }
        }
        Err(ControlError::conflict(
            "busy",
            "the documents this change reads kept changing under concurrent writers; try again",
        ))
    }

    /// What an operation may use besides the state: the caller, the time, the secret, the code lifetime.
    fn ctx<'a>(&'a self, caller: &'a Caller) -> Ctx<'a> {
        Ctx {
            actor: &caller.actor,
            if_match: caller.if_match,
            now: unix_now(),
            secret: &self.secret,
            code_ttl: self.code_ttl,
        }
    }

    fn try_execute(
        &self,
        caller: &Caller,
        op: &impl Fn(&ControlState, &Ctx) -> Result<Plan, ControlError>,
    ) -> Result<Attempt, ControlError> {
        let started = Instant::now();
        let ctx = self.ctx(caller);
        // Planned before the writer lock: a bulk change (an import) parses its input and writes its records, under
        // keys nothing reads yet, without holding up other writers; only its switch waits for the lock.
        let mut base = self.current();
        let mut plan = match planned(caller, &base, &ctx, op)? {
            Ok(plan) => plan,
            Err(replayed) => return Ok(replayed),
        };
        let staged_ops = std::mem::take(&mut plan.staged);
        let staged = stage::write(self.store.as_ref(), &staged_ops)?;
        // A panic inside a write only ever touched a copy of the state, so a poisoned lock is safe to take over.
        let compiler = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let locked = Instant::now();
        let current = self.current();
        if staged_ops.is_empty() && current.revision != base.revision {
            // Others committed meanwhile: a small change is simply planned again on what is there now. (A bulk
            // one keeps its plan: the guards below hold every key it read to the revision it read.)
            base = current.clone();
            plan = match planned(caller, &base, &ctx, op)? {
                Ok(plan) => plan,
                Err(replayed) => return Ok(replayed),
            };
            if !plan.staged.is_empty() {
                return Ok(Attempt::Stale { revision: current.revision });
            }
        }
        if plan.ops.is_empty() && staged_ops.is_empty() {
            return Ok(done(plan, current.revision));
        }
        // The staged records are in the store at their own revisions already: the commit comes after them (and
        // after whatever others committed meanwhile, which `current` holds).
        let provisional = current.revision.max(staged.last_revision()) + 1;
        let trial = self.trial(caller, &ctx, &base, &current, &mut plan, staged.changes(), provisional)?;
        let revision = match self.commit(&plan, &trial, staged, current.revision)? {
            Ok(revision) => revision,
            Err(stale) => return Ok(stale),
        };
        let bulk = staged_ops.len();
        let Some(compiler) = self.await_own_commit(compiler, revision, provisional, bulk) else {
            return Ok(done(plan, revision));
        };
        let compiling = Instant::now();
        self.publish_committed(compiler, &current, trial, revision, provisional, started)?;
        tracing::debug!(
            revision,
            staged = bulk,
            before_lock_ms = (locked - started).as_secs_f64() * 1e3,
            locked_ms = locked.elapsed().as_secs_f64() * 1e3,
            compile_ms = compiling.elapsed().as_secs_f64() * 1e3,
            "change committed and published"
        );
        Ok(done(plan, revision))
    }

    /// Commits the plan in one transaction (the staged records stay when it may have committed). `Ok(Err(stale))`
    /// when a guard failed: another node changed what the plan read.
    fn commit(
        &self,
        plan: &Plan,
        trial: &Trial,
        staged: stage::Staged<'_>,
        current: u64,
    ) -> Result<Result<u64, Attempt>, ControlError> {
        let outcome = match stage::commit(self.store.as_ref(), &trial.compares, plan) {
            Err(e) if e.code() == "outcome_unknown" => {
                // The switch may have happened: the staged records may be live, so they stay.
                staged.keep();
                return Err(e);
            }
            other => other?,
        };
        match outcome {
            TxnOutcome::Committed { revision } => {
                staged.keep();
                Ok(Ok(revision))
            }
            TxnOutcome::Conflict { key, expected, actual } => {
                let guarded = trial.guards.iter().any(|g| g.key == key) && !plan.compares.iter().any(|c| c.key == key);
                if guarded {
                    return Ok(Err(Attempt::Stale { revision: actual.max(current + 1) }));
                }
                Err(ControlError::stale(format!(
                    "{} is at revision {actual}, not {expected}: read it again and retry",
                    keys::describe(&key)
                )))
            }
        }
    }

    /// Tries the plan on a copy of `current` (with the staged records), settles the VPC owners' precedence, adds
    /// the audit entries, and validates the result; the compares the commit needs, the plan's and a guard per key.
    #[allow(clippy::too_many_arguments)]
    fn trial(
        &self,
        caller: &Caller,
        ctx: &Ctx,
        base: &ControlState,
        current: &ControlState,
        plan: &mut Plan,
        staged: Vec<Change>,
        provisional: u64,
    ) -> Result<Trial, ControlError> {
        let mut next = current.clone();
        let main: Vec<Op> = plan.ops.iter().chain(&plan.collect).cloned().collect();
        let mut trial = staged;
        trial.extend(changes_of(&main, current, provisional));
        let problems = next.apply(&trial);
        if !problems.is_empty() {
            // A document the model cannot read (a bad CIDR, an unknown site): the caller's input, refused whole.
            return Err(ControlError::InvalidState(problems));
        }
        precedence::resolve(current, &mut next, &caller.actor, plan, ctx.now, provisional)?;
        if let Some((action, target)) = &plan.audit {
            let accounts = audit::affected_accounts(&plan.ops, current, &next);
            let principal = caller.actor.principal(&current.state);
            let event = audit::Event {
                actor: &caller.actor,
                principal: &principal,
                remote: &caller.remote,
                action,
                target,
                refused: None,
            };
            plan.ops.extend(event.ops(&accounts, unix_millis())?);
        }
        let guards = guards_of(plan, base);
        let changed = next.take_dirty();
        validate::validate_changed(&next.state, Some(&changed)).map_err(|p| ControlError::InvalidState(p.0))?;
        let mut compares = plan.compares.clone();
        compares.extend(guards.iter().cloned());
        Ok(Trial { next, changed, compares, guards })
    }

    /// When other nodes committed since the plan (a shared store), the feed brings their changes and ours, in
    /// order: waiting for it (without the writer lock, which the feed needs) is cheaper than reading the history
    /// again. `None` when the feed brought our commit (it is published); otherwise the lock, to publish it here.
    fn await_own_commit<'l>(
        &'l self,
        compiler: MutexGuard<'l, Compiler>,
        revision: u64,
        provisional: u64,
        bulk: usize,
    ) -> Option<MutexGuard<'l, Compiler>> {
        if revision == provisional || !self.following.load(std::sync::atomic::Ordering::Relaxed) {
            return Some(compiler);
        }
        drop(compiler);
        // A bulk change is hundreds of transactions for the feed to bring: give it time in proportion.
        let wait = FEED_WAIT + Duration::from_millis(bulk as u64 / 4);
        let done = self.wait_applied(revision, wait);
        let compiler = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (!(done || self.current().revision >= revision)).then_some(compiler)
    }

    /// Publishes a committed change: the trial's state when nothing else landed in between; otherwise the state
    /// rebuilt from the change history, which holds ours too (never the provisional copy).
    fn publish_committed(
        &self,
        mut compiler: MutexGuard<'_, Compiler>,
        current: &Arc<ControlState>,
        trial: Trial,
        revision: u64,
        provisional: u64,
        started: Instant,
    ) -> Result<(), ControlError> {
        let latest = self.current();
        let (next, changed) = if revision != provisional || latest.revision != current.revision {
            let mut next = (*latest).clone();
            let changes = self.store.changes_since(latest.revision, usize::MAX).map_err(|e| {
                ControlError::internal(format!("committed at revision {revision}, but reading it back failed: {e}"))
            })?;
            for problem in next.apply(&changes) {
                tracing::error!(problem, "a stored document was skipped");
            }
            let changed = next.take_dirty();
            (next, changed)
        } else {
            (trial.next, trial.changed)
        };
        self.publish(&mut compiler, next, Some(&changed), started);
        Ok(())
    }
}

/// The answer to a done write: the plan's response with the revision it is at.
/// The store key of the caller's idempotency key: per account (the operator has its own).
fn idempotency_key(caller: &Caller, idempotency: &super::Idempotency) -> String {
    let scope = match caller.actor.tenant() {
        Ok(tenant) => tenant.account.0.clone(),
        Err(_) => "operator".to_string(),
    };
    keys::idempotency(&scope, &idempotency.key)
}

/// A change already made under the caller's `Idempotency-Key`: its first answer, with the revision it was
/// committed at. A key already used for another request is refused.
fn replay(caller: &Caller, base: &ControlState) -> Result<Option<Attempt>, ControlError> {
    let Some(idempotency) = &caller.idempotency else { return Ok(None) };
    let key = idempotency_key(caller, idempotency);
    let Some(doc) = base.idempotency.get(&key) else { return Ok(None) };
    if doc.request != idempotency.request {
        return Err(ControlError::conflict(
            "idempotency_key_reused",
            format!(
                "Idempotency-Key {} was used for {}; use a new key for another request",
                idempotency.key, doc.request
            ),
        ));
    }
    let plan = Plan { response: doc.response.clone(), ..Plan::default() };
    Ok(Some(done(plan, base.key_revision(&key))))
}

/// The operation's plan; with an `Idempotency-Key`, its answer is stored in the same transaction (the key's
/// absence is guarded like every key written, so two racing retries commit once). `Err(done)`: the key's change
/// was made already, and `done` is its first answer.
fn planned(
    caller: &Caller,
    base: &ControlState,
    ctx: &Ctx,
    op: &impl Fn(&ControlState, &Ctx) -> Result<Plan, ControlError>,
) -> Result<Result<Plan, Attempt>, ControlError> {
    if let Some(replayed) = replay(caller, base)? {
        return Ok(Err(replayed));
    }
    let mut plan = op(base, ctx)?;
    if let Some(idempotency) = &caller.idempotency {
        if !plan.ops.is_empty() || !plan.staged.is_empty() {
            let doc = crate::control::docs::IdempotencyDoc {
                request: idempotency.request.clone(),
                response: plan.response.clone(),
                created: ctx.now,
            };
            plan.put(idempotency_key(caller, idempotency), &doc);
        }
    }
    Ok(Ok(plan))
}

fn done(plan: Plan, revision: u64) -> Attempt {
    let mut response = plan.response.clone();
    if let Value::Object(map) = &mut response {
        map.insert("revision".into(), Value::from(revision));
    }
    Attempt::Done(response, Box::new(plan))
}

/// A compare per key the plan writes (unless the plan compares it already): the key is still at the revision the
/// plan saw. Staged keys are fresh (a new generation) and need none; audit entries are new by construction.
fn guards_of(plan: &Plan, current: &ControlState) -> Vec<Compare> {
    let mut guards: Vec<Compare> = Vec::new();
    for op in &plan.ops {
        let key = match op {
            Op::Put { key, .. } | Op::Delete { key } => key,
            Op::DeletePrefix { .. } => continue,
        };
        if !keys::is_folded(key) {
            continue;
        }
        if plan.compares.iter().chain(&guards).any(|c| &c.key == key) {
            continue;
        }
        guards.push(Compare { key: key.clone(), mod_revision: current.key_revision(key) });
    }
    guards
}

/// The changes a list of ops makes, as the store would record them (DeletePrefix expands to the keys it hits).
pub(super) fn changes_of(ops: &[Op], current: &ControlState, revision: u64) -> Vec<Change> {
    let mut changes = Vec::new();
    for op in ops {
        match op {
            Op::Put { key, value } => changes.push(Change { revision, key: key.clone(), value: Some(value.clone()) }),
            Op::Delete { key } => changes.push(Change { revision, key: key.clone(), value: None }),
            Op::DeletePrefix { prefix } => {
                for key in current.keys_under(prefix) {
                    changes.push(Change { revision, key, value: None });
                }
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::control::docs::AccountDoc;
    use crate::control::ops::inventory::put_account;
    use crate::control::store::sqlite::SqliteStore;
    use crate::control::Idempotency;

    fn plane() -> ControlPlane {
        let server = crate::testing::state("", None).served;
        ControlPlane::open(Arc::new(SqliteStore::open_in_memory().expect("store")), server, vec![7; 32]).expect("plane")
    }

    fn account(uid: &str) -> AccountDoc {
        AccountDoc { uid: uid.into(), name: format!("a{uid}"), email: format!("r@a{uid}.example"), site: "intl".into() }
    }

    fn with_key(key: &str, request: &str) -> Caller {
        Caller { idempotency: Some(Idempotency::new(key, request.into()).expect("key")), ..Caller::operator() }
    }

    /// A retry with the same key gets the first answer and changes nothing; the key for another request is
    /// refused; a day later the key is gone.
    #[test]
    fn a_retried_change_is_made_once() {
        let plane = plane();
        let put = |caller: &Caller, uid: &str| {
            let doc = account(uid);
            plane.execute(caller, |c, ctx| put_account(c, ctx, doc.clone())).map(|(answer, _)| answer)
        };
        let first = put(&with_key("k1", "POST /v1/operator/accounts"), "9").expect("first");
        let revision = plane.current().revision;
        let again = put(&with_key("k1", "POST /v1/operator/accounts"), "9").expect("retry");
        assert_eq!(again, first, "the first answer, its revision included");
        assert_eq!(plane.current().revision, revision, "nothing was written again");
        let reused = put(&with_key("k1", "DELETE /v1/operator/accounts/9"), "9").expect_err("another request");
        assert_eq!(reused.code(), "idempotency_key_reused");
        assert!(Idempotency::new("bad key", String::new()).is_err());
        assert_eq!(plane.expire_idempotency(unix_now()).expect("expire"), 0, "kept for a day");
        let later = unix_now() + Idempotency::KEEP_SECS + 1;
        assert_eq!(plane.expire_idempotency(later).expect("expire"), 1);
        assert!(plane.current().idempotency.is_empty());
        let after = put(&with_key("k1", "POST /v1/operator/accounts"), "9").expect("a new change");
        assert_ne!(after["revision"], first["revision"], "an expired key makes the change again");
    }
}
