//! The command-line clients of the admin API: `vpcdns admin` (tenants) and `vpcdns operator` (the inventory).

pub mod admin;
pub mod app;
pub mod client;
pub mod operator;
pub mod render;

/// How answers are printed (both clients).
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct OutputArgs {
    /// Print the API's JSON (answers on stdout, errors on stderr) instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
    /// Times in UTC (default: the local time zone); `--json` always gives Unix seconds.
    #[arg(long, global = true)]
    pub utc: bool,
}

/// Writes command output to stdout. A reader that went away (`vpcdns … | head`) ends the command quietly, as with
/// any Unix tool, instead of the panic `print!` raises on a closed pipe.
pub fn emit(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        let code = if e.kind() == std::io::ErrorKind::BrokenPipe { 0 } else { 1 };
        std::process::exit(code);
    }
}

/// `print!` through [`emit`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::process::cli::emit(format_args!($($arg)*)) };
}

/// `println!` through [`emit`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::process::cli::emit(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Percent-encodes one path segment (zone ids hold `/`).
pub fn seg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?a=1&b=2` from the parameters that are set.
pub(crate) fn query_string(params: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = params.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", seg(v)))).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A time range (default: the last hour). Times as people write them: Unix seconds, a time ago (`1h`, `2d`), a
/// date (`2026-12-01`) or an RFC 3339 time.
#[derive(clap::Args)]
pub struct Range {
    /// From (default: an hour ago): `1h`, `2d`, `2026-12-01`, `2026-12-01T10:00:00Z` or Unix seconds.
    #[arg(long, alias = "since", value_parser = render::parse_time)]
    pub from: Option<u64>,
    /// Until (default: now), written as `--from`.
    #[arg(long, alias = "until", value_parser = render::parse_time)]
    pub to: Option<u64>,
}

/// A time range and how many entries at most.
#[derive(clap::Args)]
pub struct AuditRange {
    #[command(flatten)]
    pub range: Range,
    /// At most this many entries (default 1000).
    #[arg(long)]
    pub limit: Option<usize>,
}

impl AuditRange {
    pub fn url(&self, path: &str) -> String {
        self.range.url_with(path, self.limit)
    }
}

impl Range {
    /// `path?from=…&to=…` with the parameters that are set.
    pub fn url(&self, path: &str) -> String {
        self.url_with(path, None)
    }

    fn url_with(&self, path: &str, limit: Option<usize>) -> String {
        let s = |v: Option<u64>| v.map(|v| v.to_string());
        let limit = limit.map(|v| v.to_string());
        format!("{path}{}", query_string(&[("from", s(self.from)), ("to", s(self.to)), ("limit", limit)]))
    }
}
