//! The `vpcdns admin` commands and their arguments, as clap reads them.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::super::{query_string, AuditRange, Range};

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
    pub(super) fn path(self) -> String {
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
    pub(super) fn body(&self) -> Value {
        json!({ "name": self.name, "type": self.rtype, "ttl": self.ttl, "data": self.data })
    }
}
