//! What etcd accepts of a transaction (each key named once, within its limits) and its revisions (`i64`).

use crate::control::store::{Op, StoreError};

/// The ops with the same effect that etcd accepts: it refuses a transaction that names a key twice, so only the last
/// write of each key is kept (the change feed then shows one change for it, not each step). A write inside a range
/// deleted earlier in the same transaction cannot be expressed and is refused.
pub(super) fn coalesce(ops: &[Op]) -> Result<Vec<Op>, StoreError> {
    let mut out: Vec<Op> = Vec::with_capacity(ops.len());
    let mut last: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for op in ops {
        match op {
            Op::Put { key, .. } | Op::Delete { key } => {
                if key.is_empty() {
                    return Err(StoreError::Invalid("an operation names an empty key".into()));
                }
                let covered =
                    out.iter().any(|o| matches!(o, Op::DeletePrefix { prefix } if key.starts_with(prefix.as_str())));
                if covered {
                    return Err(StoreError::Invalid(format!(
                        "{key} is written after a prefix delete that covers it in the same transaction (etcd refuses it)"
                    )));
                }
                if let Some(&i) = last.get(key.as_str()) {
                    out[i] = op.clone();
                } else {
                    last.insert(key.clone(), out.len());
                    out.push(op.clone());
                }
            }
            Op::DeletePrefix { prefix } => {
                if prefix.is_empty() {
                    return Err(StoreError::Invalid("a prefix delete needs a non-empty prefix".into()));
                }
                // Earlier writes under the prefix are deleted by it anyway.
                let mut kept = Vec::with_capacity(out.len() + 1);
                for o in out.drain(..) {
                    let under = match &o {
                        Op::Put { key, .. } | Op::Delete { key } => key.starts_with(prefix.as_str()),
                        Op::DeletePrefix { prefix: p } => p.starts_with(prefix.as_str()),
                    };
                    if !under {
                        kept.push(o);
                    }
                }
                out = kept;
                out.push(op.clone());
                last = out
                    .iter()
                    .enumerate()
                    .filter_map(|(i, o)| match o {
                        Op::Put { key, .. } | Op::Delete { key } => Some((key.clone(), i)),
                        Op::DeletePrefix { .. } => None,
                    })
                    .collect();
            }
        }
    }
    Ok(out)
}

pub(super) fn revision_of(revision: i64) -> Result<u64, StoreError> {
    u64::try_from(revision).map_err(|_| StoreError::Corrupt(format!("negative revision {revision}")))
}

pub(super) fn to_etcd_revision(revision: u64) -> Result<i64, StoreError> {
    i64::try_from(revision).map_err(|_| StoreError::Invalid(format!("revision {revision} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> Op {
        Op::Put { key: key.into(), value: key.as_bytes().to_vec() }
    }

    #[test]
    fn coalesce_keeps_each_keys_last_write_in_first_position() {
        let ops = [put("a"), put("b"), Op::Delete { key: "a".into() }, put("c")];
        assert_eq!(coalesce(&ops).unwrap(), [Op::Delete { key: "a".into() }, put("b"), put("c")]);
    }

    #[test]
    fn coalesce_drops_writes_a_later_prefix_delete_covers_and_refuses_the_reverse() {
        let ops = [put("r/1"), put("s"), Op::DeletePrefix { prefix: "r/".into() }];
        assert_eq!(coalesce(&ops).unwrap(), [put("s"), Op::DeletePrefix { prefix: "r/".into() }]);
        let ops = [Op::DeletePrefix { prefix: "r/".into() }, put("r/1")];
        assert!(matches!(coalesce(&ops), Err(StoreError::Invalid(_))));
        assert!(matches!(coalesce(&[put("")]), Err(StoreError::Invalid(_))));
        assert!(matches!(coalesce(&[Op::DeletePrefix { prefix: String::new() }]), Err(StoreError::Invalid(_))));
    }
}
