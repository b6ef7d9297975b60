//! `explain` with the exact response: the model's report (`model::explain`), then the bytes `respond` produces for
//! the question, decoded by an independent decoder (hickory-proto). It opens no socket and changes nothing.

use std::fmt::Write as _;

use crate::dataplane::respond;
use crate::model::explain::{report, CacheProbe, Question};
use crate::model::snapshot::Snapshot;
use crate::model::state::State;

/// The whole report, as text.
pub fn explain(state: &State, snap: &Snapshot, q: &Question, cache: Option<CacheProbe>) -> String {
    let mut out = report(state, snap, q, cache);
    out.push_str("response:\n");
    out.push_str(&response_text(snap, q));
    out
}

/// Builds the query a stub would send (RD set, EDNS 1232), runs the real handler, and decodes the response.
fn response_text(snap: &Snapshot, q: &Question) -> String {
    let mut query = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    query.extend_from_slice(q.name.wire());
    query.extend_from_slice(&q.qtype.to_be_bytes());
    query.extend_from_slice(&1u16.to_be_bytes());
    query.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    let mut out = Vec::new();
    let request = respond::Request {
        packet: &query,
        source: q.source,
        local: q.listener,
        transport: q.transport,
        identity: q.identity.as_ref().map(|i| i.borrow()),
    };
    let cx = respond::Context { snapshot: snap, cookies: None, now: 0 };
    match respond::handle(&request, &cx, &mut out) {
        respond::Handled::Dropped => return "  (no response: the packet is dropped)\n".into(),
        respond::Handled::Recurse(..) => {
            return "  (resolved through the route above when asked: explain does not query it)\n".into()
        }
        respond::Handled::Answered(_) => {}
    }
    match hickory_proto::op::Message::from_vec(&out) {
        Ok(msg) => {
            let mut text = String::new();
            for line in msg.to_string().lines() {
                let _ = writeln!(text, "  {line}");
            }
            let _ = writeln!(text, "  ; {} bytes", out.len());
            text
        }
        Err(e) => format!("  (the response did not decode: {e})\n"),
    }
}
