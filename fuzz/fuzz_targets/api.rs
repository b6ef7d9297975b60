//! Fuzz target: hostile requests through the real admin API routers (tenant and operator), in process, against a
//! control plane on an in-memory store seeded with two linked accounts, their VPCs, a zone and a rule. The input
//! picks an endpoint and a method and is the request body (and a path segment). Nothing may panic, every answer
//! must be a status the API documents with the API's JSON error shape on failure, and the served state must stay
//! valid: whatever was accepted passed the same validation as a configuration file.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use vpcdns::control::api::{operator_router, tenant_router, ApiState};
use vpcdns::control::{Actor, ControlPlane};
use vpcdns::control::store::sqlite::SqliteStore;

struct World {
    runtime: tokio::runtime::Runtime,
    tenant: axum::Router,
    operator: axum::Router,
    plane: Arc<ControlPlane>,
    acme: String,
    beta: String,
}

const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/v1/zones"),
    ("POST", "/v1/zones/1001%2Fcorp.internal./records"),
    ("PUT", "/v1/zones/1001%2Fcorp.internal./records/{seg}"),
    ("PUT", "/v1/zones/1001%2Fcorp.internal./scope"),
    ("POST", "/v1/zones/1001%2Fcorp.internal./scope/add"),
    ("PUT", "/v1/zones/1001%2Fcorp.internal./file"),
    ("PUT", "/v1/zones/1001%2Fcorp.internal./fallback"),
    ("DELETE", "/v1/zones/{seg}"),
    ("POST", "/v1/rules"),
    ("DELETE", "/v1/rules/{seg}"),
    ("POST", "/v1/links"),
    ("POST", "/v1/links/requests/{seg}/verify"),
    ("DELETE", "/v1/links/{seg}"),
    ("PUT", "/v1/blocks/{seg}"),
    ("PUT", "/v1/users/{seg}"),
    ("POST", "/v1/keys"),
    ("POST", "/v1/foreign-zones/{seg}/detach"),
    ("POST", "/v1/foreign-rules/{seg}/detach"),
    ("GET", "/v1/explain?{seg}"),
    ("GET", "/v1/audit?{seg}"),
    ("POST", "/v1/operator/accounts"),
    ("POST", "/v1/operator/vpcs"),
    ("POST", "/v1/operator/apply"),
    ("POST", "/v1/operator/links"),
];

/// Statuses the API answers with (README, "Errors"); anything else is a finding.
const DOCUMENTED: &[u16] = &[200, 400, 401, 403, 404, 405, 408, 409, 410, 412, 413, 415, 422, 429];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let text = r#"
[server]
listen = ["127.0.0.1:5300"]
[resolver]
allow_targets = ["127.0.0.0/8"]
"#;
        let loaded = vpcdns::process::config::from_str(text, "f.toml".as_ref(), ".".as_ref(), None).expect("config");
        let store = Arc::new(SqliteStore::open_in_memory().expect("store"));
        let plane = Arc::new(ControlPlane::open(store, loaded.state.served, vec![9; 32]).expect("plane"));
        let limits = vpcdns::settings::AdminLimits { writes_per_second: 1_000_000, write_burst: 1_000_000, ..Default::default() };
        let state = ApiState::new(plane.clone(), None, &limits, vpcdns::process::daemon::api_hooks(None));
        let tenant = tenant_router(state.clone(), std::time::Duration::from_secs(5));
        let operator = operator_router(state);
        let mut world = World { runtime, tenant, operator, plane, acme: String::new(), beta: String::new() };
        let seed = [
            ("/v1/operator/accounts", r#"{"uid":"1001","name":"acme","email":"root@acme.example","site":"intl"}"#),
            ("/v1/operator/accounts", r#"{"uid":"1002","name":"beta","email":"root@beta.example","site":"intl"}"#),
            ("/v1/operator/vpcs", r#"{"id":"vpc-acme","account":"1001","cidrs":["127.0.10.0/24"]}"#),
            ("/v1/operator/vpcs", r#"{"id":"vpc-beta","account":"1002","cidrs":["127.0.20.0/24"]}"#),
            ("/v1/operator/links", r#"{"account":"acme","linked":"beta"}"#),
        ];
        for (path, body) in seed {
            let (status, _) = send(&world, true, "", Method::POST, path, body.as_bytes());
            assert_eq!(status, 200, "seed {path}");
        }
        for (who, slot) in [("acme", 0), ("beta", 1)] {
            let (_, answer) =
                send(&world, true, "", Method::POST, "/v1/operator/keys", format!(r#"{{"account":"{who}"}}"#).as_bytes());
            let value: serde_json::Value = serde_json::from_slice(&answer).expect("json");
            let token = value["token"].as_str().expect("token").to_string();
            if slot == 0 { world.acme = token } else { world.beta = token }
        }
        let acme = world.acme.clone();
        let zone = r#"{"name":"corp.internal.","scope":["vpc-acme","vpc-beta"],"records":[{"name":"www","type":"A","data":"10.0.0.1"}]}"#;
        assert_eq!(send(&world, false, &acme, Method::POST, "/v1/zones", zone.as_bytes()).0, 200);
        world
    })
}

fn send(world: &World, operator: bool, key: &str, method: Method, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(body.to_vec()))
        .expect("request");
    request.extensions_mut().insert(ConnectInfo("127.0.0.1:40000".parse::<SocketAddr>().expect("addr")));
    let router = if operator { world.operator.clone() } else { world.tenant.clone() };
    world.runtime.block_on(async {
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20).await.expect("body");
        (status, bytes.to_vec())
    })
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    let Some((&pick, rest)) = data.split_first() else { return };
    let (method, template) = ENDPOINTS[pick as usize % ENDPOINTS.len()];
    // The input up to the first 0xff is a path segment (percent-encoded, so any bytes fit); the rest is the body.
    let (segment, body) = match rest.iter().position(|b| *b == 0xff) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&rest[..0], rest),
    };
    let segment: String = percent_encoding::percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string();
    let path = template.replace("{seg}", &segment);
    let operator = path.starts_with("/v1/operator/");
    let key = if pick & 0x80 == 0 { world.acme.clone() } else { world.beta.clone() };
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let (status, answer) = send(world, operator, &key, method, &path, body);
    assert!(DOCUMENTED.contains(&status), "{path}: undocumented status {status}: {}", String::from_utf8_lossy(&answer));
    if status != 200 {
        let value: serde_json::Value = serde_json::from_slice(&answer).expect("every error is JSON");
        assert!(value["error"]["code"].is_string() && value["error"]["message"].is_string(), "{value}");
    }
    // Whatever went in, the served state is one `validate` accepts.
    let control = world.plane.read(&Actor::Operator, |c, _| Ok(c.state.clone())).expect("read");
    if let Err(problems) = vpcdns::model::validate::validate(&control) {
        panic!("{path} left an invalid state: {problems}");
    }
});
