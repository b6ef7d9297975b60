//! Validation of the state model: every rule that spans items, checked on [`State`] rather than on a file.
//!
//! `validate` collects every problem before failing, so an operator fixes a configuration in one pass. It only
//! reads the state; it never builds tables. The rules are the product's contract: who may bind which VPC to which
//! zone, which zone contents a private zone may hold, and which VPC prefixes can coexist on one listener.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use ipnet::IpNet;

use crate::dns::name::Name;
use crate::model::state::{Changes, State, Zone};

mod records;
mod tenancy;

use records::check_zone_records;
use tenancy::{check_identities, check_prefixes, check_views};
pub(crate) use tenancy::{shadowed, BindingKind, Shadowed};

/// Every problem found in a state, each naming the offending item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n  "))]
pub struct Problems(pub Vec<String>);

/// Checks every rule; `Ok` means the state may be compiled and served.
pub fn validate(state: &State) -> Result<(), Problems> {
    validate_changed(state, None)
}

/// As [`validate`], but the record rules (which are local to one owner name) run only on what changed: every
/// record of a zone marked `full`, and the records at the listed owners of the others. Everything else — accounts,
/// links, scopes, views, rules, prefixes — is checked whole when the structure changed, and not at all when only
/// zone content did (none of those rules reads records). Given the state before the change was valid, the result
/// is the same as `validate`'s, at a cost that grows with neither unchanged zones nor other tenants' items.
pub(crate) fn validate_changed(state: &State, changed: Option<&Changes>) -> Result<(), Problems> {
    let mut p = Vec::new();
    let structure = changed.is_none_or(|c| c.structure);
    if structure {
        check_accounts(state, &mut p);
        check_users(state, &mut p);
        check_vpcs(state, &mut p);
        check_links(state, &mut p);
    }
    for zone in state.zones.values() {
        if structure {
            check_zone_binding(state, zone, &mut p);
        }
        match changed.map(|c| c.zones.get(&zone.id)) {
            None => check_zone_records(zone, state.served.limits.max_rrset, None, &mut p),
            Some(Some(dirty)) if dirty.full => check_zone_records(zone, state.served.limits.max_rrset, None, &mut p),
            Some(Some(dirty)) => check_zone_records(zone, state.served.limits.max_rrset, Some(&dirty.owners), &mut p),
            Some(None) => {}
        }
    }
    if structure {
        check_rules(state, &mut p);
        check_views(state, &mut p);
        check_prefixes(state, &mut p);
        check_identities(state, &mut p);
    }
    check_quotas(state, structure, &mut p);
    if p.is_empty() {
        Ok(())
    } else {
        Err(Problems(p))
    }
}

/// `[a-z][a-z0-9._-]{1,63}`: starts with a letter, so a username is never all digits and never a uid.
pub(crate) fn is_valid_username(name: &str) -> bool {
    let bytes = name.as_bytes();
    (2..=64).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[1..].iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
}

fn is_valid_uid(uid: &str) -> bool {
    (1..=32).contains(&uid.len()) && uid.bytes().all(|b| b.is_ascii_digit())
}

/// A bare address (`local@domain`), as lettre parses it for delivery: no display name, no angle brackets, no list,
/// so what is stored is exactly where a verification code goes.
fn is_valid_email(email: &str) -> bool {
    // Quoted local parts are valid SMTP but rewritten by relays: refuse them so the stored address is the mailbox.
    email.contains('.')
        && !email.contains('"')
        && email.parse::<lettre::Address>().is_ok_and(|a| AsRef::<str>::as_ref(&a) == email)
}

fn is_valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn check_accounts(state: &State, p: &mut Vec<String>) {
    let mut names = HashSet::new();
    let mut emails = HashSet::new();
    for a in state.accounts.values() {
        if !is_valid_uid(&a.uid.0) {
            p.push(format!("account {:?}: a uid is 1 to 32 decimal digits", a.uid.0));
        }
        if !is_valid_username(&a.name) {
            p.push(format!("account {}: name {:?} must match [a-z][a-z0-9._-]{{1,63}}", a.uid, a.name));
        }
        if !is_valid_email(&a.email) {
            p.push(format!("account {}: {:?} is not an email address", a.uid, a.email));
        }
        if !names.insert(a.name.as_str()) {
            p.push(format!("account {}: name {:?} is already taken", a.uid, a.name));
        }
        if !emails.insert(a.email.to_ascii_lowercase()) {
            p.push(format!("account {}: email {:?} is already taken", a.uid, a.email));
        }
    }
}

fn check_users(state: &State, p: &mut Vec<String>) {
    for u in state.users.values() {
        if !state.accounts.contains_key(&u.account) {
            p.push(format!("user {:?}: unknown account uid {}", u.name, u.account));
        }
        let valid = !u.name.is_empty()
            && u.name.len() <= 64
            && u.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !valid {
            p.push(format!("user {:?} of account {}: name must match [a-z0-9._-]{{1,64}}", u.name, u.account));
        }
        if u.name == "root" {
            p.push(format!("user \"root\" of account {}: the name is the root account's own", u.account));
        }
    }
}

fn check_vpcs(state: &State, p: &mut Vec<String>) {
    for v in state.vpcs.values() {
        if !is_valid_id(&v.id.0) {
            p.push(format!("vpc {:?}: an id is 1 to 128 of [A-Za-z0-9._-]", v.id.0));
        }
        if !state.accounts.contains_key(&v.account) {
            p.push(format!("vpc {}: unknown account uid {}", v.id, v.account));
        }
        if v.cidrs.is_empty() {
            p.push(format!("vpc {}: no cidrs: it could never match a query", v.id));
        }
        for l in &v.listeners {
            if !state.served.listen.iter().any(|s| listener_covers(*s, *l)) {
                p.push(format!(
                    "vpc {}: listener {l} is not one of [server].listen, so no query can arrive on it",
                    v.id
                ));
            }
        }
    }
}

/// True when a socket bound to `bound` receives packets addressed to `local`.
fn listener_covers(bound: SocketAddr, local: SocketAddr) -> bool {
    bound.port() == local.port()
        && (bound.ip() == local.ip() || (bound.ip().is_unspecified() && bound.is_ipv4() == local.is_ipv4()))
}

fn check_links(state: &State, p: &mut Vec<String>) {
    for link in &state.links {
        let (Some(from), Some(to)) = (state.accounts.get(&link.account), state.accounts.get(&link.linked)) else {
            p.push(format!("link {} -> {}: unknown account", link.account, link.linked));
            continue;
        };
        if link.account == link.linked {
            p.push(format!("link {} -> {}: an account cannot link itself", from.name, to.name));
        }
        if from.site != to.site {
            p.push(format!(
                "link {} -> {}: accounts of different sites ({} and {}) cannot be linked",
                from.name, to.name, from.site, to.site
            ));
        }
    }
}

/// Forwarding rules: a known owner, 1 to 6 targets, a scope of VPCs the owner may use (as for zones), and no VPC
/// that sees two rules for the same domain (which one would decide?).
fn check_rules(state: &State, p: &mut Vec<String>) {
    let mut per_vpc: HashSet<(&crate::model::state::VpcId, Name)> = HashSet::new();
    for rule in state.rules.values() {
        // Named only when there is a problem: a state of many rules is checked on every change.
        let what = || format!("forward rule {} ({})", rule.id, rule.domain);
        let domain = rule.domain.lower();
        if !is_valid_id(&rule.id) {
            p.push(format!("{}: the id must be 1 to 64 characters of letters, digits, '.', '_' and '-'", what()));
        }
        if !state.accounts.contains_key(&rule.account) {
            p.push(format!("{}: unknown owner account uid {}", what(), rule.account));
            continue;
        }
        if rule.targets.is_empty() || rule.targets.len() > crate::model::state::MAX_RULE_TARGETS {
            p.push(format!("{}: give 1 to {} target addresses", what(), crate::model::state::MAX_RULE_TARGETS));
        }
        for target in &rule.targets {
            if let Err(why) = check_target(*target, &state.served.allow_targets) {
                p.push(format!("{}: {why}", what()));
            }
        }
        for vpc_id in &rule.scope {
            match state.vpcs.get(vpc_id) {
                None => p.push(format!("{}: scope names unknown vpc {vpc_id}", what())),
                Some(vpc) if !state.may_use_vpcs_of(&rule.account, &vpc.account) => p.push(format!(
                    "{}: scope names vpc {vpc_id}, which is neither the rule owner's nor of an account it has linked",
                    what()
                )),
                Some(_) => {
                    if !per_vpc.insert((vpc_id, domain.clone())) {
                        p.push(format!("{}: vpc {vpc_id} already sees another rule for {}", what(), rule.domain));
                    }
                }
            }
        }
    }
}

/// Where a forwarding rule may send queries: never to an address that is no server (unspecified, multicast,
/// broadcast, port 0); to loopback and link-local addresses (this host, its metadata services) only where the
/// operator allows them (`[resolver] allow_targets`).
pub(crate) fn check_target(target: SocketAddr, allow: &[IpNet]) -> Result<(), String> {
    let ip = crate::model::classify::normalize_ip(target.ip());
    if target.port() == 0 {
        return Err(format!("target {target}: port 0 is no server"));
    }
    let never = match ip {
        std::net::IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        std::net::IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    };
    if never {
        return Err(format!("target {target}: an unspecified, multicast or broadcast address is no server"));
    }
    let local = match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.is_unicast_link_local(),
    };
    if local && !allow.iter().any(|net| net.contains(&ip)) {
        return Err(format!(
            "target {target}: loopback and link-local targets reach this host or its metadata services; the \
             operator allows them with [resolver] allow_targets"
        ));
    }
    Ok(())
}

fn check_zone_binding(state: &State, zone: &Zone, p: &mut Vec<String>) {
    let what = format!("zone {} ({})", zone.name, zone.id);
    if !state.accounts.contains_key(&zone.account) {
        p.push(format!("{what}: unknown owner account uid {}", zone.account));
        return;
    }
    let mut seen = HashSet::new();
    for vpc_id in &zone.scope {
        if !seen.insert(vpc_id) {
            p.push(format!("{what}: scope lists vpc {vpc_id} twice"));
            continue;
        }
        match state.vpcs.get(vpc_id) {
            None => p.push(format!("{what}: scope names unknown vpc {vpc_id}")),
            Some(vpc) if !state.may_use_vpcs_of(&zone.account, &vpc.account) => p.push(format!(
                "{what}: scope names vpc {vpc_id}, which is neither the zone owner's nor of an account it has linked"
            )),
            Some(_) => {}
        }
    }
}

/// Per account: at most so many zones, records, bytes of records and forwarding rules (`[limits]`).
fn check_quotas(state: &State, rules_changed: bool, p: &mut Vec<String>) {
    let limits = state.served.limits;
    let mut per_account: HashMap<&crate::model::state::Uid, (usize, usize, usize)> = HashMap::new();
    for zone in state.zones.values() {
        let entry = per_account.entry(&zone.account).or_default();
        entry.0 += 1;
        entry.1 += zone.records.len();
        entry.2 += zone.records.bytes();
    }
    let mut rules: HashMap<&crate::model::state::Uid, usize> = HashMap::new();
    for rule in state.rules.values().filter(|_| rules_changed) {
        *rules.entry(&rule.account).or_default() += 1;
    }
    for (account, n) in rules.into_iter().filter(|(_, n)| *n > limits.max_rules_per_account) {
        p.push(format!("account {account} owns {n} forwarding rules; the limit is {}", limits.max_rules_per_account));
    }
    for (account, (zones, records, bytes)) in per_account {
        if bytes > limits.max_record_bytes_per_account {
            p.push(format!(
                "account {account} holds {bytes} bytes of records; the limit is {}",
                limits.max_record_bytes_per_account
            ));
        }
        if zones > limits.max_zones_per_account {
            p.push(format!("account {account} owns {zones} zones; the limit is {}", limits.max_zones_per_account));
        }
        if records > limits.max_records_per_account {
            p.push(format!(
                "account {account} holds {records} records; the limit is {}",
                limits.max_records_per_account
            ));
        }
    }
}

/// A link being created (from a file, the API or the operator) must name an account that owns at least one VPC, as
/// the service we model requires. This is a rule of creation, not an invariant: removing the last VPC of a linked
/// account later is allowed (it simply leaves every scope).
pub(crate) fn check_new_link(
    state: &State,
    account: &crate::model::state::Uid,
    linked: &crate::model::state::Uid,
) -> Result<(), String> {
    if state.vpcs.values().any(|v| &v.account == linked) {
        return Ok(());
    }
    let name =
        |uid: &crate::model::state::Uid| state.accounts.get(uid).map_or_else(|| uid.0.clone(), |a| a.name.clone());
    Err(format!("link {} -> {}: {} has no VPC to associate", name(account), name(linked), name(linked)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, rule, zone};

    #[test]
    fn emails_are_bare_addresses() {
        assert!(is_valid_email("root@acme.example"));
        for bad in [
            "x<attacker@evil.example>",
            "\"q\"@d.example",
            "a,b@c.example",
            "a@b",
            "root@acme.example\r\nBcc: x@y.example",
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
    }

    /// Accounts 1 (acme, v1) and 2 (beta, vb), acme linked beta; plus `extra`.
    fn linked(extra: &str) -> Result<(), Problems> {
        validate(&testing::loaded(&format!("{}{extra}", testing::linked_beta())))
    }

    /// A linked account's zone or rule never takes a name the VPC's owner binds there, whichever binds with a zone
    /// and whichever with a rule, at the name or below it; above it, or in its own VPC, it adds service.
    #[test]
    fn a_linked_account_never_takes_the_vpc_owners_names() {
        let owner_binds = [zone("2", "corp.internal.", "vb"), rule("2", "beta-r", "corp.internal.", "vb")];
        for own in &owner_binds {
            for foreign in [
                zone("1", "corp.internal.", "vb"),
                zone("1", "x.corp.internal.", "vb"),
                rule("1", "acme-r", "corp.internal.", "vb"),
                rule("1", "acme-r", "deep.x.corp.internal.", "vb"),
            ] {
                let problems = linked(&format!("{own}{foreign}")).expect_err("refused");
                assert!(problems.0.iter().any(|p| p.contains("would shadow")), "{own}{foreign}: {problems}");
            }
            assert!(linked(&format!("{own}{}", rule("1", "acme-r", "internal.", "vb"))).is_ok(), "above: fine");
            assert!(linked(&format!("{own}{}", rule("1", "acme-r", "corp.internal.", "v1"))).is_ok(), "own VPC");
        }
    }

    #[test]
    fn rule_targets_must_be_servers() {
        for target in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "10.0.0.1:0", "[ff02::1]:53", "[::]:53"] {
            let r =
                format!("[[forward_rules]]\nid = \"r\"\naccount = \"1\"\ndomain = \"x.\"\ntargets = [\"{target}\"]\n");
            let problems = linked(&r).expect_err(target);
            assert!(problems.0.iter().any(|p| p.contains("no server")), "{target}: {problems}");
        }
        let local = |target: &str, allow: &[&str]| {
            let addr: SocketAddr = target.parse().expect("addr");
            let allow: Vec<IpNet> = allow.iter().map(|a| a.parse().expect("net")).collect();
            check_target(addr, &allow)
        };
        assert!(local("127.0.0.1:53", &[]).is_err());
        assert!(local("169.254.169.254:53", &[]).is_err());
        assert!(local("[fe80::1]:53", &[]).is_err());
        assert!(local("[::ffff:127.0.0.1]:53", &[]).is_err(), "mapped loopback");
        assert!(local("127.0.0.1:53", &["127.0.0.0/8"]).is_ok());
        assert!(local("10.1.2.3:53", &[]).is_ok());
    }

    #[test]
    fn a_sub_user_cannot_be_named_root() {
        let user = "[[users]]\naccount = \"1\"\nname = \"root\"\npolicies = [\"DNSFullAccess\"]\n";
        let problems = linked(user).expect_err("refused");
        assert!(problems.0.iter().any(|p| p.contains("root account's own")), "{problems}");
    }

    #[test]
    fn usernames_never_look_like_uids() {
        assert!(is_valid_username("acme"));
        assert!(!is_valid_username("1234"));
        assert!(!is_valid_username("a"));
        assert!(!is_valid_username("Acme"));
        assert!(!is_valid_username(&"a".repeat(65)));
    }

    fn overlapping(endpoints: [&str; 2], cloud: &str) -> Result<(), Problems> {
        let vpc = |id: &str, account: &str, extra: &str| {
            format!("[[vpcs]]\nid = \"{id}\"\naccount = \"{account}\"\ncidrs = [\"172.16.0.0/12\"]\n{extra}")
        };
        let a = if endpoints[0].is_empty() { String::new() } else { format!("endpoints = [\"{}\"]\n", endpoints[0]) };
        let b = if endpoints[1].is_empty() { String::new() } else { format!("endpoints = [\"{}\"]\n", endpoints[1]) };
        let b = format!("{b}{cloud}");
        linked(&format!("{}{}", vpc("va", "1", &a), vpc("vb2", "2", &b)))
    }

    /// Tenants' prefixes may overlap when their front ends tell them apart; an identity names one VPC.
    #[test]
    fn overlapping_tenants_are_told_apart_by_identity() {
        assert!(overlapping(["vpce-a", "alibaba:ep-b"], "").is_ok());
        assert!(overlapping(["vpce-a", ""], "cloud_id = \"vpc-77\"\n").is_ok(), "a cloud id identifies too");
        let ambiguous = overlapping(["", ""], "").expect_err("no identity: ambiguous");
        assert!(ambiguous.0.iter().any(|p| p.contains("would be ambiguous")), "{ambiguous}");
        let twice = overlapping(["vpce-a", "vpce-a"], "").expect_err("one endpoint, two VPCs");
        assert!(twice.0.iter().any(|p| p.contains("already names vpc va")), "{twice}");
        let stolen = overlapping(["vpce-a", ""], "cloud_id = \"va\"\n").expect_err("another VPC's id");
        assert!(stolen.0.iter().any(|p| p.contains("cloud_id va already names vpc va")), "{stolen}");
        let bad = overlapping(["ep-1", "vpce-b"], "").expect_err("not an endpoint");
        assert!(bad.0.iter().any(|p| p.contains("expected an AWS endpoint id")), "{bad}");
    }
}
