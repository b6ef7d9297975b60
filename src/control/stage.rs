//! Committing a plan within the store's transaction limits while keeping it atomic.
//!
//! etcd takes at most 128 operations and about 1.5 MiB in one transaction; a zone import of 100,000 records is far
//! beyond. Such a change is written as a new *record generation*: the records go under fresh ids
//! (`<generation>~<id>`) that no zone serves yet, in as many transactions as needed (`Plan::staged`); then one small
//! transaction with the plan's compares switches the zone document to the generation (`Plan::ops`) — the moment
//! the change becomes visible, all at once; then the previous generation is deleted (`Plan::collect`).
//!
//! Staged records are written before the writer lock is taken (in transactions of at most 1,000 operations on a
//! store without limits), so that a large import never holds up other writers. If the switch loses a race (a
//! compare fails) or the change is refused, the staged records are deleted again. If the process dies midway,
//! what it staged is unreachable and the next bulk change of that zone deletes it.

use super::{store_error, ControlError, Plan};
use crate::control::store::{Compare, Op, Store, TxnOutcome};

/// Staged writes go in transactions of at most this many operations on a store without limits of its own, so
/// that other writers of the store get their turn between them.
const STAGE_CHUNK: usize = 500;

/// The store's limits per transaction, or the chunking used for staged writes where it has none.
fn limits(store: &dyn Store) -> (usize, usize) {
    store.txn_limits().unwrap_or((STAGE_CHUNK, usize::MAX))
}

/// Staged records written ahead of their commit; deleted again when dropped, unless the commit kept them.
pub(crate) struct Staged<'s> {
    store: &'s dyn Store,
    ops: &'s [Op],
    /// The revision each transaction committed at, with how many of `ops` it took.
    written: Vec<(u64, usize)>,
    keep: bool,
}

impl Staged<'_> {
    /// The staged writes as the store recorded them, each at the revision of its transaction.
    pub(crate) fn changes(&self) -> Vec<crate::control::store::Change> {
        let mut changes = Vec::with_capacity(self.ops.len());
        let mut ops = self.ops.iter();
        for &(revision, n) in &self.written {
            for op in ops.by_ref().take(n) {
                if let Op::Put { key, value } = op {
                    changes.push(crate::control::store::Change {
                        revision,
                        key: key.clone(),
                        value: Some(value.clone()),
                    });
                }
            }
        }
        changes
    }

    /// The revision of the last staged transaction.
    pub(crate) fn last_revision(&self) -> u64 {
        self.written.last().map_or(0, |(revision, _)| *revision)
    }

    /// The commit that makes them reachable went through (or may have: an unknown outcome keeps them too).
    pub(crate) fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if !self.keep {
            discard(self.store, self.ops);
        }
    }
}

/// Writes a plan's staged records (fresh keys that nothing reads yet) in short transactions. Done before the
/// writer lock is taken, so a large import never holds up other writers while its records go in.
pub(crate) fn write<'s>(store: &'s dyn Store, staged: &'s [Op]) -> Result<Staged<'s>, ControlError> {
    let (max_ops, max_bytes) = limits(store);
    let mut written = Staged { store, ops: staged, written: Vec::new(), keep: false };
    for chunk in chunks(staged, max_ops, max_bytes) {
        // On failure, `written` deletes what went in.
        match store.txn(&[], chunk).map_err(store_error)? {
            TxnOutcome::Committed { revision } => written.written.push((revision, chunk.len())),
            TxnOutcome::Conflict { key, .. } => {
                return Err(ControlError::internal(format!("staging {key} met a compare it did not ask for")))
            }
        }
    }
    Ok(written)
}

/// Commits `plan`'s main transaction (with `compares`), then deletes what it made unreachable (`collect`); its
/// staged records must be written already ([`write`]). The outcome is the main transaction's.
pub(crate) fn commit(store: &dyn Store, compares: &[Compare], plan: &Plan) -> Result<TxnOutcome, ControlError> {
    let Some((max_ops, max_bytes)) = store.txn_limits() else {
        let all: Vec<Op> = plan.ops.iter().chain(&plan.collect).cloned().collect();
        return store.txn(compares, &all).map_err(store_error);
    };
    let outcome = store.txn(compares, &plan.ops).map_err(store_error)?;
    if let TxnOutcome::Committed { .. } = outcome {
        for chunk in chunks(&plan.collect, max_ops, max_bytes) {
            if let Err(e) = store.txn(&[], chunk) {
                // Unreachable already; the next bulk change of the zone deletes what is left.
                tracing::warn!(error = %e, "deleting a replaced record generation failed; it will be retried");
                break;
            }
        }
    }
    Ok(outcome)
}

/// Deletes staged keys again (best effort: they are unreachable either way).
fn discard(store: &dyn Store, staged: &[Op]) {
    let (max_ops, max_bytes) = limits(store);
    let deletes: Vec<Op> = staged
        .iter()
        .filter_map(|op| match op {
            Op::Put { key, .. } => Some(Op::Delete { key: key.clone() }),
            _ => None,
        })
        .collect();
    for chunk in chunks(&deletes, max_ops, max_bytes) {
        if store.txn(&[], chunk).is_err() {
            return;
        }
    }
}

/// Splits `ops` into runs of at most `max_ops` operations and about `max_bytes` bytes (an op larger than
/// `max_bytes` alone is a run of its own; the store refuses it with a clear error).
pub(crate) fn chunks(ops: &[Op], max_ops: usize, max_bytes: usize) -> Vec<&[Op]> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, op) in ops.iter().enumerate() {
        let size = op_bytes(op);
        if i > start && (i - start >= max_ops || bytes + size > max_bytes) {
            runs.push(&ops[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < ops.len() {
        runs.push(&ops[start..]);
    }
    runs
}

/// What an op costs in a request, roughly (key, value and framing).
fn op_bytes(op: &Op) -> usize {
    match op {
        Op::Put { key, value } => key.len() + value.len() + 64,
        Op::Delete { key } | Op::DeletePrefix { prefix: key } => key.len() + 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(n: usize, size: usize) -> Vec<Op> {
        (0..n).map(|i| Op::Put { key: format!("k{i}"), value: vec![0; size] }).collect()
    }

    #[test]
    fn chunks_respect_both_limits_and_keep_order() {
        let ops = put(300, 10);
        let runs = chunks(&ops, 128, 1 << 20);
        assert_eq!(runs.iter().map(|r| r.len()).collect::<Vec<_>>(), [128, 128, 44]);
        let ops = put(10, 1000);
        let runs = chunks(&ops, 128, 3000);
        assert!(runs.iter().all(|r| r.iter().map(op_bytes).sum::<usize>() <= 3000));
        assert_eq!(runs.concat(), ops);
    }

    #[test]
    fn an_oversized_op_is_a_run_of_its_own() {
        let ops = put(3, 5000);
        assert_eq!(chunks(&ops, 128, 1000).len(), 3);
        assert!(chunks(&[], 128, 1000).is_empty());
    }
}
