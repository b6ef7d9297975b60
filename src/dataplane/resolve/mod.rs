//! Resolution outside the private zones: the upstreams, forwarding rules, and the cache in front of them — an
//! async service with no sockets of its own to clients, no metrics handles and no query log.
//!
//! The lookup decides (`lookup::Recurse`) and `respond::handle` hands back a [`RecurseJob`]. The shell first asks
//! [`Resolver::cached`]: a cached answer is encoded on the spot (the common case costs a hash lookup). Otherwise it
//! awaits [`Resolver::complete`] off the query path (UDP from a task, TCP in its connection's task), so a slow
//! upstream never holds up an answer for a private name; the shell encodes, sends, and counts whatever comes back.
//!
//! Upstream queries go through hickory's name server pool (server rotation, UDP→TCP on truncation), tried
//! `attempts` times within the deadline; each route has its own pool, and the cache is keyed by route and by the
//! asking account, so answers obtained through different rules or upstream sets never mix, nor do tenants'. Private
//! answers are never cached (they are already in memory). The cache holds positive answers until their smallest TTL
//! runs out and negative ones for the SOA's negative TTL (RFC 2308 §5); it is bounded by entries, the least recently
//! used going first.
//!
//! CNAMEs cross the boundary both ways: a private CNAME to a public name continues here (the job's `prefix`), and a
//! chain that enters a name routed elsewhere for this VPC — a private zone it sees, or another route — is cut there
//! and completed through that route.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::Query;
use hickory_proto::rr::{Record, RecordType};
use hickory_resolver::config::{NameServerConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::DnsHandle;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};

use crate::dataplane::respond::{OwnedRr, RecurseJob, Resolution, Resolved};
use crate::dns::rdata::rtype;
use crate::dns::{Ede, Rcode};
use crate::model::lookup;
use crate::model::snapshot::{Route, Snapshot};
use crate::settings::ResolverSettings;

mod chain;
mod upstream;

use chain::{finished, private, walk_chain, Next};
use upstream::{cache_ttl, from_message, is_timeout, name_of};

/// How many times a chain may restart at a CNAME target (as the private lookup: BIND 9.18's limit).
const MAX_RESTARTS: usize = lookup::MAX_RESTARTS;

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
    resolved: Arc<Resolved>,
    stored: Instant,
    expires: Instant,
}

impl Cached {
    fn resolution(&self) -> Resolution {
        let aged = u32::try_from(self.stored.elapsed().as_secs()).unwrap_or(u32::MAX);
        Resolution { resolved: self.resolved.clone(), aged }
    }
}

/// One route's servers and counters.
struct RouteClient {
    id: u64,
    label: Arc<str>,
    pool: NameServerPool<TokioRuntimeProvider>,
    queries: AtomicU64,
    failures: AtomicU64,
    latency_micros: AtomicU64,
}

/// What the resolver has done, for the metrics exporter.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ResolverStats {
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Resolutions refused because too many were in progress.
    pub busy: u64,
    pub cache_entries: usize,
    /// Per route (rule id, or "upstreams"): queries sent, failures, seconds spent waiting.
    pub routes: Vec<RouteStats>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RouteStats {
    pub label: Arc<str>,
    pub queries: u64,
    pub failures: u64,
    pub latency_seconds: f64,
}

pub struct Resolver {
    settings: ResolverSettings,
    cache: Mutex<lru::LruCache<CacheKey, Arc<Cached>>>,
    clients: Mutex<HashMap<Route, Arc<RouteClient>>>,
    next_id: AtomicU64,
    pending: AtomicUsize,
    /// Resolutions in progress per account (of the VPC that asked), within `max_pending_per_account`.
    pending_by_account: Mutex<HashMap<Arc<str>, usize>>,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    busy: AtomicU64,
}

/// A place among the resolutions in progress, given back when dropped.
struct Admission<'r> {
    resolver: &'r Resolver,
    account: Arc<str>,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.resolver.release(&self.account);
    }
}

impl Resolver {
    pub fn new(settings: ResolverSettings) -> Resolver {
        let entries = NonZeroUsize::new(settings.cache_entries.max(1)).unwrap_or(NonZeroUsize::MIN);
        Resolver {
            settings,
            cache: Mutex::new(lru::LruCache::new(entries)),
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            pending: AtomicUsize::new(0),
            pending_by_account: Mutex::new(HashMap::new()),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            busy: AtomicU64::new(0),
        }
    }

    /// The client of a route (made on first use; kept while the route exists in the snapshot being served).
    fn client(&self, route: &Route, snapshot: &Snapshot) -> Option<Arc<RouteClient>> {
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(route) {
            return Some(client.clone());
        }
        let mut options = ResolverOpts::default();
        options.timeout = self.settings.timeout;
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
        clients.retain(|r, _| snapshot.routes().contains(r));
        clients.insert(route.clone(), client.clone());
        Some(client)
    }

    /// What the resolver has done so far.
    pub(crate) fn stats(&self) -> ResolverStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let routes = clients
            .values()
            .map(|c| RouteStats {
                label: c.label.clone(),
                queries: load(&c.queries),
                failures: load(&c.failures),
                latency_seconds: load(&c.latency_micros) as f64 / 1e6,
            })
            .collect();
        ResolverStats {
            cache_hits: load(&self.cache_hits),
            cache_misses: load(&self.cache_misses),
            busy: load(&self.busy),
            cache_entries: self.cache.lock().map(|c| c.len()).unwrap_or(0),
            routes,
        }
    }

    /// How many more seconds the cache holds an answer of `route` for `name` (lower-case wire) and `qtype`, in the
    /// part of the cache of `account` (the only part its explain may see).
    pub(crate) fn cache_remaining(&self, route: &Route, account: &str, name: &[u8], qtype: u16) -> Option<u64> {
        let id = self.clients.lock().ok()?.get(route)?.id;
        let cache = self.cache.lock().ok()?;
        let hit = cache.peek(&(id, Arc::from(account), name.into(), qtype))?;
        hit.expires.checked_duration_since(Instant::now()).map(|left| left.as_secs())
    }

    fn lookup_cache(&self, client: &RouteClient, account: &Arc<str>, name: &[u8], qtype: u16) -> Option<Arc<Cached>> {
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

    /// The job's answer from the cache, when that needs nothing else (no CNAME to follow). `snapshot` is the one
    /// the job was made under.
    pub fn cached(&self, job: &RecurseJob, snapshot: &Snapshot) -> Option<Resolution> {
        let client = self.client(&job.route, snapshot)?;
        let Some(hit) = self.lookup_cache(&client, &job.account, &job.target, job.qtype) else {
            self.cache_misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if hit.resolved.answers.iter().any(|rr| rr.rtype == rtype::CNAME) && job.qtype != rtype::CNAME {
            // A chain: it may lead into a name routed elsewhere; `complete` handles it (from the cache too).
            return None;
        }
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some(hit.resolution())
    }

    /// Resolves the job within the deadline: SERVFAIL with an Extended DNS Error when no server answered in time,
    /// and at once when `max_pending` resolutions (or the account's share) are in progress. `snapshot` is the one
    /// the job was made under.
    pub async fn complete(&self, job: &RecurseJob, snapshot: &Snapshot) -> Resolution {
        let Some(_admission) = self.admit(&job.account) else {
            self.busy.fetch_add(1, Ordering::Relaxed);
            return Resolution::fresh(Resolved::failure(EDE_BUSY));
        };
        let resolved = match tokio::time::timeout(self.settings.deadline, self.chase(job, snapshot)).await {
            Ok(Ok(resolved)) => resolved,
            Ok(Err(ede)) => Resolved::failure(ede),
            Err(_) => Resolved::failure(EDE_UNREACHABLE),
        };
        Resolution::fresh(resolved)
    }

    /// A place for one more resolution of `account`'s VPCs: within the account's share and the total.
    fn admit(&self, account: &Arc<str>) -> Option<Admission<'_>> {
        let mut by_account = self.pending_by_account.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = by_account.get(account).copied().unwrap_or(0);
        if mine >= self.settings.max_pending_per_account {
            return None;
        }
        if self.pending.fetch_add(1, Ordering::Relaxed) >= self.settings.max_pending {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        by_account.insert(account.clone(), mine + 1);
        Some(Admission { resolver: self, account: account.clone() })
    }

    fn release(&self, account: &Arc<str>) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
        let mut by_account = self.pending_by_account.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = by_account.get_mut(account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_account.remove(account);
            }
        }
    }

    /// Follows the name through routes and private zones until an answer, CNAME by CNAME.
    async fn chase(&self, job: &RecurseJob, snapshot: &Snapshot) -> Result<Resolved, Ede> {
        let mut answers: Vec<OwnedRr> = Vec::new();
        let mut route = job.route.clone();
        let mut name = job.target.clone();
        for _ in 0..=MAX_RESTARTS {
            let client = self.client(&route, snapshot).ok_or(EDE_NETWORK)?;
            let hit = match self.lookup_cache(&client, &job.account, &name, job.qtype) {
                Some(hit) => hit,
                None => self.ask(&client, &job.account, &name, job.qtype).await?,
            };
            let Resolution { resolved, aged } = hit.resolution();
            let (current, next) = walk_chain(snapshot, job, &route, &name, &resolved, aged, &mut answers);
            let answered = resolved
                .answers
                .iter()
                .any(|rr| rr.rtype == job.qtype && lower(&rr.owner).as_deref() == Some(current.as_slice()));
            match next {
                Some(Next::Private) => return Ok(private(snapshot, job, &current, answers)),
                Some(Next::Route(r)) => route = r,
                None if answered || resolved.rcode != Rcode::NoError || !resolved.authority.is_empty() => {
                    return Ok(finished(&resolved, answers, aged))
                }
                None if current != name => {}
                // NOERROR, no data, no SOA: as the route said.
                None => return Ok(finished(&resolved, answers, aged)),
            }
            name = current;
        }
        Ok(Resolved { rcode: Rcode::ServFail, answers, authority: Vec::new(), ede: Some(lookup::EDE_MAX_RESTARTS) })
    }

    /// One upstream query through the route's pool, tried `attempts` times while it times out or fails on the
    /// network (the pool tries each server once per attempt); the answer is cached.
    async fn ask(&self, client: &RouteClient, account: &Arc<str>, name: &[u8], qtype: u16) -> Result<Arc<Cached>, Ede> {
        let Some(query_name) = name_of(name) else { return Err(EDE_NETWORK) };
        let query = Query::query(query_name, RecordType::from(qtype));
        let mut failure = EDE_NETWORK;
        for attempt in 1..=self.settings.attempts.max(1) {
            match self.ask_once(client, &query).await {
                Ok(resolved) => return Ok(self.store(client, account, name, qtype, resolved)),
                Err(Failure::Final(ede)) => return Err(ede),
                Err(Failure::Retry(ede)) => {
                    tracing::debug!(route = %client.label, attempt, "upstream attempt failed; trying again");
                    failure = ede;
                }
            }
        }
        Err(failure)
    }

    async fn ask_once(&self, client: &RouteClient, query: &Query) -> Result<Resolved, Failure> {
        let started = Instant::now();
        client.queries.fetch_add(1, Ordering::Relaxed);
        let mut responses = client.pool.lookup(query.clone(), Default::default());
        let first = futures_util::StreamExt::next(&mut responses).await;
        let waited = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        client.latency_micros.fetch_add(waited, Ordering::Relaxed);
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
                return Err(Failure::Retry(if is_timeout(&e) { EDE_UNREACHABLE } else { EDE_NETWORK }));
            }
            None => {
                client.failures.fetch_add(1, Ordering::Relaxed);
                return Err(Failure::Retry(EDE_NETWORK));
            }
        };
        if resolved.rcode == Rcode::ServFail || resolved.rcode == Rcode::Refused {
            // Not an answer about the name: never cached, reported as the route's failure.
            client.failures.fetch_add(1, Ordering::Relaxed);
            return Err(Failure::Final(EDE_NETWORK));
        }
        Ok(resolved)
    }

    fn store(
        &self,
        client: &RouteClient,
        account: &Arc<str>,
        name: &[u8],
        qtype: u16,
        resolved: Resolved,
    ) -> Arc<Cached> {
        let ttl = cache_ttl(&resolved);
        let now = Instant::now();
        let expires = now + Duration::from_secs(ttl.into());
        let cached = Arc::new(Cached { resolved: Arc::new(resolved), stored: now, expires });
        if ttl > 0 {
            let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.put((client.id, account.clone(), name.into(), qtype), cached.clone());
        }
        cached
    }
}

/// Why one attempt failed: worth another (a timeout, a network error), or an answer that will not change.
enum Failure {
    Retry(Ede),
    Final(Ede),
}

/// The lower-case copy of a wire name (a CNAME's RDATA is exactly one name).
pub(super) fn lower(wire: &[u8]) -> Option<Vec<u8>> {
    let len = crate::dns::name::wire_len(wire)?;
    let mut buf = [0u8; crate::dns::name::MAX_NAME_LEN];
    Some(crate::dns::name::lower_into(&wire[..len], &mut buf).to_vec())
}
