//! Property: for random states and random (source, name, type), every record in a response belongs to a zone
//! visible to the source's VPC, and the wire response holds exactly the records the lookup chose.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proptest::prelude::*;

use vpcdns::compile::Compiler;
use vpcdns::lookup::{self, Rcode, Transport};
use vpcdns::name::Name;
use vpcdns::rdata::{RData, Record};
use vpcdns::respond;
use vpcdns::state::{Account, Link, ServerSettings, Site, State, Uid, Vpc, VpcId, Zone, ZoneId};
use vpcdns::validate::validate;

const ZONE_NAMES: [&str; 6] = ["test.", "a.test.", "b.a.test.", "c.test.", "x.b.a.test.", "other."];
const LABELS: [&str; 6] = ["www", "*", "x.y", "mail", "@", "b"];
const TARGETS: [&str; 6] = ["www.a.test.", "mail.test.", "www.b.a.test.", "nowhere.", "x.y.c.test.", "b.a.test."];
const QNAMES: [&str; 10] = [
    "www.test.",
    "www.a.test.",
    "zz.b.a.test.",
    "mail.c.test.",
    "x.y.x.b.a.test.",
    "b.a.test.",
    "y.a.test.",
    "q.other.",
    "nothing.",
    "deep.www.b.a.test.",
];
const QTYPES: [u16; 7] = [1, 15, 5, 16, 255, 6, 2];

fn n(text: &str) -> Name {
    Name::from_text(text, None).expect("valid name")
}

#[derive(Debug, Clone)]
struct ZoneSpec {
    name: usize,
    owner: usize,
    scope: Vec<usize>,
    records: Vec<(usize, u8, usize)>,
}

fn zone_spec() -> impl Strategy<Value = ZoneSpec> {
    (
        0..ZONE_NAMES.len(),
        0..3usize,
        prop::collection::vec(0..4usize, 0..4),
        prop::collection::vec((0..LABELS.len(), 0..4u8, 0..TARGETS.len()), 0..8),
    )
        .prop_map(|(name, owner, scope, records)| ZoneSpec { name, owner, scope, records })
}

fn build_state(vpc_owners: &[usize], links: &[(usize, usize)], zones: &[ZoneSpec]) -> State {
    let uid = |i: usize| Uid(format!("{}", 1000 + i));
    let accounts: BTreeMap<Uid, Account> = (0..3)
        .map(|i| {
            let a = Account {
                uid: uid(i),
                name: format!("acct{i}"),
                email: format!("root@acct{i}.example"),
                site: Site::Intl,
            };
            (a.uid.clone(), a)
        })
        .collect();
    let vpcs: BTreeMap<VpcId, Vpc> = vpc_owners
        .iter()
        .enumerate()
        .map(|(i, owner)| {
            let v = Vpc {
                id: VpcId::new(&format!("vpc{i}")),
                account: uid(*owner),
                region: String::new(),
                cidrs: vec![format!("127.0.{}.0/24", 60 + i).parse().expect("cidr")],
                listeners: vec![],
                query_limit: None,
            };
            (v.id.clone(), v)
        })
        .collect();
    let links: BTreeSet<Link> =
        links.iter().filter(|(a, b)| a != b).map(|(a, b)| Link { account: uid(*a), linked: uid(*b) }).collect();
    let mut state_zones = BTreeMap::new();
    for (zi, spec) in zones.iter().enumerate() {
        let origin = n(ZONE_NAMES[spec.name]);
        let mut seen_owner_types: BTreeMap<Name, u8> = BTreeMap::new();
        let mut records = Vec::new();
        for (label, kind, target) in &spec.records {
            let Ok(owner) = Name::from_text(LABELS[*label], Some(&origin)) else { continue };
            // Keep CNAMEs alone at their owner so that most generated zones are valid.
            let is_cname = *kind == 1;
            match seen_owner_types.get(&owner) {
                Some(&k) if (k == 1) != is_cname || is_cname => continue,
                _ => {}
            }
            seen_owner_types.insert(owner.clone(), *kind);
            let rdata = match kind {
                0 => RData::A(Ipv4Addr::new(10, zi as u8, *label as u8, *target as u8)),
                1 => RData::Cname(n(TARGETS[*target])),
                2 => RData::Mx { preference: 10, exchange: n(TARGETS[*target]) },
                _ => RData::Txt(vec![format!("t{target}").into_bytes().into_boxed_slice()]),
            };
            records.push(Record { owner, ttl: 300, rdata });
        }
        let id = ZoneId(format!("z{zi}"));
        let owner_uid = uid(spec.owner);
        let scope: BTreeSet<usize> = spec.scope.iter().copied().collect();
        state_zones.insert(
            id.clone(),
            Zone {
                id,
                name: origin,
                account: owner_uid,
                scope: scope.into_iter().map(|v| VpcId::new(&format!("vpc{v}"))).collect(),
                records: vpcdns::state::records_from(records),
                revision: 1,
                origin: "generated".into(),
                fallback: Default::default(),
            },
        );
    }
    State {
        revision: 1,
        server: ServerSettings {
            listen: vec!["127.0.0.1:53".parse().expect("addr")],
            nameserver: n("ns.test."),
            limits: Default::default(),
            rrl: Default::default(),
            metrics: None,
            query_log: None,
            resolver: Default::default(),
        },
        accounts,
        users: BTreeMap::new(),
        vpcs,
        links,
        zones: state_zones,
        rules: Default::default(),
    }
}

/// RDATA as hickory-proto encodes it without name compression (case kept), for our own decoder to read back.
fn uncompressed_rdata(data: &hickory_proto::rr::RData) -> Vec<u8> {
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    data.emit(&mut encoder).expect("rdata encodes");
    bytes
}

/// (type, presentation of the RDATA) of every record of every zone in `visible`, generated SOA/NS included.
fn visible_data(snap: &vpcdns::snapshot::Snapshot, visible: &BTreeSet<u32>) -> BTreeSet<(u16, String)> {
    let mut data = BTreeSet::new();
    for &z in visible {
        for node in snap.zones[z as usize].nodes() {
            for set in node.rrsets() {
                for rdata in set.rdata() {
                    if let Ok(d) = RData::from_wire(set.rtype, rdata) {
                        data.insert((set.rtype, d.to_string()));
                    }
                }
            }
        }
    }
    data
}

fn query_packet(qname: &Name, qtype: u16) -> Vec<u8> {
    let mut q = vec![0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(qname.wire());
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn responses_hold_only_records_of_visible_zones(
        vpc_owners in prop::collection::vec(0..3usize, 4),
        links in prop::collection::vec((0..3usize, 0..3usize), 0..4),
        zones in prop::collection::vec(zone_spec(), 1..6),
        queries in prop::collection::vec((0..5u8, 0..QNAMES.len(), 0..QTYPES.len(), any::<bool>()), 1..20),
    ) {
        let mut state = build_state(&vpc_owners, &links, &zones);
        // Drop scope entries the owner may not use, so that most states validate.
        let snapshot_state = state.clone();
        for zone in state.zones.values_mut() {
            zone.scope.retain(|v| snapshot_state.vpcs.get(v).is_some_and(|vpc| snapshot_state.may_use_vpcs_of(&zone.account, &vpc.account)));
        }
        prop_assume!(validate(&state).is_ok());
        let snap = Compiler::default().compile(&state);
        let local: SocketAddr = "127.0.0.1:53".parse().expect("addr");
        for (vpc, qn, qt, tcp) in queries {
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 60 + vpc, 9));
            let transport = if tcp { Transport::Tcp } else { Transport::Udp };
            let qname = n(QNAMES[qn]);
            let qtype = QTYPES[qt];
            let class = snap.classifier.classify(local, source);
            let mut out = Vec::new();
            let outcome = respond::handle(&query_packet(&qname, qtype), source, local, transport, &snap, None, &mut out);
            let outcome = outcome.expect("a query is always answered");
            let Some(class) = class else {
                prop_assert_eq!(outcome.rcode, Rcode::Refused);
                prop_assert_eq!(&out[6..12], &[0u8; 6][..], "REFUSED carries no records");
                continue;
            };
            let answer = lookup::lookup(&snap, class.vpc, qname.wire(), qtype, transport);
            let visible: BTreeSet<u32> = snap.views[class.vpc as usize].zone_indexes().collect();
            for rr in answer.answer.iter().chain(&answer.authority).chain(&answer.additional) {
                prop_assert!(visible.contains(&rr.zone), "record from zone {} not visible to vpc {}", rr.zone, class.vpc);
            }
            if answer.rcode == Rcode::Refused {
                prop_assert!(answer.answer.is_empty() && answer.authority.is_empty());
            }
            // Every record on the wire, decoded independently, carries data that a visible zone holds.
            if !outcome.truncated {
                let msg = hickory_proto::op::Message::from_vec(&out).expect("our response decodes");
                let allowed = visible_data(&snap, &visible);
                for record in msg.answers.iter().chain(&msg.authorities).chain(&msg.additionals) {
                    let rtype = u16::from(record.record_type());
                    let wire = uncompressed_rdata(&record.data);
                    let data = RData::from_wire(rtype, &wire).map(|d| d.to_string()).unwrap_or_default();
                    prop_assert!(allowed.contains(&(rtype, data.clone())), "{} {} {} is in no zone vpc {} sees", record.name, rtype, data, class.vpc);
                }
                let count = |rrs: &[lookup::Rr]| rrs.iter().map(|r| r.rrset.len()).sum::<usize>();
                prop_assert_eq!(msg.answers.len(), count(&answer.answer));
                prop_assert_eq!(msg.authorities.len(), count(&answer.authority));
                prop_assert!(msg.additionals.len() <= count(&answer.additional));
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_handler(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let state = build_state(&[0, 1, 2, 0], &[], &[]);
        let snap = Compiler::default().compile(&state);
        let mut out = Vec::new();
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 60, 1));
        for transport in [Transport::Udp, Transport::Tcp] {
            let _ = respond::handle(&bytes, source, "127.0.0.1:53".parse().expect("addr"), transport, &snap, None, &mut out);
        }
    }
}
