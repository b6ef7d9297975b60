//! The TOML configuration: the file into the process's [`Settings`] and the served [`State`].
//!
//! Only this module knows that TOML exists. `raw` is the file's shape (unknown keys are errors, so typos never pass
//! silently); `settings` builds the process settings with the defaults of `crate::settings`; `state` reads zone
//! files and resolves link names, and leaves every cross-item rule to `validate`, which checks the state model and
//! not the file. All problems are collected, so one load reports every one of them.

mod raw;
mod settings;
mod state;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::dns::zonefile;
use crate::model::state::State;
use crate::settings::Settings;
use raw::RawConfig;

pub use state::resolve_root_account;

/// A configuration that could not be turned into a state. Each message names the offending item; the
/// `Display` form starts with the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{path}: {}", .problems.join("\n  "))]
    Invalid { path: PathBuf, problems: Vec<String> },
    #[error(transparent)]
    ZoneFile(#[from] zonefile::ZoneFileError),
}

/// A loaded configuration: the process settings, the served state, and the files whose change should trigger a
/// reload.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// In managed mode (`settings.control` set) the state comes from the store and this one holds no accounts,
    /// VPCs or zones.
    pub state: State,
    pub watched: Vec<PathBuf>,
}

/// Reads the configuration at `path` into a state. `previous` (the state being served) lets unchanged zones keep
/// their revision, so their SOA serial stays put and their compiled tables are reused.
pub fn load(path: &Path, previous: Option<&State>) -> Result<Loaded, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    // As with zone files: an empty file is most likely being rewritten in place, never a configuration to serve.
    if text.trim().is_empty() {
        return Err(ConfigError::Toml { path: path.to_path_buf(), message: "the configuration file is empty".into() });
    }
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
    from_str(&text, path, &base, previous)
}

/// Parses configuration text; zone files are resolved against `base` (the config file's directory).
pub fn from_str(text: &str, path: &Path, base: &Path, previous: Option<&State>) -> Result<Loaded, ConfigError> {
    let raw: RawConfig = toml::from_str(text)
        .map_err(|e| ConfigError::Toml { path: path.to_path_buf(), message: e.to_string().trim_end().to_string() })?;
    let mut builder = Builder {
        problems: Vec::new(),
        base,
        previous,
        revision: next_revision(previous),
        watched: vec![path.to_path_buf()],
    };
    let settings = builder.settings(&raw);
    let declares_state = !(raw.accounts.is_empty()
        && raw.users.is_empty()
        && raw.vpcs.is_empty()
        && raw.links.is_empty()
        && raw.zones.is_empty()
        && raw.forward_rules.is_empty());
    if settings.control.is_some() && declares_state {
        builder.problems.push(
            "with [store] the accounts, VPCs, links, zones and rules live in the store: remove them from this file \
             and load them with `vpcdns operator apply`"
                .into(),
        );
    }
    let state = builder.state(raw, settings.served.clone())?;
    // Every link in a file is created by loading it.
    for link in &state.links {
        if let Err(problem) = crate::model::validate::check_new_link(&state, &link.account, &link.linked) {
            builder.problems.push(problem);
        }
    }
    if builder.problems.is_empty() {
        Ok(Loaded { settings, state, watched: builder.watched })
    } else {
        Err(ConfigError::Invalid { path: path.to_path_buf(), problems: builder.problems })
    }
}

/// Parses a state file (the configuration's schema without `[store]`, zone records inline) sent to the admin API
/// or the operator CLI: it may not read any file.
pub(crate) fn parse_state_file(text: &str) -> Result<State, String> {
    let loaded =
        from_str(text, Path::new("apply.toml"), Path::new("/nonexistent"), None).map_err(|e| format!("{e:#}"))?;
    if loaded.settings.control.is_some() {
        return Err("a state file has no [store] section".into());
    }
    Ok(loaded.state)
}

/// The load time in seconds, but always above the previous revision so serials grow on every change.
fn next_revision(previous: Option<&State>) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1);
    match previous {
        Some(prev) => now.max(prev.revision + 1),
        None => now,
    }
}

struct Builder<'a> {
    problems: Vec<String>,
    base: &'a Path,
    previous: Option<&'a State>,
    revision: u64,
    watched: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{self, StoreSettings};
    use std::time::Duration;

    fn parse(text: &str) -> Result<Loaded, ConfigError> {
        from_str(text, Path::new("t.toml"), Path::new("/etc/vpcdns"), None)
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            Err(e) => vec![e.to_string()],
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let loaded = parse("").expect("an empty configuration is valid");
        assert_eq!(loaded.settings, Settings::default());
        assert_eq!(loaded.state.served, settings::Served::default());
        assert!(loaded.state.zones.is_empty());
        assert_eq!(loaded.watched, vec![PathBuf::from("t.toml")]);
    }

    #[test]
    fn settings_are_read_with_their_defaults_filled_in() {
        let text = "[server]\nlisten = [\"127.0.0.1:53\", \"[::1]:53\"]\nnameserver = \"ns1.example.\"\n\
                    [limits]\nmax_rrset = 7\ntcp_idle_ms = 5\n\
                    [resolver]\nupstreams = [\"192.0.2.53\"]\nattempts = 3\nallow_targets = [\"127.0.0.0/8\"]\n\
                    [metrics]\n[query_log]\npath = \"q.log\"\nkeep = 2\n[rrl]\nresponses_per_second = 5\n";
        let s = parse(text).expect("valid").settings;
        assert_eq!(s.served.listen.len(), 2);
        assert_eq!(s.served.nameserver.to_string(), "ns1.example.");
        assert_eq!(s.served.limits.max_rrset, 7);
        assert_eq!(s.served.limits.queries_per_source, settings::Limits::default().queries_per_source);
        assert_eq!(s.tcp.idle, Duration::from_millis(100), "clamped to the shortest idle time");
        assert_eq!(s.served.upstreams, vec!["192.0.2.53:53".parse().expect("address")]);
        assert_eq!(s.resolver.attempts, 3);
        assert_eq!(s.resolver.deadline, settings::ResolverSettings::default().deadline);
        assert_eq!(s.served.allow_targets.len(), 1);
        assert_eq!(s.metrics, Some(settings::DEFAULT_METRICS_LISTEN.parse().expect("address")));
        let log = s.query_log.expect("query log");
        assert_eq!(log.path, PathBuf::from("/etc/vpcdns/q.log"), "relative to the file's directory");
        assert_eq!((log.keep, log.max_bytes), (2, settings::DEFAULT_QUERY_LOG_MAX_BYTES));
        assert_eq!(s.rrl.responses_per_second, 5);
        assert_eq!(s.rrl.slip, settings::RrlSettings::default().slip);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = "[server]\nlisten = [\"nowhere\"]\nnameserver = \"bad..name\"\n\
                    [resolver]\nupstreams = [\"x\"]\nattempts = 0\nallow_targets = [\"10.0.0.0/33\"]\n\
                    [metrics]\nlisten = \"nope\"\n[query_log]\npath = \"q\"\nqueue = 0\n";
        let found = problems(text);
        for expected in [
            "[server].listen",
            "[server].nameserver",
            "[resolver].upstreams",
            "[resolver].attempts",
            "[resolver].allow_targets",
            "[metrics].listen",
            "[query_log]",
        ] {
            assert!(found.iter().any(|p| p.starts_with(expected)), "{expected} missing from {found:?}");
        }
        assert_eq!(found.len(), 7, "{found:?}");
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_errors() {
        assert!(matches!(parse("[server]\nlissten = []\n"), Err(ConfigError::Toml { .. })));
        assert!(matches!(parse("[server\n"), Err(ConfigError::Toml { .. })));
        let e = parse("[limits]\nmax_rrset = -1\n").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("t.toml:"), "errors name the file: {e}");
    }

    #[test]
    fn managed_mode_settings() {
        let text =
            "[store]\npath = \"state.db\"\nnode = \"n1\"\n[admin]\nlisten = \"127.0.0.1:9000\"\nwrite_burst = 9\n\
                    [notify.smtp]\nhost = \"127.0.0.1\"\nfrom = \"dns@example.com\"\n";
        let control = parse(text).expect("valid").settings.control.expect("managed mode");
        assert_eq!(control.store, StoreSettings::Sqlite(PathBuf::from("/etc/vpcdns/state.db")));
        assert_eq!(control.socket, PathBuf::from("/etc/vpcdns/state.db.sock"));
        assert_eq!(control.secret_file, PathBuf::from("/etc/vpcdns/state.db.secret"));
        assert_eq!(control.node, "n1");
        assert_eq!(control.admin_listen, "127.0.0.1:9000".parse().expect("address"));
        assert_eq!(control.admin_limits.write_burst, 9);
        assert_eq!(control.admin_limits.writes_per_second, settings::AdminLimits::default().writes_per_second);
        assert_eq!(control.smtp.map(|s| s.port), Some(settings::DEFAULT_SMTP_PORT));
        assert_eq!(control.link_code_ttl_secs, settings::DEFAULT_LINK_CODE_TTL_SECS);
        assert!(control.tls.is_none());
    }

    #[test]
    fn managed_mode_refuses_what_belongs_elsewhere() {
        assert!(problems("[admin]\n").iter().any(|p| p.contains("need [store]")));
        assert!(problems("[store]\n").iter().any(|p| p.contains("give path")));
        assert!(problems("[store]\npath = \"s\"\nendpoints = [\"http://x\"]\n")
            .iter()
            .any(|p| p.contains("kind = \"etcd\"")));
        assert!(problems("[store]\nkind = \"redis\"\n").iter().any(|p| p.contains("is not a store")));
        assert!(problems("[store]\npath = \"s\"\n[admin]\ntls_cert = \"c\"\n")
            .iter()
            .any(|p| p.contains("tls_cert and tls_key")));
        assert!(problems("[store]\npath = \"s\"\n[admin]\nmax_connections = 0\n")
            .iter()
            .any(|p| p.contains("max_connections")));
        let declared =
            "[store]\npath = \"s\"\n[[accounts]]\nuid = \"1\"\nname = \"a\"\nemail = \"a@x\"\nsite = \"intl\"\n";
        assert!(problems(declared).iter().any(|p| p.contains("live in the store")));
    }

    #[test]
    fn etcd_settings() {
        let text = "[store]\nkind = \"etcd\"\nendpoints = [\"https://127.0.0.1:2379\"]\ntls_ca = \"ca.pem\"\n\
                    tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n";
        let control = parse(text).expect("valid").settings.control.expect("managed mode");
        let StoreSettings::Etcd(etcd) = control.store else { panic!("etcd expected") };
        assert_eq!(etcd.prefix, settings::DEFAULT_ETCD_PREFIX);
        assert_eq!(etcd.timeout, settings::DEFAULT_ETCD_TIMEOUT);
        let tls = etcd.tls.expect("tls");
        assert_eq!(tls.ca, PathBuf::from("/etc/vpcdns/ca.pem"));
        assert_eq!(tls.client.map(|c| c.key), Some(PathBuf::from("/etc/vpcdns/k.pem")));
        assert_eq!(control.socket, PathBuf::from("/etc/vpcdns/vpcdns.sock"));
        let no_ca = "[store]\nkind = \"etcd\"\nendpoints = [\"https://h:1\"]\ntls_cert = \"c\"\ntls_key = \"k\"\n";
        assert!(problems(no_ca).iter().any(|p| p.contains("needs tls_ca")));
        let mixed = "[store]\nkind = \"etcd\"\nendpoints = [\"http://h:1\"]\ntls_ca = \"ca\"\n";
        assert!(problems(mixed).iter().any(|p| p.contains("must be https://")));
        let found = problems("[store]\nkind = \"etcd\"\nendpoints = [\"h:1\"]\nuser = \"u\"\ntimeout_ms = 0\n");
        assert_eq!(found.len(), 3, "scheme, user without password_file, zero timeout: {found:?}");
    }

    #[test]
    fn the_etcd_password_is_read_from_its_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("pw"), "s3cret\n").expect("write");
        let text = "[store]\nkind = \"etcd\"\nendpoints = [\"http://h:1\"]\nuser = \"root\"\npassword_file = \"pw\"\n";
        let loaded = from_str(text, Path::new("t.toml"), dir.path(), None).expect("valid");
        let Some(StoreSettings::Etcd(etcd)) = loaded.settings.control.map(|c| c.store) else { panic!("etcd") };
        let user = etcd.user.expect("user");
        assert_eq!((user.name.as_str(), user.password.as_str()), ("root", "s3cret"));
        let missing =
            "[store]\nkind = \"etcd\"\nendpoints = [\"http://h:1\"]\nuser = \"root\"\npassword_file = \"no\"\n";
        assert!(problems(missing).iter().any(|p| p.contains("password_file")));
    }

    #[test]
    fn state_items_are_checked_and_links_resolved_by_name() {
        let accounts = "[[accounts]]\nuid = \"1\"\nname = \"acme\"\nemail = \"ops@acme.test\"\nsite = \"intl\"\n\
                        [[accounts]]\nuid = \"2\"\nname = \"beta\"\nemail = \"ops@beta.test\"\nsite = \"intl\"\n\
                        [[vpcs]]\nid = \"vb\"\naccount = \"2\"\ncidrs = [\"10.1.0.0/16\"]\n";
        let linked =
            parse(&format!("{accounts}[[links]]\naccount = \"1\"\nlinked = \"ops@beta.test\"\n")).expect("valid");
        assert_eq!(linked.state.links.iter().map(|l| l.linked.0.as_str()).collect::<Vec<_>>(), vec!["2"]);
        let by_uid = problems(&format!("{accounts}[[links]]\naccount = \"1\"\nlinked = \"2\"\n"));
        assert!(by_uid.iter().any(|p| p.contains("not by uid")), "{by_uid:?}");
        let bad = problems(&format!(
            "{accounts}[[vpcs]]\nid = \"v\"\naccount = \"1\"\ncidrs = [\"10.0.0.0/99\"]\n\
             [[zones]]\nname = \"a.internal.\"\naccount = \"1\"\nfallback = \"maybe\"\n\
             records = [{{ name = \"www\", type = \"BOGUS\", data = \"x\" }}]\n"
        ));
        assert_eq!(bad.len(), 3, "{bad:?}");
    }

    #[test]
    fn an_unchanged_zone_keeps_its_revision() {
        let zone = "[[zones]]\nname = \"a.internal.\"\naccount = \"1\"\nrecords = [{ name = \"www\", type = \"A\", data = \"10.0.0.1\" }]\n";
        let first = parse(zone).expect("valid").state;
        let again = from_str(zone, Path::new("t.toml"), Path::new("."), Some(&first)).expect("valid").state;
        assert!(again.revision > first.revision);
        let revision = |s: &State| s.zones.values().map(|z| z.revision).next();
        assert_eq!(revision(&again), revision(&first));
        let changed = zone.replace("10.0.0.1", "10.0.0.2");
        let after = from_str(&changed, Path::new("t.toml"), Path::new("."), Some(&first)).expect("valid").state;
        assert_eq!(revision(&after), Some(after.revision));
    }
}
