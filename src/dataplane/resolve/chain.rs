//! Following a chain across the boundary: where a name a route answered goes next for the asking VPC (a private
//! zone it sees, another route, or nowhere), and the answer assembled from each leg.

use super::lower;
use crate::dataplane::respond::{OwnedRr, RecurseJob, Resolved};
use crate::dns::rdata::rtype;
use crate::dns::Transport;
use crate::model::lookup;
use crate::model::snapshot::{Route, Snapshot, VpcIdx};

/// Walks the chain a route answered for `name`, appending its records (TTLs aged) to `answers`, and cuts it where
/// it enters a name that routes elsewhere for this VPC: a private zone it sees, or another route, whose answer
/// for that name is the one to serve — never this route's. Returns the name the chain reached and where it goes
/// next (`None`: it stays with this route).
pub(super) fn walk_chain(
    snapshot: &Snapshot,
    job: &RecurseJob,
    route: &Route,
    name: &[u8],
    resolved: &Resolved,
    aged: u32,
    answers: &mut Vec<OwnedRr>,
) -> (Vec<u8>, Option<Next>) {
    let mut current = name.to_vec();
    for rr in &resolved.answers {
        let owner_is_current = lower(&rr.owner).as_deref() == Some(current.as_slice());
        answers.push(OwnedRr { ttl: rr.ttl.saturating_sub(aged), ..rr.clone() });
        if rr.rtype != rtype::CNAME || !owner_is_current || job.qtype == rtype::CNAME {
            continue;
        }
        let Some(target) = lower(&rr.rdata) else { break };
        current = target;
        match where_to(snapshot, job.vpc, &current) {
            Where::Private => return (current, Some(Next::Private)),
            Where::Route(r) if r != *route => return (current, Some(Next::Route(r))),
            _ => {}
        }
    }
    (current, None)
}

/// The route's answer as it ends the chain: its rcode and authority (TTLs aged), after the chain so far.
pub(super) fn finished(resolved: &Resolved, answers: Vec<OwnedRr>, aged: u32) -> Resolved {
    let authority = resolved.authority.iter().map(|rr| OwnedRr { ttl: rr.ttl.saturating_sub(aged), ..rr.clone() });
    Resolved { rcode: resolved.rcode, answers, authority: authority.collect(), ede: resolved.ede }
}

/// Completes a chain from the private zone that holds `name` (a public CNAME pointed into it).
pub(super) fn private(snapshot: &Snapshot, job: &RecurseJob, name: &[u8], mut answers: Vec<OwnedRr>) -> Resolved {
    let answer = lookup::lookup(snapshot, job.vpc, name, job.qtype, job.transport);
    // Owners that are "the query name" here mean `name`.
    for mut rr in OwnedRr::from_answer(&answer.answer) {
        if rr.owner.is_empty() {
            rr.owner = name.into();
        }
        answers.push(rr);
    }
    let mut authority = OwnedRr::from_answer(&answer.authority);
    for rr in &mut authority {
        if rr.owner.is_empty() {
            rr.owner = name.into();
        }
    }
    Resolved { rcode: answer.rcode, answers, authority, ede: answer.ede }
}

pub(super) enum Next {
    Private,
    Route(Route),
}

enum Where {
    Private,
    Route(Route),
    Nowhere,
}

/// Who answers `name` (lower-case wire) for the VPC: a private zone, a route, or nobody.
fn where_to(snapshot: &Snapshot, vpc: VpcIdx, name: &[u8]) -> Where {
    let answer = lookup::lookup(snapshot, vpc, name, rtype::A, Transport::Udp);
    match answer.recurse {
        Some(r) if r.target.is_none() => match snapshot.routes().get(r.route as usize) {
            Some(route) => Where::Route(route.clone()),
            None => Where::Nowhere,
        },
        Some(_) => Where::Private,
        None if answer.zone.is_some() => Where::Private,
        None => Where::Nowhere,
    }
}
