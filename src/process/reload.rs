//! The change path for file-based state: config/zone files → load → validate → compile → swap.
//!
//! A reload is triggered by SIGHUP or by a change of the config file or of a zone file (polled by size and
//! modification time). An invalid new state is logged with its whole error chain and the old snapshot keeps
//! serving. Compile work runs on a blocking thread so that the query path's runtime threads never wait for it;
//! readers keep loading the old snapshot until the single `store` publishes the new one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::model::compile::Compiler;
use crate::model::publish::SnapshotCell;
use crate::model::snapshot::Snapshot;
use crate::model::state::State;
use crate::model::validate;
use crate::process::config;
use crate::settings::Settings;
use anyhow::Context;

/// Loads and validates the configuration at `path`: the one function `serve`, `check` and `explain` share.
pub fn load_valid(path: &Path, previous: Option<&State>) -> anyhow::Result<config::Loaded> {
    let loaded = config::load(path, previous)?;
    validate::validate(&loaded.state).with_context(|| format!("{}: invalid configuration", path.display()))?;
    Ok(loaded)
}

/// A file's identity for change detection; `None` when it cannot be read.
type Fingerprint = Option<(u64, SystemTime)>;

fn fingerprint(path: &Path) -> Fingerprint {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Owns the served state and the compiler; publishes each new snapshot.
pub struct Reloader {
    config_path: PathBuf,
    /// The settings of the last load, to tell what a reload cannot apply.
    settings: Settings,
    state: State,
    compiler: Compiler,
    watched: Vec<(PathBuf, Fingerprint)>,
    /// Fingerprints seen changed at the last poll; the reload waits until they hold still.
    settling: Option<Vec<Fingerprint>>,
    published: SnapshotCell,
}

impl Reloader {
    /// Loads, validates and compiles the first snapshot; an error here means the server cannot start.
    pub fn start(config_path: &Path) -> anyhow::Result<Reloader> {
        Ok(Reloader::from_loaded(config_path, load_valid(config_path, None)?))
    }

    /// Compiles the first snapshot from a configuration already loaded and validated from `config_path`.
    pub(crate) fn from_loaded(config_path: &Path, loaded: config::Loaded) -> Reloader {
        let mut compiler = Compiler::default();
        let published = SnapshotCell::first(&mut compiler, &loaded.state, Instant::now());
        log_counts(&published.load(), "loaded");
        Reloader {
            config_path: config_path.to_path_buf(),
            settings: loaded.settings,
            state: loaded.state,
            compiler,
            watched: fingerprints(loaded.watched),
            settling: None,
            published,
        }
    }

    pub fn published(&self) -> SnapshotCell {
        self.published.clone()
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// True when a watched file changed since the last load attempt.
    ///
    /// A change counts only once it has held still for one poll: a file caught in the middle of being rewritten in
    /// place (truncated, not yet written) must never be loaded as the new state.
    pub(crate) fn files_changed(&mut self) -> bool {
        let now: Vec<Fingerprint> = self.watched.iter().map(|(path, _)| fingerprint(path)).collect();
        if self.watched.iter().zip(&now).all(|((_, loaded), current)| loaded == current) {
            self.settling = None;
            return false;
        }
        if self.settling.as_ref() == Some(&now) {
            return true;
        }
        self.settling = Some(now);
        false
    }

    /// Rebuilds from the files and swaps; on error the current snapshot stays.
    pub fn reload(&mut self, why: &str) {
        let started = Instant::now();
        self.settling = None;
        let before = fingerprints(self.watched.iter().map(|(p, _)| p.clone()).collect());
        match load_valid(&self.config_path, Some(&self.state)) {
            Ok(loaded) => {
                let after = fingerprints(loaded.watched);
                // A file rewritten while we read it may have been read half-written: serve nothing of it, and let
                // the next poll (which sees the change) load it again.
                let moved = before.iter().any(|(p, fp)| after.iter().any(|(q, now)| p == q && fp != now));
                if moved {
                    tracing::info!(why, "files changed while being read; reloading at the next poll");
                    return;
                }
                self.watched = after;
                let restart = loaded.settings.needs_restart(&self.settings);
                if !restart.is_empty() {
                    tracing::warn!(
                        changed = restart.join("; "),
                        "settings changed that take effect after a restart (the served state applies at once)"
                    );
                }
                let changes = StateChanges::between(&self.state, &loaded.state);
                // The previous state goes first, so that the trim after the compile hands its memory back too.
                self.state = loaded.state;
                self.settings = loaded.settings;
                let snapshot = self.published.publish(&mut self.compiler, &self.state, None, started);
                let generation = snapshot.generation();
                log_counts(&snapshot, "reloaded");
                tracing::info!(
                    why,
                    generation,
                    elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                    changes = %changes,
                    "new snapshot published"
                );
            }
            Err(e) => {
                // Remember what we saw so one broken edit is reported once, not on every poll.
                self.watched = fingerprints(self.watched.iter().map(|(p, _)| p.clone()).collect());
                tracing::error!(why, error = format!("{e:#}"), "reload failed; still serving the previous snapshot");
            }
        }
    }
}

fn fingerprints(paths: Vec<PathBuf>) -> Vec<(PathBuf, Fingerprint)> {
    paths
        .into_iter()
        .map(|p| {
            let fp = fingerprint(&p);
            (p, fp)
        })
        .collect()
}

/// What a reload changed, for its log line: zones added, removed and changed (by id), VPCs added, removed and
/// changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct StateChanges {
    pub zones_added: Vec<String>,
    pub zones_removed: Vec<String>,
    pub zones_changed: Vec<String>,
    pub vpcs_added: Vec<String>,
    pub vpcs_removed: Vec<String>,
    pub vpcs_changed: Vec<String>,
}

impl StateChanges {
    pub(crate) fn between(old: &crate::model::state::State, new: &crate::model::state::State) -> StateChanges {
        let mut changes = StateChanges::default();
        for (id, zone) in &new.zones {
            match old.zones.get(id) {
                None => changes.zones_added.push(id.0.clone()),
                Some(before) if before.revision != zone.revision || before.scope != zone.scope => {
                    changes.zones_changed.push(id.0.clone())
                }
                Some(_) => {}
            }
        }
        changes.zones_removed =
            old.zones.keys().filter(|id| !new.zones.contains_key(*id)).map(|id| id.0.clone()).collect();
        for (id, vpc) in &new.vpcs {
            match old.vpcs.get(id) {
                None => changes.vpcs_added.push(id.to_string()),
                Some(before) if before != vpc => changes.vpcs_changed.push(id.to_string()),
                Some(_) => {}
            }
        }
        changes.vpcs_removed =
            old.vpcs.keys().filter(|id| !new.vpcs.contains_key(*id)).map(|id| id.to_string()).collect();
        changes
    }
}

/// `zones +a +b ~c -d; vpcs +v`, naming at most eight of each kind (then `+N more`); `none` when nothing changed.
impl std::fmt::Display for StateChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (what, lists) in [
            ("zones", [(&self.zones_added, '+'), (&self.zones_changed, '~'), (&self.zones_removed, '-')]),
            ("vpcs", [(&self.vpcs_added, '+'), (&self.vpcs_changed, '~'), (&self.vpcs_removed, '-')]),
        ] {
            let mut items = Vec::new();
            for (list, mark) in lists {
                items.extend(list.iter().take(8).map(|id| format!("{mark}{id}")));
                if list.len() > 8 {
                    items.push(format!("{mark}{} more", list.len() - 8));
                }
            }
            if !items.is_empty() {
                parts.push(format!("{what} {}", items.join(" ")));
            }
        }
        if parts.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&parts.join("; "))
    }
}

fn log_counts(snapshot: &Snapshot, what: &str) {
    let records: usize = snapshot.zones().iter().map(|z| z.record_count()).sum();
    tracing::info!(
        generation = snapshot.generation(),
        revision = snapshot.revision(),
        vpcs = snapshot.vpcs().len(),
        zones = snapshot.zones().len(),
        records,
        "state {what}"
    );
}

/// Catches SIGHUP for [`watch`]. Installed before the server says it is ready: a SIGHUP that arrived before the
/// handler would kill the process (the default action).
pub(crate) fn catch_hangup() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("cannot install the SIGHUP handler")
}

/// Reloads on SIGHUP and on file changes (polled every `interval`) until the process ends.
pub async fn watch(
    mut reloader: Reloader,
    mut hangup: tokio::signal::unix::Signal,
    interval: Duration,
) -> anyhow::Result<()> {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            _ = hangup.recv() => "SIGHUP",
            _ = ticks.tick() => {
                if !reloader.files_changed() {
                    continue;
                }
                "file change"
            }
        };
        reloader = tokio::task::spawn_blocking(move || {
            reloader.reload(why);
            reloader
        })
        .await
        .context("the reload thread panicked")?;
    }
}

#[cfg(test)]
mod change_tests {
    use super::*;
    use crate::testing;

    #[test]
    fn reload_changes_name_zones_and_vpcs() {
        let a = "[[zones]]\nname = \"a.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n";
        let b = "[[zones]]\nname = \"b.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n";
        let www = "records = [{ name = \"www\", type = \"A\", data = \"10.0.0.1\" }]\n";
        let old = testing::state(&format!("{a}{b}"), None);
        let same = testing::state(&format!("{a}{b}"), Some(&old));
        assert_eq!(StateChanges::between(&old, &same).to_string(), "none");
        let c = "[[zones]]\nname = \"c.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n";
        let new = testing::state(&format!("{a}{www}{c}"), Some(&old));
        let changes = StateChanges::between(&old, &new);
        assert_eq!(changes.to_string(), "zones +1/c.internal. ~1/a.internal. -1/b.internal.");
    }
}
