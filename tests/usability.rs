//! Issue 17: what a new user meets following the README — managed mode after the example, tables for people,
//! times, link requests, help texts, errors and exit codes, logs, ids — each held by a test of the CLI's output.
// A failing expectation is the test failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};

use common::store::{token, StoreServer};
use common::{free_port, BIN};

/// A managed server whose DNS port is taken (the example server runs there) fails with a clear error and leaves
/// nothing behind: no store, no secret, no socket.
#[test]
fn a_managed_server_on_a_taken_port_creates_nothing() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = free_port();
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[store]\npath = \"state.db\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n"
    );
    std::fs::write(dir.path().join("managed.toml"), config).expect("config");
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.path().join("managed.toml"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run vpcdns");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("in use"), "{stderr}");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into())
        .collect();
    assert_eq!(left, ["managed.toml"], "a failed start left files behind");
    drop(taken);
}

/// The managed example in `config/` runs beside the file-mode example: its own DNS port.
#[test]
fn the_managed_example_has_its_own_port() {
    let managed = std::fs::read_to_string("config/managed.toml").expect("config/managed.toml");
    let example = std::fs::read_to_string("config/example.toml").expect("config/example.toml");
    assert!(managed.contains("127.0.0.1:5301") && !example.contains(":5301"), "the two examples would collide");
}

/// Runs the CLI: (exit code, stdout, stderr).
fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).stdin(Stdio::null()).output().expect("run vpcdns");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// Exit codes tell a usage error (2), a refusal (3) and a failure or no answer (4) apart, and `--json` applies
/// to errors too: one JSON object on stderr.
#[test]
fn exit_codes_and_json_errors() {
    let s = StoreServer::start();
    let url = format!("http://{}", s.admin);
    let (code, _, stderr) = cli(&["admin", "--url", &url, "--key", "vpcdns_0000_bad", "whoami"]);
    assert_eq!(code, 3, "a refusal: {stderr}");
    assert!(stderr.starts_with("vpcdns: 401 "), "{stderr}");
    let (code, stdout, stderr) = cli(&["admin", "--url", &url, "--key", "vpcdns_0000_bad", "--json", "whoami"]);
    let error: serde_json::Value = serde_json::from_str(stderr.trim()).expect("a JSON error");
    assert_eq!((code, error["status"].as_u64(), stdout.as_str()), (3, Some(401), ""), "{stderr}");
    assert!(error["code"].is_string() && error["message"].is_string(), "{error}");
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (code, _, stderr) = cli(&["admin", "--url", &closed, "--key", "k", "--json", "whoami"]);
    let error: serde_json::Value = serde_json::from_str(stderr.trim()).expect("a JSON error");
    assert_eq!((code, error["code"].as_str()), (4, Some("unreachable")), "{stderr}");
    let (code, _, stderr) = cli(&["admin", "no-such-command"]);
    assert_eq!(code, 2, "a usage error: {stderr}");
}

/// A command run by a person prints no INFO lines and no colours when stderr is not a terminal; the server
/// removes its operator socket when it exits.
#[test]
fn logs_for_people_and_no_socket_left_behind() {
    let mut s = StoreServer::start();
    let socket = s.dir.path().join("state.db.sock");
    assert!(socket.exists());
    s.terminate();
    assert!(!socket.exists(), "the operator socket outlived the server");
    // With the server stopped, operator commands run in-process on the store: quietly.
    let config = s.config();
    let (code, stdout, stderr) = cli(&["operator", "--config", &config, "vpcs", "list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("INFO"), "an offline command logged: {stderr}");
    assert!(!stderr.contains('\u{1b}') && !stdout.contains('\u{1b}'), "colours on a pipe: {stderr}");
    let log = s.log();
    assert!(!log.contains('\u{1b}'), "the server's log on a file has colours");
}

/// `vpcdns admin …` as a person runs it (text, no `--json`): stdout, or the error on stderr.
fn admin(s: &StoreServer, key: &str, args: &[&str]) -> Result<String, String> {
    let url = format!("http://{}", s.admin);
    let (code, stdout, stderr) = cli(&[&["admin", "--url", url.as_str(), "--key", key, "--utc"], args].concat());
    if code == 0 {
        Ok(stdout)
    } else {
        Err(stderr)
    }
}

/// Two accounts with a VPC each and their root keys.
fn two_accounts(s: &StoreServer) -> (String, String) {
    s.put_account("1001", "acme");
    s.put_account("1002", "beta");
    for (id, account, cidr) in [("vpc-acme", "1001", "127.0.95.0/24"), ("vpc-beta", "1002", "127.0.96.0/24")] {
        s.operator(&["vpcs", "put", "--id", id, "--account", account, "--cidr", cidr]).expect("vpc");
    }
    (token(s.operator(&["key", "acme"])), token(s.operator(&["key", "beta"])))
}

/// Answers read as text for people: names instead of JSON objects, lists with commas, times in RFC 3339, a message
/// per block; principals named `user@account` everywhere; zones found however their name is written.
#[test]
fn the_walk_through_reads_without_json() {
    let s = StoreServer::start();
    let (acme, beta) = two_accounts(&s);
    let whoami = admin(&s, &acme, &["whoami"]).expect("whoami");
    assert!(whoami.contains("account: acme (1001)") && whoami.contains("principal: root@acme"), "{whoami}");

    // Created without the dot, used in another letter case.
    admin(&s, &acme, &["zones", "create", "Foo.Internal", "--scope", "vpc-acme"]).expect("zone");
    admin(&s, &acme, &["records", "add", "1001/foo.internal", "www", "A", "10.0.0.1"]).expect("record, no dot");
    admin(&s, &acme, &["records", "add", "1001/FOO.INTERNAL.", "api", "A", "10.0.0.2"]).expect("record, capitals");
    let shown = admin(&s, &acme, &["zones", "show", "1001/Foo.Internal"]).expect("zone");
    let lower = shown.to_lowercase();
    assert!(lower.contains("www.foo.internal.") && lower.contains("api.foo.internal."), "{shown}");
    assert!(shown.contains("scope: vpc-acme\n"), "{shown}");

    // A link request and its mail.
    let requested = admin(&s, &acme, &["links", "request", "root@beta.example"]).expect("request");
    let expires = requested.lines().find(|l| l.starts_with("expires: ")).expect("expires");
    assert!(expires.ends_with('Z') && expires.contains('T'), "an RFC 3339 time: {expires}");
    let inbox = admin(&s, &beta, &["inbox"]).expect("inbox");
    assert!(inbox.lines().all(|l| l.chars().count() <= 120), "a line wider than a terminal:\n{inbox}");
    assert!(inbox.contains("From:") && inbox.contains("acme (uid 1001)"), "{inbox}");
    let code = inbox.split("Verification code: ").nth(1).and_then(|r| r.get(..6)).expect("code");
    let request = requested.lines().find_map(|l| l.strip_prefix("request: ")).expect("request id");
    let wrong = admin(&s, &acme, &["links", "verify", request, "999999x"]).expect_err("a wrong code");
    assert!(wrong.contains("4 tries left"), "{wrong}");
    admin(&s, &acme, &["links", "verify", request, code]).expect("verified");
    let scoped = admin(&s, &acme, &["zones", "scope", "1001/foo.internal", "--add", "vpc-beta"]).expect("scope");
    assert!(scoped.contains("scope: vpc-acme, vpc-beta"), "{scoped}");
    let foreign = admin(&s, &beta, &["foreign-zones"]).expect("foreign zones");
    assert!(foreign.contains("acme (1001)") && foreign.contains("vpc-beta") && !foreign.contains('{'), "{foreign}");
    let removed = admin(&s, &beta, &["links", "rm", "acme"]).expect("unlink");
    assert!(removed.contains("vpc-beta") && !removed.contains('['), "{removed}");

    // Keys and the audit name their principals one way.
    admin(&s, &acme, &["users", "put", "reader", "--policy", "DNSReadOnlyAccess"]).expect("user");
    admin(&s, &acme, &["keys", "create", "--user", "reader"]).expect("key");
    let audit = admin(&s, &acme, &["audit", "--since", "1h"]).expect("audit");
    assert!(audit.contains("root@acme") && !audit.contains("root:1001"), "{audit}");
    assert!(audit.contains("for reader@acme (DNSReadOnlyAccess)"), "{audit}");
    let first = audit.lines().nth(2).expect("an entry");
    assert!(first.trim_start().starts_with("20") && first.contains('Z'), "times first, in words: {first}");
    let json = s.admin(&acme, &["audit"]).expect("audit");
    assert!(json["entries"][0]["time_ms"].is_u64(), "--json keeps Unix times: {json}");

    // A stale If-Match names the document as people know it.
    let stale = admin(&s, &acme, &["zones", "scope", "1001/foo.internal", "--add", "vpc-acme", "--if-match", "1"]);
    let stale = stale.expect_err("stale");
    assert!(stale.contains("412") && stale.contains("1001/foo.internal.") && !stale.contains("%2F"), "{stale}");
}

/// Link requests are visible to both sides (`links requests`), one can be declined, blocks are listed, and inbox
/// messages can be read and deleted; a message about a request says whether its code still works.
#[test]
fn link_requests_blocks_and_the_inbox() {
    let s = StoreServer::start();
    let (acme, beta) = two_accounts(&s);
    let first = s.admin(&acme, &["links", "request", "root@beta.example"]).expect("request");
    let first = first["request"].as_str().expect("id").to_string();
    let mine = admin(&s, &acme, &["links", "requests"]).expect("requests");
    assert!(mine.contains("outgoing:") && mine.contains(&first) && mine.contains("beta (1002)"), "{mine}");
    assert!(mine.contains("pending") && mine.contains("5"), "state and tries left: {mine}");
    let theirs = s.admin(&beta, &["links", "requests"]).expect("requests");
    assert_eq!(theirs["incoming"][0]["requester"]["name"], "acme", "{theirs}");
    assert_eq!(theirs["incoming"][0]["state"], "pending");

    // Declined: the code stops working, and the mail says so.
    let inbox = s.admin(&beta, &["inbox"]).expect("inbox");
    assert_eq!(inbox["messages"][0]["code"], "valid", "{inbox}");
    assert!(inbox["messages"][0]["code_expires"].is_u64());
    let code = inbox["messages"][0]["body"].as_str().expect("body");
    let code = code.split("Verification code: ").nth(1).and_then(|r| r.get(..6)).expect("code").to_string();
    // Only the target declines; nobody reads or deletes another account's mail.
    let message = inbox["messages"][0]["id"].as_str().expect("message id").to_string();
    assert!(admin(&s, &acme, &["links", "decline", &first]).expect_err("not acme's to decline").contains("404"));
    assert!(admin(&s, &acme, &["inbox", "read", &message]).expect_err("beta's mail").contains("404"));
    assert!(admin(&s, &acme, &["inbox", "rm", &message]).expect_err("beta's mail").contains("404"));
    admin(&s, &beta, &["links", "decline", &first]).expect("declined");
    let refused = admin(&s, &acme, &["links", "verify", &first, &code]).expect_err("a declined request");
    assert!(refused.contains("declined"), "{refused}");
    let inbox = s.admin(&beta, &["inbox"]).expect("inbox");
    assert_eq!(inbox["messages"][0]["code"], "no longer valid: the request is declined", "{inbox}");
    assert!(!inbox.to_string().contains(&code), "a declined request's code is not shown again");
    let theirs = admin(&s, &beta, &["links", "requests"]).expect("requests");
    assert!(theirs.contains("declined"), "{theirs}");

    // Read and remove a message.
    let id = inbox["messages"][0]["id"].as_str().expect("message id").to_string();
    assert_eq!(inbox["messages"][0]["read"], false);
    let read = admin(&s, &beta, &["inbox", "read", &id]).expect("read");
    assert!(read.contains("no longer valid") && read.contains("read: yes"), "{read}");
    assert_eq!(s.admin(&beta, &["inbox"]).expect("inbox")["messages"][0]["read"], true);
    admin(&s, &beta, &["inbox", "rm", &id]).expect("removed");
    assert_eq!(s.admin(&beta, &["inbox"]).expect("inbox")["messages"].as_array().map(Vec::len), Some(0));

    // Blocks.
    assert!(admin(&s, &beta, &["blocks", "list"]).expect("blocks").contains("blocks: (none)"));
    admin(&s, &beta, &["links", "block", "acme"]).expect("block");
    let blocks = admin(&s, &beta, &["blocks", "list"]).expect("blocks");
    assert!(blocks.contains("acme") && blocks.contains("1001"), "{blocks}");
    let again = admin(&s, &acme, &["links", "request", "root@beta.example"]).expect_err("blocked");
    assert!(again.contains("404"), "{again}");
}

/// An export applied back is `unchanged`: records made through the API keep their ids.
#[test]
fn an_export_applied_back_changes_nothing_and_keeps_every_id() {
    let s = StoreServer::start();
    let (acme, _) = two_accounts(&s);
    s.admin(&acme, &["zones", "create", "corp.internal.", "--scope", "vpc-acme"]).expect("zone");
    for (name, data) in [("www", "10.0.0.1"), ("api", "10.0.0.2")] {
        s.admin(&acme, &["records", "add", "1001/corp.internal.", name, "A", data]).expect("record");
    }
    let ids = |s: &StoreServer| -> Vec<String> {
        let shown = s.admin(&acme, &["zones", "show", "1001/corp.internal."]).expect("zone");
        let mut ids: Vec<String> = shown["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_string())
            .collect();
        ids.sort();
        ids
    };
    let before = ids(&s);
    let config = s.config();
    let (code, export, stderr) = cli(&["operator", "--config", &config, "export"]);
    assert_eq!(code, 0, "{stderr}");
    let file = s.dir.path().join("state.toml");
    std::fs::write(&file, export).expect("write the export");
    let applied = s.operator(&["apply", "-f", &file.display().to_string()]).expect("apply");
    assert_eq!((applied["result"].as_str(), applied["writes"].as_u64()), (Some("unchanged"), Some(0)), "{applied}");
    assert_eq!(ids(&s), before, "the ids survived");
}

/// The contract is served to anyone at `/v1/openapi.json`, as OpenAPI 3.1.
#[test]
fn the_api_serves_its_openapi_document() {
    let s = StoreServer::start();
    let (status, body) = common::http_get(&s.admin, "/v1/openapi.json");
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/zones/{id}/records"]["post"]["requestBody"].is_object(), "{body}");
    assert!(doc["components"]["schemas"]["ZoneDetail"].is_object());
}

/// One HTTP request to the admin API with a key: (status, JSON body).
fn api(s: &StoreServer, key: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&s.admin).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    let auth = if key.is_empty() { String::new() } else { format!("Authorization: Bearer {key}\r\n") };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let json = response.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or_default();
    (status, json)
}

/// List routes page (`limit`, `cursor`), the CLI follows the pages, and every error has one shape.
#[test]
fn lists_page_and_errors_share_one_shape() {
    let s = StoreServer::start();
    let (acme, _) = two_accounts(&s);
    for i in 0..5 {
        s.admin(&acme, &["zones", "create", &format!("z{i}.internal."), "--scope", "vpc-acme"]).expect("zone");
    }
    let (status, first) = api(&s, &acme, "GET", "/v1/zones?limit=2", "");
    assert_eq!((status, first["zones"].as_array().map(Vec::len)), (200, Some(2)), "{first}");
    let mut seen: Vec<String> = first["zones"].as_array().expect("zones").iter().map(|z| z["id"].to_string()).collect();
    let mut cursor = first["next_cursor"].as_str().expect("a next page").to_string();
    for _ in 0..5 {
        let (_, page) = api(&s, &acme, "GET", &format!("/v1/zones?limit=2&cursor={cursor}"), "");
        seen.extend(page["zones"].as_array().expect("zones").iter().map(|z| z["id"].to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "every zone once: {seen:?}");
    let listed = admin(&s, &acme, &["zones", "list"]).expect("zones");
    assert_eq!(listed.matches(".internal.").count(), 10, "the CLI follows every page (id and name): {listed}");

    let errors = [
        api(&s, &acme, "GET", "/v1/nothing", ""),
        api(&s, &acme, "PATCH", "/v1/zones", ""),
        api(&s, &acme, "POST", "/v1/zones", "{not json"),
        api(&s, &acme, "GET", "/v1/usage?from=yesterday", ""),
        api(&s, &acme, "GET", "/v1/zones?cursor=zz", ""),
        api(&s, "", "GET", "/v1/zones", ""),
        api(&s, &acme, "POST", "/v1/zones", "{\"name\": \"z0.internal.\"}"),
        api(&s, &acme, "POST", "/v1/zones", &"x".repeat(9 << 20)),
    ];
    let statuses: Vec<u16> = errors.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [404, 405, 400, 400, 400, 401, 409, 413]);
    for (status, body) in &errors {
        let error = &body["error"];
        assert!(error["code"].is_string() && error["message"].is_string(), "{status}: {body}");
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "only `error`: {body}");
    }
}
