//! The rules about a zone's records, local to one owner name: CNAME alone and single, one SOA, at the apex only,
//! RRset sizes, names inside the zone. Checked for every record, or only the owners a change touched.

use std::collections::BTreeSet;

use crate::dns::name::Name;
use crate::dns::rdata::{type_name, RData, Record};
use crate::model::state::Zone;
use smallvec::SmallVec;

/// The per-record rules; with `only`, just the records of the listed (lower-case) owners, found through the
/// zone's owner order, so checking a few owners of a large zone is cheap.
pub(super) fn check_zone_records(zone: &Zone, max_rrset: usize, only: Option<&BTreeSet<Name>>, p: &mut Vec<String>) {
    let what = format!("zone {} ({})", zone.name, zone.origin);
    let apex = zone.name.lower();
    match only {
        None => check_runs(zone.records.values(), &what, apex.wire(), max_rrset, p),
        Some(owners) => {
            for owner in owners {
                check_runs(zone.records.at(owner).map(|(_, r)| r), &what, apex.wire(), max_rrset, p);
            }
        }
    }
}

/// Checks records given in owner order (each owner's records together), record by record and owner by owner.
fn check_runs<'z>(
    records: impl Iterator<Item = &'z Record>,
    what: &str,
    apex: &[u8],
    max_rrset: usize,
    p: &mut Vec<String>,
) {
    let mut run: SmallVec<[&Record; 4]> = SmallVec::new();
    for r in records {
        let owner = r.owner.wire();
        if !crate::dns::name::is_at_or_below(owner, apex) {
            p.push(format!("{what}: record {} {} lies outside the zone", r.owner, type_name(r.rdata.rtype())));
            continue;
        }
        let at_apex = owner.eq_ignore_ascii_case(apex);
        match &r.rdata {
            RData::Dname(_) => p.push(format!("{what}: {} DNAME: private zones do not serve DNAME", r.owner)),
            RData::Ns(_) if !at_apex => p.push(format!(
                "{what}: {} NS: private zones do not delegate (NS is allowed only at the apex)",
                r.owner
            )),
            RData::Soa(_) if !at_apex => p.push(format!("{what}: {} SOA: an SOA belongs only at the apex", r.owner)),
            // The apex always holds SOA and NS (generated when absent), so a CNAME there is beside other data.
            RData::Cname(_) if at_apex => {
                p.push(format!("{what}: {} CNAME: the apex holds SOA and NS, so it cannot hold a CNAME", r.owner))
            }
            _ => {}
        }
        if run.first().is_some_and(|first| !first.owner.wire().eq_ignore_ascii_case(owner)) {
            check_owner(&run, what, apex, max_rrset, p);
            run.clear();
        }
        run.push(r);
    }
    check_owner(&run, what, apex, max_rrset, p);
}

/// The rules about one owner's records together: CNAME alone and single, one SOA, RRset sizes.
fn check_owner(records: &[&Record], what: &str, apex: &[u8], max_rrset: usize, p: &mut Vec<String>) {
    let Some(first) = records.first() else { return };
    let owner = &first.owner;
    let mut cname: Option<&Name> = None;
    let (mut cnames, mut soas) = (0usize, 0usize);
    let mut per_type: SmallVec<[(u16, usize); 4]> = SmallVec::new();
    for r in records {
        match &r.rdata {
            RData::Cname(target) => {
                cnames += 1;
                // Identical CNAME lines are one record (a file may repeat a line); different targets are an error.
                match cname {
                    Some(first) if !first.wire().eq_ignore_ascii_case(target.wire()) => {
                        p.push(format!("{what}: {owner} has more than one CNAME"));
                        return;
                    }
                    Some(_) => {}
                    None => cname = Some(target),
                }
            }
            RData::Soa(_) => soas += 1,
            _ => {}
        }
        let t = r.rdata.rtype();
        match per_type.iter_mut().find(|(rt, _)| *rt == t) {
            Some((_, n)) => *n += 1,
            None => per_type.push((t, 1)),
        }
    }
    if cnames > 0 && records.len() > cnames {
        p.push(format!("{what}: {owner} has a CNAME beside other data"));
    }
    if soas > 1 && owner.wire().eq_ignore_ascii_case(apex) {
        p.push(format!("{what}: more than one SOA at the apex"));
    }
    for (t, n) in per_type.into_iter().filter(|(_, n)| *n > max_rrset) {
        p.push(format!("{what}: {owner} {} has {n} records; an RRset holds at most {max_rrset}", type_name(t)));
    }
}
