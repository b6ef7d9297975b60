//! The metrics endpoint: after a dig run, a scrape shows the queries by transport, rcode and VPC, the answers by
//! owner and zone, the unclassified sources and the latency count, and `/ready` says the server is serving.
// A failing expectation is the test (or benchmark) failing: expect() states it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Server;

fn config() -> String {
    common::ACCOUNT.to_string()
        + r#"
[server]
listen = ["127.0.0.1:0"]
[metrics]
listen = "127.0.0.1:0"
[[vpcs]]
id = "v1"
account = "1"
cidrs = ["127.0.60.0/24"]
[[vpcs]]
id = "v2"
account = "1"
cidrs = ["127.0.61.0/24"]
[[zones]]
name = "corp.internal."
account = "1"
scope = ["v1"]
records = [{ name = "www", type = "A", data = "10.0.0.1" }, { name = "db", type = "A", data = "10.0.0.2" }]
"#
}

/// The value of the sample line `series` (name and labels exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn a_scrape_after_dig_counts_what_was_asked() {
    let s = Server::start(&config(), &[]);
    let addr = common::metrics_addr(&s);
    assert_eq!(common::http_get(&addr, "/ready"), (200, "ready\n".to_string()));

    for _ in 0..3 {
        assert_eq!(s.dig("127.0.60.5", "www.corp.internal", "A").data("A"), ["10.0.0.1"]);
    }
    assert_eq!(s.dig("127.0.60.5", "nope.corp.internal", "A").status, "NXDOMAIN");
    assert_eq!(s.dig("127.0.60.5", "db.corp.internal", "AAAA").status, "NOERROR"); // NODATA
    for _ in 0..2 {
        assert_eq!(s.dig("127.0.61.5", "www.corp.internal", "A").status, "REFUSED");
    }
    assert_eq!(s.dig("127.0.99.5", "www.corp.internal", "A").status, "REFUSED");
    assert_eq!(s.dig_with("127.0.60.5", "db.corp.internal", "A", &["+tcp"]).data("A"), ["10.0.0.2"]);
    // Two datagrams that get no answer: too short for a header, and a response (QR set).
    let junk = std::net::UdpSocket::bind("127.0.60.5:0").expect("bind");
    junk.send_to(&[1, 2, 3], &s.addrs[0]).expect("send");
    junk.send_to(&[0x12, 0x34, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0], &s.addrs[0]).expect("send");

    // Counts are handed over about once a second: scrape until the last of them shows (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (status, text) = common::http_get(&addr, "/metrics");
        assert_eq!(status, 200);
        let done = sample(&text, "vpcdns_query_duration_seconds_count") == Some(9.0)
            && sample(&text, "vpcdns_requests_dropped_total") == Some(2.0);
        if done || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let expect = [
        (r#"vpcdns_queries_total{transport="udp",rcode="NOERROR",vpc="v1"}"#, 4.0),
        (r#"vpcdns_queries_total{transport="udp",rcode="NXDOMAIN",vpc="v1"}"#, 1.0),
        (r#"vpcdns_queries_total{transport="udp",rcode="REFUSED",vpc="v2"}"#, 2.0),
        (r#"vpcdns_queries_total{transport="udp",rcode="REFUSED",vpc=""}"#, 1.0),
        (r#"vpcdns_queries_total{transport="tcp",rcode="NOERROR",vpc="v1"}"#, 1.0),
        ("vpcdns_unclassified_queries_total", 1.0),
        (r#"vpcdns_owner_answers_total{owner="1"}"#, 6.0),
        (r#"vpcdns_zone_answers_total{zone="1/corp.internal.",owner="1"}"#, 6.0),
        ("vpcdns_query_duration_seconds_count", 9.0),
        (r#"vpcdns_query_duration_seconds_bucket{le="+Inf"}"#, 9.0),
        ("vpcdns_zones", 1.0),
        ("vpcdns_vpcs", 2.0),
        ("vpcdns_records", 4.0), // the two A records and the generated SOA and NS
        ("vpcdns_tcp_connections_refused_total", 0.0),
        ("vpcdns_requests_dropped_total", 2.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    // Bounded by the inventory: no source address and no query name ever becomes a label.
    assert!(!text.contains("127.0.6") && !text.contains("www.corp"), "{text}");
}

#[test]
fn metrics_describe_the_snapshot_and_the_server_still_stops_cleanly() {
    let mut s = Server::start(&config(), &[]);
    let addr = common::metrics_addr(&s);
    assert_eq!(common::http_get(&addr, "/ready").0, 200);
    let (status, text) = common::http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE vpcdns_queries counter"), "{text}");
    assert_eq!(sample(&text, "vpcdns_snapshot_generation"), Some(1.0), "{text}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.pid() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
}
