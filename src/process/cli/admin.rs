//! `vpcdns admin …`: every tenant operation of the admin API, as commands.

use axum::body::Body;
use axum::http::Method;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client;
use super::{query_string, seg, AuditRange, Range};

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

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Who the key belongs to.
    Whoami,
    /// Sub-users of your account.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Access keys of your account.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Your VPCs, and every VPC you may put into a scope.
    Vpcs,
    /// Zones of other accounts that answer in your VPCs.
    ForeignZones,
    /// Forwarding rules of other accounts that apply in your VPCs.
    ForeignRules,
    /// Take your VPCs out of another account's zone or rule (the link stays).
    #[command(subcommand)]
    Detach(DetachCommand),
    /// Cross-account links.
    #[command(subcommand)]
    Links(LinksCommand),
    /// Your inbox (verification codes arrive here).
    Inbox,
    /// Private zones.
    #[command(subcommand)]
    Zones(ZonesCommand),
    /// Records of a zone.
    #[command(subcommand)]
    Records(RecordsCommand),
    /// Forwarding rules: a domain's queries from the VPCs in the scope go to target servers.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Queries billed to your account (default: the last hour), by zone, consuming account and VPC.
    Usage(Range),
    /// Who changed what in your account, when, from where.
    Audit(AuditRange),
    /// Why a source in one of your VPCs gets its answer (against the live state).
    Explain(ExplainArgs),
}

/// The question `explain` takes, on the command line (`vpcdns explain`) and through the API (`admin explain`).
#[derive(Args)]
pub struct ExplainArgs {
    /// The query's source address.
    #[arg(long)]
    pub source: std::net::IpAddr,
    /// The local address the query arrives on (default: the first [server].listen address).
    #[arg(long)]
    pub listener: Option<std::net::SocketAddr>,
    /// Explain the TCP answer (ANY and truncation differ).
    #[arg(long)]
    pub tcp: bool,
    /// The query as relayed by a front end naming this endpoint (vpce-…, alibaba:…, psc:…, azure:…).
    #[arg(long, conflicts_with = "vpc_id")]
    pub endpoint: Option<String>,
    /// The query as relayed by a front end naming this VPC id (Alibaba PrivateLink, or `proxy_vpc_tlv`).
    #[arg(long)]
    pub vpc_id: Option<String>,
    /// The query name.
    pub name: String,
    /// The query type (A, AAAA, MX, TYPE65534, …).
    #[arg(default_value = "A")]
    pub qtype: String,
}

impl ExplainArgs {
    /// `GET /v1/explain` with the question in the query string.
    fn path(self) -> String {
        let query = query_string(&[
            ("source", Some(self.source.to_string())),
            ("listener", self.listener.map(|l| l.to_string())),
            ("tcp", self.tcp.then(|| "true".to_string())),
            ("endpoint", self.endpoint),
            ("vpc_id", self.vpc_id),
            ("name", Some(self.name)),
            ("type", Some(self.qtype)),
        ]);
        format!("/v1/explain{query}")
    }
}

#[derive(Subcommand)]
pub enum UsersCommand {
    List,
    /// Create or update a sub-user.
    Put {
        name: String,
        #[arg(long = "policy")]
        policies: Vec<String>,
        #[arg(long)]
        if_match: Option<u64>,
    },
    Rm {
        name: String,
        #[arg(long)]
        if_match: Option<u64>,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    List,
    /// Issue a key (for a sub-user with --user); the token is printed once.
    Create {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        expires_in_days: Option<u64>,
    },
    Rm {
        id: String,
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Replace a key by a new one for the same principal.
    Rotate {
        id: String,
        #[arg(long)]
        if_match: Option<u64>,
    },
}

#[derive(Subcommand)]
pub enum DetachCommand {
    /// Another account's zone (its id, as `foreign-zones` lists it).
    Zone {
        id: String,
        /// Only this VPC of yours (repeatable); default: all of yours in its scope.
        #[arg(long = "vpc")]
        vpcs: Vec<String>,
    },
    /// Another account's forwarding rule (its id, as `foreign-rules` lists it).
    Rule {
        id: String,
        /// Only this VPC of yours (repeatable); default: all of yours in its scope.
        #[arg(long = "vpc")]
        vpcs: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum LinksCommand {
    List,
    /// Ask to link another root account, named by email or username; its owner receives a code.
    Request {
        target: String,
    },
    /// Submit the code the other account's owner received.
    Verify {
        request: String,
        code: String,
    },
    /// Remove the link between your account and another (either side may).
    Rm {
        account: String,
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Refuse link requests from an account.
    Block {
        account: String,
        #[arg(long)]
        if_match: Option<u64>,
    },
    Unblock {
        account: String,
        #[arg(long)]
        if_match: Option<u64>,
    },
}

#[derive(Subcommand)]
pub enum RulesCommand {
    List,
    /// Create a rule: queries for DOMAIN (and below) from the VPCs of --scope go to the --target servers.
    Add {
        name: String,
        domain: String,
        /// A server address (ip or ip:port); up to 6.
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
        /// VPC ids (yours, or a linked account's).
        #[arg(long, num_args = 1..)]
        scope: Vec<String>,
    },
    Rm {
        id: String,
        #[arg(long)]
        if_match: Option<u64>,
    },
}

#[derive(Subcommand)]
pub enum ZonesCommand {
    List,
    Create {
        name: String,
        #[arg(long = "scope")]
        scope: Vec<String>,
        /// What names the zone does not hold get: nxdomain (the default) or recurse.
        #[arg(long)]
        fallback: Option<String>,
    },
    Show {
        id: String,
    },
    Rm {
        id: String,
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Change the effective scope: --set replaces it, --add / --remove edit it.
    Scope {
        id: String,
        #[arg(long, num_args = 0.., conflicts_with_all = ["add", "remove"])]
        set: Option<Vec<String>>,
        #[arg(long, num_args = 1..)]
        add: Option<Vec<String>>,
        #[arg(long, num_args = 1..)]
        remove: Option<Vec<String>>,
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// What a name the zone does not hold gets: nxdomain, or recurse (resolved through rules and upstreams).
    Fallback {
        id: String,
        fallback: String,
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Print the zone as an RFC 1035 master file.
    Export {
        id: String,
    },
    /// Replace the zone's records with an RFC 1035 master file.
    Import {
        id: String,
        file: std::path::PathBuf,
        #[arg(long)]
        if_match: Option<u64>,
    },
}

#[derive(Subcommand)]
pub enum RecordsCommand {
    Add {
        zone: String,
        #[command(flatten)]
        record: RecordArgs,
        #[arg(long)]
        if_match: Option<u64>,
    },
    Change {
        zone: String,
        id: String,
        #[command(flatten)]
        record: RecordArgs,
        #[arg(long)]
        if_match: Option<u64>,
    },
    Rm {
        zone: String,
        id: String,
        #[arg(long)]
        if_match: Option<u64>,
    },
}

/// A record as `records add` and `records change` take it.
#[derive(Args)]
pub struct RecordArgs {
    name: String,
    #[arg(value_name = "TYPE")]
    rtype: String,
    data: String,
    #[arg(long)]
    ttl: Option<u32>,
}

impl RecordArgs {
    fn body(&self) -> Value {
        json!({ "name": self.name, "type": self.rtype, "ttl": self.ttl, "data": self.data })
    }
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
    let answer = send_retrying(&transport, call, &headers, change).await?;
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

fn to_call(command: AdminCommand) -> anyhow::Result<Call> {
    use Method as M;
    Ok(match command {
        AdminCommand::Whoami => call(M::GET, "/v1/whoami".into()),
        AdminCommand::Users(UsersCommand::List) => call(M::GET, "/v1/users".into()),
        AdminCommand::Users(UsersCommand::Put { name, policies, if_match }) => Call {
            if_match,
            ..with_json(call(M::PUT, format!("/v1/users/{}", seg(&name))), json!({ "policies": policies }))
        },
        AdminCommand::Users(UsersCommand::Rm { name, if_match }) => {
            Call { if_match, ..call(M::DELETE, format!("/v1/users/{}", seg(&name))) }
        }
        AdminCommand::Keys(KeysCommand::List) => call(M::GET, "/v1/keys".into()),
        AdminCommand::Keys(KeysCommand::Create { user, expires_in_days }) => {
            with_json(call(M::POST, "/v1/keys".into()), json!({ "user": user, "expires_in_days": expires_in_days }))
        }
        AdminCommand::Keys(KeysCommand::Rm { id, if_match }) => {
            Call { if_match, ..call(M::DELETE, format!("/v1/keys/{}", seg(&id))) }
        }
        AdminCommand::Keys(KeysCommand::Rotate { id, if_match }) => {
            Call { if_match, ..call(M::POST, format!("/v1/keys/{}/rotate", seg(&id))) }
        }
        AdminCommand::Vpcs => call(M::GET, "/v1/vpcs".into()),
        AdminCommand::ForeignZones => call(M::GET, "/v1/foreign-zones".into()),
        AdminCommand::ForeignRules => call(M::GET, "/v1/foreign-rules".into()),
        AdminCommand::Detach(DetachCommand::Zone { id, vpcs }) => {
            with_json(call(M::POST, format!("/v1/foreign-zones/{}/detach", seg(&id))), json!({ "vpcs": vpcs }))
        }
        AdminCommand::Detach(DetachCommand::Rule { id, vpcs }) => {
            with_json(call(M::POST, format!("/v1/foreign-rules/{}/detach", seg(&id))), json!({ "vpcs": vpcs }))
        }
        AdminCommand::Inbox => call(M::GET, "/v1/inbox".into()),
        AdminCommand::Links(c) => links_call(c),
        AdminCommand::Zones(c) => zones_call(c)?,
        AdminCommand::Rules(RulesCommand::List) => call(M::GET, "/v1/rules".into()),
        AdminCommand::Rules(RulesCommand::Add { name, domain, targets, scope }) => with_json(
            call(M::POST, "/v1/rules".into()),
            json!({ "name": name, "domain": domain, "targets": targets, "scope": scope }),
        ),
        AdminCommand::Rules(RulesCommand::Rm { id, if_match }) => {
            Call { if_match, ..call(M::DELETE, format!("/v1/rules/{}", seg(&id))) }
        }
        AdminCommand::Records(c) => records_call(c),
        AdminCommand::Usage(range) => call(M::GET, range.url("/v1/usage")),
        AdminCommand::Audit(range) => call(M::GET, range.url("/v1/audit")),
        AdminCommand::Explain(question) => call(M::GET, question.path()),
    })
}

fn links_call(c: LinksCommand) -> Call {
    use Method as M;
    match c {
        LinksCommand::List => call(M::GET, "/v1/links".into()),
        LinksCommand::Request { target } => with_json(call(M::POST, "/v1/links".into()), json!({ "target": target })),
        LinksCommand::Verify { request, code } => {
            with_json(call(M::POST, format!("/v1/links/requests/{}/verify", seg(&request))), json!({ "code": code }))
        }
        LinksCommand::Rm { account, if_match } => {
            Call { if_match, ..call(M::DELETE, format!("/v1/links/{}", seg(&account))) }
        }
        LinksCommand::Block { account, if_match } => {
            Call { if_match, ..call(M::PUT, format!("/v1/blocks/{}", seg(&account))) }
        }
        LinksCommand::Unblock { account, if_match } => {
            Call { if_match, ..call(M::DELETE, format!("/v1/blocks/{}", seg(&account))) }
        }
    }
}

fn zones_call(c: ZonesCommand) -> anyhow::Result<Call> {
    use Method as M;
    Ok(match c {
        ZonesCommand::List => call(M::GET, "/v1/zones".into()),
        ZonesCommand::Create { name, scope, fallback } => {
            with_json(call(M::POST, "/v1/zones".into()), json!({ "name": name, "scope": scope, "fallback": fallback }))
        }
        ZonesCommand::Show { id } => call(M::GET, format!("/v1/zones/{}", seg(&id))),
        ZonesCommand::Fallback { id, fallback, if_match } => Call {
            if_match,
            ..with_json(call(M::PUT, format!("/v1/zones/{}/fallback", seg(&id))), json!({ "fallback": fallback }))
        },
        ZonesCommand::Rm { id, if_match } => Call { if_match, ..call(M::DELETE, format!("/v1/zones/{}", seg(&id))) },
        ZonesCommand::Scope { id, set, add, remove, if_match } => {
            let base = format!("/v1/zones/{}/scope", seg(&id));
            let (method, path, vpcs) = match (set, add, remove) {
                (Some(v), None, None) => (M::PUT, base, v),
                (None, Some(v), None) => (M::POST, format!("{base}/add"), v),
                (None, None, Some(v)) => (M::POST, format!("{base}/remove"), v),
                _ => anyhow::bail!("give exactly one of --set, --add, --remove"),
            };
            Call { if_match, ..with_json(call(method, path), json!({ "vpcs": vpcs })) }
        }
        ZonesCommand::Export { id } => call(M::GET, format!("/v1/zones/{}/file", seg(&id))),
        ZonesCommand::Import { id, file, if_match } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            Call { if_match, body: Some(Body::from(text)), ..call(M::PUT, format!("/v1/zones/{}/file", seg(&id))) }
        }
    })
}

fn records_call(c: RecordsCommand) -> Call {
    use Method as M;
    match c {
        RecordsCommand::Add { zone, record, if_match } => {
            Call { if_match, ..with_json(call(M::POST, format!("/v1/zones/{}/records", seg(&zone))), record.body()) }
        }
        RecordsCommand::Change { zone, id, record, if_match } => Call {
            if_match,
            ..with_json(call(M::PUT, format!("/v1/zones/{}/records/{}", seg(&zone), seg(&id))), record.body())
        },
        RecordsCommand::Rm { zone, id, if_match } => {
            Call { if_match, ..call(M::DELETE, format!("/v1/zones/{}/records/{}", seg(&zone), seg(&id))) }
        }
    }
}
