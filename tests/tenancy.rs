//! Tenants cannot hurt each other (issue 13): each test is one finding of the attack review, run against the real
//! server, CLI and store as an adversarial tenant would. The rule they hold the server to: a tenant may add service
//! to another account's VPC only with that account's consent (the link), never take away or redirect what that
//! account serves itself, and the VPC's owner can always see it and always undo it.

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
        audit_shows(&s, &acme, |e| e["action"] == "link.remove" && e["principal"] == "root:1002"),
        "acme's audit shows beta's removal: {:?}",
        audit(&s, &acme)
    );
    assert!(err(s.admin(&beta, &["zones", "rm", &zone_id])).contains("404"));
    let refused = |e: &Value| e["principal"] == "root:1002" && e["refused"]["status"] == 404;
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
