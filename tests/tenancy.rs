//! Tenants cannot hurt each other (issue 13): each test is one finding of the attack review, run against the real
//! server, CLI and store as an adversarial tenant would. The rule they hold the server to: a tenant may add service
//! to another account's VPC only with that account's consent (the link), never take away or redirect what that
//! account serves itself, and the VPC's owner can always see it and always undo it.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::store::{err, token, StoreServer};
use serde_json::Value;

/// Rules may target loopback here (the tests' stand-ins for on-premises DNS are on it).
const RESOLVER: &str = "[resolver]\nallow_targets = [\"127.0.0.0/8\"]\ntimeout_ms = 200\ndeadline_ms = 400\n";

/// acme (vpc-acme), beta (vpc-beta), gamma on the China site (vpc-gamma), novpc; acme has linked beta (the
/// operator's word); root keys of acme and beta.
fn tenants(s: &StoreServer) -> (String, String) {
    for (uid, name, site) in
        [("1001", "acme", "intl"), ("1002", "beta", "intl"), ("2003", "gamma", "cn"), ("1004", "novpc", "intl")]
    {
        let email = format!("root@{name}.example");
        s.operator(&["accounts", "put", "--uid", uid, "--name", name, "--email", &email, "--site", site])
            .expect("account");
    }
    for (id, account, cidr) in [
        ("vpc-acme", "1001", "127.0.90.0/24"),
        ("vpc-beta", "1002", "127.0.91.0/24"),
        ("vpc-gamma", "2003", "127.0.92.0/24"),
    ] {
        s.operator(&["vpcs", "put", "--id", id, "--account", account, "--cidr", cidr]).expect("vpc");
    }
    s.operator(&["link", "acme", "beta"]).expect("link");
    (token(s.operator(&["key", "acme"])), token(s.operator(&["key", "beta"])))
}

fn server() -> StoreServer {
    StoreServer::start_with("", RESOLVER, &[])
}

const BETA_SOURCE: &str = "127.0.91.5";

fn inbox_text(s: &StoreServer, key: &str) -> String {
    s.admin(key, &["inbox"]).expect("inbox")["messages"].to_string()
}

fn rule_scope(s: &StoreServer, key: &str, id: &str) -> Vec<String> {
    let rules = s.admin(key, &["rules", "list"]).expect("rules");
    let rule = rules["rules"].as_array().expect("list").iter().find(|r| r["id"] == id).cloned().expect("rule");
    rule["scope"].as_array().expect("scope").iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect()
}

/// Finding 1 (and 15): a linked tenant's rule or zone cannot take names the VPC's owner binds there — at the name
/// or below, with a zone or a rule — and when the owner binds a name later, the owner's binding wins: the linked
/// tenant's item leaves that VPC, and its owner is told.
#[test]
fn a_linked_tenant_never_takes_the_owners_names() {
    let s = server();
    let (acme, beta) = tenants(&s);
    let zone = s.admin(&beta, &["zones", "create", "corp.internal.", "--scope", "vpc-beta"]).expect("beta's zone");
    let zone_id = zone["id"].as_str().expect("id").to_string();
    s.admin(&beta, &["records", "add", &zone_id, "www", "A", "10.2.0.1"]).expect("record");
    // acme, linked, tries to take beta's name in beta's VPC: every form is refused, and says why.
    for attempt in [
        vec!["rules", "add", "hijack", "corp.internal.", "--target", "127.0.0.53", "--scope", "vpc-beta"],
        vec!["rules", "add", "deep", "api.x.corp.internal.", "--target", "127.0.0.53", "--scope", "vpc-beta"],
        vec!["zones", "create", "corp.internal.", "--scope", "vpc-beta"],
        vec!["zones", "create", "sub.corp.internal.", "--scope", "vpc-beta"],
    ] {
        let refused = err(s.admin(&acme, &attempt));
        assert!(refused.contains("422") && refused.contains("never take over"), "{attempt:?}: {refused}");
    }
    assert_eq!(s.dig(BETA_SOURCE, "www.corp.internal").data("A"), ["10.2.0.1"], "beta's own answer");
    // Adding service above beta's names, or beside them, is what a link is for.
    s.admin(&acme, &["rules", "add", "above", "internal.", "--target", "127.0.0.53", "--scope", "vpc-beta"])
        .expect("a rule above beta's zone adds service");
    assert_eq!(s.dig(BETA_SOURCE, "www.corp.internal").data("A"), ["10.2.0.1"], "still beta's");

    // The other way round: acme binds names in beta's VPC first; beta binding them later wins, never blocked.
    s.admin(&acme, &["rules", "add", "svc", "svc.internal.", "--target", "127.0.0.53", "--scope", "vpc-beta"])
        .expect("acme's rule");
    let apps = s.admin(&acme, &["zones", "create", "apps.internal.", "--scope", "vpc-beta"]).expect("acme's zone");
    let apps_id = apps["id"].as_str().expect("id").to_string();
    s.admin(&acme, &["records", "add", &apps_id, "www", "A", "10.1.0.1"]).expect("record");
    assert_eq!(s.dig(BETA_SOURCE, "www.apps.internal").data("A"), ["10.1.0.1"], "acme's zone serves beta's VPC");
    let created = s.admin(&beta, &["zones", "create", "svc.internal.", "--scope", "vpc-beta"]).expect("beta wins");
    assert_eq!(created["detached_foreign"][0]["rule"], "1001-svc", "{created}");
    assert_eq!(rule_scope(&s, &acme, "1001-svc"), Vec::<String>::new(), "acme's rule left beta's VPC");
    // Squatting (finding 15): acme's zone of the same name does not keep beta from creating its own.
    let own = s.admin(&beta, &["zones", "create", "apps.internal.", "--scope", "vpc-beta"]).expect("not squatted");
    assert_eq!(own["detached_foreign"][0]["zone"], apps_id.as_str(), "{own}");
    let own_id = own["id"].as_str().expect("id").to_string();
    s.admin(&beta, &["records", "add", &own_id, "www", "A", "10.2.0.9"]).expect("record");
    assert_eq!(s.dig(BETA_SOURCE, "www.apps.internal").data("A"), ["10.2.0.9"], "beta's own zone answers");
    assert_eq!(s.dig("127.0.90.5", "www.apps.internal").status, "REFUSED", "acme's zone had only beta's VPC");
    // A rule of beta's and a scope change of beta's win the same way.
    let lab = s.admin(&acme, &["zones", "create", "lab.internal.", "--scope", "vpc-beta"]).expect("acme's lab");
    let rule = s
        .admin(&beta, &["rules", "add", "lab", "lab.internal.", "--target", "127.0.0.53", "--scope", "vpc-beta"])
        .expect("beta's rule wins");
    assert_eq!(rule["detached_foreign"][0]["zone"], lab["id"], "{rule}");
    s.admin(&acme, &["zones", "create", "ops.internal.", "--scope", "vpc-beta"]).expect("acme's ops");
    let ops = s.admin(&beta, &["zones", "create", "ops.internal."]).expect("beta's ops, no scope yet");
    let ops_id = ops["id"].as_str().expect("id").to_string();
    let scoped = s.admin(&beta, &["zones", "scope", &ops_id, "--add", "vpc-beta"]).expect("scope wins");
    assert_eq!(scoped["detached_foreign"][0]["zone"], "1001/ops.internal.", "{scoped}");
    // acme is told, each time, and can see it in its own audit.
    let told = inbox_text(&s, &acme);
    for name in ["svc.internal.", "apps.internal.", "lab.internal.", "ops.internal."] {
        assert!(told.contains(&format!("{name} no longer answers in vpc-beta")), "{name}: {told}");
    }
}

/// Finding 2: removing a link (either side, or by blocking) or a VPC takes the VPC out of the other account's rule
/// scopes too, in the same commit, and says so.
#[test]
fn a_link_or_vpc_can_always_be_removed_rules_and_all() {
    let s = server();
    let (acme, beta) = tenants(&s);
    let add_rule = |name: &str| {
        let domain = format!("{name}.corp.example.");
        s.admin(&acme, &["rules", "add", name, &domain, "--target", "10.9.9.9", "--scope", "vpc-acme", "vpc-beta"])
            .expect("rule in both VPCs");
    };
    add_rule("r1");
    let removed = s.admin(&beta, &["links", "rm", "acme"]).expect("beta unlinks");
    let entries = removed["removed_from_scopes"].to_string();
    assert!(entries.contains("\"rule\":\"1001-r1\"") && entries.contains("vpc-beta"), "{removed}");
    assert_eq!(rule_scope(&s, &acme, "1001-r1"), ["vpc-acme"]);

    s.operator(&["link", "acme", "beta"]).expect("relink");
    add_rule("r2");
    let blocked = s.admin(&beta, &["links", "block", "acme"]).expect("beta blocks acme");
    assert!(blocked["removed_from_scopes"].to_string().contains("1001-r2"), "{blocked}");
    assert_eq!(s.admin(&acme, &["links", "list"]).expect("links")["linked"], serde_json::json!([]), "link gone");
    s.admin(&beta, &["links", "unblock", "acme"]).expect("unblock");

    s.operator(&["link", "acme", "beta"]).expect("relink");
    add_rule("r3");
    let gone = s.operator(&["vpcs", "rm", "vpc-beta"]).expect("the operator removes the VPC");
    assert!(gone["removed_from_scopes"].to_string().contains("1001-r3"), "{gone}");
    assert_eq!(rule_scope(&s, &acme, "1001-r3"), ["vpc-acme"]);
}

/// Finding 3: the VPC owner sees every other account's zone and rule that applies in its VPCs, and takes its VPC
/// out of any one of them without removing the link.
#[test]
fn the_vpc_owner_sees_and_detaches_foreign_zones_and_rules() {
    let s = server();
    let (acme, beta) = tenants(&s);
    let zone = s.admin(&acme, &["zones", "create", "z1.internal.", "--scope", "vpc-acme", "--scope", "vpc-beta"]);
    let zone_id = zone.expect("zone")["id"].as_str().expect("id").to_string();
    s.admin(&acme, &["records", "add", &zone_id, "www", "A", "10.1.0.1"]).expect("record");
    s.admin(&acme, &["rules", "add", "r", "corp.example.", "--target", "10.9.9.9", "--scope", "vpc-beta"])
        .expect("rule");

    let rules = s.admin(&beta, &["foreign-rules"]).expect("foreign rules");
    assert_eq!(rules["rules"][0]["rule"], "1001-r", "{rules}");
    assert_eq!(rules["rules"][0]["owner"]["name"], "acme");
    assert_eq!(rules["rules"][0]["in_vpcs"][0], "vpc-beta");
    assert_eq!(s.admin(&acme, &["foreign-rules"]).expect("acme's")["rules"], serde_json::json!([]));

    s.admin(&beta, &["detach", "rule", "1001-r"]).expect("detach the rule");
    assert_eq!(s.admin(&beta, &["foreign-rules"]).expect("foreign rules")["rules"], serde_json::json!([]));
    assert_eq!(rule_scope(&s, &acme, "1001-r"), Vec::<String>::new());

    assert_eq!(s.dig(BETA_SOURCE, "www.z1.internal").data("A"), ["10.1.0.1"]);
    s.admin(&beta, &["detach", "zone", &zone_id, "--vpc", "vpc-beta"]).expect("detach the zone");
    assert_eq!(s.dig(BETA_SOURCE, "www.z1.internal").status, "REFUSED");
    assert_eq!(s.dig("127.0.90.5", "www.z1.internal").data("A"), ["10.1.0.1"], "acme's own VPC keeps it");
    assert_eq!(s.admin(&acme, &["links", "list"]).expect("links")["linked"][0]["uid"], "1002", "the link stays");
    assert!(inbox_text(&s, &acme).contains("detached vpc-beta"), "acme is told");
    // Only what answers in the caller's VPCs can be detached: anything else is not found.
    assert!(err(s.admin(&beta, &["detach", "zone", &zone_id])).contains("404"));
    let gamma = token(s.operator(&["key", "gamma"]));
    assert!(err(s.admin(&gamma, &["detach", "rule", "1001-r"])).contains("404"));
}

/// All entries of `key`'s audit.
fn audit(s: &StoreServer, key: &str) -> Vec<Value> {
    let entries = s.admin(key, &["audit", "--from", "0"]).expect("audit");
    entries["entries"].as_array().cloned().unwrap_or_default()
}

/// Waits (bounded) until `key`'s audit has an entry that `found` accepts.
fn audit_shows(s: &StoreServer, key: &str, found: impl Fn(&Value) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if audit(s, key).iter().any(&found) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Finding 4: every change to an account's zones, rules or scopes is in that account's audit, whoever made it,
/// and so are refused attempts on its resources.
#[test]
fn an_owners_audit_shows_what_others_did_and_tried() {
    let s = server();
    let (acme, beta) = tenants(&s);
    let zone = s.admin(&acme, &["zones", "create", "corp.internal.", "--scope", "vpc-acme", "--scope", "vpc-beta"]);
    let zone_id = zone.expect("zone")["id"].as_str().expect("id").to_string();
    s.admin(&beta, &["links", "rm", "acme"]).expect("beta removes the link");
    assert!(
        audit_shows(&s, &acme, |e| e["action"] == "link.remove" && e["principal"] == "root@beta"),
        "acme's audit shows beta's removal: {:?}",
        audit(&s, &acme)
    );
    assert!(err(s.admin(&beta, &["zones", "rm", &zone_id])).contains("404"));
    let refused = |e: &Value| e["principal"] == "root@beta" && e["refused"]["status"] == 404;
    assert!(audit_shows(&s, &acme, refused), "acme sees beta's try: {:?}", audit(&s, &acme));
    assert!(audit_shows(&s, &beta, refused), "beta's own audit has it too");
}

/// The code of the newest link request in `key`'s inbox.
fn code_in_inbox(s: &StoreServer, key: &str, request: &str) -> String {
    let inbox = s.admin(key, &["inbox"]).expect("inbox");
    let messages = inbox["messages"].as_array().cloned().unwrap_or_default();
    let body = messages
        .iter()
        .filter_map(|m| m["body"].as_str())
        .find(|b| b.contains(&format!("Request: {request}")))
        .expect("the request's message")
        .to_string();
    body.split("Verification code: ").nth(1).and_then(|r| r.get(..6)).expect("code").to_string()
}

/// Finding 8: codes are random, so a copy of the secret file derives none; a secret others may read, or one of
/// zeros, is refused.
#[test]
fn codes_are_random_and_the_secret_file_is_guarded() {
    use hmac::Mac;
    let mut s = server();
    let (acme, _) = tenants(&s);
    s.operator(&["vpcs", "put", "--id", "vpc-n", "--account", "1004", "--cidr", "127.0.93.0/24"]).expect("vpc");
    let novpc = token(s.operator(&["key", "novpc"]));
    let request = s.admin(&acme, &["links", "request", "novpc"]).expect("request");
    let id = request["request"].as_str().expect("id").to_string();
    let code = code_in_inbox(&s, &novpc, &id);
    // What the earlier scheme derived from the secret file and the request id alone.
    let secret = std::fs::read(s.dir.path().join("state.db.secret")).expect("secret");
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&secret).expect("key");
    mac.update(b"link-code:");
    mac.update(id.as_bytes());
    let digest = mac.finalize().into_bytes();
    let derived = format!("{:06}", u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 1_000_000);
    assert_ne!(derived, code, "the secret alone must not give the code");
    let stored: String = ["state.db", "state.db-wal"]
        .iter()
        .map(|f| String::from_utf8_lossy(&std::fs::read(s.dir.path().join(f)).unwrap_or_default()).into_owned())
        .collect();
    assert!(!stored.contains(&format!("Verification code: {code}")), "the store holds no code");

    use std::os::unix::fs::PermissionsExt;
    let secret_path = s.dir.path().join("state.db.secret");
    s.kill();
    std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let out = std::process::Command::new(common::BIN).args(["serve", "--config", &s.config()]).output().expect("serve");
    assert!(!out.status.success(), "a readable secret is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("may be read by group or others"));
    std::fs::write(&secret_path, [0u8; 32]).expect("zeros");
    std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = std::process::Command::new(common::BIN).args(["serve", "--config", &s.config()]).output().expect("serve");
    assert!(!out.status.success(), "a secret of zeros is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("only zeros"));
}

/// Finding 12: wrong codes for one pair are capped per day; at the cap the pair locks until the target unblocks,
/// and the target is told.
#[test]
fn guessing_codes_locks_the_pair_until_the_target_unblocks() {
    let s = server();
    let (acme, beta) = tenants(&s);
    s.admin(&beta, &["links", "rm", "acme"]).expect("start unlinked");
    let mut last = String::new();
    for round in 0..2 {
        let request = s.admin(&acme, &["links", "request", "beta"]).expect("request");
        let id = request["request"].as_str().expect("id").to_string();
        for _ in 0..5 {
            last = err(s.admin(&acme, &["links", "verify", &id, "000000x"]));
        }
        assert!(last.contains("410"), "round {round}: {last}");
    }
    assert!(last.contains("unblocks"), "the tenth wrong code locks the pair: {last}");
    let told = inbox_text(&s, &beta);
    assert!(told.contains("died after wrong codes") && told.contains("locked"), "{told}");
    assert!(err(s.admin(&acme, &["links", "request", "beta"])).contains("not_linkable"), "locked");
    s.admin(&beta, &["links", "unblock", "acme"]).expect("unblock");
    s.admin(&acme, &["links", "request", "beta"]).expect("unlocked by the target");
}

/// Finding 13: a link request gets the same answer for every name that cannot be linked, attempts are limited
/// per requester, and no answer names the owner of another account's VPC.
#[test]
fn requests_and_scopes_reveal_nothing_about_other_accounts() {
    let s = server();
    let (acme, beta) = tenants(&s);
    s.admin(&beta, &["users", "put", "ops", "--policy", "DNSFullAccess"]).expect("sub-user");
    s.admin(&beta, &["links", "rm", "acme"]).expect("unlink");
    s.admin(&beta, &["links", "block", "acme"]).expect("block");
    let answers: Vec<String> = ["nobody@nowhere.example", "ops@beta", "gamma", "novpc", "beta"]
        .iter()
        .map(|name| err(s.admin(&acme, &["links", "request", name])).replace(name, "NAME"))
        .collect();
    assert!(answers.iter().all(|a| a == &answers[0]), "one answer for all: {answers:#?}");
    assert!(answers[0].contains("404 not_linkable"), "{}", answers[0]);
    for attempt in [
        vec!["zones", "create", "x.internal.", "--scope", "vpc-gamma"],
        vec!["rules", "add", "r", "x.example.", "--target", "10.9.9.9", "--scope", "vpc-gamma"],
    ] {
        let refused = err(s.admin(&acme, &attempt));
        assert!(refused.contains("vpc_not_selectable") && !refused.contains("2003"), "{refused}");
    }
    // Probing is slow: at most 30 link requests an hour, refused ones included.
    let limited =
        (0..40).any(|i| err(s.admin(&acme, &["links", "request", &format!("n{i}@x.example")])).contains("429"));
    assert!(limited, "the requester is rate-limited");
}

/// Zone ids are found however they are spelled (issue 17), but never across accounts, and a refusal reads the same
/// whether another account has a zone of that name or not: every way in (show, change, delete, records, foreign
/// detach) answers 404 with the id as written, folded to lower case with its dot.
#[test]
fn a_loosely_spelled_zone_id_reveals_no_other_account_zone() {
    let s = server();
    let (acme, beta) = tenants(&s);
    s.admin(&beta, &["zones", "create", "secret.internal.", "--scope", "vpc-beta"]).expect("beta's zone");
    let probes = |zone: &str| -> Vec<String> {
        [
            vec!["zones", "show", zone],
            vec!["zones", "rm", zone],
            vec!["zones", "fallback", zone, "recurse"],
            vec!["records", "add", zone, "www", "A", "10.0.0.9"],
            vec!["detach", "zone", zone],
        ]
        .iter()
        .map(|args| err(s.admin(&acme, args)))
        .collect()
    };
    let theirs = probes("1002/SECRET.Internal");
    let absent = probes("1002/NOTHERE.Internal");
    for (there, not) in theirs.iter().zip(&absent) {
        assert!(there.contains("404"), "{there}");
        assert_eq!(there.replace("secret", "NAME"), not.replace("nothere", "NAME"), "one answer for both");
    }
    // Beta's zone is untouched, and still its own.
    let shown = s.admin(&beta, &["zones", "show", "1002/secret.internal."]).expect("beta's zone");
    assert_eq!(shown["records"].as_array().map(Vec::len), Some(0), "{shown}");
}

/// Finding 18: `$INCLUDE` is refused wherever the parser finds it; no sub-user is named root; no key is born
/// expired.
#[test]
fn include_root_users_and_stillborn_keys_are_refused() {
    let s = server();
    let (acme, _) = tenants(&s);
    let zone = s.admin(&acme, &["zones", "create", "corp.internal."]).expect("zone");
    let zone_id = zone["id"].as_str().expect("id").to_string();
    let file = s.dir.path().join("sneaky.zone");
    std::fs::write(&file, "www 60 IN A 10.0.0.1\n($INCLUDE /etc/passwd)\n").expect("file");
    let refused = err(s.admin(&acme, &["zones", "import", &zone_id, &file.display().to_string()]));
    assert!(refused.contains("$INCLUDE is not allowed"), "{refused}");
    assert!(err(s.admin(&acme, &["users", "put", "root", "--policy", "DNSFullAccess"])).contains("422"));
    assert!(err(s.admin(&acme, &["keys", "create", "--expires-in-days", "0"])).contains("bad_expiry"));
}

/// Finding 6: a rule's targets are servers — never unspecified, multicast, broadcast or port 0, and loopback or
/// link-local only where the operator allows it.
#[test]
fn rule_targets_are_servers_the_operator_allows() {
    let s = StoreServer::start();
    let (acme, _) = tenants(&s);
    for target in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "10.0.0.1:0", "127.0.0.1", "169.254.169.254"] {
        let refused = err(s.admin(&acme, &["rules", "add", "r", "corp.example.", "--target", target]));
        assert!(refused.contains("400 bad_targets"), "{target}: {refused}");
    }
    s.admin(&acme, &["rules", "add", "r", "corp.example.", "--target", "10.0.0.53"]).expect("a real server");
}

/// Sends raw bytes to the admin API from `from` (a loopback address), and reads until the server closes or 3 s
/// pass; `None` when the server kept the connection open and silent.
fn raw_http(admin: &str, from: std::net::Ipv4Addr, request: &[u8], pause: Duration) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = connect_from(admin, from);
    stream.write_all(request).expect("send");
    std::thread::sleep(pause);
    stream.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Some(String::from_utf8_lossy(&answer).into_owned())
        }
        Err(_) => None,
    }
}

/// A TCP connection to `admin` from the loopback address `from`.
fn connect_from(admin: &str, from: std::net::Ipv4Addr) -> std::net::TcpStream {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let to: std::net::SocketAddrV4 = admin.parse().expect("admin address");
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::empty(), None).expect("socket");
    bind(fd.as_raw_fd(), &SockaddrIn::from(std::net::SocketAddrV4::new(from, 0))).expect("bind");
    connect(fd.as_raw_fd(), &SockaddrIn::from(to)).expect("connect");
    std::net::TcpStream::from(fd)
}

/// Finding 5: the admin API cuts off clients that trickle a request, closes connections past the caps, and keeps
/// answering others.
#[test]
fn the_admin_api_holds_no_half_sent_request() {
    let limits = "header_timeout_ms = 500\nbody_timeout_ms = 500\nmax_connections_per_address = 6\n";
    let s = StoreServer::start_with(limits, "", &[]);
    let (acme, _) = tenants(&s);
    let here = std::net::Ipv4Addr::new(127, 0, 0, 1);
    let started = Instant::now();
    let half = raw_http(&s.admin, here, b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\n", Duration::ZERO);
    assert!(half.is_some(), "half a header is cut off");
    assert!(started.elapsed() < Duration::from_secs(3), "within the header timeout (and a margin)");
    let body = format!(
        "POST /v1/zones HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {acme}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"name\""
    );
    let trickled = raw_http(&s.admin, here, body.as_bytes(), Duration::from_millis(800)).expect("answered");
    assert!(trickled.starts_with("HTTP/1.1 408"), "{trickled}");
    // Six connections from one address at most: a seventh is closed at once; another address still gets in.
    let held: Vec<std::net::TcpStream> = (0..6).map(|_| connect_from(&s.admin, here)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let seventh = raw_http(&s.admin, here, b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\n\r\n", Duration::ZERO);
    assert_eq!(seventh.as_deref(), Some(""), "closed without an answer");
    let whoami =
        format!("GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {acme}\r\nConnection: close\r\n\r\n");
    let other = raw_http(&s.admin, std::net::Ipv4Addr::new(127, 0, 0, 2), whoami.as_bytes(), Duration::ZERO);
    assert!(other.is_some_and(|a| a.starts_with("HTTP/1.1 200")), "another address is served");
    drop(held);
}

/// Finding 9: quotas count bytes and rules, and each account's writes are paced (429 with Retry-After) without
/// touching another account's.
#[test]
fn quotas_count_bytes_and_rules_and_writes_are_paced_per_account() {
    let limits = "[limits]\nmax_record_bytes_per_account = 20000\nmax_rules_per_account = 2\n";
    let s = StoreServer::start_with("writes_per_second = 1\nwrite_burst = 40\n", &format!("{RESOLVER}{limits}"), &[]);
    let (acme, beta) = tenants(&s);
    let zone = s.admin(&acme, &["zones", "create", "big.internal."]).expect("zone");
    let zone_id = zone["id"].as_str().expect("id").to_string();
    let txt = vec![format!("\"{}\"", "x".repeat(250)); 4].join(" ");
    let mut refused = None;
    for i in 0..30 {
        if let Err(e) = s.admin(&acme, &["records", "add", &zone_id, &format!("t{i}"), "TXT", &txt]) {
            refused = Some((i, e));
            break;
        }
    }
    let (at, why) = refused.expect("the byte quota holds");
    assert!((15..25).contains(&at) && why.contains("bytes of records"), "{at}: {why}");
    for name in ["a", "b"] {
        s.admin(&acme, &["rules", "add", name, &format!("{name}.example."), "--target", "10.0.0.53"]).expect("rule");
    }
    let third = err(s.admin(&acme, &["rules", "add", "c", "c.example.", "--target", "10.0.0.53"]));
    assert!(third.contains("forwarding rules; the limit is 2"), "{third}");
    // beta's burst runs out; acme's budget is its own.
    let limited = (0..60).find(|i| {
        s.admin(&beta, &["users", "put", &format!("u{i}"), "--policy", "DNSReadOnlyAccess"])
            .is_err_and(|e| e.contains("429"))
    });
    assert!(limited.is_some_and(|i| i >= 30), "beta is paced after its burst: {limited:?}");
    let request = format!(
        "PUT /v1/users/late HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {beta}\r\nContent-Type: application/json\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    let answer = raw_http(&s.admin, std::net::Ipv4Addr::LOCALHOST, request.as_bytes(), Duration::ZERO).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 429") && answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    s.admin(&acme, &["users", "put", "still", "--policy", "DNSReadOnlyAccess"]).expect("acme is not paced by beta");
}

/// Bytes the store takes on disk (file and WAL) once it has settled: the WAL is copied into the file in the
/// background and cut back to at most 16 MiB when the next write starts it over, so this waits (bounded) for that.
fn settled_store_bytes(s: &StoreServer, key: &str, zone: &str) -> u64 {
    let size = |f: &str| std::fs::metadata(s.dir.path().join(f)).map_or(0, |m| m.len());
    for i in 0..20 {
        if size("state.db-wal") <= 17 << 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        s.admin(key, &["records", "add", zone, &format!("settle{i}"), "A", "10.9.9.9"]).expect("a small write");
    }
    size("state.db") + size("state.db-wal")
}

/// Finding 9: the store's size follows its live data across repeated imports (the history is compacted), and a
/// large import does not hold up another tenant's small writes.
#[test]
fn large_imports_neither_grow_the_store_nor_hold_up_other_tenants() {
    let s = server();
    let (acme, beta) = tenants(&s);
    let big = s.admin(&acme, &["zones", "create", "big.internal."]).expect("zone");
    let big_id = big["id"].as_str().expect("id").to_string();
    let small = s.admin(&beta, &["zones", "create", "small.internal."]).expect("zone");
    let small_id = small["id"].as_str().expect("id").to_string();
    let file = s.dir.path().join("big.zone");
    let text: String =
        (0..30_000).map(|i| format!("h{i} 300 IN A 10.{}.{}.{}\n", i / 65536, i / 256 % 256, i % 256)).collect();
    std::fs::write(&file, text).expect("zone file");
    let import = || s.admin(&acme, &["zones", "import", &big_id, &file.display().to_string()]).expect("import");
    import();
    let after_one = settled_store_bytes(&s, &beta, &small_id);
    // While the next import runs, beta keeps writing.
    let done = std::sync::atomic::AtomicBool::new(false);
    let (during, slowest) = std::thread::scope(|scope| {
        scope.spawn(|| {
            import();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        std::thread::sleep(Duration::from_millis(20));
        let (mut n, mut slowest) = (0, Duration::ZERO);
        while !done.load(std::sync::atomic::Ordering::Relaxed) && n < 200 {
            let t = Instant::now();
            s.admin(&beta, &["records", "add", &small_id, &format!("w{n}"), "A", "10.2.0.1"]).expect("beta's write");
            slowest = slowest.max(t.elapsed());
            n += 1;
        }
        (n, slowest)
    });
    println!("beta's writes during a 30,000-record import: {during}, the slowest {slowest:?}");
    assert!(during >= 3, "beta's writes go on during the import ({during}, slowest {slowest:?})");
    for _ in 0..3 {
        import();
    }
    let after_five = settled_store_bytes(&s, &beta, &small_id);
    println!("store after one import: {after_one} bytes; after five: {after_five}");
    assert!(after_five < after_one * 2, "the store follows the live data: {after_one} → {after_five}");
}

/// Finding 17: an export of any size applies again through the operator socket.
#[test]
fn an_export_of_any_size_applies_again() {
    let s = server();
    let (acme, _) = tenants(&s);
    let zone = s.admin(&acme, &["zones", "create", "big.internal.", "--scope", "vpc-acme"]).expect("zone");
    let zone_id = zone["id"].as_str().expect("id").to_string();
    let file = s.dir.path().join("big.zone");
    let text: String =
        (0..40_000).map(|i| format!("host-{i:05} 300 IN A 10.{}.{}.{}\n", i / 65536, i / 256 % 256, i % 256)).collect();
    std::fs::write(&file, text).expect("zone file");
    s.admin(&acme, &["zones", "import", &zone_id, &file.display().to_string()]).expect("import");
    let config = s.config();
    let out = std::process::Command::new(common::BIN)
        .args(["operator", "--config", &config, "export"])
        .output()
        .expect("export");
    assert!(out.status.success());
    assert!(out.stdout.len() > 2 << 20, "larger than the default HTTP body limit: {} bytes", out.stdout.len());
    let exported = s.dir.path().join("export.toml");
    std::fs::write(&exported, &out.stdout).expect("write");
    let applied = s.operator(&["apply", "-f", &exported.display().to_string()]).expect("apply takes it");
    assert!(applied["result"].is_string(), "{applied}");
    assert_eq!(s.dig("127.0.90.5", "host-39999.big.internal").data("A"), ["10.0.156.63"]);
}

/// Finding 11: the running server alone writes its store (no in-process operator command behind its back), its
/// socket lives in a directory only it may write, nothing but a stale socket is ever replaced, and the socket
/// goes at exit.
#[test]
fn the_server_owns_its_store_and_socket() {
    let mut s = server();
    tenants(&s);
    let socket = s.dir.path().join("state.db.sock");
    std::fs::remove_file(&socket).expect("the socket goes astray");
    let refused = err(s.operator(&["vpcs", "list"]));
    assert!(refused.contains("held by another process") && refused.contains("does not answer"), "{refused}");
    let restore = err(s.operator(&["restore", &s.dir.path().join("state.db").display().to_string()]));
    assert!(restore.contains("held by another process"), "{restore}");
    s.terminate();
    s.spawn();
    assert!(socket.exists());
    s.terminate();
    assert!(!socket.exists(), "the socket goes at exit");
    let serve = |config: &str| {
        let out = std::process::Command::new(common::BIN).args(["serve", "--config", config]).output().expect("serve");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    std::fs::write(&socket, "precious").expect("a file where the socket goes");
    let why = serve(&s.config());
    assert!(why.contains("is not a socket"), "{why}");
    assert_eq!(std::fs::read_to_string(&socket).expect("untouched"), "precious");
    std::fs::remove_file(&socket).expect("rm");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let why = serve(&s.config());
    assert!(why.contains("writable by others"), "{why}");
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
}

/// Fuzzing findings (the `api` target): a body that is not UTF-8, a path no route serves, a method a route does not
/// take and a path segment that does not decode to UTF-8 were answered in plain text or not at all, not in the
/// API's JSON error shape.
#[test]
fn every_error_has_the_json_error_shape() {
    let s = server();
    let (acme, _) = tenants(&s);
    s.admin(&acme, &["zones", "create", "corp.internal."]).expect("zone");
    let mut request = format!(
        "PUT /v1/zones/1001%2Fcorp.internal./file HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {acme}\r\n\
         Content-Length: 4\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&[0xff, 0xfe, b'a', b'\n']);
    let answer = raw_http(&s.admin, std::net::Ipv4Addr::LOCALHOST, &request, Duration::ZERO).expect("answer");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"));
    assert_eq!(value["error"]["code"], "bad_body", "{answer}");
    for (request, code) in [
        (format!("PUT /v1/zones/x/records/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {acme}\r\n"), "not_found"),
        (format!("PATCH /v1/zones HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {acme}\r\n"), "method_not_allowed"),
        (format!("PUT /v1/blocks/%7B%F6 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {acme}\r\n"), "bad_path"),
    ] {
        let request = format!("{request}Content-Length: 0\r\nConnection: close\r\n\r\n");
        let answer =
            raw_http(&s.admin, std::net::Ipv4Addr::LOCALHOST, request.as_bytes(), Duration::ZERO).expect("answer");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"));
        assert_eq!(value["error"]["code"], code, "{answer}");
    }
}
