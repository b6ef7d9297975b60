//! Compilation: a validated [`State`] → an immutable [`Snapshot`].
//!
//! The only place that constructs snapshot types. Zone tables are compiled one zone at a time and cached by
//! (zone id, content revision, nameserver), so a change to one zone recompiles that zone only and every other
//! table is shared with the previous snapshot. Compile assumes `validate` passed; it never fails.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use std::net::SocketAddr;

use crate::model::classify::{normalize_ip, Classifier, Member, PrefixTable};
use crate::model::identity;
use crate::model::snapshot::{Route, RouteIdx, Snapshot, SnapshotParts, View, ViewRule, VpcEntry, ZoneIdx, ZoneTable};
use crate::model::state::{Changes, State, ZoneId};
use crate::model::validate::BindingKind;

pub(crate) mod zone;

pub use zone::{compile_zone, patch_zone, GENERATED_TTL};

/// Compiles states into snapshots, keeping the zone tables and forwarding rules of the last compile for reuse.
#[derive(Default)]
pub struct Compiler {
    cache: HashMap<ZoneId, Arc<ZoneTable>>,
    /// Each rule as the last compile built it: a change elsewhere rebuilds no rule (many tenants' rules would
    /// otherwise make every change cost as much as all of them).
    rules: HashMap<String, CompiledRule>,
    /// What the last compile built from the state's structure (VPCs, scopes, rules, links), reused as it is when a
    /// change touched only zone content.
    structure: Option<Structure>,
    generation: u64,
}

/// The parts of a snapshot that only the structure of the state decides, and the views built from them the last
/// time (a view is reused while none of its zones' tables changed).
struct Structure {
    classifier: Arc<Classifier>,
    vpcs: Arc<[VpcEntry]>,
    /// The zones each VPC sees (indexes into the zone list, which the structure also fixes).
    seen: Vec<Vec<ZoneIdx>>,
    routes: Arc<[Route]>,
    upstream: Option<RouteIdx>,
    rules_seen: Vec<Vec<ViewRule>>,
    views: Vec<Arc<View>>,
    tables: Vec<Arc<ZoneTable>>,
}

/// A forwarding rule's compiled parts, reused while its domain and targets stay the same.
struct CompiledRule {
    domain: crate::dns::name::Name,
    route: Route,
    lower: Arc<[u8]>,
    labels: u8,
}

impl Compiler {
    /// Builds the snapshot of a validated state. Unchanged zones reuse their tables.
    pub fn compile(&mut self, state: &State) -> Snapshot {
        self.compile_changed(state, None)
    }

    /// As `compile`, using what is known of the change: a zone whose changed owners are listed is patched (its
    /// table's overlay gains the rebuilt nodes) instead of rebuilt; when only zone content changed, what the
    /// structure decides (classification, views' zone lists, routes) is the last compile's.
    pub(crate) fn compile_changed(&mut self, state: &State, changed: Option<&Changes>) -> Snapshot {
        self.generation += 1;
        let mut cache = HashMap::with_capacity(state.zones.len());
        let mut zones = Vec::with_capacity(state.zones.len());
        let mut zone_index: HashMap<&ZoneId, ZoneIdx> = HashMap::with_capacity(state.zones.len());
        for zone in state.zones.values() {
            let ns = &state.served.nameserver;
            let dirty = changed.and_then(|c| c.zones.get(&zone.id)).filter(|d| !d.full);
            let table = match self.cache.get(&zone.id) {
                Some(t)
                    if t.revision == zone.revision && t.nameserver == *ns && t.fallback_recurse == recurse(zone) =>
                {
                    t.clone()
                }
                Some(t) if t.nameserver == *ns && dirty.is_some() => {
                    Arc::new(patch_zone(t, zone, ns, dirty.map(|d| &d.owners).unwrap_or(&BTreeSet::new())))
                }
                _ => Arc::new(compile_zone(zone, ns)),
            };
            zone_index.insert(&zone.id, zones.len() as ZoneIdx);
            cache.insert(zone.id.clone(), table.clone());
            zones.push(table);
        }
        self.cache = cache;
        let reuse = changed.is_some_and(|c| !c.structure);
        let mut structure = match self.structure.take() {
            Some(last) if reuse => last,
            _ => self.build_structure(state, &zone_index),
        };
        // A zone whose table is not the one the last views were built with makes the views that see it new.
        let stale: HashSet<ZoneIdx> = if structure.tables.len() == zones.len() {
            (0..zones.len()).filter(|&i| !Arc::ptr_eq(&zones[i], &structure.tables[i])).map(|i| i as ZoneIdx).collect()
        } else {
            (0..zones.len() as ZoneIdx).collect()
        };
        let rebuilt = structure.views.len() != structure.seen.len();
        // VPCs that see the same zones and rules share one view (1,000 VPCs bound to the same zones cost one view,
        // not 1,000).
        let mut interned: HashMap<(&[ZoneIdx], &[ViewRule]), Arc<View>> = HashMap::new();
        let views: Vec<Arc<View>> = structure
            .seen
            .iter()
            .zip(&structure.rules_seen)
            .enumerate()
            .map(|(v, (list, rules))| {
                let keep = !rebuilt && !list.iter().any(|z| stale.contains(z));
                match structure.views.get(v) {
                    Some(view) if keep => view.clone(),
                    _ => interned
                        .entry((list, rules))
                        .or_insert_with(|| Arc::new(build_view(list, &zones).with_rules(rules.clone())))
                        .clone(),
                }
            })
            .collect();
        drop(interned);
        structure.views.clone_from(&views);
        structure.tables.clone_from(&zones);
        let snapshot = Snapshot::new(SnapshotParts {
            generation: self.generation,
            revision: state.revision,
            classifier: structure.classifier.clone(),
            vpcs: structure.vpcs.clone(),
            views,
            zones,
            routes: structure.routes.clone(),
            upstream: structure.upstream,
            query_limit: state.served.limits.queries_per_source,
        });
        self.structure = Some(structure);
        snapshot
    }

    /// Classification, what each VPC sees and the routes: everything the structure of the state decides.
    fn build_structure(&mut self, state: &State, zone_index: &HashMap<&ZoneId, ZoneIdx>) -> Structure {
        let mut accounts: HashMap<&str, Arc<str>> = HashMap::new();
        let mut vpcs: Vec<VpcEntry> = state
            .vpcs
            .values()
            .map(|v| {
                let account = accounts.entry(&v.account.0).or_insert_with(|| Arc::from(v.account.0.as_str()));
                let query_limit = v.query_limit.unwrap_or(state.served.limits.queries_per_source);
                VpcEntry { id: v.id.clone(), account: account.clone(), query_limit, recursion: false }
            })
            .collect();
        let vpc_index: HashMap<_, _> = state.vpcs.keys().enumerate().map(|(i, id)| (id, i)).collect();
        // A linked account's zone or rule never takes a name its VPC's owner binds there (validation refuses it; a
        // race between nodes may still commit one, and then the owner's binding is what answers).
        let hidden = hidden_bindings(state);
        let mut seen: Vec<Vec<ZoneIdx>> = vec![Vec::new(); vpcs.len()];
        for zone in state.zones.values() {
            for vpc in &zone.scope {
                if let Some(&v) = vpc_index.get(vpc) {
                    if !hidden.contains(&(BindingKind::Zone, zone.id.0.as_str(), vpc.as_str())) {
                        seen[v].push(zone_index[&zone.id]);
                    }
                }
            }
        }
        for list in &mut seen {
            list.sort_unstable();
            list.dedup();
        }
        let (routes, upstream, rules_seen) = self.build_routes(state, &vpc_index, vpcs.len(), &hidden);
        // A VPC with somewhere to resolve names outside its zones is offered recursion (RA on every answer).
        for (vpc, rules) in vpcs.iter_mut().zip(&rules_seen) {
            vpc.recursion = upstream.is_some() || !rules.is_empty();
        }
        Structure {
            classifier: Arc::new(build_classifier(state)),
            vpcs: vpcs.into(),
            seen,
            routes: routes.into(),
            upstream,
            rules_seen,
            views: Vec::new(),
            tables: Vec::new(),
        }
    }
}

/// (kind, id, vpc) of every binding a VPC's owner shadows (see [`crate::model::validate::shadowed`]).
fn hidden_bindings(state: &State) -> HashSet<(BindingKind, &str, &str)> {
    let shadowed = crate::model::validate::shadowed(state);
    if !shadowed.is_empty() {
        tracing::warn!(count = shadowed.len(), "bindings of linked accounts shadow names of a VPC's owner: not served");
    }
    let mut hidden = HashSet::new();
    for s in shadowed {
        let id = match s.kind {
            BindingKind::Zone => state.zones.get_key_value(s.id.as_str()).map(|(id, _)| id.0.as_str()),
            BindingKind::Rule => state.rules.get_key_value(s.id.as_str()).map(|(id, _)| id.as_str()),
        };
        let vpc = state.vpcs.get_key_value(s.vpc.as_str()).map(|(id, _)| id.as_str());
        if let (Some(id), Some(vpc)) = (id, vpc) {
            hidden.insert((s.kind, id, vpc));
        }
    }
    hidden
}

fn recurse(zone: &crate::model::state::Zone) -> bool {
    zone.fallback == crate::model::state::Fallback::Recurse
}

impl Compiler {
    /// The routes (upstreams first, then one per forwarding rule) and the rules each VPC sees.
    fn build_routes(
        &mut self,
        state: &State,
        vpc_index: &HashMap<&crate::model::state::VpcId, usize>,
        vpc_count: usize,
        hidden: &HashSet<(BindingKind, &str, &str)>,
    ) -> (Vec<Route>, Option<RouteIdx>, Vec<Vec<ViewRule>>) {
        let mut routes = Vec::with_capacity(state.rules.len() + 1);
        let upstreams = &state.served.upstreams;
        let upstream = (!upstreams.is_empty()).then(|| {
            routes.push(Route { rule: None, owner: None, targets: Arc::from(upstreams.as_slice()) });
            0
        });
        self.rules.retain(|id, _| state.rules.contains_key(id));
        let mut seen: Vec<Vec<ViewRule>> = vec![Vec::new(); vpc_count];
        for rule in state.rules.values() {
            let compiled = match self.rules.get(&rule.id) {
                Some(c) if c.domain == rule.domain && *c.route.targets == *rule.targets => c,
                _ => {
                    let lower = rule.domain.lower();
                    let compiled = CompiledRule {
                        domain: rule.domain.clone(),
                        route: Route {
                            rule: Some(Arc::from(rule.id.as_str())),
                            owner: Some(Arc::from(rule.account.0.as_str())),
                            targets: Arc::from(rule.targets.as_slice()),
                        },
                        lower: Arc::from(lower.wire()),
                        labels: lower.label_count().min(127) as u8,
                    };
                    self.rules.entry(rule.id.clone()).insert_entry(compiled).into_mut()
                }
            };
            let route = routes.len() as RouteIdx;
            routes.push(compiled.route.clone());
            for vpc in &rule.scope {
                if hidden.contains(&(BindingKind::Rule, rule.id.as_str(), vpc.as_str())) {
                    continue;
                }
                if let Some(&v) = vpc_index.get(vpc) {
                    seen[v].push(ViewRule { domain: compiled.lower.clone(), labels: compiled.labels, route });
                }
            }
        }
        for rules in &mut seen {
            rules.sort_by(|a, b| b.labels.cmp(&a.labels).then_with(|| a.domain.cmp(&b.domain)));
        }
        (routes, upstream, seen)
    }
}

fn build_view(list: &[ZoneIdx], zones: &[Arc<ZoneTable>]) -> View {
    View::new(list.iter().filter_map(|&idx| Some((idx, zones.get(idx as usize)?))))
}

fn build_classifier(state: &State) -> Classifier {
    let mut classifier = Classifier::default();
    for vpc in state.vpcs.values() {
        for l in &vpc.listeners {
            let key = std::net::SocketAddr::new(normalize_ip(l.ip()), l.port());
            classifier.by_listener.entry(key).or_default();
        }
    }
    for (idx, vpc) in state.vpcs.values().enumerate() {
        let idx = idx as u32;
        add_identities(&mut classifier, vpc, idx);
        if vpc.identified() {
            // Found by its front end's identity only: its prefixes may overlap anyone's.
            continue;
        }
        for net in &vpc.cidrs {
            if vpc.listeners.is_empty() {
                classifier.unrestricted.insert(*net, idx);
                for table in classifier.by_listener.values_mut() {
                    table.insert(*net, idx);
                }
            } else {
                for l in &vpc.listeners {
                    let key = std::net::SocketAddr::new(normalize_ip(l.ip()), l.port());
                    classifier.by_listener.entry(key).or_insert_with(PrefixTable::default).insert(*net, idx);
                }
            }
        }
    }
    let proxy = &state.served.proxy;
    // parse_cidr normalized every prefix (IPv4-mapped IPv6 as IPv4), as classification compares.
    classifier.front_ends = proxy.from.clone();
    classifier.proxy_listeners =
        proxy.listeners.iter().map(|l| SocketAddr::new(normalize_ip(l.ip()), l.port())).collect();
    classifier.vpc_tlv = proxy.vpc_tlv;
    classifier
}

/// The identities that name `vpc` (its id, cloud id and endpoint ids) and what they are checked against.
fn add_identities(classifier: &mut Classifier, vpc: &crate::model::state::Vpc, idx: u32) {
    let ids = std::iter::once(vpc.id.as_str()).chain(vpc.cloud_id.as_deref());
    let keys =
        ids.filter_map(identity::vpc_id_key).chain(vpc.endpoints.iter().filter_map(|e| identity::endpoint_key(e).ok()));
    for key in keys {
        classifier.identities.entry(key).or_insert(idx);
    }
    let listeners = vpc.listeners.iter().map(|l| SocketAddr::new(normalize_ip(l.ip()), l.port())).collect();
    classifier.members.push(Member { cidrs: vpc.cidrs.clone().into_boxed_slice(), listeners });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::name::Name;
    use crate::dns::rdata::rtype;
    use crate::testing;

    fn zones(www: &str) -> String {
        format!(
            r#"
[[zones]]
name = "a.internal."
account = "1"
scope = ["v1"]
records = [{{ name = "www", type = "A", data = "{www}" }}]
[[zones]]
name = "b.internal."
account = "1"
scope = ["v1"]
records = [{{ name = "x.y.z", type = "A", data = "10.0.0.9" }}]
"#
        )
    }

    #[test]
    fn a_change_recompiles_only_the_zone_it_touched() {
        let mut compiler = Compiler::default();
        let first = testing::state(&zones("10.0.0.1"), None);
        let one = compiler.compile(&first);
        let second = testing::state(&zones("10.0.0.2"), Some(&first));
        let two = compiler.compile(&second);
        assert_eq!(two.generation(), one.generation() + 1);
        let (a1, b1) = (&one.zones()[0], &one.zones()[1]);
        let (a2, b2) = (&two.zones()[0], &two.zones()[1]);
        assert!(!Arc::ptr_eq(a1, a2), "the changed zone is rebuilt");
        assert!(Arc::ptr_eq(b1, b2), "the unchanged zone's table is shared");
        assert!(a2.revision > a1.revision, "the changed zone's serial grows");
        assert_eq!(b2.revision, b1.revision);
    }

    /// A state that got a linked account's zone and rule under the VPC owner's own name anyway (two nodes raced
    /// past validation) still answers with the owner's: the foreign bindings are not served in that VPC.
    #[test]
    fn a_vpc_owners_names_win_even_in_a_state_that_was_never_validated() {
        let extra = [
            &testing::linked_beta(),
            "[[zones]]\nname = \"corp.internal.\"\naccount = \"2\"\nscope = [\"vb\"]\n\
             records = [{ name = \"www\", type = \"A\", data = \"10.2.0.1\" }]\n",
            "[[zones]]\nname = \"www.corp.internal.\"\naccount = \"1\"\nscope = [\"vb\"]\n\
             records = [{ name = \"@\", type = \"A\", data = \"10.1.0.1\" }]\n",
            &testing::rule("1", "r", "api.corp.internal.", "vb"),
        ];
        let state = testing::loaded(&extra.concat());
        assert!(crate::model::validate::validate(&state).is_err(), "validation refuses this state");
        let snap = Compiler::default().compile(&state);
        let vb = snap.vpcs().iter().position(|v| v.id.as_str() == "vb").expect("vb") as u32;
        let www = Name::from_text("www.corp.internal.", None).expect("name");
        let answer = crate::model::lookup::lookup(&snap, vb, www.wire(), rtype::A, crate::dns::Transport::Udp);
        let zone = answer.zone.and_then(|z| snap.zones().get(z as usize)).map(|t| t.meter_id.to_string());
        assert_eq!(zone.as_deref(), Some("2/corp.internal."), "the owner's zone answers");
        let api = Name::from_text("api.corp.internal.", None).expect("name");
        let answer = crate::model::lookup::lookup(&snap, vb, api.wire(), rtype::A, crate::dns::Transport::Udp);
        assert!(answer.recurse.is_none(), "the linked account's rule takes nothing");
    }

    #[test]
    fn generated_soa_ns_and_empty_non_terminals() {
        let snap = Compiler::default().compile(&testing::state(&zones("10.0.0.1"), None));
        let b = &snap.zones()[1];
        let apex = b.apex().expect("apex node");
        assert!(apex.rrset(rtype::SOA).is_some() && apex.rrset(rtype::NS).is_some());
        let ent = Name::from_text("y.z.b.internal.", None).expect("name");
        assert!(b.node(ent.wire()).is_some_and(|n| n.is_empty_non_terminal()));
        assert_eq!(b.negative_soa(false).ttl, 60, "min(3600, minimum 60)");
        assert_eq!(b.record_count, 3);
    }
}
