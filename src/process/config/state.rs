//! The file's served state (`[[accounts]]`, `[[users]]`, `[[vpcs]]`, `[[links]]`, `[[zones]]`, `[[forward_rules]]`)
//! into the state model's types: names parsed, zone files read, link names resolved to uids. Cross-item rules are
//! `validate`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::raw::{RawAccount, RawConfig, RawLink, RawRecord, RawRule, RawUser, RawVpc, RawZone};
use super::{Builder, ConfigError};
use crate::dns::name::Name;
use crate::dns::rdata::{self, RData, Record};
use crate::dns::zonefile;
use crate::model::state::{
    parse_cidr, parse_server_address, records_with_ids, Account, Fallback, ForwardRule, Link, Policy, Site, State, Uid,
    User, Vpc, VpcId, Zone, ZoneId, ZoneRecords,
};
use crate::settings::{Served, DEFAULT_RECORD_TTL};

impl Builder<'_> {
    pub(super) fn state(&mut self, raw: RawConfig, served: Served) -> Result<State, ConfigError> {
        let accounts = self.accounts(raw.accounts);
        let users = self.users(raw.users);
        let vpcs = self.vpcs(raw.vpcs);
        let links = self.links(raw.links, &accounts, &users);
        let rules = self.rules(raw.forward_rules, &vpcs);
        let mut zones = BTreeMap::new();
        for raw_zone in raw.zones {
            if let Some(zone) = self.zone(raw_zone, &vpcs)? {
                if zones.contains_key(&zone.id) {
                    self.problems.push(format!(
                        "zone id {:?} is used twice (give one of the zones an explicit `id`)",
                        zone.id.0
                    ));
                    continue;
                }
                zones.insert(zone.id.clone(), zone);
            }
        }
        Ok(State { revision: self.revision, served, accounts, users, vpcs, links, zones, rules: rules.into() })
    }

    /// `vpcs` lends its ids to the scopes, as for zones.
    fn rules(&mut self, raw: Vec<RawRule>, vpcs: &BTreeMap<VpcId, Vpc>) -> BTreeMap<String, ForwardRule> {
        let mut rules = BTreeMap::new();
        for r in raw {
            let domain = match Name::from_text(&r.domain, Some(&Name::root())) {
                Ok(name) => name,
                Err(e) => {
                    self.problems.push(format!("forward rule {:?}: bad domain {:?}: {e}", r.id, r.domain));
                    continue;
                }
            };
            let mut targets = Vec::new();
            for text in &r.targets {
                match parse_server_address(text) {
                    Some(addr) => targets.push(addr),
                    None => self.problems.push(format!("forward rule {:?}: target {text:?} is not an address", r.id)),
                }
            }
            let scope = r
                .scope
                .iter()
                .map(|v| vpcs.get_key_value(v.as_str()).map_or_else(|| VpcId::new(v), |(id, _)| id.clone()))
                .collect();
            let rule = ForwardRule { id: r.id.clone(), account: Uid(r.account), domain, targets, scope };
            if rules.insert(r.id.clone(), rule).is_some() {
                self.problems.push(format!("forward rule id {:?} is used twice", r.id));
            }
        }
        rules
    }

    fn accounts(&mut self, raw: Vec<RawAccount>) -> BTreeMap<Uid, Account> {
        let mut accounts = BTreeMap::new();
        for a in raw {
            let site = match a.site.as_str() {
                "cn" => Site::Cn,
                "intl" => Site::Intl,
                other => {
                    self.problems.push(format!("account {}: site {other:?} is neither \"cn\" nor \"intl\"", a.uid));
                    continue;
                }
            };
            let account = Account { uid: Uid(a.uid.clone()), name: a.name, email: a.email, site };
            if accounts.insert(account.uid.clone(), account).is_some() {
                self.problems.push(format!("account uid {} is defined twice", a.uid));
            }
        }
        accounts
    }

    fn users(&mut self, raw: Vec<RawUser>) -> BTreeMap<(Uid, String), User> {
        let mut users = BTreeMap::new();
        for u in raw {
            let mut policies = Vec::new();
            for p in &u.policies {
                match p.as_str() {
                    "DNSFullAccess" => policies.push(Policy::DnsFullAccess),
                    "DNSReadOnlyAccess" => policies.push(Policy::DnsReadOnlyAccess),
                    other => self.problems.push(format!(
                        "user {}@{}: unknown policy {other:?} (known: DNSFullAccess, DNSReadOnlyAccess)",
                        u.name, u.account
                    )),
                }
            }
            let key = (Uid(u.account.clone()), u.name.clone());
            let user = User { account: Uid(u.account), name: u.name, policies };
            if users.insert(key, user).is_some() {
                self.problems.push("a user is defined twice in one account".into());
            }
        }
        users
    }

    fn vpcs(&mut self, raw: Vec<RawVpc>) -> BTreeMap<VpcId, Vpc> {
        let mut vpcs = BTreeMap::new();
        for v in raw {
            let mut cidrs = Vec::new();
            for text in &v.cidrs {
                match parse_cidr(text) {
                    Ok(net) => cidrs.push(net),
                    Err(message) => self.problems.push(format!("vpc {}: {message}", v.id)),
                }
            }
            let mut listeners = Vec::new();
            for text in &v.listeners {
                match text.parse::<SocketAddr>() {
                    Ok(addr) => listeners.push(addr),
                    Err(_) => self.problems.push(format!("vpc {}: listener {text:?} is not an address:port", v.id)),
                }
            }
            let vpc = Vpc {
                id: VpcId::new(&v.id),
                account: Uid(v.account),
                region: v.region,
                cidrs,
                listeners,
                query_limit: v.query_limit,
                endpoints: v.endpoints,
                cloud_id: v.cloud_id,
            };
            if vpcs.insert(vpc.id.clone(), vpc).is_some() {
                self.problems.push(format!("vpc id {} is defined twice", v.id));
            }
        }
        vpcs
    }

    /// Resolves each link's `linked` name (email or username) to a uid. A uid, a sub-user or an unknown name is
    /// refused here, because the state model holds only resolved root accounts.
    fn links(
        &mut self,
        raw: Vec<RawLink>,
        accounts: &BTreeMap<Uid, Account>,
        users: &BTreeMap<(Uid, String), User>,
    ) -> BTreeSet<Link> {
        let mut links = BTreeSet::new();
        for l in raw {
            match resolve_root_account(&l.linked, accounts, users) {
                Ok(linked) => {
                    let link = Link { account: Uid(l.account.clone()), linked };
                    if !links.insert(link) {
                        self.problems.push(format!("link from {} to {:?} is listed twice", l.account, l.linked));
                    }
                }
                Err(message) => self.problems.push(format!("link from {} to {:?}: {message}", l.account, l.linked)),
            }
        }
        links
    }

    /// `vpcs` lends its ids to the scope, so that each id is stored once.
    fn zone(&mut self, raw: RawZone, vpcs: &BTreeMap<VpcId, Vpc>) -> Result<Option<Zone>, ConfigError> {
        let origin = match Name::from_text(&raw.name, Some(&Name::root())) {
            Ok(name) => name,
            Err(e) => {
                self.problems.push(format!("zone {:?}: bad name: {e}", raw.name));
                return Ok(None);
            }
        };
        let id = ZoneId(raw.id.clone().unwrap_or_else(|| format!("{}/{}", raw.account, origin.lower())));
        let (records, source) = match (&raw.file, raw.records) {
            (Some(_), Some(_)) => {
                self.problems.push(format!("zone {origin}: give either `file` or `records`, not both"));
                return Ok(None);
            }
            (Some(file), None) => {
                let path = self.base.join(file);
                let loaded = zonefile::read_zone_file(&path, &origin, self.base)?;
                self.watched.push(path.clone());
                self.watched.extend(loaded.included);
                (loaded.records.into_iter().map(|r| (None, r)).collect(), path.display().to_string())
            }
            (None, inline) => {
                let records = self.inline_records(&origin, inline.unwrap_or_default());
                (records, format!("[[zones]] {origin}"))
            }
        };
        let account = Uid(raw.account);
        let scope = raw
            .scope
            .iter()
            .map(|v| vpcs.get_key_value(v.as_str()).map_or_else(|| VpcId::new(v), |(id, _)| id.clone()))
            .collect();
        let records = records_with_ids(records);
        let revision = self.zone_revision(&id, &origin, &account, &records);
        let fallback = match raw.fallback.as_deref().map(Fallback::parse) {
            None => Fallback::NxDomain,
            Some(Some(f)) => f,
            Some(None) => {
                self.problems.push(format!("zone {origin}: fallback must be \"nxdomain\" or \"recurse\""));
                Fallback::NxDomain
            }
        };
        Ok(Some(Zone { id, name: origin, account, scope, records, revision, origin: source, fallback }))
    }

    fn inline_records(&mut self, origin: &Name, raw: Vec<RawRecord>) -> Vec<(Option<String>, Record)> {
        let mut records = Vec::with_capacity(raw.len());
        let mut ids = std::collections::BTreeSet::new();
        for r in raw {
            if let Some(id) = &r.id {
                if id.is_empty() || id.contains(['/', '~']) || !crate::model::records::is_declared_id(id) {
                    self.problems.push(format!("zone {origin}: record id {id:?}: not a record id"));
                    continue;
                }
                if !ids.insert(id.clone()) {
                    self.problems.push(format!("zone {origin}: record id {id:?} given twice"));
                    continue;
                }
            }
            let Some(rtype) = rdata::type_from_mnemonic(&r.rtype) else {
                self.problems.push(format!("zone {origin}: record {:?}: unknown type {:?}", r.name, r.rtype));
                continue;
            };
            let owner = match Name::from_text(&r.name, Some(origin)) {
                Ok(owner) => owner,
                Err(e) => {
                    self.problems.push(format!("zone {origin}: record {:?}: {e}", r.name));
                    continue;
                }
            };
            match RData::from_text(rtype, &r.data, origin) {
                Ok(rdata) => records.push((r.id, Record { owner, ttl: r.ttl.unwrap_or(DEFAULT_RECORD_TTL), rdata })),
                Err(e) => self.problems.push(format!("zone {origin}: record {} {} {:?}: {e}", r.name, r.rtype, r.data)),
            }
        }
        records
    }

    /// Keeps the previous revision when the zone's content is unchanged.
    fn zone_revision(&self, id: &ZoneId, name: &Name, account: &Uid, records: &ZoneRecords) -> u64 {
        self.previous
            .and_then(|prev| prev.zones.get(id))
            .filter(|z| &z.name == name && &z.account == account && &z.records == records)
            .map_or(self.revision, |z| z.revision)
    }
}

/// Resolves a link target named by email or username to a root account's uid. Uids and sub-user principals
/// (`user@account`) are refused with a message that says how to name the account instead.
pub fn resolve_root_account(
    text: &str,
    accounts: &BTreeMap<Uid, Account>,
    users: &BTreeMap<(Uid, String), User>,
) -> Result<Uid, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a link names the account by email or username, not by uid".into());
    }
    if let Some(a) = accounts.values().find(|a| a.email.eq_ignore_ascii_case(text) || a.name == text) {
        return Ok(a.uid.clone());
    }
    if let Some((user, account)) = text.split_once('@') {
        let owner = accounts.values().find(|a| a.name == account || a.uid.0 == account);
        if let Some(owner) = owner {
            if users.contains_key(&(owner.uid.clone(), user.to_string())) {
                return Err(format!("{text:?} is a sub-user of {}; only root accounts can be linked", owner.name));
            }
        }
    }
    Err("no root account has this email or username".into())
}
