//! Pages of a list answer: `?limit=` items at most (1000 by default), and `?cursor=` (the `next_cursor` of the
//! page before) to go on. Items are ordered by their key (`id`, else `name`, else `uid`), and a cursor names the
//! last key each list of the page ended at, so a page never repeats or skips an item that stays, whatever is
//! added or removed between two pages. An answer with several lists (links and the accounts that linked yours)
//! pages each of them; `next_cursor` is there while any list has more.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::control::ControlError;

/// The items of a page when `limit` is not given, and the most one may ask for.
pub(crate) const DEFAULT_LIMIT: usize = 1000;
pub(crate) const MAX_LIMIT: usize = 10_000;

/// A list route's query (`min_revision` is the middleware's).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    limit: Option<usize>,
    cursor: Option<String>,
    #[allow(dead_code)] // read by `refusals::min_revision`; named here so that it is not refused as unknown
    min_revision: Option<u64>,
}

/// The page of `answer` that `page` asks for.
pub(crate) fn paged(answer: Value, page: &Page) -> Result<Value, ControlError> {
    let Value::Object(mut fields) = answer else { return Ok(answer) };
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ControlError::invalid("bad_limit", format!("limit is 1 to {MAX_LIMIT}")));
    }
    let after = match &page.cursor {
        Some(cursor) => Some(decode(cursor)?),
        None => None,
    };
    let mut next = Map::new();
    for (field, value) in fields.iter_mut() {
        let Value::Array(items) = value else { continue };
        if !items.iter().all(Value::is_object) {
            continue;
        }
        items.sort_by_cached_key(key_of);
        let start = match &after {
            // A list the cursor does not name was done on the pages before.
            Some(after) => match after.get(field).and_then(Value::as_str) {
                Some(last) => items.partition_point(|item| key_of(item).as_str() <= last),
                None => items.len(),
            },
            None => 0,
        };
        let rest: Vec<Value> = items.drain(start..).collect();
        let more = rest.len() > limit;
        *items = rest.into_iter().take(limit).collect();
        if more {
            if let Some(last) = items.last() {
                next.insert(field.clone(), Value::String(key_of(last)));
            }
        }
    }
    if !next.is_empty() {
        fields.insert("next_cursor".into(), Value::String(encode(&Value::Object(next))));
    }
    Ok(Value::Object(fields))
}

/// An item's key: its id, else its name, else its uid, else its JSON text.
fn key_of(item: &Value) -> String {
    ["id", "name", "uid"]
        .iter()
        .find_map(|k| item.get(*k).and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| item.to_string())
}

/// A cursor is hex of a small JSON object (list → last key): opaque to clients, and never a path or query hazard.
fn encode(value: &Value) -> String {
    value.to_string().bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode(cursor: &str) -> Result<Map<String, Value>, ControlError> {
    let bad = || ControlError::invalid("bad_cursor", "cursor: give the next_cursor of the page before");
    if cursor.len() % 2 != 0 || cursor.len() > 8192 {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> =
        (0..cursor.len() / 2).map(|i| u8::from_str_radix(cursor.get(2 * i..2 * i + 2)?, 16).ok()).collect();
    match serde_json::from_slice(&bytes.ok_or_else(bad)?) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(limit: usize, cursor: Option<&str>) -> Page {
        Page { limit: Some(limit), cursor: cursor.map(str::to_string), min_revision: None }
    }

    #[test]
    fn pages_follow_each_other_without_repeating_or_skipping() {
        let answer = json!({"zones": [{"id": "c"}, {"id": "a"}, {"id": "b"}], "other": 1});
        let first = paged(answer.clone(), &page(2, None)).expect("page");
        assert_eq!(first["zones"], json!([{"id": "a"}, {"id": "b"}]), "ordered by key");
        let cursor = first["next_cursor"].as_str().expect("more").to_string();
        // Between the pages "b" goes and "bb" comes: the next page starts after "b" all the same.
        let changed = json!({"zones": [{"id": "c"}, {"id": "a"}, {"id": "bb"}], "other": 1});
        let second = paged(changed, &page(2, Some(&cursor))).expect("page");
        assert_eq!(second["zones"], json!([{"id": "bb"}, {"id": "c"}]));
        assert!(second.get("next_cursor").is_none(), "the last page");
        assert_eq!(second["other"], 1);
    }

    #[test]
    fn each_list_of_an_answer_pages_and_bad_input_is_refused() {
        let answer = json!({"linked": [{"uid": "1"}, {"uid": "2"}], "linked_by": [{"uid": "9"}]});
        let first = paged(answer.clone(), &page(1, None)).expect("page");
        assert_eq!(
            (first["linked"].as_array().map(Vec::len), first["linked_by"].as_array().map(Vec::len)),
            (Some(1), Some(1))
        );
        let second = paged(answer.clone(), &page(1, first["next_cursor"].as_str())).expect("page");
        assert_eq!(second["linked"], json!([{"uid": "2"}]));
        assert_eq!(second["linked_by"], json!([]), "done on the first page");
        assert_eq!(paged(answer.clone(), &page(0, None)).unwrap_err().code(), "bad_limit");
        assert_eq!(paged(answer, &page(5, Some("zz"))).unwrap_err().code(), "bad_cursor");
    }
}
