//! The admin API's contract: an OpenAPI 3.1 document, served at `GET /v1/openapi.json`.
//!
//! The schemas come from the handlers' own types (utoipa's `ToSchema` derives: the document cannot describe a
//! field the answer does not have). Operations are listed once, in [`OPERATIONS`]; a test walks the routers to
//! check that every route answers exactly the methods listed here, so the two cannot drift apart. utoipa, not
//! aide: it documents the axum handlers as they are (aide wants its own router and an impl for each extractor),
//! and it generates at compile time, so serving the document costs one serialization.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, OpenApi, Ref, Required, ResponseBuilder, Type};
use utoipa::OpenApi as _;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Anyone (the contract itself).
    Public,
    /// A tenant, with an access key, on `[admin] listen`.
    Tenant,
    /// The operator, on the owner-only Unix socket.
    Operator,
}

/// What an operation answers with when it succeeds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer {
    /// JSON of this schema.
    Json(&'static str),
    /// A change's answer: its commit revision and what it made (see [`CHANGE`]).
    Change,
    /// Text of this media type.
    Text(&'static str),
}

/// One operation of the API.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub audience: Audience,
    /// The JSON body's schema (or `text:<media type>` for a text body).
    pub body: Option<&'static str>,
    pub answer: Answer,
    /// The error statuses it may answer besides those every route may (400, 401, 429, 500, 503).
    pub errors: &'static [u16],
    /// Query parameters (name, description).
    pub query: &'static [(&'static str, &'static str)],
}

const fn op(method: &'static str, path: &'static str, summary: &'static str, audience: Audience) -> Operation {
    Operation { method, path, summary, audience, body: None, answer: Answer::Change, errors: &[], query: &[] }
}

impl Operation {
    const fn body(mut self, schema: &'static str) -> Operation {
        self.body = Some(schema);
        self
    }
    const fn answer(mut self, schema: &'static str) -> Operation {
        self.answer = Answer::Json(schema);
        self
    }
    const fn text(mut self, media: &'static str) -> Operation {
        self.answer = Answer::Text(media);
        self
    }
    const fn errors(mut self, errors: &'static [u16]) -> Operation {
        self.errors = errors;
        self
    }
    const fn query(mut self, query: &'static [(&'static str, &'static str)]) -> Operation {
        self.query = query;
        self
    }
}

use Audience::{Operator as O, Public as P, Tenant as T};

const RANGE: &[(&str, &str)] = &[
    ("from", "Unix seconds (default: an hour ago)"),
    ("to", "Unix seconds (default: now)"),
    ("limit", "at most this many entries (audit; default 1000, at most 10000)"),
];
pub(crate) const PAGE: &[(&str, &str)] = &[
    ("limit", "at most this many items (default 1000, at most 10000)"),
    ("cursor", "the next_cursor of the page before"),
];
const EXPLAIN: &[(&str, &str)] = &[
    ("source", "the query's source address (in one of your VPCs)"),
    ("name", "the query name"),
    ("type", "the query type (default A)"),
    ("listener", "the address:port the query arrives on"),
    ("tcp", "true: explain the TCP answer"),
    ("endpoint", "as relayed by a front end naming this endpoint"),
    ("vpc_id", "as relayed by a front end naming this VPC id"),
];

/// The schema name of a change's answer.
pub(crate) const CHANGE: &str = "Change";

/// Every operation, tenant then operator.
pub(crate) const OPERATIONS: &[Operation] = &[
    op("get", "/v1/openapi.json", "This document", P).text("application/json"),
    op("get", "/v1/whoami", "Who the key belongs to", T).answer("WhoAmI"),
    op("get", "/v1/users", "Sub-users of your account", T).answer("Users").query(PAGE),
    op("put", "/v1/users/{name}", "Create or update a sub-user", T).body("UserBody").errors(&[403, 412, 422]),
    op("delete", "/v1/users/{name}", "Delete a sub-user and its keys", T).errors(&[403, 404, 412]),
    op("get", "/v1/keys", "Your account's access keys", T).answer("Keys").query(PAGE),
    op("post", "/v1/keys", "Issue a key; its token is in this answer only", T).body("KeyBody").errors(&[403, 404]),
    op("delete", "/v1/keys/{id}", "Delete a key", T).errors(&[403, 404, 412]),
    op("post", "/v1/keys/{id}/rotate", "Replace a key by a new one", T).errors(&[403, 404, 412]),
    op("get", "/v1/vpcs", "Your VPCs and every VPC you may put into a scope", T).answer("TenantVpcs").query(PAGE),
    op("get", "/v1/foreign-zones", "Other accounts' zones in your VPCs", T).answer("ForeignZones").query(PAGE),
    op("post", "/v1/foreign-zones/{id}/detach", "Take your VPCs out of another account's zone", T)
        .body("DetachBody")
        .errors(&[403, 404]),
    op("get", "/v1/foreign-rules", "Other accounts' forwarding rules in your VPCs", T)
        .answer("ForeignRules")
        .query(PAGE),
    op("post", "/v1/foreign-rules/{id}/detach", "Take your VPCs out of another account's rule", T)
        .body("DetachBody")
        .errors(&[403, 404]),
    op("get", "/v1/links", "The accounts you linked, and those that linked yours", T).answer("Links").query(PAGE),
    op("post", "/v1/links", "Ask to link another root account (its owner receives a code)", T)
        .body("LinkBody")
        .errors(&[403, 404, 409]),
    op("get", "/v1/links/requests", "Link requests you sent and received", T).answer("Requests").query(PAGE),
    op("post", "/v1/links/requests/{id}/verify", "Submit the code the other account's owner received", T)
        .body("CodeBody")
        .errors(&[403, 404, 410, 422]),
    op("post", "/v1/links/requests/{id}/decline", "Decline a link request sent to you", T).errors(&[403, 404, 410]),
    op("delete", "/v1/links/{account}", "Remove a link (either side may)", T).errors(&[403, 404, 412]),
    op("get", "/v1/blocks", "Accounts whose link requests you refuse", T).answer("Blocks").query(PAGE),
    op("put", "/v1/blocks/{account}", "Refuse an account's link requests", T).errors(&[403, 404, 412]),
    op("delete", "/v1/blocks/{account}", "Accept an account's link requests again", T).errors(&[403, 404, 412]),
    op("get", "/v1/inbox", "Your messages", T).answer("Inbox").query(PAGE),
    op("delete", "/v1/inbox/{id}", "Delete a message", T).errors(&[403, 404]),
    op("post", "/v1/inbox/{id}/read", "Show a message and mark it read", T).answer("Message").errors(&[403, 404]),
    op("get", "/v1/zones", "Your zones", T).answer("Zones").query(PAGE),
    op("post", "/v1/zones", "Create a zone", T).body("NewZone").errors(&[403, 409, 422]),
    op("get", "/v1/zones/{id}", "A zone and its records", T).answer("ZoneDetail").errors(&[404]),
    op("delete", "/v1/zones/{id}", "Delete a zone and its records", T).errors(&[403, 404, 412]),
    op("put", "/v1/zones/{id}/scope", "Replace a zone's scope", T).body("ScopeBody").errors(&[403, 404, 412, 422]),
    op("post", "/v1/zones/{id}/scope/{how}", "Add VPCs to (how = add) or remove them from (remove) a scope", T)
        .body("ScopeBody")
        .errors(&[403, 404, 412, 422]),
    op("put", "/v1/zones/{id}/fallback", "What names the zone does not hold get", T)
        .body("FallbackBody")
        .errors(&[403, 404, 412]),
    op("post", "/v1/zones/{id}/records", "Add a record", T).body("RecordInput").errors(&[403, 404, 412, 422]),
    op("put", "/v1/zones/{id}/records/{rid}", "Replace a record", T).body("RecordInput").errors(&[403, 404, 412, 422]),
    op("delete", "/v1/zones/{id}/records/{rid}", "Delete a record", T).errors(&[403, 404, 412]),
    op("get", "/v1/zones/{id}/file", "The zone as an RFC 1035 master file", T).text("text/dns").errors(&[404]),
    op("put", "/v1/zones/{id}/file", "Replace the zone's records with a master file", T)
        .body("text:text/dns")
        .errors(&[403, 404, 412, 413, 422]),
    op("get", "/v1/rules", "Your forwarding rules", T).answer("Rules").query(PAGE),
    op("post", "/v1/rules", "Create a forwarding rule", T).body("NewRule").errors(&[403, 409, 422]),
    op("delete", "/v1/rules/{id}", "Delete a forwarding rule", T).errors(&[403, 404, 412]),
    op("get", "/v1/usage", "Queries billed to your account", T).answer("UsageReport").query(RANGE),
    op("get", "/v1/audit", "Who changed what in your account", T).answer("AuditLog").query(RANGE),
    op("get", "/v1/explain", "Why a source in one of your VPCs gets its answer", T)
        .answer("Explained")
        .errors(&[403])
        .query(EXPLAIN),
    op("get", "/v1/operator/accounts", "Every root account", O).answer("Accounts").query(PAGE),
    op("post", "/v1/operator/accounts", "Create or update an account", O).body("AccountDoc").errors(&[409, 422]),
    op("delete", "/v1/operator/accounts/{uid}", "Delete an account", O).errors(&[404, 422]),
    op("get", "/v1/operator/vpcs", "Every VPC", O).answer("Vpcs").query(PAGE),
    op("post", "/v1/operator/vpcs", "Create or update a VPC", O).body("VpcDoc").errors(&[422]),
    op("delete", "/v1/operator/vpcs/{id}", "Delete a VPC (it leaves every scope)", O).errors(&[404]),
    op("post", "/v1/operator/keys", "Issue a root key", O).body("RootKeyBody").errors(&[404]),
    op("post", "/v1/operator/links", "Declare a link", O).body("LinkPutBody").errors(&[404, 422]),
    op("get", "/v1/operator/usage", "Every owner's usage", O).answer("UsageReport").query(RANGE),
    op("post", "/v1/operator/apply", "Bring a state file into the store", O)
        .body("text:application/toml")
        .errors(&[413, 422])
        .query(&[("prune", "true: also remove what the file does not declare")]),
    op("get", "/v1/operator/export", "The whole state as a state file", O).text("application/toml"),
    op("post", "/v1/operator/backup", "A consistent copy of the store", O).body("BackupBody").answer("BackedUp"),
    op("get", "/v1/operator/audit", "Every account's audit", O).answer("AuditLog").query(RANGE),
];

/// The statuses every route may answer.
const COMMON_ERRORS: [u16; 4] = [400, 429, 500, 503];

/// The types whose schemas the document holds (and those they refer to).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "vpcdns admin API",
        description = "Tenants on [admin] listen with an access key; the operator on its Unix socket."
    ),
    components(schemas(
        super::routes::WhoAmI,
        super::routes::UserBody,
        super::routes::KeyBody,
        super::routes::DetachBody,
        super::routes::LinkBody,
        super::routes::CodeBody,
        super::routes::ScopeBody,
        super::routes::FallbackBody,
        super::routes::Explained,
        super::routes::RootKeyBody,
        super::routes::LinkPutBody,
        super::routes::BackupBody,
        super::routes::BackedUp,
        crate::control::ops::tenant::Users,
        crate::control::ops::tenant::Keys,
        crate::control::ops::tenant::TenantVpcs,
        crate::control::ops::tenant::ForeignZones,
        crate::control::ops::tenant::ForeignRules,
        crate::control::ops::tenant::Zones,
        crate::control::ops::tenant::ZoneDetail,
        crate::control::ops::tenant::NewZone,
        crate::control::ops::tenant::RecordInput,
        crate::control::ops::links::Links,
        crate::control::ops::requests::Requests,
        crate::control::ops::requests::Blocks,
        crate::control::ops::inbox::Inbox,
        crate::control::ops::inbox::Message,
        crate::control::ops::rules::Rules,
        crate::control::ops::rules::NewRule,
        crate::control::ops::inventory::Accounts,
        crate::control::ops::inventory::Vpcs,
        crate::control::usage::UsageReport,
        crate::control::audit::AuditLog,
        crate::control::docs::AccountDoc,
        crate::control::docs::VpcDoc,
        super::error::ApiError,
    ))
)]
struct Schemas;

/// The whole document.
pub(crate) fn document() -> OpenApi {
    let mut doc = Schemas::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert(CHANGE.into(), change_schema().into());
    components.schemas.insert("ErrorBody".into(), error_body().into());
    components.security_schemes.insert(
        "accessKey".into(),
        SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("vpcdns_<id>_<secret>").build(),
        ),
    );
    for operation in OPERATIONS {
        doc.paths.add_path_operation(operation.path, vec![method_of(operation.method)], built(operation));
    }
    doc
}

fn method_of(method: &str) -> HttpMethod {
    match method {
        "post" => HttpMethod::Post,
        "put" => HttpMethod::Put,
        "delete" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn built(operation: &Operation) -> utoipa::openapi::path::Operation {
    let mut builder = OperationBuilder::new()
        .summary(Some(operation.summary))
        .tag(match operation.audience {
            Audience::Public => "contract",
            Audience::Tenant => "tenant",
            Audience::Operator => "operator",
        })
        .response("200", success(operation.answer));
    if operation.audience == Audience::Tenant {
        builder = builder.security(SecurityRequirement::new("accessKey", Vec::<String>::new()));
    }
    let mut errors: Vec<u16> = COMMON_ERRORS.iter().chain(operation.errors).copied().collect();
    if operation.audience == Audience::Tenant {
        errors.push(401);
    }
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        let response = ResponseBuilder::new().description(reason(status)).content(
            "application/json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
        );
        builder = builder.response(status.to_string(), response.build());
    }
    for name in path_parameters(operation.path) {
        builder = builder.parameter(parameter(name, ParameterIn::Path, "the resource's id (percent-encode `/`)", true));
    }
    for (name, description) in operation.query {
        builder = builder.parameter(parameter(name, ParameterIn::Query, description, false));
    }
    if operation.audience != Audience::Public {
        let description = "wait until this node has applied the revision (a write's answer) first";
        builder = builder.parameter(parameter("min_revision", ParameterIn::Query, description, false));
    }
    if let Some(body) = operation.body {
        let content = match body.strip_prefix("text:") {
            Some(media) => {
                (media, ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::String))).build())
            }
            None => ("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(body))).build()),
        };
        builder = builder.request_body(Some(
            RequestBodyBuilder::new().content(content.0, content.1).required(Some(Required::True)).build(),
        ));
    }
    builder.build()
}

fn success(answer: Answer) -> utoipa::openapi::Response {
    let (media, content) = match answer {
        Answer::Json(schema) => ("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(schema)))),
        Answer::Change => ("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(CHANGE)))),
        Answer::Text(media) => {
            (media, ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::String))))
        }
    };
    ResponseBuilder::new().description("Done").content(media, content.build()).build()
}

fn parameter(name: &str, place: ParameterIn, description: &str, required: bool) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .description(Some(description))
        .required(if required { Required::True } else { Required::False })
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// The `{name}` segments of a path.
pub(crate) fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect()
}

/// A change's answer: the commit revision (to read one's own write anywhere with `min_revision`) and what the
/// change made, which differs per operation.
fn change_schema() -> utoipa::openapi::Schema {
    ObjectBuilder::new()
        .description(Some("A change's answer: its commit revision, and what it made"))
        .property("revision", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
        .required("revision")
        .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(true)))
        .into()
}

/// Every error's body: `{"error": {"code", "message", "problems"?}}`.
fn error_body() -> utoipa::openapi::Schema {
    ObjectBuilder::new().property("error", Ref::from_schema_name("ApiError")).required("error").into()
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad request: a malformed body, path or query, or a value out of range",
        401 => "No valid access key",
        403 => "The key's principal may not do this",
        404 => "No such resource in your account",
        409 => "It exists already, or conflicts with another",
        410 => "No longer valid (a link request or code)",
        412 => "If-Match names another revision",
        413 => "Too large",
        422 => "The state the change would make is invalid: every problem is listed",
        429 => "Too many requests: retry after Retry-After seconds",
        503 => "The store is unavailable, behind, or could not tell the outcome",
        _ => "Internal error",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::control::api::{operator_router, tenant_router, ApiHooks, ApiState};
    use crate::control::store::sqlite::SqliteStore;
    use crate::control::ControlPlane;

    fn state() -> ApiState {
        let store = Arc::new(SqliteStore::open_in_memory().expect("store"));
        let plane =
            Arc::new(ControlPlane::open(store, crate::settings::Served::default(), vec![5; 32]).expect("plane"));
        let hooks = ApiHooks { parse_state_file: |_| Err("not here".into()), explain: Arc::new(|_| String::new()) };
        ApiState::new(plane, None, &crate::settings::AdminLimits::default(), hooks)
    }

    /// Sends one request with an empty JSON body; the status and the error code, if any.
    async fn probe(router: &axum::Router, method: &str, path: &str) -> (StatusCode, String) {
        let uri = path.replace('{', "x").replace('}', "");
        let mut request = Request::builder()
            .method(Method::from_bytes(method.to_uppercase().as_bytes()).expect("method"))
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("request");
        let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let response = router.clone().oneshot(request).await.expect("answer");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or_default().to_string();
        (status, message)
    }

    fn is_unrouted((status, message): &(StatusCode, String)) -> bool {
        *status == StatusCode::METHOD_NOT_ALLOWED
            || (*status == StatusCode::NOT_FOUND && message.starts_with("no endpoint"))
    }

    /// The paths the routers declare, read from their source: every one must be in the document.
    fn declared_paths() -> Vec<String> {
        let source = include_str!("routes/mod.rs");
        source
            .split(".route(")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next().map(str::to_string))
            .collect()
    }

    #[tokio::test]
    async fn every_route_is_in_the_document_with_exactly_its_methods() {
        let state = state();
        let tenant = tenant_router(state.clone(), std::time::Duration::from_secs(5));
        let operator = operator_router(state);
        assert!(is_unrouted(&probe(&tenant, "get", "/v1/nothing-here").await), "the probe tells routes apart");
        assert_eq!(probe(&tenant, "get", "/v1/zones").await.0, StatusCode::UNAUTHORIZED, "routed, then refused");
        let documented: Vec<&str> = OPERATIONS.iter().map(|o| o.path).collect();
        for path in declared_paths() {
            assert!(documented.contains(&path.as_str()), "{path} is routed but not in the document");
        }
        for path in documented.iter().copied().collect::<std::collections::BTreeSet<_>>() {
            let router = if path.starts_with("/v1/operator/") { &operator } else { &tenant };
            for method in ["get", "post", "put", "delete"] {
                let listed = OPERATIONS.iter().any(|o| o.path == path && o.method == method);
                let answer = probe(router, method, path).await;
                assert_eq!(!is_unrouted(&answer), listed, "{method} {path}: {answer:?} (documented: {listed})");
            }
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_schema_it_names_is_in_it() {
        let doc = document();
        let json = serde_json::to_value(&doc).expect("json");
        assert_eq!(json["openapi"], "3.1.0");
        let parsed: oas3::Spec = oas3::from_json(json.to_string()).expect("a valid OpenAPI 3.1 document");
        let schemas = &json["components"]["schemas"];
        let text = json.to_string();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap_or_default();
            assert!(schemas.get(name).is_some(), "{name} is referred to but not defined");
        }
        for operation in OPERATIONS {
            let item = &json["paths"][operation.path][operation.method];
            assert!(item["responses"]["200"].is_object(), "{} {}", operation.method, operation.path);
            assert!(
                item["responses"]["400"].is_object(),
                "errors are documented: {} {}",
                operation.method,
                operation.path
            );
            for name in path_parameters(operation.path) {
                assert!(item.to_string().contains(&format!("\"name\":\"{name}\"")), "{} lacks {name}", operation.path);
            }
        }
        assert!(parsed.paths.as_ref().is_some_and(|p| p.len() >= 40), "every path");
        assert!(schemas["Zones"]["properties"]["zones"].is_object(), "schemas come from the answer types");
    }
}
