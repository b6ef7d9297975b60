//! The one way a state becomes the served snapshot: compile, stamp, swap, and hand back the memory a full compile
//! freed. File reloads, the control plane's writes, the store feed and a resync all go through [`SnapshotCell`];
//! the query path only ever `load`s it, without a lock.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::{ArcSwap, Guard};

use crate::model::compile::Compiler;
use crate::model::snapshot::Snapshot;
use crate::model::state::{Changes, State};

/// The snapshot being served. Clones share it; readers `load` it per request, the one writer `publish`es.
#[derive(Clone)]
pub struct SnapshotCell(Arc<ArcSwap<Snapshot>>);

impl SnapshotCell {
    /// Compiles the first snapshot of `state`; `started` is when the work that led to it began.
    pub fn first(compiler: &mut Compiler, state: &State, started: Instant) -> SnapshotCell {
        let cell = SnapshotCell(Arc::new(ArcSwap::from_pointee(stamped(compiler, state, None, started))));
        release_free_memory();
        cell
    }

    /// A cell holding `snapshot` as it is (tests and benchmarks).
    pub fn holding(snapshot: impl Into<Arc<Snapshot>>) -> SnapshotCell {
        SnapshotCell(Arc::new(ArcSwap::new(snapshot.into())))
    }

    /// The snapshot being served, for the length of one request.
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.0.load()
    }

    /// The snapshot being served, to keep.
    pub(crate) fn load_full(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Compiles `state` (patching what `changed` names; everything when `None`), stamps how long the change took
    /// since `started`, and swaps it in. After a full compile, which frees the previous tables, the freed memory
    /// goes back to the system. Returns the snapshot now served.
    pub fn publish(
        &self,
        compiler: &mut Compiler,
        state: &State,
        changed: Option<&Changes>,
        started: Instant,
    ) -> Arc<Snapshot> {
        let snapshot = Arc::new(stamped(compiler, state, changed, started));
        let previous = self.0.swap(snapshot.clone());
        if changed.is_none() {
            drop(previous);
            release_free_memory();
        }
        snapshot
    }

    /// Swaps in a snapshot built elsewhere (tests and benchmarks).
    pub fn replace(&self, snapshot: Arc<Snapshot>) {
        self.0.store(snapshot);
    }
}

fn stamped(compiler: &mut Compiler, state: &State, changed: Option<&Changes>, started: Instant) -> Snapshot {
    let mut snapshot = compiler.compile_changed(state, changed);
    snapshot.set_change_seconds(started.elapsed().as_secs_f64());
    snapshot
}

/// Hands freed memory (file text, parse trees, the previous tables) back to the system. glibc keeps freed memory
/// for reuse, so without this the peak of a load would stay resident until the next one.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_swaps_in_a_stamped_newer_generation() {
        let state =
            crate::testing::state("[[zones]]\nname = \"a.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n", None);
        let mut compiler = Compiler::default();
        let started = Instant::now();
        let cell = SnapshotCell::first(&mut compiler, &state, started);
        let reader = cell.clone();
        let first = reader.load_full();
        assert!(first.change_seconds() >= 0.0);
        let next = cell.publish(&mut compiler, &state, None, Instant::now());
        assert_eq!(next.generation(), first.generation() + 1);
        assert_eq!(reader.load().generation(), next.generation(), "every clone sees the new snapshot");
        assert_eq!(first.zones().len(), next.zones().len(), "the old snapshot stays whole for whoever holds it");
    }
}
