//! The control plane end to end: a real server in store mode, the real CLI, a real store on disk, real dig.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{dig_at, BIN};
use serde_json::Value;

/// A server in store mode: DNS on a free port, admin API on another, operator socket in the temp dir.
struct StoreServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    dns: String,
    admin: String,
}

impl StoreServer {
    fn start() -> StoreServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let config =
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[store]\npath = \"state.db\"\n[admin]\nlisten = \"127.0.0.1:0\"\n";
        std::fs::write(dir.path().join("vpcdns.toml"), config).expect("config");
        let mut server = StoreServer { child: None, dir, dns: String::new(), admin: String::new() };
        server.spawn();
        server
    }

    fn config(&self) -> String {
        self.dir.path().join("vpcdns.toml").display().to_string()
    }

    fn spawn(&mut self) {
        let mut child = Command::new(BIN)
            .args(["serve", "--config", &self.config(), "--udp-sockets", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vpcdns");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(20)).expect("readiness line");
        let admin = rx.recv_timeout(Duration::from_secs(5)).expect("admin line");
        self.dns = ready.rsplit(' ').next().expect("dns address").to_string();
        self.admin = admin.split_whitespace().nth(2).expect("admin address").to_string();
        self.child = Some(child);
    }

    /// SIGTERM, then wait: the graceful path (usage counted since the last persist is written).
    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `vpcdns operator …` (over the socket while the server runs); returns the JSON answer or the error text.
    fn operator(&self, args: &[&str]) -> Result<Value, String> {
        let config = self.config();
        let mut all = vec!["operator", "--config", config.as_str(), "--json"];
        all.extend_from_slice(args);
        run(&all)
    }

    /// `vpcdns admin …` with `key`.
    fn admin(&self, key: &str, args: &[&str]) -> Result<Value, String> {
        let url = format!("http://{}", self.admin);
        let mut all = vec!["admin", "--url", url.as_str(), "--key", key, "--json"];
        all.extend_from_slice(args);
        run(&all)
    }

    fn dig(&self, source: &str, name: &str) -> common::Dig {
        dig_at(&self.dns, source, name, "A", &[])
    }
}

impl Drop for StoreServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(args: &[&str]) -> Result<Value, String> {
    let out = Command::new(BIN).args(args).output().expect("run vpcdns");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn token(v: Result<Value, String>) -> String {
    v.expect("key created")["token"].as_str().expect("token").to_string()
}

fn err(v: Result<Value, String>) -> String {
    v.expect_err("expected an error")
}

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

    // Refusals, each with its reason.
    assert!(err(s.admin(&acme, &["links", "request", "1002"])).contains("not by uid"));
    s.admin(&beta, &["users", "put", "ops", "--policy", "DNSFullAccess"]).expect("user");
    assert!(err(s.admin(&acme, &["links", "request", "ops@beta"])).contains("sub-users"));
    assert!(err(s.admin(&acme, &["links", "request", "gamma"])).contains("never cross sites"));
    assert!(err(s.admin(&acme, &["links", "request", "novpc"])).contains("no VPC"));
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
    s.stop();
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
    for left in (1..5).rev() {
        assert!(err(s.admin(&acme, &["links", "verify", &id, "999999x"])).contains(&format!("{left} tries left")));
    }
    assert!(err(s.admin(&acme, &["links", "verify", &id, "999999x"])).contains("dead"));
    let inbox = s.admin(&beta, &["inbox"]).expect("inbox");
    let body = inbox["messages"][0]["body"].as_str().expect("message");
    let code = body.split("Verification code: ").nth(1).and_then(|r| r.get(..6)).expect("code");
    assert!(err(s.admin(&acme, &["links", "verify", &id, code])).contains("dead"), "even the right code");
    // Three requests per pair per hour.
    s.admin(&acme, &["links", "request", "beta"]).expect("second");
    s.admin(&acme, &["links", "request", "beta"]).expect("third");
    assert!(err(s.admin(&acme, &["links", "request", "beta"])).contains("rate_limited"));
    // beta blocks acme: no more requests.
    s.admin(&beta, &["links", "block", "acme"]).expect("block");
    assert!(err(s.admin(&acme, &["links", "request", "beta"])).contains("forbidden"));
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

    // The audit log says who did what; explain works against the live state, for one's own VPCs only.
    let audit = s.admin(&acme, &["audit"]).expect("audit");
    let actions: Vec<&str> =
        audit["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"zone.create") && actions.contains(&"record.add"), "{actions:?}");
    assert!(!actions.contains(&"account.put"), "operator actions are not in a tenant's log");
    let url = format!("http://{}", s.admin);
    let out = Command::new(BIN)
        .args(["admin", "--url", &url, "--key", &acme, "explain", "--source", "127.0.80.5", "www.corp.internal"])
        .output()
        .expect("explain");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("vpc-acme") && text.contains("10.0.0.1"), "{text}");
    assert!(err(s.admin(&beta, &["explain", "--source", "127.0.80.5", "www.corp.internal"])).contains("403"));
}
