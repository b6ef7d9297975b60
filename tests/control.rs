//! The control plane end to end: a real server in store mode, the real CLI, a real store on disk, real dig.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::store::{err, run, token, StoreServer};
use common::{dig_at, BIN};
use serde_json::Value;

/// Accounts on both sites, VPCs on loopback ranges, root keys for acme and beta.
fn inventory(s: &StoreServer) -> (String, String) {
    for (uid, name, site) in
        [("1001", "acme", "intl"), ("1002", "beta", "intl"), ("2003", "gamma", "cn"), ("1004", "novpc", "intl")]
    {
        let email = format!("root@{name}.example");
        s.operator(&["accounts", "put", "--uid", uid, "--name", name, "--email", &email, "--site", site])
            .expect("account");
    }
    for (id, account, cidr) in [
        ("vpc-acme", "1001", "127.0.80.0/24"),
        ("vpc-beta", "1002", "127.0.81.0/24"),
        ("vpc-gamma", "2003", "127.0.82.0/24"),
    ] {
        s.operator(&["vpcs", "put", "--id", id, "--account", account, "--cidr", cidr]).expect("vpc");
    }
    (token(s.operator(&["key", "acme"])), token(s.operator(&["key", "root@beta.example"])))
}

#[test]
fn the_link_procedure_end_to_end() {
    let mut s = StoreServer::start();
    let (acme, beta) = inventory(&s);
    let zone = s.admin(&acme, &["zones", "create", "corp.internal.", "--scope", "vpc-acme"]).expect("zone");
    let zone_id = zone["id"].as_str().expect("zone id").to_string();
    s.admin(&acme, &["records", "add", &zone_id, "www", "A", "10.0.0.1"]).expect("record");
    assert_eq!(s.dig("127.0.80.5", "www.corp.internal").data("A"), ["10.0.0.1"]);
    assert_eq!(s.dig("127.0.81.5", "www.corp.internal").status, "REFUSED");

    // Refusals: a uid is refused as such; a sub-user, another site's account, one without a VPC all get the one
    // answer an unknown name gets (what exists is not for other tenants to learn).
    assert!(err(s.admin(&acme, &["links", "request", "1002"])).contains("not by uid"));
    s.admin(&beta, &["users", "put", "ops", "--policy", "DNSFullAccess"]).expect("user");
    for name in ["ops@beta", "gamma", "novpc", "nobody@nowhere.example"] {
        assert!(err(s.admin(&acme, &["links", "request", name])).contains("404 not_linkable"), "{name}");
    }
    // A VPC of an account not linked cannot enter the scope.
    assert!(err(s.admin(&acme, &["zones", "scope", &zone_id, "--add", "vpc-beta"])).contains("vpc_not_selectable"));

    // Request, read the code from beta's inbox, a wrong try, then the right code.
    let request = s.admin(&acme, &["links", "request", "root@beta.example"]).expect("request");
    let request_id = request["request"].as_str().expect("request id").to_string();
    let inbox = s.admin(&beta, &["inbox"]).expect("inbox");
    let body = inbox["messages"][0]["body"].as_str().expect("message").to_string();
    let code = body.split("Verification code: ").nth(1).and_then(|r| r.get(..6)).expect("code").to_string();
    assert!(err(s.admin(&acme, &["links", "verify", &request_id, "000000x"])).contains("4 tries left"));
    let verified = s.admin(&acme, &["links", "verify", &request_id, &code]).expect("verified");
    assert_eq!(verified["linked"], "1002");
    assert!(err(s.admin(&acme, &["links", "verify", &request_id, &code])).contains("verified"), "single use");
    let links = s.admin(&acme, &["links", "list"]).expect("links");
    assert_eq!(links["linked"][0]["uid"], "1002");

    // beta's VPC joins the scope at once and is answered; beta sees the zone among those answering in its VPCs.
    s.admin(&acme, &["zones", "scope", &zone_id, "--add", "vpc-beta"]).expect("scope");
    assert_eq!(s.dig("127.0.81.5", "www.corp.internal").data("A"), ["10.0.0.1"]);
    let foreign = s.admin(&beta, &["foreign-zones"]).expect("foreign zones");
    assert_eq!(foreign["zones"][0]["zone"], "corp.internal.");

    // beta removes the link: its VPC leaves the scope, the answer says so, and the same dig is refused.
    let removed = s.admin(&beta, &["links", "rm", "acme"]).expect("unlink");
    assert_eq!(removed["removed_from_scopes"][0]["vpcs"][0], "vpc-beta");
    assert_eq!(s.dig("127.0.81.5", "www.corp.internal").status, "REFUSED");
    assert_eq!(s.dig("127.0.80.5", "www.corp.internal").data("A"), ["10.0.0.1"]);

    // Everything acknowledged survives a restart.
    s.kill();
    s.spawn();
    assert_eq!(s.dig("127.0.80.5", "www.corp.internal").data("A"), ["10.0.0.1"]);
    assert_eq!(s.dig("127.0.81.5", "www.corp.internal").status, "REFUSED");
}

#[test]
fn codes_die_after_five_wrong_tries_and_requests_are_rate_limited() {
    let s = StoreServer::start();
    let (acme, beta) = inventory(&s);
    let request = s.admin(&acme, &["links", "request", "beta"]).expect("request");
    let id = request["request"].as_str().expect("id").to_string();
    let inbox = s.admin(&beta, &["inbox"]).expect("inbox");
    let body = inbox["messages"][0]["body"].as_str().expect("message");
    let code = body.split("Verification code: ").nth(1).and_then(|r| r.get(..6)).expect("code").to_string();
    for left in (1..5).rev() {
        let tries = if left == 1 { "1 try left".to_string() } else { format!("{left} tries left") };
        assert!(err(s.admin(&acme, &["links", "verify", &id, "999999x"])).contains(&tries));
    }
    assert!(err(s.admin(&acme, &["links", "verify", &id, "999999x"])).contains("dead"));
    assert!(err(s.admin(&acme, &["links", "verify", &id, &code])).contains("dead"), "even the right code");
    let inbox = s.admin(&beta, &["inbox"]).expect("inbox").to_string();
    assert!(!inbox.contains(&code) && inbox.contains("no longer valid"), "a dead request shows no code: {inbox}");
    // Three requests per pair per hour.
    s.admin(&acme, &["links", "request", "beta"]).expect("second");
    s.admin(&acme, &["links", "request", "beta"]).expect("third");
    assert!(err(s.admin(&acme, &["links", "request", "beta"])).contains("rate_limited"));
    // beta blocks acme: no more requests (the block, not the pair limit, answers, as for any unlinkable name).
    s.admin(&beta, &["links", "block", "acme"]).expect("block");
    assert!(err(s.admin(&acme, &["links", "request", "beta"])).contains("not_linkable"));
    s.admin(&beta, &["links", "unblock", "acme"]).expect("unblock");
    assert!(err(s.admin(&acme, &["links", "request", "beta"])).contains("rate_limited"), "unblocked, still limited");
    // Ten requests per hour per requester, all targets together.
    for i in 1..=4 {
        let (uid, name) = (format!("300{i}"), format!("t{i}"));
        let email = format!("root@{name}.example");
        s.operator(&["accounts", "put", "--uid", &uid, "--name", &name, "--email", &email, "--site", "intl"])
            .expect("acct");
        let (id, cidr) = (format!("vpc-t{i}"), format!("127.0.{}.0/24", 84 + i));
        s.operator(&["vpcs", "put", "--id", &id, "--account", &uid, "--cidr", &cidr]).expect("vpc");
    }
    for target in ["t1", "t1", "t1", "t2", "t2", "t2", "t3"] {
        s.admin(&acme, &["links", "request", target]).expect("within the limit");
    }
    assert!(err(s.admin(&acme, &["links", "request", "t4"])).contains("per hour"), "the eleventh request");
    // The code is never in the store: not in the request, not in the inbox, not in the WAL. (t3's request is the
    // one still pending: beta's died, superseded or blocked.)
    let t3 = token(s.operator(&["key", "t3"]));
    let inbox = s.admin(&t3, &["inbox"]).expect("inbox");
    let code = inbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["body"].as_str()?.split("Verification code: ").nth(1)?.get(..6).map(str::to_string))
        .find(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .expect("a live request's code");
    let stored: String = ["state.db", "state.db-wal"]
        .iter()
        .map(|f| String::from_utf8_lossy(&std::fs::read(s.dir.path().join(f)).unwrap_or_default()).into_owned())
        .collect();
    assert!(stored.contains("Verification code: {code}"), "the inbox holds the placeholder");
    assert!(!stored.contains(&format!("Verification code: {code}")), "the store holds the code");
    use std::os::unix::fs::PermissionsExt;
    for file in ["state.db", "state.db.secret"] {
        let mode = std::fs::metadata(s.dir.path().join(file)).expect("file").permissions().mode();
        assert_eq!(mode & 0o077, 0, "{file} is the owner's only");
    }
}

#[test]
fn bad_operator_and_key_input_is_refused_not_crashed() {
    let s = StoreServer::start();
    let (acme, _) = inventory(&s);
    let bad_cidr = err(s.operator(&["vpcs", "put", "--id", "v-bad", "--account", "1001", "--cidr", "300.0.0.0/8"]));
    assert!(bad_cidr.contains("422"), "{bad_cidr}");
    let bad_site = err(s.operator(&[
        "accounts",
        "put",
        "--uid",
        "1009",
        "--name",
        "mars",
        "--email",
        "root@mars.example",
        "--site",
        "mars",
    ]));
    assert!(bad_site.contains("422"), "{bad_site}");
    let huge = err(s.admin(&acme, &["keys", "create", "--expires-in-days", "18446744073709551615"]));
    assert!(huge.contains("bad_expiry"), "{huge}");
    assert!(s.admin(&acme, &["whoami"]).is_ok(), "the server is fine");
}

#[test]
fn tenants_stay_in_their_own_account() {
    let s = StoreServer::start();
    let (acme, beta) = inventory(&s);
    let zone = s.admin(&acme, &["zones", "create", "corp.internal.", "--scope", "vpc-acme"]).expect("zone");
    let zone_id = zone["id"].as_str().expect("zone id").to_string();
    // Another account's zone is not found, for every verb.
    assert!(err(s.admin(&beta, &["zones", "show", &zone_id])).contains("not_found"));
    assert!(err(s.admin(&beta, &["zones", "rm", &zone_id])).contains("not_found"));
    assert!(err(s.admin(&beta, &["records", "add", &zone_id, "x", "A", "10.0.0.9"])).contains("not_found"));
    assert!(err(s.admin(&beta, &["zones", "scope", &zone_id, "--set", "vpc-beta"])).contains("not_found"));
    assert!(err(s.admin(&beta, &["zones", "export", &zone_id])).contains("not_found"));
    // A read-only sub-user reads but cannot write; a user without a policy cannot even read.
    s.admin(&acme, &["users", "put", "auditor", "--policy", "DNSReadOnlyAccess"]).expect("user");
    s.admin(&acme, &["users", "put", "nobody"]).expect("user");
    let ro = token(s.admin(&acme, &["keys", "create", "--user", "auditor"]));
    let none = token(s.admin(&acme, &["keys", "create", "--user", "nobody"]));
    assert!(s.admin(&ro, &["zones", "list"]).is_ok());
    assert!(err(s.admin(&ro, &["zones", "create", "x.internal."])).contains("403"));
    assert!(err(s.admin(&none, &["zones", "list"])).contains("403"));
    assert!(err(s.admin(&ro, &["inbox"])).contains("403"), "the inbox is the root's");
    // A bad key is 401.
    assert!(err(s.admin("vpcdns_nope_nope", &["zones", "list"])).contains("401"));
}

#[test]
fn stale_writers_get_412() {
    let s = StoreServer::start();
    let (acme, _) = inventory(&s);
    let zone = s.admin(&acme, &["zones", "create", "corp.internal.", "--scope", "vpc-acme"]).expect("zone");
    let zone_id = zone["id"].as_str().expect("zone id").to_string();
    let shown = s.admin(&acme, &["zones", "show", &zone_id]).expect("show");
    let revision = shown["zone_revision"].as_u64().expect("revision").to_string();
    s.admin(&acme, &["records", "add", &zone_id, "a", "A", "10.0.0.1", "--if-match", &revision]).expect("first writer");
    let second = err(s.admin(&acme, &["records", "add", &zone_id, "b", "A", "10.0.0.2", "--if-match", &revision]));
    assert!(second.contains("412"), "{second}");
    assert_eq!(s.dig("127.0.80.5", "a.corp.internal").data("A"), ["10.0.0.1"]);
    assert_eq!(s.dig("127.0.80.5", "b.corp.internal").status, "NXDOMAIN");
    // Validation is the config file's: a CNAME beside data is refused with the problem named.
    let bad = err(s.admin(&acme, &["records", "add", &zone_id, "a", "CNAME", "b"]));
    assert!(bad.contains("CNAME beside other data"), "{bad}");
}

#[test]
fn usage_is_billed_to_the_zone_owner_by_consumer_and_survives_restarts() {
    let mut s = StoreServer::start();
    let (acme, beta) = inventory(&s);
    s.operator(&["link", "acme", "beta"]).expect("operator link");
    let zone = s.admin(&acme, &["zones", "create", "corp.internal.", "--scope", "vpc-acme"]).expect("zone");
    let zone_id = zone["id"].as_str().expect("zone id").to_string();
    s.admin(&acme, &["zones", "scope", &zone_id, "--add", "vpc-beta"]).expect("scope");
    s.admin(&acme, &["records", "add", &zone_id, "www", "A", "10.0.0.1"]).expect("record");
    for _ in 0..3 {
        assert_eq!(s.dig("127.0.81.5", "www.corp.internal").data("A"), ["10.0.0.1"]);
    }
    for _ in 0..2 {
        assert_eq!(s.dig("127.0.80.5", "nope.corp.internal").status, "NXDOMAIN");
    }
    assert_eq!(s.dig("127.0.99.5", "www.corp.internal").status, "REFUSED", "not billed");
    let mut usage = Value::Null;
    for _ in 0..100 {
        usage = s.admin(&acme, &["usage"]).expect("usage");
        if usage["total"] == 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(usage["total"], 5, "{usage}");
    let by_consumer = |consumer: &str| {
        usage["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|i| i["consumer"] == consumer)
            .map(|i| i["queries"].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(by_consumer("1002"), 3, "beta's queries billed to acme");
    assert_eq!(by_consumer("1001"), 2);
    assert_eq!(s.admin(&beta, &["usage"]).expect("beta usage")["total"], 0, "beta owns no zone");
    s.terminate();
    s.spawn();
    assert_eq!(s.admin(&acme, &["usage"]).expect("usage after restart")["total"], 5);
    assert_eq!(s.operator(&["usage"]).expect("operator usage")["total"], 5, "the operator sees every owner's");
    let all = s.operator(&["audit"]).expect("operator audit");
    assert!(all["entries"].as_array().expect("entries").iter().any(|e| e["action"] == "account.put"));

    // The audit log says who did what; explain works against the live state, for one's own VPCs only.
    let audit = s.admin(&acme, &["audit"]).expect("audit");
    let actions: Vec<&str> =
        audit["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"zone.create") && actions.contains(&"record.add"), "{actions:?}");
    assert!(actions.contains(&"account.put"), "the operator's changes to the account are in its log: {actions:?}");
    let targets: Vec<&str> =
        audit["entries"].as_array().expect("entries").iter().filter_map(|e| e["target"].as_str()).collect();
    assert!(!targets.contains(&"1002"), "another account's changes are not: {targets:?}");
    let url = format!("http://{}", s.admin);
    let out = Command::new(BIN)
        .args(["admin", "--url", &url, "--key", &acme, "explain", "--source", "127.0.80.5", "www.corp.internal"])
        .output()
        .expect("explain");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("vpc-acme") && text.contains("10.0.0.1"), "{text}");
    assert!(err(s.admin(&beta, &["explain", "--source", "127.0.80.5", "www.corp.internal"])).contains("403"));
}

const STATE_FILE: &str = r#"
[[accounts]]
uid = "1001"
name = "acme"
email = "root@acme.example"
site = "intl"

[[accounts]]
uid = "1002"
name = "beta"
email = "root@beta.example"
site = "intl"

[[vpcs]]
id = "vpc-acme"
account = "1001"
cidrs = ["127.0.80.0/24"]

[[vpcs]]
id = "vpc-beta"
account = "1002"
cidrs = ["127.0.81.0/24"]

[[links]]
account = "1001"
linked = "root@beta.example"

[[zones]]
name = "corp.internal."
account = "1001"
scope = ["vpc-acme", "vpc-beta"]
file = "corp.zone"
"#;

const STATE_ZONE: &str =
    "$TTL 300\n@ SOA ns hostmaster 7 3600 600 86400 60\n@ NS ns\nns A 10.0.0.53\nwww A 10.0.0.1\napi CNAME www\n";

#[test]
fn apply_export_backup_and_restore() {
    let mut s = StoreServer::start();
    std::fs::write(s.dir.path().join("state.toml"), STATE_FILE).expect("state file");
    std::fs::write(s.dir.path().join("corp.zone"), STATE_ZONE).expect("zone file");
    let file = s.dir.path().join("state.toml").display().to_string();
    let first = s.operator(&["apply", "-f", &file]).expect("apply");
    assert_eq!(first["result"], "applied");
    assert_eq!(s.dig("127.0.81.5", "api.corp.internal").data("A"), ["10.0.0.1"], "served from the store");
    let again = s.operator(&["apply", "-f", &file]).expect("apply again");
    assert_eq!((again["result"].as_str(), again["writes"].as_u64()), (Some("unchanged"), Some(0)), "idempotent");

    // export → apply into an empty server gives the same answers, and exports the same text again.
    let out = Command::new(BIN).args(["operator", "--config", &s.config(), "export"]).output().expect("export");
    let exported = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(exported.contains("corp.internal."), "{exported}");
    let other = StoreServer::start();
    std::fs::write(other.dir.path().join("exported.toml"), &exported).expect("write export");
    let path = other.dir.path().join("exported.toml").display().to_string();
    other.operator(&["apply", "-f", &path]).expect("apply the export");
    assert_eq!(other.dig("127.0.80.5", "api.corp.internal").data("A"), ["10.0.0.1"]);
    let out = Command::new(BIN).args(["operator", "--config", &other.config(), "export"]).output().expect("export");
    assert_eq!(String::from_utf8_lossy(&out.stdout), exported, "the round trip is stable");

    // An invalid file changes nothing.
    std::fs::write(s.dir.path().join("bad.toml"), STATE_FILE.replace("127.0.81.0/24", "127.0.80.128/25")).expect("bad");
    let bad = s.dir.path().join("bad.toml").display().to_string();
    assert!(err(s.operator(&["apply", "-f", &bad])).contains("must not overlap"));
    assert_eq!(s.dig("127.0.81.5", "www.corp.internal").data("A"), ["10.0.0.1"]);

    // Backup while running; a later change; restore (server stopped) brings the backup back.
    let backup = s.dir.path().join("backup.db").display().to_string();
    s.operator(&["backup", &backup]).expect("backup");
    s.operator(&["vpcs", "rm", "vpc-beta"]).expect("remove a vpc");
    assert_eq!(s.dig("127.0.81.5", "www.corp.internal").status, "REFUSED");
    assert!(err(s.operator(&["restore", &backup])).contains("stop it"), "no restore under a running server");
    s.terminate();
    s.operator(&["restore", &backup]).expect("restore");
    s.spawn();
    assert_eq!(s.dig("127.0.81.5", "www.corp.internal").data("A"), ["10.0.0.1"]);
    // apply --prune removes what the file no longer declares; without --prune it stays.
    let without_zone = STATE_FILE[..STATE_FILE.find("[[zones]]").expect("zones")].to_string();
    std::fs::write(s.dir.path().join("nozone.toml"), without_zone).expect("file");
    let nozone = s.dir.path().join("nozone.toml").display().to_string();
    assert_eq!(s.operator(&["apply", "-f", &nozone]).expect("apply")["result"], "unchanged");
    assert_eq!(s.dig("127.0.81.5", "www.corp.internal").data("A"), ["10.0.0.1"]);
    s.operator(&["apply", "-f", &nozone, "--prune"]).expect("prune");
    assert_eq!(s.dig("127.0.81.5", "www.corp.internal").status, "REFUSED", "the zone is gone");
}

/// A raw HTTP/1.1 request to the admin API; returns the status code.
fn http_status(addr: &str, request: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn keys_rotate_and_expire_failures_are_throttled_and_operator_routes_stay_local() {
    let s = StoreServer::start();
    let (acme, _) = inventory(&s);
    // Rotation: the new token works, the old one is gone.
    let listed = s.admin(&acme, &["keys", "list"]).expect("keys");
    let id = listed["keys"][0]["id"].as_str().expect("key id").to_string();
    let rotated = token(s.admin(&acme, &["keys", "rotate", &id]));
    assert!(s.admin(&rotated, &["whoami"]).is_ok());
    assert!(err(s.admin(&acme, &["whoami"])).contains("401"));
    // No key is born expired (expiry itself is unit-tested in control::auth).
    assert!(err(s.admin(&rotated, &["keys", "create", "--expires-in-days", "0"])).contains("bad_expiry"));
    // Operator routes do not exist on the tenant listener, with or without a key.
    let request = format!(
        "GET /v1/operator/accounts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {rotated}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(http_status(&s.admin, &request), 404);
    let post = "POST /v1/operator/vpcs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    assert_eq!(http_status(&s.admin, post), 404);
    // The operator socket is the owner's only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.dir.path().join("state.db.sock")).expect("socket").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Failed authentications are throttled per (address, key id): 10 per minute, then 429 for that key id only.
    let mut refused = 0;
    loop {
        let e = err(s.admin("vpcdns_bad_key", &["whoami"]));
        if e.contains("429") {
            break;
        }
        assert!(e.contains("401"), "{e}");
        refused += 1;
        assert!(refused <= 10, "no throttling after {refused} failures");
    }
    assert_eq!(refused, 10);
    assert!(s.admin(&rotated, &["whoami"]).is_ok(), "other keys from the same address still work");
}

/// Runs openssl in `dir`; the test needs it (scripts/test.sh installs it).
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("openssl must be installed (scripts/test.sh installs it)");
    assert!(status.success(), "openssl {args:?}");
}

#[test]
fn the_admin_api_speaks_tls_when_given_a_certificate() {
    // A CA, and a server certificate it signs for 127.0.0.1.
    let certs = tempfile::tempdir().expect("temp dir");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let mut ca =
        vec!["req", "-x509", "-days", "1", "-subj", "/CN=vpcdns-test-ca", "-keyout", "ca.key", "-out", "ca.pem"];
    ca.extend_from_slice(&ec);
    openssl(certs.path(), &ca);
    let mut csr = vec!["req", "-subj", "/CN=vpcdns", "-keyout", "key.pem", "-out", "leaf.csr"];
    csr.extend_from_slice(&ec);
    openssl(certs.path(), &csr);
    std::fs::write(certs.path().join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        .expect("ext");
    openssl(
        certs.path(),
        &["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1"]
            .into_iter()
            .chain(["-out", "cert.pem", "-extfile", "ext.cnf"])
            .collect::<Vec<_>>(),
    );
    let cert = std::fs::read(certs.path().join("cert.pem")).expect("cert");
    let key = std::fs::read(certs.path().join("key.pem")).expect("key");
    let s = StoreServer::start_with(
        "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
        "",
        &[("cert.pem", &cert), ("key.pem", &key)],
    );
    let (acme, _) = inventory(&s);
    let ca = certs.path().join("ca.pem").display().to_string();
    let https = format!("https://{}", s.admin.trim_start_matches("https://"));
    let run_https = |extra: &[&str]| {
        let mut args = vec!["admin", "--url", https.as_str(), "--key", acme.as_str(), "--json"];
        args.extend_from_slice(extra);
        run(&args)
    };
    let who = run_https(&["--ca", &ca, "whoami"]).expect("whoami over TLS");
    assert_eq!(who["account"]["name"], "acme");
    assert!(run_https(&["whoami"]).expect_err("no CA").contains("--ca"));
    // Plain HTTP to the TLS port gets no answer.
    let plain = format!("http://{}", s.admin.trim_start_matches("https://"));
    assert!(run(&["admin", "--url", &plain, "--key", &acme, "whoami"]).is_err());
}

#[test]
fn codes_expire() {
    let s = StoreServer::start_with("link_code_ttl_secs = 1\n", "", &[]);
    let (acme, _) = inventory(&s);
    let request = s.admin(&acme, &["links", "request", "beta"]).expect("request");
    let id = request["request"].as_str().expect("id").to_string();
    std::thread::sleep(Duration::from_millis(2100));
    assert!(err(s.admin(&acme, &["links", "verify", &id, "123456"])).contains("expired"));
}

#[test]
fn records_change_and_zone_files_import_and_export() {
    let s = StoreServer::start();
    let (acme, _) = inventory(&s);
    let zone = s.admin(&acme, &["zones", "create", "corp.internal.", "--scope", "vpc-acme"]).expect("zone");
    let zone_id = zone["id"].as_str().expect("zone id").to_string();
    let added = s.admin(&acme, &["records", "add", &zone_id, "www", "A", "10.0.0.1"]).expect("add");
    let rid = added["id"].as_str().expect("record id").to_string();
    s.admin(&acme, &["records", "change", &zone_id, &rid, "www", "A", "10.0.0.2", "--ttl", "60"]).expect("change");
    let d = s.dig("127.0.80.5", "www.corp.internal");
    assert_eq!((d.data("A"), d.answer[0].ttl), (vec!["10.0.0.2".to_string()], 60));
    s.admin(&acme, &["records", "rm", &zone_id, &rid]).expect("remove");
    assert_eq!(s.dig("127.0.80.5", "www.corp.internal").status, "NXDOMAIN");

    // Import replaces the records with a master file; export writes one back.
    let file = s.dir.path().join("import.zone");
    std::fs::write(&file, "$TTL 120\n@ MX 10 mail\nmail A 10.0.0.25\nwww CNAME mail\n_sip._tcp SRV 0 5 5060 mail\n")
        .expect("file");
    let imported = s.admin(&acme, &["zones", "import", &zone_id, &file.display().to_string()]).expect("import");
    assert_eq!(imported["records"], 4);
    assert_eq!(s.dig("127.0.80.5", "www.corp.internal").data("A"), ["10.0.0.25"]);
    let url = format!("http://{}", s.admin);
    let out = Command::new(BIN)
        .args(["admin", "--url", &url, "--key", &acme, "zones", "export", &zone_id])
        .output()
        .expect("export");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("$ORIGIN corp.internal.") && text.contains("mail\t120\tIN\tA\t10.0.0.25"), "{text}");
    // Tenant text may not reach the file system.
    std::fs::write(&file, "$INCLUDE /etc/passwd\n").expect("file");
    assert!(err(s.admin(&acme, &["zones", "import", &zone_id, &file.display().to_string()]))
        .contains("$INCLUDE is not allowed"));
    // Bad input gets the API's JSON errors, not a crash.
    let bad = "POST /v1/zones HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n";
    let request = format!("{bad}Authorization: Bearer {acme}\r\n\r\n{{\"nme\":1}}");
    assert_eq!(http_status(&s.admin, &request), 422);
    assert!(err(s.admin(&acme, &["records", "add", &zone_id, "x", "A", "999.1.1.1"])).contains("bad_record"));
    assert!(
        err(s.admin(&acme, &["records", "add", &zone_id, "x", "DNAME", "y.example."])).contains("cannot be managed")
    );
}

#[test]
fn scopes_set_add_remove_and_other_accounts_keys_and_links_are_out_of_reach() {
    let s = StoreServer::start();
    let (acme, beta) = inventory(&s);
    s.operator(&["vpcs", "put", "--id", "vpc-acme-2", "--account", "1001", "--cidr", "127.0.83.0/24"]).expect("vpc");
    let zone = s.admin(&acme, &["zones", "create", "corp.internal."]).expect("zone");
    let zone_id = zone["id"].as_str().expect("zone id").to_string();
    s.admin(&acme, &["records", "add", &zone_id, "www", "A", "10.0.0.1"]).expect("record");
    assert_eq!(s.dig("127.0.80.5", "www.corp.internal").status, "REFUSED", "an empty scope answers nowhere");
    let set = s.admin(&acme, &["zones", "scope", &zone_id, "--set", "vpc-acme", "vpc-acme-2"]).expect("set");
    assert_eq!(set["scope"], serde_json::json!(["vpc-acme", "vpc-acme-2"]));
    assert_eq!(s.dig("127.0.83.5", "www.corp.internal").data("A"), ["10.0.0.1"]);
    s.admin(&acme, &["zones", "scope", &zone_id, "--remove", "vpc-acme-2"]).expect("remove");
    assert_eq!(s.dig("127.0.83.5", "www.corp.internal").status, "REFUSED");
    assert_eq!(s.dig("127.0.80.5", "www.corp.internal").data("A"), ["10.0.0.1"]);
    // Keys, users and links of another account are out of reach.
    let acme_key = s.admin(&acme, &["keys", "list"]).expect("keys")["keys"][0]["id"].as_str().expect("id").to_string();
    assert!(err(s.admin(&beta, &["keys", "rm", &acme_key])).contains("not_found"));
    assert!(err(s.admin(&beta, &["keys", "rotate", &acme_key])).contains("not_found"));
    s.admin(&acme, &["users", "put", "ops", "--policy", "DNSFullAccess"]).expect("user");
    assert!(err(s.admin(&beta, &["users", "rm", "ops"])).contains("not_found"));
    assert!(err(s.admin(&beta, &["keys", "create", "--user", "ops"])).contains("not_found"));
    s.operator(&["link", "acme", "beta"]).expect("link");
    assert!(err(s.admin(&beta, &["links", "rm", "gamma"])).contains("not_found"), "no link with gamma");
    assert_eq!(s.admin(&beta, &["links", "list"]).expect("links")["linked_by"][0]["uid"], "1001");
    assert!(s.admin(&beta, &["audit"]).expect("audit")["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .all(|e| e["principal"] != "root@acme"));
    // Deleting a zone with a stale If-Match is refused; with the current one it goes.
    let shown = s.admin(&acme, &["zones", "show", &zone_id]).expect("show");
    let current = shown["zone_revision"].as_u64().expect("revision");
    let stale = err(s.admin(&acme, &["zones", "rm", &zone_id, "--if-match", &(current - 1).to_string()]));
    assert!(stale.contains("412"), "{stale}");
    s.admin(&acme, &["zones", "rm", &zone_id, "--if-match", &current.to_string()]).expect("delete");
    assert_eq!(s.dig("127.0.80.5", "www.corp.internal").status, "REFUSED");
}

#[test]
fn every_resource_takes_if_match_and_usage_reads_ranges() {
    let s = StoreServer::start();
    let (acme, beta) = inventory(&s);
    // Users, keys and links carry revisions; a stale If-Match is 412.
    s.admin(&acme, &["users", "put", "ops", "--policy", "DNSReadOnlyAccess"]).expect("user");
    let users = s.admin(&acme, &["users", "list"]).expect("users");
    let rev = users["users"][0]["revision"].as_u64().expect("user revision").to_string();
    s.admin(&acme, &["users", "put", "ops", "--policy", "DNSFullAccess", "--if-match", &rev]).expect("current");
    assert!(err(s.admin(&acme, &["users", "rm", "ops", "--if-match", &rev])).contains("412"), "stale user");
    let keys = s.admin(&acme, &["keys", "list"]).expect("keys");
    let (key_id, key_rev) =
        (keys["keys"][0]["id"].as_str().expect("id").to_string(), keys["keys"][0]["revision"].as_u64().expect("rev"));
    assert!(err(s.admin(&acme, &["keys", "rotate", &key_id, "--if-match", &(key_rev + 1).to_string()])).contains("412"));
    s.operator(&["link", "acme", "beta"]).expect("link");
    let links = s.admin(&acme, &["links", "list"]).expect("links");
    assert!(links["linked"][0]["added_at"].as_u64().unwrap_or(0) > 1_700_000_000, "added_at is a time");
    let link_rev = links["linked"][0]["revision"].as_u64().expect("link revision");
    assert!(err(s.admin(&beta, &["links", "rm", "acme", "--if-match", &(link_rev + 1).to_string()])).contains("412"));
    // The selectable list holds a linked account's VPCs at once.
    let vpcs = s.admin(&acme, &["vpcs"]).expect("vpcs");
    let selectable: Vec<&str> =
        vpcs["selectable"].as_array().expect("list").iter().filter_map(|v| v["id"].as_str()).collect();
    assert!(
        selectable.contains(&"vpc-beta") && selectable.contains(&"vpc-acme") && !selectable.contains(&"vpc-gamma"),
        "{selectable:?}"
    );
    // NODATA is billed like NOERROR and NXDOMAIN; a range that excludes now is empty.
    let zone = s.admin(&acme, &["zones", "create", "corp.internal.", "--scope", "vpc-acme"]).expect("zone");
    let zone_id = zone["id"].as_str().expect("id").to_string();
    s.admin(&acme, &["records", "add", &zone_id, "www", "A", "10.0.0.1"]).expect("record");
    let d = dig_at(&s.dns, "127.0.80.5", "www.corp.internal", "MX", &[]);
    assert_eq!((d.status.as_str(), d.answer.len()), ("NOERROR", 0), "NODATA");
    let mut total = Value::Null;
    for _ in 0..100 {
        total = s.admin(&acme, &["usage"]).expect("usage")["total"].clone();
        if total == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(total, 1, "the NODATA answer is billed");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    let (future, later) = ((now + 7200).to_string(), (now + 9000).to_string());
    assert_eq!(s.admin(&acme, &["usage", "--from", &future, "--to", &later]).expect("usage")["total"], 0);
}

/// A change sent with an Idempotency-Key is made once, however often it is retried (the CLI sends a fresh key per
/// command, and the same one when it retries `503 outcome_unknown` itself); the key for another request is refused.
#[test]
fn a_retried_change_with_its_idempotency_key_is_made_once() {
    let s = StoreServer::start();
    let (acme, beta) = inventory(&s);
    let zone = s.admin(&acme, &["zones", "create", "corp.internal.", "--scope", "vpc-acme"]).expect("zone");
    let zone_id = zone["id"].as_str().expect("zone id").to_string();
    let add = ["records", "add", &zone_id, "www", "A", "10.0.0.1", "--idempotency-key", "retry-1"];
    let first = s.admin(&acme, &add).expect("first");
    let again = s.admin(&acme, &add).expect("retry");
    assert_eq!(first, again, "the retry gets the first answer");
    let shown = s.admin(&acme, &["zones", "show", &zone_id]).expect("zone");
    let records = shown["records"].as_array().expect("records");
    assert_eq!(records.iter().filter(|r| r["name"] == "www.corp.internal.").count(), 1, "{shown}");
    let other =
        err(s.admin(&acme, &["records", "add", &zone_id, "db", "A", "10.0.0.2", "--idempotency-key", "retry-1"]));
    assert!(other.contains("409 idempotency_key_reused"), "{other}");
    // Keys are per account: another tenant's change under the same key is its own, never acme's answer.
    let theirs =
        s.admin(&beta, &["zones", "create", "beta.internal.", "--scope", "vpc-beta", "--idempotency-key", "retry-1"]);
    let theirs = theirs.expect("beta's own change under the same key");
    assert_eq!(theirs["name"], "beta.internal.", "{theirs}");
    // Without the option every command is its own change.
    s.admin(&acme, &["records", "add", &zone_id, "www", "A", "10.0.0.1"]).expect("a second, separate add");
    let shown = s.admin(&acme, &["zones", "show", &zone_id]).expect("zone");
    let count =
        shown["records"].as_array().expect("records").iter().filter(|r| r["name"] == "www.corp.internal.").count();
    assert_eq!(count, 2, "{shown}");
}
