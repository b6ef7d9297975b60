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
    /// Cross-account links and link requests.
    #[command(subcommand)]
    Links(LinksCommand),
    /// Accounts whose link requests you refuse.
    #[command(subcommand)]
    Blocks(BlocksCommand),
    /// Your inbox (verification codes arrive here): the messages, or one of them.
    Inbox {
        #[command(subcommand)]
        command: Option<InboxCommand>,
    },
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

/// Sub-user commands.
#[derive(Subcommand)]
pub enum UsersCommand {
    /// List your account's sub-users and their policies.
    List,
    /// Create or update a sub-user.
    #[command(after_help = "Example:\n  vpcdns admin users put reader --policy DNSReadOnlyAccess")]
    Put {
        /// The user's name (its principal is NAME@<your account>).
        name: String,
        /// DNSFullAccess (may change) or DNSReadOnlyAccess (may read); repeatable.
        #[arg(long = "policy")]
        policies: Vec<String>,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Delete a sub-user and its keys.
    #[command(after_help = "Example:\n  vpcdns admin users rm reader")]
    Rm {
        /// The user's name.
        name: String,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
}

/// Access key commands.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// List your account's keys (never their secrets).
    List,
    /// Issue a key (for a sub-user with --user); the token is printed once.
    #[command(after_help = "Example:\n  vpcdns admin keys create --user reader --expires-in-days 90")]
    Create {
        /// The sub-user the key acts as (default: the root account).
        #[arg(long)]
        user: Option<String>,
        /// The key stops working after this many days (default: never).
        #[arg(long)]
        expires_in_days: Option<u64>,
    },
    /// Delete a key: requests with it are refused from now on.
    #[command(after_help = "Example:\n  vpcdns admin keys rm 9f2c1e0a7b3d4c5e")]
    Rm {
        /// The key's id (as `keys list` shows it).
        id: String,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Replace a key by a new one for the same principal.
    #[command(after_help = "Example:\n  vpcdns admin keys rotate 9f2c1e0a7b3d4c5e")]
    Rotate {
        /// The key's id (as `keys list` shows it).
        id: String,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
}

/// Detach commands.
#[derive(Subcommand)]
pub enum DetachCommand {
    /// Another account's zone (its id, as `foreign-zones` lists it).
    Zone {
        /// The zone's id.
        id: String,
        /// Only this VPC of yours (repeatable); default: all of yours in its scope.
        #[arg(long = "vpc")]
        vpcs: Vec<String>,
    },
    /// Another account's forwarding rule (its id, as `foreign-rules` lists it).
    Rule {
        /// The rule's id.
        id: String,
        /// Only this VPC of yours (repeatable); default: all of yours in its scope.
        #[arg(long = "vpc")]
        vpcs: Vec<String>,
    },
}

/// Link commands.
#[derive(Subcommand)]
pub enum LinksCommand {
    /// List the accounts you linked, and those that linked yours.
    List,
    /// Link requests: the ones you sent and the ones sent to you, with their state and expiry.
    Requests,
    /// Ask to link another root account, named by email or username; its owner receives a code.
    #[command(after_help = "Example:\n  vpcdns admin links request root@beta.example")]
    Request {
        /// The other account's email or username (never its uid).
        target: String,
    },
    /// Submit the code the other account's owner received.
    #[command(after_help = "Example:\n  vpcdns admin links verify 1091fba05be0badb 345370")]
    Verify {
        /// The request's id (as `links request` printed it).
        request: String,
        /// The verification code the other account's owner received.
        code: String,
    },
    /// Decline one link request sent to you (its code stops working; the requester may ask again).
    #[command(after_help = "Example:\n  vpcdns admin links decline 1091fba05be0badb")]
    Decline {
        /// The request's id (as `links requests` or the inbox shows it).
        request: String,
    },
    /// Remove the link between your account and another (either side may).
    #[command(after_help = "Example:\n  vpcdns admin links rm beta")]
    Rm {
        /// The other account (name, email or uid).
        account: String,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Refuse every link request from an account (and remove its pending ones).
    #[command(after_help = "Example:\n  vpcdns admin links block mallory@example.com")]
    Block {
        /// The account to block (name or email).
        account: String,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Accept link requests from an account again.
    #[command(after_help = "Example:\n  vpcdns admin links unblock mallory@example.com")]
    Unblock {
        /// The blocked account (name, email or uid).
        account: String,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
}

/// Block commands.
#[derive(Subcommand)]
pub enum BlocksCommand {
    /// The accounts whose link requests you refuse.
    List,
}

/// Inbox commands (without one: list the messages).
#[derive(Subcommand)]
pub enum InboxCommand {
    /// Show one message and mark it read.
    Read {
        /// The message's id.
        id: String,
    },
    /// Delete a message.
    #[command(after_help = "Example:\n  vpcdns admin inbox rm dd9583dc94d56620")]
    Rm {
        /// The message's id.
        id: String,
    },
}

/// Forwarding rule commands.
#[derive(Subcommand)]
pub enum RulesCommand {
    /// List your forwarding rules.
    List,
    /// Create a rule: queries for DOMAIN (and below) from the VPCs of --scope go to the --target servers.
    #[command(
        after_help = "Example:\n  vpcdns admin rules add onprem corp.example. --target 10.1.0.53 --scope vpc-acme"
    )]
    Add {
        /// A name for the rule.
        name: String,
        /// The domain whose queries (and those below it) are forwarded.
        domain: String,
        /// A server address (ip or ip:port); up to 6.
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
        /// VPC ids (yours, or a linked account's).
        #[arg(long, num_args = 1..)]
        scope: Vec<String>,
    },
    /// Delete a rule.
    #[command(after_help = "Example:\n  vpcdns admin rules rm 4c1d…")]
    Rm {
        /// The rule's id (as `rules list` shows it).
        id: String,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
}

/// Zone commands.
#[derive(Subcommand)]
pub enum ZonesCommand {
    /// List your zones.
    List,
    /// Create a zone; its id is <account uid>/<name> (the name in lower case, with its trailing dot).
    #[command(after_help = "Example:\n  vpcdns admin zones create corp.internal --scope vpc-acme vpc-acme-dev")]
    Create {
        /// The zone's name (`corp.internal` or `corp.internal.`).
        name: String,
        /// VPC ids that see the zone (yours, or a linked account's); repeatable.
        #[arg(long = "scope")]
        scope: Vec<String>,
        /// What names the zone does not hold get: nxdomain (the default) or recurse.
        #[arg(long)]
        fallback: Option<String>,
    },
    /// Show a zone and its records.
    Show {
        /// The zone's id (`1001/corp.internal.`; the dot and letter case may differ).
        id: String,
    },
    /// Delete a zone and its records.
    #[command(after_help = "Example:\n  vpcdns admin zones rm 1001/corp.internal.")]
    Rm {
        /// The zone's id.
        id: String,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Change the effective scope: --set replaces it, --add / --remove edit it.
    #[command(after_help = "Example:\n  vpcdns admin zones scope 1001/corp.internal. --add vpc-beta")]
    Scope {
        /// The zone's id.
        id: String,
        /// The whole new scope (none: the zone answers nowhere).
        #[arg(long, num_args = 0.., conflicts_with_all = ["add", "remove"])]
        set: Option<Vec<String>>,
        /// VPC ids to add.
        #[arg(long, num_args = 1..)]
        add: Option<Vec<String>>,
        /// VPC ids to remove.
        #[arg(long, num_args = 1..)]
        remove: Option<Vec<String>>,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// What a name the zone does not hold gets: nxdomain, or recurse (resolved through rules and upstreams).
    #[command(after_help = "Example:\n  vpcdns admin zones fallback 1001/corp.internal. recurse")]
    Fallback {
        /// The zone's id.
        id: String,
        /// nxdomain or recurse.
        fallback: String,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Print the zone as an RFC 1035 master file.
    Export {
        /// The zone's id.
        id: String,
    },
    /// Replace the zone's records with an RFC 1035 master file.
    #[command(after_help = "Example:\n  vpcdns admin zones import 1001/corp.internal. corp.zone")]
    Import {
        /// The zone's id.
        id: String,
        /// The master file ($INCLUDE is refused).
        file: std::path::PathBuf,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
}

/// Record commands.
#[derive(Subcommand)]
pub enum RecordsCommand {
    /// Add a record.
    #[command(after_help = "Examples:\n  vpcdns admin records add 1001/corp.internal. www A 10.0.0.1\n  \
                            vpcdns admin records add 1001/corp.internal. api CNAME www --ttl 60")]
    Add {
        /// The zone's id.
        zone: String,
        #[command(flatten)]
        record: RecordArgs,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Replace a record's name, type, data and TTL.
    #[command(
        after_help = "Example:\n  vpcdns admin records change 1001/corp.internal. cf10c7772f295d41 www A 10.0.0.2"
    )]
    Change {
        /// The zone's id.
        zone: String,
        /// The record's id (as `zones show` lists it).
        id: String,
        #[command(flatten)]
        record: RecordArgs,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Delete a record.
    #[command(after_help = "Example:\n  vpcdns admin records rm 1001/corp.internal. cf10c7772f295d41")]
    Rm {
        /// The zone's id.
        zone: String,
        /// The record's id (as `zones show` lists it).
        id: String,
        /// Only if it is still at this revision (as a list or show gave it); else 412 and nothing changes.
        #[arg(long)]
        if_match: Option<u64>,
    },
}

/// A record as `records add` and `records change` take it.
#[derive(Args)]
pub struct RecordArgs {
    /// The owner name, relative to the zone (`www`), `@` for the apex, or absolute (`www.corp.internal.`).
    name: String,
    /// The record type (A, AAAA, CNAME, MX, TXT, SRV, …).
    #[arg(value_name = "TYPE")]
    rtype: String,
    /// The data in master-file form (`10.0.0.1`, `10 mail`, `"some text"`).
    data: String,
    /// Seconds (default 300).
    #[arg(long)]
    ttl: Option<u32>,
}

impl RecordArgs {
    pub(super) fn body(&self) -> Value {
        json!({ "name": self.name, "type": self.rtype, "ttl": self.ttl, "data": self.data })
    }
}
