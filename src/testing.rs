//! Test fixtures shared by the unit tests: one account with one VPC, plus whatever zones a test adds.

use std::path::Path;

use crate::model::compile::Compiler;
use crate::model::snapshot::Snapshot;
use crate::model::state::State;

/// Account `1` (acme) and its VPC `v1` on 127.0.10.0/24, served on 127.0.0.1:53.
pub(crate) const ONE_VPC: &str = r#"
[server]
listen = ["127.0.0.1:53"]
[[accounts]]
uid = "1"
name = "acme"
email = "root@acme.example"
site = "intl"
[[vpcs]]
id = "v1"
account = "1"
cidrs = ["127.0.10.0/24"]
"#;

/// `ONE_VPC` plus `zones` (TOML `[[zones]]` tables), loaded and validated.
pub(crate) fn state(zones: &str, previous: Option<&State>) -> State {
    let text = format!("{ONE_VPC}{zones}");
    let loaded =
        crate::process::config::from_str(&text, Path::new("test.toml"), Path::new("."), previous).expect("config");
    crate::model::validate::validate(&loaded.state).expect("valid test state");
    loaded.state
}

/// `ONE_VPC` plus `zones`, compiled.
pub(crate) fn snapshot(zones: &str) -> Snapshot {
    Compiler::default().compile(&state(zones, None))
}
