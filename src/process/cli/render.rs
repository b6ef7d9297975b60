//! Answers rendered for people: every value in words (an account as `acme (1001)`, a list as `a, b`, a time as
//! RFC 3339), tables laid out as `kubectl get` lays them out, and a block per row (as `kubectl describe`) when a
//! row holds text of several lines. `--json` prints the API's JSON unchanged instead; nothing here changes it.

use serde_json::{Map, Value};

/// How times are shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// UTC (`…Z`) instead of the local time zone.
    pub utc: bool,
}

/// Fields that hold Unix seconds, and the one that holds Unix milliseconds.
const SECONDS: [&str; 9] =
    ["expires", "created", "added_at", "time", "minute", "from", "to", "expires_at", "code_expires"];
const MILLIS: &str = "time_ms";

/// Columns shown first when present; the rest follow in the answer's (alphabetical) order.
const FIRST: [&str; 4] = ["id", "name", "time_ms", "time"];

/// The whole answer as text.
pub fn render(body: &Value, style: Style) -> String {
    let mut out = String::new();
    match body {
        Value::Object(map) => fields(&mut out, map, style, ""),
        other => out.push_str(&format!("{}\n", cell("", other, style))),
    }
    out
}

/// `key: value` lines; a list of objects as a table, a nested object as indented lines.
fn fields(out: &mut String, map: &Map<String, Value>, style: Style, indent: &str) {
    for (key, value) in map {
        match value {
            Value::Array(rows) if !rows.is_empty() && rows.iter().all(Value::is_object) => {
                out.push_str(&format!("{indent}{key}:\n"));
                rows_of(out, rows, style, &format!("{indent}  "));
            }
            Value::Array(rows) if rows.is_empty() => out.push_str(&format!("{indent}{key}: (none)\n")),
            Value::Object(inner) if account(inner).is_none() => {
                out.push_str(&format!("{indent}{key}:\n"));
                fields(out, inner, style, &format!("{indent}  "));
            }
            other => out.push_str(&format!("{indent}{}: {}\n", label(key), cell(key, other, style))),
        }
    }
}

/// Rows as a table, or as blocks when a cell has several lines (a message body).
fn rows_of(out: &mut String, rows: &[Value], style: Style, indent: &str) {
    let columns = columns(rows);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(c, row.get(c.as_str()).unwrap_or(&Value::Null), style)).collect())
        .collect();
    if cells.iter().flatten().any(|c| c.contains('\n')) {
        blocks(out, &columns, &cells, indent);
    } else {
        table(out, &columns, &cells, indent);
    }
}

fn columns(rows: &[Value]) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for row in rows.iter().filter_map(Value::as_object) {
        for key in row.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    columns.sort_by_key(|c| FIRST.iter().position(|f| f == c).unwrap_or(FIRST.len()));
    columns
}

fn table(out: &mut String, columns: &[String], cells: &[Vec<String>], indent: &str) {
    let headers: Vec<String> = columns.iter().map(|c| label(c).to_uppercase()).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| cells.iter().map(|row| row[i].chars().count()).chain([headers[i].len()]).max().unwrap_or(0))
        .collect();
    let mut line = |values: &[String]| {
        let parts: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        out.push_str(&format!("{indent}{}\n", parts.join("  ").trim_end()));
    };
    line(&headers);
    for row in cells {
        line(row);
    }
}

/// One block per row: `Label: value` lines, then the multi-line values indented below.
fn blocks(out: &mut String, columns: &[String], cells: &[Vec<String>], indent: &str) {
    let width = columns.iter().map(|c| label(c).len()).max().unwrap_or(0) + 1;
    for (n, row) in cells.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        for (column, value) in columns.iter().zip(row).filter(|(_, v)| !v.contains('\n')) {
            out.push_str(&format!("{indent}{:<width$} {value}\n", format!("{}:", capitalized(label(column)))));
        }
        for value in row.iter().filter(|v| v.contains('\n')) {
            out.push('\n');
            for text in value.lines().flat_map(|line| wrapped(line, WRAP)) {
                match text.is_empty() {
                    true => out.push('\n'),
                    false => out.push_str(&format!("{indent}  {text}\n")),
                }
            }
        }
    }
}

/// Text in blocks is wrapped at this many characters (a terminal of 100 columns, with the indent).
const WRAP: usize = 96;

/// A line broken at spaces into lines of at most `width` characters (a longer word stays whole).
fn wrapped(line: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in line.split(' ') {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        } else if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    lines.push(current);
    lines
}

/// One value in words.
fn cell(key: &str, value: &Value, style: Style) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) if key == MILLIS => n.as_u64().map_or_else(|| n.to_string(), |ms| time(ms / 1000, style)),
        Value::Number(n) if SECONDS.contains(&key) => n.as_u64().map_or_else(|| n.to_string(), |s| time(s, style)),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(|v| cell(key, v, style)).collect::<Vec<_>>().join(", "),
        Value::Object(map) => match account(map) {
            Some(named) => named,
            None => map.iter().map(|(k, v)| format!("{k}={}", cell(k, v, style))).collect::<Vec<_>>().join(" "),
        },
    }
}

/// An account reference (`{"name": "acme", "uid": "1001"}`) as `acme (1001)`.
fn account(map: &Map<String, Value>) -> Option<String> {
    if map.len() != 2 {
        return None;
    }
    let (name, uid) = (map.get("name")?.as_str()?, map.get("uid")?.as_str()?);
    Some(format!("{name} ({uid})"))
}

/// A Unix time in RFC 3339: UTC, or the local time zone with its offset.
pub fn time(seconds: u64, style: Style) -> String {
    let Ok(stamp) =
        i64::try_from(seconds).map_err(|_| ()).and_then(|s| jiff::Timestamp::from_second(s).map_err(|_| ()))
    else {
        return seconds.to_string();
    };
    if style.utc {
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    }
    stamp.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// A time as people write it, to Unix seconds: Unix seconds (`1796492090`), a time ago (`1h`, `90m`, `2d`,
/// `1h30m`), an RFC 3339 time (`2026-12-01T10:00:00Z`) or a date (`2026-12-01`: its midnight, local time).
pub fn parse_time(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let seconds = |stamp: jiff::Timestamp| u64::try_from(stamp.as_second()).map_err(|_| format!("{text}: before 1970"));
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|e| format!("{text}: {e}"));
    }
    if let Ok(stamp) = text.parse::<jiff::Timestamp>() {
        return seconds(stamp);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        let zoned = date.to_zoned(jiff::tz::TimeZone::system()).map_err(|e| format!("{text}: {e}"))?;
        return seconds(zoned.timestamp());
    }
    if let Ok(span) = text.parse::<jiff::Span>() {
        let then = jiff::Zoned::now().checked_sub(span.abs()).map_err(|e| format!("{text}: {e}"))?;
        return seconds(then.timestamp());
    }
    Err(format!(
        "{text:?} is not a time: give Unix seconds, a time ago (1h, 30m, 2d), a date (2026-12-01) or an RFC 3339 time \
         (2026-12-01T10:00:00Z)"
    ))
}

/// A field's name for people: `time_ms` is the time.
fn label(key: &str) -> &str {
    if key == MILLIS {
        "time"
    } else {
        key
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>().replace('_', " ")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UTC: Style = Style { utc: true };

    #[test]
    fn values_read_as_words() {
        let body = json!({
            "account": {"name": "acme", "uid": "1001"},
            "scope": ["vpc-acme", "vpc-beta"],
            "expires": 1_796_492_690u64,
            "linked_by": [],
            "resolver": {"items": [], "total": 0},
        });
        let text = render(&body, UTC);
        assert!(text.contains("account: acme (1001)\n"), "{text}");
        assert!(text.contains("scope: vpc-acme, vpc-beta\n"), "{text}");
        assert!(text.contains("expires: 2026-12-05T"), "{text}");
        assert!(text.contains("linked_by: (none)\n"), "{text}");
        assert!(text.contains("resolver:\n  items: (none)\n  total: 0\n"), "{text}");
        assert!(!text.contains('{') && !text.contains('['), "{text}");
    }

    #[test]
    fn rows_are_a_table_with_names_first_and_times_in_words() {
        let body = json!({"entries": [
            {"action": "zone.create", "principal": "root@acme", "time_ms": 1_796_492_090_015u64, "in_vpcs": ["a", "b"]},
        ]});
        let text = render(&body, UTC);
        let header = text.lines().nth(1).expect("header");
        assert!(header.trim_start().starts_with("TIME "), "{text}");
        assert!(text.contains("2026-12-05T") && text.contains("a, b"), "{text}");
    }

    #[test]
    fn times_are_read_as_people_write_them() {
        assert_eq!(parse_time("1796492090"), Ok(1_796_492_090));
        assert_eq!(parse_time("2026-12-05T17:34:50Z"), Ok(1_796_492_090));
        let now = jiff::Timestamp::now().as_second() as u64;
        let hour_ago = parse_time("1h").expect("1h");
        assert!((now - 3600).abs_diff(hour_ago) <= 2, "{hour_ago} vs {now}");
        assert!(parse_time("2d").expect("2d") < hour_ago);
        let date = parse_time("2026-12-01").expect("a date");
        assert!(date.abs_diff(1_796_083_200) <= 14 * 3600, "midnight of that day, local time: {date}");
        assert!(parse_time("yesterday-ish").unwrap_err().contains("is not a time"));
    }

    #[test]
    fn a_row_with_text_of_several_lines_is_a_block() {
        let body = json!({"messages": [
            {"id": "m1", "subject": "code", "body": "Line one\n\nLine two", "time": 0},
            {"id": "m2", "subject": "other", "body": "Only\nlines", "time": 0},
        ]});
        let text = render(&body, UTC);
        assert!(text.contains("  Id:      m1\n"), "{text}");
        assert!(text.contains("    Line one\n\n    Line two\n"), "{text}");
        assert!(text.contains("1970-01-01T00:00:00Z"), "{text}");
        assert!(text.lines().all(|l| l.len() < 100), "{text}");
    }
}
