//! Resolution outside the private zones: the upstreams, forwarding rules, and the cache in front of them.
//!
//! The lookup decides (`lookup::Recurse`) and `respond::handle_query` hands back a [`RecurseJob`]. A UDP thread
//! first asks [`Resolver::answer_cached`]: a cached answer is encoded on the spot, in the batch (the common case
//! costs a hash lookup and a copy). Otherwise the job goes to [`Resolver::submit`] and a task resolves it, so a slow
//! upstream never holds up an answer for a private name; the reply is sent from that task. TCP awaits
//! [`Resolver::resolve`] in its connection task.
//!
//! Upstream queries go through hickory's name server pool (its retries, server rotation, UDP→TCP on truncation);
//! each route has its own pool, and the cache is keyed by route, so answers obtained through different rules or
//! upstream sets never mix. Private answers are never cached (they are already in memory). The cache holds positive
//! answers until their smallest TTL runs out and negative ones for the SOA's negative TTL (RFC 2308 §5); it is
//! bounded by entries, the least recently used going first.
//!
//! CNAMEs cross the boundary both ways: a private CNAME to a public name continues here (the job's `prefix`), and a
//! public CNAME into a private zone the VPC sees is cut there and completed from the zone.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_resolver::config::{NameServerConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::DnsHandle;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};

use crate::dataplane::respond::{encode_resolved, OwnedRr, RecurseJob, Resolved};
use crate::dataplane::serve::Published;
use crate::dns::rdata::rtype;
use crate::dns::{Ede, Rcode, Transport};
use crate::model::lookup;
use crate::model::snapshot::{Route, Snapshot};
use crate::settings::ResolverSettings;

/// How many times a chain may restart at a CNAME target (as the private lookup: BIND 9.18's limit).
const MAX_RESTARTS: usize = lookup::MAX_RESTARTS;
/// The longest a cached answer is kept, whatever its TTL (BIND's `max-cache-ttl` default is a week; a day here).
const MAX_CACHE_TTL: u32 = 86_400;
/// Negative answers without an SOA are cached this long (RFC 2308 §5 leaves it to the resolver).
const NEGATIVE_WITHOUT_SOA: u32 = 30;

/// EDE 22, No Reachable Authority (RFC 8914 §4.23): no server of the route answered in time.
const EDE_UNREACHABLE: Ede = Ede { code: 22, text: "no upstream answered in time" };
/// EDE 23, Network Error: the servers refused or failed.
const EDE_NETWORK: Ede = Ede { code: 23, text: "upstream failed" };
/// EDE 0, Other: too many resolutions at once.
const EDE_BUSY: Ede = Ede { code: 0, text: "resolver busy" };

/// A resolution's key in the cache: the route client, the account whose VPC asked, the lower-case name and the
/// type. The account keeps tenants apart: what one resolved is never served to another from the cache (nor its
/// aged TTL), so no tenant learns what others look up.
type CacheKey = (u64, Arc<str>, Box<[u8]>, u16);

/// A cached answer of one route for one name and type.
#[derive(Debug)]
struct Cached {
    resolved: Resolved,
    stored: Instant,
    expires: Instant,
}

/// One route's servers and counters.
pub struct RouteClient {
    id: u64,
    pub label: Arc<str>,
    pool: NameServerPool<TokioRuntimeProvider>,
    pub queries: AtomicU64,
    pub failures: AtomicU64,
    pub latency_micros: AtomicU64,
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct ResolverCounters {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub busy: AtomicU64,
}

/// Where a deferred answer goes.
pub enum Reply {
    Udp { socket: Arc<UdpSocket>, peer: SocketAddr, local: SocketAddr, wildcard: bool },
}

pub struct Resolver {
    settings: ResolverSettings,
    published: Published,
    cache: Mutex<lru::LruCache<CacheKey, Arc<Cached>>>,
    clients: Mutex<HashMap<Route, Arc<RouteClient>>>,
    next_id: AtomicU64,
    pending: AtomicUsize,
    /// Resolutions in progress per account (of the VPC that asked), within `max_pending_per_account`.
    pending_by_account: Mutex<HashMap<Arc<str>, usize>>,
    pub counters: ResolverCounters,
    runtime: tokio::runtime::Handle,
    deferred_stats: Mutex<Option<crate::dataplane::metrics::LocalMetrics>>,
    query_log: Option<Arc<crate::dataplane::querylog::QueryLog>>,
}

impl Resolver {
    /// A resolver for the server's runtime (`runtime`): jobs run there.
    pub fn new(
        settings: ResolverSettings,
        published: Published,
        runtime: tokio::runtime::Handle,
        metrics: Option<Arc<crate::dataplane::metrics::Metrics>>,
        query_log: Option<Arc<crate::dataplane::querylog::QueryLog>>,
    ) -> Resolver {
        let entries = NonZeroUsize::new(settings.cache_entries.max(1)).unwrap_or(NonZeroUsize::MIN);
        let deferred_stats = Mutex::new(metrics.clone().map(crate::dataplane::metrics::LocalMetrics::new));
        Resolver {
            settings,
            published,
            cache: Mutex::new(lru::LruCache::new(entries)),
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            pending: AtomicUsize::new(0),
            pending_by_account: Mutex::new(HashMap::new()),
            counters: ResolverCounters::default(),
            runtime,
            deferred_stats,
            query_log,
        }
    }

    /// The client of a route (made on first use; kept while the route exists).
    fn client(&self, route: &Route) -> Option<Arc<RouteClient>> {
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(route) {
            return Some(client.clone());
        }
        let mut options = ResolverOpts::default();
        options.timeout = self.settings.timeout;
        options.attempts = self.settings.attempts;
        options.cache_size = 0;
        options.recursion_desired = true;
        options.edns0 = true;
        options.preserve_intermediates = true;
        // One server at a time, the next only when it fails: a query never fans out to every target of a rule.
        options.num_concurrent_reqs = 1;
        let servers = route.targets.iter().map(|addr| {
            let mut config = NameServerConfig::udp_and_tcp(addr.ip());
            for connection in &mut config.connections {
                connection.port = addr.port();
            }
            config
        });
        // Without the TLS features this cannot fail; with them it would only fail on a broken system store.
        let Ok(tls) = TlsConfig::new() else { return None };
        let cx = Arc::new(PoolContext::new(options, tls));
        let pool = NameServerPool::from_config(servers, cx, TokioRuntimeProvider::default());
        let client = Arc::new(RouteClient {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            label: Arc::from(route.label()),
            pool,
            queries: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            latency_micros: AtomicU64::new(0),
        });
        // Routes that left the state (a rule removed, upstreams changed) go with their counters.
        let snapshot = self.published.load();
        clients.retain(|r, _| snapshot.routes.contains(r));
        clients.insert(route.clone(), client.clone());
        Some(client)
    }

    /// Every route client, for metrics.
    pub fn clients(&self) -> Vec<Arc<RouteClient>> {
        let clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        clients.values().cloned().collect()
    }

    /// How many more seconds the cache holds an answer of `route` for `name` (lower-case wire) and `qtype`, in the
    /// part of the cache of `account` (the only part its explain may see).
    pub fn cache_remaining(&self, route: &Route, account: &str, name: &[u8], qtype: u16) -> Option<u64> {
        let id = self.clients.lock().ok()?.get(route)?.id;
        let cache = self.cache.lock().ok()?;
        let hit = cache.peek(&(id, Arc::from(account), name.into(), qtype))?;
        hit.expires.checked_duration_since(Instant::now()).map(|left| left.as_secs())
    }

    /// Cached entries now.
    pub fn cache_len(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn cached(&self, client: &RouteClient, account: &Arc<str>, name: &[u8], qtype: u16) -> Option<Arc<Cached>> {
        let key: CacheKey = (client.id, account.clone(), name.into(), qtype);
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match cache.get(&key) {
            Some(hit) if hit.expires > Instant::now() => Some(hit.clone()),
            Some(_) => {
                cache.pop(&key);
                None
            }
            None => None,
        }
    }

    /// Answers the job from the cache when that needs nothing else (no CNAME to follow): the answer is in `out`.
    pub fn answer_cached(&self, job: &RecurseJob, out: &mut Vec<u8>) -> Option<Rcode> {
        let client = self.client(&job.route)?;
        let Some(hit) = self.cached(&client, &job.account, &job.target, job.qtype) else {
            self.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if hit.resolved.answers.iter().any(|rr| rr.rtype == rtype::CNAME) && job.qtype != rtype::CNAME {
            // A chain: it may lead into a private zone; the full path handles it (from the cache too).
            return None;
        }
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        let aged = hit.stored.elapsed().as_secs() as u32;
        encode_resolved(job, &hit.resolved, aged, out)
    }

    /// Resolves the job in the background and sends the answer to `reply`. Past `max_pending` jobs in progress the
    /// answer is SERVFAIL at once.
    pub fn submit(self: &Arc<Self>, job: RecurseJob, reply: Reply) {
        if !self.admit(&job.account) {
            self.counters.busy.fetch_add(1, Ordering::Relaxed);
            let mut out = Vec::new();
            if encode_resolved(&job, &Resolved::failure(EDE_BUSY), 0, &mut out).is_some() {
                send(&reply, &out);
            }
            return;
        }
        let this = self.clone();
        self.runtime.spawn(async move {
            let started = Instant::now();
            let mut out = Vec::with_capacity(512);
            let rcode = this.resolve(&job, &mut out).await;
            send(&reply, &out);
            this.release(&job.account);
            this.count_deferred(&job, rcode, started.elapsed());
        });
    }

    /// A place for one more resolution of `account`'s VPCs: within the account's share and the total.
    fn admit(&self, account: &Arc<str>) -> bool {
        let mut by_account = self.pending_by_account.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = by_account.get(account).copied().unwrap_or(0);
        if mine >= self.settings.max_pending_per_account {
            return false;
        }
        if self.pending.fetch_add(1, Ordering::Relaxed) >= self.settings.max_pending {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        by_account.insert(account.clone(), mine + 1);
        true
    }

    fn release(&self, account: &Arc<str>) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
        let mut by_account = self.pending_by_account.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = by_account.get_mut(account) {
            *n -= 1;
            if *n == 0 {
                by_account.remove(account);
            }
        }
    }

    /// Counts (and logs) a deferred answer, as the UDP thread would have.
    fn count_deferred(&self, job: &RecurseJob, rcode: Rcode, latency: Duration) {
        let snapshot = self.published.load_full();
        let outcome = crate::dataplane::respond::Outcome {
            rcode,
            vpc: Some(job.vpc),
            zone: job.zone,
            truncated: false,
            cookie_valid: job.cookie.is_some_and(|c| c.valid),
            unclassified: false,
        };
        if let Some(log) = &self.query_log {
            log.record(&snapshot, &job.packet, job.source, &outcome, latency);
        }
        let Ok(mut stats) = self.deferred_stats.lock() else { return };
        if let Some(stats) = stats.as_mut() {
            stats.record(&snapshot, &outcome, job.transport, latency);
            stats.flush();
        }
    }

    /// Resolves the job within the deadline; the answer (or SERVFAIL with an EDE) is in `out`.
    pub async fn resolve(&self, job: &RecurseJob, out: &mut Vec<u8>) -> Rcode {
        let resolved = match tokio::time::timeout(self.settings.deadline, self.chase(job)).await {
            Ok(Ok(resolved)) => resolved,
            Ok(Err(ede)) => Resolved::failure(ede),
            Err(_) => Resolved::failure(EDE_UNREACHABLE),
        };
        encode_resolved(job, &resolved, 0, out).unwrap_or(Rcode::ServFail)
    }

    /// Follows the name through routes and private zones until an answer, CNAME by CNAME.
    async fn chase(&self, job: &RecurseJob) -> Result<Resolved, Ede> {
        let mut answers: Vec<OwnedRr> = Vec::new();
        let mut route = job.route.clone();
        let mut name = job.target.clone();
        for _ in 0..=MAX_RESTARTS {
            let client = self.client(&route).ok_or(EDE_NETWORK)?;
            let hit = match self.cached(&client, &job.account, &name, job.qtype) {
                Some(hit) => hit,
                None => self.ask(&client, &job.account, &name, job.qtype).await?,
            };
            let aged = hit.stored.elapsed().as_secs() as u32;
            let resolved = &hit.resolved;
            // Walk the chain the route answered: cut it at a CNAME into a private zone this VPC sees.
            let snapshot = self.published.load_full();
            let mut current = name.clone();
            let mut next: Option<Next> = None;
            for rr in &resolved.answers {
                let mut rr = rr.clone();
                rr.ttl = rr.ttl.saturating_sub(aged);
                let owner_is_current = lower(&rr.owner).as_deref() == Some(current.as_slice());
                answers.push(rr.clone());
                if rr.rtype == rtype::CNAME && owner_is_current && job.qtype != rtype::CNAME {
                    let Some(target) = lower(&rr.rdata) else { break };
                    current = target;
                    match where_to(&snapshot, job.vpc, &current) {
                        Where::Private => {
                            next = Some(Next::Private);
                            break;
                        }
                        Where::Route(r) if r != route => {
                            // Another rule (or the upstreams) answers the target: keep what came, ask there if
                            // the chain ends here.
                            next = Some(Next::Route(r));
                        }
                        _ => {}
                    }
                }
            }
            let answered = resolved
                .answers
                .iter()
                .any(|rr| rr.rtype == job.qtype && lower(&rr.owner).as_deref() == Some(current.as_slice()));
            match next {
                Some(Next::Private) => return Ok(self.private(&snapshot, job, &current, answers)),
                _ if answered || resolved.rcode != Rcode::NoError || !resolved.authority.is_empty() => {
                    let mut done = resolved.clone();
                    done.answers = answers;
                    done.authority = resolved
                        .authority
                        .iter()
                        .map(|rr| OwnedRr { ttl: rr.ttl.saturating_sub(aged), ..rr.clone() })
                        .collect();
                    return Ok(done);
                }
                Some(Next::Route(r)) => route = r,
                None if current != name => {}
                None => {
                    // NOERROR, no data, no SOA: as the route said.
                    let mut done = resolved.clone();
                    done.answers = answers;
                    return Ok(done);
                }
            }
            name = current;
        }
        Ok(Resolved { rcode: Rcode::ServFail, answers, authority: Vec::new(), ede: Some(lookup::EDE_MAX_RESTARTS) })
    }

    /// Completes a chain from the private zone that holds `name` (a public CNAME pointed into it).
    fn private(&self, snapshot: &Snapshot, job: &RecurseJob, name: &[u8], mut answers: Vec<OwnedRr>) -> Resolved {
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

    /// One upstream query through the route's pool; the answer is cached.
    async fn ask(&self, client: &RouteClient, account: &Arc<str>, name: &[u8], qtype: u16) -> Result<Arc<Cached>, Ede> {
        let Some(query_name) = name_of(name) else { return Err(EDE_NETWORK) };
        let query = Query::query(query_name, RecordType::from(qtype));
        let started = Instant::now();
        client.queries.fetch_add(1, Ordering::Relaxed);
        let mut responses = client.pool.lookup(query, Default::default());
        let first = futures_util::StreamExt::next(&mut responses).await;
        client.latency_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        let resolved = match first {
            Some(Ok(response)) => {
                from_message(response.metadata.response_code, &response.answers, &response.authorities)
            }
            Some(Err(NetError::Dns(DnsError::NoRecordsFound(no)))) => {
                let authority: Vec<Record> = no.authorities.as_deref().map(<[Record]>::to_vec).unwrap_or_default();
                from_message(no.response_code, &[], &authority)
            }
            Some(Err(e)) => {
                client.failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(route = %client.label, error = %e, "upstream query failed");
                return Err(if is_timeout(&e) { EDE_UNREACHABLE } else { EDE_NETWORK });
            }
            None => {
                client.failures.fetch_add(1, Ordering::Relaxed);
                return Err(EDE_NETWORK);
            }
        };
        if resolved.rcode == Rcode::ServFail || resolved.rcode == Rcode::Refused {
            // Not an answer about the name: never cached, reported as the route's failure.
            client.failures.fetch_add(1, Ordering::Relaxed);
            return Err(EDE_NETWORK);
        }
        let ttl = cache_ttl(&resolved);
        let now = Instant::now();
        let cached = Arc::new(Cached { resolved, stored: now, expires: now + Duration::from_secs(ttl.into()) });
        if ttl > 0 {
            let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.put((client.id, account.clone(), name.into(), qtype), cached.clone());
        }
        Ok(cached)
    }
}

enum Next {
    Private,
    Route(Route),
}

enum Where {
    Private,
    Route(Route),
    Nowhere,
}

/// Who answers `name` (lower-case wire) for the VPC: a private zone, a route, or nobody.
fn where_to(snapshot: &Snapshot, vpc: crate::model::snapshot::VpcIdx, name: &[u8]) -> Where {
    let answer = lookup::lookup(snapshot, vpc, name, rtype::A, Transport::Udp);
    match answer.recurse {
        Some(r) if r.target.is_none() => match snapshot.routes.get(r.route as usize) {
            Some(route) => Where::Route(route.clone()),
            None => Where::Nowhere,
        },
        Some(_) => Where::Private,
        None if answer.zone.is_some() => Where::Private,
        None => Where::Nowhere,
    }
}

/// How long an answer may be cached: its smallest TTL (positive), or the negative TTL of its SOA (RFC 2308 §5:
/// min(SOA TTL, SOA MINIMUM)); at most a day.
fn cache_ttl(resolved: &Resolved) -> u32 {
    let positive = !resolved.answers.is_empty() && resolved.rcode == Rcode::NoError;
    let ttl = if positive {
        resolved.answers.iter().map(|rr| rr.ttl).min().unwrap_or(0)
    } else {
        resolved
            .authority
            .iter()
            .find(|rr| rr.rtype == rtype::SOA)
            .map(|soa| soa.ttl.min(soa_minimum(&soa.rdata).unwrap_or(soa.ttl)))
            .unwrap_or(NEGATIVE_WITHOUT_SOA)
    };
    ttl.min(MAX_CACHE_TTL)
}

/// The MINIMUM field of an uncompressed SOA RDATA: its last four bytes.
fn soa_minimum(rdata: &[u8]) -> Option<u32> {
    let tail = rdata.get(rdata.len().checked_sub(4)?..)?;
    Some(u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]))
}

fn is_timeout(e: &NetError) -> bool {
    matches!(e, NetError::Timeout) || e.to_string().contains("timed out")
}

/// A response's sections as owned records (names uncompressed), with its rcode.
fn from_message(code: ResponseCode, answers: &[Record], authority: &[Record]) -> Resolved {
    let rcode = match code {
        ResponseCode::NoError => Rcode::NoError,
        ResponseCode::NXDomain => Rcode::NxDomain,
        ResponseCode::Refused => Rcode::Refused,
        _ => Rcode::ServFail,
    };
    let owned = |records: &[Record], only_soa: bool| -> Vec<OwnedRr> {
        records.iter().filter(|r| !only_soa || r.record_type() == RecordType::SOA).filter_map(owned_record).collect()
    };
    Resolved { rcode, answers: owned(answers, false), authority: owned(authority, true), ede: None }
}

/// One record with its owner and RDATA as uncompressed wire bytes.
fn owned_record(record: &Record) -> Option<OwnedRr> {
    let owner = record.name.to_bytes().ok()?;
    let mut rdata = Vec::new();
    let mut encoder = BinEncoder::new(&mut rdata);
    // Canonical form: no compression pointers inside RDATA copied into another message.
    encoder.set_canonical_form(true);
    record.data.emit(&mut encoder).ok()?;
    Some(OwnedRr { owner: owner.into(), rtype: u16::from(record.record_type()), ttl: record.ttl, rdata: rdata.into() })
}

/// A hickory name from a wire name.
fn name_of(wire: &[u8]) -> Option<Name> {
    let mut labels = Vec::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            let mut name = Name::from_labels(labels).ok()?;
            name.set_fqdn(true);
            return Some(name);
        }
        labels.push(wire.get(pos + 1..pos + 1 + len as usize)?);
        pos += 1 + len as usize;
    }
    None
}

/// The lower-case copy of a wire name (a CNAME's RDATA is exactly one name).
fn lower(wire: &[u8]) -> Option<Vec<u8>> {
    let len = crate::dns::name::wire_len(wire)?;
    let mut buf = [0u8; crate::dns::name::MAX_NAME_LEN];
    Some(crate::dns::name::lower_into(&wire[..len], &mut buf).to_vec())
}

/// Sends a deferred answer (a lost datagram is the client's to retry, as with any UDP answer).
fn send(reply: &Reply, payload: &[u8]) {
    match reply {
        Reply::Udp { socket, peer, local, wildcard } => {
            let sent = if *wildcard {
                crate::dataplane::serve::batch::send_from(socket, payload, *peer, *local)
            } else {
                socket.send_to(payload, peer).map(|_| ())
            };
            if let Err(e) = sent {
                tracing::debug!(%peer, error = %e, "a resolved answer could not be sent");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(rtype: u16, ttl: u32, rdata: &[u8]) -> OwnedRr {
        OwnedRr { owner: Box::new([]), rtype, ttl, rdata: rdata.into() }
    }

    #[test]
    fn positive_answers_live_for_their_smallest_ttl_negative_for_the_soa() {
        let positive = Resolved {
            rcode: Rcode::NoError,
            answers: vec![rr(rtype::A, 300, &[1, 2, 3, 4]), rr(rtype::A, 60, &[1, 2, 3, 5])],
            authority: vec![],
            ede: None,
        };
        assert_eq!(cache_ttl(&positive), 60);
        // SOA TTL 3600, MINIMUM 120: the negative TTL is 120 (RFC 2308 §5).
        let mut soa = b"\x02ns\x00\x04host\x00".to_vec();
        soa.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 120]);
        let negative = Resolved {
            rcode: Rcode::NxDomain,
            answers: vec![],
            authority: vec![rr(rtype::SOA, 3600, &soa)],
            ede: None,
        };
        assert_eq!(cache_ttl(&negative), 120);
        let bare = Resolved { rcode: Rcode::NxDomain, answers: vec![], authority: vec![], ede: None };
        assert_eq!(cache_ttl(&bare), NEGATIVE_WITHOUT_SOA);
        let huge = Resolved { rcode: Rcode::NoError, answers: vec![rr(rtype::A, u32::MAX, &[1, 2, 3, 4])], ..bare };
        assert_eq!(cache_ttl(&huge), MAX_CACHE_TTL);
    }

    #[test]
    fn wire_names_convert_both_ways() {
        let name = name_of(b"\x03www\x07example\x00").expect("name");
        assert_eq!(name.to_string(), "www.example.");
        assert_eq!(lower(b"\x03WWW\x07Example\x00").as_deref(), Some(&b"\x03www\x07example\x00"[..]));
        assert_eq!(name_of(b"\x03ww"), None);
    }
}
