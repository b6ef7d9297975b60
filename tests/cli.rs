//! `vpcdns check` and `vpcdns explain`: every validation rule gives a clear error naming the item, and explain
//! tells why a source gets its answer.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::run_cli;

const BASE: &str = r#"
[server]
listen = ["127.0.0.1:0"]

[[accounts]]
uid = "1000000000000001"
name = "acme"
email = "root@acme.example"
site = "intl"

[[accounts]]
uid = "1000000000000002"
name = "beta"
email = "root@beta.example"
site = "intl"

[[accounts]]
uid = "2000000000000003"
name = "gamma"
email = "root@gamma.example"
site = "cn"

[[accounts]]
uid = "1000000000000004"
name = "novpc"
email = "root@novpc.example"
site = "intl"

[[users]]
account = "1000000000000002"
name = "ops"
policies = ["DNSFullAccess"]

[[vpcs]]
id = "vpc-a"
account = "1000000000000001"
cidrs = ["127.0.10.0/24"]

[[vpcs]]
id = "vpc-b"
account = "1000000000000002"
cidrs = ["127.0.20.0/24"]

[[vpcs]]
id = "vpc-c"
account = "2000000000000003"
cidrs = ["127.0.30.0/24"]
"#;

/// Runs `check` on BASE + `extra` (plus files) and returns (exit code, stderr).
fn check(extra: &str, files: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    common::write_files(dir.path(), &format!("{BASE}{extra}"), files);
    let path = dir.path().join("vpcdns.toml");
    let (code, _, stderr) = run_cli(&["check", "--config", path.to_str().expect("utf-8 path")]);
    (code, stderr)
}

fn assert_rejected(extra: &str, files: &[(&str, &str)], needle: &str) {
    let (code, stderr) = check(extra, files);
    assert_eq!(code, 1, "expected rejection mentioning {needle:?}, got exit {code}: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in:\n{stderr}");
    assert!(stderr.contains("vpcdns.toml") || stderr.contains(".zone"), "the error names the file:\n{stderr}");
}

const ZONE_A: &str = r#"
[[zones]]
name = "corp.internal."
account = "1000000000000001"
scope = ["vpc-a"]
"#;

#[test]
fn the_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let (code, stdout, stderr) = run_cli(&["check", "--config", path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
}

#[test]
fn a_base_config_with_one_zone_is_valid() {
    let (code, stderr) = check(ZONE_A, &[]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn links_must_name_existing_root_accounts_of_the_same_site_with_vpcs() {
    let link = |to: &str| format!("[[links]]\naccount = \"1000000000000001\"\nlinked = \"{to}\"\n");
    assert_rejected(&link("1000000000000002"), &[], "not by uid");
    assert_rejected(&link("ops@beta"), &[], "sub-user");
    assert_rejected(&link("nobody@nowhere.example"), &[], "no root account");
    assert_rejected(&link("gamma"), &[], "different sites");
    assert_rejected(&link("root@novpc.example"), &[], "no VPC to associate");
    let (code, stderr) = check(&link("beta"), &[]);
    assert_eq!(code, 0, "a link by username is fine: {stderr}");
    let (code, stderr) = check(&link("root@beta.example"), &[]);
    assert_eq!(code, 0, "a link by email is fine: {stderr}");
}

#[test]
fn scopes_name_known_vpcs_of_the_owner_or_linked_accounts() {
    let zone = |scope: &str| {
        format!("[[zones]]\nname = \"corp.internal.\"\naccount = \"1000000000000001\"\nscope = [{scope}]\n")
    };
    assert_rejected(&zone("\"vpc-nope\""), &[], "unknown vpc vpc-nope");
    assert_rejected(&zone("\"vpc-b\""), &[], "nor of an account it has linked");
    let linked =
        format!("{}[[links]]\naccount = \"1000000000000001\"\nlinked = \"beta\"\n", zone("\"vpc-a\", \"vpc-b\""));
    assert_eq!(check(&linked, &[]).0, 0);
}

#[test]
fn a_vpc_sees_one_zone_per_name_and_is_never_shadowed_by_a_linked_owner() {
    let link = "[[links]]\naccount = \"1000000000000001\"\nlinked = \"beta\"\n";
    let two_same = format!(
        "{link}[[zones]]\nname = \"corp.internal.\"\naccount = \"1000000000000001\"\nscope = [\"vpc-b\"]\n\
         [[zones]]\nname = \"corp.internal.\"\naccount = \"1000000000000002\"\nscope = [\"vpc-b\"]\n"
    );
    assert_rejected(&two_same, &[], "two zones named corp.internal.");
    // beta binds internal. to its own VPC; acme's corp.internal. below it would shadow beta's names there.
    let shadow = format!(
        "{link}[[zones]]\nname = \"internal.\"\naccount = \"1000000000000002\"\nscope = [\"vpc-b\"]\n\
         [[zones]]\nname = \"corp.internal.\"\naccount = \"1000000000000001\"\nscope = [\"vpc-b\"]\n"
    );
    assert_rejected(&shadow, &[], "would shadow");
    // The other way round is fine: the VPC owner's own zone is the more specific one.
    let fine = format!(
        "{link}[[zones]]\nname = \"svc.corp.internal.\"\naccount = \"1000000000000002\"\nscope = [\"vpc-b\"]\n\
         [[zones]]\nname = \"corp.internal.\"\naccount = \"1000000000000001\"\nscope = [\"vpc-b\"]\n"
    );
    assert_eq!(check(&fine, &[]).0, 0);
}

#[test]
fn overlapping_prefixes_on_a_shared_listener() {
    let same = "[[vpcs]]\nid = \"vpc-a2\"\naccount = \"1000000000000001\"\ncidrs = [\"127.0.10.0/24\"]\n";
    assert_rejected(same, &[], "both claim 127.0.10.0/24");
    let other_account = "[[vpcs]]\nid = \"vpc-b2\"\naccount = \"1000000000000002\"\ncidrs = [\"127.0.10.128/25\"]\n";
    assert_rejected(other_account, &[], "prefixes of different accounts must not overlap");
    let nested_same_account =
        "[[vpcs]]\nid = \"vpc-a3\"\naccount = \"1000000000000001\"\ncidrs = [\"127.0.10.128/25\"]\n";
    assert_eq!(check(nested_same_account, &[]).0, 0);
}

#[test]
fn zone_contents_are_checked() {
    let zone_file = |body: &str| {
        (
            "[[zones]]\nname = \"corp.internal.\"\naccount = \"1000000000000001\"\nscope = [\"vpc-a\"]\nfile = \"z.zone\"\n".to_string(),
            format!("$ORIGIN corp.internal.\n$TTL 300\n{body}"),
        )
    };
    let cases = [
        ("www.other.example. A 10.0.0.1\n", "outside the zone"),
        ("www A 10.0.0.1\nwww CNAME api\n", "CNAME beside other data"),
        ("sub NS ns.example.\n", "do not delegate"),
        ("old DNAME new.example.\n", "DNAME"),
        ("@ CNAME elsewhere.example.\n", "cannot hold a CNAME"),
    ];
    for (body, needle) in cases {
        let (config, file) = zone_file(body);
        assert_rejected(&config, &[("z.zone", &file)], needle);
    }
    let (config, file) = zone_file("www A 10.0.0.1\nbad A 10.0.0\n");
    assert_rejected(&config, &[("z.zone", &file)], "z.zone:4");
}

#[test]
fn toml_errors_name_line_and_column_and_unknown_keys() {
    let (code, stderr) = check("[[zones]\n", &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("line"), "{stderr}");
    assert_rejected("[[vpcs]]\nid = \"v\"\naccount = \"1000000000000001\"\ncidr = [\"127.0.50.0/24\"]\n", &[], "cidr");
    let (code, stderr) = check("[server2]\n", &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown field"), "{stderr}");
}

#[test]
fn explain_tells_why() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let (code, out, err) =
        run_cli(&["explain", "--config", path, "--source", "127.0.20.5", "www.svc.corp.internal", "A"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("vpc-beta-app"), "{out}");
    assert!(out.contains("127.0.20.0/24"), "{out}");
    assert!(out.contains("linked account beta"), "{out}");
    assert!(out.contains("svc.corp.internal. [1000000000000002/svc.corp.internal.] answers"), "{out}");
    assert!(out.contains("shadows: corp.internal."), "{out}");
    assert!(out.contains("10.0.1.10"), "{out}");
    let (_, out, _) = run_cli(&["explain", "--config", path, "--source", "127.0.99.1", "www.corp.internal"]);
    assert!(out.contains("REFUSED"), "{out}");
}

#[test]
fn admin_and_notify_need_a_store() {
    assert_rejected("[admin]\nlisten = \"127.0.0.1:5380\"\n", &[], "need [store]");
}

#[test]
fn limits_bound_rrsets_zones_and_records() {
    let records: Vec<String> = (0..101)
        .map(|i| format!("{{ name = \"big\", type = \"A\", data = \"10.0.{}.{}\" }}", i / 200, i % 200 + 1))
        .collect();
    let zone = format!(
        "[[zones]]\nname = \"corp.internal.\"\naccount = \"1000000000000001\"\nscope = [\"vpc-a\"]\nrecords = [{}]\n",
        records.join(", ")
    );
    assert_rejected(&zone, &[], "an RRset holds at most 100");
    let two_zones = format!(
        "[limits]\nmax_zones_per_account = 1\nmax_records_per_account = 1\n{ZONE_A}\
         [[zones]]\nname = \"other.internal.\"\naccount = \"1000000000000001\"\nrecords = [\
         {{ name = \"a\", type = \"A\", data = \"10.0.0.1\" }}, {{ name = \"b\", type = \"A\", data = \"10.0.0.2\" }}]\n"
    );
    assert_rejected(&two_zones, &[], "owns 2 zones; the limit is 1");
    assert_rejected(&two_zones, &[], "holds 2 records; the limit is 1");
}

#[test]
fn completions_and_man_page_come_from_the_cli_definitions() {
    let (code, bash, _) = run_cli(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(bash.contains("_vpcdns") && bash.contains("explain") && bash.contains("operator"), "{bash}");
    let (code, zsh, _) = run_cli(&["completions", "zsh"]);
    assert!(code == 0 && zsh.contains("#compdef vpcdns"));
    let (code, man, _) = run_cli(&["man"]);
    assert!(code == 0 && man.contains(".TH vpcdns 1") && man.contains("serve"), "{man}");
    let (code, version, _) = run_cli(&["--version"]);
    assert!(code == 0 && version.starts_with("vpcdns "), "{version}");
}

/// Output into a pipe whose reader is gone (`vpcdns … | head`) ends the command quietly, never with a panic.
#[test]
fn a_closed_output_pipe_ends_the_command_quietly() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let out = std::process::Command::new(common::BIN)
        .args(["explain", "--config"])
        .arg(&example)
        .args(["--source", "127.0.10.7", "www.corp.internal", "A"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run vpcdns");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
