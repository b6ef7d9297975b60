//! hickory-server answering one zone file, and nothing else: the figure behind ARCHITECTURE.md's "hickory-server is
//! not used". `benches/peers.sh` runs it as the `hickory` server beside vpcdns, Knot, NSD and BIND 9, on the same
//! generated zone, and measures its CPU time per answered query the same way.
//!
//! ```text
//! cargo run --release --example hickory_floor -- ZONE_FILE ORIGIN ADDRESS
//! cargo run --release --example hickory_floor -- corp.internal.zone corp.internal. 127.0.0.1:5315
//! ```
//!
//! It is the library's own serving path, set up as its documentation shows: a `Catalog` holding one file-backed
//! zone handler, a `Server` with one UDP socket and one TCP listener, on tokio's multi-threaded runtime (one worker
//! per core, as vpcdns has one UDP thread per core). No VPCs, no views, no metering: a floor for what serving
//! through hickory-server costs before any of vpcdns's own work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hickory_server::proto::rr::{LowerName, Name};
use hickory_server::store::file::{FileConfig, FileZoneHandler};
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use hickory_server::Server;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [zone_file, origin, address] = args.as_slice() else {
        bail!("usage: hickory_floor ZONE_FILE ORIGIN ADDRESS");
    };
    let origin = Name::from_str(origin).with_context(|| format!("bad origin {origin:?}"))?;
    let address: SocketAddr = address.parse().with_context(|| format!("bad address {address:?}"))?;
    let config = FileConfig { zone_path: PathBuf::from(zone_file) };
    let handler = FileZoneHandler::try_from_config(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny, None, &config)
        .map_err(|e| anyhow::anyhow!("cannot load {zone_file}: {e}"))?;
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(handler)]);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    runtime.block_on(async move {
        let mut server = Server::new(catalog);
        server.register_socket(tokio::net::UdpSocket::bind(address).await.context("UDP bind")?);
        let tcp = tokio::net::TcpListener::bind(address).await.context("TCP bind")?;
        server.register_listener(tcp, Duration::from_secs(10), 64);
        println!("hickory_floor ready: {origin} on {address}");
        server.block_until_done().await.map_err(|e| anyhow::anyhow!("server failed: {e}"))
    })
}
