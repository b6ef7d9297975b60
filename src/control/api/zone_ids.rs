//! Zone ids as people write them. A zone's id is `<account>/<name>` with the name in lower case and ending in a
//! dot (`1001/corp.internal.`), but `1001/Corp.Internal` names the same zone: before routing, a zone path whose
//! id is not a zone is rewritten to the id of the zone it names, if there is exactly one such zone of that
//! account. Ids that exist as written (a file may declare any id) are never touched.

use axum::body::Body;
use axum::http::{Request, Uri};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::control::ops::zone_id_as_named;
use crate::control::ControlPlane;
use crate::model::state::ZoneId;

/// The path prefixes whose next segment is a zone id.
const ZONE_PATHS: [&str; 2] = ["/v1/zones/", "/v1/foreign-zones/"];

/// What is encoded in a path segment (as the CLI encodes it).
const SEGMENT: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'%').add(b'/').add(b'?').add(b'<').add(b'>');

/// The request, with its zone id made canonical when it names a zone only loosely.
pub(crate) fn canonical(mut request: Request<Body>, plane: &ControlPlane) -> Request<Body> {
    if let Some(uri) = rewritten(request.uri(), plane) {
        *request.uri_mut() = uri;
    }
    request
}

fn rewritten(uri: &Uri, plane: &ControlPlane) -> Option<Uri> {
    let path = uri.path();
    let prefix = ZONE_PATHS.iter().find(|p| path.starts_with(*p))?;
    let rest = &path[prefix.len()..];
    let (segment, tail) = rest.split_once('/').map_or((rest, ""), |(s, t)| (s, t));
    let written = percent_decode_str(segment).decode_utf8().ok()?;
    let state = &plane.current().state;
    if written.is_empty() || state.zones.contains_key(&ZoneId(written.to_string())) {
        return None;
    }
    let (account, name) = written.split_once('/')?;
    let wanted = zone_id_as_named(name);
    let mut matches = state
        .zones
        .range(ZoneId(format!("{account}/"))..)
        .take_while(|(id, _)| id.0.starts_with(&format!("{account}/")))
        .filter(|(id, _)| id.0.split_once('/').is_some_and(|(_, n)| zone_id_as_named(n) == wanted));
    let (found, _) = matches.next()?;
    if matches.next().is_some() {
        return None;
    }
    let mut new_path = format!("{prefix}{}", utf8_percent_encode(&found.0, SEGMENT));
    if rest.contains('/') {
        new_path.push('/');
        new_path.push_str(tail);
    }
    let with_query = match uri.query() {
        Some(query) => format!("{new_path}?{query}"),
        None => new_path,
    };
    with_query.parse().ok()
}
