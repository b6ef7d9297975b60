//! Who may ask `explain` what: a tenant explains sources in its own VPCs only (found by prefix, or named by a front
//! end's identity), on the listener it names (or the first one served). The report itself runs in the data plane
//! (`ApiHooks::explain`).

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use crate::control::{ControlError, ControlState};
use crate::model::explain::Question;
use crate::model::snapshot::Snapshot;
use crate::model::state::Uid;

/// `GET /v1/explain`'s query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplainRequest {
    pub source: IpAddr,
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: Option<String>,
    pub listener: Option<SocketAddr>,
    #[serde(default)]
    pub tcp: bool,
    /// As relayed by a front end naming this endpoint, or this VPC id.
    pub endpoint: Option<String>,
    pub vpc_id: Option<String>,
}

/// The question `account` may have explained: its source must lie in one of the account's own VPCs.
pub(crate) fn tenant_question(
    control: &ControlState,
    snapshot: &Snapshot,
    account: &Uid,
    request: &ExplainRequest,
) -> Result<Question, ControlError> {
    let listener = request
        .listener
        .or_else(|| control.state.served.listen.first().copied())
        .ok_or_else(|| ControlError::invalid("no_listener", "give a listener"))?;
    let qtype = request.qtype.as_deref().unwrap_or("A");
    let question = Question::parse(listener, request.source, &request.name, qtype, request.tcp)
        .and_then(|q| q.through(request.endpoint.as_deref(), request.vpc_id.as_deref()))
        .map_err(|(code, message)| ControlError::invalid(code, message))?;
    // The VPC the server would put the query in, by identity or by prefix, must be the caller's own; one answer
    // for every other case, so no tenant learns another's endpoints or prefixes.
    let class = question.classify(snapshot);
    let owns = class.and_then(|c| snapshot.vpcs().get(c.vpc as usize)).is_some_and(|v| *v.account == *account.0);
    if !owns {
        return Err(ControlError::forbidden("explain answers for sources in your own VPCs only"));
    }
    Ok(question)
}
