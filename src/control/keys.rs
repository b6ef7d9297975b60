//! The store's key layout, in one type: [`Key`] names every document by what it is, writes its stored form
//! (`Display`) and reads it back (`Key::parse`), so building and matching keys can never disagree. Id components
//! are escaped so that a `/` inside an id can never forge another key.

use std::borrow::Cow;
use std::fmt;

pub const ACCOUNT: &str = "account/";
pub(crate) const USER: &str = "user/";
pub const VPC: &str = "vpc/";
pub(crate) const LINK: &str = "link/";
pub const ZONE: &str = "zone/";
pub(crate) const SCOPE: &str = "scope/";
pub(crate) const RECORD: &str = "record/";
pub(crate) const KEY: &str = "key/";
pub(crate) const LINK_REQUEST: &str = "linkreq/";
pub(crate) const BLOCK: &str = "block/";
pub(crate) const INBOX: &str = "inbox/";
pub(crate) const AUDIT: &str = "audit/";
pub(crate) const USAGE: &str = "usage/";
/// Usage rolled up per hour, then per day (see `control::retention`).
pub(crate) const USAGE_HOURS: &str = "usageh/";
pub(crate) const USAGE_DAYS: &str = "usaged/";
pub(crate) const RULE: &str = "rule/";
/// The store's own bookkeeping (its key layout version).
pub(crate) const META: &str = "meta/";
/// The first outcome of a change sent with an `Idempotency-Key`.
pub(crate) const IDEMPOTENCY: &str = "idem/";
/// A running node's name, held under its lease (shared stores).
pub(crate) const NODE: &str = "node/";

/// Every prefix whose documents are folded into memory: what start-up reads. The rest — audit entries and usage
/// buckets (history, read on demand and bounded by retention), node leases and `meta/` — is never read whole, so
/// start-up costs the same however much history there is.
pub(crate) const FOLDED: [&str; 13] =
    [ACCOUNT, USER, VPC, LINK, ZONE, SCOPE, RECORD, KEY, LINK_REQUEST, BLOCK, INBOX, RULE, IDEMPOTENCY];

/// Whether a key's document is folded into memory (see [`FOLDED`]).
pub(crate) fn is_folded(key: &str) -> bool {
    FOLDED.iter().any(|p| key.starts_with(p))
}

/// How much time one usage bucket covers: a minute while fresh, then an hour, then a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Span {
    Minute,
    Hour,
    Day,
}

impl Span {
    pub(crate) const ALL: [Span; 3] = [Span::Minute, Span::Hour, Span::Day];

    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Span::Minute => USAGE,
            Span::Hour => USAGE_HOURS,
            Span::Day => USAGE_DAYS,
        }
    }

    /// Its length in minutes (a bucket's key names its first minute, a multiple of this).
    pub(crate) fn minutes(self) -> u64 {
        match self {
            Span::Minute => 1,
            Span::Hour => 60,
            Span::Day => 1440,
        }
    }

    /// The span buckets of this one are rolled into.
    pub(crate) fn next(self) -> Option<Span> {
        match self {
            Span::Minute => Some(Span::Hour),
            Span::Hour => Some(Span::Day),
            Span::Day => None,
        }
    }
}

/// A key of the store, by what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key<'a> {
    Account {
        uid: Cow<'a, str>,
    },
    User {
        account: Cow<'a, str>,
        name: Cow<'a, str>,
    },
    Vpc {
        id: Cow<'a, str>,
    },
    /// `account` may use `linked`'s VPCs.
    Link {
        account: Cow<'a, str>,
        linked: Cow<'a, str>,
    },
    Zone {
        id: Cow<'a, str>,
    },
    Scope {
        zone: Cow<'a, str>,
    },
    Record {
        zone: Cow<'a, str>,
        id: Cow<'a, str>,
    },
    Access {
        id: Cow<'a, str>,
    },
    LinkRequest {
        id: Cow<'a, str>,
    },
    /// `account` blocks `blocked`'s link requests.
    Block {
        account: Cow<'a, str>,
        blocked: Cow<'a, str>,
    },
    Inbox {
        account: Cow<'a, str>,
        id: Cow<'a, str>,
    },
    Rule {
        id: Cow<'a, str>,
    },
    /// An audit entry of `account` (the account leads, so a tenant's read is one range).
    Audit {
        account: Cow<'a, str>,
        millis: u64,
        event: Cow<'a, str>,
    },
    /// A usage bucket: the owner billed, its span and first minute, the node that counted (each node writes only
    /// its own minutes; roll-ups keep the node).
    Usage {
        span: Span,
        owner: Cow<'a, str>,
        minute: u64,
        node: Cow<'a, str>,
    },
    /// The first outcome of a change `scope` (an account uid, or `operator`) sent with idempotency key `key`.
    Idempotency {
        scope: Cow<'a, str>,
        key: Cow<'a, str>,
    },
    /// A running node's name (etcd: held under the node's lease).
    Node {
        name: Cow<'a, str>,
    },
    /// The store's own bookkeeping.
    Meta,
}

impl<'a> Key<'a> {
    /// The key a stored key names; `None` for a key of no known layout.
    pub(crate) fn parse(key: &'a str) -> Option<Key<'a>> {
        let (kind, rest) = key.split_once('/')?;
        let raw: Vec<&'a str> = rest.split('/').collect();
        let part = |i: usize| raw.get(i).copied().map(unesc);
        let parsed = match (kind, raw.len()) {
            ("account", 1) => Key::Account { uid: part(0)? },
            ("user", 2) => Key::User { account: part(0)?, name: part(1)? },
            ("vpc", 1) => Key::Vpc { id: part(0)? },
            ("link", 2) => Key::Link { account: part(0)?, linked: part(1)? },
            ("zone", 1) => Key::Zone { id: part(0)? },
            ("scope", 1) => Key::Scope { zone: part(0)? },
            ("record", 2) => Key::Record { zone: part(0)?, id: part(1)? },
            ("key", 1) => Key::Access { id: part(0)? },
            ("linkreq", 1) => Key::LinkRequest { id: part(0)? },
            ("block", 2) => Key::Block { account: part(0)?, blocked: part(1)? },
            ("inbox", 2) => Key::Inbox { account: part(0)?, id: part(1)? },
            ("rule", 1) => Key::Rule { id: part(0)? },
            ("audit", 2) => {
                let (millis, event) = raw.get(1)?.split_once('-')?;
                Key::Audit { account: part(0)?, millis: millis.parse().ok()?, event: unesc(event) }
            }
            ("usage" | "usageh" | "usaged", 3) => {
                let span = Span::ALL.into_iter().find(|s| s.prefix().strip_suffix('/') == Some(kind))?;
                Key::Usage { span, owner: part(0)?, minute: raw.get(1)?.parse().ok()?, node: part(2)? }
            }
            ("idem", 2) => Key::Idempotency { scope: part(0)?, key: part(1)? },
            ("node", 1) => Key::Node { name: part(0)? },
            ("meta", _) => Key::Meta,
            _ => return None,
        };
        Some(parsed)
    }

    /// Whether a document under this key is part of the served model's structure (VPCs, scopes, rules, links,
    /// accounts): a change to one may change what every VPC sees.
    pub(crate) fn is_structure(&self) -> bool {
        matches!(
            self,
            Key::Account { .. }
                | Key::User { .. }
                | Key::Vpc { .. }
                | Key::Link { .. }
                | Key::Scope { .. }
                | Key::Rule { .. }
        )
    }
}

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Account { uid } => write!(f, "{ACCOUNT}{}", esc(uid)),
            Key::User { account, name } => write!(f, "{USER}{}/{}", esc(account), esc(name)),
            Key::Vpc { id } => write!(f, "{VPC}{}", esc(id)),
            Key::Link { account, linked } => write!(f, "{LINK}{}/{}", esc(account), esc(linked)),
            Key::Zone { id } => write!(f, "{ZONE}{}", esc(id)),
            Key::Scope { zone } => write!(f, "{SCOPE}{}", esc(zone)),
            Key::Record { zone, id } => write!(f, "{RECORD}{}/{}", esc(zone), esc(id)),
            Key::Access { id } => write!(f, "{KEY}{}", esc(id)),
            Key::LinkRequest { id } => write!(f, "{LINK_REQUEST}{}", esc(id)),
            Key::Block { account, blocked } => write!(f, "{BLOCK}{}/{}", esc(account), esc(blocked)),
            Key::Inbox { account, id } => write!(f, "{INBOX}{}/{}", esc(account), esc(id)),
            Key::Rule { id } => write!(f, "{RULE}{}", esc(id)),
            Key::Audit { account, millis, event } => write!(f, "{AUDIT}{}/{millis:016}-{}", esc(account), esc(event)),
            Key::Usage { span, owner, minute, node } => {
                write!(f, "{}{}/{minute:012}/{}", span.prefix(), esc(owner), esc(node))
            }
            Key::Idempotency { scope, key } => write!(f, "{IDEMPOTENCY}{}/{}", esc(scope), esc(key)),
            Key::Node { name } => write!(f, "{NODE}{}", esc(name)),
            Key::Meta => f.write_str(META),
        }
    }
}

/// What a key names, for people (`zone 1001/corp.internal.`, not its escaped stored form).
pub(crate) fn describe(key: &str) -> String {
    match Key::parse(key) {
        Some(Key::Zone { id }) => format!("zone {id}"),
        Some(Key::Scope { zone }) => format!("the scope of zone {zone}"),
        Some(Key::Record { zone, id }) => format!("record {id} of zone {zone}"),
        Some(Key::User { account, name }) => format!("user {name} of account {account}"),
        Some(Key::Rule { id }) => format!("rule {id}"),
        Some(Key::Vpc { id }) => format!("VPC {id}"),
        Some(Key::Account { uid }) => format!("account {uid}"),
        Some(Key::Access { id }) => format!("key {id}"),
        _ => key.to_string(),
    }
}

/// `%` and `/` escaped, so that ids join into keys unambiguously.
pub(crate) fn esc(part: &str) -> String {
    part.replace('%', "%25").replace('/', "%2F")
}

pub(crate) fn unesc(part: &str) -> Cow<'_, str> {
    // Almost no id holds a '%': no copy then (start-up reads a million record keys).
    if part.contains('%') {
        Cow::Owned(part.replace("%2F", "/").replace("%25", "%"))
    } else {
        Cow::Borrowed(part)
    }
}

// The stored form of each key, for the writers (`Plan::put(keys::zone(id), …)`).

pub fn account(uid: &str) -> String {
    Key::Account { uid: uid.into() }.to_string()
}
pub fn user(uid: &str, name: &str) -> String {
    Key::User { account: uid.into(), name: name.into() }.to_string()
}
pub fn vpc(id: &str) -> String {
    Key::Vpc { id: id.into() }.to_string()
}
pub fn link(account: &str, linked: &str) -> String {
    Key::Link { account: account.into(), linked: linked.into() }.to_string()
}
pub fn zone(id: &str) -> String {
    Key::Zone { id: id.into() }.to_string()
}
pub fn scope(id: &str) -> String {
    Key::Scope { zone: id.into() }.to_string()
}
/// The prefix of every record of a zone.
pub fn records(zone: &str) -> String {
    format!("{RECORD}{}/", esc(zone))
}
/// (Claimed only on etcd: an embedded store has one node.)
#[cfg(any(test, feature = "etcd"))]
pub(crate) fn node(name: &str) -> String {
    Key::Node { name: name.into() }.to_string()
}
pub(crate) fn idempotency(scope: &str, key: &str) -> String {
    Key::Idempotency { scope: scope.into(), key: key.into() }.to_string()
}
pub fn record(zone: &str, rid: &str) -> String {
    Key::Record { zone: zone.into(), id: rid.into() }.to_string()
}
pub(crate) fn access_key(id: &str) -> String {
    Key::Access { id: id.into() }.to_string()
}
pub(crate) fn link_request(id: &str) -> String {
    Key::LinkRequest { id: id.into() }.to_string()
}
pub fn block(account: &str, blocked: &str) -> String {
    Key::Block { account: account.into(), blocked: blocked.into() }.to_string()
}
pub fn inbox(account: &str, id: &str) -> String {
    Key::Inbox { account: account.into(), id: id.into() }.to_string()
}
pub fn rule(id: &str) -> String {
    Key::Rule { id: id.into() }.to_string()
}
pub fn audit(account: &str, millis: u64, event: &str) -> String {
    Key::Audit { account: account.into(), millis, event: event.into() }.to_string()
}
pub fn usage(owner: &str, minute: u64, node: &str) -> String {
    usage_bucket(Span::Minute, owner, minute, node)
}
pub(crate) fn usage_bucket(span: Span, owner: &str, minute: u64, node: &str) -> String {
    Key::Usage { span, owner: owner.into(), minute, node: node.into() }.to_string()
}

/// The (zone id, record id) of a record key.
pub(crate) fn parse_record(key: &str) -> Option<(String, crate::model::state::RecordId)> {
    match Key::parse(key)? {
        Key::Record { zone, id } => Some((zone.into_owned(), id.as_ref().into())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_reads_back_as_written() {
        let odd = "a/b%c";
        let keys = [
            Key::Account { uid: odd.into() },
            Key::User { account: "1".into(), name: odd.into() },
            Key::Vpc { id: odd.into() },
            Key::Link { account: "1".into(), linked: "2".into() },
            Key::Zone { id: "1/corp.internal.".into() },
            Key::Scope { zone: "1/corp.internal.".into() },
            Key::Record { zone: "1/corp.internal.".into(), id: "g1~abc".into() },
            Key::Access { id: odd.into() },
            Key::LinkRequest { id: "r".into() },
            Key::Block { account: "1".into(), blocked: "2".into() },
            Key::Inbox { account: "1".into(), id: "m".into() },
            Key::Rule { id: odd.into() },
            Key::Audit { account: "1".into(), millis: 1_700_000_000_000, event: "ev-1".into() },
            Key::Usage { span: Span::Minute, owner: "1".into(), minute: 28_000_000, node: "n/1".into() },
            Key::Usage { span: Span::Hour, owner: "1".into(), minute: 28_000_020, node: "n".into() },
            Key::Usage { span: Span::Day, owner: "1".into(), minute: 28_000_800, node: "n".into() },
            Key::Meta,
        ];
        for key in keys {
            let text = key.to_string();
            assert_eq!(Key::parse(&text).as_ref(), Some(&key), "{text}");
        }
    }

    #[test]
    fn escaping_keeps_ids_from_forging_keys() {
        assert_eq!(zone("1/../x"), "zone/1%2F..%2Fx");
        assert_eq!(Key::parse("zone/a/b"), None, "an unescaped / is no zone key");
        assert_eq!(Key::parse("nonsense/x"), None);
        assert_eq!(Key::parse("record/z"), None, "a record key names its zone and its id");
        assert_eq!(parse_record(&record("1/z.", "g~r")), Some(("1/z.".to_string(), "g~r".into())));
        assert_eq!(audit("1", 5, "e"), "audit/1/0000000000000005-e");
        assert_eq!(usage("1", 7, "n"), "usage/1/000000000007/n");
        assert_eq!(usage_bucket(Span::Hour, "1", 60, "n"), "usageh/1/000000000060/n");
        assert!(!is_folded(&usage_bucket(Span::Day, "1", 0, "n")) && !is_folded(&audit("1", 0, "e")));
        assert!(is_folded(&record("1/z.", "r")) && is_folded(&idempotency("1", "k")));
        assert!(!is_folded("meta/layout") && !is_folded(&node("n")));
        assert_eq!(records("1/z."), "record/1%2Fz./");
    }
}
