//! `vpcdns admin …`: every tenant operation of the admin API, as commands: `commands` defines them (clap),
//! `calls` maps each to its request, and this file sends it and prints the answer.

mod calls;
mod commands;

use axum::body::Body;
use axum::http::Method;
use clap::Args;
use serde_json::Value;

use super::client;
use calls::to_call;
pub use commands::*;

/// Connection to the admin API.
#[derive(Args)]
pub struct AdminArgs {
    /// The admin API.
    #[arg(long, env = "VPCDNS_URL", default_value = "http://127.0.0.1:5380")]
    pub url: String,
    /// An access key (`vpcdns_…`).
    #[arg(long, env = "VPCDNS_KEY", hide_env_values = true)]
    pub key: String,
    /// For an https:// URL: the PEM certificate of the CA that signed the server's certificate.
    #[arg(long, env = "VPCDNS_CA")]
    pub ca: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub output: super::OutputArgs,
    /// Wait until the node has applied this revision (the one a write answered with) before answering: read your
    /// own writes through any node.
    #[arg(long, global = true)]
    pub min_revision: Option<u64>,
    /// The Idempotency-Key sent with a change (default: a fresh random one per command). A change retried with the
    /// same key is made once; the CLI retries `503 outcome_unknown` itself with it.
    #[arg(long, global = true)]
    pub idempotency_key: Option<String>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// A request the command maps to.
struct Call {
    method: Method,
    path: String,
    body: Option<Body>,
    if_match: Option<u64>,
}

fn call(method: Method, path: String) -> Call {
    Call { method, path, body: None, if_match: None }
}

fn with_json(mut c: Call, value: Value) -> Call {
    c.body = Some(Body::from(value.to_string()));
    c
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let transport = client::tenant_transport(&args.url, args.key.clone(), args.ca.clone())?;
    let mut call = to_call(args.command)?;
    if let Some(revision) = args.min_revision {
        let joiner = if call.path.contains('?') { '&' } else { '?' };
        call.path = format!("{}{joiner}min_revision={revision}", call.path);
    }
    let mut headers = vec![("content-type", "application/json".to_string())];
    if let Some(r) = call.if_match {
        headers.push(("if-match", format!("\"{r}\"")));
    }
    let change = call.method != Method::GET;
    if change {
        let key = match args.idempotency_key {
            Some(key) => key,
            None => crate::control::auth::random_hex(16).map_err(|e| anyhow::anyhow!("{e}"))?,
        };
        headers.push(("idempotency-key", key));
    }
    let answer = match change {
        true => send_retrying(&transport, call, &headers, change).await?,
        false => transport.get_all(&call.path, &headers).await?,
    };
    // explain's answer is a report for people: print it as it is.
    if let (false, Some(text)) = (args.output.json, answer.body.get("explain").and_then(|v| v.as_str())) {
        crate::out!("{text}");
        return Ok(());
    }
    client::print(&answer, args.output)
}

/// How many times a change whose outcome the server could not tell (`503 outcome_unknown`) is sent, in all.
const TRIES: usize = 3;

/// Sends the request; a change that got `503 outcome_unknown` is sent again (with the same Idempotency-Key, so it is
/// made at most once), up to [`TRIES`] times, a second apart.
async fn send_retrying(
    transport: &client::Transport,
    call: Call,
    headers: &[(&str, String)],
    change: bool,
) -> anyhow::Result<client::Answer> {
    let body = match call.body {
        Some(body) => Some(axum::body::to_bytes(body, usize::MAX).await.map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let mut tries = 1;
    loop {
        let answer = transport.send(call.method.clone(), &call.path, body.clone().map(Body::from), headers).await?;
        let unknown = answer.status.as_u16() == 503 && answer.body["error"]["code"] == "outcome_unknown";
        if !(change && unknown) || tries == TRIES {
            return Ok(answer);
        }
        tries += 1;
        // Said on stderr, so that a person (or a script reading stdout) knows why the answer took longer.
        eprintln!("vpcdns: the server could not tell whether the change was made (503 outcome_unknown); sending it again with the same Idempotency-Key (try {tries} of {TRIES})");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
