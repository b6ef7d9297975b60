//! Each `vpcdns admin` command as the request it makes.

use axum::http::Method;
use serde_json::json;

use axum::body::Body;

use super::super::seg;
use super::commands::*;
use super::{call, with_json, Call};

pub(super) fn to_call(command: AdminCommand) -> anyhow::Result<Call> {
    use Method as M;
    Ok(match command {
        AdminCommand::Whoami => call(M::GET, "/v1/whoami".into()),
        AdminCommand::Users(UsersCommand::List) => call(M::GET, "/v1/users".into()),
        AdminCommand::Users(UsersCommand::Put { name, policies, if_match }) => Call {
            if_match,
            ..with_json(call(M::PUT, format!("/v1/users/{}", seg(&name))), json!({ "policies": policies }))
        },
        AdminCommand::Users(UsersCommand::Rm { name, if_match }) => {
            Call { if_match, ..call(M::DELETE, format!("/v1/users/{}", seg(&name))) }
        }
        AdminCommand::Keys(KeysCommand::List) => call(M::GET, "/v1/keys".into()),
        AdminCommand::Keys(KeysCommand::Create { user, expires_in_days }) => {
            with_json(call(M::POST, "/v1/keys".into()), json!({ "user": user, "expires_in_days": expires_in_days }))
        }
        AdminCommand::Keys(KeysCommand::Rm { id, if_match }) => {
            Call { if_match, ..call(M::DELETE, format!("/v1/keys/{}", seg(&id))) }
        }
        AdminCommand::Keys(KeysCommand::Rotate { id, if_match }) => {
            Call { if_match, ..call(M::POST, format!("/v1/keys/{}/rotate", seg(&id))) }
        }
        AdminCommand::Vpcs => call(M::GET, "/v1/vpcs".into()),
        AdminCommand::ForeignZones => call(M::GET, "/v1/foreign-zones".into()),
        AdminCommand::ForeignRules => call(M::GET, "/v1/foreign-rules".into()),
        AdminCommand::Detach(DetachCommand::Zone { id, vpcs }) => {
            with_json(call(M::POST, format!("/v1/foreign-zones/{}/detach", seg(&id))), json!({ "vpcs": vpcs }))
        }
        AdminCommand::Detach(DetachCommand::Rule { id, vpcs }) => {
            with_json(call(M::POST, format!("/v1/foreign-rules/{}/detach", seg(&id))), json!({ "vpcs": vpcs }))
        }
        AdminCommand::Inbox { command: None } => call(M::GET, "/v1/inbox".into()),
        AdminCommand::Inbox { command: Some(InboxCommand::Read { id }) } => {
            call(M::POST, format!("/v1/inbox/{}/read", seg(&id)))
        }
        AdminCommand::Inbox { command: Some(InboxCommand::Rm { id }) } => {
            call(M::DELETE, format!("/v1/inbox/{}", seg(&id)))
        }
        AdminCommand::Blocks(BlocksCommand::List) => call(M::GET, "/v1/blocks".into()),
        AdminCommand::Links(c) => links_call(c),
        AdminCommand::Zones(c) => zones_call(c)?,
        AdminCommand::Rules(RulesCommand::List) => call(M::GET, "/v1/rules".into()),
        AdminCommand::Rules(RulesCommand::Add { name, domain, targets, scope }) => with_json(
            call(M::POST, "/v1/rules".into()),
            json!({ "name": name, "domain": domain, "targets": targets, "scope": scope }),
        ),
        AdminCommand::Rules(RulesCommand::Rm { id, if_match }) => {
            Call { if_match, ..call(M::DELETE, format!("/v1/rules/{}", seg(&id))) }
        }
        AdminCommand::Records(c) => records_call(c),
        AdminCommand::Usage(range) => call(M::GET, range.url("/v1/usage")),
        AdminCommand::Audit(range) => call(M::GET, range.url("/v1/audit")),
        AdminCommand::Explain(question) => call(M::GET, question.path()),
    })
}

fn links_call(c: LinksCommand) -> Call {
    use Method as M;
    match c {
        LinksCommand::List => call(M::GET, "/v1/links".into()),
        LinksCommand::Requests => call(M::GET, "/v1/links/requests".into()),
        LinksCommand::Decline { request } => call(M::POST, format!("/v1/links/requests/{}/decline", seg(&request))),
        LinksCommand::Request { target } => with_json(call(M::POST, "/v1/links".into()), json!({ "target": target })),
        LinksCommand::Verify { request, code } => {
            with_json(call(M::POST, format!("/v1/links/requests/{}/verify", seg(&request))), json!({ "code": code }))
        }
        LinksCommand::Rm { account, if_match } => {
            Call { if_match, ..call(M::DELETE, format!("/v1/links/{}", seg(&account))) }
        }
        LinksCommand::Block { account, if_match } => {
            Call { if_match, ..call(M::PUT, format!("/v1/blocks/{}", seg(&account))) }
        }
        LinksCommand::Unblock { account, if_match } => {
            Call { if_match, ..call(M::DELETE, format!("/v1/blocks/{}", seg(&account))) }
        }
    }
}

fn zones_call(c: ZonesCommand) -> anyhow::Result<Call> {
    use Method as M;
    Ok(match c {
        ZonesCommand::List => call(M::GET, "/v1/zones".into()),
        ZonesCommand::Create { name, scope, fallback } => {
            with_json(call(M::POST, "/v1/zones".into()), json!({ "name": name, "scope": scope, "fallback": fallback }))
        }
        ZonesCommand::Show { id } => call(M::GET, format!("/v1/zones/{}", seg(&id))),
        ZonesCommand::Fallback { id, fallback, if_match } => Call {
            if_match,
            ..with_json(call(M::PUT, format!("/v1/zones/{}/fallback", seg(&id))), json!({ "fallback": fallback }))
        },
        ZonesCommand::Rm { id, if_match } => Call { if_match, ..call(M::DELETE, format!("/v1/zones/{}", seg(&id))) },
        ZonesCommand::Scope { id, set, add, remove, if_match } => {
            let base = format!("/v1/zones/{}/scope", seg(&id));
            let (method, path, vpcs) = match (set, add, remove) {
                (Some(v), None, None) => (M::PUT, base, v),
                (None, Some(v), None) => (M::POST, format!("{base}/add"), v),
                (None, None, Some(v)) => (M::POST, format!("{base}/remove"), v),
                _ => anyhow::bail!("give exactly one of --set, --add, --remove"),
            };
            Call { if_match, ..with_json(call(method, path), json!({ "vpcs": vpcs })) }
        }
        ZonesCommand::Export { id } => call(M::GET, format!("/v1/zones/{}/file", seg(&id))),
        ZonesCommand::Import { id, file, if_match } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            Call { if_match, body: Some(Body::from(text)), ..call(M::PUT, format!("/v1/zones/{}/file", seg(&id))) }
        }
    })
}

fn records_call(c: RecordsCommand) -> Call {
    use Method as M;
    match c {
        RecordsCommand::Add { zone, record, if_match } => {
            Call { if_match, ..with_json(call(M::POST, format!("/v1/zones/{}/records", seg(&zone))), record.body()) }
        }
        RecordsCommand::Change { zone, id, record, if_match } => Call {
            if_match,
            ..with_json(call(M::PUT, format!("/v1/zones/{}/records/{}", seg(&zone), seg(&id))), record.body())
        },
        RecordsCommand::Rm { zone, id, if_match } => {
            Call { if_match, ..call(M::DELETE, format!("/v1/zones/{}/records/{}", seg(&zone), seg(&id))) }
        }
    }
}
