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
use super::seg;
use crate::api::{operator_router, ApiState};
use crate::control::ControlPlane;

#[derive(Args)]
pub struct OperatorArgs {
    /// The server's configuration (its [store] and [admin] sections say where the store and socket are).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Print the JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
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
    /// Issue an access key for a root account (named by uid, username or email).
    Key {
        account: String,
        #[arg(long)]
        expires_in_days: Option<u64>,
    },
    /// Declare a link (the operator's word, without verification).
    Link { account: String, linked: String },
}

#[derive(Subcommand)]
pub enum AccountsCommand {
    List,
    /// Create or update an account.
    Put {
        #[arg(long)]
        uid: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        /// `cn` or `intl`.
        #[arg(long)]
        site: String,
    },
    Rm {
        uid: String,
    },
}

#[derive(Subcommand)]
pub enum VpcsCommand {
    List,
    /// Create or update a VPC.
    Put {
        #[arg(long)]
        id: String,
        #[arg(long)]
        account: String,
        #[arg(long, default_value = "")]
        region: String,
        #[arg(long = "cidr", required = true)]
        cidrs: Vec<String>,
        #[arg(long = "listener")]
        listeners: Vec<String>,
    },
    /// Remove a VPC; it leaves every scope, and the answer says which.
    Rm {
        id: String,
    },
}

pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    let loaded = crate::config::load(&args.config, None)?;
    let settings = loaded.control.context("the configuration has no [store]: operator commands need the store")?;
    let transport = if tokio::net::UnixStream::connect(&settings.socket).await.is_ok() {
        Transport::Unix(settings.socket.clone())
    } else {
        let store = crate::store::sqlite::SqliteStore::open(&settings.store)?;
        let secret = super::super::daemon::read_or_create_secret(&settings.secret_file)?;
        let plane = ControlPlane::open(Arc::new(store), loaded.state.server.clone(), secret)?;
        Transport::InProcess(operator_router(ApiState::new(Arc::new(plane), None)))
    };
    let (method, path, body) = to_request(args.command);
    let headers = [("content-type", "application/json".to_string())];
    let answer = transport.send(method, &path, body.map(|b| Body::from(b.to_string())), &headers).await?;
    client::print(&answer, args.json)
}

fn to_request(command: OperatorCommand) -> (Method, String, Option<serde_json::Value>) {
    use Method as M;
    match command {
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
        OperatorCommand::Vpcs(VpcsCommand::Put { id, account, region, cidrs, listeners }) => (
            M::POST,
            "/v1/operator/vpcs".into(),
            Some(json!({ "id": id, "account": account, "region": region, "cidrs": cidrs, "listeners": listeners })),
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
    }
}
