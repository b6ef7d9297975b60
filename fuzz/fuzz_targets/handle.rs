//! Fuzz target: raw bytes through the whole request handler (decode, prechecks, classify, lookup, encode) against a
//! real snapshot compiled from the example configuration, over UDP and TCP, with and without cookie keys. It must
//! never panic, and every response must be a well-formed DNS message no larger than the transport allows.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vpcdns::compile::Compiler;
use vpcdns::cookie::CookieKeys;
use vpcdns::lookup::Transport;
use vpcdns::respond;
use vpcdns::snapshot::Snapshot;

fn snapshot() -> &'static (Snapshot, CookieKeys) {
    static SNAPSHOT: OnceLock<(Snapshot, CookieKeys)> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/example.toml");
        let loaded = vpcdns::reload::load_valid(&config, None).expect("the example configuration loads");
        let keys = CookieKeys::random().expect("random");
        (Compiler::default().compile(&loaded.state), keys)
    })
}

fuzz_target!(|data: &[u8]| {
    let (snap, keys) = snapshot();
    let local: SocketAddr = "127.0.0.1:5300".parse().expect("address");
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 10, 7));
    let mut out = Vec::new();
    for (transport, limit) in [(Transport::Udp, 1232), (Transport::Tcp, 65535)] {
        for cookies in [None, Some(keys)] {
            if respond::handle(data, source, local, transport, snap, cookies, &mut out).is_some() {
                assert!(out.len() >= 12 && out.len() <= limit, "response of {} bytes", out.len());
                assert!(out[2] & 0x80 != 0, "every response has QR set");
            }
        }
    }
});
