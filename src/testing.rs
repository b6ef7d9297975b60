//! Test fixtures shared by the unit tests: one account with one VPC, plus whatever zones a test adds.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::dataplane::metrics::{LocalMetrics, Metrics};
use crate::dataplane::respond::Outcome;
use crate::dns::Transport;
use crate::model::publish::SnapshotCell;

use crate::model::compile::Compiler;
use crate::model::snapshot::Snapshot;
use crate::model::state::State;

/// An intl-site root account `uid` named `name` (`root@{name}.example`) with one VPC, `vpc` on `cidr`.
fn account(uid: &str, name: &str, vpc: &str, cidr: &str) -> String {
    format!(
        "[[accounts]]\nuid = \"{uid}\"\nname = \"{name}\"\nemail = \"root@{name}.example\"\nsite = \"intl\"\n\
         [[vpcs]]\nid = \"{vpc}\"\naccount = \"{uid}\"\ncidrs = [\"{cidr}\"]\n"
    )
}

/// Account `1` (acme) and its VPC `v1` on 127.0.10.0/24, served on 127.0.0.1:53.
fn one_vpc() -> String {
    format!("[server]\nlisten = [\"127.0.0.1:53\"]\n{}", account("1", "acme", "v1", "127.0.10.0/24"))
}

/// Account `2` (beta) and its VPC `vb` on 127.0.20.0/24, linked by acme: added to the one VPC by the tests of what
/// one account may do in another's VPC. Rule targets may be on loopback.
pub(crate) fn linked_beta() -> String {
    let resolver = "[resolver]\nallow_targets = [\"127.0.0.0/8\"]\n";
    format!("{resolver}{}[[links]]\naccount = \"1\"\nlinked = \"beta\"\n", account("2", "beta", "vb", "127.0.20.0/24"))
}

/// A `[[zones]]` table: `name` of `account`, scoped to `vpc`, with no records.
pub(crate) fn zone(account: &str, name: &str, vpc: &str) -> String {
    format!("[[zones]]\nname = \"{name}\"\naccount = \"{account}\"\nscope = [\"{vpc}\"]\n")
}

/// A `[[forward_rules]]` table: `id` of `account` sends `domain` to 127.0.0.53 from `vpc`.
pub(crate) fn rule(account: &str, id: &str, domain: &str, vpc: &str) -> String {
    format!(
        "[[forward_rules]]\nid = \"{id}\"\naccount = \"{account}\"\ndomain = \"{domain}\"\n\
         targets = [\"127.0.0.53\"]\nscope = [\"{vpc}\"]\n"
    )
}

/// The one VPC plus `extra`, loaded but not validated.
pub(crate) fn loaded(extra: &str) -> State {
    let text = format!("{}{extra}", one_vpc());
    crate::process::config::from_str(&text, Path::new("test.toml"), Path::new("."), None).expect("config").state
}

/// The one VPC plus `zones` (TOML `[[zones]]` tables), loaded and validated.
pub(crate) fn state(zones: &str, previous: Option<&State>) -> State {
    let text = format!("{}{zones}", one_vpc());
    let loaded =
        crate::process::config::from_str(&text, Path::new("test.toml"), Path::new("."), previous).expect("config");
    crate::model::validate::validate(&loaded.state).expect("valid test state");
    loaded.state
}

/// The one VPC plus `zones`, compiled.
pub(crate) fn snapshot(zones: &str) -> Snapshot {
    Compiler::default().compile(&state(zones, None))
}

/// Test fixture: zone `t.internal.` in VPC `v1`, and counters that have counted one answer from it over UDP (flushed;
/// the local counters stay open for more).
pub(crate) fn one_answer_counted() -> (SnapshotCell, Arc<Metrics>, LocalMetrics) {
    let zone = "[[zones]]\nname = \"t.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n";
    let snapshot = Arc::new(snapshot(zone));
    let published = SnapshotCell::holding(snapshot.clone());
    let metrics = Arc::new(Metrics::new(published.clone()));
    let mut local = LocalMetrics::new(metrics.clone());
    local.record(&snapshot, &Outcome::from_first_zone(), Transport::Udp, Duration::from_micros(20));
    local.flush();
    (published, metrics, local)
}
