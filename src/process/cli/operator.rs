//! `vpcdns operator …`: the inventory (accounts, VPCs), root keys and operator links.
//!
//! With the server running, requests go over its owner-only Unix socket; with the server stopped, the same
//! operator routes run in this process on the store directly, so the two paths cannot drift apart.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::body::Body;
use axum::http::Method;
use clap::{Args, Subcommand};
use serde_json::json;

use super::client::{self, Transport};
use super::{seg, AuditRange, Range};
use crate::control::api::{operator_router, ApiState};
use crate::control::ControlPlane;

#[derive(Args)]
pub struct OperatorArgs {
    /// The server's configuration (its [store] and [admin] sections say where the store and socket are).
    #[arg(long, short)]
    pub config: PathBuf,
    #[command(flatten)]
    pub output: super::OutputArgs,
    #[command(subcommand)]
    pub command: OperatorCommand,
}

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Root accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// VPCs and their prefixes.
    #[command(subcommand)]
    Vpcs(VpcsCommand),
    /// Issue an access key for a root account (named by uid, username or email); the token is printed once.
    #[command(after_help = "Example:\n  vpcdns operator --config managed.toml key root@acme.example")]
    Key {
        /// The account: uid, username or email.
        account: String,
        /// The key stops working after this many days (default: never).
        #[arg(long)]
        expires_in_days: Option<u64>,
    },
    /// Declare a link (the operator's word, without verification).
    #[command(after_help = "Example:\n  vpcdns operator --config managed.toml link acme beta")]
    Link {
        /// The account that may use the other's VPCs (uid, username or email).
        account: String,
        /// The account whose VPCs it may use.
        linked: String,
    },
    /// Bring a state file (the config file's schema) into the store, through the same validation; idempotent.
    #[command(after_help = "Example:\n  vpcdns operator --config managed.toml apply -f state.toml --prune")]
    Apply {
        /// The state file (as `export` writes it, or a config file's accounts, VPCs, links and zones).
        #[arg(long, short)]
        file: PathBuf,
        /// Also remove accounts, users, VPCs, links and zones that the file does not declare.
        #[arg(long)]
        prune: bool,
    },
    /// Write the store's state as a state file (the config file's schema, records inline).
    Export,
    /// Queries billed to every owner (default: the last hour), summed over nodes.
    Usage(Range),
    /// Every account's audit log.
    Audit(AuditRange),
    /// Copy the whole store, consistently, while the server runs (or not).
    Backup {
        /// Where the copy goes (written beside, then renamed into place).
        path: PathBuf,
    },
    /// Replace the store with a backup (the server must be stopped).
    Restore {
        /// The backup to restore.
        path: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum AccountsCommand {
    /// List every root account.
    List,
    /// Create or update an account.
    #[command(after_help = "Example:\n  vpcdns operator --config managed.toml accounts put --uid 1001 --name acme \
                      --email root@acme.example --site intl")]
    Put {
        /// The account's uid (never used to name it for links).
        #[arg(long)]
        uid: String,
        /// Its username (unique).
        #[arg(long)]
        name: String,
        /// Its owner's email (unique): link codes are mailed there.
        #[arg(long)]
        email: String,
        /// `cn` or `intl`.
        #[arg(long)]
        site: String,
    },
    /// Delete an account (refused while it owns VPCs, zones or rules).
    #[command(after_help = "Example:\n  vpcdns operator --config managed.toml accounts rm 1001")]
    Rm {
        /// The account's uid.
        uid: String,
    },
}

#[derive(Subcommand)]
pub enum VpcsCommand {
    /// List every VPC.
    List,
    /// Create or update a VPC.
    #[command(after_help = "Example:\n  vpcdns operator --config managed.toml vpcs put --id vpc-acme --account 1001 \
                      --cidr 10.0.0.0/16")]
    Put {
        /// The VPC's id.
        #[arg(long)]
        id: String,
        /// The owner's uid.
        #[arg(long)]
        account: String,
        /// Its region (informational).
        #[arg(long, default_value = "")]
        region: String,
        /// A source prefix of the VPC (repeatable).
        #[arg(long = "cidr", required = true)]
        cidrs: Vec<String>,
        /// Only queries arriving on this address:port (repeatable; default: any listener).
        #[arg(long = "listener")]
        listeners: Vec<String>,
        /// Full UDP answers per second per source address (default: [limits] queries_per_source; 0: unlimited).
        #[arg(long)]
        query_limit: Option<u32>,
        /// An endpoint id front ends name the VPC by (vpce-…, alibaba:…, psc:…, azure:…); repeatable.
        #[arg(long = "endpoint")]
        endpoints: Vec<String>,
        /// The VPC's id in the cloud, when a front end sends it (Alibaba PrivateLink) and it differs from --id.
        #[arg(long)]
        cloud_id: Option<String>,
    },
    /// Remove a VPC; it leaves every scope, and the answer says which.
    #[command(after_help = "Example:\n  vpcdns operator --config managed.toml vpcs rm vpc-acme")]
    Rm {
        /// The VPC's id.
        id: String,
    },
}

/// Whether a server answers on the operator socket. Only a socket that is absent or refuses connections means the
/// server is stopped; anything else (permission denied, say) must not lead to writing a live store behind the
/// server's back.
async fn server_running(socket: &std::path::Path) -> anyhow::Result<bool> {
    match tokio::net::UnixStream::connect(socket).await {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => Ok(false),
        Err(e) => anyhow::bail!("cannot use the operator socket {}: {e}", socket.display()),
    }
}

pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    let loaded = crate::process::config::load(&args.config, None)?;
    let settings = loaded
        .settings
        .control
        .clone()
        .context("the configuration has no [store]: operator commands need the store")?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let running = server_running(&settings.socket).await?;
    // Without a socket that answers, the command runs here on the store — but only when no server holds it: a
    // server whose socket was removed must not be written behind its back.
    let lock = match (&settings.store, running) {
        (crate::settings::StoreSettings::Sqlite(store), false) => {
            Some(crate::control::store::lock::lock(store).map_err(|e| {
                anyhow::anyhow!(
                    "{e}, but its operator socket {} does not answer: restart that server (or point [admin] socket at \
                 its socket) instead of writing the store behind it",
                    settings.socket.display()
                )
            })?)
        }
        _ => None,
    };
    if let OperatorCommand::Restore { path } = &args.command {
        if running {
            anyhow::bail!("the server is running on {}: stop it before restoring", settings.socket.display());
        }
        let crate::settings::StoreSettings::Sqlite(store) = &settings.store else {
            anyhow::bail!("restore is for the embedded store; restore etcd with `etcdctl snapshot restore`");
        };
        crate::control::store::sqlite::SqliteStore::restore(path, store)?;
        crate::outln!("restored {} from {}", store.display(), path.display());
        return Ok(());
    }
    let command = prepare(args.command)?;
    let transport = if running {
        Transport::Unix(settings.socket.clone())
    } else {
        let store = crate::control::store::open(&settings.store)?;
        let secret = super::super::daemon::read_or_create_secret(&settings.secret_file)?;
        let plane = ControlPlane::open(store, loaded.settings.served.clone(), secret)?;
        Transport::InProcess(operator_router(ApiState::new(
            Arc::new(plane),
            None,
            &settings.admin_limits,
            super::super::daemon::api_hooks(None),
        )))
    };
    let (method, path, body) = to_request(command);
    let headers = [("content-type", "application/json".to_string())];
    let answer = match method {
        Method::GET => transport.get_all(&path, &headers).await?,
        method => transport.send(method, &path, body.map(Body::from), &headers).await?,
    };
    if answer.status.is_success() && path.starts_with("/v1/operator/export") {
        crate::out!("{}", answer.text);
        return Ok(());
    }
    drop(lock);
    client::print(&answer, args.output)
}

/// Reads what a command needs from local files: `apply` sends the state with its zone files inlined.
fn prepare(command: OperatorCommand) -> anyhow::Result<Prepared> {
    Ok(match command {
        OperatorCommand::Apply { file, prune } => {
            let loaded = crate::process::config::load(&file, None)?;
            anyhow::ensure!(
                loaded.settings.control.is_none(),
                "{} is a server configuration, not a state file",
                file.display()
            );
            let text = crate::control::ops::declare::export(&loaded.state).map_err(|e| anyhow::anyhow!("{e}"))?;
            Prepared::Apply { text, prune }
        }
        OperatorCommand::Backup { path } => {
            let path = std::path::absolute(&path).with_context(|| format!("bad path {}", path.display()))?;
            Prepared::Other(OperatorCommand::Backup { path })
        }
        other => Prepared::Other(other),
    })
}

/// A command with its local inputs read.
enum Prepared {
    Apply { text: String, prune: bool },
    Other(OperatorCommand),
}

fn to_request(command: Prepared) -> (Method, String, Option<String>) {
    use Method as M;
    let command = match command {
        Prepared::Apply { text, prune } => return (M::POST, format!("/v1/operator/apply?prune={prune}"), Some(text)),
        Prepared::Other(c) => c,
    };
    let (method, path, body) = match command {
        OperatorCommand::Accounts(AccountsCommand::List) => (M::GET, "/v1/operator/accounts".into(), None),
        OperatorCommand::Accounts(AccountsCommand::Put { uid, name, email, site }) => (
            M::POST,
            "/v1/operator/accounts".into(),
            Some(json!({ "uid": uid, "name": name, "email": email, "site": site })),
        ),
        OperatorCommand::Accounts(AccountsCommand::Rm { uid }) => {
            (M::DELETE, format!("/v1/operator/accounts/{}", seg(&uid)), None)
        }
        OperatorCommand::Vpcs(VpcsCommand::List) => (M::GET, "/v1/operator/vpcs".into(), None),
        OperatorCommand::Vpcs(VpcsCommand::Put {
            id,
            account,
            region,
            cidrs,
            listeners,
            query_limit,
            endpoints,
            cloud_id,
        }) => (
            M::POST,
            "/v1/operator/vpcs".into(),
            Some(json!({ "id": id, "account": account, "region": region, "cidrs": cidrs, "listeners": listeners,
                         "query_limit": query_limit, "endpoints": endpoints, "cloud_id": cloud_id })),
        ),
        OperatorCommand::Vpcs(VpcsCommand::Rm { id }) => (M::DELETE, format!("/v1/operator/vpcs/{}", seg(&id)), None),
        OperatorCommand::Key { account, expires_in_days } => (
            M::POST,
            "/v1/operator/keys".into(),
            Some(json!({ "account": account, "expires_in_days": expires_in_days })),
        ),
        OperatorCommand::Link { account, linked } => {
            (M::POST, "/v1/operator/links".into(), Some(json!({ "account": account, "linked": linked })))
        }
        OperatorCommand::Export => (M::GET, "/v1/operator/export".into(), None),
        OperatorCommand::Usage(range) => (M::GET, range.url("/v1/operator/usage"), None),
        OperatorCommand::Audit(range) => (M::GET, range.url("/v1/operator/audit"), None),
        OperatorCommand::Backup { path } => (M::POST, "/v1/operator/backup".into(), Some(json!({ "path": path }))),
        // Handled before any request is made.
        OperatorCommand::Apply { .. } | OperatorCommand::Restore { .. } => {
            (M::GET, "/v1/operator/accounts".into(), None)
        }
    };
    (method, path, body.map(|b| b.to_string()))
}
