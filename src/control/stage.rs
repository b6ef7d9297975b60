//! Committing a plan within the store's transaction limits while keeping it atomic.
//!
//! etcd takes at most 128 operations and about 1.5 MiB in one transaction; a zone import of 100,000 records is far
//! beyond. Such a change is written as a new *record generation*: the records go under fresh ids
//! (`<generation>~<id>`) that no zone serves yet, in as many transactions as needed (`Plan::staged`); then one small
//! transaction with the plan's compares switches the zone document to the generation (`Plan::ops`) — the moment
//! the change becomes visible, all at once; then the previous generation is deleted (`Plan::collect`). A store
//! without limits takes all three in one transaction.
//!
//! If the switch loses a race (a compare fails), the staged records are deleted again. If the process dies midway,
//! what it staged is unreachable and the next bulk change of that zone deletes it.

use super::{store_error, ApiError, Plan};
use crate::store::{Compare, Op, Store, TxnOutcome};

/// Commits `plan` (with `compares` on its main transaction). The outcome is the main transaction's.
pub fn commit(store: &dyn Store, compares: &[Compare], plan: &Plan) -> Result<TxnOutcome, ApiError> {
    let Some((max_ops, max_bytes)) = store.txn_limits() else {
        let all: Vec<Op> = plan.staged.iter().chain(&plan.ops).chain(&plan.collect).cloned().collect();
        return store.txn(compares, &all).map_err(store_error);
    };
    for chunk in chunks(&plan.staged, max_ops, max_bytes) {
        if let Err(e) = store.txn(&[], chunk) {
            discard(store, &plan.staged, max_ops, max_bytes);
            return Err(store_error(e));
        }
    }
    let outcome = match store.txn(compares, &plan.ops) {
        Ok(outcome) => outcome,
        Err(e @ crate::store::StoreError::Unknown { .. }) => {
            // The switch may have happened: the staged records may be live, so they stay.
            return Err(store_error(e));
        }
        Err(e) => {
            discard(store, &plan.staged, max_ops, max_bytes);
            return Err(store_error(e));
        }
    };
    match outcome {
        TxnOutcome::Committed { .. } => {
            for chunk in chunks(&plan.collect, max_ops, max_bytes) {
                if let Err(e) = store.txn(&[], chunk) {
                    // Unreachable already; the next bulk change of the zone deletes what is left.
                    tracing::warn!(error = %e, "deleting a replaced record generation failed; it will be retried");
                    break;
                }
            }
        }
        TxnOutcome::Conflict { .. } => discard(store, &plan.staged, max_ops, max_bytes),
    }
    Ok(outcome)
}

/// Deletes staged keys again (best effort: they are unreachable either way).
fn discard(store: &dyn Store, staged: &[Op], max_ops: usize, max_bytes: usize) {
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
pub fn chunks(ops: &[Op], max_ops: usize, max_bytes: usize) -> Vec<&[Op]> {
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
